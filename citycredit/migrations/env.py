"""Alembic environment: the engine comes from the caller (citycredit.migrate), never from a config file."""

from __future__ import annotations

from alembic import context

import citycredit.audit  # noqa: F401 - registers its table on the metadata
import points_engine.models  # noqa: F401
from citycredit.db import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from citycredit.config import load_settings
    from citycredit.db import make_engine

    engine = make_engine(load_settings().database_url)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
