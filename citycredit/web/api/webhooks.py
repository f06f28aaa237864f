"""Webhook subscriptions for partners' systems (scope ``webhooks:manage``; docs/PUSH.md).

A client manages only its own subscriptions: another client's reads as unknown (404), as does a
deleted one. The signing secret is in the answer to the request that makes or rotates it, and in no
other answer. Deliveries are listed by their ``webhook-id`` (the header the receiver saw) with their
state and the receiver's last answer; a resend queues them again with the same ``webhook-id``.

Plain ``http`` URLs are accepted only for a receiver on loopback and only outside production
(``push.subscriptions.allows_http``): developers and tests run receivers on 127.0.0.1; a city in
production posts signed bodies over TLS only, and never to its own machine.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from citycredit.core.clients import ApiClient
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from push import delivery as deliveries
from push import queries
from push import subscriptions as subs
from push.models import DELIVERY_STATES, EVENT_TYPES, PERSONAL_EVENTS, Subscription

SCOPE = "webhooks:manage"
# Every event goes once to each subscription: a cap keeps one client from multiplying the city's
# outgoing requests (towards its own receiver, or anyone's).
MAX_SUBSCRIPTIONS = 10
SUBSCRIPTION_ID = {
    "type": "string",
    "pattern": "^sub_[A-Za-z0-9_-]{1,28}$",
    "description": "the subscription's id",
    "example": "sub_3nq1xZ0b8kP2vC9a",
}
WEBHOOK_ID = {
    "type": "string",
    "pattern": "^msg_[A-Za-z0-9_-]{1,36}$",
    "description": "the event's id: the `webhook-id` header the receiver saw",
    "example": "msg_2b4kF0qz8Q1mXcVw0pL7aR3t",
}
_ID_PARAM = [{"in": "path", "name": "subscription_id", "schema": SUBSCRIPTION_ID}]
_SECURITY = [{"oauth2": [SCOPE]}]
_EVENTS = (
    "event types to receive: "
    + ", ".join(EVENT_TYPES)
    + f" ({', '.join(PERSONAL_EVENTS)}: an operator's client only, for citizens who linked it)"
)
_URL = (
    "where events are POSTed: https (http only to a receiver on this machine, outside production); "
    "no user name or password in it"
)

blueprint = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/api/v1/webhooks",
    description="Webhook subscriptions (Standard Webhooks): where events go, their secrets, deliveries",
)


class SubscriptionIn(Schema):
    url = fields.String(
        required=True, validate=validate.Length(min=1, max=2000), metadata={"description": _URL}
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1, max=20),
        metadata={"description": _EVENTS},
    )


class SubscriptionPatch(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2000), metadata={"description": _URL})
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        validate=validate.Length(min=1, max=20),
        metadata={"description": _EVENTS},
    )
    status = fields.String(
        validate=validate.OneOf(("active", "disabled")),
        metadata={
            "description": "disabled: nothing is sent (events meanwhile are not queued for it); "
            "active again: sending resumes and the failure streak starts over"
        },
    )


class SubscriptionOut(Schema):
    id = fields.String(required=True, metadata=SUBSCRIPTION_ID)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(metadata={"enum": list(EVENT_TYPES)}), required=True)
    status = fields.String(required=True, metadata={"enum": ["active", "disabled"]})
    created_at = fields.DateTime(required=True)
    failing_since = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "the first failure since the last success; null: not failing"},
    )
    last_success_at = fields.DateTime(required=True, allow_none=True)
    disabled_at = fields.DateTime(required=True, allow_none=True)
    disabled_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "why it was disabled (by this client, the city, or failing for days)"
        },
    )
    previous_secret_until = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={
            "description": "after a rotation: the previous secret also signs every delivery until then"
        },
    )


class CreatedSubscription(SubscriptionOut):
    secret = fields.String(
        required=True,
        metadata={
            "description": "the signing secret (whsec_…): shown in this answer only, never again",
            "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        },
    )


class RotatedSecret(Schema):
    id = fields.String(required=True, metadata=SUBSCRIPTION_ID)
    secret = fields.String(
        required=True, metadata={"description": "the new secret: shown in this answer only"}
    )
    previous_secret_until = fields.DateTime(
        required=True,
        metadata={"description": "the previous secret signs beside the new one until then"},
    )


class DeliveryQuery(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Regexp(r"^[1-9][0-9]{0,17}$"),
        metadata={"description": "the `next_cursor` of the previous page (older deliveries)"},
    )


class DeliveryOut(Schema):
    webhook_id = fields.String(required=True, metadata=WEBHOOK_ID)
    event_type = fields.String(required=True, metadata={"enum": list(EVENT_TYPES)})
    event_created_at = fields.DateTime(
        required=True, metadata={"description": "the body's `timestamp`"}
    )
    status = fields.String(
        required=True,
        metadata={
            "enum": list(DELIVERY_STATES),
            "description": "pending (being tried), delivered, dead (gave up after three days of "
            "failures; resend it), cancelled (the citizen revoked the link before it was sent)",
        },
    )
    attempts = fields.Integer(required=True, metadata={"minimum": 0})
    last_status_code = fields.Integer(
        required=True, allow_none=True, metadata={"description": "your receiver's last answer"}
    )
    last_error = fields.String(required=True, allow_none=True)
    next_attempt_at = fields.DateTime(
        required=True, allow_none=True, metadata={"description": "pending deliveries only"}
    )
    delivered_at = fields.DateTime(required=True, allow_none=True)
    data = fields.Dict(
        required=True,
        allow_none=True,
        metadata={
            "description": "the event's `data`, as delivered; null for a cancelled delivery "
            "(what the citizen withdrew is not handed out)"
        },
    )


class DeliveryList(Schema):
    items = fields.List(fields.Nested(DeliveryOut), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "null: no older deliveries"}
    )


class ResendIn(Schema):
    webhook_ids = fields.List(
        fields.String(validate=validate.Regexp(WEBHOOK_ID["pattern"]), metadata=WEBHOOK_ID),
        required=True,
        validate=validate.Length(min=1, max=100),
    )


class ResendOut(Schema):
    queued = fields.Integer(
        required=True,
        metadata={
            "minimum": 0,
            "description": "deliveries queued again (unknown ids and cancelled deliveries are not)",
        },
    )


def _session() -> Session:
    return db_session()


def _settings() -> Settings:
    return platform_of(current_app).settings


def _actor(client: ApiClient) -> str:
    return f"client:{client.client_id}"


def _own(session: Session, client: ApiClient, public_id: str) -> Subscription:
    found = queries.subscription(session, public_id, client_id=client.id)
    if found is None:
        raise Problem("not-found", f"no subscription {public_id!r} of this client")
    return found


def _out(sub: Subscription) -> dict[str, Any]:
    now = utcnow()
    overlap = sub.previous_until if sub.previous_until and sub.previous_until > now else None
    return {
        "id": sub.public_id,
        "url": sub.url,
        "event_types": list(sub.event_types),
        "status": sub.status,
        "created_at": sub.created_at,
        "failing_since": sub.failing_since,
        "last_success_at": sub.last_success_at,
        "disabled_at": sub.disabled_at,
        "disabled_reason": sub.disabled_reason,
        "previous_secret_until": overlap,
    }


def _checked(client: ApiClient, body: dict[str, Any]) -> None:
    """The URL and the event types, each refused with its own field named."""
    errors: dict[str, list[str]] = {}
    if "url" in body:
        try:
            subs.check_url(body["url"], allow_http=subs.allows_http(body["url"], _settings()))
        except subs.SubscriptionError as exc:
            errors["url"] = [str(exc)]
    if "event_types" in body:
        try:
            subs.check_event_types(body["event_types"], client)
        except subs.SubscriptionError as exc:
            errors["event_types"] = [str(exc)]
    if errors:
        raise Problem("validation-error", "see errors", errors=errors)


@blueprint.route("/subscriptions", methods=["POST"])
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 409, 413, 429)
@blueprint.arguments(SubscriptionIn)
@blueprint.response(201, CreatedSubscription)
@require_scope(SCOPE)
def create(body: dict[str, Any]) -> Any:
    """Subscribe a URL to event types; the answer carries the signing secret, shown this once."""
    client = caller().client
    _checked(client, body)
    settings = _settings()
    session = _session()
    if len(queries.subscriptions(session, client_id=client.id)) >= MAX_SUBSCRIPTIONS:
        raise Problem(
            "subscription-limit", f"this client holds {MAX_SUBSCRIPTIONS} subscriptions already"
        )
    try:
        sub, secret = subs.create_subscription(
            session,
            client,
            url=body["url"],
            event_types=body["event_types"],
            key_secret=settings.key_secret,
            actor=_actor(client),
            allow_http=subs.allows_http(body["url"], settings),
        )
    except subs.SubscriptionError as exc:
        raise Problem("validation-error", str(exc)) from None
    return {**_out(sub), "secret": secret}


@blueprint.route("/subscriptions", methods=["GET"])
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 429)
@blueprint.response(200, SubscriptionOut(many=True))
@require_scope(SCOPE)
def list_subscriptions() -> Any:
    """This client's subscriptions, newest first (secrets are never shown again)."""
    client = caller().client
    return [
        _out(row.subscription) for row in queries.subscriptions(_session(), client_id=client.id)
    ]


@blueprint.route("/subscriptions/<subscription_id>", methods=["GET"], parameters=_ID_PARAM)
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 404, 429)
@blueprint.response(200, SubscriptionOut)
@require_scope(SCOPE)
def show(subscription_id: str) -> Any:
    """One of this client's subscriptions."""
    return _out(_own(_session(), caller().client, subscription_id))


@blueprint.route("/subscriptions/<subscription_id>", methods=["PATCH"], parameters=_ID_PARAM)
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 404, 413, 429)
@blueprint.arguments(SubscriptionPatch)
@blueprint.response(200, SubscriptionOut)
@require_scope(SCOPE)
def change(body: dict[str, Any], subscription_id: str) -> Any:
    """Change the URL or the event types, or disable and enable it again."""
    session = _session()
    client = caller().client
    sub = _own(session, client, subscription_id)
    _checked(client, body)
    actor = _actor(client)
    try:
        subs.update_subscription(
            session,
            sub,
            client,
            url=body.get("url"),
            event_types=body.get("event_types"),
            actor=actor,
            allow_http="url" in body and subs.allows_http(body["url"], _settings()),
        )
        if "status" in body and body["status"] != sub.status:
            subs.set_status(
                session, sub, body["status"], actor=actor, reason="disabled by the client"
            )
    except subs.SubscriptionError as exc:
        raise Problem("validation-error", str(exc)) from None
    return _out(sub)


@blueprint.route("/subscriptions/<subscription_id>", methods=["DELETE"], parameters=_ID_PARAM)
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 404, 429)
@blueprint.response(204)
@require_scope(SCOPE)
def delete(subscription_id: str) -> Any:
    """Delete it: nothing more is sent (its deliveries stay listed in the city's records)."""
    session = _session()
    client = caller().client
    sub = _own(session, client, subscription_id)
    subs.set_status(session, sub, "deleted", actor=_actor(client))
    return None


@blueprint.route(
    "/subscriptions/<subscription_id>/rotate-secret", methods=["POST"], parameters=_ID_PARAM
)
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 404, 429)
@blueprint.response(200, RotatedSecret)
@require_scope(SCOPE)
def rotate(subscription_id: str) -> Any:
    """A new secret, shown once; the previous one keeps signing beside it for 24 hours (each
    delivery carries a signature by each), so the receiver can switch without losing one."""
    session = _session()
    client = caller().client
    sub = _own(session, client, subscription_id)
    secret = subs.rotate_secret(
        session, sub, key_secret=_settings().key_secret, actor=_actor(client)
    )
    return {"id": sub.public_id, "secret": secret, "previous_secret_until": sub.previous_until}


@blueprint.route(
    "/subscriptions/<subscription_id>/deliveries", methods=["GET"], parameters=_ID_PARAM
)
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 404, 429)
@blueprint.arguments(DeliveryQuery, location="query")
@blueprint.response(200, DeliveryList)
@require_scope(SCOPE)
def list_deliveries(query: dict[str, Any], subscription_id: str) -> Any:
    """The subscription's deliveries, newest first, with their state and the receiver's last answer."""
    session = _session()
    sub = _own(session, caller().client, subscription_id)
    page = queries.deliveries(
        session,
        queries.DeliveryFilters(status=query.get("status", ""), subscription_id=sub.id),
        tz=_settings().tz,
        before=int(query["cursor"]) if "cursor" in query else None,
        size=query["limit"],
    )
    items = [
        {
            "webhook_id": row.event.public_id,
            "event_type": row.event.type,
            "event_created_at": row.event.created_at,
            "status": row.delivery.status,
            "attempts": row.delivery.attempts,
            "last_status_code": row.delivery.last_status_code,
            "last_error": row.delivery.last_error,
            "next_attempt_at": row.delivery.next_attempt_at
            if row.delivery.status == "pending"
            else None,
            "delivered_at": row.delivery.delivered_at,
            "data": None if row.delivery.status == "cancelled" else row.event.data,
        }
        for row in page.rows
    ]
    return {"items": items, "next_cursor": str(page.older) if page.older else None}


@blueprint.route(
    "/subscriptions/<subscription_id>/deliveries/resend", methods=["POST"], parameters=_ID_PARAM
)
@blueprint.doc(security=_SECURITY)
@problems(blueprint, 401, 403, 404, 413, 429)
@blueprint.arguments(ResendIn)
@blueprint.response(200, ResendOut)
@require_scope(SCOPE)
def resend(body: dict[str, Any], subscription_id: str) -> Any:
    """Send these deliveries again (a dead letter, or one your receiver lost), with the same
    ``webhook-id``: your deduplication sees them as the events they are."""
    session = _session()
    client = caller().client
    sub = _own(session, client, subscription_id)
    ids = queries.deliveries_of_events(session, sub.id, body["webhook_ids"])
    return {"queued": deliveries.resend(session, ids, actor=_actor(client))}
