"""The daily governance bulletin (issue 11 §4; wire format in docs/GOVERNANCE.md).

Each city day gets one bulletin, published after midnight city time and before 08:00: the outcomes
decided that day — objections upheld, rejected or withdrawn, repair applications approved or refused,
list changes — each naming the record by its source and the source's own id and document number,
never a person. It is a compact JWS signed by the city's federation key (the key partners and the
provincial platform pin by fingerprint), numbered without gaps (``seq``) and identified by a
``batch_id`` that stays the same however often it is sent, so a receiver applies it once.

Missed days are caught up oldest first (up to CATCH_UP_DAYS back). Delivery to a configured endpoint
is at least once, in order: a bulletin not accepted (a 2xx answer) is retried with exponential
backoff and jitter, and later days wait for it; after MAX_ATTEMPTS it is marked failed for the admin
to resend. A platform may instead pull them (``bulletins_after``).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen.models import Objection, RepairApplication
from citycredit.core.audit import audit
from citycredit.core.config import Settings
from federation import jws
from federation import keys as fed_keys
from governance import lists
from governance.models import GovernanceBulletin
from points_engine.models import DataSource, Record

log = logging.getLogger(__name__)

TYP = "citycredit-governance-bulletin+jwt"
CATCH_UP_DAYS = 60
PAGE = 100
MAX_ATTEMPTS = 30
# Seconds before the n-th retry (then hourly): about a day and a half of trying in all.
BACKOFF = (60, 300, 900, 1800, 3600)
PUSH_TIMEOUT = 15.0
OBJECTION_OUTCOMES = ("upheld", "rejected", "withdrawn")
REPAIR_OUTCOMES = ("approved", "refused")


def day_bounds(settings: Settings, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The city day as an interval of UTC instants: [00:00, next 00:00) where the city is."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=settings.tz)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def _record_ref(record: Record, source: DataSource) -> dict[str, Any]:
    return {
        "source": source.code,
        "source_record_id": record.source_record_id,
        "document_no": record.document_no,
        "item_code": record.item_code,
    }


def outcomes_of_day(session: Session, settings: Settings, day: dt.date) -> dict[str, Any]:
    """Everything decided on the city day ``day``: the bulletin's content."""
    start, end = day_bounds(settings, day)
    objections = [
        {
            "case": o.public_id,
            **_record_ref(r, s),
            "outcome": o.status,
            "decided_at": o.decided_at.astimezone(dt.UTC).isoformat() if o.decided_at else None,
        }
        for o, r, s in session.execute(
            select(Objection, Record, DataSource)
            .join(Record, Record.id == Objection.record_id)
            .join(DataSource, DataSource.id == Record.source_id)
            .where(
                Objection.status.in_(OBJECTION_OUTCOMES),
                Objection.decided_at >= start,
                Objection.decided_at < end,
            )
            .order_by(Objection.decided_at, Objection.id)
        )
    ]
    repairs = [
        {
            "application": a.public_id,
            **_record_ref(r, s),
            "outcome": a.status,
            "repaired_on": a.repaired_on.isoformat() if a.repaired_on else None,
            "decided_at": a.decided_at.astimezone(dt.UTC).isoformat() if a.decided_at else None,
        }
        for a, r, s in session.execute(
            select(RepairApplication, Record, DataSource)
            .join(Record, Record.id == RepairApplication.record_id)
            .join(DataSource, DataSource.id == Record.source_id)
            .where(
                RepairApplication.status.in_(REPAIR_OUTCOMES),
                RepairApplication.decided_at >= start,
                RepairApplication.decided_at < end,
            )
            .order_by(RepairApplication.decided_at, RepairApplication.id)
        )
    ]
    return {
        "objections": objections,
        "repairs": repairs,
        "list_changes": lists.changes_between(session, start, end),
    }


def batch_id(settings: Settings, day: dt.date) -> str:
    return f"{settings.city_code}-governance-{day.isoformat()}"


def publish_due(
    session: Session, settings: Settings, *, today: dt.date, now: dt.datetime
) -> list[GovernanceBulletin]:
    """Publish the bulletin of every city day up to yesterday that has none yet, oldest first."""
    last = session.scalar(
        select(GovernanceBulletin).order_by(GovernanceBulletin.seq.desc()).limit(1)
    )
    first = last.day + dt.timedelta(days=1) if last else today - dt.timedelta(days=1)
    first = max(first, today - dt.timedelta(days=CATCH_UP_DAYS))
    if first >= today:
        return []
    fed_keys.ensure(session, settings.key_secret, "city")
    _, private = fed_keys.private_key(session, settings.key_secret, "city", fresh=True)
    seq = last.seq if last else 0
    made = []
    day = first
    while day < today:
        seq += 1
        content = outcomes_of_day(session, settings, day)
        payload = {
            "iss": settings.city_code,
            "seq": seq,
            "date": day.isoformat(),
            "batch_id": batch_id(settings, day),
            "iat": int(now.timestamp()),
            **content,
        }
        bulletin = GovernanceBulletin(
            seq=seq,
            day=day,
            batch_id=payload["batch_id"],
            document=jws.sign(payload, private, typ=TYP),
            objections=len(content["objections"]),
            repairs=len(content["repairs"]),
            list_changes=len(content["list_changes"]),
            created_at=now,
            delivery="pending" if settings.bulletin_push_url else "pull_only",
        )
        session.add(bulletin)
        made.append(bulletin)
        day += dt.timedelta(days=1)
    session.flush()
    for bulletin in made:
        audit(
            session,
            actor="system",
            action="governance.bulletin.publish",
            seq=bulletin.seq,
            day=bulletin.day.isoformat(),
            objections=bulletin.objections,
            repairs=bulletin.repairs,
        )
    return made


def _backoff(attempts: int, rng: random.Random) -> dt.timedelta:
    base = BACKOFF[min(attempts, len(BACKOFF)) - 1] if attempts <= len(BACKOFF) else 3600
    return dt.timedelta(seconds=base * (1 + rng.random() * 0.2))


def _push(client: httpx.Client, settings: Settings, bulletin: GovernanceBulletin) -> str | None:
    """Send one bulletin; None when the receiver took it (2xx), else what went wrong."""
    headers = {"Idempotency-Key": bulletin.batch_id, "Content-Type": "application/json"}
    if settings.bulletin_push_token:
        headers["Authorization"] = f"Bearer {settings.bulletin_push_token}"
    body = {
        "batch_id": bulletin.batch_id,
        "seq": bulletin.seq,
        "day": bulletin.day.isoformat(),
        "document": bulletin.document,
    }
    try:
        response = client.post(settings.bulletin_push_url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"[:500]


def deliver_due(
    session: Session,
    settings: Settings,
    *,
    now: dt.datetime,
    client: httpx.Client | None = None,
    rng: random.Random | None = None,
) -> list[GovernanceBulletin]:
    """Push every pending bulletin whose time has come, in order; stop at the first refusal (the
    later days wait for it). Returns the bulletins delivered now."""
    if not settings.bulletin_push_url:
        return []
    rng = rng or random.Random()
    pending = session.scalars(
        select(GovernanceBulletin)
        .where(GovernanceBulletin.delivery == "pending")
        .order_by(GovernanceBulletin.seq)
        .with_for_update(skip_locked=True)
    ).all()
    delivered = []
    own = client is None
    client = client or httpx.Client(timeout=PUSH_TIMEOUT)
    try:
        for bulletin in pending:
            if bulletin.next_attempt_at is not None and bulletin.next_attempt_at > now:
                break  # not yet, and the later days wait for it
            error = _push(client, settings, bulletin)
            bulletin.attempts += 1
            bulletin.last_attempt_at = now
            if error is None:
                bulletin.delivery = "delivered"
                bulletin.delivered_at = now
                bulletin.next_attempt_at = None
                bulletin.last_error = None
                delivered.append(bulletin)
                continue
            bulletin.last_error = error
            log.warning(
                "bulletin %s not delivered (attempt %d): %s",
                bulletin.batch_id,
                bulletin.attempts,
                error,
            )
            if bulletin.attempts >= MAX_ATTEMPTS:
                bulletin.delivery = "failed"
                bulletin.next_attempt_at = None
                audit(
                    session,
                    actor="system",
                    action="governance.bulletin.failed",
                    seq=bulletin.seq,
                    error=error,
                )
            else:
                bulletin.next_attempt_at = now + _backoff(bulletin.attempts, rng)
            break
    finally:
        if own:
            client.close()
    session.flush()
    for bulletin in delivered:
        audit(
            session,
            actor="system",
            action="governance.bulletin.delivered",
            seq=bulletin.seq,
            attempts=bulletin.attempts,
        )
    return delivered


def resend(session: Session, bulletin: GovernanceBulletin, *, actor: str) -> None:
    """Send a bulletin again (after a failure, or because the receiver lost it): it goes back in
    the queue at once, with the same batch id."""
    bulletin.delivery = "pending"
    bulletin.attempts = 0
    bulletin.next_attempt_at = None
    audit(session, actor=actor, action="governance.bulletin.resend", seq=bulletin.seq)
    session.flush()


def bulletins_after(session: Session, after: int) -> list[GovernanceBulletin]:
    return list(
        session.scalars(
            select(GovernanceBulletin)
            .where(GovernanceBulletin.seq > after)
            .order_by(GovernanceBulletin.seq)
            .limit(PAGE)
        )
    )
