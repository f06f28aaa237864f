"""Delivering the outbox: the one owner of a delivery's state (pending → delivered | dead |
cancelled, and back to pending on a resend)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from push.models import Delivery


def resend(session: Session, delivery_ids: Iterable[int], *, actor: str) -> int:
    """Queue deliveries again at once (after a dead letter, or because the receiver lost them),
    with the same ``webhook-id``; returns how many were queued. Cancelled ones (a revoked link's
    ``tier.changed``) stay cancelled: the citizen said stop."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return 0
    now = utcnow()
    queued = session.execute(  # type: ignore[attr-defined]  # DML results carry rowcount
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status.in_(("delivered", "dead", "pending")))
        .values(status="pending", next_attempt_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    audit(
        session, actor=actor, action="webhook.delivery.resend", deliveries=ids[:100], count=queued
    )
    return int(queued or 0)
