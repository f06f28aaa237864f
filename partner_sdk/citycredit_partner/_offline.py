"""Offline verification: the city's JWKS, cached; an unknown ``kid`` triggers a (rate-limited) refetch."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
from jwt import PyJWK

from ._errors import CodeRejectedError
from ._models import OfflineVerification

MAX_LIFETIME = 120


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
    token: str, *, keys: KeyCache, issuer: str, now: dt.datetime | None = None, leeway: int = 5
) -> OfflineVerification:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise CodeRejectedError("token-malformed", str(exc)) from None
    alg = header.get("alg")
    if alg in (None, "none", "None", "NONE"):
        raise CodeRejectedError("token-unsigned", "the code declares no signature algorithm")
    if alg != "EdDSA":
        raise CodeRejectedError("algorithm-not-allowed", f"algorithm {alg!r} is not accepted")
    try:
        claimed_issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError as exc:
        raise CodeRejectedError("token-malformed", str(exc)) from None
    if claimed_issuer != issuer:
        raise CodeRejectedError(
            "wrong-issuer", f"issued by {str(claimed_issuer)[:32]!r}, expected {issuer!r}"
        )
    kid = str(header.get("kid", ""))
    key = keys.key(kid)
    if key is None:
        raise CodeRejectedError("unknown-key", f"key {kid[:32]!r} is not in the city's JWKS")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            issuer=issuer,
            options={"require": ["iss", "sub", "ct", "iat", "exp", "jti"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError:
        raise CodeRejectedError(
            "bad-signature", "the signature does not match the content"
        ) from None
    except jwt.PyJWTError as exc:
        raise CodeRejectedError("token-malformed", str(exc)) from None
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    if claims["exp"] + leeway < moment:
        raise CodeRejectedError("token-expired", "ask the citizen to show a fresh code")
    if claims["exp"] - claims["iat"] > MAX_LIFETIME or not 1 <= int(claims["ct"]) <= 5:
        raise CodeRejectedError("token-malformed", "the claims are out of range")
    return OfflineVerification(
        issuer=claims["iss"],
        tier_level=int(claims["ct"]),
        local_tier=str(claims.get("lt", "")),
        kid=kid,
        expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
        code_id=claims["jti"],
    )
