"""Data quality per source (数据质量): what each department sent, what landed, on time or not.

Ingest writes two things as it goes (:func:`save_tallies`, and a :class:`RejectedRow` per refused row
of a known source); every figure here is read back from them and from the records, so each one can be
reproduced from the data:

- **received**: rows of the source in the period (a re-sent row is received again);
- **accepted** = received - rejected; **inserted** (new records), **corrections** (a record re-sent
  with changed content), **duplicates** (re-sent unchanged);
- **rejected by reason** (the first problem of each refused row, ``points_engine.ingest.REASONS``);
- **qualified rate** (合格率) = accepted / received;
- **on-time rate** (及时率) = new records received by their due day / new records with a due day (the
  due day is occurred_on plus the catalogue entry's deadline in working days, on the official calendar);
- **ID-number error rate** = rows refused for an invalid ID number / received;
- **rejections still open**: refused rows not yet landed by a later row with the same source record id.

The grade (A ≥ 90, B 80–90, C < 80, seed 001) is the score 50 × qualified rate + 50 × on-time rate,
less 10 when the ID-number error rate is above its target. docs/DATA_QUALITY.md says the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import FromClause, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from citycredit.core.periods import add_months
from points_engine.models import (
    DataSource,
    IngestTally,
    QualityTarget,
    Record,
    RejectedRow,
)

# Targets the city sets (seeds 002: 合格率 100%, 及时率 100%, 重错码率 ≤ 0.01%).
DEFAULT_TARGETS: dict[str, float] = {
    "qualified_rate": 1.0,
    "on_time_rate": 1.0,
    "id_error_rate": 0.0001,
}
TARGET_NAMES: dict[str, tuple[str, str]] = {
    "qualified_rate": ("数据合格率", "qualified rate"),
    "on_time_rate": ("报送及时率", "on-time rate"),
    "id_error_rate": ("身份证号码错误率", "ID-number error rate"),
}
# Lower is better for these targets (a ceiling, not a floor).
CEILINGS = frozenset({"id_error_rate"})
GRADES = (("A", 90.0), ("B", 80.0), ("C", 0.0))
# The counts of a :class:`Figures` (what adds up across sources, and what a stored report keeps).
COUNTS = (
    "received",
    "inserted",
    "corrections",
    "duplicates",
    "rejected",
    "id_number_errors",
    "timed",
    "on_time",
    "open_rejections",
)


# --- what ingest writes ---------------------------------------------------------------------------


def save_tallies(
    session: Session, batch_id: int, day: dt.date, tallies: dict[int, list[int]]
) -> None:
    """The batch's running counts per source (received, inserted, updated, unchanged, rejected)."""
    if not tallies:
        return
    counts = ("received", "inserted", "updated", "unchanged", "rejected")
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(IngestTally).values(
        [
            {
                "batch_id": batch_id,
                "source_id": source_id,
                "day": day,
                **dict(zip(counts, n, strict=True)),
            }
            for source_id, n in tallies.items()
        ]
    )
    # One statement per chunk, whatever the number of sources (was a read and a write each).
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["batch_id", "source_id", "day"],
            set_={name: statement.excluded[name] for name in counts},
        )
    )


def resolve_rejections(session: Session, landed: FromClause, *, batch_id: int) -> int:
    """Rows refused earlier whose source record id has now landed (``landed``: rows with a
    ``source_id`` and a ``source_record_id``, e.g. ingest's staging table): resolved by the re-send."""
    return session.execute(  # type: ignore[attr-defined]  # DML results carry rowcount
        update(RejectedRow)
        .where(
            RejectedRow.resolved_at.is_(None),
            RejectedRow.source_id == landed.c.source_id,
            RejectedRow.source_record_id == landed.c.source_record_id,
        )
        .values(resolved_at=utcnow(), resolution="resent", resolved_by_batch_id=batch_id)
    ).rowcount


def absorb_interrupted(session: Session, old_batch_id: int, new_batch_id: int) -> None:
    """A batch that completes an interrupted one re-read the whole input: the rows the interrupted
    one wrote came back unchanged. Count them as what they were (new records, corrections) once, in
    the completing batch, and drop the interrupted batch's tallies and its open rejected rows (the
    rerun refused the same rows again): nothing is received or refused twice."""
    old = {
        t.source_id: t
        for t in session.scalars(select(IngestTally).where(IngestTally.batch_id == old_batch_id))
    }
    for tally in session.scalars(select(IngestTally).where(IngestTally.batch_id == new_batch_id)):
        before = old.get(tally.source_id)
        if before is None:
            continue
        moved = min(before.inserted + before.updated, tally.unchanged)
        tally.unchanged -= moved
        tally.inserted += min(before.inserted, moved)
        tally.updated += moved - min(before.inserted, moved)
    for tally in old.values():
        session.delete(tally)
    session.execute(
        delete(RejectedRow).where(
            RejectedRow.batch_id == old_batch_id, RejectedRow.resolved_at.is_(None)
        )
    )
    session.flush()


def dismiss_rejection(session: Session, row_id: int, *, actor: Actor, reason: str) -> RejectedRow:
    """A refused row that will not be sent again (sent by mistake, a duplicate of another): closed by
    a person, with the reason. A source's clerk closes only their own source's rows."""
    # A row id beyond the column's 63 bits names no row (rather than overflow the driver).
    row = session.get(RejectedRow, row_id) if 0 < row_id < 2**63 else None
    if row is None or not _may_see(actor, row.source_id):
        raise LookupError(f"no rejected row {row_id}")
    if actor.read_only or actor.partner:
        raise NotPermitted("read-only")
    if row.resolved_at is not None:
        raise ValueError("this row is already resolved")
    if not reason.strip():
        raise ValueError("say why the row is closed without a re-send")
    row.resolved_at = utcnow()
    row.resolution = "dismissed"
    row.resolved_by = f"{actor.name}: {reason.strip()}"[:200]
    session.flush()
    audit(session, actor=actor.name, action="quality.dismiss", row=row_id, source=row.source_id)
    return row


def _may_see(actor: Actor, source_id: int) -> bool:
    if actor.partner:
        return False
    return not actor.source_clerk or actor.source_id in (None, source_id)


# --- targets --------------------------------------------------------------------------------------


def targets(session: Session) -> dict[str, float]:
    found = {
        code: value
        for code, value in session.execute(select(QualityTarget.code, QualityTarget.value))
    }
    return {code: found.get(code, default) for code, default in DEFAULT_TARGETS.items()}


def set_target(session: Session, code: str, value: float, *, actor: Actor) -> None:
    if actor.read_only or actor.partner or actor.source_clerk or not actor.may_review():
        raise NotPermitted("targets are set by the credit office")
    if code not in DEFAULT_TARGETS:
        raise ValueError(f"unknown target {code!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError("a rate between 0 and 1 (0% and 100%)")
    row = session.get(QualityTarget, code)
    if row is None:
        row = QualityTarget(code=code, value=value, updated_by=actor.name)
        session.add(row)
    else:
        row.value, row.updated_by, row.updated_at = value, actor.name, utcnow()
    session.flush()
    audit(session, actor=actor.name, action="quality.target", target=code, value=value)


# --- figures --------------------------------------------------------------------------------------


@dataclass
class Figures:
    """One source's (or the city's) figures for a period."""

    source_id: int | None
    code: str
    name_zh: str
    name_en: str
    received: int = 0
    inserted: int = 0
    corrections: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    id_number_errors: int = 0
    timed: int = 0
    on_time: int = 0
    open_rejections: int = 0
    targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))

    @property
    def accepted(self) -> int:
        return self.received - self.rejected

    @property
    def late(self) -> int:
        return self.timed - self.on_time

    @property
    def qualified_rate(self) -> float | None:
        return self.accepted / self.received if self.received else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.timed if self.timed else None

    @property
    def id_error_rate(self) -> float | None:
        return self.id_number_errors / self.received if self.received else None

    def rate(self, code: str) -> float | None:
        value: float | None = getattr(self, code)
        return value

    @property
    def score(self) -> float | None:
        """50 × qualified + 50 × on time (nothing new to time counts as on time), less 10 when the
        ID-number error rate is above target; None when the source sent nothing."""
        qualified = self.qualified_rate
        if qualified is None:
            return None
        on_time = self.on_time_rate if self.on_time_rate is not None else 1.0
        score = 50.0 * qualified + 50.0 * on_time
        if (self.id_error_rate or 0.0) > self.targets["id_error_rate"]:
            score -= 10.0
        return round(max(score, 0.0), 2)

    @property
    def grade(self) -> str | None:
        return grade_of(self.score)

    def missed(self) -> list[str]:
        """The targets this period's figures miss (the dashboard's flags)."""
        out = []
        for code, target in self.targets.items():
            value = self.rate(code)
            if value is None:
                continue
            if value > target if code in CEILINGS else value < target:
                out.append(code)
        return out

    def add(self, other: Figures) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.rejected_by_reason.items():
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + n


def grade_of(score: float | None) -> str | None:
    if score is None:
        return None
    return next(g for g, floor in GRADES if score >= floor)


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    first = month.replace(day=1)
    return first, add_months(first, 1) - dt.timedelta(days=1)


def figures(
    session: Session,
    start: dt.date,
    end: dt.date,
    *,
    source_ids: Iterable[int] | None = None,
) -> list[Figures]:
    """Every source's figures for the city days ``start`` to ``end`` (inclusive), by source code.

    Sources that sent nothing are listed too (with zeros): a department that stops sending is what
    the report must show. ``source_ids`` limits to those sources (a clerk's own).
    """
    only = sorted(set(source_ids)) if source_ids is not None else None
    sources = select(DataSource.id, DataSource.code, DataSource.name_zh, DataSource.name_en)
    if only is not None:
        sources = sources.where(DataSource.id.in_(only))
    goals = targets(session)
    out = {
        s.id: Figures(s.id, s.code, s.name_zh, s.name_en, targets=dict(goals))
        for s in session.execute(sources.order_by(DataSource.code))
    }
    if not out:
        return []
    ids = list(out)

    def scoped(column: Any) -> Any:
        return column.in_(ids) if only is not None else True

    for row in session.execute(
        select(
            IngestTally.source_id,
            func.sum(IngestTally.received),
            func.sum(IngestTally.inserted),
            func.sum(IngestTally.updated),
            func.sum(IngestTally.unchanged),
            func.sum(IngestTally.rejected),
        )
        .where(IngestTally.day.between(start, end), scoped(IngestTally.source_id))
        .group_by(IngestTally.source_id)
    ):
        f = out.get(row[0])
        if f is not None:
            f.received, f.inserted, f.corrections, f.duplicates, f.rejected = (
                int(v or 0) for v in row[1:]
            )
    for source_id, reason, n, id_errors, still_open in session.execute(
        select(
            RejectedRow.source_id,
            RejectedRow.reason,
            func.count(),
            func.sum(case((RejectedRow.id_number_error, 1), else_=0)),
            func.sum(case((RejectedRow.resolved_at.is_(None), 1), else_=0)),
        )
        .where(RejectedRow.received_on.between(start, end), scoped(RejectedRow.source_id))
        .group_by(RejectedRow.source_id, RejectedRow.reason)
    ):
        f = out.get(source_id)
        if f is not None:
            f.rejected_by_reason[reason] = int(n)
            f.id_number_errors += int(id_errors or 0)
            f.open_rejections += int(still_open or 0)
    for source_id, timed, on_time in session.execute(
        select(
            Record.source_id,
            func.count(Record.due_on),
            func.sum(case((Record.received_on <= Record.due_on, 1), else_=0)),
        )
        .where(Record.received_on.between(start, end), scoped(Record.source_id))
        .group_by(Record.source_id)
    ):
        f = out.get(source_id)
        if f is not None:
            f.timed, f.on_time = int(timed or 0), int(on_time or 0)
    return list(out.values())


def month_figures(
    session: Session, month: dt.date, *, source_ids: Iterable[int] | None = None
) -> list[Figures]:
    start, end = month_bounds(month)
    return figures(session, start, end, source_ids=source_ids)


def city_total(per_source: Iterable[Figures], goals: dict[str, float]) -> Figures:
    total = Figures(None, "", "全市", "City", targets=dict(goals))
    for f in per_source:
        total.add(f)
    return total


@dataclass(frozen=True)
class Day:
    day: dt.date
    received: int
    rejected: int
    timed: int
    on_time: int


def daily(
    session: Session, start: dt.date, end: dt.date, *, source_ids: Iterable[int] | None = None
) -> list[Day]:
    """Per city day: rows received and refused, new records timed and on time (the charts)."""
    only = sorted(set(source_ids)) if source_ids is not None else None
    tally = select(
        IngestTally.day, func.sum(IngestTally.received), func.sum(IngestTally.rejected)
    ).where(IngestTally.day.between(start, end))
    timed = select(
        Record.received_on,
        func.count(Record.due_on),
        func.sum(case((Record.received_on <= Record.due_on, 1), else_=0)),
    ).where(Record.received_on.between(start, end))
    if only is not None:
        tally = tally.where(IngestTally.source_id.in_(only))
        timed = timed.where(Record.source_id.in_(only))
    received = {
        d: (int(r or 0), int(x or 0))
        for d, r, x in session.execute(tally.group_by(IngestTally.day))
    }
    times = {
        d: (int(t or 0), int(o or 0))
        for d, t, o in session.execute(timed.group_by(Record.received_on))
    }
    days = []
    day = start
    while day <= end:
        r, x = received.get(day, (0, 0))
        t, o = times.get(day, (0, 0))
        days.append(Day(day, r, x, t, o))
        day += dt.timedelta(days=1)
    return days


def open_rejections(
    session: Session, *, actor: Actor, source_id: int | None = None, limit: int = 200
) -> list[RejectedRow]:
    """Refused rows not yet resolved, oldest first; a clerk sees only their own source's."""
    query = select(RejectedRow).where(RejectedRow.resolved_at.is_(None))
    if actor.source_clerk and actor.source_id is not None:
        query = query.where(RejectedRow.source_id == actor.source_id)
    elif actor.partner:
        return []
    if source_id is not None:
        query = query.where(RejectedRow.source_id == source_id)
    return list(session.scalars(query.order_by(RejectedRow.id).limit(limit)))
