"""What a citizen does on the page: object to a record (consent lives in points_engine.operations)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy.orm import Session

from citizen.models import Objection
from citizen.queries import actor_of
from citycredit.core.audit import audit
from points_engine.models import Citizen, Record, RecordStatus
from points_engine.record_state import Workflow, change_record_state

OBJECTABLE = (RecordStatus.ACTIVE, RecordStatus.REPAIRED)


class ObjectionRefused(Exception):
    """The objection cannot be filed; the message is for the citizen, in both languages."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en


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
) -> Objection:
    """Object to a record: it is flagged as under objection at once (a deduction stops counting
    until the objection is decided) and the citizen's score is recomputed in the same transaction."""
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
    objection = Objection(
        public_id="obj_" + secrets.token_hex(8),
        citizen_id=citizen.id,
        record_id=record.id,
        reason=reason,
        status="open",
        record_status_before=record.status,
        created_at=now,
    )
    session.add(objection)
    session.flush()
    audit(
        session,
        actor=actor_of(citizen),
        action="objection.file",
        citizen_id=citizen.id,
        objection=objection.public_id,
        record=record.id,
    )
    # The record's state and the rescoring that follows are the points engine's (issue 11 §0).
    change_record_state(session, record, workflow=Workflow.UNDER_OBJECTION, as_of=today, now=now)
    return objection
