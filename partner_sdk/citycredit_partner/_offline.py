"""Offline verification. The own city's codes: its JWKS, cached; an unknown ``kid`` triggers a
(rate-limited) refetch. A visitor's code (another member city's): the cached, signature-checked trust
list, in the order docs/FEDERATION.md gives ("Credit codes across cities")."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jwt
from cryptography.exceptions import InvalidSignature
from jwt import PyJWK

from ._errors import CodeRejectedError, TrustListError
from ._models import OfflineVerification
from ._trustlist import TrustListCache

MAX_LIFETIME = 120
REQUIRED_CLAIMS = ("iss", "sub", "ct", "iat", "exp", "jti")


class KeyCache:
    def __init__(
        self,
        fetch: Callable[[], dict[str, Any]],
        *,
        min_refresh_interval: float = 60.0,
        max_age: float = 300.0,
    ):
        self._fetch = fetch
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._min_interval = min_refresh_interval
        # Keys the city withdraws must stop verifying: a cache older than this is re-read.
        self._max_age = max_age
        self._lock = threading.Lock()

    def key(self, kid: str) -> PyJWK | None:
        with self._lock:
            stale = (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at >= self._max_age
            )
            if stale or (kid not in self._keys and self._may_refresh()):
                try:
                    self._refresh()
                except Exception:
                    # Offline-first: with the city unreachable, the keys last seen keep serving.
                    if not self._keys:
                        raise
                    self._fetched_at = time.monotonic()
            return self._keys.get(kid)

    def _may_refresh(self) -> bool:
        # An attacker spraying random kids must not turn every scan into a JWKS download.
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self._min_interval

    def _refresh(self) -> None:
        document = self._fetch()
        self._fetched_at = time.monotonic()
        keys = {}
        for entry in document.get("keys", []):
            if entry.get("kty") == "OKP" and entry.get("crv") == "Ed25519" and "kid" in entry:
                keys[entry["kid"]] = PyJWK(entry, algorithm="EdDSA")
        self._keys = keys


def verify_offline(
    token: str,
    *,
    keys: KeyCache,
    issuer: str,
    trust: TrustListCache | None = None,
    now: dt.datetime | None = None,
    leeway: int = 5,
) -> OfflineVerification:
    """Check a code offline. ``issuer`` is the desk's own city; with ``trust``, other members' codes
    are checked as a visitor's, without it they are ``wrong-issuer``."""
    code = _read(token)
    claimed_issuer = code.claims.get("iss")
    if claimed_issuer == issuer:
        return _verify_own(code, keys=keys, issuer=issuer, now=now, leeway=leeway)
    if trust is None:
        raise CodeRejectedError(
            "wrong-issuer", f"issued by {str(claimed_issuer)[:32]!r}, expected {issuer!r}"
        )
    return _verify_visitor(
        token, code.header, code.claims, trust=trust, own_issuer=issuer, now=now, leeway=leeway
    )


class _Code(NamedTuple):
    """A compact JWS decoded once: header (its algorithm checked), unverified claims, and what the
    signature covers."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _segment(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


# Headers already read and accepted, by their encoded text: every code signed with one key has the
# same header, so a busy desk decodes it once. Only accepted headers are kept, and at most a few.
_headers: dict[bytes, dict[str, Any]] = {}


def _read(token: str) -> _Code:
    """Decode the code once, with PyJWT's refusals in its order: the header, then the claims."""
    try:
        signing_input, crypto = token.encode("utf-8").rsplit(b".", 1)
        header_part, payload_part = signing_input.split(b".", 1)
        header = _headers.get(header_part)
        if header is None:
            header = _read_header(json.loads(_segment(header_part)))
            if len(_headers) < 64:
                _headers[header_part] = header
        payload = _segment(payload_part)
        signature = _segment(crypto)
    except (ValueError, UnicodeError, binascii.Error, RecursionError, AttributeError) as exc:
        raise CodeRejectedError("token-malformed", f"not a compact JWS: {exc}") from None
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise CodeRejectedError("token-malformed", f"the claims are not JSON: {exc}") from None
    if not isinstance(claims, dict):
        raise CodeRejectedError("token-malformed", "the claims are not a JSON object")
    return _Code(header, claims, signing_input, signature)


def _read_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict):
        raise CodeRejectedError("token-malformed", "the header is not a JSON object")
    alg = header.get("alg")
    if alg in (None, "none", "None", "NONE"):
        raise CodeRejectedError("token-unsigned", "the code declares no signature algorithm")
    if alg != "EdDSA":
        raise CodeRejectedError("algorithm-not-allowed", f"algorithm {alg!r} is not accepted")
    return header


def _verify_own(
    code: _Code,
    *,
    keys: KeyCache,
    issuer: str,
    now: dt.datetime | None,
    leeway: int,
) -> OfflineVerification:
    kid = str(code.header.get("kid", ""))
    key = keys.key(kid)
    if key is None:
        raise CodeRejectedError("unknown-key", f"key {kid[:32]!r} is not in the city's JWKS")
    try:
        key.key.verify(code.signature, code.signing_input)
    except InvalidSignature:
        raise CodeRejectedError(
            "bad-signature", "the signature does not match the content"
        ) from None
    claims = code.claims
    _check_claims(claims, issuer=issuer, leeway=leeway)
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    if claims["exp"] + leeway < moment:
        raise CodeRejectedError("token-expired", "ask the citizen to show a fresh code")
    try:
        level = int(claims["ct"])
    except (ValueError, TypeError, OverflowError):
        raise CodeRejectedError("token-malformed", "the tier is not a level") from None
    if claims["exp"] - claims["iat"] > MAX_LIFETIME or not 1 <= level <= 5:
        raise CodeRejectedError("token-malformed", "the claims are out of range")
    return OfflineVerification(
        issuer=claims["iss"],
        tier_level=level,
        local_tier=str(claims.get("lt", "")),
        kid=kid,
        expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
        code_id=claims["jti"],
    )


def _check_claims(claims: dict[str, Any], *, issuer: str, leeway: int) -> None:
    """PyJWT's checks of verified claims, as ``jwt.decode`` made them before: every required claim,
    ``iat`` and ``nbf`` whole seconds not in the future (by this machine's clock), ``sub`` and
    ``jti`` strings, ``iss`` the city, no ``aud``; ``exp`` a number."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise CodeRejectedError("token-malformed", f'Token is missing the "{name}" claim')
    wall = time.time()
    for name in ("iat", "nbf"):
        if name in claims:
            try:
                moment = int(claims[name])
            except (ValueError, TypeError, OverflowError):
                raise CodeRejectedError("token-malformed", f"{name} must be an integer") from None
            if moment > wall + leeway:
                raise CodeRejectedError("token-malformed", f"The token is not yet valid ({name})")
    if isinstance(claims["iat"], (str, bool)):  # PyJWT takes "123"; the lifetime check cannot
        raise CodeRejectedError("token-malformed", "iat must be a number")
    if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
        raise CodeRejectedError("token-malformed", "sub and jti must be strings")
    if claims["iss"] != issuer:
        raise CodeRejectedError("token-malformed", "Invalid issuer")
    if claims.get("aud"):
        raise CodeRejectedError("token-malformed", "Invalid audience")
    expires = claims["exp"]
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or expires != expires:
        raise CodeRejectedError("token-malformed", "exp must be a date in seconds")


def _verify_visitor(
    token: str,
    header: dict[str, Any],
    unverified: dict[str, Any],
    *,
    trust: TrustListCache,
    own_issuer: str,
    now: dt.datetime | None,
    leeway: int,
) -> OfflineVerification:
    """A partner city's code, against the trust list, in the documented order of refusals."""
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise CodeRejectedError("issuer-not-member", "the code names no issuing city")
    if trust.anchor is None:
        # As the city answers online when it holds no trust list: only its own codes count.
        raise CodeRejectedError(
            "wrong-issuer",
            f"no trust list is configured, so no code of another city ({issuer[:32]!r}) is "
            "recognised (PartnerClient(..., trust_anchor=…) or the city's discovery document)",
        )
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    kid = str(header.get("kid", ""))
    try:
        listing = trust.get(moment)
        member = listing.member(issuer)
        if member is None or kid not in member.signing_keys:
            # A city that just joined or rotated its key: read the list again (rate-limited).
            listing = trust.get(moment, unknown=True)
            member = listing.member(issuer)
    except TrustListError as exc:
        raise CodeRejectedError(exc.reason, f"no usable trust list: {exc.detail}") from None
    if member is None:
        raise CodeRejectedError(
            "issuer-not-member", f"{issuer[:32]!r} is not a member of the federation"
        )
    names = f"{member.name_zh} / {member.name_en} ({issuer})"
    if member.status != "active":
        raise CodeRejectedError("member-suspended", f"{names} is suspended from the federation")
    if listing.age(moment) > trust.max_age:
        raise CodeRejectedError(
            "trust-list-too-old",
            f"the trust list held is {int(listing.age(moment))} s old (at most "
            f"{int(trust.max_age)} s); visitors' codes wait for a fresh one",
        )
    signing_key = member.signing_keys.get(kid)
    if signing_key is None or not signing_key.valid_at(moment, leeway=leeway):
        raise CodeRejectedError(
            "unknown-key", f"key {kid[:32]!r} is not a current signing key of {names}"
        )
    try:
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["EdDSA"],
            issuer=issuer,
            options={
                "require": ["iss", "sub", "ct", "iat", "exp", "jti"],
                # Times are judged below, at ``now``, not at the wall clock.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise CodeRejectedError(
            "bad-signature", "the signature does not match the content"
        ) from None
    except jwt.PyJWTError as exc:
        raise CodeRejectedError("token-malformed", str(exc)) from None
    issued, expires = claims["iat"], claims["exp"]
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in (issued, expires)):
        raise CodeRejectedError("token-malformed", "iat and exp must be whole seconds")
    if expires - issued > MAX_LIFETIME or expires + leeway < moment:
        raise CodeRejectedError("token-expired", "ask the citizen to show a fresh code")
    version = claims.get("mv")
    mapping = member.mappings.get(version) if isinstance(version, int) else None
    if mapping is None:
        raise CodeRejectedError(
            "mapping-unknown", f"{names} publishes no tier mapping version {str(version)[:16]!r}"
        )
    local_tier = claims.get("lt")
    tier = mapping.tiers.get(local_tier) if isinstance(local_tier, str) else None
    level = claims["ct"]
    if tier is None or isinstance(level, bool) or level != tier.common_level:
        raise CodeRejectedError(
            "token-malformed",
            f"the common level does not follow {issuer}'s tier mapping version {mapping.version}",
        )
    consent = claims.get("xc")
    if not (consent == "*" or (isinstance(consent, list) and own_issuer in consent)):
        raise CodeRejectedError(
            "no-cross-city-consent",
            f"the citizen has not agreed to have the code recognised in {own_issuer} "
            "(they can agree on their city's phone page)",
        )
    return OfflineVerification(
        issuer=issuer,
        tier_level=tier.common_level,
        local_tier=None,  # the other city's local tier name is not the venue's to learn
        kid=kid,
        expires_at=dt.datetime.fromtimestamp(expires, dt.UTC),
        code_id=str(claims["jti"]),
        issuer_name_zh=member.name_zh,
        issuer_name_en=member.name_en,
        visitor=True,
    )
