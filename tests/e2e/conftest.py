"""A real city on loopback: gunicorn serving the app against a seeded database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from citycredit.core.clients import register_client
from citycredit.core.config import Settings, load_settings
from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.idnumber import parse_id_number
from citycredit.core.keys import current_signing_key
from points_engine import operations
from scenarios.demo import ensure_demo_scenarios
from tests import factories
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.rule_cases import ITEMISED

SECRETS = {
    "CITYCREDIT_ID_HASH_KEY": "11" * 32,
    "CITYCREDIT_KEY_SECRET": "22" * 32,
    "CITYCREDIT_TOKEN_KEY": "33" * 32,
    "CITYCREDIT_CITY_CODE": "huangshi",
    "CITYCREDIT_CITY_NAME": "黄石市",
}


@contextmanager
def gunicorn(
    env: dict[str, str],
    port: int,
    log_path: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    app: str = "citycredit.web.wsgi:app",
    access_log: bool = False,
) -> Iterator[tuple[str, list[str], subprocess.Popen[bytes]]]:
    """Serve ``app`` with gunicorn on loopback until the block ends; yields (url, command, process).

    With our gunicorn settings (escaped log lines with request ids); the access log only if asked.
    """
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "gunicorn", "--config", "python:citycredit.web.gunicorn_config",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--timeout", "60",
        *(["--access-logfile", "-"] if access_log else []),
        app,
    ]  # fmt: skip
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90  # a loaded 2-core runner can take a while
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start:\n" + log_path.read_text())
                time.sleep(0.1)
            yield url, command, server
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Credentials:
    client_id: str
    client_secret: str


@dataclass
class LiveCity:
    url: str
    db: ScratchDatabase
    settings: Settings
    venue: Credentials
    app: Credentials
    source: Credentials
    # ID numbers: tier levels under the test model (AA → 4, A → 3, D → 1).
    excellent: str
    good: str
    poor: str

    def issue_code(self, number: str, accept: str = "application/json") -> httpx.Response:
        token = httpx.post(
            self.url + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.app.client_id, self.app.client_secret),
        ).json()["access_token"]
        return httpx.post(
            self.url + "/api/v1/credit-codes",
            json={"id_number": number},
            headers={"Authorization": f"Bearer {token}", "Accept": accept},
        )

    def code(self, number: str) -> str:
        response = self.issue_code(number)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token


def live_env(db: ScratchDatabase, tmp_path: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a city served on loopback ``port``: this process's, the test secrets, the
    database, an instance folder under ``tmp_path``, its public URL, and any other ``settings``."""
    return {
        **os.environ,
        **SECRETS,
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_INSTANCE_DIR": str(tmp_path / "instance"),
        "CITYCREDIT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **settings,
    }


def _seed(db: ScratchDatabase, settings: Settings) -> dict[str, object]:
    factory = make_session_factory(db.engine)
    out: dict[str, object] = {}
    with unit_of_work(factory) as session:
        factories.source(session, "court")
        factories.published(session, ITEMISED)
        ensure_demo_scenarios(session)
        current_signing_key(session, settings.key_secret)
        people = {}
        for label, items in {"excellent": ["AWARD"], "good": [], "poor": ["DEBTOR"]}.items():
            number = factories.id_number()
            person = operations.get_or_create_citizen(
                session, settings.id_hash_key, parse_id_number(number)
            )
            for item in items:
                factories.record(session, person, item, "2026-06-01")
            operations.give_consent(
                session, person, channel="test", as_of=dt.datetime.now(settings.tz).date()
            )
            people[label] = number
        for role, kind, scopes in (
            ("venue", "venue", ["verify", "redeem"]),
            ("app", "app", ["codes:issue"]),
            ("source", "source", ["records:write"]),
        ):
            issued = register_client(
                session, name=role, kind=kind, scopes=scopes, key_secret=settings.key_secret
            )
            assert issued.secret is not None
            out[role] = Credentials(issued.client.client_id, issued.secret)
        out.update(people)
    return out


@pytest.fixture(params=BACKENDS)
def city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveCity]:
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port)
    settings = load_settings(env=env)
    seeded = _seed(db, settings)
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield LiveCity(url=url, db=db, settings=settings, **seeded)  # type: ignore[arg-type]
    finally:
        db.drop()
