"""Webhook subscriptions: the one owner of a subscription's secret and status.

A subscription belongs to one API client; personal events reach it only when that client belongs to
the operator a citizen linked. The secret is returned once, when made or rotated, and never again.
Rotation keeps the previous secret signing beside the new one for ``overlap`` (Standard Webhooks
sends several signatures in one ``webhook-signature`` header), so a receiver switches without losing
a delivery.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets as random
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from push import secrets
from push.models import EVENT_TYPES, PERSONAL_EVENTS, Subscription

ROTATION_OVERLAP = dt.timedelta(hours=24)


class SubscriptionError(Exception):
    """A subscription cannot be made or changed as asked; the message is meant for the operator."""


def check_url(url: str, *, allow_http: bool) -> str:
    """An absolute https URL (http too where the city allows it: tests and demos on loopback)."""
    url = url.strip()
    schemes = ("https", "http") if allow_http else ("https",)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises for a port out of range
        httpx.URL(url).host.encode("idna")  # what the worker will send to (e.g. "xn--" is refused)
    except (ValueError, UnicodeError, httpx.InvalidURL):
        raise SubscriptionError(
            "the URL cannot be read as an address (check its host and port)"
        ) from None
    if parts.scheme not in schemes or not parts.hostname or len(url) > 2000:
        raise SubscriptionError(
            "the URL must be an absolute "
            + " or ".join(schemes)
            + " URL of at most 2000 characters"
        )
    if parts.username or parts.password:
        raise SubscriptionError("the URL must not carry a user name or password")
    if not allow_http:  # only a loopback receiver outside production may be private (allows_http)
        problem = non_public_destination(url)
        if problem is not None:
            raise SubscriptionError(f"the URL must reach a public address: {problem}")
    return url


def non_public_destination(url: str) -> str | None:
    """Why ``url``'s host is not a public internet address (loopback, private, link-local, …), or
    None. The city's worker must not be usable to post into the city's own network (SSRF). A host
    that does not resolve now passes: its deliveries fail on their own, and are checked again when
    sent (push.delivery)."""
    try:
        parts = urlsplit(url.strip())
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:
        return None  # unreadable: check_url refuses it, and the worker's POST fails on it
    try:
        found = {ipaddress.ip_address(host)}
    except ValueError:
        suffix = host.lower().rpartition(".")[2]
        if host.lower() == "localhost" or suffix == "localhost":
            return f"{host} is this machine"
        if suffix in ("example", "test", "invalid"):  # RFC 2606: never resolve; no lookup
            return None
        try:
            infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        found = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    private = sorted(str(address) for address in found if not address.is_global)
    return f"{host} is {private[0]}" if private else None


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (``localhost``, 127.0.0.0/8, ::1)."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allows_http(url: str, settings: Settings) -> bool:
    """Plain http only to a loopback receiver and never in production: a developer's or a test's
    receiver on this machine. Anywhere else a secret-signed body and its pseudonyms would travel in
    clear, and a production city posting to its own loopback would be a request forgery (SSRF)."""
    return (settings.environment != "production" or settings.demo_mode) and is_loopback(url)


def check_event_types(types: Iterable[str], client: ApiClient) -> list[str]:
    chosen = sorted(set(types))
    if not chosen:
        raise SubscriptionError("choose at least one event type")
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise SubscriptionError(f"unknown event type(s): {', '.join(unknown)}")
    personal = [t for t in chosen if t in PERSONAL_EVENTS]
    if personal and client.operator_id is None:
        raise SubscriptionError(
            f"{', '.join(personal)}: only an operator's system receives events about linked citizens"
        )
    return chosen


def create_subscription(
    session: Session,
    client: ApiClient,
    *,
    url: str,
    event_types: Iterable[str],
    key_secret: bytes,
    actor: str,
    allow_http: bool = False,
) -> tuple[Subscription, str]:
    """A new active subscription and its secret (shown to the caller once, never again)."""
    if client.status != "active":
        raise SubscriptionError("the client is revoked")
    public_id = "sub_" + random.token_urlsafe(12)
    secret = secrets.new_secret()
    subscription = Subscription(
        public_id=public_id,
        client_id=client.id,
        url=check_url(url, allow_http=allow_http),
        event_types=check_event_types(event_types, client),
        secret_enc=secrets.seal(secret, key_secret=key_secret, subscription=public_id),
        status="active",
        created_at=utcnow(),
    )
    session.add(subscription)
    session.flush()
    audit(
        session,
        actor=actor,
        action="webhook.subscription.create",
        subscription=public_id,
        client=client.client_id,
        url=subscription.url,
        events=subscription.event_types,
    )
    return subscription, secret


def rotate_secret(
    session: Session,
    subscription: Subscription,
    *,
    key_secret: bytes,
    actor: str,
    overlap: dt.timedelta = ROTATION_OVERLAP,
) -> str:
    """A new secret (returned once); the current one keeps signing beside it for ``overlap``."""
    now = utcnow()
    secret = secrets.new_secret()
    subscription.previous_secret_enc = subscription.secret_enc
    subscription.previous_until = now + overlap
    subscription.secret_enc = secrets.seal(
        secret, key_secret=key_secret, subscription=subscription.public_id
    )
    session.flush()
    audit(
        session,
        actor=actor,
        action="webhook.subscription.rotate",
        subscription=subscription.public_id,
        overlap_until=subscription.previous_until.isoformat(),
    )
    return secret


def signing_secrets(
    subscription: Subscription, *, key_secret: bytes, now: dt.datetime
) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one during its
    overlap."""
    found = [
        secrets.unseal(
            subscription.secret_enc, key_secret=key_secret, subscription=subscription.public_id
        )
    ]
    if (
        subscription.previous_secret_enc
        and subscription.previous_until is not None
        and subscription.previous_until > now
    ):
        found.append(
            secrets.unseal(
                subscription.previous_secret_enc,
                key_secret=key_secret,
                subscription=subscription.public_id,
            )
        )
    return found


def set_status(
    session: Session, subscription: Subscription, status: str, *, actor: str, reason: str = ""
) -> None:
    """Enable, disable or delete a subscription (a deleted one keeps its deliveries as history).
    Enabling clears the failure streak, so an endpoint brought back is not disabled again at once."""
    if status not in ("active", "disabled", "deleted"):
        raise SubscriptionError(f"unknown status {status!r}")
    if subscription.status == "deleted":
        raise SubscriptionError("the subscription is deleted")
    now = utcnow()
    before = subscription.status
    subscription.status = status
    if status == "active":
        subscription.failing_since = None
        subscription.disabled_at = None
        subscription.disabled_reason = None
    elif status == "disabled":
        subscription.disabled_at = now
        subscription.disabled_reason = reason.strip()[:500] or "disabled by " + actor
    else:
        # Deleted: nothing of it will be sent, so nothing of it stays queued (the worker's scan).
        from push.delivery import cancel_queued  # push.delivery imports this module

        cancel_queued(session, subscription.id, reason="subscription deleted")
    session.flush()
    audit(
        session,
        actor=actor,
        action="webhook.subscription." + status,
        subscription=subscription.public_id,
        before=before,
        reason=reason.strip()[:500],
    )


def update_subscription(
    session: Session,
    subscription: Subscription,
    client: ApiClient,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    actor: str,
    allow_http: bool = False,
) -> None:
    """Point a subscription elsewhere or change its event types; deliveries already queued keep
    going to it (to the new URL, when it changed)."""
    if subscription.status == "deleted":
        raise SubscriptionError("the subscription is deleted")
    before = {"url": subscription.url, "events": list(subscription.event_types)}
    if url is not None:
        subscription.url = check_url(url, allow_http=allow_http)
    if event_types is not None:
        subscription.event_types = check_event_types(event_types, client)
    after = {"url": subscription.url, "events": list(subscription.event_types)}
    if after == before:
        return
    session.flush()
    audit(
        session,
        actor=actor,
        action="webhook.subscription.update",
        subscription=subscription.public_id,
        before=before,
        after=after,
    )
