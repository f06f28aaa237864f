"""Scenario tables. Eligibility here is a minimum tier on the common scale; issue 4 generalises it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.db import Base, utcnow


class Scenario(Base):
    """A benefit a venue grants: deposit-free borrowing, a fare discount, a free rental…"""

    __tablename__ = "scenario"
    __table_args__ = (
        CheckConstraint("min_common_tier BETWEEN 1 AND 5", name="min_common_tier"),
        CheckConstraint("daily_quota_per_citizen >= 1", name="daily_quota"),
        CheckConstraint("status IN ('published', 'suspended', 'retired')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    benefit_zh: Mapped[str] = mapped_column(String(500))
    benefit_en: Mapped[str] = mapped_column(String(500))
    min_common_tier: Mapped[int] = mapped_column(Integer)
    daily_quota_per_citizen: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="published")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
