"""The scoring rules, evaluated in Python for one citizen, with the reason behind every point.

This is the reference semantics. ``points_engine.scoring`` runs the same rules set-based in SQL for
many citizens at once; the tests hold the two to the same result on whole synthetic cities.

Order of the rules (docs/SCORING_MODELS.md explains each):

1. A record counts when its status is active, repaired or under objection and it has not expired
   (``Item.expires_on > as_of``: its validity in calendar months, then days, from ``occurred_on``).
   A deduction under objection is suspended until the objection is decided; an award under objection
   keeps counting (the rules are incentive-only). A repaired record counts its item's
   ``repaired_points`` (0 by default), no longer sets a direct tier, and — when the item gives a
   repaired validity — counts for that long from ``repaired_on``, never beyond its own validity.
2. Items that interact (overlap group, repeat multiplier, yearly cap) are ordered by
   (occurred_on, record id), expired records included so that history is seen:
   a. overlap: records of one overlap group on the same day are one act; only the largest |points| counts;
   b. repeat: a record whose previous record of the same item was still valid when it occurred counts ×N;
   c. yearly cap: an item's points per calendar year of occurrence are capped at ±cap, in order.
3. Dimension totals are capped (itemised) or bounded to 0..dimension_max (weighted).
4. The score: itemised = base + Σ dimensions, bounded to the score range; weighted = Σ weight × dimension
   score, scaled to the range and rounded half up — in integers, so SQL and Python agree exactly.
5. The tier comes from the score, unless a counting record sets a direct tier: the worst such tier wins.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from points_engine.models import RecordStatus
from points_engine.scoring_model import Item, ScoringModel, Tier

# ``expired`` is the expiry job's cache of a date; the date under the model being evaluated decides, so
# a model with longer validity (published or in a what-if) brings such records back.
COUNTING_STATUSES = (
    RecordStatus.ACTIVE,
    RecordStatus.REPAIRED,
    RecordStatus.UNDER_OBJECTION,
    RecordStatus.EXPIRED,
)
HISTORY_STATUSES = COUNTING_STATUSES


@dataclass(frozen=True)
class RecordFact:
    """What the rules need of one record."""

    record_id: int
    item_code: str
    status: str
    occurred_on: dt.date
    # The day the record was repaired (by its source or an approved application); None otherwise.
    repaired_on: dt.date | None = None


@dataclass
class Contribution:
    """How one record counted, and why."""

    record_id: int
    item_code: str
    status: str
    occurred_on: dt.date
    expires_on: dt.date | None
    base_points: int
    points: int = 0
    counted: bool = False
    reasons: list[str] = field(default_factory=list)
    direct_tier: str | None = None


@dataclass
class Evaluation:
    score: int
    tier: Tier
    direct_tier: bool
    dimensions: dict[
        str, int
    ]  # dimension code -> capped total (itemised) or dimension score (weighted)
    contributions: list[Contribution]


def _clamp(value: int, low: int | None, high: int | None) -> int:
    if high is not None and value > high:
        return high
    if low is not None and value < low:
        return low
    return value


def evaluate(model: ScoringModel, facts: list[RecordFact], as_of: dt.date) -> Evaluation:
    """Score one citizen's records under ``model`` as of ``as_of``."""
    contributions: list[Contribution] = []
    ordered: list[tuple[Contribution, Item]] = []
    for fact in sorted(facts, key=lambda f: (f.occurred_on, f.record_id)):
        item = model.items.get(fact.item_code)
        if item is None:
            contributions.append(
                Contribution(
                    fact.record_id,
                    fact.item_code,
                    fact.status,
                    fact.occurred_on,
                    None,
                    0,
                    reasons=["unknown_item"],
                )
            )
            continue
        repaired = fact.status == RecordStatus.REPAIRED
        con = Contribution(
            record_id=fact.record_id,
            item_code=fact.item_code,
            status=fact.status,
            occurred_on=fact.occurred_on,
            expires_on=item.expires_on(fact.occurred_on, fact.repaired_on),
            base_points=item.repaired_points if repaired else item.points,
            direct_tier=None if repaired else item.direct_tier,
        )
        contributions.append(con)
        if repaired:
            con.reasons.append("repaired")
        if item.needs_ordering:
            if fact.status in HISTORY_STATUSES:
                ordered.append((con, item))
            else:
                con.reasons.append(fact.status)
        elif _counts(con, as_of):
            con.points = con.base_points
            con.counted = True

    _apply_ordered_rules(ordered, as_of)

    totals: dict[str, int] = defaultdict(int)
    direct_rank: int | None = None
    for con in contributions:
        if not con.counted:
            continue
        item = model.items[con.item_code]
        totals[item.dimension] += con.points
        if con.direct_tier is not None:
            con.reasons.append("direct_tier")
            rank = model.tier(con.direct_tier).rank
            direct_rank = rank if direct_rank is None else max(direct_rank, rank)

    dimensions, score = score_from_totals(model, totals)
    # A direct tier caps the tier (the worse of the two wins): a severe record never lifts anyone.
    score_tier = model.tier_for_score(score)
    tier = model.tiers[max(direct_rank, score_tier.rank)] if direct_rank is not None else score_tier
    return Evaluation(score, tier, direct_rank is not None, dimensions, contributions)


def _counts(con: Contribution, as_of: dt.date) -> bool:
    """Rule 1, recording why a record does not count."""
    if con.status not in COUNTING_STATUSES:
        con.reasons.append(con.status)
        return False
    assert con.expires_on is not None
    if con.expires_on <= as_of:
        con.reasons.append("expired")
        return False
    if con.status == RecordStatus.UNDER_OBJECTION and con.base_points < 0:
        con.reasons.append("under_objection")
        return False
    if con.status == RecordStatus.UNDER_OBJECTION:
        con.reasons.append("under_objection_counted")
    return True


def _apply_ordered_rules(ordered: list[tuple[Contribution, Item]], as_of: dt.date) -> None:
    # a. overlap: one act per (group, day); the largest |points| wins, the lowest record id on a tie.
    acts: dict[tuple[str, dt.date], list[Contribution]] = defaultdict(list)
    for con, item in ordered:
        if item.overlap_group:
            acts[(item.overlap_group, con.occurred_on)].append(con)
    dropped: set[int] = set()
    for members in acts.values():
        winner = min(members, key=lambda c: (-abs(c.base_points), c.record_id))
        for con in members:
            if con is not winner:
                dropped.add(con.record_id)
                con.reasons.append("overlapped")

    # b. repeat within the validity window of the previous record of the same item.
    previous_expiry: dict[str, dt.date] = {}
    kept: list[tuple[Contribution, Item, int]] = []
    for con, item in ordered:
        if con.record_id in dropped:
            continue
        points = con.base_points
        prior = previous_expiry.get(item.code)
        if item.repeat_multiplier and prior is not None and prior > con.occurred_on:
            points *= item.repeat_multiplier
            con.reasons.append(f"repeat_x{item.repeat_multiplier}")
        assert con.expires_on is not None
        previous_expiry[item.code] = con.expires_on
        kept.append((con, item, points))

    # c. yearly cap, cumulative in order of occurrence.
    running: dict[tuple[str, int], int] = defaultdict(int)
    for con, item, points in kept:
        if not _counts(con, as_of):
            continue
        con.counted = True
        if item.yearly_cap is None:
            con.points = points
            continue
        key = (item.code, con.occurred_on.year)
        before = running[key]
        running[key] = before + points
        cap = item.yearly_cap
        con.points = _clamp(before + points, -cap, cap) - _clamp(before, -cap, cap)
        if con.points != points:
            con.reasons.append("capped")


def score_from_totals(model: ScoringModel, totals: dict[str, int]) -> tuple[dict[str, int], int]:
    """Rules 3 and 4: dimension values and the score from per-dimension sums of counted points."""
    dimensions: dict[str, int] = {}
    if model.kind == "itemised":
        for code, total in totals.items():
            dim = model.dimension(code)
            dimensions[code] = _clamp(total, dim.cap_min, dim.cap_max)
        score = _clamp(
            model.base_score + sum(dimensions.values()), model.score_min, model.score_max
        )
        return dimensions, score
    top = model.dimension_max
    numerator = 0
    for dim in model.dimensions:
        value = _clamp(dim.base + totals.get(dim.code, 0), 0, top)
        if dim.code in totals:
            dimensions[dim.code] = value
        numerator += dim.weight * value
    score = (numerator * model.score_max + 50 * top) // (100 * top)
    return dimensions, score


def dimension_values(model: ScoringModel, stored: dict[str, int]) -> dict[str, int]:
    """Every dimension's value for display: stored values, else the starting value (0 or the base)."""
    if model.kind == "itemised":
        return {dim.code: stored.get(dim.code, 0) for dim in model.dimensions}
    return {dim.code: stored.get(dim.code, dim.base) for dim in model.dimensions}
