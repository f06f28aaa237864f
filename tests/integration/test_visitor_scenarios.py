"""Scenarios and visitors from partner cities: the flag on each version, which live version answers a
visitor, the CSV column, and the catalogue a city publishes for its partners."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.actors import SYSTEM, Actor
from scenarios import catalogue, csvio
from scenarios import operations as registry
from scenarios.benefits import visitor_catalogue
from scenarios.demo import ensure_demo_scenarios, load_catalogue
from scenarios.models import Operator, Scenario, ScenarioVersion, Venue
from scenarios.operations import InvalidScenario, ScenarioUnavailable
from tests.conftest import TODAY

REVIEWER = Actor("reviewer@credit-office", can_publish=True)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Parsed rules and the day's catalogue are cached per process; rolled-back tests reuse ids.
    from scenarios import benefits

    registry._RULES.clear()
    benefits._CATALOGUES.clear()
    yield
    registry._RULES.clear()
    benefits._CATALOGUES.clear()


@pytest.fixture
def library(session: Session) -> Operator:
    operator = registry.ensure_operator(session, "visit-library", "测试图书馆", "Test Library")
    registry.add_venue(
        session,
        SYSTEM,
        operator=operator,
        code="visit-lib-main",
        category="library",
        name_zh="总馆",
        name_en="Main library",
    )
    return operator


def librarian(operator: Operator) -> Actor:
    return Actor("librarian@library", operator_id=operator.id)


def content(**overrides: Any) -> dict[str, Any]:
    return {
        "name_zh": "信易阅·免押金借书",
        "name_en": "Deposit-free borrowing",
        "benefit_zh": "免押金借阅图书",
        "benefit_en": "Borrow books without a deposit",
        "eligibility": {"min_common_tier": 3},
        **overrides,
    }


def live(
    session: Session, operator: Operator, code: str, *, venues: tuple[str, ...] = (), **fields: Any
) -> Scenario:
    scenario = registry.create_scenario(
        session,
        librarian(operator),
        code=code,
        operator=operator,
        category="library",
        content=content(**fields),
        venue_codes=venues,
    )
    registry.publish_directly(session, scenario, submitter=librarian(operator), publisher=REVIEWER)
    return scenario


def _live(session: Session, scenario: Scenario) -> ScenarioVersion:
    version = registry.live_version(session, scenario.id)
    assert version is not None
    return version


# --- the flag on versions ---------------------------------------------------------------------------


def test_a_new_scenario_is_closed_to_visitors_unless_it_says_so(
    session: Session, library: Operator
) -> None:
    closed = live(session, library, "visit-closed")
    opened = live(session, library, "visit-open", open_to_visitors=True)
    assert _live(session, closed).open_to_visitors is False
    assert _live(session, opened).open_to_visitors is True


def test_a_new_version_keeps_the_live_ones_flag_unless_the_edit_changes_it(
    session: Session, library: Operator
) -> None:
    scenario = live(session, library, "visit-borrow", open_to_visitors=True)
    # An edit that does not mention the flag (an older API client, say) does not close the benefit.
    v2 = registry.edit_scenario(
        session, librarian(library), scenario, content(benefit_en="Up to 40 books")
    )
    assert v2.number == 2 and v2.open_to_visitors is True
    # Editing the draft again in place: the flag is changed only when given.
    v2 = registry.edit_scenario(
        session, librarian(library), scenario, content(benefit_en="Up to 50 books")
    )
    assert v2.open_to_visitors is True
    v2 = registry.edit_scenario(
        session, librarian(library), scenario, content(open_to_visitors=False)
    )
    assert v2.open_to_visitors is False
    # The live version keeps serving visitors until version 2 is reviewed and published.
    assert _live(session, scenario).open_to_visitors is True
    registry.scenario_for_use(session, "visit-borrow", venue_id=None, today=TODAY, visitor=True)
    registry.submit(session, librarian(library), scenario)
    registry.publish(session, REVIEWER, scenario)
    with pytest.raises(ScenarioUnavailable):
        registry.scenario_for_use(session, "visit-borrow", venue_id=None, today=TODAY, visitor=True)


def test_a_version_under_review_is_frozen_flag_included(
    session: Session, library: Operator
) -> None:
    scenario = live(session, library, "visit-frozen")
    registry.edit_scenario(session, librarian(library), scenario, content(open_to_visitors=True))
    registry.submit(session, librarian(library), scenario)
    with pytest.raises(registry.WorkflowError):
        registry.edit_scenario(
            session, librarian(library), scenario, content(open_to_visitors=False)
        )
    # Four eyes as ever: the submitter cannot publish the opening to visitors.
    submitter = Actor("librarian@library", operator_id=library.id, can_publish=True)
    with pytest.raises(registry.NotPermitted):
        registry.publish(session, submitter, scenario)


@pytest.mark.parametrize("bad", ["yes", 1, "", None])
def test_the_flag_is_true_or_false(session: Session, library: Operator, bad: object) -> None:
    if bad == "":
        # A blank form field or CSV cell means no.
        scenario = live(session, library, "visit-blank", open_to_visitors=bad)
        assert _live(session, scenario).open_to_visitors is False
        return
    with pytest.raises(InvalidScenario) as refused:
        live(session, library, "visit-bad", open_to_visitors=bad)
    assert refused.value.errors == {"open_to_visitors": ["must be true or false"]}


# --- a visitor at a venue -------------------------------------------------------------------------


def test_a_visitor_is_served_only_by_a_live_version_open_to_visitors(
    session: Session, library: Operator
) -> None:
    live(session, library, "visit-locals-only", venues=("visit-lib-main",))
    live(session, library, "visit-everyone", venues=("visit-lib-main",), open_to_visitors=True)
    venue_id = _venue_id(session)

    for visitor in (False, True):
        scenario, version = registry.scenario_for_use(
            session, "visit-everyone", venue_id=venue_id, today=TODAY, visitor=visitor
        )
        assert scenario.code == "visit-everyone" and version.number == 1
    # Locals are served exactly as before.
    registry.scenario_for_use(session, "visit-locals-only", venue_id=venue_id, today=TODAY)
    with pytest.raises(ScenarioUnavailable) as refused:
        registry.scenario_for_use(
            session, "visit-locals-only", venue_id=venue_id, today=TODAY, visitor=True
        )
    assert str(refused.value) == (
        "scenario 'visit-locals-only' is not offered to visitors from partner cities"
    )


def test_a_visitor_meets_the_same_suspensions_dates_and_venues_first(
    session: Session, library: Operator
) -> None:
    scenario = live(
        session,
        library,
        "visit-later",
        open_to_visitors=True,
        valid_from=TODAY + dt.timedelta(days=1),
    )
    with pytest.raises(ScenarioUnavailable, match="starts on"):
        registry.scenario_for_use(session, "visit-later", venue_id=None, today=TODAY, visitor=True)
    live(session, library, "visit-nowhere", open_to_visitors=True)  # honoured at no venue
    with pytest.raises(ScenarioUnavailable, match="not offered at this venue"):
        registry.scenario_for_use(
            session, "visit-nowhere", venue_id=_venue_id(session), today=TODAY, visitor=True
        )
    registry.suspend(session, librarian(library), scenario)
    with pytest.raises(ScenarioUnavailable, match="suspended"):
        registry.scenario_for_use(session, "visit-later", venue_id=None, today=TODAY, visitor=True)


def _venue_id(session: Session) -> int:
    venue_id = session.scalar(select(Venue.id).where(Venue.code == "visit-lib-main"))
    assert venue_id is not None
    return venue_id


# --- the catalogue for partner cities ---------------------------------------------------------------


def test_the_visitor_catalogue_lists_what_a_visitor_can_use_and_from_which_level(
    session: Session, library: Operator
) -> None:
    live(session, library, "visit-tier-3", open_to_visitors=True)
    live(
        session,
        library,
        "visit-any",
        open_to_visitors=True,
        name_zh="信易阅·自习室优先",
        name_en="Study-room priority",
        benefit_zh="优先预约自习室",
        benefit_en="Book study rooms first",
        eligibility={"any": [{"min_local_score": 900}, {"min_common_tier": 4}]},
    )
    # Open, but the rule asks for what no visitor has: left out rather than promised.
    live(
        session,
        library,
        "visit-adults",
        open_to_visitors=True,
        eligibility={"all": [{"min_common_tier": 2}, {"min_age": 18}]},
    )
    live(session, library, "visit-closed")  # not open to visitors
    live(session, library, "visit-suspended", open_to_visitors=True)
    registry.suspend(
        session, librarian(library), registry.find_scenario(session, "visit-suspended")
    )
    live(
        session, library, "visit-ended", open_to_visitors=True, valid_until=TODAY - dt.timedelta(1)
    )
    # A draft that would open a scenario changes nothing until it is published.
    closed = registry.find_scenario(session, "visit-closed")
    registry.edit_scenario(session, librarian(library), closed, content(open_to_visitors=True))

    assert visitor_catalogue(session, today=TODAY) == [
        {
            "code": "visit-any",
            "category": "library",
            "name_zh": "信易阅·自习室优先",
            "name_en": "Study-room priority",
            "benefit_zh": "优先预约自习室",
            "benefit_en": "Book study rooms first",
            "min_level": 4,
        },
        {
            "code": "visit-tier-3",
            "category": "library",
            "name_zh": "信易阅·免押金借书",
            "name_en": "Deposit-free borrowing",
            "benefit_zh": "免押金借阅图书",
            "benefit_en": "Borrow books without a deposit",
            "min_level": 3,
        },
    ]
    registry.submit(session, librarian(library), closed)
    registry.publish(session, REVIEWER, closed)
    assert [e["code"] for e in visitor_catalogue(session, today=TODAY)] == [
        "visit-any",
        "visit-closed",
        "visit-tier-3",
    ]
    # Tomorrow's catalogue is tomorrow's: a benefit that ends today is gone from it.
    live(session, library, "visit-last-day", open_to_visitors=True, valid_until=TODAY)
    assert "visit-last-day" in {e["code"] for e in visitor_catalogue(session, today=TODAY)}
    tomorrow = visitor_catalogue(session, today=TODAY + dt.timedelta(days=1))
    assert "visit-last-day" not in {e["code"] for e in tomorrow}


def test_the_visitor_catalogue_reads_no_citizen_and_needs_no_scenario(session: Session) -> None:
    assert visitor_catalogue(session, today=TODAY) == []


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_export_and_import_carry_the_flag(session: Session, library: Operator) -> None:
    live(session, library, "visit-csv-open", open_to_visitors=True)
    live(session, library, "visit-csv-shut")
    out = io.StringIO()
    csvio.write_csv(session, librarian(library), out)
    rows = {row["code"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows["visit-csv-open"]["open_to_visitors"] == "true"
    assert rows["visit-csv-shut"]["open_to_visitors"] == "false"

    report = csvio.import_csv(session, librarian(library), out.getvalue().encode())
    assert (report.unchanged, report.updated, report.errors) == (
        ["visit-csv-open", "visit-csv-shut"],
        [],
        [],
    )
    flipped = out.getvalue().replace(",false,", ",true,")
    report = csvio.import_csv(session, librarian(library), flipped.encode())
    assert report.updated == ["visit-csv-shut"]
    shut = registry.find_scenario(session, "visit-csv-shut")
    pending = registry.pending_version(session, shut.id)
    assert pending is not None and pending.number == 2 and pending.open_to_visitors is True
    assert _live(session, shut).open_to_visitors is False  # until the city publishes version 2


# --- the demo city ----------------------------------------------------------------------------------


def test_the_demo_city_offers_visitors_its_travellers_benefits(session: Session) -> None:
    assert ensure_demo_scenarios(session) == 3
    load_catalogue(session)
    offered = {e["code"]: e for e in visitor_catalogue(session, today=TODAY)}
    expected = {
        s["code"]: s["eligibility"]["min_common_tier"]
        for s in catalogue.scenarios()
        if s["open_to_visitors"]
    } | {"library-deposit-free": 3, "bus-fare-discount": 4, "power-bank-free": 3}
    assert {code: e["min_level"] for code, e in offered.items()} == expected
    assert offered["lodging-hsg-late-checkout"] == {
        "code": "lodging-hsg-late-checkout",
        "category": "lodging",
        "name_zh": "信易住·黄石港区诚信酒店延迟退房",
        "name_en": "Huangshigang Trusted Hotel: Late check-out",
        "benefit_zh": "免费延迟退房至14:00",
        "benefit_en": "Free late check-out until 14:00",
        "min_level": 3,
    }
    # Residents' benefits stay theirs: a visitor is refused at the desk, with the reason.
    registry.scenario_for_use(
        session, "transport-xl-bike-free", venue_id=None, today=TODAY, visitor=True
    )
    with pytest.raises(ScenarioUnavailable, match="not offered to visitors"):
        registry.scenario_for_use(
            session, "transport-xl-fare-discount", venue_id=None, today=TODAY, visitor=True
        )
