"""This city in the federation: its signed entry, the trust list it holds, and syncing that list.

The held list is read on every visitor verification, so each process keeps the parsed list and
re-reads the newest ``seq`` at most every :data:`HELD_TTL` (how a sync reaches every worker).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core import keys as core_keys
from citycredit.core.audit import audit
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from credit_codes.tokens import CODE_LIFETIME
from federation import jws
from federation import keys as fed_keys
from federation.models import HeldTrustList, SyncState
from federation.trustlist import TrustList, TrustListRefused, parse_verified, verify_list
from points_engine.models import ScoringModelVersion
from points_engine.operations import model_of
from points_engine.tiers import COMMON_TIERS

log = logging.getLogger(__name__)

HELD_TTL = 5.0  # seconds a worker trusts its parsed copy before asking for a newer seq
MAPPINGS_KEPT = 3
FETCH_TIMEOUT = 10.0
MAX_DOCUMENT = 4_000_000  # bytes: a trust list of hundreds of members is far below this

Fetch = Callable[[str], dict[str, Any]]


class NotFederated(Exception):
    """The city has no coordinator or no pinned trust anchor configured."""


_pool_lock = threading.Lock()
_pool: tuple[int, httpx.Client] | None = None


def partner_client() -> httpx.Client:
    """One keep-alive client per process for every call to a partner or the coordinator
    (thread-safe; made anew after a fork): making one loads the CA bundle, ~20 ms of CPU."""
    global _pool
    pool = _pool
    if pool is None or pool[0] != os.getpid():
        with _pool_lock:
            if _pool is None or _pool[0] != os.getpid():
                limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
                _pool = (os.getpid(), httpx.Client(timeout=FETCH_TIMEOUT, limits=limits))
            pool = _pool
    return pool[1]


def http_get_json(url: str) -> dict[str, Any]:
    """GET a JSON document from a partner (bounded in time and size)."""
    response = partner_client().get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > MAX_DOCUMENT:
        raise ValueError(f"{url} answered {len(response.content)} bytes, more than allowed")
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body


# --- this city's entry -------------------------------------------------------------------------


def mapping_tables(session: Session) -> list[dict[str, Any]]:
    """Tier tables of the published model and the ones published before it, newest first."""
    versions = session.scalars(
        select(ScoringModelVersion)
        .where(ScoringModelVersion.published_at.is_not(None))
        .order_by(ScoringModelVersion.published_at.desc())
        .limit(MAPPINGS_KEPT)
    )
    out = []
    for version in versions:
        model = model_of(version)
        out.append(
            {
                "version": version.id,
                "label": version.label,
                "tiers": [
                    {
                        "code": t.code,
                        "name_zh": t.name_zh,
                        "name_en": t.name_en,
                        "common_level": t.common_tier,
                    }
                    for t in model.tiers
                ],
            }
        )
    return out


def entry_payload(session: Session, settings: Settings, *, now: dt.datetime) -> dict[str, Any]:
    signing = []
    for key in core_keys.published_keys(session, now=now):
        jwk = dict(key.public_jwk)
        jwk["nbf"] = int(key.created_at.timestamp())
        # The last code a retired key signed expires 120 s after it stopped signing.
        jwk["exp"] = (
            None
            if key.retired_at is None
            else int((key.retired_at + CODE_LIFETIME).timestamp()) + 5
        )
        signing.append(jwk)
    mappings = mapping_tables(session)
    return {
        "iss": settings.city_code,
        "iat": int(now.timestamp()),
        "names": {"zh": settings.city_name, "en": settings.city_name_en},
        "level": settings.city_level,
        "base_url": settings.public_url,
        "signing_keys": signing,
        "mappings": mappings,
        "current_mapping": mappings[0]["version"] if mappings else None,
    }


def own_entry(session: Session, settings: Settings, *, now: dt.datetime | None = None) -> str:
    """This city's entry, signed with its federation key (``citycredit federation init`` makes it)."""
    now = now or utcnow()
    # Raises NoFederationKey before anything is written: reading an entry never makes keys.
    _, private = fed_keys.private_key(session, settings.key_secret, "city", fresh=True)
    # The code-signing key exists before the entry lists it (a new city has none until first use).
    core_keys.current_signing_key(session, settings.key_secret)
    return jws.sign(entry_payload(session, settings, now=now), private, typ=jws.TYP_ENTRY)


# --- the trust list this city holds ------------------------------------------------------------


_held_lock = threading.Lock()
# By engine object (weakly), so two databases never share a cached list, even with one URL.
_held: weakref.WeakKeyDictionary[Any, tuple[TrustList | None, float]] = weakref.WeakKeyDictionary()


def held_list(session: Session, settings: Settings) -> TrustList | None:
    """The newest accepted trust list (parsed and verified once per process per ``seq``)."""
    cache_key = session.get_bind().engine
    cached = _held.get(cache_key)
    if cached is not None and time.monotonic() - cached[1] < HELD_TTL:
        return cached[0]
    row = session.execute(
        select(HeldTrustList.seq, HeldTrustList.id).order_by(HeldTrustList.seq.desc()).limit(1)
    ).first()
    current = cached[0] if cached else None
    if row is None:
        parsed = None
    elif current is not None and current.seq == row.seq:
        parsed = current
    else:
        document = session.get(HeldTrustList, row.id)
        assert document is not None
        try:
            parsed = parse_verified(document.document, settings.trust_anchor)
        except TrustListRefused:
            log.error("the held trust list %s no longer verifies with the pinned anchor", row.seq)
            parsed = None
    with _held_lock:
        _held[cache_key] = (parsed, time.monotonic())
    return parsed


def forget_cached_list() -> None:
    _held.clear()


def accept_list(
    session: Session, settings: Settings, document: str, *, now: dt.datetime, actor: str
) -> tuple[TrustList, bool]:
    """Verify ``document`` against the pinned anchor and what is held; keep it if it is newer.

    Returns the list and whether it was new. Raises the precise ``TrustListRefused``."""
    if not settings.trust_anchor:
        raise NotFederated("no trust anchor is pinned (CITYCREDIT_TRUST_ANCHOR)")
    held = session.scalar(select(HeldTrustList).order_by(HeldTrustList.seq.desc()).limit(1))
    trust_list = verify_list(
        document,
        anchor_fingerprint=settings.trust_anchor,
        held_seq=held.seq if held else None,
        held_document=held.document if held else None,
        now=now,
        max_age=settings.trust_list_max_age,
    )
    if held is not None and held.seq == trust_list.seq:
        return trust_list, False
    session.add(
        HeldTrustList(
            seq=trust_list.seq, issued_at=trust_list.issued_at, document=document, accepted_at=now
        )
    )
    audit(
        session,
        actor=actor,
        action="federation.trust_list_accepted",
        seq=trust_list.seq,
        members=sorted(trust_list.members),
    )
    session.flush()
    forget_cached_list()
    return trust_list, True


def note_sync(session: Session, what: str, *, now: dt.datetime, error: str | None) -> None:
    state = session.get(SyncState, what)
    if state is None:
        state = SyncState(what=what)
        session.add(state)
    state.last_attempt_at = now
    if error is None:
        state.last_success_at = now
        state.last_error = None
    else:
        state.last_error = error[:500]
    session.flush()


class SyncFailed(Exception):
    def __init__(self, type_: str, detail: str):
        super().__init__(detail)
        self.type = type_
        self.detail = detail


def sync_trust_list(
    session: Session,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    fetch: Fetch = http_get_json,
    actor: str = "system:federation-sync",
) -> tuple[TrustList, bool]:
    """Fetch the coordinator's list and accept it. A refusal keeps the last good list (recorded)."""
    now = now or utcnow()
    if not settings.federation_coordinator_url or not settings.trust_anchor:
        raise NotFederated(
            "this city is not federated: set CITYCREDIT_FEDERATION_COORDINATOR_URL and "
            "CITYCREDIT_TRUST_ANCHOR (the anchor's fingerprint, given out of band)"
        )
    try:
        body = fetch(settings.federation_coordinator_url + "/api/v1/federation/trust-list")
        document = body.get("trust_list")
        if not isinstance(document, str):
            raise TrustListRefusedShape("the coordinator's answer holds no trust_list")
        result = accept_list(session, settings, document, now=now, actor=actor)
    except TrustListRefused as exc:
        note_sync(session, "trust-list", now=now, error=f"{exc.type}: {exc.detail}")
        audit(session, actor=actor, action="federation.trust_list_refused", reason=exc.type)
        raise SyncFailed(exc.type, exc.detail) from None
    except (httpx.HTTPError, ValueError, TrustListRefusedShape) as exc:
        note_sync(session, "trust-list", now=now, error=f"coordinator-unreachable: {exc}")
        raise SyncFailed("coordinator-unreachable", str(exc)) from None
    note_sync(session, "trust-list", now=now, error=None)
    return result


class TrustListRefusedShape(ValueError):
    pass


def common_scale() -> list[dict[str, Any]]:
    return [{"level": t.level, "name_zh": t.name_zh, "name_en": t.name_en} for t in COMMON_TIERS]
