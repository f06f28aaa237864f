"""The audit log: insert-only rows for every read of personal data and every operator action.

Every domain records through :func:`audit`, so there is one place to make the log tamper-evident later.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from citycredit.core.db import Base, BigIntPK, JSONDoc, utcnow


class AuditEvent(Base):
    """Who did what to whose data, and when. Never updated or deleted."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    # No foreign key: the log must outlive anything it mentions and stay insert-only.
    citizen_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), index=True
    )
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    citizen_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Append one audit event to the current unit of work."""
    event = AuditEvent(actor=actor, action=action, citizen_id=citizen_id, detail=detail)
    session.add(event)
    return event
