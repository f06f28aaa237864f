"""Tables of the citizen's page: one-time sign-in challenges and objections to records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, BigIntPK, utcnow

BigFK = BigInteger().with_variant(Integer(), "sqlite")

OBJECTION_STATUSES = ("open", "forwarded", "answered", "upheld", "rejected", "withdrawn")
# Statuses of an objection still being worked (the record's deduction is suspended meanwhile).
PENDING_STATUSES = ("open", "forwarded", "answered")
OBJECTION_STEPS = ("filed", "forwarded", "answered", "upheld", "rejected", "withdrawn")
# What citizens, reviewers and clerks read for each status and step: (Chinese, English).
OBJECTION_STATUS_NAMES = {
    "open": ("待处理", "received"),
    "forwarded": ("数据来源单位核实中", "with the data source"),
    "answered": ("来源单位已答复，待决定", "answered, awaiting decision"),
    "upheld": ("异议成立", "upheld"),
    "rejected": ("异议不成立", "rejected"),
    "withdrawn": ("已撤回", "withdrawn"),
}
OBJECTION_STEP_NAMES = {
    "filed": ("提交异议", "Objection filed"),
    "forwarded": ("转数据来源单位核实", "Sent to the data source"),
    "answered": ("来源单位答复", "The data source answered"),
    "upheld": ("决定：异议成立，记录撤销", "Decided: upheld, record revoked"),
    "rejected": ("决定：异议不成立，记录恢复计分", "Decided: rejected, the record counts again"),
    "withdrawn": ("本人撤回", "Withdrawn by you"),
}


class SignInChallenge(Base):
    """A one-time code sent to a citizen (by the identity provider); only its hash is kept."""

    __tablename__ = "sign_in_challenge"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    # The HMAC pseudonym of the ID number (never the number itself).
    id_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Kept so a first sign-in can register the citizen (age rules need it); not personal on its own.
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class Objection(Base):
    """A citizen's objection to a record (异议). Filing it suspends the record's deduction at once;
    the review workflow (citizen.operations) forwards it to the record's source, records the source's
    answer and decides it by ``deadline`` (working days on the official calendar)."""

    __tablename__ = "objection"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'forwarded', 'answered', 'upheld', 'rejected', 'withdrawn')",
            name="status",
        ),
        # One pending objection per record at a time.
        Index(
            "uq_objection_open_record",
            "record_id",
            unique=True,
            sqlite_where=text("status IN ('open', 'forwarded', 'answered')"),
            postgresql_where=text("status IN ('open', 'forwarded', 'answered')"),
        ),
        Index("ix_objection_status_deadline", "status", "deadline"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    record_id: Mapped[int] = mapped_column(BigFK, ForeignKey("record.id"))
    reason: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # What the record's status was before, so a rejected objection can restore it.
    record_status_before: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    decision_note: Mapped[str | None] = mapped_column(String(1000))
    # The last day to decide it: the filing date + N working days (CITYCREDIT_OBJECTION_DAYS).
    deadline: Mapped[dt.date | None] = mapped_column(Date)
    # The data source's answer, as the reviewer recorded it.
    source_answer: Mapped[str | None] = mapped_column(String(2000))


class ObjectionStep(Base):
    """One step of an objection's history (filed, forwarded, answered, decided, withdrawn)."""

    __tablename__ = "objection_step"
    __table_args__ = (
        CheckConstraint(
            "step IN ('filed', 'forwarded', 'answered', 'upheld', 'rejected', 'withdrawn')",
            name="step",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    objection_id: Mapped[int] = mapped_column(BigFK, ForeignKey("objection.id"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(2000))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CitizenSession(Base):
    """A signed-in phone: the cookie carries only this random id; signing out deletes the row, so a
    copied cookie stops working too."""

    __tablename__ = "citizen_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    started_at: Mapped[dt.datetime]
    seen_at: Mapped[dt.datetime] = mapped_column(index=True)
