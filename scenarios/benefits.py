"""Who qualifies for what: the facts eligibility may see, and a citizen's "my benefits" list.

A published version's parsed rule is cached per version (it never changes), and the catalogue of live
versions is read in two set-based queries, so listing 300 scenarios for one citizen is one snapshot
lookup, two catalogue queries and 300 small tree evaluations (``bench/benefits.py`` measures it).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from points_engine.models import Citizen
from points_engine.queries import current_snapshot
from scenarios.catalogue import DISTRICTS
from scenarios.eligibility import (
    Any_,
    CitizenFacts,
    Condition,
    MinCommonTier,
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


@dataclass
class BenefitView:
    """One published scenario as a citizen sees it: what it grants, where, and whether they qualify."""

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
    """One scenario in effect today, as plain values (safe to keep across requests)."""

    scenario: ScenarioRef
    version: VersionRef
    operator: OperatorRef
    rule: Condition
    venues: tuple[VenueView, ...]


# Per process: (database, day) -> (fingerprint, entries). The fingerprint (how many scenarios are
# published and when any of them last changed) is one small query; every workflow step, venue change
# and publication updates ``scenario.updated_at``, so a stale catalogue is never served.
_CATALOGUES: dict[tuple[str, dt.date], tuple[tuple[Any, ...], float, list[CatalogueEntry]]] = {}
# ``updated_at`` is stamped when a change is made, not when it commits: two changes committing in the
# other order could leave the fingerprint unchanged. Entries are therefore also rebuilt after this long.
CATALOGUE_MAX_AGE = 30.0


def live_catalogue(session: Session, *, today: dt.date) -> list[CatalogueEntry]:
    """Every scenario a citizen could use today: published, not suspended, within its dates."""
    fingerprint = tuple(
        session.execute(
            select(func.count(Scenario.id), func.max(Scenario.updated_at)).where(
                Scenario.status == "published"
            )
        ).one()
    )
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), today)
    cached = _CATALOGUES.get(key)
    moment = time.monotonic()
    if cached is not None and cached[0] == fingerprint and moment - cached[1] < CATALOGUE_MAX_AGE:
        return cached[2]
    entries = _load_catalogue(session, today)
    if len(_CATALOGUES) > 64:
        _CATALOGUES.clear()
    _CATALOGUES[key] = (fingerprint, moment, entries)
    return entries


def _load_catalogue(session: Session, today: dt.date) -> list[CatalogueEntry]:
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
    return [
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
            rule_of(version),
            tuple(venues.get(scenario.id, [])),
        )
        for scenario, version, operator in rows
    ]


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
    facts = citizen_facts(session, citizen, today=today)
    audit(session, actor=actor, action="benefits.view", citizen_id=citizen.id)
    out = []
    for entry in live_catalogue(session, today=today):
        outcome = entry.rule.evaluate(facts)
        brand, category_zh, category_en = CATEGORIES.get(
            entry.scenario.category, ("", entry.scenario.category, entry.scenario.category)
        )
        out.append(
            BenefitView(
                code=entry.scenario.code,
                category=entry.scenario.category,
                category_zh=f"{brand}·{category_zh}" if brand else category_zh,
                category_en=category_en,
                name_zh=entry.version.name_zh,
                name_en=entry.version.name_en,
                benefit_zh=entry.version.benefit_zh,
                benefit_en=entry.version.benefit_en,
                operator_zh=entry.operator.name_zh,
                operator_en=entry.operator.name_en,
                requirement_zh=entry.rule.describe("zh"),
                requirement_en=entry.rule.describe("en"),
                needed_tier=_needed_tier(entry.rule),
                valid_until=entry.version.valid_until,
                venues=list(entry.venues),
                eligible=outcome.eligible,
                unmet=outcome.unmet,
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
