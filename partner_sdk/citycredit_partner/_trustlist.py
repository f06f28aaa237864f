"""The federation's trust list, checked exactly as docs/FEDERATION.md says, and a cache of the good one.

The list is a compact JWS signed by the federation's trust anchor, whose fingerprint (RFC 7638 JWK
thumbprint) every party pins out of band; inside, each member city's entry is signed by that city's
federation key. A desk verifies a visiting citizen's code against the signing keys and tier tables
of these entries, offline. Nothing here imports the city's server code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt import PyJWK

from ._errors import TrustListError

__all__ = [
    "DEFAULT_MAX_AGE",
    "LocalTier",
    "Member",
    "SigningKey",
    "TierMapping",
    "TrustAnchor",
    "TrustList",
    "TrustListCache",
    "jwk_thumbprint",
    "public_jwk",
    "verify_trust_list",
]

log = logging.getLogger("citycredit_partner")

DEFAULT_MAX_AGE = 172800  # CITYCREDIT_TRUST_LIST_MAX_AGE's default: two days
LIST_TYPE = "citycredit-trust-list+jwt"
ENTRY_TYPE = "citycredit-entry+jwt"
BAD_SIGNATURE = "trust-list-bad-signature"
ENTRY_UNSIGNED = "trust-list-entry-unsigned"
ROLLBACK = "trust-list-rollback"
TOO_OLD = "trust-list-too-old"
STATUSES = frozenset({"active", "suspended", "left"})
# RFC 7638 §3.2: the members a thumbprint covers, per key type.
_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the key's required members, sorted, no whitespace; base64url."""
    names = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if names is None:
        raise ValueError(f"no thumbprint for key type {str(jwk.get('kty'))[:16]!r}")
    required = {}
    for name in names:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"the key has no {name!r}")
        required[name] = value
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(key: Ed25519PublicKey | Ed25519PrivateKey) -> dict[str, str]:
    """The public JWK of an Ed25519 key: ``{"kty": "OKP", "crv": "Ed25519", "x": …}``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}


def _ed25519(jwk: Any) -> PyJWK:
    """A public Ed25519 key from a JWK, private members ignored; ValueError if it is not one."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("not an Ed25519 public key (kty OKP, crv Ed25519)")
    try:
        return PyJWK({"kty": "OKP", "crv": "Ed25519", "x": jwk.get("x")}, algorithm="EdDSA")
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise ValueError(f"not a usable Ed25519 key: {exc}") from None


@dataclass(frozen=True)
class TrustAnchor:
    """The federation's trust anchor as a desk pins it: its fingerprint, and its public JWK if known.

    With only the fingerprint pinned, the anchor's public key comes with the list (the JWS header's
    ``jwk``, RFC 7515 §4.1.3) and is used only if its thumbprint is the pinned one.
    """

    fingerprint: str
    jwk: Mapping[str, Any] | None = None

    @classmethod
    def pin(cls, value: TrustAnchor | str | Mapping[str, Any]) -> TrustAnchor:
        """From a fingerprint, or the anchor's public JWK (a mapping, or its JSON text)."""
        if isinstance(value, TrustAnchor):
            return value
        if isinstance(value, str) and value.strip().startswith("{"):
            value = json.loads(value)
        if isinstance(value, Mapping):
            jwk = dict(value)
            _ed25519(jwk)
            return cls(jwk_thumbprint(jwk), jwk)
        fingerprint = str(value).strip()
        if not fingerprint:
            raise ValueError("an empty trust anchor fingerprint")
        return cls(fingerprint)


AnchorLike: TypeAlias = TrustAnchor | str | Mapping[str, Any]


@dataclass(frozen=True)
class SigningKey:
    """One of a member's code-signing keys, with the window its codes may be valid in."""

    kid: str
    key: PyJWK
    nbf: int | None
    exp: int | None  # None while the key still signs

    def valid_at(self, moment: float, *, leeway: float = 0) -> bool:
        if self.nbf is not None and moment + leeway < self.nbf:
            return False
        return self.exp is None or moment - leeway <= self.exp


@dataclass(frozen=True)
class LocalTier:
    code: str
    name_zh: str
    name_en: str
    common_level: int


@dataclass(frozen=True)
class TierMapping:
    """A member's tier table under one scoring-model version (the code's ``mv``)."""

    version: int
    tiers: dict[str, LocalTier]  # local tier code -> its row


@dataclass(frozen=True)
class Member:
    """A member city as its signed entry describes it, with the status the coordinator gave it."""

    issuer: str
    status: str  # active | suspended | left
    name_zh: str
    name_en: str
    level: str
    base_url: str
    federation_key: str  # fingerprint
    signing_keys: dict[str, SigningKey]
    mappings: dict[int, TierMapping]
    current_mapping: int | None
    status_changed_at: int | None


@dataclass(frozen=True)
class TrustList:
    """A trust list that passed every check of docs/FEDERATION.md."""

    seq: int
    iat: int
    coordinator: str
    members: dict[str, Member]
    common_levels: dict[int, tuple[str, str]]  # level -> (name_zh, name_en)
    token: str  # the JWS as received, to store or pass on
    digest: str  # of the signed content: one seq, one content

    def member(self, issuer: str) -> Member | None:
        """The member with this issuer code; None if there is none or it left the federation."""
        found = self.members.get(issuer)
        return None if found is None or found.status == "left" else found

    def age(self, now: float) -> float:
        return now - self.iat


def verify_trust_list(
    token: str,
    *,
    anchor: AnchorLike,
    held: TrustList | None = None,
    max_age: float = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> TrustList:
    """Accept a trust list only as docs/FEDERATION.md says, in its order; else ``TrustListError``.

    1. signed by the pinned anchor, ``kid`` its fingerprint (``trust-list-bad-signature``);
    2. every entry signed by its member's federation key, for that issuer (``trust-list-entry-unsigned``);
    3. ``seq`` not below the ``held`` list's, nor equal with other content (``trust-list-rollback``);
    4. at most ``max_age`` seconds old at ``now`` (``trust-list-too-old``).
    """
    pinned = TrustAnchor.pin(anchor)
    claims = _anchor_signed(token, pinned)
    try:
        seq, iat = _integer(claims["seq"]), _integer(claims["iat"])
        coordinator = str(claims.get("coordinator", ""))
        records = claims["members"]
        if claims.get("format") != 1 or not isinstance(records, list):
            raise ValueError("not a format-1 trust list")
        common_levels = {
            _integer(row["level"]): (str(row["name_zh"]), str(row["name_en"]))
            for row in (claims.get("value_sets") or {}).get("common_levels", [])
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrustListError(BAD_SIGNATURE, f"the signed list is malformed: {exc}") from None
    members: dict[str, Member] = {}
    for record in records:
        member = _member(record)
        if member is not None:
            members[member.issuer] = member
    digest = _b64(hashlib.sha256(_canonical(claims)).digest())
    if held is not None and (seq < held.seq or (seq == held.seq and digest != held.digest)):
        why = "an older list" if seq < held.seq else "the same sequence with other content"
        raise TrustListError(ROLLBACK, f"sequence {seq} after {held.seq}: {why}")
    moment = time.time() if now is None else now
    if moment - iat > max_age:
        raise TrustListError(
            TOO_OLD, f"signed {int(moment - iat)} s ago; at most {int(max_age)} s is accepted"
        )
    return TrustList(seq, iat, coordinator, members, common_levels, token, digest)


def _anchor_signed(token: str, anchor: TrustAnchor) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TrustListError(BAD_SIGNATURE, f"not a compact JWS: {exc}") from None
    if header.get("alg") != "EdDSA" or header.get("typ") != LIST_TYPE:
        raise TrustListError(
            BAD_SIGNATURE, f"not an EdDSA-signed trust list ({str(header.get('typ'))[:40]!r})"
        )
    if header.get("kid") != anchor.fingerprint:
        raise TrustListError(
            BAD_SIGNATURE,
            f"signed by {str(header.get('kid'))[:64]!r}, not the pinned anchor {anchor.fingerprint!r}",
        )
    jwk = anchor.jwk if anchor.jwk is not None else header.get("jwk")
    if jwk is None:
        raise TrustListError(
            BAD_SIGNATURE, "the list carries no anchor key (header 'jwk') and none is pinned"
        )
    try:
        if jwk_thumbprint(jwk) != anchor.fingerprint:
            raise ValueError("its fingerprint is not the pinned one")
        key = _ed25519(jwk)
    except (ValueError, TypeError, AttributeError) as exc:
        raise TrustListError(BAD_SIGNATURE, f"the anchor key is refused: {exc}") from None
    claims = _verified_payload(token, key)
    if claims is None:
        raise TrustListError(BAD_SIGNATURE, "the signature does not verify with the anchor key")
    return claims


def _verified_payload(token: str, key: PyJWK) -> dict[str, Any] | None:
    """The JSON object a JWS signs, if ``key`` verifies it; None otherwise."""
    try:
        payload = jwt.PyJWS().decode_complete(token, key, algorithms=["EdDSA"])["payload"]
        claims = json.loads(payload)
    except (jwt.PyJWTError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _member(record: Any) -> Member | None:
    """One member of a signed list, its entry checked; None for one that left without an entry."""
    issuer = str(record.get("issuer", "")) if isinstance(record, dict) else ""
    try:
        if not issuer or record.get("status") not in STATUSES:
            raise ValueError("no issuer code or an unknown status")
        if record.get("status") == "left" and not record.get("entry"):
            return None  # it is not a member; there is nothing of it to verify
        federation_key = _ed25519(record.get("federation_key"))
        fingerprint = jwk_thumbprint(record["federation_key"])
    except (ValueError, TypeError, KeyError) as exc:
        raise TrustListError(ENTRY_UNSIGNED, f"member {issuer[:32]!r}: {exc}") from None
    entry = record.get("entry")
    try:
        header = jwt.get_unverified_header(entry) if isinstance(entry, str) else {}
    except jwt.PyJWTError:
        header = {}
    claims = _verified_payload(entry, federation_key) if isinstance(entry, str) else None
    if claims is None or header.get("typ") != ENTRY_TYPE:
        raise TrustListError(
            ENTRY_UNSIGNED, f"the entry of {issuer[:32]!r} is not signed by its federation key"
        )
    if claims.get("iss") != issuer:
        raise TrustListError(
            ENTRY_UNSIGNED,
            f"the entry listed for {issuer[:32]!r} is issued by {str(claims.get('iss'))[:32]!r}",
        )
    try:
        names = claims.get("names") or {}
        return Member(
            issuer=issuer,
            status=str(record["status"]),
            name_zh=str(names.get("zh", "")),
            name_en=str(names.get("en", "")),
            level=str(claims.get("level", "")),
            base_url=str(claims.get("base_url", "")),
            federation_key=fingerprint,
            signing_keys=_signing_keys(claims.get("signing_keys", [])),
            mappings=_mappings(claims.get("mappings", [])),
            current_mapping=_optional_integer(claims.get("current_mapping")),
            status_changed_at=_optional_integer(record.get("status_changed_at")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrustListError(
            ENTRY_UNSIGNED, f"the entry of {issuer[:32]!r} is malformed: {exc}"
        ) from None


def _signing_keys(rows: list[dict[str, Any]]) -> dict[str, SigningKey]:
    keys = {}
    for row in rows:
        # Like the JWKS cache: a key of another type is not one codes can be signed with here.
        if row.get("kty") == "OKP" and row.get("crv") == "Ed25519" and row.get("kid"):
            kid = str(row["kid"])
            nbf, exp = _optional_integer(row.get("nbf")), _optional_integer(row.get("exp"))
            keys[kid] = SigningKey(kid, _ed25519(row), nbf, exp)
    return keys


def _mappings(rows: list[dict[str, Any]]) -> dict[int, TierMapping]:
    mappings = {}
    for row in rows:
        version = _integer(row["version"])
        tiers = {}
        for tier in row["tiers"]:
            level = _integer(tier["common_level"])
            if not 1 <= level <= 5:
                raise ValueError(f"common level {level} is not on the scale 1–5")
            code = str(tier["code"])
            tiers[code] = LocalTier(code, str(tier["name_zh"]), str(tier["name_en"]), level)
        mappings[version] = TierMapping(version, tiers)
    return mappings


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{str(value)[:16]!r} is not an integer")
    return value


def _optional_integer(value: Any) -> int | None:
    return None if value is None else _integer(value)


def _canonical(claims: dict[str, Any]) -> bytes:
    return json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class TrustListCache:
    """The last good trust list, fetched through ``fetch`` (which returns the list's compact JWS).

    A refused list (forged, rolled back, too old…) or a failed fetch leaves the last good list serving
    until it is ``max_age`` old; visitor codes then stop with ``trust-list-too-old``. The list is
    re-read when ``refresh_after`` (default ``max_age / 4``, the coordinator's re-signing period) has
    passed since the last good read, when it is three quarters of ``max_age`` old, and when a code
    names an issuer or key it does not hold: each at most once per ``min_refresh_interval``, so a
    stream of made-up kids costs one download a minute, not one a scan.
    """

    def __init__(
        self,
        fetch: Callable[[], str],
        anchor: AnchorLike | Callable[[], AnchorLike | None] | None,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        min_refresh_interval: float = 60.0,
        refresh_after: float | None = None,
        store: str | os.PathLike[str] | None = None,
    ):
        """``store``: a file where the last good list is kept, so that a desk restarted without the
        network still recognises visitors, and a rolled-back list is refused across restarts too.
        What is read back is checked again like a fetched list (a tampered file is ignored)."""
        self._fetch = fetch
        self._store = Path(store) if store is not None else None
        self._anchor_source = anchor
        self._anchor: TrustAnchor | None = None
        self._anchor_known = False
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self.refresh_after = max_age / 4 if refresh_after is None else refresh_after
        self._held: TrustList | None = None
        self._read_at: float | None = None  # monotonic, last good read
        self._attempted_at: float | None = None  # monotonic, last fetch tried
        self.last_error: Exception | None = None
        self._lock = threading.Lock()
        self._stored_loaded = False

    @property
    def anchor(self) -> TrustAnchor | None:
        """The pinned anchor (resolved once, if given as a callable); None: no trust list configured."""
        if not self._anchor_known:
            source = self._anchor_source
            value = source() if callable(source) else source
            self._anchor = None if value is None or value == "" else TrustAnchor.pin(value)
            self._anchor_known = True
        return self._anchor

    @property
    def held(self) -> TrustList | None:
        return self._held

    def get(self, now: float | None = None, *, unknown: bool = False) -> TrustList:
        """The list to verify against, re-read first if due (``unknown``: a code named what it lacks).

        Raises ``TrustListError`` (or the fetch's error) only while no good list was ever held.
        """
        anchor = self.anchor
        if anchor is None:
            raise TrustListError(BAD_SIGNATURE, "no trust anchor is configured")
        moment = time.time() if now is None else now
        with self._lock:
            self._load_stored(anchor, moment)
            if self._due(moment, unknown) and self._may_attempt():
                try:
                    self._refresh(anchor, moment)
                except Exception as exc:
                    if self._held is None:
                        raise
                    log.warning("trust list not updated, the last good one serves: %s", exc)
            if self._held is None:
                # Within the interval after a failed first read: the same answer, no new download.
                raise self.last_error or TrustListError(BAD_SIGNATURE, "no trust list was read")
            return self._held

    def refresh(self, now: float | None = None) -> TrustList:
        """Read the list now, whatever the intervals; a refused one raises and changes nothing."""
        anchor = self.anchor
        if anchor is None:
            raise TrustListError(BAD_SIGNATURE, "no trust anchor is configured")
        moment = time.time() if now is None else now
        with self._lock:
            self._load_stored(anchor, moment)
            return self._refresh(anchor, moment)

    def _due(self, moment: float, unknown: bool) -> bool:
        held = self._held
        if held is None or unknown or self._read_at is None:
            return True
        return (
            time.monotonic() - self._read_at >= self.refresh_after
            or held.age(moment) >= self.max_age * 3 / 4
        )

    def _may_attempt(self) -> bool:
        return (
            self._attempted_at is None
            or time.monotonic() - self._attempted_at >= self.min_refresh_interval
        )

    def _refresh(self, anchor: TrustAnchor, moment: float) -> TrustList:
        self._attempted_at = time.monotonic()
        try:
            listing = verify_trust_list(
                self._fetch(), anchor=anchor, held=self._held, max_age=self.max_age, now=moment
            )
        except Exception as exc:
            self.last_error = exc
            raise
        self._held, self._read_at, self.last_error = listing, time.monotonic(), None
        self._save(listing)
        return listing

    def _load_stored(self, anchor: TrustAnchor, moment: float) -> None:
        """Once: the list kept in ``store``, if it still passes every check (it is not re-read
        from the network because of it: a stored list is a floor against rollback and a fallback)."""
        if self._stored_loaded or self._store is None:
            return
        self._stored_loaded = True
        try:
            token = self._store.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return
        try:
            self._held = verify_trust_list(token, anchor=anchor, max_age=self.max_age, now=moment)
        except TrustListError as exc:
            log.warning("the stored trust list in %s is not used: %s", self._store, exc)

    def _save(self, listing: TrustList) -> None:
        if self._store is None:
            return
        try:
            self._store.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._store.with_name(f".{self._store.name}.{os.getpid()}")
            temporary.write_text(listing.token, encoding="ascii")
            os.replace(temporary, self._store)  # atomic: a crash leaves the old list or the new
        except OSError as exc:
            log.warning("the trust list could not be kept in %s: %s", self._store, exc)
