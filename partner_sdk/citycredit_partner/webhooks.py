"""Receiving the city's webhooks: Standard Webhooks signatures, a replay window, deduplication.

receiver = WebhookReceiver(secret, seen=SQLiteSeenStore("webhooks-seen.sqlite3"))

def on_post(body: bytes, headers) -> int:
    try:
        receiver.process(body, headers, store_the_event)  # marked seen only once it returned
    except WebhookRejectedError:
        return 400
    return 204  # also for a duplicate: it was processed before

The city delivers each event at least once, retrying for up to three days, so the same
``webhook-id`` can arrive again (a worker killed after your 2xx, a lost answer, a resend). A
receiver remembers the ids it processed in a :class:`SeenStore` and drops the copies.

When is an id marked seen?
- ``receive(body, headers)`` marks it *before* it returns the event (atomically: of two concurrent
  copies only one is returned). If your handler then fails, the city's retry is dropped as a
  duplicate: at most once per id.
- ``process(body, headers, handler)`` (and ``receive(..., mark=False)`` followed by
  ``mark_processed(event)``) marks it *after* the handler returned. A crash inside the handler
  leaves the id unmarked, so the retry goes through: at least once per id. A crash between your
  commit and the mark replays the event once more, and two copies arriving at the same moment can
  both run, so the handler must be idempotent (an upsert by pseudonym is).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import os
import re
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from ._errors import (
    WebhookHeaderError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
)

__all__ = [
    "DEFAULT_SEEN_TTL",
    "EVENT_TYPES",
    "LIBRARY_TOLERANCE",
    "Headers",
    "InMemorySeenStore",
    "KeysRotated",
    "LinkRevoked",
    "SQLiteSeenStore",
    "ScenarioChanged",
    "SeenStore",
    "TierChanged",
    "WebhookEvent",
    "WebhookReceiver",
]

# The `standardwebhooks` library's own replay window (five minutes each way): a receiver may be
# stricter, never looser.
LIBRARY_TOLERANCE = 300.0
# How long an id is remembered: the city retries a delivery for up to three days after its first
# attempt, so a copy can come that late; a day more absorbs clocks and slow retries.
DEFAULT_SEEN_TTL = 4 * 24 * 3600.0
EVENT_TYPES = (
    "tier.changed",
    "link.revoked",
    "scenario.published",
    "scenario.suspended",
    "scenario.retired",
    "keys.rotated",
)
_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_MAX_ID_LENGTH = 255
# Whole unix seconds; ten digits reach the year 2286 (more would overflow a datetime).
_TIMESTAMP = re.compile(r"[0-9]{1,10}")


# ---- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierChanged:
    """``tier.changed``: a linked member's common level (1 lowest … 5 best), to be trusted until
    ``valid_until``; refresh it before then with ``GET /api/v1/links/{pseudonym}``."""

    pseudonym: str
    common_level: int
    valid_until: dt.datetime


@dataclass(frozen=True)
class LinkRevoked:
    """``link.revoked``: the citizen (or the city) ended the link; forget the member's level."""

    pseudonym: str
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class ScenarioChanged:
    """``scenario.published`` / ``scenario.suspended`` / ``scenario.retired``."""

    scenario: str
    status: str  # published, suspended, retired


@dataclass(frozen=True)
class KeysRotated:
    """``keys.rotated``: the city signs credit codes with a new key; refresh its JWKS."""

    kid: str
    jwks: str  # a path on the city's base URL, /.well-known/jwks.json


Payload = TierChanged | LinkRevoked | ScenarioChanged | KeysRotated


@dataclass(frozen=True)
class WebhookEvent:
    """A verified event. ``payload`` is its typed data (None for a type this SDK does not know yet:
    read ``data``); ``timestamp`` is when the city stored it, ``sent_at`` when this copy was sent."""

    id: str
    type: str
    timestamp: dt.datetime
    data: Mapping[str, Any]
    sent_at: dt.datetime
    payload: Payload | None = field(default=None, compare=False)

    @property
    def pseudonym(self) -> str | None:
        """The member the event is about (``tier.changed``, ``link.revoked``), else None."""
        if isinstance(self.payload, TierChanged | LinkRevoked):
            return self.payload.pseudonym
        return None


def _instant(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not an ISO 8601 string")
    moment = dt.datetime.fromisoformat(value)
    # The city writes UTC with an offset; a bare time is read as UTC rather than local time.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"data.{key} is not a non-empty string")
    return value


def _payload(kind: str, data: Mapping[str, Any]) -> Payload | None:
    if kind == "tier.changed":
        level = data.get("common_level")
        if type(level) is not int or not 1 <= level <= 5:
            raise ValueError("data.common_level is not a level 1..5")
        return TierChanged(
            _text(data, "pseudonym"), level, _instant(data.get("valid_until"), "data.valid_until")
        )
    if kind == "link.revoked":
        revoked = data.get("revoked_at")
        return LinkRevoked(
            _text(data, "pseudonym"),
            None if revoked is None else _instant(revoked, "data.revoked_at"),
        )
    if kind.startswith("scenario."):
        return ScenarioChanged(
            _text(data, "scenario"), str(data.get("status") or kind.partition(".")[2])
        )
    if kind == "keys.rotated":
        return KeysRotated(_text(data, "kid"), str(data.get("jwks") or "/.well-known/jwks.json"))
    return None


def _event(webhook_id: str, sent: int, body: bytes) -> WebhookEvent:
    try:
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError("the body is not a JSON object")
        kind = parsed.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError("type is not a non-empty string")
        data = parsed.get("data")
        if not isinstance(data, dict):
            raise ValueError("data is not an object")
        return WebhookEvent(
            id=webhook_id,
            type=kind,
            timestamp=_instant(parsed.get("timestamp"), "timestamp"),
            data=data,
            sent_at=dt.datetime.fromtimestamp(sent, dt.UTC),
            payload=_payload(kind, data),
        )
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WebhookPayloadError("malformed-body", str(exc), webhook_id=webhook_id) from None


# ---- remembering ids ----------------------------------------------------------------------------


class SeenStore(Protocol):
    """Where a receiver remembers the ``webhook-id`` values it processed, for ``ttl`` seconds."""

    def contains(self, webhook_id: str, *, now: float) -> bool:
        """Whether the id was marked and has not expired."""
        ...

    def add(self, webhook_id: str, *, now: float) -> bool:
        """Mark the id; False when it already was (and had not expired). Atomic: of two concurrent
        calls with one id, one returns True."""
        ...


class InMemorySeenStore:
    """Ids in this process's memory, forgotten after ``ttl`` seconds; at most ``max_entries`` (the
    oldest go first). Lost on a restart: use :class:`SQLiteSeenStore` for a receiver that may be
    restarted while the city still retries."""

    def __init__(self, *, ttl: float = DEFAULT_SEEN_TTL, max_entries: int = 100_000):
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()  # in order of marking
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def contains(self, webhook_id: str, *, now: float) -> bool:
        with self._lock:
            return self._expiry.get(webhook_id, now) > now

    def add(self, webhook_id: str, *, now: float) -> bool:
        with self._lock:
            if self._expiry.get(webhook_id, now) > now:
                return False
            self._expiry.pop(webhook_id, None)
            self._expiry[webhook_id] = now + self.ttl
            # Every entry has the same ttl, so the order of marking is the order of expiry.
            while self._expiry:
                oldest, expiry = next(iter(self._expiry.items()))
                if expiry > now and len(self._expiry) <= self.max_entries:
                    break
                del self._expiry[oldest]
            return True

    def discard(self, webhook_id: str) -> None:
        """Forget an id (before asking the city to resend an event you processed, then lost)."""
        with self._lock:
            self._expiry.pop(webhook_id, None)


class SQLiteSeenStore:
    """Ids in a SQLite file (table ``citycredit_webhook_seen``), so they survive a restart of the
    receiver; shared safely by the threads and processes of one host. Expired ids are purged as
    new ones are added. ``close()`` closes its connections (one per thread that used it)."""

    _PURGE_EVERY = 256

    def __init__(self, path: str | os.PathLike[str], *, ttl: float = DEFAULT_SEEN_TTL):
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if str(path) in ("", ":memory:"):
            raise ValueError("a SQLiteSeenStore needs a file (use InMemorySeenStore otherwise)")
        self.path = os.fspath(path)
        self.ttl = ttl
        self._added = 0
        self._local = threading.local()
        self._opened: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        connection = self._connection()
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS citycredit_webhook_seen"
            " (webhook_id TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID"
        )
        connection.execute(
            "CREATE INDEX IF NOT EXISTS citycredit_webhook_seen_expiry"
            " ON citycredit_webhook_seen (expires_at)"
        )

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread, and a new one in a forked child: none is used by two threads
        # or processes. Kept open while its thread lives, since closing the last connection to a
        # WAL file checkpoints it (an fsync per webhook). Autocommit: each statement commits.
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            return held.connection
        # check_same_thread=False only so that a finished thread's connection can be closed by
        # whichever thread collects it.
        connection = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        # WAL's NORMAL: no fsync per mark. A power cut may forget the last marks (the city's retry
        # of such an event is then processed once more); a crashed receiver loses nothing.
        connection.execute("PRAGMA synchronous=NORMAL")
        self._local.held = held = _Held(connection)
        with self._lock:
            self._opened.add(held)
        return connection

    def close(self) -> None:
        """Close the connections (when no thread uses the store any more)."""
        with self._lock:
            opened = list(self._opened)
        for held in opened:
            held.close()
        self._local = threading.local()

    def contains(self, webhook_id: str, *, now: float) -> bool:
        row = (
            self._connection()
            .execute(
                "SELECT 1 FROM citycredit_webhook_seen WHERE webhook_id = ? AND expires_at > ?",
                (webhook_id, now),
            )
            .fetchone()
        )
        return row is not None

    def add(self, webhook_id: str, *, now: float) -> bool:
        connection = self._connection()
        # One statement, so atomic: a live row is left alone (0 rows), an expired one renewed.
        added = connection.execute(
            "INSERT INTO citycredit_webhook_seen (webhook_id, expires_at) VALUES (?, ?)"
            " ON CONFLICT (webhook_id) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE citycredit_webhook_seen.expires_at <= ?",
            (webhook_id, now + self.ttl, now),
        ).rowcount
        with self._lock:
            self._added += 1
            purge = self._added % self._PURGE_EVERY == 1
        if purge:
            connection.execute("DELETE FROM citycredit_webhook_seen WHERE expires_at <= ?", (now,))
        return added == 1

    def discard(self, webhook_id: str) -> None:
        """Forget an id (before asking the city to resend an event you processed, then lost)."""
        self._connection().execute(
            "DELETE FROM citycredit_webhook_seen WHERE webhook_id = ?", (webhook_id,)
        )


class _Held:
    """A thread's connection, closed when the thread's locals go (the thread ended)."""

    def __init__(self, connection: sqlite3.Connection):
        self.pid = os.getpid()
        self.connection = connection

    def close(self) -> None:
        if self.pid == os.getpid():  # a forked child leaves its parent's connection alone
            self.connection.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the modules may be gone
            self.close()


# ---- the receiver -------------------------------------------------------------------------------


class Headers(Protocol):
    """A request's headers: a dict, or a framework's (Flask/Werkzeug, Django, httpx, http.server)."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def _header(headers: Headers, name: str) -> str | None:
    """A header by name, whatever the mapping's case rules (a framework's headers, or a dict)."""
    value = headers.get(name)
    if value is None:
        for key, found in headers.items():
            if key.lower() == name:
                return found
    return value


class WebhookReceiver:
    """Verifies and deduplicates the city's webhooks (Standard Webhooks: ``webhook-id``,
    ``webhook-timestamp``, ``webhook-signature``).

    ``secrets`` is the subscription's ``whsec_…`` secret, or several: during a rotation hold the
    old and the new one; a body signed with any of them is accepted. ``tolerance`` is the replay
    window in seconds, each way (at most the library's 300). ``clock`` returns unix seconds.
    """

    def __init__(
        self,
        secrets: str | bytes | Iterable[str | bytes],
        *,
        tolerance: float | dt.timedelta = LIBRARY_TOLERANCE,
        seen: SeenStore | None = None,
        clock: Callable[[], float] | None = None,
    ):
        if isinstance(secrets, str | bytes):
            secrets = [secrets]
        self._signers: list[Webhook] = []
        for secret in secrets:
            try:
                self._signers.append(Webhook(secret))
            except (EmptyWebhookSecretError, ValueError):  # binascii.Error is a ValueError
                raise ValueError("not a webhook secret (expected whsec_ and base64)") from None
        if not self._signers:
            raise ValueError("a WebhookReceiver needs at least one secret")
        if isinstance(tolerance, dt.timedelta):
            tolerance = tolerance.total_seconds()
        if not 0 < tolerance <= LIBRARY_TOLERANCE:
            raise ValueError(f"tolerance must be more than 0 and at most {LIBRARY_TOLERANCE:g} s")
        self.tolerance = float(tolerance)
        self.seen: SeenStore = seen if seen is not None else InMemorySeenStore()
        self._clock = clock or time.time

    def __repr__(self) -> str:  # never the secrets
        return f"<WebhookReceiver secrets={len(self._signers)} tolerance={self.tolerance:g}>"

    def verify(self, body: bytes, headers: Headers) -> WebhookEvent:
        """The event, if the body is signed with one of the secrets within the replay window;
        raises a :class:`WebhookRejectedError` otherwise. Does not look at the seen store."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("pass the request body as received, in bytes (not parsed or decoded)")
        body = bytes(body)
        values: dict[str, str] = {}
        for name in _HEADERS:
            value = _header(headers, name)
            if not value or not value.strip():
                raise WebhookHeaderError(
                    "missing-header", f"no {name} header", webhook_id=_header(headers, "webhook-id")
                )
            values[name] = value
        webhook_id, stamp = values["webhook-id"], values["webhook-timestamp"].strip()
        if len(webhook_id) > _MAX_ID_LENGTH:
            raise WebhookHeaderError(
                "malformed-header", "webhook-id is too long", webhook_id=webhook_id[:64]
            )
        if not _TIMESTAMP.fullmatch(stamp):
            raise WebhookHeaderError(
                "malformed-header",
                "webhook-timestamp is not whole unix seconds",
                webhook_id=webhook_id,
            )
        sent = int(stamp)
        self._check_signature(webhook_id, sent, body, values["webhook-signature"])
        # After the signature, so a timestamp error always means a genuine message: a replay of
        # an old one, or a clock off by more than the window (check NTP on both sides).
        now = self._clock()
        if sent < now - self.tolerance:
            raise WebhookTimestampError(
                "timestamp-too-old",
                f"sent {now - sent:.0f} s ago, the window is {self.tolerance:g} s",
                webhook_id=webhook_id,
            )
        if sent > now + self.tolerance:
            raise WebhookTimestampError(
                "timestamp-too-new",
                f"sent {sent - now:.0f} s in the future, the window is {self.tolerance:g} s",
                webhook_id=webhook_id,
            )
        return _event(webhook_id, sent, body)

    def _check_signature(self, webhook_id: str, sent: int, body: bytes, header: str) -> None:
        # Space-separated "version,base64" entries; other versions (v1a: asymmetric) are not ours.
        offered = [part.encode() for part in header.split() if part.startswith("v1,")]
        if not offered:
            raise WebhookSignatureError(
                "bad-signature", "no v1 signature in webhook-signature", webhook_id=webhook_id
            )
        moment = dt.datetime.fromtimestamp(sent, dt.UTC)
        for signer in self._signers:
            # The HMAC is the library's (`sign` computes what the city sent); each offered
            # signature is compared in constant time, under each secret held.
            expected = signer.sign(webhook_id, moment, body).encode()
            if any(hmac.compare_digest(expected, candidate) for candidate in offered):
                return
        raise WebhookSignatureError(
            "bad-signature",
            "no signature matches the body under the secrets held",
            webhook_id=webhook_id,
        )

    def receive(self, body: bytes, headers: Headers, *, mark: bool = True) -> WebhookEvent | None:
        """The verified event, or None when its ``webhook-id`` was already processed.

        With ``mark`` (the default) the id is marked seen before the event is returned; with
        ``mark=False`` it is not, and ``mark_processed(event)`` marks it once your handler is done.
        """
        event = self.verify(body, headers)
        now = self._clock()
        if mark:
            return event if self.seen.add(event.id, now=now) else None
        return None if self.seen.contains(event.id, now=now) else event

    def mark_processed(self, event: WebhookEvent) -> None:
        """Remember the event's id (after ``receive(..., mark=False)`` and a successful handler)."""
        self.seen.add(event.id, now=self._clock())

    def process(
        self,
        body: bytes,
        headers: Headers,
        handler: Callable[[WebhookEvent], object],
    ) -> WebhookEvent | None:
        """Verify, skip a duplicate (None), run ``handler(event)``, then mark the id seen. If the
        handler raises, the id stays unmarked (the city's retry will be processed) and the
        exception propagates: answer it with a 5xx."""
        event = self.receive(body, headers, mark=False)
        if event is None:
            return None
        handler(event)
        self.mark_processed(event)
        return event
