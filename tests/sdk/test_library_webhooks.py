"""examples/library_webhooks.py run for real on a loopback port, fed requests signed independently of
the SDK: by the `standardwebhooks` library and by a few lines of HMAC written from the specification.
Replays, tampering, stale timestamps, a rotation, a failed store and a restart."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from standardwebhooks import Webhook

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "library_webhooks.py"
OLD = "whsec_" + base64.b64encode(b"library: the old secret!").decode()
NEW = "whsec_" + base64.b64encode(b"library: the secret after rotation").decode()
STRANGER = "whsec_" + base64.b64encode(b"somebody else's secret").decode()
Signer = Callable[[str, str, int, bytes], str]


def by_library(secret: str, webhook_id: str, at: int, body: bytes) -> str:
    return Webhook(secret).sign(webhook_id, dt.datetime.fromtimestamp(at, dt.UTC), body)


def by_hand(secret: str, webhook_id: str, at: int, body: bytes) -> str:
    """The specification: HMAC-SHA256 of "id.timestamp.body" under the base64 key after whsec_."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def event(kind: str, created: dt.datetime, **data: object) -> bytes:
    # As the city writes it: UTC with a Z, compact JSON.
    stamp = created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    payload = {"type": kind, "timestamp": stamp, "data": data}
    return json.dumps(payload, separators=(",", ":")).encode()


def tier_changed(pseudonym: str, level: int, created: dt.datetime) -> bytes:
    until = (created + dt.timedelta(days=7)).replace(microsecond=0).isoformat()
    return event(
        "tier.changed", created, pseudonym=pseudonym, common_level=level, valid_until=until
    )


def headers(
    webhook_id: str,
    body: bytes,
    *signers: tuple[Signer, str],
    at: int | None = None,
) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": " ".join(
            sign(secret, webhook_id, at, body) for sign, secret in signers
        ),
        "content-type": "application/json",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Library:
    """The example as a library would run it: its own process, its own SQLite file."""

    def __init__(self, db: Path):
        self.db = db
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        port = free_port()
        env = {**os.environ, "CITYCREDIT_WEBHOOK_SECRET": f"{NEW} {OLD}"}
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port), "--db", str(self.db)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}/citycredit/webhooks"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the example exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the example did not listen within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def post(self, body: bytes, sent: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url, content=body, headers=sent, timeout=10)


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("library_webhooks", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    running = Library(tmp_path / "members.sqlite3")
    running.start()
    yield running
    running.stop()


def test_the_library_stores_levels_and_refuses_what_the_city_did_not_sign(
    library: Library, example: ModuleType
) -> None:
    level = lambda pseudonym: example.current_level(library.db, pseudonym)  # noqa: E731
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    first = tier_changed("lk_reader", 4, created)
    sent = headers("msg_1", first, (by_library, NEW))
    assert library.post(first, sent).status_code == 204
    assert level("lk_reader") == 4
    second = tier_changed("lk_other", 2, created)
    assert library.post(second, headers("msg_2", second, (by_hand, NEW))).status_code == 204
    assert level("lk_other") == 2

    # A replay of the same request, and the city's retry of msg_1 (re-signed, new timestamp).
    assert library.post(first, sent).json() == {"duplicate": "msg_1"}
    retry = library.post(first, headers("msg_1", first, (by_hand, NEW)))
    assert (retry.status_code, retry.json()) == (200, {"duplicate": "msg_1"})

    tampered = first.replace(b'"common_level":4', b'"common_level":5')
    refused = library.post(tampered, headers("msg_3", first, (by_library, NEW)))
    assert (refused.status_code, refused.json()["reason"]) == (400, "bad-signature")
    unsigned = {k: v for k, v in headers("msg_3", tampered).items() if k != "webhook-signature"}
    assert library.post(tampered, unsigned).json()["reason"] == "missing-header"
    stale = library.post(
        tampered, headers("msg_3", tampered, (by_library, NEW), at=int(time.time()) - 600)
    )
    assert (stale.status_code, stale.json()["reason"]) == (400, "timestamp-too-old")
    ahead = library.post(
        tampered, headers("msg_3", tampered, (by_hand, NEW), at=int(time.time()) + 600)
    )
    assert (ahead.status_code, ahead.json()["reason"]) == (400, "timestamp-too-new")
    assert level("lk_reader") == 4

    # A rotation: the city signs with the old and the new secret; the library holds both.
    later = created + dt.timedelta(seconds=10)
    rotated = tier_changed("lk_reader", 3, later)
    both = headers("msg_4", rotated, (by_hand, OLD), (by_library, NEW))
    assert len(both["webhook-signature"].split()) == 2
    assert library.post(rotated, both).status_code == 204
    assert level("lk_reader") == 3
    old_only = tier_changed("lk_other", 5, later)
    assert library.post(old_only, headers("msg_5", old_only, (by_hand, OLD))).status_code == 204
    assert level("lk_other") == 5
    foreign = tier_changed("lk_other", 1, later)
    stranger = library.post(foreign, headers("msg_6", foreign, (by_library, STRANGER)))
    assert (stranger.status_code, level("lk_other")) == (400, 5)

    # The citizen revokes the link: the level is forgotten, and a late older copy cannot restore it.
    revoked = event("link.revoked", later + dt.timedelta(seconds=5), pseudonym="lk_reader")
    assert library.post(revoked, headers("msg_7", revoked, (by_library, NEW))).status_code == 204
    assert level("lk_reader") is None
    late = tier_changed("lk_reader", 4, later)
    assert library.post(late, headers("msg_8", late, (by_library, NEW))).status_code == 204
    assert level("lk_reader") is None
    assert example.current_level(library.db, "lk_other", later + dt.timedelta(days=8)) is None


def test_a_failed_store_answers_500_and_its_retry_goes_through_even_after_a_restart(
    library: Library, example: ModuleType
) -> None:
    body = tier_changed("lk_reader", 4, dt.datetime.now(dt.UTC))
    with closing(sqlite3.connect(library.db)) as broken:  # the lending system's database fails
        broken.execute("ALTER TABLE member_level RENAME TO member_level_away")
    assert library.post(body, headers("msg_1", body, (by_library, NEW))).status_code == 500
    with closing(sqlite3.connect(library.db)) as repaired:
        repaired.execute("ALTER TABLE member_level_away RENAME TO member_level")
    assert library.post(body, headers("msg_1", body, (by_hand, NEW))).status_code == 204
    assert example.current_level(library.db, "lk_reader") == 4

    # The city's worker was killed after the 204 and re-sends; the library restarted meanwhile.
    library.stop()
    library.start()
    again = library.post(body, headers("msg_1", body, (by_library, NEW)))
    assert (again.status_code, again.json()) == (200, {"duplicate": "msg_1"})
