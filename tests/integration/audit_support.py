"""Going around the audit log's insert-only triggers, as a database superuser could."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session

INSERT_ONLY = ("audit_event", "audit_seal", "audit_checkpoint")
SQLITE_TRIGGERS = [(t, c) for t in INSERT_ONLY for c in ("update", "delete")]


@contextmanager
def as_superuser(session: Session) -> Iterator[None]:
    """What a database superuser can do: go around the insert-only triggers for a moment."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL session_replication_role = replica"))
        yield
        session.execute(sa.text("SET LOCAL session_replication_role = origin"))
    else:
        for table, change in SQLITE_TRIGGERS:
            session.execute(sa.text(f"DROP TRIGGER {table}_no_{change}"))
        yield
        for table, change in SQLITE_TRIGGERS:  # put back for the next test on this database
            session.execute(
                sa.text(
                    f"CREATE TRIGGER {table}_no_{change} BEFORE {change.upper()} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'the audit log is insert-only'); END"
                )
            )
