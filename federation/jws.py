"""Signed documents of the federation: compact JWS (EdDSA, Ed25519) and RFC 7638 key fingerprints.

Everything the federation publishes or sends is a JSON payload signed this way; the ``typ`` header
says what it is, so a signed entry can never be replayed as a trust list or a request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
TYP_ENTRY = "citycredit-entry+jwt"
TYP_TRUST_LIST = "citycredit-trust-list+jwt"
TYP_REQUEST = "citycredit-s2s+jwt"
TYP_ANSWER = "citycredit-s2s-answer+jwt"
TYP_BULLETIN = "citycredit-bulletin+jwt"

_jws = jwt.PyJWS()


class BadDocument(Exception):
    """A signed document that does not verify, or is not the kind expected."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk_of(public: Ed25519PublicKey) -> dict[str, str]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


def public_key_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise BadDocument("the key is not an Ed25519 JWK")
    try:
        raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise BadDocument(f"the key is not an Ed25519 JWK: {exc}") from None


def sign(
    payload: dict[str, Any],
    private: Ed25519PrivateKey,
    *,
    typ: str,
    with_key: bool = False,
    kid: str | None = None,
) -> str:
    """Sign ``payload``; ``with_key`` puts the public JWK in the header (for a pinned fingerprint).
    ``kid``: the key's RFC 7638 thumbprint where the caller keeps it (else computed here)."""
    headers: dict[str, Any] = {"kid": kid, "typ": typ}
    if kid is None or with_key:
        jwk = public_jwk_of(private.public_key())
        if kid is None:
            headers["kid"] = thumbprint(jwk)
        if with_key:
            headers["jwk"] = jwk
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _jws.encode(body, private, algorithm=ALGORITHM, headers=headers)


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
MAX_DOCUMENT = 4_000_000


def _part(text: str, what: str) -> bytes:
    # Strict base64url without padding (RFC 7515 §2): anything else is not our document.
    if len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise BadDocument(f"the {what} is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError as exc:
        raise BadDocument(f"the {what} is not JSON: {exc}") from None
    except RecursionError:
        # Parsed before any signature is checked: "[[[[…" thousands deep from anyone is no document.
        raise BadDocument(f"the {what} is nested too deeply") from None
    if not isinstance(found, dict):
        raise BadDocument(f"the {what} is not a JSON object")
    return found


def _split(token: str) -> tuple[str, str, str]:
    """The three parts of a compact JWS, parsed once (every question and answer goes through here;
    PyJWT parsed a token three times for one check). Signing stays with PyJWT, and the SDK checks
    our documents with PyJWT, so two implementations agree on every document."""
    if not isinstance(token, str) or len(token) > MAX_DOCUMENT:
        raise BadDocument("not a signed document")
    parts = token.split(".")
    if len(parts) != 3:
        raise BadDocument("not a signed document: a compact JWS has three parts")
    return parts[0], parts[1], parts[2]


def header(token: str) -> dict[str, Any]:
    head, _, _ = _split(token)
    return _json_object(_part(head, "header"), "header")


def unverified_payload(token: str) -> dict[str, Any]:
    """The payload before any check: only to find out who claims to have signed it."""
    _, body, _ = _split(token)
    return _json_object(_part(body, "payload"), "signed payload")


def verify(token: str, public: Ed25519PublicKey, *, typ: str) -> dict[str, Any]:
    """The payload, if ``public`` signed it as a document of kind ``typ``; else :class:`BadDocument`."""
    head, body, signature = _split(token)
    found = _json_object(_part(head, "header"), "header")
    if found.get("alg") != ALGORITHM:
        raise BadDocument(f"algorithm {str(found.get('alg'))[:16]!r} is not accepted")
    if found.get("typ") != typ:
        raise BadDocument(f"a {str(found.get('typ'))[:40]!r} is not a {typ!r}")
    if "crit" in found:
        raise BadDocument("critical header extensions are not understood")
    try:
        public.verify(_part(signature, "signature"), f"{head}.{body}".encode("ascii"))
    except InvalidSignature:
        raise BadDocument("the signature does not verify") from None
    return _json_object(_part(body, "payload"), "signed payload")
