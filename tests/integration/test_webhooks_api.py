"""The webhook subscriptions API: a client makes, reads, changes, rotates and deletes its own
subscriptions, sees its deliveries and resends them; another client's do not exist for it; the secret
is in the answer that makes it and in no other."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

from citycredit.core.audit import AuditEvent
from citycredit.core.clients import register_client
from citycredit.core.db import utcnow
from push import outbox
from push.models import Attempt, Delivery, Event, Subscription
from push.subscriptions import allows_http, signing_secrets
from scenarios.models import Operator
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app

PROBLEM = "application/problem+json"
HOOKS = "/api/v1/webhooks/subscriptions"


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as built:
        yield built


def partner(city: AdminApp, code: str, *, operator: bool = True) -> tuple[str, dict[str, str]]:
    """An API client with ``webhooks:manage`` (of a new operator ``code`` when ``operator``): its
    client_id and the headers of a fresh access token."""
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        operator_id = None
        if operator:
            found = Operator(code=code, name_zh=code + "馆", name_en=code.title())
            session.add(found)
            session.flush()
            operator_id = found.id
        issued = register_client(
            session,
            name=code + " system",
            kind="operator" if operator else "app",
            scopes=["webhooks:manage"],
            operator_id=operator_id,
            key_secret=settings.key_secret,
        )
    assert issued.secret is not None
    answer = city.client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(issued.client.client_id, issued.secret),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return issued.client.client_id, {"Authorization": "Bearer " + answer.get_json()["access_token"]}


def subscribe(city: AdminApp, headers: dict[str, str], **body: object) -> dict[str, object]:
    answer = city.client().post(
        HOOKS,
        json={"url": "https://lib.example/hooks", "event_types": ["scenario.published"], **body},
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    made: dict[str, object] = answer.get_json()
    return made


def published_event(city: AdminApp, code: str = "library-deposit-free") -> None:
    """A scenario.published event through the outbox, as the scenario registry's listener stores it."""
    with city.session() as session:
        outbox.emit(
            session,
            [outbox.Outgoing("scenario.published", code, {"scenario": code, "operator": "lib"})],
        )


def test_a_client_manages_its_own_subscriptions_and_sees_the_secret_once(city: AdminApp) -> None:
    _, lib = partner(city, "library")
    _, bus = partner(city, "bus")
    client = city.client()

    made = subscribe(city, lib, event_types=["tier.changed", "scenario.published"])
    secret = str(made["secret"])
    sub_id = str(made["id"])
    assert secret.startswith("whsec_") and sub_id.startswith("sub_")
    assert made["status"] == "active" and made["event_types"] == [
        "scenario.published",
        "tier.changed",
    ]

    # Never again: not in the list, not in the subscription, not after a change.
    listed = client.get(HOOKS, headers=lib)
    shown = client.get(f"{HOOKS}/{sub_id}", headers=lib)
    changed = client.patch(
        f"{HOOKS}/{sub_id}",
        json={"url": "https://lib.example/v2/hooks", "event_types": ["tier.changed"]},
        headers=lib,
    )
    for answer in (listed, shown, changed):
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert secret not in answer.get_data(as_text=True) and 'secret"' not in json.dumps(
            answer.get_json()
        ).replace("previous_secret", "")
    assert [s["id"] for s in listed.get_json()] == [sub_id]
    assert changed.get_json()["url"] == "https://lib.example/v2/hooks"
    assert changed.get_json()["event_types"] == ["tier.changed"]

    # Another client's subscription does not exist for the bus company: every route says 404.
    for method, path, body in (
        ("get", f"{HOOKS}/{sub_id}", None),
        ("patch", f"{HOOKS}/{sub_id}", {"status": "disabled"}),
        ("delete", f"{HOOKS}/{sub_id}", None),
        ("post", f"{HOOKS}/{sub_id}/rotate-secret", None),
        ("get", f"{HOOKS}/{sub_id}/deliveries", None),
        ("post", f"{HOOKS}/{sub_id}/deliveries/resend", {"webhook_ids": ["msg_x"]}),
    ):
        answer = getattr(client, method)(path, json=body, headers=bus)
        assert answer.status_code == 404 and answer.mimetype == PROBLEM, (method, path)
    assert client.get(HOOKS, headers=bus).get_json() == []

    # Disable and enable again.
    off = client.patch(f"{HOOKS}/{sub_id}", json={"status": "disabled"}, headers=lib).get_json()
    assert off["status"] == "disabled" and off["disabled_reason"] == "disabled by the client"
    on = client.patch(f"{HOOKS}/{sub_id}", json={"status": "active"}, headers=lib).get_json()
    assert on["status"] == "active" and on["disabled_reason"] is None

    # Deleted: gone from the list, 404 from then on.
    assert client.delete(f"{HOOKS}/{sub_id}", headers=lib).status_code == 204
    assert client.get(f"{HOOKS}/{sub_id}", headers=lib).status_code == 404
    assert client.get(HOOKS, headers=lib).get_json() == []

    with city.session() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.startswith("webhook.subscription."))
            .order_by(AuditEvent.id)
        ).all()
    assert actions == [
        "webhook.subscription.create",
        "webhook.subscription.update",
        "webhook.subscription.disabled",
        "webhook.subscription.active",
        "webhook.subscription.deleted",
    ]


def test_urls_and_event_types_are_checked_with_the_field_named(city: AdminApp) -> None:
    _, lib = partner(city, "library")
    _, app = partner(city, "cityapp", operator=False)
    client = city.client()

    def refused(headers: dict[str, str], **body: object) -> dict[str, list[str]]:
        answer = client.post(
            HOOKS, json={"event_types": ["scenario.published"], **body}, headers=headers
        )
        assert answer.status_code == 422 and answer.mimetype == PROBLEM, answer.get_data(
            as_text=True
        )
        errors: dict[str, list[str]] = answer.get_json()["errors"]
        return errors

    assert "url" in refused(lib, url="http://lib.example/hooks")  # clear text to the world
    assert "url" in refused(lib, url="https://user:pw@lib.example/hooks")
    assert "url" in refused(lib, url="ftp://lib.example/hooks")
    # A system that is no operator's hears of no citizen.
    assert "event_types" in refused(app, url="https://app.example/h", event_types=["tier.changed"])
    assert "event_types" in refused(lib, url="https://lib.example/h", event_types=["score.sent"])
    # Outside production a receiver on this machine may listen on plain http.
    assert subscribe(city, lib, url="http://127.0.0.1:9/hooks")["url"] == "http://127.0.0.1:9/hooks"
    # Nothing refused was stored.
    with city.session() as session:
        assert session.scalar(select(Subscription.url)) == "http://127.0.0.1:9/hooks"


def test_http_is_for_loopback_receivers_outside_production(city: AdminApp) -> None:
    settings = city.app.extensions["citycredit"].settings
    production = dataclasses.replace(settings, environment="production", demo_mode=False)
    development = dataclasses.replace(settings, environment="development")
    for url in ("http://127.0.0.1:8080/h", "http://localhost/h", "http://[::1]:9/h"):
        assert allows_http(url, development) and not allows_http(url, production)
    for url in ("http://10.0.0.5/h", "http://lib.example/h", "http://127.0.0.1.example/h"):
        assert not allows_http(url, development)


def test_a_rotation_signs_with_both_secrets_during_the_overlap(city: AdminApp) -> None:
    _, lib = partner(city, "library")
    made = subscribe(city, lib)
    first = str(made["secret"])
    rotated = city.client().post(f"{HOOKS}/{made['id']}/rotate-secret", headers=lib)
    assert rotated.status_code == 200
    second = rotated.get_json()["secret"]
    until = dt.datetime.fromisoformat(rotated.get_json()["previous_secret_until"])
    assert second.startswith("whsec_") and second != first
    assert dt.timedelta(hours=23) < until - utcnow() <= dt.timedelta(hours=24)
    shown = city.client().get(f"{HOOKS}/{made['id']}", headers=lib)
    assert shown.get_json()["previous_secret_until"] is not None
    assert second not in shown.get_data(as_text=True)

    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        sub = session.scalar(select(Subscription))
        assert sub is not None
        during = signing_secrets(sub, key_secret=settings.key_secret, now=utcnow())
        after = signing_secrets(
            sub, key_secret=settings.key_secret, now=until + dt.timedelta(seconds=1)
        )
    assert during == [second, first] and after == [second]
    # A receiver still holding the old secret verifies what is signed with both (Standard Webhooks:
    # one signature per secret in webhook-signature).
    moment = utcnow()
    body = '{"type":"scenario.published"}'
    signatures = " ".join(Webhook(s).sign("msg_1", moment, body) for s in during)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(moment.timestamp()))}
    for held in (first, second):
        Webhook(held).verify(body, {**headers, "webhook-signature": signatures})


def test_deliveries_are_listed_and_a_dead_one_is_resent(city: AdminApp) -> None:
    _, lib = partner(city, "library")
    _, bus = partner(city, "bus")
    mine = subscribe(city, lib)
    theirs = subscribe(city, bus, event_types=["keys.rotated"])
    published_event(city)
    published_event(city, "bus-fare-discount")
    with city.session() as session:
        first, second = session.scalars(
            select(Delivery)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(Subscription.public_id == mine["id"])
            .order_by(Delivery.id)
        ).all()
        # Three days of 500s: the worker gave up (written here as the worker would leave it).
        session.execute(
            update(Delivery)
            .where(Delivery.id == first.id)
            .values(status="dead", attempts=3, last_status_code=500, last_error="HTTP 500")
        )
        for n in range(3):
            session.add(
                Attempt(
                    delivery_id=first.id,
                    at=utcnow() - dt.timedelta(days=3 - n),
                    status_code=500,
                    duration_ms=12,
                )
            )
        webhook_id = session.scalar(select(Event.public_id).where(Event.id == first.event_id))
    client = city.client()
    listed = client.get(f"{HOOKS}/{mine['id']}/deliveries", headers=lib)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    items = listed.get_json()["items"]
    assert [i["status"] for i in items] == ["pending", "dead"]  # newest first
    dead = items[1]
    assert dead["webhook_id"] == webhook_id and dead["attempts"] == 3
    assert dead["last_status_code"] == 500 and dead["next_attempt_at"] is None
    assert dead["data"] == {"scenario": "library-deposit-free", "operator": "lib"}
    only_dead = client.get(f"{HOOKS}/{mine['id']}/deliveries?status=dead", headers=lib)
    assert [i["webhook_id"] for i in only_dead.get_json()["items"]] == [webhook_id]
    # Pages of one, newest first, through the cursor.
    page = client.get(f"{HOOKS}/{mine['id']}/deliveries?limit=1", headers=lib).get_json()
    assert page["items"][0]["status"] == "pending" and page["next_cursor"]
    older = client.get(
        f"{HOOKS}/{mine['id']}/deliveries?limit=1&cursor={page['next_cursor']}", headers=lib
    ).get_json()
    assert [i["webhook_id"] for i in older["items"]] == [webhook_id]
    assert older["next_cursor"] is None

    # The bus company cannot resend the library's delivery through its own subscription (a
    # public event's webhook-id is the same for every subscriber; only its own delivery would go).
    nothing = client.post(
        f"{HOOKS}/{theirs['id']}/deliveries/resend", json={"webhook_ids": [webhook_id]}, headers=bus
    )
    assert nothing.status_code == 200 and nothing.get_json() == {"queued": 0}
    resent = client.post(
        f"{HOOKS}/{mine['id']}/deliveries/resend", json={"webhook_ids": [webhook_id]}, headers=lib
    )
    assert resent.status_code == 200 and resent.get_json() == {"queued": 1}
    with city.session() as session:
        again = session.get(Delivery, first.id)
        assert again is not None and again.status == "pending"
        assert again.next_attempt_at <= utcnow()
        assert session.get(Delivery, second.id).status == "pending"  # type: ignore[union-attr]


def test_the_endpoints_are_in_the_openapi_document(city: AdminApp) -> None:
    document = city.client().get("/api/openapi.json").get_json()
    paths = {p: set(ops) for p, ops in document["paths"].items() if "/webhooks/" in p}
    assert paths == {
        HOOKS: {"get", "post"},
        HOOKS + "/{subscription_id}": {"get", "patch", "delete", "parameters"},
        HOOKS + "/{subscription_id}/rotate-secret": {"post", "parameters"},
        HOOKS + "/{subscription_id}/deliveries": {"get", "parameters"},
        HOOKS + "/{subscription_id}/deliveries/resend": {"post", "parameters"},
    }
    post = document["paths"][HOOKS]["post"]
    assert post["security"] == [{"oauth2": ["webhooks:manage"]}]
    assert "webhooks:manage" in json.dumps(document["components"]["securitySchemes"])


def test_a_client_holds_at_most_ten_subscriptions(city: AdminApp) -> None:
    _, lib = partner(city, "library")
    made = [subscribe(city, lib, url=f"https://lib.example/h{n}") for n in range(10)]
    client = city.client()
    over = client.post(
        HOOKS, json={"url": "https://lib.example/h", "event_types": ["keys.rotated"]}, headers=lib
    )
    assert over.status_code == 409 and over.get_json()["type"] == "/problems/subscription-limit"
    # Deleting one makes room again.
    assert client.delete(f"{HOOKS}/{made[0]['id']}", headers=lib).status_code == 204
    assert subscribe(city, lib)["status"] == "active"
