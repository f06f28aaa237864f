"""Delivering the outbox: the one owner of a delivery's state (pending → delivered | dead |
cancelled, and back to pending on a resend).

A round (:func:`deliver_due`) has three steps, so no transaction is open while a receiver answers:

1. **claim**, in a short transaction: the due pending deliveries that head their (subscription,
   ordering key) queue get a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several worker
   processes never take the same one);
2. **send**, outside any transaction: one signed POST each (Standard Webhooks), subscriptions in
   parallel, one subscription's deliveries in id order;
3. **record**, in a transaction: an attempt row per try, delivered on 2xx, else a retry with
   exponential backoff and jitter for up to :data:`GIVE_UP_AFTER`, then a dead letter; the
   subscription's failure streak, and its disabling after :data:`DISABLE_AFTER`.

A worker killed between 2 and 3 leaves leases that expire; the next round sends again with the same
``webhook-id``, which the receiver's deduplication absorbs (at least once, never lost).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpx
from sqlalchemy import and_, func, insert, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from citycredit.core.config import Settings
from citycredit.core.db import unit_of_work, utcnow
from push.models import Attempt, Delivery, Event, Link, Subscription
from push.subscriptions import non_public_destination, set_status, signing_secrets

log = logging.getLogger(__name__)

ACTOR = "webhooks"
# How long a claimed delivery is held by its worker. A round starts no send after half of it, and a
# send takes at most ~25 s (the timeouts below), so the lease outlives every send of its round.
LEASE = dt.timedelta(seconds=120)
FIRST_RETRY = dt.timedelta(seconds=10)
MAX_BACKOFF = dt.timedelta(hours=4)
# Standard Webhooks' and the issue's horizon: a receiver down over a weekend still gets everything.
GIVE_UP_AFTER = dt.timedelta(days=3)
# Longer than GIVE_UP_AFTER, so each delivery has had its full three days before the endpoint is
# judged (disabling is about the endpoint, not one event); shorter than links.LEVEL_VALIDITY (7 days),
# so the operator hears (the notice, the admin's list) before the levels it holds go stale; and
# disabling stops a dead endpoint from turning every new event into a dead letter.
DISABLE_AFTER = dt.timedelta(days=5)
TIMEOUT = httpx.Timeout(10.0, connect=5.0, pool=5.0)
# No answer is read beyond this many seconds after the POST began.
TOTAL_SECONDS = 10.0
# What is read of a receiver's answer: enough to reuse the connection, never a flood.
MAX_ANSWER_BYTES = 64 * 1024
PARALLEL = 8
# How long after the last send may start a round still waits for the sends (connect 5 s, answer 10 s,
# and margin), at most 0.6 of the send budget (half the lease): the round records before its leases
# run out.
SEND_GRACE = 30.0
USER_AGENT = "CityCredit-Webhooks/1 (+https://www.standardwebhooks.com/)"

_client_lock = threading.Lock()
_shared_client: httpx.Client | None = None


@dataclass
class Round:
    """What a round did: deliveries claimed and tried (sent), and how they ended."""

    claimed: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    disabled: int = 0


@dataclass(frozen=True)
class Claimed:
    """A leased delivery and everything its POST needs (read in the claim transaction)."""

    id: int
    subscription_id: int
    url: str
    webhook_id: str
    body: bytes
    signers: tuple[Webhook, ...]
    lease_until: dt.datetime
    event_type: str = ""


@dataclass(frozen=True)
class Outcome:
    """One try: when, how long, the HTTP status (None: no answer) and what went wrong."""

    delivery: Claimed
    at: dt.datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    # False when no connection could be made: the endpoint's other deliveries wait for a later round.
    reached: bool = True

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def shared_client() -> httpx.Client:
    """One keep-alive client per process (connections to a receiver are reused across rounds)."""
    global _shared_client
    with _client_lock:
        if _shared_client is None:
            _shared_client = new_client()
        return _shared_client


def new_client() -> httpx.Client:
    """The sending client's settings: timeouts, no redirects (a 3xx is a failure), our agent."""
    return httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=PARALLEL * 2, max_keepalive_connections=PARALLEL * 2),
    )


def event_body(event: Event) -> bytes:
    """The POSTed body: compact UTF-8 JSON of the type, the event's time and its data."""
    stamp = event.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    document = {"type": event.type, "timestamp": stamp, "data": event.data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- 1. claim -------------------------------------------------------------------------------------


def _heads(session: Session, now: dt.datetime, limit: int) -> list[int]:
    """Ids of the due, unleased pending deliveries that head their (subscription, ordering key)
    queue, oldest due first. One pass over the pending backlog (its partial index) and a sort:
    no join for the planner to get wrong (a NOT EXISTS per row went quadratic on a table whose
    statistics were stale)."""
    rows = session.execute(
        select(Subscription.id, Subscription.failing_since)
        .join(ApiClient, ApiClient.id == Subscription.client_id)
        .where(Subscription.status == "active", ApiClient.status == "active")
    ).all()
    if not rows:
        return []
    active = [sid for sid, _ in rows]
    # An endpoint failing now gets one delivery a round (a probe), not a batch of slots it would
    # hand back untried while other subscriptions wait.
    failing = [sid for sid, since in rows if since is not None]
    ranked = (
        select(
            Delivery.id,
            Delivery.subscription_id,
            Delivery.next_attempt_at,
            Delivery.lease_until,
            func.row_number()
            .over(
                partition_by=(Delivery.subscription_id, Delivery.ordering_key), order_by=Delivery.id
            )
            .label("place"),
        )
        .where(Delivery.status == "pending")
        .subquery("ranked")
    )
    heads = (
        select(
            ranked.c.id,
            ranked.c.subscription_id,
            ranked.c.next_attempt_at,
            func.row_number()
            .over(
                partition_by=ranked.c.subscription_id,
                order_by=(ranked.c.next_attempt_at, ranked.c.id),
            )
            .label("in_subscription"),
        )
        .where(
            ranked.c.place == 1,
            ranked.c.subscription_id.in_(active),
            ranked.c.next_attempt_at <= now,
            or_(ranked.c.lease_until.is_(None), ranked.c.lease_until < now),
        )
        .subquery("heads")
    )
    return list(
        session.scalars(
            select(heads.c.id)
            .where(
                or_(heads.c.in_subscription == 1, heads.c.subscription_id.not_in(failing))
                if failing
                else true()
            )
            .order_by(heads.c.next_attempt_at, heads.c.id)
            .limit(limit)
        )
    )


def _due(session: Session, now: dt.datetime, limit: int) -> list[int]:
    """The heads, locked: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` with the conditions checked
    again under the lock, so a head another worker is claiming (or just claimed) is left to it."""
    heads = _heads(session, now, limit)
    if not heads:
        return []
    query = (
        select(Delivery.id)
        .where(
            Delivery.id.in_(heads),
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
        )
        .order_by(Delivery.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def _signers(
    session: Session, ids: set[int], key_secret: bytes, now: dt.datetime
) -> dict[int, tuple[str, tuple[Webhook, ...]]]:
    """Each subscription's URL and signers (one per current secret)."""
    subscriptions = session.scalars(select(Subscription).where(Subscription.id.in_(ids)))
    return {
        sub.id: (
            sub.url,
            tuple(Webhook(s) for s in signing_secrets(sub, key_secret=key_secret, now=now)),
        )
        for sub in subscriptions
    }


def claim(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    now: dt.datetime,
    limit: int,
    lease: dt.timedelta = LEASE,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries (committed at once) and read what sending them needs."""
    lease_until = now + lease
    with unit_of_work(sessions) as session:
        ids = _due(session, now, limit)
        if not ids:
            return []
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        rows = session.execute(
            select(Delivery.id, Delivery.subscription_id, Event)
            .join(Event, Event.id == Delivery.event_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
        signers = _signers(session, {sid for _, sid, _ in rows}, settings.key_secret, now)
    return [
        Claimed(
            id=did,
            subscription_id=sid,
            url=signers[sid][0],
            webhook_id=event.public_id,
            body=event_body(event),
            signers=signers[sid][1],
            lease_until=lease_until,
            event_type=event.type,
        )
        for did, sid, event in rows
    ]


# --- 2. send --------------------------------------------------------------------------------------


def signed_headers(delivery: Claimed, sent_at: float) -> dict[str, str]:
    """Standard Webhooks headers: one ``v1,`` signature per current secret, space separated."""
    stamp = dt.datetime.fromtimestamp(int(sent_at), dt.UTC)
    signatures = " ".join(
        signer.sign(delivery.webhook_id, stamp, delivery.body) for signer in delivery.signers
    )
    return {
        "Content-Type": "application/json",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(sent_at)),
        "webhook-signature": signatures,
    }


def _read_briefly(response: httpx.Response, deadline: float) -> None:
    """Read a small answer (the connection is then reused); give up on a large, endless or
    trickling one (the connection is then closed)."""
    received = 0
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > MAX_ANSWER_BYTES or time.monotonic() > deadline:
            break


def post(client: httpx.Client, delivery: Claimed, at: dt.datetime) -> Outcome:
    """One signed POST; any failure is an outcome, never an exception."""
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    reached = True
    try:
        request = client.build_request(
            "POST",
            delivery.url,
            content=delivery.body,
            headers=signed_headers(delivery, time.time()),
        )
        response = client.send(request, stream=True)
        try:
            status = response.status_code
            _read_briefly(response, started + TOTAL_SECONDS)
        finally:
            response.close()
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        reached = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        reached = False
    duration = int((time.monotonic() - started) * 1000)
    return Outcome(delivery, at, duration, status, error, reached)


def _send_in_order(
    client: httpx.Client,
    deliveries: Sequence[Claimed],
    clock: Callable[[], dt.datetime],
    deadline: float,
    stop: threading.Event | None,
    blocked: Mapping[str, str],
    outcomes: list[Outcome],
    begun: set[int],
) -> None:
    """One subscription's deliveries, in id order, until the round's deadline or a stop, each
    outcome appended to ``outcomes`` as it comes; an endpoint that cannot be reached (or is
    ``blocked``: URL → why) is not tried again this round."""
    for delivery in deliveries:
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            break
        refusal = blocked.get(delivery.url)
        if refusal is not None:  # never connect: a failed try, recorded like any other
            outcomes.append(Outcome(delivery, clock(), 0, None, refusal, False))
            return
        begun.add(delivery.id)
        outcome = post(client, delivery, clock())
        outcomes.append(outcome)
        if not outcome.reached:
            return


def send(
    client: httpx.Client,
    claimed: Sequence[Claimed],
    *,
    clock: Callable[[], dt.datetime],
    budget: float,
    stop: threading.Event | None = None,
    blocked: Mapping[str, str] | None = None,
    begun: set[int] | None = None,
) -> list[Outcome]:
    """Send a claimed batch: subscriptions in parallel, each one's deliveries in id order; no send
    starts after ``budget`` seconds (the lease must outlive every send). ``begun`` collects the
    deliveries whose POST started (one without an outcome is still in flight)."""
    by_subscription: dict[int, list[Claimed]] = defaultdict(list)
    for delivery in claimed:
        by_subscription[delivery.subscription_id].append(delivery)
    deadline = time.monotonic() + budget
    refused = blocked or {}
    started = begun if begun is not None else set()
    per_group: list[list[Outcome]] = [[] for _ in by_subscription]
    pool = ThreadPoolExecutor(max_workers=min(PARALLEL, len(per_group)))
    futures = [
        pool.submit(
            _send_in_order, client, group, clock, deadline, stop, refused, outcomes, started
        )
        for group, outcomes in zip(by_subscription.values(), per_group, strict=True)
    ]
    # The last send starts by the deadline and its timeouts end it ~25 s later, unless a receiver
    # trickles its answer byte by byte: the round does not wait for that one (its delivery stays
    # leased, and goes again when the lease runs out).
    wait(futures, timeout=budget + min(SEND_GRACE, budget * 0.6))
    pool.shutdown(wait=False, cancel_futures=True)
    return [outcome for outcomes in per_group for outcome in list(outcomes)]


# --- 3. record ------------------------------------------------------------------------------------


def backoff(tries: int, rng: random.Random | None = None) -> dt.timedelta:
    """The wait after the ``tries``-th failed try: 10 s doubling to 4 h, with full jitter on the
    upper half (so a city's worth of retries to one endpoint does not arrive at once)."""
    ceiling = min(MAX_BACKOFF, FIRST_RETRY * 2 ** min(tries - 1, 20))
    return ceiling / 2 + ceiling / 2 * (rng or random).random()


def _series_start(session: Session, delivery: Delivery, now: dt.datetime) -> dt.datetime:
    """When the current series of tries began (a resend starts a new one)."""
    if delivery.attempts <= 1:
        return now
    first = session.scalar(
        select(Attempt.at)
        .where(Attempt.delivery_id == delivery.id)
        .order_by(Attempt.id.desc())
        .offset(delivery.attempts - 1)
        .limit(1)
    )
    return first or now


def _record_failure(
    session: Session, delivery: Delivery, outcome: Outcome, now: dt.datetime, rng: random.Random
) -> bool:
    """Schedule the retry, or give up after GIVE_UP_AFTER (dead letter); True when dead."""
    if now - _series_start(session, delivery, now) >= GIVE_UP_AFTER:
        delivery.status = "dead"
        audit(
            session,
            actor=ACTOR,
            action="webhook.delivery.dead",
            delivery=delivery.id,
            webhook_id=outcome.delivery.webhook_id,
            attempts=delivery.attempts,
            last_error=outcome.error,
        )
        log.warning(
            "webhook %s gave up after %d tries (%s): dead letter",
            outcome.delivery.webhook_id,
            delivery.attempts,
            outcome.error,
        )
        return True
    delivery.next_attempt_at = now + backoff(delivery.attempts, rng)
    return False


def _record_one(
    session: Session,
    delivery: Delivery | None,
    outcome: Outcome,
    now: dt.datetime,
    rng: random.Random,
    tally: Round,
) -> None:
    # Another worker took it over after our lease ran out, or it was cancelled or resent meanwhile:
    # the attempt is history, the state is theirs.
    if (
        delivery is None
        or delivery.status != "pending"
        or delivery.lease_until != outcome.delivery.lease_until
    ):
        return
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    delivery.lease_until = None
    if outcome.ok:
        delivery.status = "delivered"
        delivery.delivered_at = outcome.at
        tally.delivered += 1
    elif _record_failure(session, delivery, outcome, now, rng):
        tally.dead += 1
    else:
        tally.failed += 1


def _judge_endpoints(
    session: Session, outcomes: Sequence[Outcome], now: dt.datetime, tally: Round
) -> None:
    """Keep each subscription's failure streak; disable one failing for DISABLE_AFTER."""
    succeeded: dict[int, bool] = {}
    for outcome in outcomes:
        sid = outcome.delivery.subscription_id
        succeeded[sid] = succeeded.get(sid, False) or outcome.ok
    for sid, ok in sorted(succeeded.items()):  # locks in one order: two workers never deadlock
        subscription = session.get(Subscription, sid, with_for_update=True)
        if subscription is None:
            continue
        if ok:
            subscription.last_success_at = now
            subscription.failing_since = None
            continue
        subscription.failing_since = subscription.failing_since or now
        if subscription.status == "active" and now - subscription.failing_since >= DISABLE_AFTER:
            _disable(session, subscription, now)
            tally.disabled += 1


def _disable(session: Session, subscription: Subscription, now: dt.datetime) -> None:
    days = (now - subscription.failing_since).days if subscription.failing_since else 0
    reason = (
        f"every delivery failed for {days} days (since "
        f"{subscription.failing_since:%Y-%m-%d %H:%M} UTC); fix the endpoint, enable the "
        "subscription again and resend the dead letters"
    )
    set_status(session, subscription, "disabled", actor=ACTOR, reason=reason)
    log.warning("webhook subscription %s disabled: %s", subscription.public_id, reason)


def record(
    sessions: sessionmaker[Session],
    claimed: Sequence[Claimed],
    outcomes: Sequence[Outcome],
    *,
    now: dt.datetime,
    rng: random.Random,
    in_flight: Collection[int] = (),
) -> Round:
    """Store the tries and their consequences, and release the leases of what was not tried
    (``in_flight``: begun, no outcome yet; they keep their leases)."""
    tally = Round(claimed=len(claimed), sent=len(outcomes))
    with unit_of_work(sessions) as session:
        # Lock the batch's rows at once, in id order (a revocation or a resend waits for us).
        rows = {
            d.id: d
            for d in session.scalars(
                select(Delivery)
                .where(Delivery.id.in_([o.delivery.id for o in outcomes]))
                .order_by(Delivery.id)
                .with_for_update()
            )
        }
        if outcomes:
            session.execute(
                insert(Attempt),
                [
                    {
                        "delivery_id": o.delivery.id,
                        "at": o.at,
                        "status_code": o.status_code,
                        "error": o.error,
                        "duration_ms": o.duration_ms,
                    }
                    for o in outcomes
                ],
            )
        revoked = _revoked_keys(session, outcomes, rows)
        for outcome in outcomes:
            row = rows.get(outcome.delivery.id)
            if row is not None and not outcome.ok and row.ordering_key in revoked:
                # Sent while the citizen revoked the link, and not taken: never again.
                _cancel_row(row, outcome)
                continue
            _record_one(session, row, outcome, now, rng, tally)
        _judge_endpoints(session, outcomes, now, tally)
        tried = {o.delivery.id for o in outcomes} | set(in_flight)
        _release(session, {c.id for c in claimed} - tried, claimed)
    return tally


def _revoked_keys(
    session: Session, outcomes: Sequence[Outcome], rows: Mapping[int, Delivery]
) -> set[str]:
    """Pseudonyms of this round's failed ``tier.changed`` whose link was revoked (and not made
    again)."""
    keys = {
        rows[o.delivery.id].ordering_key
        for o in outcomes
        if not o.ok and o.delivery.event_type == "tier.changed" and o.delivery.id in rows
    }
    if not keys:
        return set()
    found = session.execute(
        select(Link.pseudonym, Link.revoked_at.is_(None)).where(Link.pseudonym.in_(keys))
    ).all()
    return {key for key, _ in found} - {key for key, live in found if live}


def _cancel_row(row: Delivery, outcome: Outcome) -> None:
    if row.status == "pending" and row.lease_until == outcome.delivery.lease_until:
        row.attempts += 1
        row.status = "cancelled"
        row.last_status_code = outcome.status_code
        row.last_error = "link revoked"
        row.lease_until = None


def cancel_level_changes(
    session: Session, *, operator_id: int, pseudonym: str, now: dt.datetime
) -> None:
    """A revoked link: its ``tier.changed`` not yet delivered (pending or dead letters) is cancelled,
    so nothing more about the citizen leaves and a resend cannot revive it. One being sent right
    now (leased) is left to its worker, which cancels it if it fails: a ``link.revoked`` queued
    behind it cannot overtake it."""
    of_operator = (
        select(Subscription.id)
        .join(ApiClient, ApiClient.id == Subscription.client_id)
        .where(ApiClient.operator_id == operator_id)
    )
    session.execute(
        update(Delivery)
        .where(
            Delivery.status.in_(("pending", "dead")),
            Delivery.ordering_key == pseudonym,
            Delivery.subscription_id.in_(of_operator),
            or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            # Through the queue's index on (subscription, key) and the event's primary key.
            select(Event.id)
            .where(Event.id == Delivery.event_id, Event.type == "tier.changed")
            .exists(),
        )
        .values(status="cancelled", last_error="link revoked")
        .execution_options(synchronize_session=False)
    )


def cancel_queued(session: Session, subscription_id: int, *, reason: str) -> None:
    """Cancel a subscription's pending deliveries (it was deleted)."""
    session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == subscription_id, Delivery.status == "pending")
        .values(status="cancelled", last_error=reason, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def _release(session: Session, untried: set[int], claimed: Iterable[Claimed]) -> None:
    if not untried:
        return
    lease_until = next(iter(claimed)).lease_until
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(untried), Delivery.lease_until == lease_until)
        .values(lease_until=None)
        .execution_options(synchronize_session=False)
    )


# --- a round --------------------------------------------------------------------------------------


def _blocked(claimed: Sequence[Claimed], settings: Settings) -> dict[str, str]:
    """In production, the URLs of this round that now resolve to a non-public address (a DNS
    change since the subscription was made must not turn the worker against the city's network)."""
    if settings.environment != "production" or settings.demo_mode:
        return {}
    found = {}
    for url in {delivery.url for delivery in claimed}:
        problem = non_public_destination(url)
        if problem is not None:
            found[url] = f"refused: not a public address ({problem})"
    return found


def deliver_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    client: httpx.Client | None = None,
    worker: str = "",
    limit: int = 200,
    rng: random.Random | None = None,
    lease: dt.timedelta = LEASE,
    stop: threading.Event | None = None,
) -> Round:
    """One round: claim up to ``limit`` due deliveries, send them, record the outcomes.

    ``now`` fixes the clock (tests drive it days forward); the ``webhook-timestamp`` header is
    always the real time of sending, which receivers check against their own clock."""
    clock: Callable[[], dt.datetime] = (lambda: now) if now is not None else utcnow
    claimed = claim(sessions, settings, now=clock(), limit=limit, lease=lease)
    if not claimed:
        return Round()
    begun: set[int] = set()
    outcomes = send(
        client or shared_client(),
        claimed,
        clock=clock,
        budget=lease.total_seconds() / 2,
        stop=stop,
        blocked=_blocked(claimed, settings),
        begun=begun,
    )
    # A POST still hanging when the round stopped waiting keeps its lease (released, another
    # worker could send it at the same time): it goes again when the lease runs out.
    in_flight = begun - {o.delivery.id for o in outcomes}
    tally = record(
        sessions, claimed, outcomes, now=clock(), rng=rng or random.Random(), in_flight=in_flight
    )
    if tally.sent:
        log.info(
            "%swebhooks: %d sent, %d delivered, %d to retry, %d dead",
            f"[{worker}] " if worker else "",
            tally.sent,
            tally.delivered,
            tally.failed,
            tally.dead,
        )
    return tally


def resend(session: Session, delivery_ids: Iterable[int], *, actor: str) -> int:
    """Queue delivered or dead deliveries again at once (the receiver lost them, or its endpoint is
    fixed), with the same ``webhook-id``, as a new series of tries; returns how many were queued.
    A pending one is left alone (it may be being sent: queueing it again would send it twice at
    once); a cancelled one stays cancelled, and so does a ``tier.changed`` whose link was revoked
    since (the citizen said stop)."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return 0
    now = utcnow()
    of_key = select(Link.id).where(Link.pseudonym == Delivery.ordering_key).correlate(Delivery)
    revoked_level = and_(
        select(Event.id)
        .where(Event.id == Delivery.event_id, Event.type == "tier.changed")
        .correlate(Delivery)
        .exists(),
        of_key.where(Link.revoked_at.is_not(None)).exists(),
        ~of_key.where(Link.revoked_at.is_(None)).exists(),
    )
    queued = session.execute(  # type: ignore[attr-defined]  # DML results carry rowcount
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status.in_(("delivered", "dead")), ~revoked_level)
        .values(status="pending", next_attempt_at=now, lease_until=None, attempts=0)
        .execution_options(synchronize_session=False)
    ).rowcount
    audit(
        session, actor=actor, action="webhook.delivery.resend", deliveries=ids[:100], count=queued
    )
    return int(queued or 0)
