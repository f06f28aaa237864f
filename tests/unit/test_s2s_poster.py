"""The server-to-server POST on kept-alive connections: reuse, a partner that closed, refusal, proxies."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from federation import poster


class Partner(ThreadingHTTPServer):
    daemon_threads = True
    # Every connection the partner accepted, and what it was asked on each.
    connections: list[int]
    questions: list[dict[str, Any]]


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Partner

    def setup(self) -> None:
        super().setup()
        self.server.connections.append(id(self.connection))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.questions.append(body)
        answer = json.dumps({"answer": body["request"][::-1]}).encode()
        self.send_response(409 if body["request"] == "again" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if body.get("close"):
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def partner() -> Iterator[Partner]:
    server = Partner(("127.0.0.1", 0), Answer)
    server.connections, server.questions = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: Partner) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/api/v1/federation/introspections"


def test_questions_share_one_kept_connection(partner: Partner) -> None:
    first = poster.post_json(url(partner), {"request": "abc"}, timeout=5)
    second = poster.post_json(url(partner), {"request": "again"}, timeout=5)
    assert first == (200, b'{"answer": "cba"}')
    assert second == (409, b'{"answer": "niaga"}')  # the status is the partner's, whatever it is
    assert partner.questions == [{"request": "abc"}, {"request": "again"}]
    assert len(partner.connections) == 1


def test_a_connection_the_partner_closed_is_not_reused(partner: Partner) -> None:
    assert poster.post_json(url(partner), {"request": "one", "close": True}, timeout=5)[0] == 200
    assert poster.post_json(url(partner), {"request": "two"}, timeout=5)[0] == 200
    assert len(partner.connections) == 2
    # The partner's keep-alive runs out while the connection is idle: a new one is made.
    for kept in poster._idle.values():
        for connection in kept:
            assert connection.sock is not None
            connection.sock.shutdown(socket.SHUT_RDWR)  # as a peer's close looks from here
    assert poster.post_json(url(partner), {"request": "three"}, timeout=5)[0] == 200
    assert [q["request"] for q in partner.questions] == ["one", "two", "three"]
    assert len(partner.connections) == 3


def test_a_partner_that_cannot_be_reached_or_read(partner: Partner) -> None:
    port = partner.server_address[1]
    partner.shutdown()
    partner.server_close()
    with pytest.raises(poster.Unreachable):
        poster.post_json(f"http://127.0.0.1:{port}/x", {"request": "x"}, timeout=2)
    with pytest.raises(poster.Unreachable):
        poster.post_json("ftp://127.0.0.1/x", {"request": "x"}, timeout=2)

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:  # accepts, never answers
        with pytest.raises(poster.Unreachable):
            poster.post_json(
                f"http://127.0.0.1:{silent.getsockname()[1]}/x", {"request": "x"}, timeout=0.3
            )
    finally:
        silent.close()


def test_with_a_proxy_configured_questions_stay_on_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    assert poster.usable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not poster.usable()
