"""API clients (partner venues, data sources, partner cities) and their OAuth 2 access tokens.

A client authenticates at ``/oauth/token`` with the client-credentials grant, by secret (HTTP Basic or
form fields) or by a JWT signed with its registered public key (RFC 7523 ``private_key_jwt``). Access
tokens are short-lived JWTs signed with the city key and bound to the client's credential version, so
revoking a client or rotating its secret takes effect at once.

Client secrets are 256 random bits, not passwords: they are stored as HMAC-SHA256 under a key derived
from the signing-key secret (``CITYCREDIT_KEY_SECRET``), so checking one costs microseconds, not the
~0.15 s of CPU a password hash costs (which made ``/oauth/token`` a cheap way to exhaust the workers).
Secrets hashed before with scrypt (werkzeug's format) still verify, and are re-hashed the new way on
their next successful use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, make_transient_to_detached, mapped_column

from citycredit.core import keys
from citycredit.core.config import Settings
from citycredit.core.db import Base, database_name, utcnow
from citycredit.core.passwords import check_password, is_password_hash
from citycredit.core.registry import all_client_kinds, all_scopes
from citycredit.core.text import control_character, lone_surrogate

ACCESS_TOKEN_LIFETIME = dt.timedelta(seconds=300)
AUDIENCE = "citycredit-api"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
SECRET_HASH_PREFIX = "hmac-sha256$"
# Domain separation: the key that hashes client secrets is derived from the signing-key secret under
# this label, so it is never the key that encrypts the signing keys, nor any other derived key.
_SECRET_HASH_LABEL = b"citycredit/api-client-secret/v1"
# Compared against when no client matches: the same work as a wrong secret, and never equal to a hash
# (the same length, but not hex).
_NO_HASH = SECRET_HASH_PREFIX + "-" * 64


class ApiClient(Base):
    __tablename__ = "api_client"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'revoked')", name="status"),
        CheckConstraint("kind IN ('venue', 'source', 'city', 'app', 'operator')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(500))
    # For data sources: the only source whose records this client may write.
    source_id: Mapped[int | None] = mapped_column(ForeignKey("data_source.id"))
    # For venues: the venue whose desk this is; it may verify only the scenarios that venue honours.
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venue.id"), index=True)
    # For operators' systems, and for venue desks: the operator whose scenarios they may see and manage.
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id"), index=True)
    secret_hash: Mapped[str | None] = mapped_column(String(300))
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    credential_version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class UsedAssertion(Base):
    """Client assertions already exchanged for a token, kept until they expire, so none is replayed."""

    __tablename__ = "used_assertion"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


def secret_hash_key(key_secret: bytes) -> bytes:
    """The HMAC key of client secrets, derived from ``Settings.key_secret``."""
    return hmac.new(key_secret, _SECRET_HASH_LABEL, hashlib.sha256).digest()


def hash_secret(secret: str, key_secret: bytes) -> str:
    """The stored form of a client secret: ``hmac-sha256$<hex>``."""
    digest = hmac.new(secret_hash_key(key_secret), secret.encode(), hashlib.sha256).hexdigest()
    return SECRET_HASH_PREFIX + digest


class AuthError(Exception):
    """Authentication failed; ``error`` is the OAuth 2 error code (RFC 6749 §5.2)."""

    def __init__(self, error: str, detail: str, status: int = 401):
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    secret: str | None  # shown once, never stored


def register_client(
    session: Session,
    *,
    name: str,
    kind: str,
    scopes: list[str],
    source_id: int | None = None,
    venue_id: int | None = None,
    operator_id: int | None = None,
    public_key_pem: str | None = None,
    key_secret: bytes,
) -> IssuedClient:
    """Register a client; ``key_secret`` (``Settings.key_secret``) keys the hash of its secret."""
    known = all_scopes()
    unknown = sorted(set(scopes) - known.keys())
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    kinds = all_client_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(kinds)})")
    if kind == "operator" and operator_id is None:
        raise ValueError("an operator's client belongs to an operator")
    if "scenarios:write" in scopes and operator_id is None:
        raise ValueError("scenarios:write is for an operator's client (give its operator)")
    secret = None
    if public_key_pem:
        serialization.load_pem_public_key(public_key_pem.encode())  # refuse a key we cannot use
    else:
        secret = "ccs_" + secrets.token_urlsafe(32)
    client = ApiClient(
        client_id="cc_" + secrets.token_hex(8),
        name=name,
        kind=kind,
        scopes=" ".join(sorted(set(scopes))),
        source_id=source_id,
        venue_id=venue_id,
        operator_id=operator_id,
        secret_hash=hash_secret(secret, key_secret) if secret else None,
        public_key_pem=public_key_pem,
    )
    session.add(client)
    session.flush()
    return IssuedClient(client, secret)


def rotate_secret(session: Session, client: ApiClient, *, key_secret: bytes) -> str:
    secret = "ccs_" + secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret, key_secret)
    client.credential_version += 1  # every access token issued before is void from now on
    session.flush()
    forget_client(client.client_id)  # other processes: within CLIENT_CACHE_SECONDS
    return secret


def revoke_client(session: Session, client: ApiClient) -> None:
    client.status = "revoked"
    client.revoked_at = utcnow()
    client.credential_version += 1
    session.flush()
    forget_client(client.client_id)  # other processes: within CLIENT_CACHE_SECONDS


def find_client(session: Session, client_id: str) -> ApiClient | None:
    if control_character(client_id) or lone_surrogate(client_id):
        return None  # no client has one, and PostgreSQL cannot even compare text holding NUL
    return session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))


def authenticate_secret(
    session: Session, client_id: str, secret: str, *, key_secret: bytes
) -> ApiClient:
    """The active client whose secret this is; a scrypt hash from before is upgraded on success."""
    client = find_client(session, client_id)
    stored = client.secret_hash if client is not None else None
    legacy = stored is not None and is_password_hash(stored)
    if stored is not None and legacy:
        matches = check_password(stored, secret)
    else:
        # Same answer, and the same work (one lookup, one HMAC, one constant-time comparison), for
        # an unknown client and a wrong secret: no oracle for client ids.
        matches = hmac.compare_digest(hash_secret(secret, key_secret), stored or _NO_HASH)
    if not matches or client is None:
        raise AuthError("invalid_client", "unknown client or wrong secret")
    if client.status != "active":
        raise AuthError("invalid_client", "this client has been revoked")
    if legacy:
        client.secret_hash = hash_secret(secret, key_secret)
        session.flush()
    return client


def authenticate_assertion(session: Session, assertion: str, *, token_url: str) -> ApiClient:
    """RFC 7523: a JWT signed by the client's registered key, ``iss`` = ``sub`` = client id."""
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("invalid_client", "the client assertion is not a JWT") from None
    client = find_client(session, str(unverified.get("iss", "")))
    if client is None or client.public_key_pem is None:
        raise AuthError("invalid_client", "unknown client or no registered public key")
    public = serialization.load_pem_public_key(client.public_key_pem.encode())
    # The algorithm follows from the registered key, never from the assertion's header.
    algorithm = "EdDSA" if isinstance(public, Ed25519PublicKey) else "ES256"
    try:
        claims = jwt.decode(
            assertion,
            public,  # type: ignore[arg-type]
            algorithms=[algorithm],
            audience=token_url,
            issuer=client.client_id,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise AuthError("invalid_client", f"the client assertion does not verify: {exc}") from None
    # A short-lived assertion only: a leaked one must not serve as a standing credential.
    if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME:
        raise AuthError(
            "invalid_client", f"the assertion may live at most {MAX_ASSERTION_LIFETIME} s"
        )
    _spend_assertion(session, client, str(claims["jti"])[:200], int(claims["exp"]))
    if unverified.get("sub") != client.client_id:
        raise AuthError("invalid_client", "the assertion's sub must be the client id")
    if client.status != "active":
        raise AuthError("invalid_client", "this client has been revoked")
    return client


def _spend_assertion(session: Session, client: ApiClient, jti: str, exp: int) -> None:
    """Refuse an assertion seen before (RFC 7523 §3 item 7); forget those that have expired."""
    now = utcnow()
    session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < now))
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    spent = session.execute(
        module.insert(UsedAssertion)
        .values(client_id=client.id, jti=jti, expires_at=dt.datetime.fromtimestamp(exp, dt.UTC))
        .on_conflict_do_nothing()
        .returning(UsedAssertion.jti)
    ).first()
    if spent is None:
        raise AuthError("invalid_client", "this client assertion was already used; sign a new one")


def issue_access_token(
    session: Session,
    settings: Settings,
    client: ApiClient,
    requested: list[str] | None,
    *,
    now: dt.datetime,
) -> tuple[str, list[str]]:
    granted = sorted(client.scope_set if not requested else set(requested))
    if not set(granted) <= client.scope_set:
        raise AuthError(
            "invalid_scope",
            f"this client may not ask for: {' '.join(sorted(set(granted) - client.scope_set))}",
            400,
        )
    kid, private = keys.current_signing_key(session, settings.key_secret)
    claims = {
        "iss": settings.city_code,
        "aud": AUDIENCE,
        "sub": client.client_id,
        "scope": " ".join(granted),
        "cv": client.credential_version,
        "iat": int(now.timestamp()),
        "exp": int((now + ACCESS_TOKEN_LIFETIME).timestamp()),
        "jti": secrets.token_urlsafe(9),
    }
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
    return token, granted


@dataclass(frozen=True)
class Caller:
    client: ApiClient
    scopes: frozenset[str]


# How long a process trusts its copy of a client: revoking a client, or rotating its secret, takes
# effect at once in the process that did it, and in every other process within this many seconds.
CLIENT_CACHE_SECONDS = 5.0
# (database, client id) → (a copy of the client's row, when it was read; time.monotonic()).
_clients: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
# (database, access token) → its verified claims, for as long as the token lives: a desk sends one
# token for minutes, and checking its signature again would tell nothing new.
_verified_tokens: dict[tuple[str, str], dict[str, Any]] = {}
_CACHE_LIMIT = 10_000


def forget_client(client_id: str) -> None:
    """Drop every process-local copy of a client (it was revoked, or its credentials changed)."""
    # list() copies the keys in one step: another thread may add a client meanwhile.
    for key in [key for key in list(_clients) if key[1] == client_id]:
        _clients.pop(key, None)


def _client_copy(row: dict[str, Any]) -> ApiClient:
    # Each request gets its own instance, detached (session.get() never hands it out): a view that
    # changed it could not change another request's.
    client = ApiClient(**row)
    make_transient_to_detached(client)
    return client


def _current_client(session: Session, database: str, client_id: str, version: Any) -> ApiClient:
    """The active client with credential version ``version``, from the process's copy when it is
    younger than ``CLIENT_CACHE_SECONDS`` and carries that version, else from the database."""
    now = time.monotonic()
    cached = _clients.get((database, client_id))
    if cached is not None and now - cached[1] < CLIENT_CACHE_SECONDS:
        row = cached[0]
        if row["status"] == "active" and row["credential_version"] == version:
            return _client_copy(row)
    client = find_client(session, client_id)
    if client is None or client.status != "active":
        _clients.pop((database, client_id), None)
        raise AuthError("invalid_token", "this client has been revoked")
    if version != client.credential_version:
        raise AuthError("invalid_token", "the client's credentials changed; fetch a new token")
    if len(_clients) > _CACHE_LIMIT:
        _clients.clear()
    _clients[(database, client_id)] = (
        {attribute.key: getattr(client, attribute.key) for attribute in _COLUMNS},
        now,
    )
    return client


_COLUMNS = ApiClient.__mapper__.column_attrs


def _verified_claims(
    session: Session, settings: Settings, database: str, token: str
) -> dict[str, Any]:
    cached = _verified_tokens.get((database, token))
    if cached is not None and cached["exp"] > time.time():
        return cached
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("invalid_token", "the access token is not a JWT") from None
    public = keys.public_key_for(session, str(header.get("kid", "")))
    if public is None or header.get("alg") != "EdDSA":
        raise AuthError("invalid_token", "the access token is not signed by this city")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=settings.city_code
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("invalid_token", "the access token has expired; fetch a new one") from None
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_token", f"the access token is not valid: {exc}") from None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("scope"), str):
        raise AuthError("invalid_token", "the access token names no client or scope")
    if isinstance(
        claims.get("exp"), int
    ):  # always, from this city; a token without one is not kept
        if len(_verified_tokens) > _CACHE_LIMIT:
            _verified_tokens.clear()
        _verified_tokens[(database, token)] = claims
    return claims


def authenticate_bearer(session: Session, settings: Settings, token: str) -> Caller:
    """The client an access token speaks for, without a database read on most requests: a token
    already verified is remembered until it expires, and the client's row for
    ``CLIENT_CACHE_SECONDS`` (docs/API.md, "Revocation")."""
    database = database_name(session)
    claims = _verified_claims(session, settings, database, token)
    client = _current_client(session, database, claims["sub"], claims.get("cv"))
    return Caller(client, frozenset(claims["scope"].split()))
