"""Alembic environment: the engine comes from the caller (citycredit.migrate), never from a config file."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from citycredit.core.db import Base
from citycredit.core.registry import load_models

load_models()

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    # Lazy: only a bare `alembic` run (no engine handed over by citycredit.migrate) reads settings.
    from citycredit.core.config import load_settings
    from citycredit.core.db import make_engine

    engine = make_engine(load_settings().database_url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()


if engine.dialect.name == "sqlite":
    # SQLite alters a table by copying it and dropping the original, which its foreign keys forbid
    # while rows refer to it (Alembic's batch mode). Keys are off for the migration, which is
    # then checked as a whole before it commits; the pragma is ignored inside a transaction, so
    # it is set on the raw connection first.
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                _run(connection)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
else:
    with engine.begin() as connection:
        _run(connection)
