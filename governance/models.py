"""The daily governance bulletin and the state of its delivery."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, utcnow

DELIVERY_STATES = ("pending", "delivered", "failed", "pull_only")


class GovernanceBulletin(Base):
    """One day's signed bulletin (a compact JWS by the city's federation key). ``batch_id`` is the
    receiver's idempotency key: the same day always has the same id, however often it is sent."""

    __tablename__ = "governance_bulletin"
    __table_args__ = (
        CheckConstraint(
            "delivery IN ('pending', 'delivered', 'failed', 'pull_only')", name="delivery"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    day: Mapped[dt.date] = mapped_column(Date, unique=True)
    batch_id: Mapped[str] = mapped_column(String(64), unique=True)
    document: Mapped[str] = mapped_column(Text)
    # How many outcomes it carries, for the admin's list: objections, repairs, list changes.
    objections: Mapped[int] = mapped_column(Integer, default=0)
    repairs: Mapped[int] = mapped_column(Integer, default=0)
    list_changes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivery: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None]
