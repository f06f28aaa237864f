"""Reads of webhook subscriptions and deliveries, for the partner API, the admin pages and the CLI.

Writes go through ``push.subscriptions`` (a subscription's secret and status) and
``push.delivery.resend`` (a delivery's state); nothing here changes a row. Set-based throughout:
lists are one query each (keyset-paged, newest first), the chart's days one GROUP BY.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from citycredit.core.clients import ApiClient
from push.models import Attempt, Delivery, Event, Subscription
from scenarios.models import Operator

# An attempt succeeded when the receiver answered 2xx (Standard Webhooks); anything else, or no
# answer at all, is a failure to be retried.
SUCCEEDED = and_(Attempt.status_code >= 200, Attempt.status_code < 300)


def day_bounds(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[start of ``first``, start of the day after ``last``) in the city's time, as UTC instants."""
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    return start, end


# --- subscriptions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionRow:
    subscription: Subscription
    client: ApiClient
    operator: Operator | None
    pending: int
    dead: int


def subscriptions(
    session: Session,
    *,
    client_id: int | None = None,
    operator_id: int | None = None,
    include_deleted: bool = False,
) -> list[SubscriptionRow]:
    """Subscriptions (of one API client, or of one operator's clients, or all), newest first, with
    their client, its operator, and how many deliveries wait and how many are dead letters."""
    waiting = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.subscription_id == Subscription.id, Delivery.status == "pending")
        .scalar_subquery()
    )
    dead = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.subscription_id == Subscription.id, Delivery.status == "dead")
        .scalar_subquery()
    )
    query = (
        select(Subscription, ApiClient, Operator, waiting, dead)
        .join(ApiClient, ApiClient.id == Subscription.client_id)
        .outerjoin(Operator, Operator.id == ApiClient.operator_id)
        .order_by(Subscription.id.desc())
    )
    if client_id is not None:
        query = query.where(Subscription.client_id == client_id)
    if operator_id is not None:
        query = query.where(ApiClient.operator_id == operator_id)
    if not include_deleted:
        query = query.where(Subscription.status != "deleted")
    return [
        SubscriptionRow(sub, client, operator, pending or 0, dead_letters or 0)
        for sub, client, operator, pending, dead_letters in session.execute(query)
    ]


def subscription(
    session: Session,
    public_id: str,
    *,
    client_id: int | None = None,
    operator_id: int | None = None,
    include_deleted: bool = False,
) -> Subscription | None:
    """One subscription by its public id, if it belongs to ``client_id`` (or to a client of
    ``operator_id``) when given; a deleted one only when asked."""
    query = select(Subscription).where(Subscription.public_id == public_id)
    if client_id is not None:
        query = query.where(Subscription.client_id == client_id)
    if operator_id is not None:
        query = query.join(ApiClient, ApiClient.id == Subscription.client_id).where(
            ApiClient.operator_id == operator_id
        )
    if not include_deleted:
        query = query.where(Subscription.status != "deleted")
    return session.scalar(query)


# --- deliveries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFilters:
    status: str = ""
    subscription_id: int | None = None
    event_type: str = ""
    day: dt.date | None = None  # the city-local day the delivery was queued


@dataclass(frozen=True)
class DeliveryRow:
    delivery: Delivery
    event: Event
    subscription: Subscription


@dataclass
class DeliveryPage:
    rows: list[DeliveryRow] = field(default_factory=list)
    # Keyset cursor: the delivery id to pass as ``before`` for the next (older) page.
    older: int | None = None


def deliveries(
    session: Session,
    filters: DeliveryFilters,
    *,
    tz: ZoneInfo,
    operator_id: int | None = None,
    before: int | None = None,
    size: int = 50,
) -> DeliveryPage:
    """One page of deliveries, newest first, paged by id (keyset: no OFFSET scans)."""
    query = (
        select(Delivery, Event, Subscription)
        .join(Event, Event.id == Delivery.event_id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
    )
    if operator_id is not None:
        owner = aliased(ApiClient)
        query = query.join(owner, owner.id == Subscription.client_id).where(
            owner.operator_id == operator_id
        )
    if filters.status:
        query = query.where(Delivery.status == filters.status)
    if filters.subscription_id is not None:
        query = query.where(Delivery.subscription_id == filters.subscription_id)
    if filters.event_type:
        query = query.where(Event.type == filters.event_type)
    if filters.day is not None:
        start, end = day_bounds(filters.day, filters.day, tz)
        query = query.where(Delivery.created_at >= start, Delivery.created_at < end)
    if before is not None:
        query = query.where(Delivery.id < before)
    found = session.execute(query.order_by(Delivery.id.desc()).limit(size + 1)).all()
    rows = [DeliveryRow(d, e, s) for d, e, s in found[:size]]
    return DeliveryPage(rows, rows[-1].delivery.id if len(found) > size else None)


@dataclass(frozen=True)
class DeliveryDetail:
    delivery: Delivery
    event: Event
    subscription: Subscription
    client: ApiClient
    attempts: list[Attempt]


def delivery(
    session: Session, delivery_id: int, *, operator_id: int | None = None
) -> DeliveryDetail | None:
    """A delivery with its event, subscription, client and every attempt (oldest first)."""
    query = (
        select(Delivery, Event, Subscription, ApiClient)
        .join(Event, Event.id == Delivery.event_id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(ApiClient, ApiClient.id == Subscription.client_id)
        .where(Delivery.id == delivery_id)
    )
    if operator_id is not None:
        query = query.where(ApiClient.operator_id == operator_id)
    found = session.execute(query).first()
    if found is None:
        return None
    attempts = session.scalars(
        select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.at, Attempt.id)
    ).all()
    return DeliveryDetail(*found, attempts=list(attempts))


def deliveries_of_events(
    session: Session, subscription_id: int, event_public_ids: Sequence[str]
) -> list[int]:
    """The ids of a subscription's deliveries of these events (by ``webhook-id``); others' are not
    found, so a client names only its own."""
    if not event_public_ids:
        return []
    return list(
        session.scalars(
            select(Delivery.id)
            .join(Event, Event.id == Delivery.event_id)
            .where(
                Delivery.subscription_id == subscription_id,
                Event.public_id.in_(sorted(set(event_public_ids))),
            )
        )
    )


def owned_deliveries(
    session: Session, delivery_ids: Sequence[int], *, operator_id: int | None
) -> list[int]:
    """Those of ``delivery_ids`` that exist (and belong to ``operator_id``'s clients, when given)."""
    if not delivery_ids:
        return []
    query = (
        select(Delivery.id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(ApiClient, ApiClient.id == Subscription.client_id)
        .where(Delivery.id.in_(sorted(set(delivery_ids))))
    )
    if operator_id is not None:
        query = query.where(ApiClient.operator_id == operator_id)
    return list(session.scalars(query.order_by(Delivery.id)))


# --- the chart ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFigures:
    day: dt.date
    delivered: int  # attempts the receiver answered 2xx
    failed: int  # attempts that failed (another status, a timeout, no connection)

    @property
    def attempts(self) -> int:
        return self.delivered + self.failed


def attempts_per_day(
    session: Session,
    *,
    first: dt.date,
    last: dt.date,
    tz: ZoneInfo,
    operator_id: int | None = None,
) -> list[DayFigures]:
    """Per city-local day from ``first`` to ``last``: attempts that delivered and attempts that
    failed. One GROUP BY: each attempt's day is found by comparing its instant with the days' UTC
    starts (a CASE, so a timezone with summer time counts right on both databases)."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    starts = [day_bounds(d, d, tz)[0] for d in days]
    start, end = day_bounds(first, last, tz)
    bucket = case(
        *[(Attempt.at >= moment, index) for index, moment in reversed(list(enumerate(starts)))],
        else_=-1,
    )
    # Grouped outside: PostgreSQL would not see the CASE in GROUP BY (its bound values are other
    # parameters) as the one in the select list.
    each = select(bucket.label("bucket"), case((SUCCEEDED, 1), else_=0).label("ok")).where(
        Attempt.at >= start, Attempt.at < end
    )
    if operator_id is not None:
        each = (
            each.join(Delivery, Delivery.id == Attempt.delivery_id)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .join(ApiClient, ApiClient.id == Subscription.client_id)
            .where(ApiClient.operator_id == operator_id)
        )
    attempts = each.subquery()
    query = select(attempts.c.bucket, func.sum(attempts.c.ok), func.count()).group_by(
        attempts.c.bucket
    )
    counts = {index: (int(ok or 0), total) for index, ok, total in session.execute(query)}
    out = []
    for index, day in enumerate(days):
        ok, total = counts.get(index, (0, 0))
        out.append(DayFigures(day, ok, total - ok))
    return out
