"""Tables of the citizen's page: one-time sign-in challenges and objections to records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    text,
)
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


# --- credit repair (信用修复, issue 11 §2) -----------------------------------------------------------

# submitted → proposed (one reviewer's recommendation) → approved | refused (a second person confirms);
# a second person who disagrees returns it to submitted; the citizen may withdraw before the end.
REPAIR_STATUSES = ("submitted", "proposed", "approved", "refused", "withdrawn")
REPAIR_PENDING = ("submitted", "proposed")
REPAIR_STEPS = ("submitted", "proposed", "returned", "approved", "refused", "withdrawn")
REPAIR_STATUS_NAMES = {
    "submitted": ("待初审", "awaiting review"),
    "proposed": ("初审完成，待复核", "reviewed, awaiting a second review"),
    "approved": ("修复通过", "approved"),
    "refused": ("未通过", "refused"),
    "withdrawn": ("已撤回", "withdrawn"),
}
REPAIR_STEP_NAMES = {
    "submitted": ("提交修复申请", "Application submitted"),
    "proposed": ("初审意见", "First review"),
    "returned": ("复核退回重审", "Returned by the second review"),
    "approved": ("复核通过：记录已修复", "Approved: the record is repaired"),
    "refused": ("复核确认：不予修复", "Refused"),
    "withdrawn": ("本人撤回", "Withdrawn by you"),
}


class RepairApplication(Base):
    """A citizen's application to repair a record (信用修复). Approval with four eyes repairs the
    record from that day (``points_engine.record_state.change_record_state``) and rescores."""

    __tablename__ = "repair_application"
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'proposed', 'approved', 'refused', 'withdrawn')",
            name="status",
        ),
        CheckConstraint("proposal IS NULL OR proposal IN ('approve', 'refuse')", name="proposal"),
        # One pending application per record at a time.
        Index(
            "uq_repair_pending_record",
            "record_id",
            unique=True,
            sqlite_where=text("status IN ('submitted', 'proposed')"),
            postgresql_where=text("status IN ('submitted', 'proposed')"),
        ),
        Index("ix_repair_application_status", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    record_id: Mapped[int] = mapped_column(BigFK, ForeignKey("record.id"))
    statement: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The first reviewer's recommendation, by whom, and why.
    proposal: Mapped[str | None] = mapped_column(String(8))
    proposed_by: Mapped[str | None] = mapped_column(String(200))
    proposal_note: Mapped[str | None] = mapped_column(String(1000))
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    # The reasons the citizen reads (a refusal always gives them).
    decision_note: Mapped[str | None] = mapped_column(String(1000))
    repaired_on: Mapped[dt.date | None] = mapped_column(Date)


class RepairStep(Base):
    """One step of a repair application's history."""

    __tablename__ = "repair_step"
    __table_args__ = (
        CheckConstraint(
            "step IN ('submitted', 'proposed', 'returned', 'approved', 'refused', 'withdrawn')",
            name="step",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        BigFK, ForeignKey("repair_application.id"), index=True
    )
    step: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(2000))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RepairAttachment(Base):
    """A document the citizen attached (a payment receipt, a court's release): type checked by its
    content, size bounded, kept with its SHA-256. Only the citizen and the reviewers read it, audited."""

    __tablename__ = "repair_attachment"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        BigFK, ForeignKey("repair_application.id"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
