"""The city's signing keys: Ed25519, identified by ``kid``, rotated without breaking tokens in flight.

One key signs at a time. Rotation adds a new key and retires the old one from signing; the old public
key stays in the published JWKS until every token it could have signed has expired. Private keys are
stored encrypted with the instance's key-encryption secret (``CITYCREDIT_KEY_SECRET``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from citycredit.core import events
from citycredit.core.db import Base, JSONDoc, database_name, utcnow
from citycredit.core.text import control_character, lone_surrogate

# The longest-lived token a key signs (access tokens); a retired key stays published this long.
MAX_TOKEN_LIFETIME = dt.timedelta(seconds=600)


class SigningKey(Base):
    __tablename__ = "signing_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16), default="EdDSA")
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    private_pem: Mapped[str] = mapped_column(Text)  # PKCS#8, encrypted with the key secret
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public: Ed25519PublicKey, kid: str) -> dict[str, Any]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(raw),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def create_signing_key(session: Session, secret: bytes) -> SigningKey:
    """Generate a key and make it the one that signs; the previous one is retired from signing."""
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    # A kid derived from the key itself (RFC 7638 in spirit): stable, and unique without a registry.
    kid = _b64(hashlib.sha256(raw).digest()[:9])
    now = utcnow()
    rotated = False
    for key in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        key.retired_at = now
        rotated = True
    key = SigningKey(
        kid=kid,
        public_jwk=public_jwk(private.public_key(), kid),
        private_pem=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        ).decode("ascii"),
        created_at=now,
    )
    session.add(key)
    session.flush()
    if rotated:  # a city's first key replaces none: nothing for partners to refresh
        events.announce(session, "keys.rotated", kid=kid)
    return key


def current_signing_key(session: Session, secret: bytes) -> tuple[str, Ed25519PrivateKey]:
    """The signing key (created on first use, so a new city needs no key ceremony to start)."""
    key = session.scalar(select(SigningKey).where(SigningKey.retired_at.is_(None)))
    if key is None:
        key = create_signing_key(session, secret)
    return key.kid, _decrypted(key.private_pem, secret)


# Decrypted signing keys by their encrypted PEM (which has its own salt, so one entry per key): the
# decryption (PBKDF2) costs ~1 ms, a quarter of a token request, and every token and code needs it.
_private_keys: dict[tuple[str, bytes], Ed25519PrivateKey] = {}


def _decrypted(private_pem: str, secret: bytes) -> Ed25519PrivateKey:
    private = _private_keys.get((private_pem, secret))
    if private is None:
        loaded = serialization.load_pem_private_key(private_pem.encode("ascii"), password=secret)
        assert isinstance(loaded, Ed25519PrivateKey)
        if len(_private_keys) >= 16:  # a process sees a handful of keys; never grow without bound
            _private_keys.clear()
        private = _private_keys[(private_pem, secret)] = loaded
    return private


def decrypt_private_key(private_pem: str, secret: bytes) -> Ed25519PrivateKey:
    """A stored private key (encrypted PKCS#8), decrypted once per process."""
    return _decrypted(private_pem, secret)


def encrypt_private_key(private: Ed25519PrivateKey, secret: bytes) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    ).decode("ascii")


def published_keys(session: Session, *, now: dt.datetime | None = None) -> list[SigningKey]:
    """Keys whose tokens may still be valid: the signing key and recently retired ones."""
    cutoff = (now or utcnow()) - MAX_TOKEN_LIFETIME
    return list(
        session.scalars(
            select(SigningKey)
            .where((SigningKey.retired_at.is_(None)) | (SigningKey.retired_at > cutoff))
            .order_by(SigningKey.id.desc())
        )
    )


def jwks(session: Session) -> dict[str, Any]:
    return {"keys": [key.public_jwk for key in published_keys(session)]}


# Public keys by (database, kid), with when they were loaded: every verification and every API call
# needs one, and keys change rarely. An unknown kid is looked up at once (a new key works immediately);
# a known one is re-read after CACHE_TTL, which is how a retirement reaches every process.
CACHE_TTL = dt.timedelta(seconds=60)
_public_keys: dict[tuple[str, str], tuple[Ed25519PublicKey, dt.datetime | None, dt.datetime]] = {}


def public_key_for(
    session: Session, kid: str, *, now: dt.datetime | None = None
) -> Ed25519PublicKey | None:
    """The published key ``kid``, or None if unknown or retired longer ago than any token lives."""
    if control_character(kid) or lone_surrogate(kid):
        return None  # no key has one, and PostgreSQL cannot even compare text holding NUL
    now = now or utcnow()
    cache_key = (database_name(session), kid)
    cached = _public_keys.get(cache_key)
    if cached is None or now - cached[2] > CACHE_TTL:
        key = session.scalar(select(SigningKey).where(SigningKey.kid == kid))
        if key is None:
            _public_keys.pop(cache_key, None)
            return None
        raw = base64.urlsafe_b64decode(key.public_jwk["x"] + "==")
        cached = (Ed25519PublicKey.from_public_bytes(raw), key.retired_at, now)
        _public_keys[cache_key] = cached
    public, retired_at, _ = cached
    if retired_at is not None and retired_at <= now - MAX_TOKEN_LIFETIME:
        return None
    return public
