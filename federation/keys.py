"""The city's federation key and, at a coordinator, the trust anchor: long-lived Ed25519 keys.

Partners pin them by fingerprint, so they are made once (``citycredit federation init``) and changed
only by re-keying, which the coordinator approves with four eyes."""

from __future__ import annotations

import time
import weakref
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core import keys as core_keys
from citycredit.core.db import utcnow
from federation import jws
from federation.models import FederationKey

ROLES = ("city", "anchor")


class NoFederationKey(Exception):
    """The city has no federation key yet (``citycredit federation init``)."""


def current(session: Session, role: str) -> FederationKey | None:
    return session.scalar(
        select(FederationKey).where(FederationKey.role == role, FederationKey.retired_at.is_(None))
    )


def create(session: Session, secret: bytes, role: str) -> FederationKey:
    """A new key for ``role``; the one it replaces is retired (re-keying)."""
    assert role in ROLES
    private = Ed25519PrivateKey.generate()
    jwk = jws.public_jwk_of(private.public_key())
    now = utcnow()
    old = current(session, role)
    if old is not None:
        old.retired_at = now
    _cache.clear()
    key = FederationKey(
        role=role,
        fingerprint=jws.thumbprint(jwk),
        public_jwk=jwk,
        private_pem=core_keys.encrypt_private_key(private, secret),
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key


def ensure(session: Session, secret: bytes, role: str) -> FederationKey:
    return current(session, role) or create(session, secret, role)


# The signing key by database and role, re-read after CACHE_TTL: every server-to-server question and
# answer is signed, and reading the row each time was a quarter of a visitor check's statements.
# Keyed by the engine object itself (weakly): two databases never share an entry, even two
# in-memory ones with the same URL, and a disposed engine's entries go with it.
CACHE_TTL = 60.0
_cache: weakref.WeakKeyDictionary[Any, dict[str, tuple[str, Ed25519PrivateKey, float]]] = (
    weakref.WeakKeyDictionary()
)


def private_key(
    session: Session, secret: bytes, role: str, *, fresh: bool = False
) -> tuple[str, Ed25519PrivateKey]:
    """The current key of ``role``: its fingerprint and the private key (a re-key shows within a
    minute in every process, at once in the one that made it, and at once with ``fresh``: what the
    city publishes about itself is always signed with the key it names)."""
    per_engine = _cache.setdefault(session.get_bind().engine, {})
    cached = per_engine.get(role)
    if not fresh and cached is not None and time.monotonic() - cached[2] < CACHE_TTL:
        return cached[0], cached[1]
    key = current(session, role)
    if key is None:
        raise NoFederationKey(
            f"this city has no {role} federation key: run `citycredit federation init`"
            + (" --coordinator" if role == "anchor" else "")
        )
    private = core_keys.decrypt_private_key(key.private_pem, secret)
    per_engine[role] = (key.fingerprint, private, time.monotonic())
    return key.fingerprint, private
