"""The daily governance bulletin and the state of its delivery."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, BigIntPK, JSONDoc, utcnow

BigFK = BigInteger().with_variant(Integer(), "sqlite")

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


LIST_KINDS = ("red", "black")
LIST_STATUSES = ("listed", "lifted")


class ListEntry(Base):
    """One person on a red or black list (红黑名单), imported from the deciding department with the
    decision document. Its scoring effect is an ordinary record (``record_id``) of the list type's
    item, whose state the points engine owns; lifting (移出) revokes it at once. Only the masked name
    is kept: the public list never shows more."""

    __tablename__ = "list_entry"
    __table_args__ = (
        CheckConstraint("kind IN ('red', 'black')", name="kind"),
        CheckConstraint("status IN ('listed', 'lifted')", name="status"),
        UniqueConstraint("list_code", "source_id", "decision_no"),
        Index("ix_list_entry_public", "status", "publish_until"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    list_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    source_id: Mapped[int] = mapped_column(ForeignKey("data_source.id"))
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    record_id: Mapped[int] = mapped_column(BigFK, ForeignKey("record.id"))
    masked_name: Mapped[str] = mapped_column(String(64))
    decision_no: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(500))
    start_on: Mapped[dt.date] = mapped_column(Date)
    # The last day it is shown on the public list (the publication period, NDRC order 58).
    publish_until: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="listed")
    lifted_on: Mapped[dt.date | None] = mapped_column(Date)
    lift_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ListChange(Base):
    """A list entry's history: listed, lifted — what the daily bulletin reports."""

    __tablename__ = "list_change"
    __table_args__ = (CheckConstraint("change IN ('listed', 'lifted')", name="change"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigFK, ForeignKey("list_entry.id"), index=True)
    change: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class MonthlyReport(Base):
    """The stored copy of a month's report (通报): its figures as generated, with their SHA-256, so the
    page can show that they still equal a fresh computation (governance.reports). One per month."""

    __tablename__ = "monthly_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The month's first day.
    month: Mapped[dt.date] = mapped_column(Date, unique=True)
    generated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # "scheduler" or the person ("admin:<username>", "cli:<user>").
    generated_by: Mapped[str] = mapped_column(String(200))
    figures: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    sha256: Mapped[str] = mapped_column(String(64))
