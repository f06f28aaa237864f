"""The scenario registry as its users meet it: review workflow, versions, field checks, operators'
boundaries, verification and redemption against the live version, quotas, and "my benefits"."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor
from citycredit.core.audit import AuditEvent
from citycredit.core.clients import ApiClient, register_client
from citycredit.core.config import Settings, load_settings
from credit_codes import operations as codes
from credit_codes.models import Redemption, RedemptionCounter, Verification
from points_engine.models import Citizen
from points_engine.operations import give_consent
from points_engine.tiers import common_tier
from scenarios import catalogue
from scenarios import operations as registry
from scenarios.benefits import BenefitView, my_benefits
from scenarios.demo import load_catalogue
from scenarios.models import Operator, Scenario, ScenarioVenue, ScenarioVersion, Venue
from scenarios.operations import (
    InvalidScenario,
    NotPermitted,
    ScenarioUnavailable,
    UnknownScenario,
    WorkflowError,
)
from tests import factories
from tests.conftest import TODAY
from tests.rule_cases import ITEMISED

# 10:00 on TODAY (2026-06-30) in the city's timezone (Asia/Shanghai, UTC+8).
NOW = dt.datetime(2026, 6, 30, 2, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)

OFFICE = Actor("reviewer@credit-office", can_publish=True)
LEAD = Actor("lead@credit-office", can_publish=True)
AUDITOR = Actor("auditor@city", read_only=True)


@pytest.fixture(autouse=True)
def _fresh_rule_cache() -> Iterator[None]:
    # scenarios.operations.rule_of caches parsed rules by version id for the whole process. SQLite
    # hands the ids of rolled-back rows out again, so without this a rule cached by an earlier test
    # would answer for another test's version with the same id.
    registry._RULES.clear()
    yield
    registry._RULES.clear()


# --- building blocks ----------------------------------------------------------------------------


@dataclass
class Registry:
    library: Operator
    bus: Operator
    librarian: Actor  # the library bureau's staff
    dispatcher: Actor  # the bus company's staff
    central: Venue  # library venues
    east: Venue
    hub: Venue  # the bus company's venue


@pytest.fixture
def reg(session: Session) -> Registry:
    library = registry.ensure_operator(session, "test-library", "测试图书馆", "Test Library")
    bus = registry.ensure_operator(session, "test-bus", "测试公交", "Test Bus")
    setup = Actor("setup")

    def venue(operator: Operator, code: str, category: str, zh: str, en: str) -> Venue:
        return registry.add_venue(
            session, setup, operator=operator, code=code, category=category, name_zh=zh, name_en=en
        )

    return Registry(
        library=library,
        bus=bus,
        librarian=Actor("librarian@library", operator_id=library.id),
        dispatcher=Actor("dispatcher@bus", operator_id=bus.id),
        central=venue(library, "lib-central", "library", "中心图书馆", "Central Library"),
        east=venue(library, "lib-east", "library", "东区分馆", "East Branch"),
        hub=venue(bus, "bus-hub", "transport", "公交枢纽", "Bus Hub"),
    )


def content(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name_zh": "信易阅·免押金借书",
        "name_en": "Deposit-free borrowing",
        "benefit_zh": "免押金借阅图书",
        "benefit_en": "Borrow books without a deposit",
        "eligibility": {"min_common_tier": 3},
    }
    data.update(overrides)
    return data


def draft(
    session: Session,
    reg: Registry,
    code: str,
    *,
    venues: tuple[str, ...] = (),
    **overrides: Any,
) -> Scenario:
    return registry.create_scenario(
        session,
        reg.librarian,
        code=code,
        operator=reg.library,
        category="library",
        content=content(**overrides),
        venue_codes=venues,
    )


def live(
    session: Session,
    reg: Registry,
    code: str,
    *,
    venues: tuple[str, ...] = (),
    **overrides: Any,
) -> Scenario:
    """A library scenario written by the librarian and published by the credit office."""
    scenario = draft(session, reg, code, venues=venues, **overrides)
    registry.submit(session, reg.librarian, scenario)
    registry.publish(session, OFFICE, scenario)
    return scenario


def states(session: Session, scenario: Scenario) -> dict[int, str]:
    return {v.number: v.state for v in registry.versions_of(session, scenario.id)}


@pytest.fixture
def settings(session: Session, tmp_path: Path) -> Settings:
    """A city with the test scoring model published, able to issue and check codes."""
    factories.source(session)
    factories.published(session, ITEMISED)
    return load_settings(env={"CITYCREDIT_INSTANCE_DIR": str(tmp_path)}, environment="development")


def scored(session: Session, *items: str, born: dt.date | None = None) -> Citizen:
    """A consenting citizen scored by the test model: no records is 1000 (tier A, common level 3),
    an AWARD makes 1010 (AA, level 4), WATCH sets tier B (level 2) directly, DEBTOR sets D (level 1)."""
    person = factories.citizen(session, consent=False)
    for item in items:
        factories.record(session, person, item, "2026-06-01")
    if born is not None:
        person.birth_date = born
    give_consent(session, person, channel="app", as_of=TODAY)
    return person


def desk(session: Session, venue: Venue | None = None) -> ApiClient:
    # Its secret is never used: the desk is called in process.
    client = register_client(
        session, name="测试服务台", kind="venue", scopes=["verify", "redeem"], key_secret=bytes(32)
    ).client
    if venue is not None:
        client.venue_id = venue.id
        session.flush()
    return client


@dataclass
class Desk:
    """Shortcuts for scanning a citizen's fresh code at a desk at a given moment."""

    session: Session
    settings: Settings
    client: ApiClient

    def code(self, person: Citizen, now: dt.datetime) -> str:
        return codes.issue_credit_code(
            self.session, self.settings, person, now=now, actor="city-app"
        ).token

    def verify(
        self, person: Citizen, scenario: str, now: dt.datetime = NOW
    ) -> codes.VerificationResult:
        token = self.code(person, now)
        return codes.verify_presentation(
            self.session, self.settings, self.client, token, scenario, now=now
        )

    def redeem(self, person: Citizen, scenario: str, now: dt.datetime = NOW) -> Redemption:
        token = self.code(person, now)
        return codes.redeem(
            self.session, self.settings, self.client, token, scenario, now=now
        ).redemption


@pytest.fixture
def desk_of(session: Session, settings: Settings) -> Callable[..., Desk]:
    def make(venue: Venue | None = None) -> Desk:
        return Desk(session, settings, desk(session, venue))

    return make


def used(session: Session, scenario: Scenario) -> dict[tuple[int, str], int]:
    """Quota use per (citizen, period), read from the database; a row at zero is no use."""
    rows = session.execute(
        select(RedemptionCounter.citizen_id, RedemptionCounter.period, RedemptionCounter.used)
        .where(RedemptionCounter.scenario_id == scenario.id)
        .order_by(RedemptionCounter.citizen_id, RedemptionCounter.period)
    )
    return {(citizen, period): n for citizen, period, n in rows if n}


def redeemed_total(session: Session, scenario: Scenario) -> int:
    return session.execute(
        select(Scenario.redeemed_total).where(Scenario.id == scenario.id)
    ).scalar_one()


# --- workflow ---------------------------------------------------------------------------------


def test_review_workflow_from_draft_to_published_with_four_eyes(
    session: Session, reg: Registry
) -> None:
    author = Actor("author@credit-office", can_publish=True)  # may publish, but not own work
    no_right = Actor("clerk@credit-office")
    office = registry.ensure_operator(session, "test-office", "信用办", "Credit Office")
    scenario = registry.create_scenario(
        session,
        author,
        code="office-green-channel",
        operator=office,
        category="government",
        content=content(),
    )
    assert (scenario.status, states(session, scenario)) == ("draft", {1: "draft"})

    registry.submit(session, author, scenario)
    assert (scenario.status, states(session, scenario)) == ("in_review", {1: "in_review"})
    with pytest.raises(WorkflowError, match="under review"):
        registry.edit_scenario(session, author, scenario, content(benefit_en="changed"))
    assert registry.pending_version(session, scenario.id).benefit_en == content()["benefit_en"]  # type: ignore[union-attr]
    with pytest.raises(WorkflowError):
        registry.submit(session, author, scenario)  # nothing left to submit

    with pytest.raises(InvalidScenario) as blank:
        registry.reject(session, OFFICE, scenario, "   ")
    assert "review_note" in blank.value.errors
    rejected = registry.reject(session, OFFICE, scenario, "请补充英文说明 / add the English text")
    assert (scenario.status, rejected.state) == ("draft", "draft")
    assert rejected.reviewed_by == OFFICE.name

    # Back in the author's hands: editable in place (still version 1), and the note stays with it.
    edited = registry.edit_scenario(
        session, author, scenario, content(benefit_en="Priority service")
    )
    assert (edited.number, edited.benefit_en) == (1, "Priority service")
    assert edited.review_note == "请补充英文说明 / add the English text"

    registry.submit(session, author, scenario)
    with pytest.raises(NotPermitted, match="four eyes"):
        registry.publish(session, author, scenario)
    with pytest.raises(NotPermitted):
        registry.publish(session, no_right, scenario)
    assert scenario.status == "in_review" and states(session, scenario) == {1: "in_review"}

    version = registry.publish(session, OFFICE, scenario, "同意")
    assert (scenario.status, states(session, scenario)) == ("published", {1: "published"})
    assert version.reviewed_by == OFFICE.name and version.published_at is not None
    assert registry.live_version(session, scenario.id) is version
    with pytest.raises(WorkflowError):
        registry.publish(session, LEAD, scenario)  # nothing waits for review any more
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.like("scenario.%"))
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "scenario.create",
        "scenario.submit",
        "scenario.reject",
        "scenario.edit",
        "scenario.submit",
        "scenario.publish",
    ]


def test_suspend_resume_retire_and_the_transitions_that_are_refused(
    session: Session, reg: Registry
) -> None:
    scenario = live(session, reg, "lib-borrow")
    with pytest.raises(WorkflowError, match="cannot resume a scenario that is published"):
        registry.resume(session, reg.librarian, scenario)

    registry.suspend(session, reg.librarian, scenario, "系统维护")
    assert scenario.status == "suspended"
    with pytest.raises(WorkflowError, match="suspended"):
        registry.suspend(session, reg.librarian, scenario)
    registry.resume(session, reg.librarian, scenario)
    assert scenario.status == "published"

    registry.retire(session, reg.librarian, scenario, "停止合作")
    assert scenario.status == "retired"
    for step in (registry.suspend, registry.resume, registry.retire):
        with pytest.raises(WorkflowError, match="retired"):
            step(session, reg.librarian, scenario)
    with pytest.raises(WorkflowError, match="retired"):
        registry.edit_scenario(session, reg.librarian, scenario, content(benefit_en="again"))
    assert states(session, scenario) == {1: "published"}  # history stays; no new version

    unpublished = draft(session, reg, "lib-never")
    with pytest.raises(WorkflowError):
        registry.suspend(session, reg.librarian, unpublished)  # only a live scenario is suspended


def test_retiring_withdraws_pending_versions(session: Session, reg: Registry) -> None:
    in_review = live(session, reg, "lib-with-v2")
    registry.edit_scenario(session, reg.librarian, in_review, content(benefit_en="v2"))
    registry.submit(session, reg.librarian, in_review)
    unpublished = draft(session, reg, "lib-draft-only")

    registry.retire(session, reg.librarian, in_review)
    registry.retire(session, reg.librarian, unpublished)

    assert states(session, in_review) == {1: "published", 2: "withdrawn"}
    assert states(session, unpublished) == {1: "withdrawn"}
    assert registry.pending_version(session, in_review.id) is None
    with pytest.raises(WorkflowError):
        registry.publish(session, OFFICE, in_review)
    with pytest.raises(WorkflowError):
        registry.submit(session, reg.librarian, unpublished)
    # A retired scenario is gone for venues.
    with pytest.raises(UnknownScenario):
        registry.scenario_for_use(session, "lib-with-v2", venue_id=None, today=TODAY)


# --- versions ---------------------------------------------------------------------------------


def test_editing_a_published_scenario_opens_version_2_while_version_1_serves(
    session: Session, reg: Registry, settings: Settings, desk_of: Callable[..., Desk]
) -> None:
    at = desk_of()
    person = scored(session)  # common level 3
    scenario = live(session, reg, "lib-borrow", benefit_en="v1: 20 books")
    v1 = registry.live_version(session, scenario.id)
    assert v1 is not None

    v2 = registry.edit_scenario(
        session,
        reg.librarian,
        scenario,
        content(benefit_en="v2: 40 books", eligibility={"min_common_tier": 4}),
    )
    assert (v2.number, v2.state, scenario.status) == (2, "draft", "published")
    assert states(session, scenario) == {2: "draft", 1: "published"}

    # Venues still get version 1's rule and benefit, and the rows say so.
    checked = at.verify(person, "lib-borrow")
    assert checked.eligible and checked.as_dict()["benefit"]["en"] == "v1: 20 books"
    assert checked.verification.scenario_version_id == v1.id
    old = at.redeem(person, "lib-borrow", NOW + MINUTE)
    assert old.scenario_version_id == v1.id

    registry.submit(session, reg.librarian, scenario)
    assert at.verify(person, "lib-borrow", NOW + 2 * MINUTE).version.id == v1.id  # in review
    registry.publish(session, OFFICE, scenario)
    assert states(session, scenario) == {2: "published", 1: "superseded"}
    assert scenario.status == "published"

    now = NOW + 3 * MINUTE
    checked = at.verify(person, "lib-borrow", now)
    assert checked.verification.scenario_version_id == v2.id
    assert (checked.as_dict()["scenario_version"], checked.eligible) == (2, False)  # needs level 4
    with pytest.raises(codes.NotEligible):
        at.redeem(person, "lib-borrow", now)
    assert at.verify(scored(session, "AWARD"), "lib-borrow", now).eligible  # level 4 qualifies

    session.flush()
    assert session.scalars(
        select(Redemption.scenario_version_id).where(Redemption.scenario_id == scenario.id)
    ).all() == [v1.id]
    recorded = session.scalars(
        select(Verification.scenario_version_id)
        .where(Verification.scenario_id == scenario.id)
        .order_by(Verification.id)
    ).all()
    assert recorded == [v1.id, v1.id, v1.id, v2.id, v2.id, v2.id]


# --- field validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "overrides", "field", "fragment"),
    [
        ({"code": "Bad Code!"}, {}, "code", "lower-case letters"),
        ({"code": "ab"}, {}, "code", "3–64 characters"),
        ({"category": "casino"}, {}, "category", "unknown category"),
        ({}, {"name_zh": ""}, "name_zh", "Length"),
        ({}, {"name_en": "   "}, "name_en", "Length"),
        ({}, {"quota_per_day": 0}, "quota_per_day", "greater than or equal to 1"),
        ({}, {"quota_total": 0}, "quota_total", "greater than or equal to 1"),
        (
            {},
            {"valid_from": "2026-07-01", "valid_until": "2026-06-01"},
            "valid_until",
            "before valid_from",
        ),
        ({}, {"quota_per_day": 5, "quota_per_month": 2}, "quota_per_month", "daily quota"),
        (
            {},
            {"eligibility": {"all": [{"min_common_tier": 3}, {"max_tier": 2}]}},
            "eligibility",
            "all.1.max_tier: unknown condition kind",
        ),
        ({}, {"eligibility": {"min_age": -1}}, "eligibility", "min_age: must be a whole number"),
        ({}, {"eligibility": '{"min_common_tier": 3'}, "eligibility", "not valid JSON"),
    ],
)
def test_each_bad_field_is_named_with_what_is_wrong(
    session: Session,
    reg: Registry,
    identity: dict[str, str],
    overrides: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    with pytest.raises(InvalidScenario) as caught:
        registry.create_scenario(
            session,
            reg.librarian,
            code=identity.get("code", "lib-valid"),
            operator=reg.library,
            category=identity.get("category", "library"),
            content=content(**overrides),
        )
    assert list(caught.value.errors) == [field]
    assert fragment in " ".join(caught.value.errors[field])
    assert session.scalar(select(func.count()).select_from(Scenario)) == 0


def test_every_bad_field_is_reported_at_once(session: Session, reg: Registry) -> None:
    """One form submission should show every problem, cross-field ones included."""
    with pytest.raises(InvalidScenario) as caught:
        registry.create_scenario(
            session,
            reg.librarian,
            code="Bad Code!",
            operator=reg.library,
            category="casino",
            content=content(
                name_zh="",
                quota_total=0,
                quota_per_day=5,
                quota_per_month=2,
                valid_from="2026-07-01",
                valid_until="2026-06-01",
                eligibility={"all": [{"min_common_tier": 3}, {"max_tier": 2}]},
            ),
        )
    errors = caught.value.errors
    assert "all.1.max_tier" in errors["eligibility"][0]
    assert sorted(errors) == sorted(
        [
            "code",
            "category",
            "name_zh",
            "quota_total",
            "quota_per_month",
            "valid_until",
            "eligibility",
        ]
    )


def test_both_cross_field_problems_are_reported_together(session: Session, reg: Registry) -> None:
    with pytest.raises(InvalidScenario) as caught:
        draft(
            session,
            reg,
            "lib-valid",
            quota_per_day=5,
            quota_per_month=2,
            valid_from="2026-07-01",
            valid_until="2026-06-01",
        )
    assert sorted(caught.value.errors) == ["quota_per_month", "valid_until"]


def test_valid_fields_are_stored_cleaned_and_a_duplicate_code_is_refused(
    session: Session, reg: Registry
) -> None:
    scenario = draft(
        session,
        reg,
        "lib-borrow",
        name_en="  Deposit-free borrowing  ",
        eligibility='{"all": [{"min_common_tier": 3}, {"min_age": 18}]}',  # JSON text, as from a form
        quota_per_day="2",
        quota_per_month="",
        valid_from="2026-07-01",
    )
    version = registry.pending_version(session, scenario.id)
    assert version is not None
    assert version.name_en == "Deposit-free borrowing"
    assert version.eligibility == {"all": [{"min_common_tier": 3}, {"min_age": 18}]}
    assert (version.quota_per_day, version.quota_per_month) == (2, None)
    assert version.valid_from == dt.date(2026, 7, 1)

    with pytest.raises(InvalidScenario) as caught:
        draft(session, reg, "lib-borrow")
    assert caught.value.errors == {"code": ["scenario 'lib-borrow' exists already"]}
    assert session.scalar(select(func.count()).select_from(Scenario)) == 1


# --- operators and their boundaries -------------------------------------------------------------


def test_an_operator_neither_sees_nor_changes_another_operators_scenarios(
    session: Session, reg: Registry
) -> None:
    night_bus = registry.create_scenario(
        session,
        reg.dispatcher,
        code="bus-night-line",
        operator=reg.bus,
        category="transport",
        content=content(name_en="Night bus"),
        venue_codes=["bus-hub"],
    )
    registry.submit(session, reg.dispatcher, night_bus)
    registry.publish(session, OFFICE, night_bus)
    own = draft(session, reg, "lib-own", venues=("lib-central",))

    assert registry.find_scenario(session, "bus-night-line", reg.dispatcher) is night_bus
    assert registry.find_scenario(session, "bus-night-line") is night_bus  # city-wide
    with pytest.raises(UnknownScenario):
        registry.find_scenario(session, "bus-night-line", reg.librarian)

    attempts: list[Callable[[], object]] = [
        lambda: registry.edit_scenario(session, reg.librarian, night_bus, content()),
        lambda: registry.suspend(session, reg.librarian, night_bus),
        lambda: registry.retire(session, reg.librarian, night_bus),
        lambda: registry.set_venues(session, reg.librarian, night_bus, ["lib-central"]),
    ]
    for attempt in attempts:
        with pytest.raises(UnknownScenario):
            attempt()
    registry.edit_scenario(session, reg.dispatcher, night_bus, content(name_en="Night bus v2"))
    with pytest.raises(UnknownScenario):
        registry.submit(session, reg.librarian, night_bus)
    assert night_bus.status == "published"
    assert states(session, night_bus) == {2: "draft", 1: "published"}
    assert [v.code for v in registry.venues_of(session, night_bus.id)] == ["bus-hub"]

    # Nor may it use the other operator's venues, or act in its name.
    with pytest.raises(InvalidScenario, match="another operator"):
        registry.set_venues(session, reg.librarian, own, ["lib-central", "bus-hub"])
    assert [v.code for v in registry.venues_of(session, own.id)] == ["lib-central"]
    with pytest.raises(InvalidScenario, match="another operator"):
        draft(session, reg, "lib-at-the-hub", venues=("bus-hub",))
    with pytest.raises(NotPermitted):
        registry.create_scenario(
            session,
            reg.librarian,
            code="bus-fake",
            operator=reg.bus,
            category="transport",
            content=content(),
        )
    with pytest.raises(NotPermitted):
        registry.add_venue(
            session,
            reg.librarian,
            operator=reg.bus,
            code="bus-depot",
            category="transport",
            name_zh="车场",
            name_en="Depot",
        )
    # Its own venues are fine.
    registry.set_venues(session, reg.librarian, own, ["lib-east", "lib-central"])
    assert [v.code for v in registry.venues_of(session, own.id)] == ["lib-central", "lib-east"]


def test_a_read_only_auditor_sees_everything_and_changes_nothing(
    session: Session, reg: Registry
) -> None:
    published = live(session, reg, "lib-live", venues=("lib-central",))
    waiting = draft(session, reg, "lib-waiting")
    registry.submit(session, reg.librarian, waiting)
    auditor_who_publishes = Actor("auditor2@city", can_publish=True, read_only=True)

    assert registry.find_scenario(session, "lib-live", AUDITOR) is published
    assert registry.find_scenario(session, "lib-waiting", AUDITOR) is waiting
    attempts: list[Callable[[], object]] = [
        lambda: registry.edit_scenario(session, AUDITOR, published, content(benefit_en="x")),
        lambda: registry.suspend(session, AUDITOR, published),
        lambda: registry.retire(session, AUDITOR, published),
        lambda: registry.set_venues(session, AUDITOR, published, ["lib-east"]),
        lambda: registry.publish(session, AUDITOR, waiting),
        lambda: registry.reject(session, AUDITOR, waiting, "不同意"),
        lambda: registry.publish(session, auditor_who_publishes, waiting),
        lambda: registry.create_scenario(
            session,
            AUDITOR,
            code="lib-audit",
            operator=reg.library,
            category="library",
            content=content(),
        ),
        lambda: registry.add_venue(
            session,
            AUDITOR,
            operator=reg.library,
            code="lib-west",
            category="library",
            name_zh="西区分馆",
            name_en="West Branch",
        ),
    ]
    for attempt in attempts:
        with pytest.raises(NotPermitted):
            attempt()
    registry.suspend(session, reg.librarian, published)
    with pytest.raises(NotPermitted):
        registry.resume(session, AUDITOR, published)
    assert (published.status, waiting.status) == ("suspended", "in_review")
    assert states(session, published) == {1: "published"}
    assert [v.code for v in registry.venues_of(session, published.id)] == ["lib-central"]
    assert session.scalar(select(func.count()).select_from(Scenario)) == 2


# --- using a scenario at a venue ---------------------------------------------------------------


def test_a_scenario_is_used_only_while_live_and_within_its_dates(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    at = desk_of()
    person = scored(session)
    scenario = live(session, reg, "lib-borrow")
    assert at.verify(person, "lib-borrow").eligible

    registry.suspend(session, reg.librarian, scenario, "系统维护")
    with pytest.raises(ScenarioUnavailable, match="suspended"):
        at.verify(person, "lib-borrow", NOW + MINUTE)
    with pytest.raises(ScenarioUnavailable, match="suspended"):
        at.redeem(person, "lib-borrow", NOW + MINUTE)
    registry.resume(session, reg.librarian, scenario)
    assert at.redeem(person, "lib-borrow", NOW + 2 * MINUTE)

    live(session, reg, "lib-summer", valid_from="2026-07-10", valid_until="2026-08-31")
    with pytest.raises(ScenarioUnavailable, match="starts on 2026-07-10"):
        at.verify(person, "lib-summer")
    with pytest.raises(ScenarioUnavailable, match="starts on 2026-07-10"):
        at.redeem(person, "lib-summer")
    assert at.verify(person, "lib-summer", dt.datetime(2026, 7, 10, 1, tzinfo=dt.UTC)).eligible

    live(session, reg, "lib-spring", valid_from="2026-03-01", valid_until="2026-06-29")
    with pytest.raises(ScenarioUnavailable, match="ended on 2026-06-29"):
        at.verify(person, "lib-spring")
    # The last day counts in the city's own time: 23:59 on the 29th there is 15:59 UTC.
    assert at.verify(person, "lib-spring", dt.datetime(2026, 6, 29, 15, 59, tzinfo=dt.UTC)).eligible
    with pytest.raises(ScenarioUnavailable, match="ended on 2026-06-29"):
        at.verify(person, "lib-spring", dt.datetime(2026, 6, 29, 16, 1, tzinfo=dt.UTC))

    with pytest.raises(UnknownScenario):
        at.verify(person, "lib-no-such-thing")
    draft(session, reg, "lib-unpublished")
    with pytest.raises(UnknownScenario):
        at.verify(person, "lib-unpublished")


def test_a_venues_desk_verifies_only_what_its_venue_honours(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    person = scored(session)
    borrow = live(session, reg, "lib-central-borrow", venues=("lib-central",))
    east = live(session, reg, "lib-east-study", venues=("lib-east",))
    central_desk = desk_of(reg.central)

    assert central_desk.verify(person, "lib-central-borrow").eligible
    with pytest.raises(ScenarioUnavailable, match="not offered at this venue"):
        central_desk.verify(person, "lib-east-study")
    with pytest.raises(ScenarioUnavailable, match="not offered at this venue"):
        central_desk.redeem(person, "lib-east-study")
    assert desk_of().verify(person, "lib-east-study").eligible  # a city-wide desk may

    # Venues take effect at once, both ways.
    registry.set_venues(session, reg.librarian, east, ["lib-east", "lib-central"])
    assert central_desk.redeem(person, "lib-east-study", NOW + MINUTE)
    registry.set_venues(session, reg.librarian, borrow, ["lib-east"])
    with pytest.raises(ScenarioUnavailable, match="not offered at this venue"):
        central_desk.verify(person, "lib-central-borrow", NOW + MINUTE)


def test_eligibility_beyond_the_tier_age_score_and_direct_tier_records(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    at = desk_of()
    adult = scored(session)  # born in the 1980s, score 1000, level 3
    child = scored(session, born=TODAY.replace(year=TODAY.year - 10))
    high = scored(session, "AWARD")  # score 1010, level 4
    watched = scored(session, "WATCH")  # tier B set directly by a severe record
    live(session, reg, "lib-adults", eligibility={"all": [{"min_common_tier": 3}, {"min_age": 18}]})
    live(session, reg, "lib-high-score", eligibility={"min_local_score": 1005})
    live(session, reg, "lib-clean", eligibility={"no_direct_tier_record": True})

    assert at.verify(adult, "lib-adults").eligible
    assert not at.verify(child, "lib-adults").eligible
    with pytest.raises(codes.NotEligible):
        at.redeem(child, "lib-adults")

    assert at.verify(high, "lib-high-score").eligible
    assert not at.verify(adult, "lib-high-score").eligible
    with pytest.raises(codes.NotEligible):
        at.redeem(adult, "lib-high-score")

    assert at.verify(adult, "lib-clean").eligible
    assert not at.verify(watched, "lib-clean").eligible
    with pytest.raises(codes.NotEligible):
        at.redeem(watched, "lib-clean")
    assert session.scalar(select(func.count()).select_from(Redemption)) == 0


# --- quotas -----------------------------------------------------------------------------------


def test_daily_quota_refuses_the_third_redemption_and_renews_at_the_citys_midnight(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    at = desk_of()
    person = scored(session)
    other = scored(session)
    scenario = live(session, reg, "lib-daily", quota_per_day=2)
    at.redeem(person, "lib-daily", NOW)
    at.redeem(person, "lib-daily", NOW + MINUTE)
    with pytest.raises(codes.QuotaExhausted, match="today's quota of 2 is used"):
        at.redeem(person, "lib-daily", NOW + 2 * MINUTE)
    at.redeem(other, "lib-daily", NOW + 2 * MINUTE)  # a quota per citizen
    assert used(session, scenario) == {(person.id, "2026-06-30"): 2, (other.id, "2026-06-30"): 1}

    # 23:59 in the city is still the same day; 00:01 is the next.
    with pytest.raises(codes.QuotaExhausted):
        at.redeem(person, "lib-daily", dt.datetime(2026, 6, 30, 15, 59, tzinfo=dt.UTC))
    at.redeem(person, "lib-daily", dt.datetime(2026, 6, 30, 16, 1, tzinfo=dt.UTC))
    at.redeem(person, "lib-daily", NOW + DAY)
    assert used(session, scenario) == {
        (person.id, "2026-06-30"): 2,
        (person.id, "2026-07-01"): 2,
        (other.id, "2026-06-30"): 1,
    }
    assert redeemed_total(session, scenario) == 5


def test_monthly_quota_and_a_refusal_leaves_the_daily_counter_as_it_was(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    at = desk_of()
    person = scored(session)
    scenario = live(session, reg, "lib-monthly", quota_per_day=2, quota_per_month=3)
    at.redeem(person, "lib-monthly", NOW - DAY)
    at.redeem(person, "lib-monthly", NOW - DAY + MINUTE)
    at.redeem(person, "lib-monthly", NOW)
    before = used(session, scenario)
    assert before == {
        (person.id, "2026-06"): 3,
        (person.id, "2026-06-29"): 2,
        (person.id, "2026-06-30"): 1,
    }
    # Today's quota has room, the month's has not: refused, and today's counter is not advanced.
    with pytest.raises(codes.QuotaExhausted, match="this month's quota of 3 is used"):
        at.redeem(person, "lib-monthly", NOW + MINUTE)
    assert used(session, scenario) == before
    assert redeemed_total(session, scenario) == 3

    at.redeem(person, "lib-monthly", NOW + DAY)  # July
    assert used(session, scenario)[(person.id, "2026-07")] == 1


def test_total_quota_is_shared_by_everyone_and_refusals_change_no_counter(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    at, elsewhere = desk_of(), desk_of(reg.central)
    first, second, third = scored(session), scored(session), scored(session)
    scenario = live(
        session, reg, "lib-limited", venues=("lib-central",), quota_per_day=1, quota_total=2
    )
    at.redeem(first, "lib-limited", NOW)
    elsewhere.redeem(second, "lib-limited", NOW + MINUTE)
    before = used(session, scenario)
    assert before == {(first.id, "2026-06-30"): 1, (second.id, "2026-06-30"): 1}

    with pytest.raises(codes.QuotaExhausted, match="all 2 of this benefit are given out"):
        elsewhere.redeem(third, "lib-limited", NOW + 2 * MINUTE)
    with pytest.raises(codes.QuotaExhausted, match="all 2 of this benefit are given out"):
        at.redeem(first, "lib-limited", NOW + DAY)  # a new day renews the daily, not the total
    assert used(session, scenario) == before
    assert redeemed_total(session, scenario) == 2
    assert session.scalar(select(func.count()).select_from(Redemption)) == 2


def test_a_code_redeems_a_benefit_once_and_the_second_try_changes_no_counter(
    session: Session, reg: Registry, settings: Settings, desk_of: Callable[..., Desk]
) -> None:
    at = desk_of()
    person = scored(session)
    scenario = live(session, reg, "lib-twice", quota_per_day=5, quota_per_month=20)
    token = at.code(person, NOW)
    codes.redeem(session, settings, at.client, token, "lib-twice", now=NOW)
    before = used(session, scenario)
    with pytest.raises(codes.AlreadyRedeemed):
        codes.redeem(session, settings, at.client, token, "lib-twice", now=NOW + MINUTE)
    assert (
        used(session, scenario)
        == before
        == {
            (person.id, "2026-06"): 1,
            (person.id, "2026-06-30"): 1,
        }
    )
    assert redeemed_total(session, scenario) == 1


@pytest.mark.parametrize(
    "quotas",
    [{"quota_per_day": 1}, {"quota_per_month": 1}, {"quota_total": 1}],
    ids=["day", "month", "total"],
)
def test_a_replayed_code_is_already_redeemed_even_when_the_quota_is_used_up(
    session: Session,
    reg: Registry,
    settings: Settings,
    desk_of: Callable[..., Desk],
    quotas: dict[str, int],
) -> None:
    at = desk_of()
    person = scored(session)
    scenario = live(session, reg, "lib-once", **quotas)
    token = at.code(person, NOW)
    codes.redeem(session, settings, at.client, token, "lib-once", now=NOW)
    before = used(session, scenario)
    # The quota of one is used by this very code: the replay is told so, not "quota exhausted".
    with pytest.raises(codes.AlreadyRedeemed):
        codes.redeem(session, settings, at.client, token, "lib-once", now=NOW + MINUTE)
    # A fresh code of the same citizen is the one that meets the quota.
    with pytest.raises(codes.QuotaExhausted):
        at.redeem(person, "lib-once", NOW + 2 * MINUTE)
    assert used(session, scenario) == before
    assert redeemed_total(session, scenario) == 1
    assert session.scalar(select(func.count()).select_from(Redemption)) == 1


# --- my benefits ------------------------------------------------------------------------------


def _expected_tiers() -> dict[str, int]:
    """Each catalogue scenario's minimum common tier, read from its rule as written."""
    out = {}
    for spec in catalogue.scenarios():
        rule = spec["eligibility"]
        parts = rule.get("all", [rule])
        out[spec["code"]] = next(p["min_common_tier"] for p in parts if "min_common_tier" in p)
    return out


def _by_code(views: list[BenefitView]) -> dict[str, BenefitView]:
    return {v.code: v for v in views}


def test_my_benefits_shows_the_catalogue_with_reasons_for_what_is_out_of_reach(
    session: Session, settings: Settings
) -> None:
    assert load_catalogue(session) >= 200
    top = scored(session, "AWARD")  # level 4, the model's best, an adult
    low = scored(session, "DEBTOR")  # level 1, set directly
    child = scored(session, "AWARD", born=TODAY.replace(year=TODAY.year - 10))

    top_views = my_benefits(session, top, today=TODAY, actor="citizen-page")
    low_views = my_benefits(session, low, today=TODAY, actor="citizen-page")
    child_views = my_benefits(session, child, today=TODAY, actor="citizen-page")
    expected = _expected_tiers()
    assert set(_by_code(top_views)) == set(expected)

    top_ok = {v.code for v in top_views if v.eligible}
    low_ok = {v.code for v in low_views if v.eligible}
    assert top_ok == {code for code, tier in expected.items() if tier <= 4}
    assert low_ok == set()
    assert len(top_ok) > len(low_ok)

    for view in top_views + low_views + child_views:
        assert view.needed_tier == expected[view.code]
        assert view.requirement_zh and view.requirement_en
        assert view.venues and view.operator_zh and view.category_zh.startswith("信易")
        if view.eligible:
            assert view.unmet == []
        else:
            assert view.unmet, view.code
            for reason in view.unmet:
                assert reason.en and any("\u4e00" <= ch <= "\u9fff" for ch in reason.zh)

    free_entry = _by_code(top_views)["tourism-hsg-free-entry"]  # level 5: beyond any tier here
    assert not free_entry.eligible and free_entry.needed_tier == 5
    best = common_tier(5)
    assert [(r.kind, r.zh, r.en) for r in free_entry.unmet] == [
        (
            "min_common_tier",
            f"需达到通用等级 {best.name_zh}及以上",
            f"needs common level {best.name_en} or above",
        )
    ]
    # The child has the top tier but not the age for adults-only benefits, and is told so.
    child_refused = {v.code: v for v in child_views if not v.eligible}
    pay_later = child_refused["healthcare-hsg-pay-later"]
    assert [(r.kind, r.en, r.zh) for r in pay_later.unmet] == [
        ("min_age", "must be 18 or older", "需年满18周岁")
    ]
    assert len(child_refused) > len(top_views) - len(top_ok)

    viewed = session.scalars(
        select(AuditEvent.citizen_id).where(AuditEvent.action == "benefits.view")
    ).all()
    assert sorted(v or 0 for v in viewed) == sorted([top.id, low.id, child.id])


def test_my_benefits_shares_a_list_only_between_citizens_whose_rules_come_out_the_same(
    session: Session, settings: Settings
) -> None:
    load_catalogue(session)
    top, low = scored(session, "AWARD"), scored(session, "DEBTOR")
    unscored = factories.citizen(session, consent=False)

    first = my_benefits(session, top, today=TODAY, actor="page")
    low_views = my_benefits(session, low, today=TODAY, actor="page")
    unscored_views = my_benefits(session, unscored, today=TODAY, actor="page")
    again = my_benefits(session, top, today=TODAY, actor="page")

    assert again == first and again is not first  # a list of one's own, its views kept
    assert any(v.eligible for v in first) and not any(v.eligible for v in low_views)
    assert {r.en for v in unscored_views for r in v.unmet} >= {"not scored (no consent given)"}
    assert [v.code for v in low_views] == [v.code for v in first]
    with pytest.raises(dataclasses.FrozenInstanceError):
        again[0].eligible = not again[0].eligible  # type: ignore[misc]  # shared: never changed
    viewed = session.scalar(select(func.count()).where(AuditEvent.action == "benefits.view"))
    assert viewed == 4  # every call is audited, whether its list was kept or made


def test_my_benefits_lists_only_what_is_in_effect_today(
    session: Session, settings: Settings, reg: Registry
) -> None:
    load_catalogue(session)
    person = scored(session, "AWARD")
    catalogue_size = len(my_benefits(session, person, today=TODAY, actor="page"))
    city = Actor("city-ops")
    registry.suspend(session, city, registry.find_scenario(session, "library-hsg-deposit-free"))
    registry.retire(session, city, registry.find_scenario(session, "library-xl-study-room"))
    live(session, reg, "lib-summer", valid_from="2026-07-01")
    live(session, reg, "lib-spring", valid_until="2026-06-29")
    live(session, reg, "lib-today", valid_from="2026-06-30", valid_until="2026-06-30")
    draft(session, reg, "lib-draft")
    in_review = draft(session, reg, "lib-in-review")
    registry.submit(session, reg.librarian, in_review)

    listed = _by_code(my_benefits(session, person, today=TODAY, actor="page"))
    for absent in (
        "library-hsg-deposit-free",
        "library-xl-study-room",
        "lib-summer",
        "lib-spring",
        "lib-draft",
        "lib-in-review",
    ):
        assert absent not in listed
    assert "lib-today" in listed and listed["lib-today"].valid_until == TODAY
    assert len(listed) == catalogue_size - 2 + 1
    # Tomorrow the summer benefit starts and today's ends.
    tomorrow = _by_code(my_benefits(session, person, today=TODAY + DAY, actor="page"))
    assert "lib-summer" in tomorrow and "lib-today" not in tomorrow


def test_without_consent_nothing_tier_based_is_open_and_the_reason_says_not_scored(
    session: Session, settings: Settings, reg: Registry
) -> None:
    load_catalogue(session)
    live(session, reg, "lib-adults-any-tier", eligibility={"min_age": 18})
    person = factories.citizen(session, consent=False)
    views = my_benefits(session, person, today=TODAY, actor="citizen-page")
    assert len(views) >= 200
    for view in views:
        if view.needed_tier is None:
            continue
        assert not view.eligible
        assert [(r.zh, r.en) for r in view.unmet if r.kind == "min_common_tier"] == [
            ("尚未授权信用评分", "not scored (no consent given)")
        ]
    assert _by_code(views)["lib-adults-any-tier"].eligible  # an age rule needs no score
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "benefits.view"))
    assert event is not None and event.citizen_id == person.id and event.actor == "citizen-page"


def test_needed_tier_is_the_tier_the_whole_rule_asks_for(
    session: Session, settings: Settings, reg: Registry
) -> None:
    live(
        session,
        reg,
        "lib-two-tiers",
        eligibility={"all": [{"min_common_tier": 2}, {"min_common_tier": 4}]},
    )
    view = _by_code(my_benefits(session, scored(session), today=TODAY, actor="page"))[
        "lib-two-tiers"
    ]
    assert not view.eligible  # level 3 meets the first condition, not the second
    assert view.needed_tier == 4


def test_a_rule_read_during_review_is_not_reused_after_the_version_is_changed(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    """A reviewer's screen reading the rule of a version in review must not pin that rule: the version
    can be sent back, edited and published with another rule."""
    at = desk_of()
    person = scored(session)  # level 3
    scenario = draft(session, reg, "lib-changed-in-review", eligibility={"min_common_tier": 3})
    version = registry.submit(session, reg.librarian, scenario)
    assert registry.rule_of(version).to_data() == {"min_common_tier": 3}
    registry.reject(session, OFFICE, scenario, "门槛过低 / set the bar at level 4")
    registry.edit_scenario(
        session, reg.librarian, scenario, content(eligibility={"min_common_tier": 4})
    )
    registry.submit(session, reg.librarian, scenario)
    registry.publish(session, OFFICE, scenario)
    # The published rule asks for level 4: a level-3 citizen does not qualify.
    assert not at.verify(person, "lib-changed-in-review").eligible
    assert registry.rule_of(version).to_data() == {"min_common_tier": 4}


def test_a_rolled_back_version_does_not_lend_its_rule_to_a_later_one(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    """A unit of work that published and used a scenario and was then rolled back leaves nothing
    behind, not even in a cache (SQLite gives the rolled-back rows' ids to the next rows)."""
    at = desk_of()
    person = scored(session)  # level 3
    savepoint = session.begin_nested()
    live(session, reg, "lib-rolled-back", eligibility={"min_common_tier": 3})
    assert at.verify(person, "lib-rolled-back").eligible
    savepoint.rollback()
    live(session, reg, "lib-kept", eligibility={"min_common_tier": 4})
    assert not at.verify(person, "lib-kept").eligible


# --- the demo catalogue -----------------------------------------------------------------------


def test_the_demo_catalogue_loads_once_with_every_scenario_live_at_its_venue(
    session: Session,
) -> None:
    def counts() -> list[int]:
        return [
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Operator, Venue, Scenario, ScenarioVersion, ScenarioVenue, AuditEvent)
        ]

    added = load_catalogue(session)
    after_first = counts()
    assert load_catalogue(session) == 0
    assert counts() == after_first

    specs = {spec["code"]: spec for spec in catalogue.scenarios()}
    assert added == len(specs) >= 200
    rows = session.execute(
        select(Scenario.code, Scenario.category, Scenario.status, Venue.code)
        .join(ScenarioVenue, ScenarioVenue.scenario_id == Scenario.id)
        .join(Venue, Venue.id == ScenarioVenue.venue_id)
    ).all()
    assert {code for code, *_ in rows} == set(specs)
    assert len({category for _, category, _, _ in rows}) >= 8
    for code, category, status, venue in rows:
        assert status == "published"
        assert (category, venue) == (specs[code]["category"], specs[code]["venue"])
    versions = session.execute(
        select(ScenarioVersion.state, func.count()).group_by(ScenarioVersion.state)
    ).all()
    assert dict(versions) == {"published": len(specs)}
    # Each is usable at its own venue's desk.
    for code, spec in list(specs.items())[:: len(specs) // 10]:
        venue = session.scalar(select(Venue).where(Venue.code == spec["venue"]))
        assert venue is not None
        scenario, version = registry.scenario_for_use(session, code, venue_id=venue.id, today=TODAY)
        assert (scenario.code, version.number) == (code, 1)


# --- review fixes ---------------------------------------------------------------------------------


def test_a_code_keeps_its_answer_after_consent_is_withdrawn(
    session: Session, reg: Registry, desk_of: Callable[..., Desk]
) -> None:
    """Score and direct-tier facts travel sealed in the code: withdrawal cannot show through it."""
    from points_engine.operations import withdraw_consent

    live(session, reg, "lib-score", eligibility={"min_local_score": 1005})
    live(session, reg, "lib-clean", eligibility={"no_direct_tier_record": True})
    at = desk_of()
    good, watched = scored(session, "AWARD"), scored(session, "WATCH")
    good_code, watched_code = at.code(good, NOW), at.code(watched, NOW)
    for person in (good, watched):
        withdraw_consent(session, person, channel="app")

    def verdict(token: str, scenario: str) -> bool:
        return codes.verify_presentation(
            session, at.settings, at.client, token, scenario, now=NOW + MINUTE
        ).eligible

    assert verdict(good_code, "lib-score") is True  # not "no longer scored"
    assert verdict(watched_code, "lib-clean") is False  # the severe record still counts
    # The sealed facts are the city's: the venue-readable claims carry no score.
    import jwt

    claims = jwt.decode(good_code, options={"verify_signature": False})
    # (``mv`` names the tier mapping; ``xc`` appears only with consent to cross-city recognition.)
    assert set(claims) == {"iss", "sub", "ct", "lt", "mv", "iat", "exp", "jti"}
    assert "1010" not in good_code


def test_only_the_city_lifts_the_citys_suspension(session: Session, reg: Registry) -> None:
    scenario = live(session, reg, "lib-brake")
    registry.suspend(session, OFFICE, scenario, "complaints")
    with pytest.raises(NotPermitted, match="only the city"):
        registry.resume(session, reg.librarian, scenario)
    registry.resume(session, OFFICE, scenario)
    registry.suspend(session, reg.librarian, scenario, "stock-take")
    registry.resume(session, reg.librarian, scenario)  # its own brake, its own to release
    assert scenario.status == "published"


def test_four_eyes_covers_whoever_wrote_the_version(session: Session, reg: Registry) -> None:
    scenario = draft(session, reg, "lib-eyes")
    registry.edit_scenario(session, LEAD, scenario, content(benefit_zh="由领导改写"))
    registry.submit(session, reg.librarian, scenario)
    with pytest.raises(NotPermitted, match="four eyes"):
        registry.publish(session, LEAD, scenario)  # LEAD wrote the content it would approve
    registry.publish(session, OFFICE, scenario)
    assert states(session, scenario) == {1: "published"}


def test_nested_and_reserved_input_is_refused_with_a_reason(
    session: Session, reg: Registry
) -> None:
    rule: dict[str, Any] = {"min_common_tier": 3}
    for _ in range(300):
        rule = {"all": [rule]}
    with pytest.raises(InvalidScenario) as deep:
        draft(session, reg, "lib-deep", eligibility=rule)
    assert "nested too deeply" in deep.value.errors["eligibility"][0]
    with pytest.raises(InvalidScenario) as reserved:
        draft(session, reg, "import")
    assert "reserved" in reserved.value.errors["code"][0]


def test_csv_import_leaves_absent_columns_alone_and_exports_no_formulas(
    session: Session, reg: Registry
) -> None:
    from scenarios import csvio

    scenario = live(
        session, reg, "lib-csv", venues=("lib-central",), quota_per_day=2, quota_per_month=9
    )
    data = (
        b"code,operator,category,name_zh,name_en,benefit_zh,benefit_en,eligibility\n"
        b'lib-csv,test-library,library,=HYPERLINK("x"),N,B,B,"{""min_common_tier"":3}"\n'
    )
    report = csvio.import_csv(session, reg.librarian, data)
    assert (report.updated, report.errors) == (["lib-csv"], [])
    pending = registry.pending_version(session, scenario.id)
    assert pending is not None and (pending.quota_per_day, pending.quota_per_month) == (2, 9)
    assert [v.code for v in registry.venues_of(session, scenario.id)] == ["lib-central"]
    import io

    out = io.StringIO()
    csvio.write_csv(session, reg.librarian, out)
    assert "'=HYPERLINK" in out.getvalue()  # shown as text by a spreadsheet, never run
    again = csvio.import_csv(session, reg.librarian, out.getvalue().encode())
    assert again.unchanged == ["lib-csv"] and pending.name_zh == '=HYPERLINK("x")'


def test_csv_errors_name_the_first_line_of_a_multi_line_row(
    session: Session, reg: Registry
) -> None:
    from scenarios import csvio

    data = (
        "code,operator,category,name_zh,name_en,benefit_zh,benefit_en,eligibility\n"
        # A line break belongs in a benefit only (a name is one line, as on the admin form).
        'lib-multi,test-library,library,名称,N,"第一行\n第二行",B,"{""min_common_tier"":3}"\n'
        'lib-bad,test-library,library,名称,N,B,B,"{""min_common_tier"":9}"\n'
    ).encode()
    report = csvio.import_csv(session, reg.librarian, data)
    assert report.created == ["lib-multi"]
    assert [(e.line, e.code) for e in report.errors] == [(4, "lib-bad")]


def test_csv_cells_with_control_characters_are_refused_by_line_and_field_and_nothing_is_stored(
    session: Session, reg: Registry
) -> None:
    from scenarios import csvio

    data = (
        "code,operator,category,name_zh,name_en,benefit_zh,benefit_en,eligibility\n"
        'lib-\x00nul,test-library,library,名称,N,B,B,"{""min_common_tier"":3}"\n'
        'lib-esc,test-library,library,名\x1b[31m称,N,B,B,"{""min_common_tier"":3}"\n'
        'lib-tier,test-library,library,名称,N,B,B,"{""min_common_tier"":9}"\n'
        'lib-lines,test-library,library,名称,N,"第一行\n第二行\tB",B,"{""min_common_tier"":3}"\n'
    ).encode()
    report = csvio.import_csv(session, reg.librarian, data)
    assert [(e.line, e.code, e.field, e.message) for e in report.errors] == [
        (2, "lib-\\x00nul", "code", "contains a control character (U+0000)"),
        (3, "lib-esc", "name_zh", "contains a control character (U+001B)"),
        (4, "lib-tier", "eligibility", report.errors[2].message),
    ]
    # A line break and a tab belong in a benefit's text; the bad rows left the transaction usable.
    assert report.created == ["lib-lines"]
    assert list(session.scalars(select(Scenario.code))) == ["lib-lines"]
    assert session.scalar(select(func.count()).select_from(ScenarioVersion)) == 1


def test_the_registry_refuses_control_characters_in_text_from_any_entry_point(
    session: Session, reg: Registry
) -> None:
    with pytest.raises(InvalidScenario) as refused:
        draft(
            session,
            reg,
            "lib-bell",
            name_en="Ring\x07",
            benefit_zh="免押金\x7f",
            benefit_en="\ud800",
        )
    assert refused.value.errors == {
        "name_en": ["contains a control character (U+0007)"],
        "benefit_zh": [
            "contains a control character (U+007F) (only tab and line breaks are allowed)"
        ],
        "benefit_en": ["contains a lone surrogate (U+D800)"],
    }
    with pytest.raises(InvalidScenario) as trailing:
        draft(session, reg, "lib-code\n")
    assert list(trailing.value.errors) == ["code"]
    assert session.scalar(select(func.count()).select_from(Scenario)) == 0
