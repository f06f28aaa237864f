"""The one owner of a record's state (issue 11 §0).

A record's state has three parts, kept apart:

- what the **source** asserts (``record.source_status``: active / repaired / revoked), changed only by
  the source (ingest, the records API) — a re-sent row changes it and nothing else;
- the platform's **workflow** (``record.workflow``: none / under_objection), changed only by the
  platform's procedures (an objection filed, decided or withdrawn), and what those procedures
  **decided** (``record.outcome``: none / revoked by an upheld objection / repaired by an approved
  repair, with ``repaired_on``) — a source re-sending the row changes neither;
- **time**: whether a record still counts is ``expires_on`` against the as-of date, computed by the
  rules every time and never written as a status. ``expiry_rescored`` only remembers that the daily
  job has rescored the citizen once the record crossed its expiry date; scoring never reads it.

``record.status`` is kept for the pages and the rules: it is derived from the first two
(:func:`derived_status`) and written only here. Every change of state goes through this module, and
so does the rescoring that follows.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from points_engine import scoring
from points_engine.models import Record, RecordStatus, ScoringItem, ScoringModelVersion


class SourceStatus(enum.StrEnum):
    ACTIVE = "active"
    REPAIRED = "repaired"
    REVOKED = "revoked"


class Workflow(enum.StrEnum):
    NONE = "none"
    UNDER_OBJECTION = "under_objection"


class Outcome(enum.StrEnum):
    NONE = "none"
    REVOKED = "revoked"
    REPAIRED = "repaired"


def derived_status(source_status: str, workflow: str, outcome: str = Outcome.NONE) -> str:
    """What ``record.status`` shows: revoked (by the source or an upheld objection) wins, then an
    open objection, then repaired (by either), then active."""
    if SourceStatus.REVOKED in (source_status, outcome):
        return RecordStatus.REVOKED.value
    if workflow == Workflow.UNDER_OBJECTION:
        return RecordStatus.UNDER_OBJECTION.value
    if SourceStatus.REPAIRED in (source_status, outcome):
        return RecordStatus.REPAIRED.value
    return SourceStatus(source_status).value


def is_repaired(source_status: str, outcome: str) -> bool:
    return SourceStatus.REPAIRED in (source_status, outcome)


def new_record_state(source_status: str, reported_on: dt.date) -> dict[str, Any]:
    """The state columns of a record a source files for the first time. A record filed as repaired
    was repaired, as far as the platform knows, on the day its source reported it."""
    repaired = source_status == SourceStatus.REPAIRED
    return {
        "source_status": SourceStatus(source_status).value,
        "workflow": Workflow.NONE.value,
        "outcome": Outcome.NONE.value,
        "repaired_on": reported_on if repaired else None,
        "status": derived_status(source_status, Workflow.NONE),
        "expiry_rescored": False,
    }


def source_restatement(
    source_status: str,
    reported_on: dt.date,
    *,
    workflow: str,
    outcome: str,
    was: str,
    repaired_on: dt.date | None,
) -> dict[str, Any]:
    """The state columns of a record its source sends again: the source's word changes, the
    platform's workflow and outcome stay; a repair keeps its first date (``was`` is the source's
    previous word). Its dates may have moved, so the expiry job looks at it again."""
    if outcome == Outcome.REPAIRED or (was == SourceStatus.REPAIRED and repaired_on is not None):
        kept = repaired_on
    else:
        kept = None
    if kept is None and source_status == SourceStatus.REPAIRED:
        kept = reported_on
    if not is_repaired(source_status, outcome):
        kept = None
    return {
        "source_status": SourceStatus(source_status).value,
        "status": derived_status(source_status, workflow, outcome),
        "repaired_on": kept,
        "expiry_rescored": False,
    }


def change_record_state(
    session: Session,
    record: Record,
    *,
    as_of: dt.date,
    source_status: str | None = None,
    workflow: str | None = None,
    outcome: str | None = None,
    repaired_on: dt.date | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Change one record's source status, workflow and/or outcome, keep its expiry date true, and
    rescore its citizen at once. A repair (``outcome="repaired"``) names its date."""
    from points_engine.operations import published_model

    if source_status is not None:
        record.source_status = SourceStatus(source_status).value
    if workflow is not None:
        record.workflow = Workflow(workflow).value
    if outcome is not None:
        record.outcome = Outcome(outcome).value
        if outcome == Outcome.REPAIRED:
            if repaired_on is None:
                raise ValueError("a repair names its date")
            record.repaired_on = repaired_on
    record.status = derived_status(record.source_status, record.workflow, record.outcome)
    version, model = published_model(session)
    item = model.items.get(record.item_code)
    if item is not None:
        repaired = is_repaired(record.source_status, record.outcome)
        record.expires_on = item.expires_on(
            record.occurred_on, record.repaired_on if repaired else None
        )
        record.expiry_rescored = record.expires_on <= as_of
    record.updated_at = now or utcnow()
    session.flush()
    # Rebuilds the citizen's stored contributions, consenting or not; only a consenting one is scored.
    scoring.recompute(
        session, model, version, as_of=as_of, scope=scoring.citizen_ids([record.citizen_id])
    )


def rederive_expiry(
    session: Session, version: ScoringModelVersion, *, today: dt.date | None
) -> None:
    """A newly published model: every record's expiry date from its validity. Only dates change;
    the source's word and the workflow stay as they are."""
    # UPDATE … FROM (PostgreSQL, SQLite ≥ 3.33): one pass over the records, no per-row subquery.
    session.execute(
        update(Record)
        .where(ScoringItem.model_version_id == version.id, ScoringItem.code == Record.item_code)
        .values(expires_on=scoring.expiry_sql(Record.__table__.c, ScoringItem.__table__.c)),
        execution_options={"synchronize_session": False},
    )
    # Scores follow with a full recompute; the expiry job then rescores each record once more when
    # it crosses its (new) date.
    crossed = Record.expires_on <= today if today is not None else None
    session.execute(
        update(Record).values(
            expiry_rescored=case((crossed, True), else_=False) if crossed is not None else False
        ),
        execution_options={"synchronize_session": False},
    )


def rescore_expired(session: Session, *, today: dt.date) -> tuple[int, scoring.RunResult | None]:
    """The daily job: citizens with a record that crossed its expiry date since it last ran are
    rescored (the rules leave the record out by its date); no status is written."""
    from points_engine.operations import drain_dirty, mark_dirty_where

    due = (Record.expiry_rescored.is_(False), Record.expires_on <= today)
    mark_dirty_where(session, select(Record.citizen_id).where(*due).distinct())
    crossed = session.execute(  # type: ignore[attr-defined]  # DML results carry rowcount
        update(Record).where(*due).values(expiry_rescored=True),
        execution_options={"synchronize_session": False},
    ).rowcount
    if not crossed:
        return 0, None
    return crossed, drain_dirty(session, as_of=today)
