"""The request pipeline behind a real gunicorn: a PostgreSQL outage (a proxy cut, the shared server left
alone) is a 503 with Retry-After and the first request after it succeeds; the server log has one line
per record, with request ids, whatever a caller puts in the path."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from citycredit.web.pipeline import RETRY_AFTER_SECONDS
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import SECRETS, free_port, gunicorn
from tests.tcp_proxy import TcpProxy


@dataclass
class Server:
    url: str
    log: Path


@contextmanager
def served(database_url: str, tmp: Path, *, access_log: bool = False) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        **SECRETS,
        "CITYCREDIT_DATABASE_URL": database_url,
        "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
        "CITYCREDIT_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    log = tmp / "server.log"
    with gunicorn(env, port, log, workers=2, threads=2, access_log=access_log) as (url, _, _):
        yield Server(url, log)


def test_a_postgresql_outage_is_a_503_and_the_first_request_after_it_succeeds(
    tmp_path: Path,
) -> None:
    _require("postgresql")
    db = ScratchDatabase("postgresql", tmp_path)
    url = make_url(db.url)
    try:
        with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            through = url.set(port=proxy.port).render_as_string(hide_password=False)
            with served(through, tmp_path) as server:
                token_form = {
                    "grant_type": "client_credentials",
                    "client_id": "x",
                    "client_secret": "y",
                }
                for _ in range(4):  # both workers hold pooled connections
                    assert httpx.get(server.url + "/").status_code == 200
                    assert (
                        httpx.post(server.url + "/oauth/token", data=token_form).status_code == 401
                    )
                proxy.cut()
                api = httpx.post(server.url + "/oauth/token", data=token_form)
                assert api.status_code == 503, api.text
                assert api.headers["content-type"] == "application/problem+json"
                assert api.json()["type"] == "/problems/service-unavailable"
                assert api.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
                page = httpx.get(server.url + "/?lang=en")
                assert page.status_code == 503 and page.headers["Retry-After"] == str(
                    RETRY_AFTER_SECONDS
                )
                assert "The service is briefly unavailable" in page.text and "<html" in page.text
                # The server restarts while no request runs; every pooled connection died with it.
                proxy.restore()
                for _ in range(4):
                    assert httpx.get(server.url + "/").status_code == 200
                    assert (
                        httpx.post(server.url + "/oauth/token", data=token_form).status_code == 401
                    )
            log = server.log.read_text()
            assert re.search(
                r"WARNING \[[0-9a-f]{32}\] citycredit\.web\.pipeline: database unavailable", log
            )
    finally:
        db.drop()


TIMESTAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
# gunicorn's own lines, the app's records, a traceback's tagged lines, the access log.
LOG_LINE = re.compile(
    rf"^(\[{TIMESTAMP} [+-]\d{{4}}\] \[\d+\] \[[A-Z]+\] |{TIMESTAMP},\d{{3}} [A-Z]+ \[[\w.:-]+\] |  \[[\w.:-]+\] |127\.0\.0\.1 - - \[)"
)


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_caller_cannot_forge_a_log_line_and_every_line_names_its_request(
    kind: str, tmp_path: Path
) -> None:
    _require(kind)
    db = ScratchDatabase(kind, tmp_path)
    try:
        with served(db.url, tmp_path, access_log=True) as server:
            forged = "x%0A2026-01-01%2000:00:00,000%20CRITICAL%20[x]%20forged%0D%1B[2J"
            refused = httpx.get(
                f"{server.url}/problems/{forged}", headers={"X-Request-Id": "e2e-forger-1"}
            )
            assert refused.status_code == 422
            assert refused.headers["X-Request-Id"] == "e2e-forger-1"
            page = httpx.get(f"{server.url}/admin/login?next=%0Aforged%20too")
            assert page.status_code == 400 and "控制字符" in page.text
            made = page.headers["X-Request-Id"]
        lines = server.log.read_text().splitlines()
        assert lines
        for line in lines:
            assert LOG_LINE.match(line), line
            assert "\x1b" not in line and "\r" not in line
        assert any("[e2e-forger-1]" in line and "\\n2026-01-01" in line for line in lines), lines
        assert any("rid=e2e-forger-1" in line and '"GET /problems/x%0A' in line for line in lines)
        assert any(f"[{made}]" in line and "refused GET /admin/login" in line for line in lines)
        assert any(f"rid={made}" in line for line in lines)
    finally:
        db.drop()
