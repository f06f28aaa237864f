"""The scenario registry: operators, their venues, and benefit scenarios with immutable published versions.

A scenario is the lasting identity of a benefit (its code, operator, category and status); what it
grants and to whom lives in numbered :class:`ScenarioVersion` rows. A published version is never edited:
editing a published scenario opens a new pending version that goes through review, and verifications
and redemptions keep pointing at the version they used. At most one version is live and at most one is
pending per scenario (partial unique indexes).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, JSONDoc, utcnow

# code -> (信易+ brand, Chinese name, English name). The catalogue and the admin's filters use these.
CATEGORIES: dict[str, tuple[str, str, str]] = {
    "library": ("信易阅", "图书借阅", "Libraries"),
    "transport": ("信易行", "公共交通", "Transport"),
    "rental": ("信易租", "共享租赁", "Rentals"),
    "tourism": ("信易游", "文化旅游", "Tourism"),
    "healthcare": ("信易医", "医疗服务", "Healthcare"),
    "lodging": ("信易住", "酒店住宿", "Lodging"),
    "parking": ("信易停", "停车服务", "Parking"),
    "government": ("信易批", "政务绿色通道", "Government services"),
    "sports": ("信易健", "体育健身", "Sports"),
}

SCENARIO_STATUSES = ("draft", "in_review", "published", "suspended", "retired")
VERSION_STATES = ("draft", "in_review", "published", "superseded", "withdrawn")
PENDING_STATES = ("draft", "in_review")


def _in(column: str, values: tuple[str, ...] | list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Operator(Base):
    """Who runs benefits: a library bureau, a bus company, a rental firm, the city's credit office."""

    __tablename__ = "operator"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Venue(Base):
    """A place that honours benefits (a library branch, a bus hub); its desks get API clients."""

    __tablename__ = "venue"
    __table_args__ = (CheckConstraint("status IN ('active', 'closed')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    address_zh: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Scenario(Base):
    """A benefit's identity and lifecycle: draft → in review → published → suspended → retired."""

    __tablename__ = "scenario"
    __table_args__ = (CheckConstraint(_in("status", SCENARIO_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"), index=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # Redemptions so far, across versions; a total quota is enforced by a conditional UPDATE on it.
    redeemed_total: Mapped[int] = mapped_column(BigInteger, default=0)
    # A suspension by the city (not the operator) can be lifted only by the city.
    suspended_by_city: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScenarioVersion(Base):
    """What a scenario grants, to whom, how often and when. Immutable once submitted for review."""

    __tablename__ = "scenario_version"
    __table_args__ = (
        CheckConstraint(_in("state", VERSION_STATES), name="state"),
        CheckConstraint("quota_per_day IS NULL OR quota_per_day >= 1", name="quota_per_day"),
        CheckConstraint("quota_per_month IS NULL OR quota_per_month >= 1", name="quota_per_month"),
        CheckConstraint("quota_total IS NULL OR quota_total >= 1", name="quota_total"),
        CheckConstraint(
            "valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from",
            name="validity",
        ),
        Index("uq_scenario_version_number", "scenario_id", "number", unique=True),
        Index(
            "uq_scenario_version_live",
            "scenario_id",
            unique=True,
            sqlite_where=text("state = 'published'"),
            postgresql_where=text("state = 'published'"),
        ),
        Index(
            "uq_scenario_version_pending",
            "scenario_id",
            unique=True,
            sqlite_where=text("state IN ('draft', 'in_review')"),
            postgresql_where=text("state IN ('draft', 'in_review')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenario.id"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    benefit_zh: Mapped[str] = mapped_column(String(500))
    benefit_en: Mapped[str] = mapped_column(String(500))
    eligibility: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    quota_per_day: Mapped[int | None] = mapped_column(Integer)
    quota_per_month: Mapped[int | None] = mapped_column(Integer)
    quota_total: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    # Whether visitors from partner cities (the federation) may use it; part of the frozen version.
    open_to_visitors: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[dt.datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[dt.datetime | None]
    review_note: Mapped[str | None] = mapped_column(String(500))
    # The last person who changed the content; neither they nor its creator may publish it.
    edited_by: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[dt.datetime | None]


class ScenarioVenue(Base):
    """The venues that honour a scenario; a venue's API clients may verify only these."""

    __tablename__ = "scenario_venue"

    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenario.id"), primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venue.id"), primary_key=True, index=True)
