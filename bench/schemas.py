"""A bench's scratch PostgreSQL schema: made fresh (migrated) before a run, dropped after.

(Named ``schemas``, not after anything in the project: a bench's folder comes first on ``sys.path``.)
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from citycredit.core.db import make_engine
from citycredit.migrate import upgrade


def drop_schema(url: str, schema: str) -> None:
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def fresh_schema(url: str, schema: str) -> Engine:
    """Drop and recreate the schema; return an engine whose search path is that schema."""
    drop_schema(url, schema)
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = make_engine(url, schema=schema)
    upgrade(engine)
    return engine
