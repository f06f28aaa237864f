"""Objections (异议, issue 11 §1): the citizen files and may withdraw; the reviewer forwards the case to
the record's data source, records its answer and decides it by the deadline (working days on the
official calendar). Consent lives in points_engine.operations.

Statuses: open → forwarded → answered → upheld | rejected; withdrawn by the citizen before a decision.
The record's suspension is the points engine's (``record_state.change_record_state``): upheld revokes
the record; rejected or withdrawn ends the workflow, and the citizen is rescored either way.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from citizen.models import PENDING_STATUSES, Objection, ObjectionStep
from citizen.queries import ObjectionCase, actor_of, objection_cases
from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import audit
from citycredit.core.config import Settings
from citycredit.core.workdays import LIBRARY, WorkCalendar, load_calendar
from points_engine.models import Citizen, Record, RecordStatus
from points_engine.record_state import Outcome, Workflow, change_record_state

DEFAULT_OBJECTION_DAYS = 20

OBJECTABLE = (RecordStatus.ACTIVE, RecordStatus.REPAIRED)

log = logging.getLogger(__name__)


class ObjectionRefused(Exception):
    """The objection cannot be filed; the message is for the citizen, in both languages."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en


class ObjectionStateError(Exception):
    """This step does not apply to the objection in its current status (e.g. deciding a withdrawn one)."""

    def __init__(self, objection: Objection, step: str, allowed: tuple[str, ...]):
        super().__init__(
            f"objection {objection.public_id} is {objection.status}: cannot {step} it "
            f"(only when {' or '.join(allowed)})"
        )
        self.status = objection.status
        self.step = step


@dataclass(frozen=True)
class ObjectionTerms:
    """How long a case may take: ``days`` working days on ``calendar`` from the filing date."""

    days: int = DEFAULT_OBJECTION_DAYS
    calendar: WorkCalendar = LIBRARY

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectionTerms:
        return cls(settings.objection_days, load_calendar(settings.workdays_file or None))


def own_record(session: Session, citizen: Citizen, record_id: int) -> Record | None:
    """The record if it is this citizen's; another citizen's record does not exist for them."""
    record = session.get(Record, record_id)
    return record if record is not None and record.citizen_id == citizen.id else None


def file_objection(
    session: Session,
    citizen: Citizen,
    record: Record,
    reason: str,
    *,
    today: dt.date,
    now: dt.datetime,
    terms: ObjectionTerms | None = None,
) -> Objection:
    """Object to a record: it is flagged as under objection at once (a deduction stops counting
    until the objection is decided) and the citizen's score is recomputed in the same transaction.
    The deadline is ``today`` + the terms' working days (a year beyond the calendar refuses)."""
    terms = terms or ObjectionTerms()
    assert record.citizen_id == citizen.id
    reason = reason.strip()
    if record.status == RecordStatus.UNDER_OBJECTION:
        raise ObjectionRefused("该记录已在异议处理中。", "This record is already under objection.")
    if record.status not in OBJECTABLE or (
        record.expires_on is not None and record.expires_on <= today
    ):
        raise ObjectionRefused(
            "该记录已失效或已撤销，无需提出异议。",
            "This record has expired or been revoked; there is nothing to object to.",
        )
    if not 10 <= len(reason) <= 1000:
        raise ObjectionRefused(
            "请用 10 到 1000 个字说明理由。", "Give your reason in 10 to 1000 characters."
        )
    # A deadline reaching into a year whose official schedule is not loaded yet (the State Council
    # publishes it late in the year before) counts Monday to Friday there, and says so: a citizen's
    # objection is never refused for want of a calendar.
    deadline = terms.calendar.add_working_days(today, terms.days, provisional=True)
    provisional = not terms.calendar.covers(today, deadline)
    objection = Objection(
        public_id="obj_" + secrets.token_hex(8),
        citizen_id=citizen.id,
        record_id=record.id,
        reason=reason,
        status="open",
        record_status_before=record.status,
        created_at=now,
        deadline=deadline,
    )
    session.add(objection)
    session.flush()
    note = None
    if provisional:
        note = (
            f"期限暂按周一至周五计算：{deadline.year} 年节假日安排尚未载入 / provisional deadline: "
            f"the {deadline.year} holiday schedule is not loaded, Monday to Friday counted"
        )
        log.warning("objection %s: %s", objection.public_id, note)
    _step(session, objection, "filed", actor_of(citizen), note, now)
    audit(
        session,
        actor=actor_of(citizen),
        action="objection.file",
        citizen_id=citizen.id,
        objection=objection.public_id,
        record=record.id,
        deadline=objection.deadline.isoformat() if objection.deadline else None,
    )
    # The record's state and the rescoring that follows are the points engine's (issue 11 §0).
    change_record_state(session, record, workflow=Workflow.UNDER_OBJECTION, as_of=today, now=now)
    return objection


def _step(
    session: Session,
    objection: Objection,
    step: str,
    actor: str,
    note: str | None,
    now: dt.datetime,
) -> ObjectionStep:
    row = ObjectionStep(objection_id=objection.id, step=step, actor=actor, note=note, at=now)
    session.add(row)
    session.flush()
    return row


def _require(objection: Objection, step: str, allowed: tuple[str, ...]) -> None:
    if objection.status not in allowed:
        raise ObjectionStateError(objection, step, allowed)


def _reviewer(actor: Actor) -> None:
    if not actor.may_work_objections():
        raise NotPermitted(f"{actor.name} may not work objections")


def _text(value: str, what: str, *, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise ValueError(f"{what} is required")
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return value


def _record(session: Session, objection: Objection) -> Record:
    record = session.get(Record, objection.record_id)
    assert record is not None
    return record


def forward(session: Session, objection: Objection, actor: Actor, now: dt.datetime) -> None:
    """The reviewer sends the case to the record's data source."""
    _reviewer(actor)
    _require(objection, "forward", ("open",))
    record = _record(session, objection)
    objection.status = "forwarded"
    _step(session, objection, "forwarded", actor.name, None, now)
    audit(
        session,
        actor=actor.name,
        action="objection.forward",
        citizen_id=objection.citizen_id,
        objection=objection.public_id,
        record=record.id,
        source=record.source_id,
    )


def record_source_answer(
    session: Session, objection: Objection, actor: Actor, answer_text: str, now: dt.datetime
) -> None:
    """The data source's answer to a forwarded case, as the reviewer or that source's clerk (in the
    admin or through the API) enters it."""
    record = _record(session, objection)
    if not actor.may_answer_for(record.source_id):
        raise NotPermitted(f"{actor.name} may not answer for this record's data source")
    _require(objection, "record the source's answer to", ("forwarded",))
    answer = _text(answer_text, "the source's answer", limit=2000)
    objection.status = "answered"
    objection.source_answer = answer
    _step(session, objection, "answered", actor.name, answer, now)
    audit(
        session,
        actor=actor.name,
        action="objection.answer",
        citizen_id=objection.citizen_id,
        objection=objection.public_id,
    )


def decide(
    session: Session,
    objection: Objection,
    actor: Actor,
    upheld: bool,
    reason: str,
    correction: Literal["revoke"] | None = None,
    *,
    now: dt.datetime,
    today: dt.date,
) -> None:
    """Decide an answered case with a reason. Upheld: the record is revoked (``correction`` is
    "revoke", the only correction so far) and the workflow ends; rejected: the suspension ends. The
    citizen is rescored as of ``today`` either way (by the record state's owner)."""
    _reviewer(actor)
    _require(objection, "decide", ("answered",))
    if correction not in (None, "revoke"):
        raise ValueError(f"unknown correction {correction!r} (only 'revoke' for now)")
    note = _text(reason, "the decision's reason", limit=1000)
    record = _record(session, objection)
    outcome = "upheld" if upheld else "rejected"
    objection.status = outcome
    objection.decided_at = now
    objection.decision_note = note
    _step(session, objection, outcome, actor.name, note, now)
    audit(
        session,
        actor=actor.name,
        action=f"objection.{outcome}",
        citizen_id=objection.citizen_id,
        objection=objection.public_id,
        record=record.id,
        correction=(correction or "revoke") if upheld else None,
    )
    if upheld:
        change_record_state(
            session,
            record,
            outcome=Outcome.REVOKED,
            workflow=Workflow.NONE,
            as_of=today,
            now=now,
        )
    else:
        change_record_state(session, record, workflow=Workflow.NONE, as_of=today, now=now)


def withdraw(
    session: Session, citizen: Citizen, objection: Objection, *, now: dt.datetime, today: dt.date
) -> None:
    """The citizen withdraws their own objection before it is decided; the suspension ends."""
    if objection.citizen_id != citizen.id:
        raise NotPermitted("only the citizen who filed an objection may withdraw it")
    _require(objection, "withdraw", PENDING_STATUSES)
    record = _record(session, objection)
    objection.status = "withdrawn"
    objection.decided_at = now
    _step(session, objection, "withdrawn", actor_of(citizen), None, now)
    audit(
        session,
        actor=actor_of(citizen),
        action="objection.withdraw",
        citizen_id=citizen.id,
        objection=objection.public_id,
        record=record.id,
    )
    change_record_state(session, record, workflow=Workflow.NONE, as_of=today, now=now)


def objection_queue(
    session: Session,
    *,
    today: dt.date,
    terms: ObjectionTerms | None = None,
    source_id: int | None = None,
) -> list[ObjectionCase]:
    """Pending objections (of one data source's records, for its clerk), the nearest deadline
    first, flagged ``near`` when at most NEAR_WORKING_DAYS working days are left and ``overdue``
    once the deadline has passed."""
    calendar = (terms or ObjectionTerms()).calendar
    return objection_cases(
        session, today=today, calendar=calendar, pending=True, source_id=source_id
    )
