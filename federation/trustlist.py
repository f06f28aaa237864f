"""The trust list: who the members are, their keys and tier mappings, signed by the trust anchor.

``verify_list`` is the one check every verifier runs (this city on sync; the SDK does the same on its
own). ``TrustList`` is the parsed, verified list with what visitor verification needs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation import jws


class TrustListRefused(Exception):
    """A trust list that must not be used; ``type`` is its documented problem type."""

    type = "trust-list-bad-signature"
    title = "The trust list's signature does not verify with the pinned trust anchor"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class BadListSignature(TrustListRefused):
    pass


class EntryUnsigned(TrustListRefused):
    type = "trust-list-entry-unsigned"
    title = "A member's entry in the trust list is not signed by that member"


class ListRolledBack(TrustListRefused):
    type = "trust-list-rollback"
    title = "The trust list is older than the one already held (rollback)"


class ListTooOld(TrustListRefused):
    type = "trust-list-too-old"
    title = "The trust list is older than its maximum age"


@dataclass(frozen=True)
class SigningKeyWindow:
    kid: str
    public: Ed25519PublicKey
    not_before: int
    expires: int | None

    def valid_at(self, moment: float) -> bool:
        return self.not_before - 300 <= moment and (self.expires is None or moment <= self.expires)


@dataclass(frozen=True)
class MemberView:
    issuer: str
    status: str
    name_zh: str
    name_en: str
    level: str
    base_url: str
    federation_jwk: dict[str, Any]
    fingerprint: str
    signing_keys: dict[str, SigningKeyWindow]
    # mapping version → {local tier code: (common level, name_zh, name_en)}
    mappings: dict[int, dict[str, tuple[int, str, str]]]
    current_mapping: int | None
    status_changed_at: int
    entry_issued_at: int

    @property
    def federation_key(self) -> Ed25519PublicKey:
        return jws.public_key_from_jwk(self.federation_jwk)


@dataclass(frozen=True)
class TrustList:
    seq: int
    issued_at: dt.datetime
    coordinator: str
    document: str
    members: dict[str, MemberView] = field(default_factory=dict)
    value_sets: dict[str, Any] = field(default_factory=dict)

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.issued_at

    def too_old(self, now: dt.datetime, max_age: int) -> bool:
        return self.age(now).total_seconds() > max_age


def _member(raw: dict[str, Any]) -> MemberView:
    issuer = raw.get("issuer")
    fed_jwk = raw.get("federation_key")
    entry_jws = raw.get("entry")
    if (
        not isinstance(issuer, str)
        or not isinstance(fed_jwk, dict)
        or not isinstance(entry_jws, str)
    ):
        raise EntryUnsigned(f"member {str(issuer)[:32]!r} lacks its key or its signed entry")
    try:
        entry = jws.verify(entry_jws, jws.public_key_from_jwk(fed_jwk), typ=jws.TYP_ENTRY)
    except jws.BadDocument as exc:
        raise EntryUnsigned(f"the entry of {issuer!r} is not signed by its city: {exc}") from None
    if entry.get("iss") != issuer:
        raise EntryUnsigned(
            f"the entry listed for {issuer!r} is {str(entry.get('iss'))[:32]!r}'s, not its own"
        )
    # What follows is the member's own word: a field it got wrong costs that member only (its codes
    # cannot be checked), never the list, or one member could stop every member's sync.
    signing: dict[str, SigningKeyWindow] = {}
    for key in _list(entry.get("signing_keys")):
        try:
            signing[str(key["kid"])] = SigningKeyWindow(
                str(key["kid"]),
                jws.public_key_from_jwk(key),
                int(key.get("nbf") or 0),
                None if key.get("exp") is None else int(key["exp"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError, jws.BadDocument):
            continue  # an unusable key verifies nothing; the others still serve
    mappings: dict[int, dict[str, tuple[int, str, str]]] = {}
    for mapping in _list(entry.get("mappings")):
        try:
            mappings[int(mapping["version"])] = {
                str(t["code"]): (int(t["common_level"]), str(t["name_zh"]), str(t["name_en"]))
                for t in mapping["tiers"]
            }
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
    names = entry.get("names")
    names = names if isinstance(names, dict) else {}
    current_mapping = entry.get("current_mapping")
    return MemberView(
        issuer=issuer,
        status=str(raw.get("status", "active")),
        name_zh=str(names.get("zh", issuer)),
        name_en=str(names.get("en", issuer)),
        level=str(entry.get("level", "")),
        base_url=str(entry.get("base_url", "")).rstrip("/"),
        federation_jwk=fed_jwk,
        fingerprint=jws.thumbprint(fed_jwk),
        signing_keys=signing,
        mappings=mappings,
        current_mapping=int(current_mapping) if isinstance(current_mapping, int) else None,
        status_changed_at=int(raw.get("status_changed_at") or 0),
        entry_issued_at=entry_iat if type(entry_iat := entry.get("iat")) is int else 0,
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_verified(document: str, anchor_fingerprint: str) -> TrustList:
    """Signature (the pinned anchor) and entries (members) checked; sequence and age are the caller's."""
    try:
        header = jws.header(document)
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise jws.BadDocument("the list carries no anchor key")
        if jws.thumbprint(jwk) != anchor_fingerprint or header.get("kid") != anchor_fingerprint:
            raise jws.BadDocument("it is signed by another key than the pinned trust anchor")
        payload = jws.verify(document, jws.public_key_from_jwk(jwk), typ=jws.TYP_TRUST_LIST)
    except (jws.BadDocument, KeyError, TypeError) as exc:
        raise BadListSignature(
            f"the trust list does not verify with the trust anchor: {exc}"
        ) from None
    try:
        seq = int(payload["seq"])
        issued = dt.datetime.fromtimestamp(int(payload["iat"]), dt.UTC)
        raw_members = list(payload["members"])
    except (KeyError, TypeError, ValueError):
        raise BadListSignature("the trust list lacks its sequence, date or members") from None
    members = {}
    for raw in raw_members:
        view = _member(raw)
        members[view.issuer] = view
    return TrustList(
        seq=seq,
        issued_at=issued,
        coordinator=str(payload.get("coordinator", "")),
        document=document,
        members=members,
        value_sets=dict(payload.get("value_sets") or {}),
    )


def verify_list(
    document: str,
    *,
    anchor_fingerprint: str,
    held_seq: int | None,
    held_document: str | None,
    now: dt.datetime,
    max_age: int,
) -> TrustList:
    """Every check of docs/FEDERATION.md, in its order; raises the precise :class:`TrustListRefused`."""
    trust_list = parse_verified(document, anchor_fingerprint)
    if held_seq is not None and (
        trust_list.seq < held_seq or (trust_list.seq == held_seq and document != held_document)
    ):
        raise ListRolledBack(
            f"sequence {trust_list.seq} is older than the held {held_seq}; a rolled-back list is refused"
        )
    if trust_list.too_old(now, max_age):
        raise ListTooOld(
            f"the list was signed at {trust_list.issued_at:%Y-%m-%d %H:%M} UTC, older than the "
            f"maximum age of {max_age} s"
        )
    return trust_list


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
