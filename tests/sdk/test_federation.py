"""Visitors from partner cities at a desk: the SDK checks their codes offline against a trust list it
verified itself (docs/FEDERATION.md), against the mock federation. Every refusal below comes from a
real forged, tampered, rolled-back or over-age list, or a real code; the assertions are what a desk
sees: the reason, the city named, whether the last good list kept serving, how often it downloaded."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from citycredit_partner import (
    CodeRejectedError,
    Issuer,
    PartnerClient,
    ScenarioUnavailableError,
    ServerError,
    TrustListError,
    jwk_thumbprint,
    public_jwk,
    verify_trust_list,
)
from citycredit_partner.cli import main as verify_command
from citycredit_partner.testing import MockCity, MockFederation

LIBRARY = "library-deposit-free"  # common tier 3 or better


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The caches' monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    yield now


@pytest.fixture
def federation() -> MockFederation:
    # 420200 黄石市 (0–1000 scale, six tiers), 420100 武汉市 (AAA–D), 420500 宜昌市 (0–1000 scale)
    return MockFederation(3)


def desk_of(federation: MockFederation, issuer: str = "420200", **options: object) -> PartnerClient:
    return federation.client(issuer, max_retries=0, **options)


def list_reads(city: MockCity) -> int:
    return sum(r.url.path == "/api/v1/federation/trust-list" for r in city.requests)


def refusal(desk: PartnerClient, code: str, **kwargs: object) -> CodeRejectedError:
    with pytest.raises(CodeRejectedError) as refused:
        desk.verify_offline(code, **kwargs)  # type: ignore[arg-type]
    return refused.value


def tamper(token: str, **changes: object) -> str:
    """The payload changed, the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    changed = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode()).rstrip(b"=")
    return f"{header}.{changed.decode()}.{signature}"


# --- visitors verified -------------------------------------------------------------------------


def test_a_visitor_is_verified_at_the_common_level_of_its_own_citys_tier_table(
    federation: MockFederation,
) -> None:
    home, wuhan, _ = federation.cities
    with desk_of(federation) as desk:
        # "A" is 4 on Huangshi's 0–1000 scale and 3 on Wuhan's AAA–D table.
        local = desk.verify_offline(home.issue_code(local_tier="A"))
        visitor = desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*"))
        named = desk.verify_offline(wuhan.issue_code(local_tier="AAA", cross_city=["420200"]))
    assert (local.visitor, local.tier_level, local.local_tier) == (False, 4, "A")
    assert (local.issuer, local.issuer_name_zh) == ("420200", "黄石市")
    assert (visitor.visitor, visitor.issuer, visitor.tier_level) == (True, "420100", 3)
    assert (visitor.issuer_name_zh, visitor.issuer_name_en) == ("武汉市", "Wuhan")
    assert visitor.local_tier is None  # the venue never learns Wuhan's local tier
    assert visitor.qualifies(3) and not visitor.qualifies(4)
    assert named.tier_level == 5


def test_the_online_answer_for_a_visitor_names_the_issuing_city(
    federation: MockFederation,
) -> None:
    home, wuhan, _ = federation.cities
    with desk_of(federation) as desk:
        visitor = desk.verify(wuhan.issue_code(local_tier="A", cross_city="*"), LIBRARY)
        local = desk.verify(home.issue_code(local_tier="E"), LIBRARY)
    assert visitor.visitor and visitor.eligible and visitor.tier.level == 3
    assert visitor.issuer == Issuer("420100", "武汉市", "Wuhan")
    assert not local.visitor and not local.eligible
    assert local.issuer == Issuer("420200", "黄石市", "Huangshi")
    home.closed_to_visitors.add(LIBRARY)
    with desk_of(federation) as desk, pytest.raises(ScenarioUnavailableError) as closed:
        desk.verify(wuhan.issue_code(local_tier="A", cross_city="*"), LIBRARY)
    assert "visitors" in closed.value.detail


def test_the_command_line_says_which_city_issued_the_code(
    federation: MockFederation, capsys: pytest.CaptureFixture[str]
) -> None:
    home, wuhan = federation.cities[:2]
    transport = home.transport()
    anchor = ["--trust-anchor", federation.fingerprint]
    visitor = wuhan.issue_code(local_tier="AA", cross_city="*")
    assert verify_command(["--offline", *anchor, visitor], transport=transport) == 0
    line = capsys.readouterr().out
    assert "武汉市 / Wuhan (420100)" in line and "visitor" in line and "level 4" in line
    assert "AA" not in line  # no local tier of another city
    assert (
        verify_command(["--offline", *anchor, home.issue_code(local_tier="S")], transport=transport)
        == 0
    )
    line = capsys.readouterr().out
    assert "黄石市 (420200)" in line and "visitor" not in line and "(S)" in line
    refused = wuhan.issue_code(local_tier="AA")  # no cross-city consent
    assert verify_command(["--offline", *anchor, refused], transport=transport) == 2
    assert "no-cross-city-consent" in capsys.readouterr().err


def test_the_anchor_is_read_once_from_the_discovery_document_when_not_pinned(
    federation: MockFederation,
) -> None:
    home, wuhan = federation.cities[:2]
    with desk_of(federation, trust_anchor=None) as desk:
        for _ in range(3):
            assert desk.verify_offline(wuhan.issue_code(local_tier="B", cross_city="*")).visitor
    discovery = [r for r in home.requests if r.url.path.endswith("citycredit-configuration")]
    assert len(discovery) == 1 and list_reads(home) == 1


def test_without_a_trust_anchor_other_cities_codes_are_wrong_issuer_and_local_ones_verify() -> None:
    city, elsewhere = MockCity(issuer="420200"), MockCity(issuer="420100")
    with PartnerClient("cc", "s", "https://city.test", transport=city.transport()) as desk:
        refused = refusal(desk, elsewhere.issue_code(tier_level=4, cross_city="*"))
        assert desk.verify_offline(city.issue_code(tier_level=4)).tier_level == 4
    # As the city answers online when it holds no trust list: only its own codes count.
    assert refused.reason == "wrong-issuer"
    assert "no trust list is configured" in refused.detail
    assert list_reads(city) == 0


# --- visitors refused ----------------------------------------------------------------------------


def test_each_refusal_of_a_visitors_code(federation: MockFederation, clock: list[float]) -> None:
    home, wuhan, yichang = federation.cities
    stranger = MockCity(issuer="429004", tiers=[], name_zh="仙桃市")  # not a member
    impostor = MockCity(issuer="420100")  # Wuhan's issuer code, a key Wuhan never published
    now = dt.datetime.now(dt.UTC)
    with desk_of(federation) as desk:
        cases = {
            "issuer-not-member": stranger.issue_code(tier_level=5, cross_city="*"),
            "unknown-key": impostor.issue_code(tier_level=5, cross_city="*"),
            "bad-signature": tamper(
                wuhan.issue_code(local_tier="C", cross_city="*"), ct=5, lt="AAA"
            ),
            "token-expired": wuhan.issue_code(
                local_tier="A", cross_city="*", now=now - dt.timedelta(minutes=10)
            ),
            "mapping-unknown": wuhan.issue_code(local_tier="A", cross_city="*", mapping_version=2),
            "token-malformed": wuhan.issue_code(tier_level=5, local_tier="A", cross_city="*"),
            "no-cross-city-consent": wuhan.issue_code(local_tier="A"),
        }
        seen = {reason: refusal(desk, code).reason for reason, code in cases.items()}
        assert seen == {reason: reason for reason in cases}
        # A lifetime beyond 120 s is refused like an expired code.
        assert (
            refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*", lifetime=600)).reason
            == "token-expired"
        )
        # Consent for other cities only is no consent here.
        only_yichang = wuhan.issue_code(local_tier="A", cross_city=[yichang.issuer])
        assert refusal(desk, only_yichang).reason == "no-cross-city-consent"
        # Suspended, then left: known once the desk reads the list again (here: on the unknown issuer
        # a stranger's code presents, at most once a minute).
        federation.suspend(wuhan.issuer)
        clock[0] += 61
        refusal(desk, stranger.issue_code(tier_level=5, cross_city="*"))
        suspended = refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*"))
        assert suspended.reason == "member-suspended" and "武汉市" in suspended.detail
        federation.leave(yichang.issuer)
        clock[0] += 61
        refusal(desk, stranger.issue_code(tier_level=5, cross_city="*"))
        gone = refusal(desk, yichang.issue_code(local_tier="S", cross_city="*"))
        assert gone.reason == "issuer-not-member" and "420500" in gone.detail
        # The desk's own codes never depend on the list.
        assert desk.verify_offline(home.issue_code(local_tier="S")).tier_level == 5


def test_a_retired_key_verifies_until_its_last_code_expires(
    federation: MockFederation, clock: list[float]
) -> None:
    wuhan = federation.cities[1]
    old_kid = wuhan.kid
    federation.rotate_key(wuhan.issuer)
    with desk_of(federation) as desk:
        assert desk.verify_offline(
            wuhan.issue_code(local_tier="A", cross_city="*", key_id=old_kid)
        ).visitor
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        late = wuhan.issue_code(local_tier="A", cross_city="*", key_id=old_kid, now=later)
        refused = refusal(desk, late, now=later)
    assert refused.reason == "unknown-key"


def test_a_suspension_reaches_the_desk_when_it_rereads_the_list(
    federation: MockFederation, clock: list[float]
) -> None:
    wuhan = federation.cities[1]
    with desk_of(federation) as desk:
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor
        federation.suspend(wuhan.issuer)
        clock[0] += 3600  # well within max_age / 4: the desk has no reason to re-read
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor
        clock[0] += desk.trust_list.refresh_after
        assert (
            refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*")).reason
            == "member-suspended"
        )
    assert list_reads(federation.cities[0]) == 2


# --- lists refused -----------------------------------------------------------------------------


def test_a_forged_list_is_refused_and_no_visitor_is_recognised(federation: MockFederation) -> None:
    wuhan = federation.cities[1]
    federation.publish_forged()
    with desk_of(federation) as desk:
        refused = refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*"))
        assert refused.reason == "trust-list-bad-signature"
        assert desk.trust_list.held is None
    with pytest.raises(TrustListError) as forged:
        verify_trust_list(federation.served, anchor=federation.fingerprint)
    assert "pinned" in forged.value.detail


def test_a_tampered_list_is_refused(federation: MockFederation) -> None:
    wuhan = federation.cities[1]
    genuine = federation.suspend(wuhan.issuer)
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    for member in claims["members"]:
        member["status"] = "active"  # reinstated by whoever sits between the desk and the city
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    federation.serve(f"{header}.{changed}.{signature}")
    with desk_of(federation) as desk:
        refused = refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*"))
    assert refused.reason == "trust-list-bad-signature"


def test_a_desk_pinning_another_anchor_refuses_the_citys_list(federation: MockFederation) -> None:
    other = jwk_thumbprint(public_jwk(Ed25519PrivateKey.generate()))
    with desk_of(federation, trust_anchor=other) as desk:
        refused = refusal(desk, federation.cities[1].issue_code(local_tier="A", cross_city="*"))
    assert refused.reason == "trust-list-bad-signature" and other in refused.detail


def test_a_list_with_an_entry_its_member_did_not_sign_is_refused_whole(
    federation: MockFederation,
) -> None:
    wuhan, yichang = federation.cities[1:]
    federation.publish_with_unsigned_entry(yichang.issuer)
    with pytest.raises(TrustListError) as unsigned:
        verify_trust_list(federation.served, anchor=federation.fingerprint)
    assert (
        unsigned.value.reason == "trust-list-entry-unsigned" and "420500" in unsigned.value.detail
    )
    # Wuhan's own entry is fine, yet none of the list is used.
    with desk_of(federation) as desk:
        refused = refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*"))
    assert refused.reason == "trust-list-entry-unsigned"


def test_an_entry_listed_under_another_issuer_is_refused(federation: MockFederation) -> None:
    yichang = federation.cities[2]
    members = federation.members()
    # Wuhan's genuine entry and key, listed as Yichang: every signature verifies, the issuer does not.
    members[2] = {**members[1], "issuer": yichang.issuer}
    token = federation.sign_list(seq=federation.seq + 1, members=members)
    with pytest.raises(TrustListError) as swapped:
        verify_trust_list(token, anchor=federation.fingerprint)
    assert swapped.value.reason == "trust-list-entry-unsigned"
    assert "issued by '420100'" in swapped.value.detail


def test_a_rolled_back_list_is_refused_and_the_held_one_keeps_serving(
    federation: MockFederation, clock: list[float]
) -> None:
    wuhan = federation.cities[1]
    federation.suspend(wuhan.issuer)  # seq 2: Wuhan suspended
    with desk_of(federation) as desk:
        code = wuhan.issue_code(local_tier="A", cross_city="*")
        assert refusal(desk, code).reason == "member-suspended"
        federation.publish_rolled_back()  # seq 1, genuinely signed, Wuhan still active in it
        clock[0] += desk.trust_list.refresh_after
        assert refusal(desk, code).reason == "member-suspended"
        assert isinstance(desk.trust_list.last_error, TrustListError)
        assert desk.trust_list.last_error.reason == "trust-list-rollback"
        assert desk.trust_list.held is not None and desk.trust_list.held.seq == 2
        # The same sequence number with other content is refused the same way.
        held = desk.trust_list.held
        federation.status[wuhan.issuer] = "active"
        same_seq = federation.sign_list(seq=held.seq)
        with pytest.raises(TrustListError) as rewritten:
            verify_trust_list(same_seq, anchor=federation.fingerprint, held=held)
        assert rewritten.value.reason == "trust-list-rollback"
        assert verify_trust_list(held.token, anchor=federation.fingerprint, held=held).seq == 2


def test_an_over_age_list_is_refused(federation: MockFederation) -> None:
    wuhan = federation.cities[1]
    federation.publish_over_age()
    with desk_of(federation) as desk:
        refused = refusal(desk, wuhan.issue_code(local_tier="A", cross_city="*"))
        local = desk.verify_offline(federation.cities[0].issue_code(local_tier="B"))
        assert desk.trust_list.held is None  # refused, not kept
    assert refused.reason == "trust-list-too-old"
    assert local.tier_level == 3  # local codes are unaffected
    with pytest.raises(TrustListError) as too_old:
        verify_trust_list(federation.served, anchor=federation.fingerprint)
    assert too_old.value.reason == "trust-list-too-old"
    # Within its age, the same kind of list is accepted.
    federation.publish_over_age(federation.max_age - 60)
    assert verify_trust_list(federation.served, anchor=federation.fingerprint).seq == federation.seq


# --- the cache: refreshes bounded, outages survived ---------------------------------------------


def test_an_unknown_kid_after_a_rotation_triggers_one_refresh_then_verifies(
    federation: MockFederation, clock: list[float]
) -> None:
    home, wuhan = federation.cities[:2]
    with desk_of(federation) as desk:
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor
        federation.rotate_key(wuhan.issuer)
        clock[0] += 61
        for _ in range(3):
            fresh = desk.verify_offline(wuhan.issue_code(local_tier="AA", cross_city="*"))
            assert fresh.kid == wuhan.kid and fresh.tier_level == 4
    assert list_reads(home) == 2


def test_made_up_kids_and_issuers_cost_one_read_per_interval(
    federation: MockFederation, clock: list[float]
) -> None:
    home, wuhan = federation.cities[:2]
    with desk_of(federation) as desk:
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor
        for round_ in range(2):
            clock[0] += 61
            for n in range(50):
                made_up = MockCity(issuer="420100" if n % 2 else f"49{n:04d}")
                reason = refusal(desk, made_up.issue_code(tier_level=5, cross_city="*")).reason
                assert reason in {"unknown-key", "issuer-not-member"}
            assert list_reads(home) == 2 + round_
        # A genuine visitor is still served from the cache, without a download.
        assert desk.verify_offline(wuhan.issue_code(local_tier="B", cross_city="*")).visitor
    assert list_reads(home) == 3


def test_a_coordinator_outage_keeps_the_last_good_list_until_its_max_age(
    clock: list[float],
) -> None:
    max_age = 600  # a short max age, so that "later" is minutes, not days
    federation = MockFederation(2, max_age=max_age)
    home, wuhan = federation.cities
    signed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=400)
    federation.publish(now=signed)
    with desk_of(federation, trust_list_max_age=max_age) as desk:
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor
        federation.outage = True
        clock[0] += 61
        later = signed + dt.timedelta(seconds=max_age - 30)
        kept = desk.verify_offline(
            wuhan.issue_code(local_tier="A", cross_city="*", now=later), now=later
        )
        assert kept.visitor and kept.tier_level == 3
        assert list_reads(home) == 2  # it tried, the city answered 503, the old list served
        assert desk.trust_list.last_error is not None
        beyond = signed + dt.timedelta(seconds=max_age + 30)
        clock[0] += 61
        stale = refusal(
            desk, wuhan.issue_code(local_tier="A", cross_city="*", now=beyond), now=beyond
        )
        assert stale.reason == "trust-list-too-old"
        assert desk.verify_offline(home.issue_code(local_tier="A")).tier_level == 4
        # The coordinator is back and signs a fresh list: visitors are recognised again.
        federation.outage = False
        federation.publish()
        clock[0] += 61
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor


# --- the building blocks -------------------------------------------------------------------------


def test_the_jwk_thumbprint_is_rfc_7638s() -> None:
    # RFC 8037, appendix A.3: the thumbprint of the Ed25519 example key.
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk_thumbprint({**jwk, "kid": "x", "use": "sig"}) == jwk_thumbprint(jwk)


def test_a_list_verifies_with_the_anchor_pinned_as_a_full_key(federation: MockFederation) -> None:
    listing = verify_trust_list(federation.served, anchor=federation.anchor_jwk)
    assert sorted(listing.members) == ["420100", "420200", "420500"]
    wuhan = listing.members["420100"]
    assert (wuhan.name_zh, wuhan.status, wuhan.current_mapping) == ("武汉市", "active", 3)
    assert wuhan.mappings[3].tiers["A"].common_level == 3
    assert listing.members["420200"].mappings[7].tiers["A"].common_level == 4
    # The header's key is not needed then, nor trusted: a list without one verifies all the same.
    header, payload, _ = federation.served.split(".")
    plain = json.loads(base64.urlsafe_b64decode(header + "=="))
    del plain["jwk"]
    bare = jwt.encode(
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        federation.anchor_key,
        algorithm="EdDSA",
        headers={k: v for k, v in plain.items() if k != "alg"},
    )
    assert verify_trust_list(bare, anchor=federation.anchor_jwk).seq == listing.seq
    with pytest.raises(TrustListError) as keyless:
        verify_trust_list(bare, anchor=federation.fingerprint)
    assert keyless.value.reason == "trust-list-bad-signature"


# --- the kept list ---------------------------------------------------------------------------------


def test_a_desk_restarted_offline_recognises_visitors_from_the_list_it_kept(
    federation: MockFederation, tmp_path: Path
) -> None:
    _, wuhan, _ = federation.cities
    kept = tmp_path / "trust-list.jws"
    with desk_of(federation, trust_list_path=kept) as desk:
        assert desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*")).visitor
    assert kept.read_text().count(".") == 2  # the JWS as received
    federation.outage = True  # the desk restarts where the city cannot be reached
    with desk_of(federation, trust_list_path=kept) as desk:
        visitor = desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*"))
        assert visitor.issuer == "420100" and visitor.tier_level == 3


def test_a_kept_list_is_a_floor_against_rollback_across_restarts(
    federation: MockFederation, tmp_path: Path
) -> None:
    kept = tmp_path / "trust-list.jws"
    federation.publish()
    with desk_of(federation, trust_list_path=kept) as desk:
        desk.trust_list.refresh()
        newest = desk.trust_list.held
        assert newest is not None
    federation.publish_rolled_back()  # every city now serves the list before
    with desk_of(federation, trust_list_path=kept) as desk:
        with pytest.raises(TrustListError) as refused:
            desk.trust_list.refresh()
        assert refused.value.reason == "trust-list-rollback"
        assert desk.trust_list.held is not None and desk.trust_list.held.seq == newest.seq


def test_a_tampered_kept_list_is_ignored(federation: MockFederation, tmp_path: Path) -> None:
    _, wuhan, _ = federation.cities
    kept = tmp_path / "trust-list.jws"
    with desk_of(federation, trust_list_path=kept) as desk:
        desk.trust_list.refresh()
    header, payload, signature = kept.read_text().split(".")
    kept.write_text(f"{header}.{payload[:-4]}AAAA.{signature}")
    federation.outage = True
    with desk_of(federation, trust_list_path=kept) as desk:
        # Not trusted from the file: with the city out of reach there is no list to check against.
        with pytest.raises(ServerError):
            desk.verify_offline(wuhan.issue_code(local_tier="A", cross_city="*"))
        assert desk.trust_list.held is None
