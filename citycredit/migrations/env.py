"""Alembic environment: the engine comes from the caller (citycredit.migrate), never from a config file."""

from __future__ import annotations

from alembic import context

import citycredit.audit
import citycredit.clients
import citycredit.idempotency
import citycredit.keys  # noqa: F401
import credit_codes.models  # noqa: F401
import points_engine.models  # noqa: F401
import scenarios.models  # noqa: F401
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
