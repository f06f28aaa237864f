"""Credit repair (信用修复, issue 11 §2, NDRC order 58): a citizen applies to repair a record whose
item allows it once its minimum disclosure period has passed; one reviewer (the credit office, or the
record's source) proposes approval or refusal with a reason; a second person confirms it (four eyes).
Approval repairs the record from that day through the record state's owner, which rescores the
citizen at once; refusal gives the citizen its reasons. Every step is audited and kept as a step.

Statuses: submitted → proposed → approved | refused; a second person who disagrees returns it to
submitted; the citizen may withdraw while it is pending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen.models import (
    REPAIR_PENDING,
    RepairApplication,
    RepairAttachment,
    RepairStep,
)
from citizen.queries import actor_of, item_names
from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import audit
from points_engine.models import Citizen, DataSource, Record, RecordStatus
from points_engine.operations import NoPublishedModel, published_model
from points_engine.record_state import Outcome, change_record_state
from points_engine.scoring_model import Item

MAX_ATTACHMENTS = 3
MAX_ATTACHMENT_BYTES = 2 * 1024 * 1024
# What a document may be, told by its first bytes (never by the name or the declared type).
MAGIC = {
    b"%PDF-": "application/pdf",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}
STATEMENT_LIMIT = 2000
NOTE_LIMIT = 1000


class RepairRefused(Exception):
    """The application cannot be made or the step taken; the message is for people, in both languages."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en


class RepairStateError(Exception):
    """This step does not apply to the application in its current status."""

    def __init__(self, application: RepairApplication, step: str):
        super().__init__(
            f"repair application {application.public_id} is {application.status}: cannot {step} it"
        )
        self.status = application.status


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Eligibility:
    """Whether a record may be repaired on application today, and if not, why (both languages)."""

    record: Record
    item: Item | None
    allowed: bool
    # The first day an application is accepted (the end of the minimum disclosure period).
    from_day: dt.date | None
    why_not: tuple[str, str] | None
    # What the repaired record would count, and its last counting day once repaired today.
    repaired_points: int | None = None
    repaired_last_day: dt.date | None = None


def eligibility(session: Session, record: Record, *, today: dt.date) -> Eligibility:
    try:
        _, model = published_model(session)
    except NoPublishedModel:
        return Eligibility(
            record, None, False, None, ("暂无评分模型。", "No scoring model is published.")
        )
    item = model.items.get(record.item_code)
    if item is None or not item.repairable:
        return Eligibility(
            record,
            item,
            False,
            None,
            ("该类记录不适用信用修复。", "Records of this kind cannot be repaired on application."),
        )
    from_day = item.repairable_from(record.occurred_on)
    if record.status != RecordStatus.ACTIVE:
        why = {
            RecordStatus.REPAIRED: ("该记录已修复。", "This record is already repaired."),
            RecordStatus.UNDER_OBJECTION: (
                "该记录正在异议处理中，请待异议办结后再申请。",
                "This record is under objection; apply once the objection is decided.",
            ),
        }.get(
            RecordStatus(record.status),
            ("该记录已撤销，无需修复。", "This record is revoked; there is nothing to repair."),
        )
        return Eligibility(record, item, False, from_day, why)
    if record.expires_on is not None and record.expires_on <= today:
        return Eligibility(
            record,
            item,
            False,
            from_day,
            (
                "该记录已过有效期，不再计分。",
                "This record no longer counts; there is nothing to repair.",
            ),
        )
    if from_day is not None and today < from_day:
        return Eligibility(
            record,
            item,
            False,
            from_day,
            (
                f"最短公示期未满，{from_day} 起可以申请。",
                f"The minimum disclosure period has not passed; you can apply from {from_day}.",
            ),
        )
    pending = session.scalar(
        select(RepairApplication.public_id).where(
            RepairApplication.record_id == record.id,
            RepairApplication.status.in_(REPAIR_PENDING),
        )
    )
    if pending is not None:
        return Eligibility(
            record,
            item,
            False,
            from_day,
            ("该记录已有修复申请在办理中。", "An application for this record is already pending."),
        )
    expires = item.expires_on(record.occurred_on, today)
    return Eligibility(
        record,
        item,
        True,
        from_day,
        None,
        repaired_points=item.repaired_points,
        repaired_last_day=expires - dt.timedelta(days=1),
    )


def repairable_records(session: Session, citizen: Citizen, *, today: dt.date) -> list[Eligibility]:
    """The citizen's records whose items allow repair on application, with whether each may be
    applied for today (and from when, or why not)."""
    try:
        _, model = published_model(session)
    except NoPublishedModel:
        return []
    codes = [code for code, item in model.items.items() if item.repairable]
    if not codes:
        return []
    records = session.scalars(
        select(Record)
        .where(Record.citizen_id == citizen.id, Record.item_code.in_(codes))
        .order_by(Record.occurred_on.desc(), Record.id)
    )
    return [eligibility(session, r, today=today) for r in records]


def _sniff(upload: Upload) -> str:
    for magic, content_type in MAGIC.items():
        if upload.data.startswith(magic):
            return content_type
    raise RepairRefused(
        f"附件“{upload.filename}”不是 PDF、PNG 或 JPEG 文件。",
        f"The attachment “{upload.filename}” is not a PDF, PNG or JPEG file.",
    )


def _clean_filename(name: str) -> str:
    # Only the last path part, printable, bounded: it is shown back, never used as a path.
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:200].strip()
    return base or "attachment"


def apply(
    session: Session,
    citizen: Citizen,
    record: Record,
    statement: str,
    uploads: list[Upload],
    *,
    today: dt.date,
    now: dt.datetime,
) -> RepairApplication:
    """The citizen's application: checked against the item's repair terms; attachments checked by
    content (PDF, PNG, JPEG), size and number before anything is stored."""
    assert record.citizen_id == citizen.id
    verdict = eligibility(session, record, today=today)
    if not verdict.allowed:
        assert verdict.why_not is not None
        raise RepairRefused(*verdict.why_not)
    statement = (statement or "").strip()
    if not 10 <= len(statement) <= STATEMENT_LIMIT:
        raise RepairRefused(
            f"请用 10 到 {STATEMENT_LIMIT} 个字说明已履行的义务或已纠正的行为。",
            f"Describe what you have done to put it right in 10 to {STATEMENT_LIMIT} characters.",
        )
    uploads = [u for u in uploads if u.data or u.filename]
    if len(uploads) > MAX_ATTACHMENTS:
        raise RepairRefused(
            f"最多上传 {MAX_ATTACHMENTS} 个附件。", f"Attach at most {MAX_ATTACHMENTS} files."
        )
    checked = []
    for upload in uploads:
        if not upload.data:
            raise RepairRefused(
                f"附件“{upload.filename}”是空文件。",
                f"The attachment “{upload.filename}” is empty.",
            )
        if len(upload.data) > MAX_ATTACHMENT_BYTES:
            raise RepairRefused(
                f"附件“{upload.filename}”超过 2 MB。",
                f"The attachment “{upload.filename}” is larger than 2 MB.",
            )
        checked.append((upload, _sniff(upload)))
    application = RepairApplication(
        public_id="rep_" + secrets.token_hex(8),
        citizen_id=citizen.id,
        record_id=record.id,
        statement=statement,
        status="submitted",
        created_at=now,
    )
    session.add(application)
    session.flush()
    for upload, content_type in checked:
        session.add(
            RepairAttachment(
                application_id=application.id,
                filename=_clean_filename(upload.filename),
                content_type=content_type,
                size=len(upload.data),
                sha256=hashlib.sha256(upload.data).hexdigest(),
                data=upload.data,
                created_at=now,
            )
        )
    _step(session, application, "submitted", actor_of(citizen), None, now)
    audit(
        session,
        actor=actor_of(citizen),
        action="repair.apply",
        citizen_id=citizen.id,
        application=application.public_id,
        record=record.id,
        attachments=len(checked),
    )
    return application


def _step(
    session: Session,
    application: RepairApplication,
    step: str,
    actor: str,
    note: str | None,
    now: dt.datetime,
) -> None:
    session.add(
        RepairStep(application_id=application.id, step=step, actor=actor, note=note, at=now)
    )
    session.flush()


def _note(value: str, *, required: bool) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise RepairRefused("请填写理由。", "Give the reason.")
        return None
    if len(value) > NOTE_LIMIT:
        raise RepairRefused(
            f"理由不超过 {NOTE_LIMIT} 字。", f"Keep the reason to {NOTE_LIMIT} characters."
        )
    return value


def _record(session: Session, application: RepairApplication) -> Record:
    record = session.get(Record, application.record_id)
    assert record is not None
    return record


def _may_review(actor: Actor, record: Record) -> None:
    """The credit office's reviewers, and the record's own source's clerk, review applications."""
    if actor.read_only or actor.partner:
        raise NotPermitted(f"{actor.name} may not review repair applications")
    if actor.source_clerk and actor.source_id not in (None, record.source_id):
        raise NotPermitted(f"{actor.name} reviews only their own source's records")


def propose(
    session: Session,
    application: RepairApplication,
    actor: Actor,
    approve: bool,
    note: str,
    *,
    now: dt.datetime,
) -> None:
    """The first review: recommend approval or refusal, with a reason (required for a refusal)."""
    record = _record(session, application)
    _may_review(actor, record)
    if application.status != "submitted":
        raise RepairStateError(application, "propose a decision on")
    text = _note(note, required=not approve)
    application.status = "proposed"
    application.proposal = "approve" if approve else "refuse"
    application.proposed_by = actor.name
    application.proposal_note = text
    _step(
        session, application, "proposed", actor.name, f"{application.proposal}: {text or ''}", now
    )
    audit(
        session,
        actor=actor.name,
        action="repair.propose",
        citizen_id=application.citizen_id,
        application=application.public_id,
        proposal=application.proposal,
    )


def confirm(
    session: Session,
    application: RepairApplication,
    actor: Actor,
    agree: bool,
    note: str,
    *,
    now: dt.datetime,
    today: dt.date,
) -> None:
    """The second review, by someone other than the first reviewer (four eyes). Agreeing with an
    approval repairs the record from ``today`` and rescores the citizen; agreeing with a refusal
    ends it with the reasons the citizen reads; disagreeing returns it to a first review."""
    record = _record(session, application)
    _may_review(actor, record)
    if actor.source_clerk:
        raise NotPermitted("the second review is the credit office's")
    if application.status != "proposed":
        raise RepairStateError(application, "confirm")
    if actor.name == application.proposed_by:
        raise NotPermitted("four eyes: the second review is by someone other than the first")
    text = _note(note, required=not agree)
    if not agree:
        application.status = "submitted"
        _step(session, application, "returned", actor.name, text, now)
        audit(
            session,
            actor=actor.name,
            action="repair.return",
            citizen_id=application.citizen_id,
            application=application.public_id,
        )
        application.proposal = application.proposed_by = application.proposal_note = None
        return
    approve = application.proposal == "approve"
    if approve and record.status != RecordStatus.ACTIVE:
        raise RepairRefused(
            "该记录的状态已变化（已修复、撤销或异议中），不能再修复。",
            "The record's state has changed (repaired, revoked or under objection).",
        )
    application.status = "approved" if approve else "refused"
    application.decided_at = now
    application.decided_by = actor.name
    application.decision_note = text or application.proposal_note
    _step(session, application, application.status, actor.name, application.decision_note, now)
    audit(
        session,
        actor=actor.name,
        action=f"repair.{application.status}",
        citizen_id=application.citizen_id,
        application=application.public_id,
        record=record.id,
        first_review=application.proposed_by,
    )
    if approve:
        application.repaired_on = today
        change_record_state(
            session, record, outcome=Outcome.REPAIRED, repaired_on=today, as_of=today, now=now
        )


def withdraw(
    session: Session, citizen: Citizen, application: RepairApplication, *, now: dt.datetime
) -> None:
    if application.citizen_id != citizen.id:
        raise NotPermitted("only the applicant may withdraw an application")
    if application.status not in REPAIR_PENDING:
        raise RepairStateError(application, "withdraw")
    application.status = "withdrawn"
    application.decided_at = now
    _step(session, application, "withdrawn", actor_of(citizen), None, now)
    audit(
        session,
        actor=actor_of(citizen),
        action="repair.withdraw",
        citizen_id=citizen.id,
        application=application.public_id,
    )


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairCase:
    application: RepairApplication
    record: Record
    source: DataSource
    item_name_zh: str
    item_name_en: str
    steps: tuple[RepairStep, ...] = ()
    attachments: tuple[RepairAttachment, ...] = ()

    @property
    def pending(self) -> bool:
        return self.application.status in REPAIR_PENDING


def repair_cases(
    session: Session,
    *,
    citizen: Citizen | None = None,
    public_id: str | None = None,
    pending: bool | None = None,
    source_id: int | None = None,
    with_details: bool = False,
    limit: int = 500,
) -> list[RepairCase]:
    """Applications with their records: pending ones oldest first (first come, first served),
    closed ones latest first."""
    query = (
        select(RepairApplication, Record, DataSource)
        .join(Record, Record.id == RepairApplication.record_id)
        .join(DataSource, DataSource.id == Record.source_id)
    )
    if citizen is not None:
        query = query.where(RepairApplication.citizen_id == citizen.id)
    if public_id is not None:
        query = query.where(RepairApplication.public_id == public_id)
    if pending is not None:
        now_pending = RepairApplication.status.in_(REPAIR_PENDING)
        query = query.where(now_pending if pending else ~now_pending)
    if source_id is not None:
        query = query.where(Record.source_id == source_id)
    if pending:
        query = query.order_by(RepairApplication.created_at, RepairApplication.id)
    else:
        query = query.order_by(RepairApplication.created_at.desc(), RepairApplication.id.desc())
    names = item_names(session)
    cases = []
    for application, record, source in session.execute(query.limit(limit)):
        steps: tuple[RepairStep, ...] = ()
        attachments: tuple[RepairAttachment, ...] = ()
        if with_details:
            steps = tuple(
                session.scalars(
                    select(RepairStep)
                    .where(RepairStep.application_id == application.id)
                    .order_by(RepairStep.at, RepairStep.id)
                )
            )
            attachments = tuple(
                session.scalars(
                    select(RepairAttachment)
                    .where(RepairAttachment.application_id == application.id)
                    .order_by(RepairAttachment.id)
                )
            )
        zh, en = names.get(record.item_code, (record.item_code, record.item_code))
        cases.append(RepairCase(application, record, source, zh, en, steps, attachments))
    return cases
