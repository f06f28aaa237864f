"""Seeding the registry: the three scenarios the examples use, and the 200+ scenario demo catalogue.

The three read only the common tier and are what a traveller uses (books, buses, power banks), so
they are open to visitors from partner cities; the catalogue opens the benefits its templates mark.

Seeding goes through the real workflow (create → submit → publish, by two distinct actors), so the demo
city's versions, audit trail and counters look exactly like an operated city's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.actors import SYSTEM, Actor
from scenarios import catalogue
from scenarios.models import Scenario, Venue
from scenarios.operations import (
    add_venue,
    create_scenario,
    ensure_operator,
    publish_directly,
)

CITY_OFFICE = ("city-credit-office", "市社会信用体系建设办公室", "City Credit Office")
SEEDER = Actor("system:demo-operator")

DEMO_SCENARIOS: tuple[dict[str, Any], ...] = (
    dict(
        code="library-deposit-free",
        category="library",
        content=dict(
            name_zh="信易阅·免押金借书",
            name_en="Library: deposit-free borrowing",
            benefit_zh="免押金借阅图书最多40册",
            benefit_en="Borrow up to 40 books without a deposit",
            eligibility={"min_common_tier": 3},
            quota_per_day=1,
            open_to_visitors=True,
        ),
    ),
    dict(
        code="bus-fare-discount",
        category="transport",
        content=dict(
            name_zh="信易行·公交八折",
            name_en="Bus: 20% fare discount",
            benefit_zh="乘坐公交享受八折优惠",
            benefit_en="20% off the bus fare",
            eligibility={"min_common_tier": 4},
            quota_per_day=6,
            open_to_visitors=True,
        ),
    ),
    dict(
        code="power-bank-free",
        category="rental",
        content=dict(
            name_zh="信易租·充电宝免费三小时",
            name_en="Power bank: three hours free",
            benefit_zh="免押金、免费租用充电宝三小时",
            benefit_en="Rent a power bank deposit-free, three hours free",
            eligibility={"min_common_tier": 3},
            quota_per_day=2,
            open_to_visitors=True,
        ),
    ),
)


def ensure_demo_scenarios(session: Session) -> int:
    """The three scenarios the examples and tests use, run by the city's credit office."""
    operator = ensure_operator(session, *CITY_OFFICE)
    added = 0
    for spec in DEMO_SCENARIOS:
        if session.scalar(select(Scenario.id).where(Scenario.code == spec["code"])) is None:
            scenario = create_scenario(
                session,
                SEEDER,
                code=spec["code"],
                operator=operator,
                category=spec["category"],
                content=spec["content"],
            )
            publish_directly(session, scenario, submitter=SEEDER, publisher=SYSTEM)
            added += 1
    return added


def load_catalogue(session: Session) -> int:
    """The demo catalogue (``scenarios.catalogue``): its operators, venues and published scenarios."""
    operators = {}
    for category in catalogue.CATEGORIES:
        operators[category.code] = ensure_operator(
            session, f"{category.code}-operator", category.operator_zh, category.operator_en
        )
    known_venues = set(session.scalars(select(Venue.code)))
    for venue in catalogue.venues():
        if venue["code"] not in known_venues:
            add_venue(
                session,
                SEEDER,
                operator=operators[venue["category"]],
                code=venue["code"],
                category=venue["category"],
                name_zh=venue["name_zh"],
                name_en=venue["name_en"],
                address_zh=venue.get("address_zh", ""),
            )
    known = set(session.scalars(select(Scenario.code)))
    added = 0
    for spec in catalogue.scenarios():
        if spec["code"] in known:
            continue
        scenario = create_scenario(
            session,
            SEEDER,
            code=spec["code"],
            operator=operators[spec["category"]],
            category=spec["category"],
            content={
                "name_zh": spec["name_zh"],
                "name_en": spec["name_en"],
                "benefit_zh": spec["benefit_zh"],
                "benefit_en": spec["benefit_en"],
                "eligibility": spec["eligibility"],
                "quota_per_day": spec["quota_per_day"],
                "quota_per_month": spec["quota_per_month"],
                "open_to_visitors": spec["open_to_visitors"],
            },
            venue_codes=[spec["venue"]],
        )
        publish_directly(session, scenario, submitter=SEEDER, publisher=SYSTEM)
        added += 1
    return added
