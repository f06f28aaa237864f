"""Test databases: a fresh SQLite file or a fresh PostgreSQL schema, migrated with Alembic."""

from __future__ import annotations

import os
import uuid
from functools import cache
from pathlib import Path

import sqlalchemy as sa

from citycredit.core.db import make_engine
from citycredit.migrate import upgrade

PG_URL = os.environ.get(
    "CITYCREDIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@cache
def postgresql_unavailable() -> str | None:
    """None when the test server answers, else the reason it cannot be used."""
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"no PostgreSQL server answers at {PG_URL} ({type(exc).__name__})"
    return None


class ScratchDatabase:
    """One migrated database; ``url`` is what a separate process (the CLI) would be given."""

    def __init__(self, kind: str, tmp: Path):
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / ('db-' + uuid.uuid4().hex[:8] + '.sqlite3')}"
            self.schema = None
        else:
            self.schema = "cct_" + uuid.uuid4().hex[:12]
            admin = sa.create_engine(PG_URL)
            with admin.begin() as connection:
                connection.execute(sa.text(f"CREATE SCHEMA {self.schema}"))
            admin.dispose()
            self.url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        self.engine = make_engine(self.url)
        upgrade(self.engine)

    def drop(self) -> None:
        self.engine.dispose()
        if self.schema:
            admin = sa.create_engine(PG_URL)
            with admin.begin() as connection:
                connection.execute(sa.text(f"DROP SCHEMA {self.schema} CASCADE"))
            admin.dispose()
