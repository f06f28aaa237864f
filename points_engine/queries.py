"""Reads of the points engine. Every read of one citizen's personal data is audited here.

The CLI, the API and the citizen page call these functions; none of them formats for a screen.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.idnumber import CitizenId, id_hash
from points_engine import scoring
from points_engine.catalogue import current_catalogue
from points_engine.models import (
    Citizen,
    DataSource,
    Record,
    ScoreSnapshot,
    ScoreWork,
    ScoringModelVersion,
)
from points_engine.operations import EngineError, model_of, published_model
from points_engine.rules import RecordFact, dimension_values, evaluate
from points_engine.scoring_model import ScoringModel
from points_engine.tiers import tier_pair


def find_citizen(session: Session, key: bytes, citizen_id: CitizenId) -> Citizen | None:
    return session.scalar(select(Citizen).where(Citizen.id_hash == id_hash(key, citizen_id)))


def citizen_reference(citizen_pk: int) -> str:
    """How operators' lists (what-if movers) name a citizen without an ID number: ``C934``."""
    return f"C{citizen_pk}"


def find_citizen_by_reference(session: Session, reference: str) -> Citizen | None:
    """The citizen a :func:`citizen_reference` names; None for anything else."""
    text = reference.strip().upper()
    digits = text[1:]
    if (
        text[:1] not in ("C", "#")
        or not (digits.isascii() and digits.isdigit())
        or len(digits) > 18
    ):
        return None
    return session.get(Citizen, int(digits))


def current_snapshot(session: Session, citizen_pk: int) -> ScoreSnapshot | None:
    return session.scalar(
        select(ScoreSnapshot).where(
            ScoreSnapshot.citizen_id == citizen_pk, ScoreSnapshot.is_current.is_(True)
        )
    )


# --- explanation ----------------------------------------------------------------------------------


@dataclass
class ExplainedRecord:
    record_id: int
    source_code: str
    source_name_zh: str
    source_name_en: str
    item_code: str
    item_name_zh: str
    item_name_en: str
    dimension: str | None
    catalogue_category: str | None
    legal_basis: str | None
    document_no: str
    occurred_on: dt.date
    expires_on: dt.date | None
    status: str
    base_points: int
    points: int
    counted: bool
    reasons: list[str]
    direct_tier: str | None
    repaired_on: dt.date | None = None
    # False for a record of a catalogue entry no item of the model scores (a licence granted): it is
    # named by the catalogue and shown as "not scored" rather than as 0 points.
    scored: bool = True

    @property
    def last_day(self) -> dt.date | None:
        """The last day the record counts (the day before it expires)."""
        return self.expires_on - dt.timedelta(days=1) if self.expires_on else None


@dataclass
class ExplainedDimension:
    code: str
    name_zh: str
    name_en: str
    value: int


@dataclass
class Explanation:
    consent_given: bool
    model_label: str | None = None  # the engine's identifier (CLI, admin), never shown to citizens
    model_title_zh: str | None = None  # the model's own name, for people
    model_title_en: str | None = None
    model_version: int | None = None
    model_kind: str | None = None
    score: int | None = None
    tier_code: str | None = None
    tier_name_zh: str | None = None
    tier_name_en: str | None = None
    common_tier: int | None = None
    direct_tier: bool = False
    computed_at: dt.datetime | None = None
    as_of: dt.date | None = None
    base_score: int | None = None
    dimensions: list[ExplainedDimension] = field(default_factory=list)
    records: list[ExplainedRecord] = field(default_factory=list)

    def tier_words(self, lang: str) -> str:
        """The local tier and the common level, worded as everywhere else (``tiers.tier_pair``)."""
        return tier_pair(
            self.tier_code, self.tier_name_zh, self.tier_name_en, self.common_tier, lang
        )


def explain(
    session: Session, citizen: Citizen, *, as_of: dt.date, actor: str, purpose: str
) -> Explanation:
    """Why the citizen has their score: every record, the points it gave, and why (PIPL art. 24)."""
    audit(session, actor=actor, action="citizen.explain", citizen_id=citizen.id, purpose=purpose)
    if not citizen.consent_given:
        return Explanation(consent_given=False)
    version, model = published_model(session)
    rows = session.execute(
        select(Record, DataSource.code, DataSource.name_zh, DataSource.name_en)
        .join(DataSource, DataSource.id == Record.source_id)
        .where(Record.citizen_id == citizen.id)
    ).all()
    facts = [
        RecordFact(r.id, r.item_code, r.status, r.occurred_on, r.repaired_on) for r, *_ in rows
    ]
    evaluation = evaluate(model, facts, as_of)
    by_id = {r.id: (r, code, name_zh, name_en) for r, code, name_zh, name_en in rows}
    snapshot = current_snapshot(session, citizen.id)
    explained = []
    published_catalogue = current_catalogue(session)
    entries = published_catalogue.entries if published_catalogue is not None else {}
    for con in evaluation.contributions:
        record, source_code, source_name_zh, source_name_en = by_id[con.record_id]
        item = model.items.get(con.item_code)
        entry = entries.get(con.item_code) if item is None else None
        names = (
            (item.name_zh, item.name_en)
            if item
            else (entry.name_zh, entry.name_en)
            if entry
            else (con.item_code, con.item_code)
        )
        explained.append(
            ExplainedRecord(
                record_id=record.id,
                source_code=source_code,
                source_name_zh=source_name_zh,
                # A department without an English name reads in Chinese rather than blank.
                source_name_en=source_name_en or source_name_zh,
                item_code=con.item_code,
                item_name_zh=names[0],
                item_name_en=names[1],
                dimension=item.dimension if item else None,
                catalogue_category=item.catalogue_category if item else None,
                legal_basis=item.legal_basis if item else entry.legal_basis if entry else None,
                document_no=record.document_no,
                occurred_on=record.occurred_on,
                expires_on=con.expires_on,
                status=record.status,
                base_points=con.base_points,
                points=con.points,
                counted=con.counted,
                reasons=["not_scored_item"] if entry is not None else con.reasons,
                direct_tier=con.direct_tier,
                repaired_on=record.repaired_on,
                scored=item is not None,
            )
        )
    # What counts first, newest first: the order a citizen reads an explanation in.
    explained.sort(key=lambda e: (not e.counted, -e.occurred_on.toordinal(), e.record_id))
    values = dimension_values(model, evaluation.dimensions)
    return Explanation(
        consent_given=True,
        model_label=version.label,
        model_title_zh=model.title_zh,
        model_title_en=model.title_en,
        model_version=version.version,
        model_kind=model.kind,
        score=evaluation.score,
        tier_code=evaluation.tier.code,
        tier_name_zh=evaluation.tier.name_zh,
        tier_name_en=evaluation.tier.name_en,
        common_tier=evaluation.tier.common_tier,
        direct_tier=evaluation.direct_tier,
        computed_at=snapshot.computed_at if snapshot else None,
        as_of=as_of,
        base_score=model.base_score if model.kind == "itemised" else None,
        dimensions=[
            ExplainedDimension(d.code, d.name_zh, d.name_en, values[d.code])
            for d in model.dimensions
        ],
        records=explained,
    )


# --- population views -----------------------------------------------------------------------------


@dataclass
class TierCount:
    tier_code: str
    name_zh: str
    name_en: str
    common_tier: int
    citizens: int


def tier_distribution(session: Session) -> list[TierCount]:
    """How many consenting citizens hold each tier of the published model (aggregate, not personal)."""
    version, model = published_model(session)
    counts = dict(
        session.execute(
            select(ScoreSnapshot.tier_code, func.count())
            .where(
                ScoreSnapshot.is_current.is_(True),
                ScoreSnapshot.model_version_id == version.id,
            )
            .group_by(ScoreSnapshot.tier_code)
        ).all()
    )
    return [
        TierCount(t.code, t.name_zh, t.name_en, t.common_tier, counts.get(t.code, 0))
        for t in model.tiers
    ]


@dataclass
class CityStats:
    citizens: int
    consenting: int
    records: int
    sources: int
    model_label: str | None


def city_stats(session: Session) -> CityStats:
    version = session.scalar(
        select(ScoringModelVersion).where(ScoringModelVersion.status == "published")
    )
    return CityStats(
        citizens=session.scalar(select(func.count()).select_from(Citizen)) or 0,
        consenting=session.scalar(
            select(func.count()).select_from(Citizen).where(Citizen.consent_given.is_(True))
        )
        or 0,
        records=session.scalar(select(func.count()).select_from(Record)) or 0,
        sources=session.scalar(select(func.count()).select_from(DataSource)) or 0,
        model_label=version.label if version else None,
    )


# --- what-if --------------------------------------------------------------------------------------


@dataclass
class Mover:
    citizen_id: int
    old_score: int | None
    new_score: int
    old_tier: str | None
    new_tier: str
    # Tiers gained (negative: lost), on the what-if's basis (tiers, or common levels when the tables
    # differ); None when the citizen has no score now.
    tier_steps: int | None = None
    # The move as a share of each model's own scale (score_min..score_max): 0.05 is 5 % of the
    # range up, whatever the two models' scales are; None when the citizen has no score now.
    scale_change: float | None = None

    @property
    def reference(self) -> str:
        return citizen_reference(self.citizen_id)


@dataclass
class WhatIfReport:
    draft_label: str
    published_label: str
    citizens: int
    # Tiers are compared by code when both versions share a tier table, else on the common scale.
    basis: str
    moved: int
    # (published tier code or None when unscored, draft tier code) -> citizens
    transitions: dict[tuple[str | None, str], int]
    # (published common level or None, draft common level) -> citizens
    common_transitions: dict[tuple[int | None, int], int]
    biggest_movers: list[Mover]


def what_if(
    session: Session,
    draft: ScoringModelVersion,
    *,
    as_of: dt.date,
    actor: str,
    movers: int = 20,
) -> WhatIfReport:
    """Score everyone with ``draft`` without publishing it; compare with their current scores."""
    published, current = published_model(session)
    if draft.id == published.id:
        raise EngineError(f"{draft.label} is the published version; compare a draft with it")
    model: ScoringModel = model_of(draft)
    run_id = scoring.compute_into_work(session, model, draft.id, as_of=as_of)
    w = ScoreWork
    s = ScoreSnapshot
    pairs = session.execute(
        select(s.tier_code, s.common_tier, w.tier_rank, func.count())
        .select_from(w)
        .outerjoin(s, (s.citizen_id == w.citizen_id) & s.is_current.is_(True))
        .where(w.run_id == run_id)
        .group_by(s.tier_code, s.common_tier, w.tier_rank)
    ).all()
    transitions: Counter[tuple[str | None, str]] = Counter()
    common: Counter[tuple[int | None, int]] = Counter()
    for old_code, old_level, new_rank, count in pairs:
        transitions[(old_code, model.tiers[new_rank].code)] += count
        common[(old_level, model.tiers[new_rank].common_tier)] += count
    same_table = [t.code for t in current.tiers] == [t.code for t in model.tiers]
    # Biggest movers: tiers (or common levels) moved first, then the move measured on each model's
    # own scale, so a draft on another scale (0-100 against base 1000) is not ranked by raw points.
    # Citizens without a score now come last: they are the table's "(unscored)" row, not movers.
    if same_table:
        steps = s.tier_rank - w.tier_rank  # rank 0 is the best tier
    else:
        new_level = case(*[(w.tier_rank == t.rank, t.common_tier) for t in model.tiers])
        steps = new_level - s.common_tier
    old_position = (s.score - current.score_min) * (
        1.0 / max(current.score_max - current.score_min, 1)
    )
    new_position = (w.score - model.score_min) * (1.0 / max(model.score_max - model.score_min, 1))
    change = new_position - old_position
    top = session.execute(
        select(w.citizen_id, s.score, w.score, s.tier_code, w.tier_rank, steps, change)
        .select_from(w)
        .outerjoin(s, (s.citizen_id == w.citizen_id) & s.is_current.is_(True))
        .where(w.run_id == run_id)
        .order_by(
            case((s.score.is_(None), 1), else_=0),
            func.abs(steps).desc(),
            func.abs(change).desc(),
            w.citizen_id,
        )
        .limit(movers)
    ).all()
    session.execute(delete(w).where(w.run_id == run_id))
    audit(
        session, actor=actor, action="model.what_if", draft=draft.label, published=published.label
    )
    compared: Counter[Any] = transitions if same_table else common
    return WhatIfReport(
        draft_label=draft.label,
        published_label=published.label,
        citizens=sum(transitions.values()),
        basis="tier" if same_table else "common_tier",
        moved=sum(n for (old, new), n in compared.items() if old != new),
        transitions=dict(transitions),
        common_transitions=dict(common),
        biggest_movers=[
            Mover(
                cid,
                old,
                new,
                old_tier,
                model.tiers[rank].code,
                None if step is None else int(step),
                None if moved is None else float(moved),
            )
            for cid, old, new, old_tier, rank, step, moved in top
        ],
    )
