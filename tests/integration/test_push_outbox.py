"""The outbox: every change that partners must hear of stores its event and deliveries in its own
transaction; a rolled-back change stores none; nobody linked, nothing personal is stored."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core import keys
from citycredit.core.actors import Actor
from citycredit.core.clients import ApiClient, register_client
from points_engine import operations
from push import links
from push.models import Delivery, Event, Link
from push.subscriptions import SubscriptionError, create_subscription, signing_secrets
from scenarios import operations as registry
from scenarios.models import Operator, Scenario
from tests import factories
from tests.conftest import KEY
from tests.rule_cases import ITEMISED

TODAY = dt.date(2026, 6, 30)
SECRET = b"k" * 32


def _operator_client(session: Session, code: str) -> ApiClient:
    operator = Operator(code=code, name_zh=code + "馆", name_en=code)
    session.add(operator)
    session.flush()
    issued = register_client(
        session,
        name=code + " system",
        kind="operator",
        scopes=["links:read", "webhooks:manage"],
        operator_id=operator.id,
        key_secret=SECRET,
    )
    return issued.client


def _events(session: Session, kind: str) -> list[tuple[str, dict[str, object], int]]:
    return [
        (e.ordering_key, e.data, d.subscription_id)
        for e, d in session.execute(
            select(Event, Delivery)
            .join(Delivery, Delivery.event_id == Event.id)
            .where(Event.type == kind)
            .order_by(Event.id, Delivery.id)
        )
    ]


@pytest.fixture
def city(session: Session) -> Session:
    factories.source(session)
    factories.published(session, ITEMISED)
    return session


def test_a_level_change_reaches_only_the_operator_the_citizen_linked(city: Session) -> None:
    session = city
    library, bus = _operator_client(session, "library"), _operator_client(session, "bus")
    lib_sub, secret = create_subscription(
        session,
        library,
        url="https://lib.example/hook",
        event_types=["tier.changed"],
        key_secret=SECRET,
        actor="test",
    )
    bus_sub, _ = create_subscription(
        session,
        bus,
        url="https://bus.example/hook",
        event_types=["tier.changed"],
        key_secret=SECRET,
        actor="test",
    )
    assert secret.startswith("whsec_") and signing_secrets(
        lib_sub, key_secret=SECRET, now=dt.datetime.now(dt.UTC)
    ) == [secret]
    linked, alone = factories.citizen(session), factories.citizen(session)
    operations.recompute_all(session, as_of=TODAY)
    link = links.create_link(session, id_hash_key=KEY, citizen=linked, client=library, actor="t")
    assert link.sent_level == 3  # base 1000: tier A, common level 3

    for person in (linked, alone):
        factories.record(session, person, "AWARD", "2026-06-01")
    operations.drain_dirty(session, as_of=TODAY)

    told = _events(session, "tier.changed")
    assert [(key, data["common_level"], sub) for key, data, sub in told] == [
        (link.pseudonym, 4, lib_sub.id)
    ]
    assert set(told[0][1]) == {"pseudonym", "common_level", "valid_until"}
    assert bus_sub.id not in {sub for *_, sub in told}
    # The same level again is no news.
    operations.recompute_all(session, as_of=TODAY)
    assert len(_events(session, "tier.changed")) == 1


def test_withdrawn_consent_revokes_links_and_cancels_what_was_not_sent(city: Session) -> None:
    session = city
    library = _operator_client(session, "library")
    create_subscription(
        session,
        library,
        url="https://lib.example/hook",
        event_types=["tier.changed", "link.revoked"],
        key_secret=SECRET,
        actor="test",
    )
    person = factories.citizen(session)
    operations.recompute_all(session, as_of=TODAY)
    link = links.create_link(session, id_hash_key=KEY, citizen=person, client=library, actor="t")
    factories.record(session, person, "AWARD", "2026-06-01")
    operations.drain_dirty(session, as_of=TODAY)
    assert len(_events(session, "tier.changed")) == 1

    operations.withdraw_consent(session, person, channel="test")
    session.refresh(link)
    assert link.revoked_at is not None and link.revoked_by == "consent-withdrawn"
    statuses = session.execute(
        select(Event.type, Delivery.status)
        .join(Delivery, Delivery.event_id == Event.id)
        .order_by(Delivery.id)
    ).all()
    assert [tuple(s) for s in statuses] == [
        ("tier.changed", "cancelled"),
        ("link.revoked", "pending"),
    ]
    with pytest.raises(links.LinkError):
        links.create_link(session, id_hash_key=KEY, citizen=person, client=library, actor="t")


def test_pseudonyms_are_pairwise(city: Session) -> None:
    session = city
    library, bus = _operator_client(session, "library"), _operator_client(session, "bus")
    person = factories.citizen(session)
    one = links.create_link(session, id_hash_key=KEY, citizen=person, client=library, actor="t")
    two = links.create_link(session, id_hash_key=KEY, citizen=person, client=bus, actor="t")
    again = links.create_link(session, id_hash_key=KEY, citizen=person, client=library, actor="t")
    assert one.pseudonym != two.pseudonym and again.id == one.id
    links.revoke_link(session, one, by="citizen", actor="citizen")
    relinked = links.create_link(
        session, id_hash_key=KEY, citizen=person, client=library, actor="t"
    )
    assert relinked.id != one.id and relinked.pseudonym == one.pseudonym
    assert session.scalars(select(Link.revoked_by).where(Link.id == one.id)).one() == "citizen"


def test_public_events_reach_every_subscriber_and_a_rollback_stores_none(city: Session) -> None:
    session = city
    venue_client = register_client(
        session, name="desk", kind="venue", scopes=["verify"], key_secret=SECRET
    ).client
    with pytest.raises(SubscriptionError, match="only an operator"):
        create_subscription(
            session,
            venue_client,
            url="https://desk.example/h",
            event_types=["tier.changed"],
            key_secret=SECRET,
            actor="t",
        )
    create_subscription(
        session,
        venue_client,
        url="https://desk.example/h",
        event_types=["keys.rotated"],
        key_secret=SECRET,
        actor="t",
    )
    keys.create_signing_key(session, SECRET)  # the first key replaces none
    assert _events(session, "keys.rotated") == []
    nested = session.begin_nested()
    keys.create_signing_key(session, SECRET)
    assert len(_events(session, "keys.rotated")) == 1
    nested.rollback()
    assert _events(session, "keys.rotated") == []
    keys.create_signing_key(session, SECRET)
    assert len(_events(session, "keys.rotated")) == 1


def test_scenario_status_changes_partners_could_see_are_announced(city: Session) -> None:
    session = city
    library = _operator_client(session, "library")
    operator = session.get(Operator, library.operator_id)
    assert operator is not None
    create_subscription(
        session,
        library,
        url="https://lib.example/hook",
        event_types=["scenario.published", "scenario.suspended", "scenario.retired"],
        key_secret=SECRET,
        actor="t",
    )
    staff = Actor("librarian@library", operator_id=operator.id)
    reviewer = Actor("reviewer@credit-office", can_publish=True)

    def scenario(code: str) -> Scenario:
        return registry.create_scenario(
            session,
            staff,
            code=code,
            operator=operator,
            category="library",
            content={
                "name_zh": "免押金借书",
                "name_en": "Deposit-free borrowing",
                "benefit_zh": "免押金",
                "benefit_en": "No deposit",
                "eligibility": {"min_common_tier": 3},
            },
        )

    lending = scenario("lending")
    registry.publish_directly(session, lending, submitter=staff, publisher=reviewer)
    registry.suspend(session, staff, lending, "audit")
    registry.resume(session, staff, lending)
    registry.retire(session, staff, lending)
    registry.retire(session, staff, scenario("never-shown"))  # a draft: nobody saw it

    told = session.execute(select(Event.type, Event.data).order_by(Event.id)).all()
    assert [(kind, data["scenario"]) for kind, data in told] == [
        ("scenario.published", "lending"),
        ("scenario.suspended", "lending"),
        ("scenario.published", "lending"),
        ("scenario.retired", "lending"),
    ]
