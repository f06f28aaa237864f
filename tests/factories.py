"""Small factories for test data, one per domain concept."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.orm import Session

from citycredit.core.idnumber import make_id_number, parse_id_number
from points_engine import operations, record_state
from points_engine.models import Citizen, DataSource, Record, ScoringModelVersion
from tests.conftest import KEY

_serial = itertools.count(1)


def source(session: Session, code: str = "court") -> DataSource:
    existing = session.query(DataSource).filter_by(code=code).one_or_none()
    return existing or operations.add_source(session, code, f"{code} 单位", f"{code} dept")


def published(session: Session, text: str, filename: str = "model.yaml") -> ScoringModelVersion:
    version = operations.load_model_version(session, text, filename)
    operations.publish_model_version(session, version, actor="test")
    return version


def id_number(n: int | None = None) -> str:
    n = next(_serial) if n is None else n
    return make_id_number("420202", dt.date(1980, 1, 1) + dt.timedelta(days=n // 1000), n % 1000)


def citizen(session: Session, *, consent: bool = True, number: str | None = None) -> Citizen:
    person = operations.get_or_create_citizen(session, KEY, parse_id_number(number or id_number()))
    if consent:
        person.consent_given = True
    session.flush()
    return person


def record(
    session: Session,
    person: Citizen,
    item: str,
    occurred: dt.date | str,
    *,
    status: str = "active",
    src: DataSource | None = None,
) -> Record:
    day = dt.date.fromisoformat(occurred) if isinstance(occurred, str) else occurred
    row = Record(
        source=src or source(session),
        source_record_id=f"r-{next(_serial)}",
        citizen_id=person.id,
        item_code=item,
        document_no="测试〔2026〕1号",
        occurred_on=day,
        reported_on=day,
        # Through the state's owner: "under_objection" is the workflow, "expired" (a legacy status)
        # is only time, so the source's word is active.
        **record_state.new_record_state(
            status if status in ("active", "repaired", "revoked") else "active", day
        ),
    )
    try:
        _, model = operations.published_model(session)
    except operations.NoPublishedModel:
        model = None
    if model is not None and item in model.items:  # as the ingest does
        row.expires_on = model.items[item].expires_on(day, row.repaired_on)
    if status == "under_objection":
        row.workflow = record_state.Workflow.UNDER_OBJECTION
        row.status = record_state.derived_status(row.source_status, row.workflow)
    session.add(row)
    session.flush()
    # As the ingest does: whoever writes a record marks its citizen for rescoring.
    operations.mark_dirty(session, [person.id])
    return row
