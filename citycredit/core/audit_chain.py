"""The audit log made tamper-evident (issue 13 §4, docs/AUDIT.md): seals, signed checkpoints, checks.

:func:`citycredit.core.audit.audit` stays a plain insert: chaining at insert time would put every
audited request (every verification is one) behind a single lock. Instead a job seals the log after
the fact. Each event older than a grace period gets one ``audit_seal`` row, in id order::

    hash = SHA-256(prev_hash + "\\n" + canonical JSON of the event's columns)

and each sealing run ends with an ``audit_checkpoint``: the chain's head hash and length, signed with
the city's current Ed25519 signing key (a compact JWS). :func:`verify_chain` walks events and seals
together and names the first broken link: an event *changed* after it was sealed, a sealed event
*deleted*, an event *inserted* below the sealed high-water mark, or seals rewritten so they no longer
match a signed checkpoint. The three tables refuse UPDATE, DELETE and TRUNCATE by trigger
(migration 0018); the chain is what still catches a superuser who goes around the triggers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import BigInteger, Integer, String, Text, func, insert, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from citycredit.core import keys
from citycredit.core.audit import AuditEvent, audit
from citycredit.core.db import Base, utcnow
from citycredit.core.jobs import JobContext, JobSpec

log = logging.getLogger(__name__)

GENESIS = "0" * 64
TYP_CHECKPOINT = "citycredit-audit-checkpoint+jwt"
TYP_EXPORT = "citycredit-audit-export+jwt"
ALGORITHM = "EdDSA"
# Events read and sealed per query: bounded memory however long the scheduler was down.
CHUNK = 2000
SEAL_LOCK = int.from_bytes(b"ccaudit", "big")  # the advisory lock's key: any fixed bigint
BIG = BigInteger().with_variant(Integer(), "sqlite")

_jws = jwt.PyJWS()
EVENTS = AuditEvent.__table__


class AuditSeal(Base):
    """One audit event's link in the chain. Insert-only; no foreign key, so a deleted event shows."""

    __tablename__ = "audit_seal"

    event_id: Mapped[int] = mapped_column(BIG, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditCheckpoint(Base):
    """The chain's head after a sealing run, signed by the city's key. Insert-only."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    up_to_event_id: Mapped[int] = mapped_column(BIG, unique=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BIG)  # seals from the first event up to this one
    signed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kid: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)  # compact JWS over the four fields above


# --- hashing --------------------------------------------------------------------------------------


SEALS = AuditSeal.__table__


def canonical(event: Any) -> str:
    """An event's columns (a row or an :class:`AuditEvent`) as canonical JSON: sorted keys, no
    spaces, the time in UTC to the microsecond."""
    at = event.at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return json.dumps(
        {
            "id": event.id,
            "at": at,
            "actor": event.actor,
            "action": event.action,
            "citizen_id": event.citizen_id,
            "detail": event.detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def link_hash(prev_hash: str, event: Any) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(event)}".encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _checkpoint_payload(
    up_to: int, head: str, count: int, signed_at: dt.datetime
) -> dict[str, Any]:
    return {"up_to": up_to, "head": head, "count": count, "signed_at": _stamp(signed_at)}


def _sign(
    payload: dict[str, Any], session: Session, key_secret: bytes, typ: str
) -> tuple[str, str]:
    kid, private = keys.current_signing_key(session, key_secret)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    token = _jws.encode(
        body.encode("utf-8"), private, algorithm=ALGORITHM, headers={"kid": kid, "typ": typ}
    )
    return kid, token


def public_key(session: Session, kid: str) -> Ed25519PublicKey | None:
    """Any key the city ever signed with, retired or not: a checkpoint outlives its key's tokens."""
    row = session.scalar(select(keys.SigningKey).where(keys.SigningKey.kid == kid))
    if row is None:
        return None
    raw = base64.urlsafe_b64decode(row.public_jwk["x"] + "==")
    return Ed25519PublicKey.from_public_bytes(raw)


def _payload_of(token: str, public: Ed25519PublicKey, typ: str) -> dict[str, Any] | None:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != typ:
            return None
        body = _jws.decode(token, public, algorithms=[ALGORITHM])
        found = json.loads(body)
    except (jwt.InvalidTokenError, ValueError):
        return None
    return found if isinstance(found, dict) else None


# --- sealing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealRun:
    sealed: int
    up_to: int | None  # the last sealed event id after the run
    checkpoint: AuditCheckpoint | None


def _head(session: Session) -> tuple[int, str, int]:
    """The sealed high-water mark, its hash and the chain's length (0, GENESIS, 0 when empty)."""
    last = session.execute(
        select(SEALS.c.event_id, SEALS.c.hash).order_by(SEALS.c.event_id.desc()).limit(1)
    ).first()
    if last is None:
        return 0, GENESIS, 0
    count = session.scalar(select(func.count()).select_from(SEALS)) or 0
    return last.event_id, last.hash, count


def seal(
    session: Session, key_secret: bytes, *, grace: dt.timedelta, now: dt.datetime | None = None
) -> SealRun:
    """Chain every event older than ``grace`` after the sealed mark, then sign one checkpoint.

    The run stops before the first event still in its grace period, even if later ids are older
    (another host's clock): sealing past it would make that event look inserted once sealed around.
    """
    now = now or utcnow()
    cutoff = now - grace
    if session.get_bind().dialect.name == "postgresql":
        # One sealer at a time (the scheduler on two hosts, or it and `citycredit audit seal`): the
        # second waits, then reads the first's seals. SQLite's BEGIN IMMEDIATE already serialises.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEAL_LOCK})
    mark, prev, count = _head(session)
    young = session.scalar(
        select(func.min(AuditEvent.id)).where(AuditEvent.id > mark, AuditEvent.at > cutoff)
    )
    sealed = 0
    while True:
        # Plain rows, not ORM objects: what is stored, never a copy held in the session.
        query = select(EVENTS).where(EVENTS.c.id > mark).order_by(EVENTS.c.id).limit(CHUNK)
        if young is not None:
            query = query.where(EVENTS.c.id < young)
        events = list(session.execute(query))
        if not events:
            break
        links = []
        for event in events:
            digest = link_hash(prev, event)
            links.append(
                {"event_id": event.id, "prev_hash": prev, "hash": digest, "sealed_at": now}
            )
            prev, mark = digest, event.id
        session.execute(insert(AuditSeal), links)
        sealed += len(events)
    if not sealed:
        return SealRun(0, mark or None, None)
    count += sealed
    signed_at = now.replace(microsecond=0)
    kid, token = _sign(
        _checkpoint_payload(mark, prev, count, signed_at), session, key_secret, TYP_CHECKPOINT
    )
    checkpoint = AuditCheckpoint(
        up_to_event_id=mark,
        head_hash=prev,
        count=count,
        signed_at=signed_at,
        kid=kid,
        signature=token,
    )
    session.add(checkpoint)
    session.flush()
    return SealRun(sealed, mark, checkpoint)


# --- verifying ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first broken link. ``kind``: changed, deleted, inserted, seal (the seals themselves
    altered), checkpoint (a checkpoint's signature or its agreement with the seals)."""

    kind: str
    event_id: int
    message: str


@dataclass(frozen=True)
class ChainReport:
    sealed: int  # events checked against their seals
    unsealed: int  # events after the sealed mark (still in their grace period, or not yet sealed)
    up_to: int | None  # the sealed high-water mark
    checkpoints: int
    last_checkpoint: AuditCheckpoint | None
    broken: Break | None
    # None: the whole log was checked; else the check started after the signed checkpoint up to
    # this event (events before it were not read: ``citycredit audit verify`` checks everything).
    after: int | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def line(self) -> str:
        """One line for a terminal or a log."""
        if self.broken is not None:
            return f"BROKEN at event {self.broken.event_id} ({self.broken.kind}): {self.broken.message}"
        last = self.last_checkpoint
        signed = (
            f"last checkpoint up to event {last.up_to_event_id} signed {_stamp(last.signed_at)} "
            f"by key {last.kid}"
            if last is not None
            else "no checkpoint yet"
        )
        through = f"intact up to event {self.up_to}" if self.up_to else "nothing sealed yet"
        if self.after is not None:
            through += f" (checked from the signed checkpoint at event {self.after} on)"
        return (
            f"OK: audit chain {through}; {self.sealed} events sealed, {self.unsealed} not yet "
            f"sealed; {self.checkpoints} checkpoints, {signed}"
        )


@contextmanager
def _merged(session: Session, mark: int, after: int) -> Iterator[Iterator[tuple[int, Any, Any]]]:
    """Event rows up to ``mark`` and seal rows, side by side in id order (either may be missing).

    Plain rows, not ORM objects: the check reads what is stored, never an object the session
    holds. Both are streamed (server-side cursors on PostgreSQL), closed however the walk ends."""
    event_rows = session.execute(
        select(EVENTS).where(EVENTS.c.id > after, EVENTS.c.id <= mark).order_by(EVENTS.c.id),
        execution_options={"yield_per": CHUNK},
    )
    seal_rows = session.execute(
        select(SEALS).where(SEALS.c.event_id > after).order_by(SEALS.c.event_id),
        execution_options={"yield_per": CHUNK},
    )

    def walk() -> Iterator[tuple[int, Any, Any]]:
        events, seals = iter(event_rows), iter(seal_rows)
        event, link = next(events, None), next(seals, None)
        while event is not None or link is not None:
            if link is None or (event is not None and event.id < link.event_id):
                assert event is not None
                yield event.id, event, None
                event = next(events, None)
            elif event is None or link.event_id < event.id:
                yield link.event_id, None, link
                link = next(seals, None)
            else:
                yield event.id, event, link
                event, link = next(events, None), next(seals, None)

    try:
        yield walk()
    finally:
        event_rows.close()
        seal_rows.close()


def _bad_checkpoint(session: Session, checkpoint: AuditCheckpoint) -> str | None:
    public = public_key(session, checkpoint.kid)
    if public is None:
        return f"checkpoint #{checkpoint.id} names key {checkpoint.kid!r}, which the city never had"
    payload = _payload_of(checkpoint.signature, public, TYP_CHECKPOINT)
    expected = _checkpoint_payload(
        checkpoint.up_to_event_id, checkpoint.head_hash, checkpoint.count, checkpoint.signed_at
    )
    if payload != expected:
        return f"checkpoint #{checkpoint.id}'s signature does not verify over its fields"
    return None


def verify_chain(session: Session, *, window: int | None = None) -> ChainReport:
    """Walk the log against its seals and checkpoints; stop at the first broken link.

    ``window``: check at least the last ``window`` sealed events, starting after the latest signed
    checkpoint before them (its signature checked) instead of at the first event, so a page answers
    within a request's time however long the log grows. None (the command) checks everything.
    """
    mark = session.scalar(select(func.max(SEALS.c.event_id))) or 0
    total = session.scalar(select(func.count()).select_from(SEALS)) or 0
    unsealed = (
        session.scalar(select(func.count()).select_from(EVENTS).where(EVENTS.c.id > mark)) or 0
    )
    start = None
    if window is not None and total > window:
        start = session.scalar(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.count <= total - window)
            .order_by(AuditCheckpoint.count.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
    after = start.up_to_event_id if start is not None else 0
    checkpoints = list(
        session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.up_to_event_id > after)
            .order_by(AuditCheckpoint.up_to_event_id)
            .execution_options(populate_existing=True)  # what is stored, not what the session holds
        )
    )
    count = session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0
    last = checkpoints[-1] if checkpoints else start

    def report(sealed: int, broken: Break | None) -> ChainReport:
        return ChainReport(
            sealed, unsealed, mark or None, count, last, broken, after if start else None
        )

    by_event = {c.up_to_event_id: c for c in checkpoints}
    for checkpoint in [start, *checkpoints] if start else checkpoints:
        problem = _bad_checkpoint(session, checkpoint)
        if problem:
            return report(0, Break("checkpoint", checkpoint.up_to_event_id, problem))
    head, sealed = (start.head_hash, start.count) if start else (GENESIS, 0)
    with _merged(session, mark, after) as walk:
        broken, sealed = _walk(walk, mark, by_event, head, sealed, after + 1)
    if broken is None and by_event:
        first = min(by_event)
        broken = Break(
            "deleted",
            first,
            f"checkpoint #{by_event[first].id} covers events up to {first}, but the chain ends "
            f"at {mark or 'nothing'}: sealed events at its end were deleted with their seals",
        )
    return report(sealed, broken)


def _walk(
    walk: Iterator[tuple[int, Any, Any]],
    mark: int,
    by_event: dict[int, AuditCheckpoint],
    prev: str,
    sealed: int,
    since: int,
) -> tuple[Break | None, int]:
    """The first broken link, and how many sealed events up to it were intact (``sealed`` of them
    before the walk); pops the checkpoints met."""
    for event_id, event, link in walk:
        if link is None:
            return Break(
                "inserted",
                event_id,
                f"event {event_id} is below the sealed mark ({mark}) but was never sealed: "
                "it was inserted after its neighbours were sealed",
            ), sealed
        if link.prev_hash != prev:
            return Break(
                "deleted",
                event_id,
                f"the link before event {event_id} is missing: an earlier sealed event was "
                "deleted with its seal, or the seals were altered",
            ), sealed
        if event is None:
            return Break(
                "deleted", event_id, f"event {event_id} was sealed and has since been deleted"
            ), sealed
        if link_hash(prev, event) != link.hash:
            return Break(
                "changed",
                event_id,
                f"event {event_id} differs from what was sealed: it was changed",
            ), sealed
        prev = link.hash
        sealed += 1
        checkpoint = by_event.pop(event_id, None)
        if checkpoint is not None:
            if checkpoint.head_hash != prev or checkpoint.count != sealed:
                return Break(
                    "seal",
                    event_id,
                    f"the seals of events {since}–{event_id} do not match checkpoint "
                    f"#{checkpoint.id} signed {_stamp(checkpoint.signed_at)}: events in that "
                    "range were changed, deleted or inserted and the seals rewritten",
                ), sealed
            since = event_id + 1
    return None, sealed


def verify_and_record(session: Session, *, actor: str, window: int | None = None) -> ChainReport:
    """Verify, and record that the log was read (the check reads the events)."""
    found = verify_chain(session, window=window)
    audit(
        session,
        actor=actor,
        action="audit.chain_verify",
        ok=found.ok,
        up_to=found.up_to,
        checked_after=found.after,
        broken_at=found.broken.event_id if found.broken else None,
        kind=found.broken.kind if found.broken else None,
    )
    return found


# --- exporting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    lines: bytes  # JSON Lines: one event per line, canonical, with its seal's hash if sealed
    signature: str  # compact JWS over {"sha256": <the file's SHA-256>, range, count, when}
    count: int


def export(
    session: Session,
    key_secret: bytes,
    *,
    first: dt.datetime,
    last: dt.datetime,
    actor: str,
    now: dt.datetime | None = None,
) -> Export:
    """The events with ``first <= at < last``, signed; the export itself is audited."""
    now = now or utcnow()
    chunks: list[bytes] = []
    count = 0
    rows = session.execute(
        select(AuditEvent, AuditSeal.hash)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .where(AuditEvent.at >= first, AuditEvent.at < last)
        .order_by(AuditEvent.id)
        .execution_options(yield_per=CHUNK)
    )
    for event, digest in rows:
        record = json.loads(canonical(event))
        record["seal"] = digest
        chunks.append(
            json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            + b"\n"
        )
        count += 1
    lines = b"".join(chunks)
    payload = {
        "sha256": hashlib.sha256(lines).hexdigest(),
        "from": _stamp(first),
        "to": _stamp(last),
        "count": count,
        "exported_at": _stamp(now),
    }
    _, token = _sign(payload, session, key_secret, TYP_EXPORT)
    audit(
        session,
        actor=actor,
        action="audit.export",
        first=_stamp(first),
        last=_stamp(last),
        count=count,
    )
    return Export(lines, token, count)


def check_export(session: Session, lines: bytes, signature: str) -> dict[str, Any] | None:
    """The signed payload if ``signature`` is the city's over exactly ``lines``, else None."""
    try:
        kid = jwt.get_unverified_header(signature).get("kid")
    except jwt.InvalidTokenError:
        return None
    public = public_key(session, str(kid))
    if public is None:
        return None
    payload = _payload_of(signature, public, TYP_EXPORT)
    if payload is None or payload.get("sha256") != hashlib.sha256(lines).hexdigest():
        return None
    return payload


# --- the job --------------------------------------------------------------------------------------


def seal_job(session: Session, ctx: JobContext) -> None:
    done = seal(
        session,
        ctx.settings.key_secret,
        grace=dt.timedelta(seconds=ctx.settings.audit_seal_grace_seconds),
    )
    if done.sealed:
        log.info("audit log sealed up to event %s (%s events)", done.up_to, done.sealed)


JOBS = (JobSpec("core.audit_seal", seal_job, "interval", {"minutes": 1}),)
