"""Links, webhook subscriptions, the outbox of events and their deliveries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, BigIntPK, JSONDoc, utcnow

BigFK = BigInteger().with_variant(Integer(), "sqlite")

EVENT_TYPES = (
    "tier.changed",
    "link.revoked",
    "scenario.published",
    "scenario.suspended",
    "scenario.retired",
    "keys.rotated",
)
# Events about one citizen: sent only to the operator the citizen linked, ordered by pseudonym.
PERSONAL_EVENTS = ("tier.changed", "link.revoked")
DELIVERY_STATES = ("pending", "delivered", "dead", "cancelled")


class LinkApp(Base):
    """An operator's system that may ask citizens to link: its API client and the exact redirect
    URIs the authorization may return to (RFC 6749 §3.1.2; compared as whole strings)."""

    __tablename__ = "link_app"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), primary_key=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSONDoc)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LinkGrant(Base):
    """A one-time authorization code, 10 minutes at most (RFC 6749 §4.1.2), bound to the client, the
    redirect URI and the PKCE challenge (RFC 7636, S256 only). Stored as its SHA-256: a leaked
    database does not hand out codes."""

    __tablename__ = "link_grant"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"))
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    code_challenge: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class Link(Base):
    """A citizen's authorisation for one operator's systems to receive their common level.

    ``pseudonym`` is pairwise: stable for (citizen, operator), unlinkable across operators (an HMAC
    under the city's ID-hash key). ``sent_level`` is the level the operator was last told, so a
    recompute emits ``tier.changed`` only when what the operator knows is no longer true."""

    __tablename__ = "link"
    __table_args__ = (
        # One live link per citizen and operator; a revoked one stays as history.
        Index(
            "uq_link_live",
            "citizen_id",
            "operator_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
        Index("ix_link_operator_pseudonym", "operator_id", "pseudonym"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"))
    pseudonym: Mapped[str] = mapped_column(String(64))
    # What the operator receives (shown to the citizen): e.g. ["common_level", "scenarios"].
    shares: Mapped[list[str]] = mapped_column(JSONDoc)
    sent_level: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    # citizen | consent-withdrawn | city
    revoked_by: Mapped[str | None] = mapped_column(String(32))


class Subscription(Base):
    """Where an API client wants events: a URL, the event types, and the signing secret (encrypted
    at rest; the previous one keeps signing beside it until ``previous_until``, so a receiver can
    switch without losing a delivery)."""

    __tablename__ = "webhook_subscription"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'disabled', 'deleted')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONDoc)
    secret_enc: Mapped[str] = mapped_column(Text)
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_until: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Failing since the first failure after the last success; disabled after DISABLE_AFTER of it.
    failing_since: Mapped[dt.datetime | None]
    last_success_at: Mapped[dt.datetime | None]
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))


class Event(Base):
    """The outbox: one row per event, written in the transaction of the change that causes it.

    ``operator_id`` set: a personal event, for that operator's subscriptions only; NULL: for every
    subscription to the type. ``ordering_key``: the pseudonym (personal) or the scenario code.

    Events and their deliveries are written only by ``push.outbox``, from rows it has just read, in
    bulk when a recompute changes many levels: they carry no foreign keys and few indexes (each of
    those cost about a tenth of a recompute that changes 10% of the levels; bench/push_outbox.py)."""

    __tablename__ = "webhook_event"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Random (the receiver's deduplication key), so not indexed: nothing looks an event up by it.
    public_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(32))
    operator_id: Mapped[int | None] = mapped_column(Integer)
    ordering_key: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One event for one subscription: at least once, in order per (subscription, ordering key).

    A worker leases a batch (``lease_until``) in a short transaction, sends, then records the
    outcome; a worker killed mid-batch leaves leases that expire, and the next one sends again with
    the same ``webhook-id`` (the receiver's deduplication absorbs it)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'dead', 'cancelled')", name="status"),
        # The queue: pending deliveries by when they are due.
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Ordering: is an earlier delivery of the same key still pending?
        Index(
            "ix_webhook_delivery_order",
            "subscription_id",
            "ordering_key",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_delivery_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigFK)
    subscription_id: Mapped[int] = mapped_column(Integer)
    ordering_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None]


class Attempt(Base):
    """One try of a delivery: when, the HTTP status (or none), what went wrong, how long it took."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigFK, ForeignKey("webhook_delivery.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
