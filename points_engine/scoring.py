"""Set-based scoring: the rules of ``points_engine.rules`` as SQL, for one citizen or millions.

The database does the work: records are joined to their model version's items, the ordered rules
(overlap, repeat) run as window functions over the records that can still matter, yearly caps apply
to per-year totals, and the results are aggregated per dimension and per citizen into
``score_work``. Applying a run writes a new snapshot only for citizens whose result changed. The
same statements serve the incremental path (a few citizens after an ingest), the full recompute
(citizen-id ranges, with progress) and what-if runs against a draft model.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    BigInteger,
    Select,
    Table,
    Text,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from citycredit.core import events
from citycredit.core.db import JSONDoc, add_days, add_period, json_object_agg, utcnow
from points_engine.models import (
    Citizen,
    RecordContribution,
    RecordStatus,
    ScoreSnapshot,
    ScoreWork,
    ScoringItem,
    ScoringModelVersion,
)
from points_engine.models import Record as RecordRow
from points_engine.rules import COUNTING_STATUSES, HISTORY_STATUSES
from points_engine.scoring_model import ScoringModel

# A scope narrows a run to some citizens, given the column that holds the citizen id.
Scope = Callable[[Any], ColumnElement[bool]]

_r = cast_type(Table, RecordRow.__table__)
_i = cast_type(Table, ScoringItem.__table__)
_c = cast_type(Table, Citizen.__table__)
_w = cast_type(Table, ScoreWork.__table__)
_s = cast_type(Table, ScoreSnapshot.__table__)
_rc = cast_type(Table, RecordContribution.__table__)


def everyone(_column: Any) -> ColumnElement[bool]:
    return literal(True)


def citizen_ids(ids: Iterable[int]) -> Scope:
    frozen = sorted(set(ids))
    return lambda column: column.in_(frozen)


def id_range(low: int, high: int) -> Scope:
    return lambda column: column.between(low, high)


def _clamp(value: Any, low: Any, high: Any) -> Any:
    """Portable clamp (GREATEST/LEAST are not in SQLite); a None bound means unbounded."""
    whens = []
    if high is not None:
        whens.append((value > high, high))
    if low is not None:
        whens.append((value < low, low))
    return case(*whens, else_=value) if whens else value


def expiry_sql(r: Any, i: Any) -> ColumnElement[dt.date]:
    """A record's expiry date in SQL, as ``Item.expires_on`` computes it: its validity (months,
    then days) from ``occurred_on``; for a repaired record with a repaired validity, that from
    ``repaired_on`` when it ends sooner. ``r``/``i``: columns of the record and of its scoring item."""
    own = case(
        (i.validity_months == 0, add_days(r.occurred_on, i.validity_days)),
        else_=add_period(r.occurred_on, i.validity_months, i.validity_days),
    )
    repaired = add_period(r.repaired_on, i.repaired_validity_months, i.repaired_validity_days)
    return case(
        (
            and_(r.repaired_on.is_not(None), i.repaired_validity_months.is_not(None)),
            case((repaired < own, repaired), else_=own),
        ),
        else_=own,
    )


def _counted(model_version_id: int, scope: Scope, as_of: dt.date | None) -> Subquery:
    """The records that count, with their points after the ordered rules (overlap, repeat) and their
    expiry date — not yet filtered by it, so the rows hold whatever the day.

    ``as_of`` only leaves out records too old to count or to change one that does (a what-if run
    reads the records directly); ``None`` keeps every record (the stored contributions)."""
    # How many days after it occurred a record can still change a score: its validity, twice that
    # when a repeat looks back at it, and the longest of its overlap group (one act is kept whole).
    reach = (_i.c.validity_days + 31 * _i.c.validity_months) * case(
        (_i.c.repeat_multiplier.is_(None), 1), else_=2
    )
    items = (
        select(
            _i.c.id,
            _i.c.code,
            _i.c.dimension,
            _i.c.points,
            _i.c.repaired_points,
            _i.c.validity_days,
            _i.c.validity_months,
            _i.c.repaired_validity_months,
            _i.c.repaired_validity_days,
            _i.c.yearly_cap,
            _i.c.direct_tier_rank,
            _i.c.overlap_group,
            _i.c.repeat_multiplier,
            case(
                (_i.c.overlap_group.is_(None), reach),
                else_=func.max(reach).over(partition_by=_i.c.overlap_group),
            ).label("horizon"),
        )
        .where(_i.c.model_version_id == model_version_id)
        .subquery("items")
    )
    i = items.c
    expires = expiry_sql(_r.c, i)
    repaired = _r.c.status == RecordStatus.REPAIRED.value
    points = case((repaired, i.repaired_points), else_=i.points)
    in_reach: list[ColumnElement[bool]] = []
    if as_of is not None:
        # A repaired record may count from its repair date: never left out by its age.
        in_reach.append(
            or_(add_days(_r.c.occurred_on, i.horizon) > as_of, _r.c.repaired_on.is_not(None))
        )

    # Only records of items with an overlap group or a repeat multiplier interact: they alone go
    # through the sorts and windows; every other record counts as it is (a yearly cap is a sum).
    interacts = or_(i.overlap_group.is_not(None), i.repeat_multiplier.is_not(None))
    records = _r.join(items, i.code == _r.c.item_code)
    wanted = (
        scope(_r.c.citizen_id),
        _r.c.status.in_([s.value for s in HISTORY_STATUSES]),
        *in_reach,
    )
    direct_rank = case((repaired, None), else_=i.direct_tier_rank)
    history = (
        select(
            _r.c.id.label("record_id"),
            _r.c.citizen_id,
            _r.c.status,
            _r.c.occurred_on,
            extract("year", _r.c.occurred_on).label("year"),
            i.id.label("item_id"),
            i.dimension,
            i.overlap_group,
            i.repeat_multiplier,
            i.yearly_cap,
            expires.label("expires_on"),
            points.label("points"),
            direct_rank.label("direct_rank"),
            func.row_number()
            .over(
                partition_by=(_r.c.citizen_id, i.overlap_group, _r.c.occurred_on),
                order_by=(func.abs(points).desc(), _r.c.id),
            )
            .label("act_rank"),
        )
        .select_from(records)
        .where(*wanted, interacts)
        .subquery("history")
    )
    h = history.c
    prior_expiry = func.lag(h.expires_on).over(
        partition_by=(h.citizen_id, h.dimension, h.item_id),
        order_by=(h.year, h.occurred_on, h.record_id),
    )
    ordered = select(
        h.record_id,
        h.citizen_id,
        h.dimension,
        h.item_id,
        h.year,
        h.status,
        h.yearly_cap,
        h.expires_on,
        h.direct_rank,
        h.points.label("base_points"),
        case(
            (
                and_(h.repeat_multiplier.is_not(None), prior_expiry > h.occurred_on),
                h.points * h.repeat_multiplier,
            ),
            else_=h.points,
        ).label("points"),
    ).where(or_(h.overlap_group.is_(None), h.act_rank == 1))
    alone = (
        select(
            _r.c.id.label("record_id"),
            _r.c.citizen_id,
            i.dimension,
            i.id.label("item_id"),
            extract("year", _r.c.occurred_on).label("year"),
            _r.c.status,
            i.yearly_cap,
            expires.label("expires_on"),
            direct_rank.label("direct_rank"),
            points.label("base_points"),
            points.label("points"),
        )
        .select_from(records)
        .where(*wanted, ~interacts)
    )
    k = union_all(ordered, alone).subquery("repeats").c
    # A record under objection keeps counting only when it helps the citizen.
    return (
        select(
            k.record_id,
            k.citizen_id,
            k.dimension,
            k.item_id,
            k.year,
            k.yearly_cap,
            k.expires_on,
            k.direct_rank,
            k.points,
        )
        .where(
            k.status.in_([s.value for s in COUNTING_STATUSES]),
            or_(k.status != RecordStatus.UNDER_OBJECTION.value, k.base_points >= 0),
        )
        .subquery("counted")
    )


def _stored_contributions(model_version_id: int, scope: Scope) -> Subquery:
    """The stored contributions of the citizens in ``scope``, in the shape of :func:`_counted`."""
    return (
        select(
            _rc.c.record_id,
            _rc.c.citizen_id,
            _i.c.dimension,
            _rc.c.item_id,
            _rc.c.year,
            _i.c.yearly_cap,
            _rc.c.expires_on,
            _rc.c.direct_rank,
            _rc.c.points,
        )
        .select_from(_rc.join(_i, _i.c.id == _rc.c.item_id))
        .where(_i.c.model_version_id == model_version_id, scope(_rc.c.citizen_id))
        .subquery("counted")
    )


def refresh_contributions(session: Session, model_version_id: int, scope: Scope) -> None:
    """Rebuild the stored contributions of every citizen in ``scope`` from their records."""
    session.execute(delete(_rc).where(scope(_rc.c.citizen_id)))
    k = _counted(model_version_id, scope, None).c
    session.execute(
        insert(_rc).from_select(
            ["citizen_id", "record_id", "item_id", "year", "points", "expires_on", "direct_rank"],
            select(
                k.citizen_id, k.record_id, k.item_id, k.year, k.points, k.expires_on, k.direct_rank
            ),
        )
    )


def _dimension_totals(counted: Subquery, as_of: dt.date) -> Select[Any]:
    """(citizen_id, dimension, total, direct_rank): counted points per dimension of each citizen."""
    k = counted.c
    per_year = (
        select(
            k.citizen_id,
            k.dimension,
            cast(func.sum(k.points), BigInteger).label("total"),
            func.max(k.yearly_cap).label("cap"),
            func.max(k.direct_rank).label("direct_rank"),
        )
        .where(k.expires_on > as_of)
        .group_by(k.citizen_id, k.dimension, k.item_id, k.year)
        .subquery("per_year")
    )
    y = per_year.c
    # The yearly cap clamps a running sum record by record; the clamped steps add up to the clamp
    # of the year's total (caps are at least 1, so the clamp of zero is zero): an aggregate suffices.
    capped = case((y.cap.is_(None), y.total), else_=_clamp(y.total, -y.cap, y.cap))
    return select(
        y.citizen_id,
        y.dimension,
        # PostgreSQL's SUM(bigint) is numeric, which would change division: cast back to integers.
        cast(func.sum(capped), BigInteger).label("total"),
        func.max(y.direct_rank).label("direct_rank"),
    ).group_by(y.citizen_id, y.dimension)


def _scoring_select(
    model: ScoringModel,
    model_version_id: int,
    as_of: dt.date,
    scope: Scope,
    run_id: str,
    *,
    stored: bool,
) -> Select[Any]:
    counted = (
        _stored_contributions(model_version_id, scope)
        if stored
        else _counted(model_version_id, scope, as_of)
    )
    d = _dimension_totals(counted, as_of).subquery("per_dim").c
    value: ColumnElement[Any]
    adjustment: ColumnElement[Any]
    if model.kind == "itemised":
        value = case(
            *[
                (d.dimension == dim.code, _clamp(d.total, dim.cap_min, dim.cap_max))
                for dim in model.dimensions
            ],
            else_=d.total,
        )
        adjustment = value
        constant: Any = literal(model.base_score)
    else:
        top = model.dimension_max
        value = case(
            *[
                (d.dimension == dim.code, _clamp(dim.base + d.total, 0, top))
                for dim in model.dimensions
            ],
            else_=0,
        )
        weight_of = case(
            *[(d.dimension == dim.code, dim.weight) for dim in model.dimensions], else_=0
        )
        base_of = case(*[(d.dimension == dim.code, dim.base) for dim in model.dimensions], else_=0)
        adjustment = weight_of * (value - base_of)
        constant = literal(sum(dim.weight * dim.base for dim in model.dimensions))
    per_citizen = (
        select(
            d.citizen_id,
            cast(func.sum(adjustment), BigInteger).label("adjustment"),
            json_object_agg(d.dimension, value).label("breakdown"),
            func.max(d.direct_rank).label("direct_rank"),
        )
        .group_by(d.citizen_id)
        .subquery("per_citizen")
    )
    p = per_citizen.c
    raw = constant + func.coalesce(p.adjustment, 0)
    if model.kind == "itemised":
        score: Any = _clamp(raw, model.score_min, model.score_max)
    else:
        top = model.dimension_max
        # Integer round-half-up of raw * max / (100 * top): identical in SQL and Python.
        score = (raw * model.score_max + 50 * top) // (100 * top)
    tiers = model.tiers
    score_rank = case(
        *[(score >= tier.min_score, tier.rank) for tier in tiers[:-1]], else_=tiers[-1].rank
    )
    return (
        select(
            literal(run_id).label("run_id"),
            _c.c.id.label("citizen_id"),
            score.label("score"),
            # A direct tier caps the tier: the worse (higher) rank of the two.
            case(
                (and_(p.direct_rank.is_not(None), p.direct_rank > score_rank), p.direct_rank),
                else_=score_rank,
            ).label("tier_rank"),
            p.direct_rank.is_not(None).label("direct_tier"),
            func.coalesce(p.breakdown, literal({}, type_=JSONDoc)).label("breakdown"),
        )
        .select_from(_c.outerjoin(per_citizen, p.citizen_id == _c.c.id))
        .where(_c.c.consent_given.is_(True), scope(_c.c.id))
    )


@dataclass
class RunResult:
    run_id: str
    citizens: int
    changed: int


def compute_into_work(
    session: Session,
    model: ScoringModel,
    model_version_id: int,
    *,
    as_of: dt.date,
    scope: Scope = everyone,
    run_id: str | None = None,
    stored: bool = False,
    changed_only: bool = False,
) -> str:
    """Score every consenting citizen in ``scope`` into ``score_work`` rows of a (new) run id.

    ``stored``: sum the stored contributions (the published model's, kept current) instead of
    reading the records (any model version, e.g. a what-if run against a draft). ``changed_only``:
    write only the citizens whose result differs from their current snapshot (or who have none)."""
    run_id = run_id or str(uuid.uuid4())
    query = _scoring_select(model, model_version_id, as_of, scope, run_id, stored=stored)
    if changed_only:
        scored = query.subquery("scored")
        q = scored.c
        query = (
            select(q.run_id, q.citizen_id, q.score, q.tier_rank, q.direct_tier, q.breakdown)
            .select_from(
                scored.outerjoin(
                    _s,
                    and_(
                        _s.c.citizen_id == q.citizen_id,
                        _s.c.is_current.is_(True),
                        scope(_s.c.citizen_id),
                    ),
                )
            )
            .where(or_(_s.c.id.is_(None), _differs(_s.c, q, model_version_id)))
        )
    session.execute(
        insert(_w).from_select(
            ["run_id", "citizen_id", "score", "tier_rank", "direct_tier", "breakdown"], query
        )
    )
    return run_id


def _differs(snapshot: Any, result: Any, model_version_id: int) -> ColumnElement[bool]:
    """Whether a current snapshot's columns differ from a run's result for the same citizen."""
    return or_(
        snapshot.model_version_id != model_version_id,
        snapshot.score != result.score,
        snapshot.tier_rank != result.tier_rank,
        snapshot.direct_tier != result.direct_tier,
        type_coerce(snapshot.breakdown, Text).is_distinct_from(type_coerce(result.breakdown, Text)),
    )


def apply_work(
    session: Session,
    model: ScoringModel,
    model_version_id: int,
    run_id: str,
    scope: Scope = everyone,
) -> int:
    """Turn a run's work rows into snapshots where the result changed, then drop the work rows;
    returns how many snapshots were written.

    ``scope`` (the run's) narrows the snapshots compared with to the run's citizens, so a chunk of a
    full recompute reads its own snapshots, not the city's. No statement anti-joins the snapshots
    it writes: a changed snapshot is retired by a join, and the new ones are inserted against the
    unique index of current snapshots (an index probe per row, whatever the statistics say).
    """
    now = utcnow()
    w = _w.c
    differs = _differs(_s.c, w, model_version_id)
    session.execute(
        update(_s)
        .where(
            w.run_id == run_id,
            _s.c.citizen_id == w.citizen_id,
            scope(_s.c.citizen_id),
            _s.c.is_current.is_(True),
            differs,
        )
        .values(is_current=False),
        execution_options={"synchronize_session": False},
    )
    tier_code = case(*[(w.tier_rank == t.rank, t.code) for t in model.tiers])
    common = case(*[(w.tier_rank == t.rank, t.common_tier) for t in model.tiers])
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    written = session.scalars(
        module.insert(_s)
        .from_select(
            [
                "citizen_id",
                "model_version_id",
                "score",
                "tier_code",
                "tier_rank",
                "common_tier",
                "direct_tier",
                "breakdown",
                "computed_at",
                "is_current",
            ],
            select(
                w.citizen_id,
                literal(model_version_id),
                w.score,
                tier_code,
                w.tier_rank,
                common,
                w.direct_tier,
                w.breakdown,
                literal(now, type_=ScoreSnapshot.computed_at.type),
                literal(True),
            ).where(w.run_id == run_id),
        )
        .on_conflict_do_nothing(index_elements=["citizen_id"], index_where=text("is_current"))
        .returning(_s.c.citizen_id)
    ).all()
    session.execute(delete(_w).where(w.run_id == run_id))
    if written:
        # In this transaction: e.g. the citizens' linked partners are told of a new level (push).
        events.announce(session, "scores.written", citizen_ids=list(written))
    return len(written)


def recompute(
    session: Session,
    model: ScoringModel,
    version: ScoringModelVersion,
    *,
    as_of: dt.date,
    scope: Scope = everyone,
) -> RunResult:
    """Rebuild the contributions of the citizens in ``scope``, score them and store what changed (the
    incremental path; ``version`` must be the published one)."""
    refresh_contributions(session, version.id, scope)
    return score_stored(session, model, version.id, as_of=as_of, scope=scope)


def score_stored(
    session: Session,
    model: ScoringModel,
    model_version_id: int,
    *,
    as_of: dt.date,
    scope: Scope = everyone,
) -> RunResult:
    """Score the citizens in ``scope`` from their stored contributions and store what changed.

    Only the changed results are written to ``score_work`` (an unchanged city writes nothing)."""
    run_id = compute_into_work(
        session, model, model_version_id, as_of=as_of, scope=scope, stored=True, changed_only=True
    )
    changed = apply_work(session, model, model_version_id, run_id, scope)
    scored = session.execute(
        select(func.count()).select_from(_c).where(_c.c.consent_given.is_(True), scope(_c.c.id))
    ).scalar_one()
    return RunResult(run_id, scored, changed)


def citizen_id_ranges(session: Session, chunk_size: int) -> Iterator[tuple[int, int]]:
    """Consecutive id ranges of consenting citizens, about ``chunk_size`` citizens each."""
    low, high = session.execute(
        select(func.min(_c.c.id), func.max(_c.c.id)).where(_c.c.consent_given.is_(True))
    ).one()
    if low is None:
        return
    start = low
    while start <= high:
        yield start, start + chunk_size - 1
        start += chunk_size
