"""The outbox: events stored in the transaction of the change that causes them, one delivery per
matching subscription stored with them (so a committed change always has its deliveries, and a
rolled-back one has none).

Personal events (``tier.changed``, ``link.revoked``) go only to the subscriptions of API clients of
the operator the citizen linked; public ones (scenarios, keys) to every subscription to the type.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    String,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    values,
)
from sqlalchemy.orm import Session

from citycredit.core.clients import ApiClient
from citycredit.core.db import utcnow
from push.models import EVENT_TYPES, Delivery, Event, Subscription


@dataclass(frozen=True)
class Outgoing:
    """One event to store: its type, the operator it is for (None: public), its ordering key (the
    pseudonym, or the scenario code) and its data (what the receiver reads as ``data``)."""

    type: str
    ordering_key: str
    data: dict[str, Any]
    operator_id: int | None = None


def _subscribers(session: Session) -> list[tuple[int, int | None, frozenset[str]]]:
    """(subscription id, its client's operator, its event types) of every active subscription."""
    rows = session.execute(
        select(Subscription.id, ApiClient.operator_id, Subscription.event_types)
        .join(ApiClient, ApiClient.id == Subscription.client_id)
        .where(Subscription.status == "active", ApiClient.status == "active")
    ).all()
    return [(sid, operator, frozenset(types)) for sid, operator, types in rows]


def emit(session: Session, events: Sequence[Outgoing], *, now: dt.datetime | None = None) -> int:
    """Store the events that have at least one subscriber, and a delivery for each; returns how
    many deliveries were stored. An event nobody subscribes to is not stored."""
    if not events:
        return 0
    for event in events:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}")
    subscribers = _subscribers(session)
    if not subscribers:
        return 0
    now = now or utcnow()
    wanted: list[tuple[Outgoing, list[int]]] = []
    for event in events:
        targets = [
            sid
            for sid, operator, types in subscribers
            if event.type in types and (event.operator_id is None or operator == event.operator_id)
        ]
        if targets:
            wanted.append((event, targets))
    if not wanted:
        return 0
    ids = session.scalars(
        insert(Event).returning(Event.id, sort_by_parameter_order=True),
        [
            {
                "public_id": "msg_" + secrets.token_urlsafe(18),
                "type": event.type,
                "operator_id": event.operator_id,
                "ordering_key": event.ordering_key,
                "data": event.data,
                "created_at": now,
            }
            for event, _ in wanted
        ],
    ).all()
    rows = [
        {
            "event_id": event_id,
            "subscription_id": sid,
            "ordering_key": event.ordering_key,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for event_id, (event, targets) in zip(ids, wanted, strict=True)
        for sid in targets
    ]
    session.execute(insert(Delivery), rows)
    return len(rows)


def subscribed_operators(session: Session, event_type: str) -> dict[int, list[int]]:
    """Operator → its clients' active subscriptions to a personal ``event_type``."""
    found: dict[int, list[int]] = {}
    for sid, operator, types in _subscribers(session):
        if operator is not None and event_type in types:
            found.setdefault(operator, []).append(sid)
    return found


def emit_personal_rows(
    session: Session,
    event_type: str,
    rows: CTE,
    data: ColumnElement[Any],
    *,
    targets: dict[int, list[int]],
    now: dt.datetime,
) -> None:
    """Set-based :func:`emit` of a personal event (PostgreSQL): one event per row of ``rows`` (a
    CTE with ``operator_id`` and ``ordering_key``, e.g. an UPDATE … RETURNING) whose operator has
    subscribers (``targets``, from :func:`subscribed_operators`), ``data`` a JSON expression over
    the row, and its deliveries — one statement, no row through Python."""
    stamp = literal(now, type_=Event.created_at.type)
    told = (
        insert(Event)
        .from_select(
            ["public_id", "type", "operator_id", "ordering_key", "data", "created_at"],
            select(
                literal("msg_") + func.replace(cast(func.gen_random_uuid(), String), "-", ""),
                literal(event_type),
                rows.c.operator_id,
                rows.c.ordering_key,
                data,
                stamp,
            ).where(rows.c.operator_id.in_(list(targets))),
        )
        .returning(Event.id, Event.operator_id, Event.ordering_key)
        .cte("told")
    )
    subs = values(column("sid", Integer), column("op", Integer), name="subs").data(
        [(sid, operator) for operator, sids in targets.items() for sid in sids]
    )
    session.execute(
        insert(Delivery).from_select(
            [
                "event_id",
                "subscription_id",
                "ordering_key",
                "status",
                "attempts",
                "created_at",
                "next_attempt_at",
            ],
            select(
                told.c.id,
                subs.c.sid,
                told.c.ordering_key,
                literal("pending"),
                literal(0),
                stamp,
                stamp,
            ).join_from(told, subs, subs.c.op == told.c.operator_id),
        )
    )
