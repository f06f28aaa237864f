"""The citizen's QR credit code (信用码): a compact JWS, EdDSA-signed by the city, valid ≤ 120 s.

Claims: ``iss`` (the city), ``mv`` (the tier mapping's version), ``xc`` (partner cities the citizen
lets recognise the code, only with that consent; docs/FEDERATION.md), ``sub`` (sealed with AES-GCM
under a random nonce, so two codes of one person share nothing a venue could link: the citizen's row
id, their local score and whether a record sets their tier directly, see :func:`seal_citizen`), ``ct``
(tier on the common scale), ``lt`` (local tier code), ``iat``, ``exp``, ``jti``. No name, no ID
number, no record, no score in the clear. Only the city can open ``sub``; venues verify the signature
offline via the JWKS.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CODE_LIFETIME = dt.timedelta(seconds=120)
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("iss", "sub", "ct", "iat", "exp", "jti")


class TokenRejected(Exception):
    """A presented code that must not be honoured; ``type`` is its documented problem type."""

    type = "token-malformed"
    title = "The credit code is not a well-formed signed token"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class TokenUnsigned(TokenRejected):
    type = "token-unsigned"
    title = "The credit code is not signed (alg 'none')"


class AlgorithmNotAllowed(TokenRejected):
    type = "algorithm-not-allowed"
    title = "The credit code is signed with an algorithm the city does not use"


class UnknownKey(TokenRejected):
    type = "unknown-key"
    title = "The credit code names a signing key the city has not published"


class BadSignature(TokenRejected):
    type = "bad-signature"
    title = "The credit code's signature does not match its content (tampered)"


class TokenExpired(TokenRejected):
    type = "token-expired"
    title = "The credit code has expired; ask the citizen to refresh it"


class WrongIssuer(TokenRejected):
    type = "wrong-issuer"
    title = "The credit code was issued by another city"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal_citizen(
    token_key: bytes,
    citizen_id: int,
    *,
    issuer: str,
    jti: str,
    local_score: int | None = None,
    direct_tier: bool = False,
) -> str:
    """The per-code pseudonym: the citizen's row id, and optionally the facts the code vouches for
    beyond its tier (the local score and whether a record sets the tier), sealed with AES-GCM so that
    only the city reads them. A venue never sees them; the city answers from them, not from live data,
    so a code means the same thing for its whole life (withdrawal cannot show through)."""
    plain = citizen_id.to_bytes(8, "big")
    if local_score is not None:
        plain += local_score.to_bytes(4, "big", signed=True) + bytes([1 if direct_tier else 0])
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(token_key).encrypt(nonce, plain, f"{issuer}|{jti}".encode())
    return _b64(nonce + sealed)


@dataclass(frozen=True)
class SealedFacts:
    citizen_id: int
    local_score: int | None
    direct_tier: bool


def open_sealed(token_key: bytes, sub: str, *, issuer: str, jti: str) -> SealedFacts:
    raw = _unb64(sub)
    try:
        plain = AESGCM(token_key).decrypt(raw[:12], raw[12:], f"{issuer}|{jti}".encode())
    except (InvalidTag, ValueError):
        raise BadSignature("the citizen reference does not open with this city's key") from None
    if len(plain) == 13:
        return SealedFacts(
            int.from_bytes(plain[:8], "big"),
            int.from_bytes(plain[8:12], "big", signed=True),
            plain[12] == 1,
        )
    return SealedFacts(int.from_bytes(plain[:8], "big"), None, False)


def open_citizen(token_key: bytes, sub: str, *, issuer: str, jti: str) -> int:
    return open_sealed(token_key, sub, issuer=issuer, jti=jti).citizen_id


@dataclass(frozen=True)
class CreditCode:
    token: str
    jti: str
    issued_at: dt.datetime
    expires_at: dt.datetime


def issue_code(
    *,
    kid: str,
    private_key: Ed25519PrivateKey,
    token_key: bytes,
    issuer: str,
    citizen_id: int,
    common_tier: int,
    local_tier: str,
    now: dt.datetime,
    lifetime: dt.timedelta = CODE_LIFETIME,
    local_score: int | None = None,
    direct_tier: bool = False,
    mapping_version: int | None = None,
    cross_city: str | list[str] | None = None,
) -> CreditCode:
    """Sign a code. ``mapping_version`` (claim ``mv``) names the tier mapping ``ct``/``lt`` follow;
    ``cross_city`` (claim ``xc``) is present only with the citizen's consent to cross-city use."""
    jti = _b64(secrets.token_bytes(9))
    issued = now.replace(microsecond=0)
    expires = issued + min(lifetime, CODE_LIFETIME)
    claims = {
        "iss": issuer,
        "sub": seal_citizen(
            token_key,
            citizen_id,
            issuer=issuer,
            jti=jti,
            local_score=local_score,
            direct_tier=direct_tier,
        ),
        "ct": common_tier,
        "lt": local_tier,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": jti,
    }
    if mapping_version is not None:
        claims["mv"] = mapping_version
    if cross_city:
        claims["xc"] = cross_city
    token = jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": None})
    return CreditCode(token, jti, issued, expires)


def read_header(token: str) -> dict[str, Any]:
    """The unverified header, with the checks that must come before any key is chosen."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"cannot read the token header: {exc}") from None
    return check_header(header)


def check_header(header: dict[str, Any]) -> dict[str, Any]:
    """The checks of an unverified header that must come before any key is chosen."""
    alg = header.get("alg")
    if alg in (None, "none", "None", "NONE"):
        raise TokenUnsigned("the token declares no signature algorithm")
    if alg != ALGORITHM:
        raise AlgorithmNotAllowed(f"algorithm {alg!r} is not accepted; codes are signed with EdDSA")
    if not isinstance(header.get("kid"), str):
        raise UnknownKey("the token names no key id (kid)")
    return header


@dataclass(frozen=True)
class ParsedCode:
    """A compact JWS read once: its checked header, its claims (not yet verified) and what the
    signature covers. Every later check works on this, so a code is decoded once per request."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _segment(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def parse_code(token: str) -> ParsedCode:
    """Decode a code once, in PyJWT's order and with its refusals: the header (checked as
    :func:`read_header` checks it), then the claims. Raises a :class:`TokenRejected`."""
    try:
        signing_input, crypto = token.encode("utf-8").rsplit(b".", 1)
        header_part, payload_part = signing_input.split(b".", 1)
        header = json.loads(_segment(header_part))
        payload = _segment(payload_part)
        signature = _segment(crypto)
    except (ValueError, UnicodeError, binascii.Error, RecursionError) as exc:
        # json's and base64's errors are ValueErrors; a lone surrogate cannot be encoded.
        raise TokenRejected(f"cannot read the token header: {exc}") from None
    if not isinstance(header, dict):
        raise TokenRejected("cannot read the token header: it is not a JSON object")
    check_header(header)
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise TokenRejected(f"cannot read the token claims: {exc}") from None
    if not isinstance(claims, dict):
        raise TokenRejected("cannot read the token claims: they are not a JSON object")
    return ParsedCode(header, claims, signing_input, signature)


def verify_parsed(
    code: ParsedCode,
    *,
    public_key: Ed25519PublicKey,
    issuer: str,
    now: dt.datetime,
    leeway: int = 5,
) -> dict[str, Any]:
    """:func:`verify_code` on a code :func:`parse_code` read: one Ed25519 check, then PyJWT's claim
    checks (required claims, ``iat``/``nbf`` as integers not in the future, ``iss``, no ``aud``) and
    ours. Raises a :class:`TokenRejected`."""
    try:
        public_key.verify(code.signature, code.signing_input)
    except InvalidSignature:
        raise BadSignature("the signature does not verify against the city's key") from None
    claims = code.claims
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise TokenRejected(f'the token is not valid: Token is missing the "{name}" claim')
    wall = time.time()  # as PyJWT: "not yet valid" is judged by the process clock
    for name in ("iat", "nbf"):
        if name not in claims:
            continue
        try:
            moment = int(claims[name])
        except (ValueError, TypeError, OverflowError):
            raise TokenRejected(f"the token is not valid: {name} must be an integer") from None
        if moment > wall + leeway:
            raise TokenRejected(f"the token is not valid: The token is not yet valid ({name})")
    if isinstance(claims["iat"], (str, bool)):  # PyJWT takes "123"; the lifetime check below cannot
        raise TokenRejected("the token is not valid: iat must be a number")
    for name, what in (("sub", "Subject"), ("jti", "JWT ID")):
        if not isinstance(claims[name], str):
            raise TokenRejected(f"the token is not valid: {what} must be a string")
    if not isinstance(claims["iss"], str) or claims["iss"] != issuer:
        raise WrongIssuer("the token's issuer is not this city")
    if claims.get("aud"):
        raise TokenRejected("the token is not valid: Invalid audience")
    return _check_times(claims, now=now, leeway=leeway)


def verify_code(
    token: str,
    *,
    public_key: Ed25519PublicKey,
    issuer: str,
    now: dt.datetime,
    leeway: int = 5,
) -> dict[str, Any]:
    """Verify signature, issuer and lifetime; return the claims. Raises a :class:`TokenRejected`."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            leeway=leeway,
            options={"require": ["iss", "sub", "ct", "iat", "exp", "jti"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError:
        raise BadSignature("the signature does not verify against the city's key") from None
    except jwt.InvalidIssuerError:
        raise WrongIssuer("the token's issuer is not this city") from None
    except jwt.InvalidAlgorithmError as exc:
        raise AlgorithmNotAllowed(str(exc)) from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"the token is not valid: {exc}") from None
    return _check_times(claims, now=now, leeway=leeway)


def _check_times(claims: dict[str, Any], *, now: dt.datetime, leeway: int) -> dict[str, Any]:
    expires = claims["exp"]
    # Not checked by PyJWT (verify_exp is off): a NumericDate, not a string, a boolean or NaN.
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or expires != expires:
        raise TokenRejected("the token's expiry (exp) is not a date in seconds")
    # Expiry checked against the caller's clock (not the process clock) so tests and replays agree.
    if claims["exp"] + leeway < now.timestamp():
        raise TokenExpired(
            f"the token expired at {dt.datetime.fromtimestamp(claims['exp'], dt.UTC):%H:%M:%S} UTC"
        )
    if claims["exp"] - claims["iat"] > CODE_LIFETIME.total_seconds():
        raise TokenRejected("the token claims a lifetime longer than 120 seconds")
    if not isinstance(claims["ct"], int) or not 1 <= claims["ct"] <= 5:
        raise TokenRejected("the common tier claim is not a level from 1 to 5")
    return claims
