"""Helpers for the web admin's tests: an app on a fresh database, a movable clock, accounts, sign-in."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin import operations
from admin.models import AdminUser
from citycredit.core.audit import AuditEvent
from citycredit.core.db import unit_of_work
from citycredit.web.app import create_app
from tests.databases import ScratchDatabase

PASSWORD = "correct horse battery"
# 2026-06-30 10:00 in the city (UTC+8).
START = dt.datetime(2026, 6, 30, 2, 0, tzinfo=dt.UTC)


class Clock:
    """The admin's clock in tests: stands still until moved."""

    def __init__(self, start: dt.datetime = START):
        self.moment = start

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += dt.timedelta(**delta)


@dataclass
class AdminApp:
    app: Flask
    clock: Clock

    @contextmanager
    def session(self) -> Iterator[Session]:
        with unit_of_work(self.app.extensions["citycredit"].sessions) as session:
            yield session

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def add_user(self, username: str, role: str, **options: Any) -> int:
        with self.session() as session:
            user = operations.create_user(
                session,
                username=username,
                password=options.pop("password", PASSWORD),
                role=role,
                actor="test",
                now=self.clock(),
                **options,
            )
            return user.id

    def user(self, username: str) -> AdminUser:
        with self.session() as session:
            found = session.scalar(select(AdminUser).where(AdminUser.username == username))
            assert found is not None
            return found

    def events(self, action: str | None = None) -> list[AuditEvent]:
        with self.session() as session:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if action is not None:
                query = query.where(AuditEvent.action == action)
            return list(session.scalars(query))


@contextmanager
def admin_app(db: ScratchDatabase, tmp: Path) -> Iterator[AdminApp]:
    app = create_app({"database_url": db.url, "id_hash_key": b"k" * 32, "instance_dir": tmp})
    clock = Clock()
    app.extensions["admin"].now = clock
    try:
        yield AdminApp(app, clock)
    finally:
        app.extensions["citycredit"].engine.dispose()


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: FlaskClient, path: str = "/admin/login") -> str:
    """The CSRF token of the client's session, as a form on ``path`` carries it."""
    found = _TOKEN.search(client.get(path, follow_redirects=True).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf(client)},
    )


def signed_in(admin: AdminApp, username: str) -> FlaskClient:
    client = admin.client()
    response = sign_in(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def post(client: FlaskClient, path: str, **form: str) -> Any:
    """A form POST with the session's CSRF token, as the page's own form sends it."""
    return client.post(path, data={**form, "csrf_token": csrf(client, "/admin/account")})


def clear_of_a_window_edge(window_seconds: int = 15 * 60, margin: float = 20.0) -> None:
    """Wait out the end of a clock-aligned rate-limit window if it is less than ``margin`` away.

    The limits count with a sliding-window counter (constant memory per key), which weighs the
    previous window's hits by how much of it still overlaps: a test whose guesses straddle a window's
    turn would see fewer than it sent. Real callers get the same approximation; the tests count exactly.
    """
    left = window_seconds - time.time() % window_seconds
    if left < margin:
        time.sleep(left + 0.5)
