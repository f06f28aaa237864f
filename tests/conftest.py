"""Fixtures: every database test runs on SQLite and on the real PostgreSQL.

Warehouse-style: each backend is created and migrated once per session; each test runs inside a
transaction that is rolled back, with operations' own commits turned into savepoints.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.databases import ScratchDatabase, postgresql_unavailable

# Skipped tests end the run as one line per reason (tests/skip_summary.py), not one per test.
pytest_plugins = ["tests.skip_summary"]

# Tests make their secrets on the fly in scratch instance folders, as a developer's machine does;
# production refuses to start without them (tests/unit/test_config.py). Inherited by the servers
# and commands the tests start.
os.environ.setdefault("CITYCREDIT_ENV", "development")

KEY = bytes(range(32))
TODAY = dt.date(2026, 6, 30)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def _require(kind: str) -> None:
    if kind != "postgresql":
        return
    reason = postgresql_unavailable()
    if reason is None:
        return
    if os.environ.get("CITYCREDIT_REQUIRE_POSTGRESQL") == "1":
        pytest.fail(f"PostgreSQL is required here but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScratchDatabase]:
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path_factory.mktemp("db"))
    yield db
    db.drop()


@pytest.fixture
def session(database: ScratchDatabase) -> Iterator[Session]:
    connection = database.engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()
    # A commit that escaped the test's transaction would silently couple tests: refuse it.
    with database.engine.connect() as check:
        leaked = check.execute(sa.text("SELECT count(*) FROM scoring_model_version")).scalar_one()
    assert leaked == 0, "a test committed outside its transaction"


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScratchDatabase]:
    """A database of its own, for tests that run real processes (the CLI) against it."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    yield db
    db.drop()
