"""Who qualifies for what: the facts eligibility may see, and a citizen's "my benefits" list.

The catalogue of live versions is built once per process and kept until a scenario changes (one small
freshness query per call), with everything a citizen sees of an entry that does not depend on the
citizen worked out then. 300 scenarios share a few dozen distinct rules: one citizen's list evaluates
each once, and citizens whose rules come out the same share one list of views. So "my benefits" is
the snapshot read, the freshness query, the audit row and a few dozen rule evaluations
(``bench/benefits.py`` measures it)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Subquery, func, or_, select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from points_engine.models import Citizen, ScoreSnapshot
from points_engine.queries import current_snapshot
from scenarios.catalogue import DISTRICTS
from scenarios.eligibility import (
    Any_,
    CitizenFacts,
    Condition,
    MinCommonTier,
    Outcome,
    Reason,
    lowest_visitor_level,
)
from scenarios.models import CATEGORIES, Operator, Scenario, ScenarioVenue, ScenarioVersion, Venue
from scenarios.operations import rule_of


def age_on(birth: dt.date | None, today: dt.date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def citizen_facts(session: Session, citizen: Citizen, *, today: dt.date) -> CitizenFacts:
    """What a rule may look at for a signed-in citizen, from their current snapshot. (A presented
    code carries its own facts: ``credit_codes.operations.verify_presentation``.)"""
    snapshot = current_snapshot(session, citizen.id) if citizen.consent_given else None
    return _facts(citizen, snapshot, today)


def _facts(citizen: Citizen, snapshot: ScoreSnapshot | None, today: dt.date) -> CitizenFacts:
    return CitizenFacts(
        common_tier=snapshot.common_tier if snapshot is not None else None,
        local_score=snapshot.score if snapshot is not None else None,
        age=age_on(citizen.birth_date, today),
        # Every citizen in this city's registry is its resident; visitors from recognised cities
        # (federation) arrive with another issuer and are not.
        resident=True,
        has_direct_tier_record=bool(snapshot is not None and snapshot.direct_tier),
    )


def district_of(*texts: str) -> str | None:
    """The city district a venue is in, read from its address, else its name: venues carry no
    district of their own, and their addresses and names name it (黄石市下陆区…, 下陆区图书馆)."""
    for text in texts:
        for code, name_zh, _ in DISTRICTS:
            if name_zh in text:
                return code
    return None


@dataclass(frozen=True)
class VenueView:
    code: str
    name_zh: str
    name_en: str
    address_zh: str
    district: str | None = None  # a code of ``DISTRICTS``


@dataclass(frozen=True, slots=True)
class BenefitView:
    """One published scenario as a citizen sees it: what it grants, where, and whether they qualify.

    Views are shared by every citizen whose rules come out the same (``my_benefits``): read them,
    never change them or their lists.
    """

    code: str
    category: str
    category_zh: str
    category_en: str
    name_zh: str
    name_en: str
    benefit_zh: str
    benefit_en: str
    operator_zh: str
    operator_en: str
    requirement_zh: str
    requirement_en: str
    needed_tier: int | None  # the common tier the rule asks for, if it asks for one
    valid_until: dt.date | None
    venues: list[VenueView] = field(default_factory=list)
    eligible: bool = False
    unmet: list[Reason] = field(default_factory=list)
    operator_code: str = ""


@dataclass(frozen=True)
class ScenarioRef:
    id: int
    code: str
    category: str


@dataclass(frozen=True)
class VersionRef:
    id: int
    number: int
    name_zh: str
    name_en: str
    benefit_zh: str
    benefit_en: str
    valid_until: dt.date | None
    open_to_visitors: bool = False


@dataclass(frozen=True)
class OperatorRef:
    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class CatalogueEntry:
    """One scenario in effect today, as plain values (safe to keep across requests).

    What a citizen sees of it that does not depend on the citizen (the category's and the rule's
    words, the tier the rule asks for) is worked out once, when the catalogue is built.
    """

    scenario: ScenarioRef
    version: VersionRef
    operator: OperatorRef
    rule: Condition
    venues: tuple[VenueView, ...]
    category_zh: str = ""
    category_en: str = ""
    requirement_zh: str = ""
    requirement_en: str = ""
    needed_tier: int | None = None
    rule_index: int = 0  # its rule's place in ``Catalogue.rules``


@dataclass(frozen=True)
class Catalogue:
    """The entries in effect today and their distinct rules: 300 scenarios share a few dozen rules,
    so one citizen's list evaluates each distinct rule once."""

    entries: list[CatalogueEntry]
    rules: tuple[Condition, ...]
    # The list of views per outcome of ``rules`` (citizens at the same tier, above the same score
    # and age thresholds, get the same list): a few dozen kinds of citizen, not one list per call.
    views: dict[tuple[Any, ...], list[BenefitView]] = field(default_factory=dict, compare=False)


# Enough for every combination of tiers and thresholds a catalogue tells apart; ~90 KB each at 300.
VIEW_LISTS_KEPT = 64


# Per process: (database, day) -> (fingerprint, built at, catalogue). The fingerprint (how many
# scenarios are published and when any of them last changed) is one small query; every workflow step,
# venue change and publication updates ``scenario.updated_at``, so a stale catalogue is never served.
_CATALOGUES: dict[tuple[str, dt.date], tuple[tuple[Any, ...], float, Catalogue]] = {}
# ``updated_at`` is stamped when a change is made, not when it commits: two changes committing in the
# other order could leave the fingerprint unchanged. Entries are therefore also rebuilt after this long.
CATALOGUE_MAX_AGE = 30.0


def live_catalogue(session: Session, *, today: dt.date) -> list[CatalogueEntry]:
    """Every scenario a citizen could use today: published, not suspended, within its dates."""
    return _live(session, today).entries


def _fingerprint() -> Subquery:
    """How many scenarios are published and when any of them last changed (one row)."""
    return (
        select(
            func.count(Scenario.id).label("published"),
            func.max(Scenario.updated_at).label("changed"),
        )
        .where(Scenario.status == "published")
        .subquery("catalogue_fingerprint")
    )


def _live(
    session: Session, today: dt.date, fingerprint: tuple[Any, ...] | None = None
) -> Catalogue:
    """The catalogue, from memory while ``fingerprint`` (read now unless given) has not moved."""
    if fingerprint is None:
        fingerprint = tuple(session.execute(select(_fingerprint())).one())
    key = (_database_of(session), today)
    cached = _CATALOGUES.get(key)
    moment = time.monotonic()
    if cached is not None and cached[0] == fingerprint and moment - cached[1] < CATALOGUE_MAX_AGE:
        return cached[2]
    catalogue = _load_catalogue(session, today)
    if len(_CATALOGUES) > 64:
        _CATALOGUES.clear()
    _CATALOGUES[key] = (fingerprint, moment, catalogue)
    return catalogue


# Rendering an engine's URL costs more than the rest of a cache hit; an engine's URL never changes.
_DATABASE_NAMES: dict[int, tuple[Any, str]] = {}


def _database_of(session: Session) -> str:
    engine = session.get_bind().engine
    known = _DATABASE_NAMES.get(id(engine))
    if known is None or known[0] is not engine.url:
        if len(_DATABASE_NAMES) > 64:
            _DATABASE_NAMES.clear()
        known = (engine.url, engine.url.render_as_string(hide_password=True))
        _DATABASE_NAMES[id(engine)] = known
    return known[1]


def _load_catalogue(session: Session, today: dt.date) -> Catalogue:
    rows = session.execute(
        select(Scenario, ScenarioVersion, Operator)
        .join(
            ScenarioVersion,
            (ScenarioVersion.scenario_id == Scenario.id) & (ScenarioVersion.state == "published"),
        )
        .join(Operator, Operator.id == Scenario.operator_id)
        .where(
            Scenario.status == "published",
            or_(ScenarioVersion.valid_from.is_(None), ScenarioVersion.valid_from <= today),
            or_(ScenarioVersion.valid_until.is_(None), ScenarioVersion.valid_until >= today),
        )
        .order_by(Scenario.category, Scenario.code)
    ).all()
    venues: dict[int, list[VenueView]] = {}
    ids = [scenario.id for scenario, _, _ in rows]
    if ids:
        for scenario_id, code, name_zh, name_en, address in session.execute(
            select(
                ScenarioVenue.scenario_id,
                Venue.code,
                Venue.name_zh,
                Venue.name_en,
                Venue.address_zh,
            )
            .join(Venue, Venue.id == ScenarioVenue.venue_id)
            .where(Venue.status == "active", ScenarioVenue.scenario_id.in_(ids))
            .order_by(Venue.code)
        ):
            venues.setdefault(scenario_id, []).append(
                VenueView(code, name_zh, name_en, address, district_of(address, name_zh))
            )
    rules: dict[Condition, int] = {}
    entries = []
    for scenario, version, operator in rows:
        rule = rule_of(version)
        brand, category_zh, category_en = CATEGORIES.get(
            scenario.category, ("", scenario.category, scenario.category)
        )
        entries.append(
            CatalogueEntry(
                ScenarioRef(scenario.id, scenario.code, scenario.category),
                VersionRef(
                    version.id,
                    version.number,
                    version.name_zh,
                    version.name_en,
                    version.benefit_zh,
                    version.benefit_en,
                    version.valid_until,
                    version.open_to_visitors,
                ),
                OperatorRef(operator.code, operator.name_zh, operator.name_en),
                rule,
                tuple(venues.get(scenario.id, [])),
                category_zh=f"{brand}·{category_zh}" if brand else category_zh,
                category_en=category_en,
                requirement_zh=rule.describe("zh"),
                requirement_en=rule.describe("en"),
                needed_tier=_needed_tier(rule),
                rule_index=rules.setdefault(rule, len(rules)),
            )
        )
    return Catalogue(entries, tuple(rules))


def _needed_tier(rule: Condition) -> int | None:
    """The common tier the rule asks for: the highest under ``all``, the lowest way in under ``any``."""
    if isinstance(rule, MinCommonTier):
        return rule.level
    children = getattr(rule, "conditions", ())
    levels = [level for c in children if (level := _needed_tier(c)) is not None]
    if not levels:
        return None
    return min(levels) if isinstance(rule, Any_) else max(levels)


def my_benefits(
    session: Session, citizen: Citizen, *, today: dt.date, actor: str
) -> list[BenefitView]:
    """Every scenario in effect today, and for each whether this citizen qualifies and why not.

    Reading the citizen's score for this is a read of personal data, so it is audited.
    """
    # One round trip for the citizen's snapshot and the catalogue's fingerprint: the rest is memory.
    fingerprint = _fingerprint()
    snapshot = None
    if citizen.consent_given:
        snapshot, *stamp = session.execute(
            select(ScoreSnapshot, fingerprint.c.published, fingerprint.c.changed)
            .select_from(fingerprint)
            .outerjoin(
                ScoreSnapshot,
                (ScoreSnapshot.citizen_id == citizen.id) & ScoreSnapshot.is_current.is_(True),
            )
        ).one()
    else:
        stamp = list(session.execute(select(fingerprint)).one())
    facts = _facts(citizen, snapshot, today)
    audit(session, actor=actor, action="benefits.view", citizen_id=citizen.id)
    catalogue = _live(session, today, tuple(stamp))
    outcomes = [rule.evaluate(facts) for rule in catalogue.rules]
    key = tuple((o.eligible, *o.unmet) for o in outcomes)
    views = catalogue.views.get(key)
    if views is None:
        views = _views(catalogue, outcomes)
        if len(catalogue.views) >= VIEW_LISTS_KEPT:
            catalogue.views.clear()
        catalogue.views[key] = views
    return list(views)


def _views(catalogue: Catalogue, outcomes: list[Outcome]) -> list[BenefitView]:
    out = []
    for entry in catalogue.entries:
        outcome = outcomes[entry.rule_index]
        out.append(
            BenefitView(
                code=entry.scenario.code,
                category=entry.scenario.category,
                category_zh=entry.category_zh,
                category_en=entry.category_en,
                name_zh=entry.version.name_zh,
                name_en=entry.version.name_en,
                benefit_zh=entry.version.benefit_zh,
                benefit_en=entry.version.benefit_en,
                operator_zh=entry.operator.name_zh,
                operator_en=entry.operator.name_en,
                requirement_zh=entry.requirement_zh,
                requirement_en=entry.requirement_en,
                needed_tier=entry.needed_tier,
                valid_until=entry.version.valid_until,
                venues=list(entry.venues),
                eligible=outcome.eligible,
                unmet=list(outcome.unmet),
                operator_code=entry.operator.code,
            )
        )
    return out


def visitor_catalogue(session: Session, *, today: dt.date) -> list[dict[str, Any]]:
    """What this city offers visitors from partner cities today, for the federation's bulletins.

    Each scenario in effect today whose live version is open to visitors, with ``min_level``: the
    lowest common level (1–5) at which its rule grants to a visitor. A scenario open to visitors whose
    rule grants to none (it asks for residence, age, the local score or local records) is left out:
    partners are told only what their citizens can actually use. Nothing about any citizen is read.
    """
    out = []
    for entry in live_catalogue(session, today=today):
        if not entry.version.open_to_visitors:
            continue
        level = lowest_visitor_level(entry.rule)
        if level is None:
            continue
        out.append(
            {
                "code": entry.scenario.code,
                "category": entry.scenario.category,
                "name_zh": entry.version.name_zh,
                "name_en": entry.version.name_en,
                "benefit_zh": entry.version.benefit_zh,
                "benefit_en": entry.version.benefit_en,
                "min_level": level,
            }
        )
    return out


def qualifying_codes(
    session: Session, citizen: Citizen, *, operator_code: str, today: dt.date, actor: str
) -> list[str]:
    """The codes of one operator's scenarios in effect today that this citizen qualifies for now:
    what a linked operator's system is told (``push.authorize``), never why not or anything else.

    The same cached catalogue and views as :func:`my_benefits`, and its read audited the same way."""
    listed = my_benefits(session, citizen, today=today, actor=actor)
    return [v.code for v in listed if v.eligible and v.operator_code == operator_code]
