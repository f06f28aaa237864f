"""Helpers for the citizen page's tests: an app on a fresh database, a movable clock, seeded citizens,
sign-in through the demo one-time code, and a log of every response the app sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import AuditEvent
from citycredit.core.db import unit_of_work
from citycredit.web.app import create_app
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.admin_support import START, Clock
from tests.rule_cases import ITEMISED

__all__ = ["START", "CitizenApp", "Clock", "Seeded", "citizen_app"]


@dataclass
class Sent:
    """One response as the browser got it."""

    path: str
    status: int
    mimetype: str
    headers: dict[str, str]
    body: str


@dataclass
class Person:
    number: str  # the ID number the citizen types (never stored)
    citizen_id: int
    records: dict[str, int] = field(default_factory=dict)  # label -> record id


@dataclass
class Seeded:
    alice: Person
    bob: Person


@dataclass
class CitizenApp:
    app: Flask
    clock: Clock
    db: ScratchDatabase
    sent: list[Sent]

    @contextmanager
    def session(self) -> Iterator[Session]:
        with unit_of_work(self.app.extensions["citycredit"].sessions) as session:
            yield session

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def events(self, *, actor: str | None = None) -> list[AuditEvent]:
        with self.session() as session:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if actor is not None:
                query = query.where(AuditEvent.actor == actor)
            return list(session.scalars(query))

    def every_stored_text(self) -> Iterator[tuple[str, str, str]]:
        """(table, column, value) for every non-null value of every column of every table, as text."""
        engine = self.app.extensions["citycredit"].engine
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)).mappings():
                    for column, value in row.items():
                        if value is not None:
                            yield table.name, column, str(value)

    def seed(self) -> Seeded:
        """A published model, a source, and two citizens (no consent yet) with their records.

        Alice: a fine on 2026-03-01 (−5), an award on 2026-06-10 (+10) and an award of 2025-03-01 that
        expired on 2026-03-01. Her score today (2026-06-30) is 1000 − 5 + 10 = 1005, tier A (common 3).
        Bob: one award.
        """
        with self.session() as session:
            factories.source(session)
            factories.published(session, ITEMISED)
            alice_number, bob_number = factories.id_number(), factories.id_number()
            alice = factories.citizen(session, consent=False, number=alice_number)
            bob = factories.citizen(session, consent=False, number=bob_number)
            records = {
                "fine": factories.record(session, alice, "FINE", "2026-03-01").id,
                "award": factories.record(session, alice, "AWARD", "2026-06-10").id,
                "old_award": factories.record(session, alice, "AWARD", "2025-03-01").id,
            }
            bob_award = factories.record(session, bob, "AWARD", "2026-05-02").id
            return Seeded(
                Person(alice_number, alice.id, records),
                Person(bob_number, bob.id, {"award": bob_award}),
            )


@contextmanager
def citizen_app(db: ScratchDatabase, tmp: Path, *, demo_mode: bool = True) -> Iterator[CitizenApp]:
    app = create_app(
        {
            "database_url": db.url,
            "id_hash_key": factories.KEY,
            "instance_dir": tmp,
            "demo_mode": demo_mode,
        }
    )
    clock = Clock(START)
    app.extensions["citizen_now"] = clock
    sent: list[Sent] = []

    @app.after_request
    def _keep(response: Response) -> Response:
        from flask import request

        if not response.direct_passthrough:
            sent.append(
                Sent(
                    request.path,
                    response.status_code,
                    response.mimetype or "",
                    dict(response.headers),
                    response.get_data().decode(errors="replace"),  # a PNG too (/me/code.png)
                )
            )
        return response

    try:
        yield CitizenApp(app, clock, db, sent)
    finally:
        app.extensions["citycredit"].engine.dispose()


# --- the browser's side ---------------------------------------------------------------------------

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_CHALLENGE = re.compile(r'name="challenge" value="([^"]+)"')
_DEMO_CODE = re.compile(r'<strong id="demo-code">(\d{6})</strong>')


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def csrf(client: FlaskClient, path: str = "/me/login") -> str:
    """The session's CSRF token, as the form on ``path`` carries it."""
    found = _TOKEN.search(text(client.get(path, follow_redirects=True)))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: FlaskClient, path: str, *, token_from: str = "/me/login", **form: str) -> Any:
    """A form POST with the session's CSRF token, as the page's own form sends it."""
    return client.post(path, data={**form, "csrf_token": csrf(client, token_from)})


@dataclass
class Asked:
    response: Any
    challenge: str | None
    code: str | None


def ask_code(client: FlaskClient, number: str) -> Asked:
    response = post(client, "/me/login", id_number=number)
    page = text(response)
    challenge = _CHALLENGE.search(page)
    code = _DEMO_CODE.search(page)
    return Asked(
        response, challenge.group(1) if challenge else None, code.group(1) if code else None
    )


def answer(client: FlaskClient, challenge: str, code: str) -> Any:
    return post(client, "/me/login/code", challenge=challenge, code=code)


def sign_in(client: FlaskClient, number: str) -> Any:
    asked = ask_code(client, number)
    assert asked.challenge and asked.code, text(asked.response)
    response = answer(client, asked.challenge, asked.code)
    assert response.status_code == 302, text(response)
    return response


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"
