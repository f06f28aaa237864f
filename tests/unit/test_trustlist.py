"""The trust list as every verifier checks it (docs/FEDERATION.md, "The trust list"): each refusal in
the documented order, from real forged, tampered, rolled-back and over-age lists, and what a good
list tells (members, their code-signing keys' windows, their tier mappings). No database."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation import jws
from federation.trustlist import (
    BadListSignature,
    EntryUnsigned,
    ListRolledBack,
    ListTooOld,
    TrustList,
    TrustListRefused,
    verify_list,
)

NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
MAX_AGE = 172800


def ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


@dataclass
class City:
    """A member city of the test: its federation key, one code-signing key and a tier table."""

    issuer: str
    name_zh: str
    name_en: str
    federation_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwk(self) -> dict[str, str]:
        return jws.public_jwk_of(self.federation_key.public_key())

    @property
    def kid(self) -> str:
        return jws.thumbprint(jws.public_jwk_of(self.signing_key.public_key()))

    def entry_payload(self, **changes: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "iat": ts(NOW - dt.timedelta(hours=1)),
            "names": {"zh": self.name_zh, "en": self.name_en},
            "level": "prefecture",
            "base_url": f"https://credit.{self.name_en.lower()}.example/",
            "signing_keys": [
                {
                    **jws.public_jwk_of(self.signing_key.public_key()),
                    "kid": self.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                    "nbf": ts(NOW - dt.timedelta(days=30)),
                    "exp": None,
                }
            ],
            "mappings": [
                {
                    "version": 12,
                    "tiers": [
                        {"code": "AAA", "name_zh": "AAA级", "name_en": "AAA", "common_level": 5},
                        {"code": "AA", "name_zh": "AA级", "name_en": "AA", "common_level": 4},
                        {"code": "B", "name_zh": "B级", "name_en": "B", "common_level": 2},
                    ],
                },
                {
                    "version": 9,
                    "tiers": [
                        {"code": "A", "name_zh": "A级", "name_en": "A", "common_level": 4},
                    ],
                },
            ],
            "current_mapping": 12,
        }
        payload.update(changes)
        return payload

    def entry(self, *, signed_by: Ed25519PrivateKey | None = None, **changes: Any) -> str:
        return jws.sign(
            self.entry_payload(**changes), signed_by or self.federation_key, typ=jws.TYP_ENTRY
        )

    def member(self, status: str = "active", **entry_changes: Any) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "status": status,
            "federation_key": self.jwk,
            "status_changed_at": ts(NOW - dt.timedelta(days=3)),
            "entry": self.entry(**entry_changes),
        }


HUANGSHI = City("420200", "黄石市", "Huangshi")
WUHAN = City("420100", "武汉市", "Wuhan")
SANYA = City("460200", "三亚市", "Sanya")


@pytest.fixture(scope="module")
def anchor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def fingerprint(key: Ed25519PrivateKey) -> str:
    return jws.thumbprint(jws.public_jwk_of(key.public_key()))


def list_payload(
    members: list[dict[str, Any]] | None = None, *, seq: int = 5, iat: dt.datetime = NOW
) -> dict[str, Any]:
    return {
        "format": 1,
        "seq": seq,
        "iat": ts(iat),
        "coordinator": HUANGSHI.issuer,
        "value_sets": {
            "common_levels": [{"level": 5, "name_zh": "极好", "name_en": "Excellent"}],
            "categories": [{"code": "library", "name_zh": "图书馆", "name_en": "Libraries"}],
        },
        "members": members
        if members is not None
        else [HUANGSHI.member(), WUHAN.member(), SANYA.member("suspended")],
    }


def signed_list(anchor: Ed25519PrivateKey, payload: dict[str, Any]) -> str:
    return jws.sign(payload, anchor, typ=jws.TYP_TRUST_LIST, with_key=True)


def raw_signed(payload: dict[str, Any], key: Ed25519PrivateKey, headers: dict[str, Any]) -> str:
    """Sign with whatever header a forger chooses (jws.sign always tells the truth about the key)."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return jwt.PyJWS().encode(body, key, algorithm="EdDSA", headers=headers)


def check(
    document: str,
    anchor: Ed25519PrivateKey,
    *,
    held: tuple[int, str] | None = None,
    now: dt.datetime = NOW,
    max_age: int = MAX_AGE,
) -> TrustList:
    return verify_list(
        document,
        anchor_fingerprint=fingerprint(anchor),
        held_seq=held[0] if held else None,
        held_document=held[1] if held else None,
        now=now,
        max_age=max_age,
    )


# --- a good list --------------------------------------------------------------------------------------


def test_a_good_list_tells_members_their_keys_windows_and_mappings(
    anchor: Ed25519PrivateKey,
) -> None:
    document = signed_list(anchor, list_payload())
    trust_list = check(document, anchor)

    assert trust_list.seq == 5
    assert trust_list.issued_at == NOW
    assert trust_list.coordinator == "420200"
    assert trust_list.document == document
    assert trust_list.value_sets["categories"][0]["code"] == "library"
    assert sorted(trust_list.members) == ["420100", "420200", "460200"]
    assert trust_list.members["460200"].status == "suspended"

    wuhan = trust_list.members["420100"]
    assert (wuhan.name_zh, wuhan.name_en, wuhan.level) == ("武汉市", "Wuhan", "prefecture")
    assert wuhan.base_url == "https://credit.wuhan.example"  # no trailing slash
    assert wuhan.fingerprint == jws.thumbprint(WUHAN.jwk)
    assert wuhan.federation_jwk == WUHAN.jwk
    assert wuhan.status_changed_at == ts(NOW - dt.timedelta(days=3))
    assert wuhan.entry_issued_at == ts(NOW - dt.timedelta(hours=1))

    # The code-signing key, with the window its codes are honoured in.
    assert list(wuhan.signing_keys) == [WUHAN.kid]
    window = wuhan.signing_keys[WUHAN.kid]
    assert window.not_before == ts(NOW - dt.timedelta(days=30)) and window.expires is None
    assert window.valid_at(NOW.timestamp())
    assert not window.valid_at(window.not_before - 301)  # five minutes of clock skew, no more
    message = b"a code"
    window.public.verify(WUHAN.signing_key.sign(message), message)

    # Every published mapping: local tier -> (common level, names); the current one named.
    assert wuhan.mappings == {
        12: {"AAA": (5, "AAA级", "AAA"), "AA": (4, "AA级", "AA"), "B": (2, "B级", "B")},
        9: {"A": (4, "A级", "A")},
    }
    assert wuhan.current_mapping == 12


def test_a_retired_key_is_honoured_only_until_its_last_code_expires(
    anchor: Ed25519PrivateKey,
) -> None:
    retired = Ed25519PrivateKey.generate()
    retired_kid = jws.thumbprint(jws.public_jwk_of(retired.public_key()))
    keys = [
        {
            **jws.public_jwk_of(retired.public_key()),
            "kid": retired_kid,
            "nbf": ts(NOW - dt.timedelta(days=60)),
            "exp": ts(NOW - dt.timedelta(minutes=1)),
        },
        # An unusable key (not Ed25519) is skipped; the others still serve.
        {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "AQAB", "nbf": 0, "exp": None},
        {
            **jws.public_jwk_of(WUHAN.signing_key.public_key()),
            "kid": WUHAN.kid,
            "nbf": ts(NOW),
            "exp": None,
        },
    ]
    document = signed_list(anchor, list_payload([WUHAN.member(signing_keys=keys)]))
    windows = check(document, anchor).members["420100"].signing_keys

    assert sorted(windows) == sorted([retired_kid, WUHAN.kid])
    assert windows[retired_kid].valid_at((NOW - dt.timedelta(minutes=2)).timestamp())
    assert not windows[retired_kid].valid_at(NOW.timestamp())
    assert windows[WUHAN.kid].valid_at(NOW.timestamp())


def test_the_same_list_again_is_accepted(anchor: Ed25519PrivateKey) -> None:
    document = signed_list(anchor, list_payload(seq=7))
    assert check(document, anchor, held=(7, document)).seq == 7


def test_a_list_exactly_at_its_maximum_age_is_still_accepted(anchor: Ed25519PrivateKey) -> None:
    document = signed_list(anchor, list_payload(iat=NOW - dt.timedelta(seconds=MAX_AGE)))
    assert check(document, anchor).seq == 5


# --- 1. the anchor's signature ---------------------------------------------------------------------------


def test_a_list_forged_under_the_pinned_anchors_name_is_refused(anchor: Ed25519PrivateKey) -> None:
    # The forger copies the anchor's public key and fingerprint into the header, signs with its own.
    forger = Ed25519PrivateKey.generate()
    anchor_jwk = jws.public_jwk_of(anchor.public_key())
    document = raw_signed(
        list_payload(),
        forger,
        {"kid": jws.thumbprint(anchor_jwk), "typ": jws.TYP_TRUST_LIST, "jwk": anchor_jwk},
    )
    with pytest.raises(BadListSignature) as refused:
        check(document, anchor)
    assert refused.value.type == "trust-list-bad-signature"
    assert "signature does not verify" in refused.value.detail


def test_a_list_whose_key_does_not_hash_to_the_pinned_fingerprint_is_refused(
    anchor: Ed25519PrivateKey,
) -> None:
    # Self-consistent (signed by the key in its header), but not the key the city pinned.
    other = Ed25519PrivateKey.generate()
    with pytest.raises(BadListSignature) as refused:
        check(signed_list(other, list_payload()), anchor)
    assert refused.value.type == "trust-list-bad-signature"
    assert "another key than the pinned trust anchor" in refused.value.detail


def test_the_header_must_carry_the_anchor_and_name_it(anchor: Ed25519PrivateKey) -> None:
    anchor_jwk = jws.public_jwk_of(anchor.public_key())
    no_key = raw_signed(
        list_payload(), anchor, {"kid": fingerprint(anchor), "typ": jws.TYP_TRUST_LIST}
    )
    other_kid = raw_signed(
        list_payload(),
        anchor,
        {"kid": "someone-else", "typ": jws.TYP_TRUST_LIST, "jwk": anchor_jwk},
    )
    for document in (no_key, other_kid):
        with pytest.raises(BadListSignature):
            check(document, anchor)


def test_a_document_of_another_kind_signed_by_the_anchor_is_not_a_list(
    anchor: Ed25519PrivateKey,
) -> None:
    document = jws.sign(list_payload(), anchor, typ=jws.TYP_BULLETIN, with_key=True)
    with pytest.raises(BadListSignature) as refused:
        check(document, anchor)
    assert "is not a 'citycredit-trust-list+jwt'" in refused.value.detail


def test_a_tampered_list_is_refused(anchor: Ed25519PrivateKey) -> None:
    document = signed_list(anchor, list_payload())
    head, _, signature = document.split(".")
    payload = list_payload()
    payload["members"][2]["status"] = "active"  # un-suspend Sanya
    body = jws._b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    with pytest.raises(BadListSignature):
        check(f"{head}.{body}.{signature}", anchor)


def test_a_signed_list_without_sequence_or_members_is_refused(anchor: Ed25519PrivateKey) -> None:
    for missing in ("seq", "iat", "members"):
        payload = list_payload()
        del payload[missing]
        with pytest.raises(BadListSignature, match="lacks its sequence, date or members"):
            check(signed_list(anchor, payload), anchor)


# --- 2. each member's own signature on its entry ------------------------------------------------------


def test_an_entry_signed_by_another_key_is_refused(anchor: Ed25519PrivateKey) -> None:
    # The coordinator (or whoever broke into it) rewrites Wuhan's tier table and signs it itself.
    forged = WUHAN.member()
    forged["entry"] = WUHAN.entry(signed_by=Ed25519PrivateKey.generate())
    document = signed_list(anchor, list_payload([HUANGSHI.member(), forged]))
    with pytest.raises(EntryUnsigned) as refused:
        check(document, anchor)
    assert refused.value.type == "trust-list-entry-unsigned"
    assert "'420100'" in refused.value.detail


def test_an_entry_whose_iss_is_not_its_member_is_refused(anchor: Ed25519PrivateKey) -> None:
    # Sanya's genuine entry (signed by Sanya's key) listed under Wuhan's name.
    swapped = {**SANYA.member(), "issuer": WUHAN.issuer}
    document = signed_list(anchor, list_payload([HUANGSHI.member(), swapped]))
    with pytest.raises(EntryUnsigned) as refused:
        check(document, anchor)
    assert refused.value.type == "trust-list-entry-unsigned"
    assert "'460200''s, not its own" in refused.value.detail


def test_a_member_without_its_entry_or_with_another_kind_of_document_is_refused(
    anchor: Ed25519PrivateKey,
) -> None:
    no_entry = WUHAN.member()
    del no_entry["entry"]
    not_an_entry = {
        **WUHAN.member(),
        "entry": jws.sign(WUHAN.entry_payload(), WUHAN.federation_key, typ=jws.TYP_BULLETIN),
    }
    for member in (no_entry, not_an_entry):
        with pytest.raises(EntryUnsigned):
            check(signed_list(anchor, list_payload([member])), anchor)


def test_one_bad_entry_refuses_the_whole_list(anchor: Ed25519PrivateKey) -> None:
    bad = SANYA.member()
    bad["entry"] = SANYA.entry(signed_by=WUHAN.federation_key)
    document = signed_list(anchor, list_payload([HUANGSHI.member(), WUHAN.member(), bad]))
    with pytest.raises(EntryUnsigned):
        check(document, anchor)


# --- 3. rollback -------------------------------------------------------------------------------------


def test_a_lower_sequence_is_a_rollback(anchor: Ed25519PrivateKey) -> None:
    held = signed_list(anchor, list_payload(seq=8))
    older = signed_list(anchor, list_payload(seq=7))
    with pytest.raises(ListRolledBack) as refused:
        check(older, anchor, held=(8, held))
    assert refused.value.type == "trust-list-rollback"


def test_the_same_sequence_with_other_content_is_a_rollback(anchor: Ed25519PrivateKey) -> None:
    held = signed_list(anchor, list_payload(seq=8))
    # The same seq, Sanya shown active again: validly signed (say, by a coordinator restored from a
    # backup) but not the list the city holds under that number.
    payload = list_payload(seq=8)
    payload["members"][2] = SANYA.member("active")
    with pytest.raises(ListRolledBack):
        check(signed_list(anchor, payload), anchor, held=(8, held))


def test_a_higher_sequence_replaces_the_held_one(anchor: Ed25519PrivateKey) -> None:
    held = signed_list(anchor, list_payload(seq=8))
    assert check(signed_list(anchor, list_payload(seq=9)), anchor, held=(8, held)).seq == 9


# --- 4. age ------------------------------------------------------------------------------------------


def test_a_list_older_than_its_maximum_age_is_refused(anchor: Ed25519PrivateKey) -> None:
    document = signed_list(anchor, list_payload(iat=NOW - dt.timedelta(seconds=MAX_AGE + 1)))
    with pytest.raises(ListTooOld) as refused:
        check(document, anchor)
    assert refused.value.type == "trust-list-too-old"
    # The limit is the city's setting.
    assert check(document, anchor, max_age=MAX_AGE + 60).seq == 5


# --- the order of the checks ---------------------------------------------------------------------------


def _entry_unsigned(payload: dict[str, Any]) -> None:
    payload["members"][1]["entry"] = WUHAN.entry(signed_by=SANYA.federation_key)


def _too_old(payload: dict[str, Any]) -> None:
    payload["iat"] = ts(NOW - dt.timedelta(days=30))


def _rolled_back(payload: dict[str, Any]) -> None:
    payload["seq"] = 3


@pytest.mark.parametrize(
    ("faults", "first"),
    [
        ((_entry_unsigned, _rolled_back, _too_old), "trust-list-bad-signature"),
        ((_entry_unsigned, _rolled_back, _too_old), "trust-list-entry-unsigned"),
        ((_rolled_back, _too_old), "trust-list-rollback"),
        ((_too_old,), "trust-list-too-old"),
    ],
)
def test_a_list_with_several_faults_is_refused_for_the_first_in_the_documented_order(
    anchor: Ed25519PrivateKey, faults: tuple[Callable[[dict[str, Any]], None], ...], first: str
) -> None:
    held = signed_list(anchor, list_payload(seq=4))
    payload = list_payload()
    for fault in faults:
        fault(payload)
    signer = Ed25519PrivateKey.generate() if first == "trust-list-bad-signature" else anchor
    with pytest.raises(TrustListRefused) as refused:
        check(signed_list(signer, payload), anchor, held=(4, held))
    assert refused.value.type == first
