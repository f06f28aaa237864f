"""Ten-city mutual recognition on loopback: a coordinator and three member cities, each its own
gunicorn process and database (one on PostgreSQL when it is available), with different tier tables.

A Huangshi citizen's code is verified and redeemed at a Sanya desk, online (Sanya asks Huangshi for
the visitor's pairwise pseudonym) and offline (the SDK and a signature-checked trust list); quotas
hold per visitor; partner cities get unlinkable pseudonyms; consent is per partner city; and the trust
list's refusals, key rotation, suspension, leaving and a coordinator outage behave as documented.
The tests share one federation and run in file order (the last ones change membership).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.cli.cluster import CitySpec, Cluster, Deployment
from citycredit.core.clients import register_client
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.idnumber import parse_id_number
from citycredit.core.keys import create_signing_key
from citycredit_partner import (
    APIStatusError,
    CodeRejectedError,
    PartnerClient,
    QuotaExhaustedError,
)
from credit_codes import consent
from credit_codes.models import Visitor
from federation import jws, operations
from federation.models import HeldTrustList, PartnerQuestion
from points_engine import operations as engine
from points_engine.queries import find_citizen
from scenarios.demo import ensure_demo_scenarios
from scenarios.models import Scenario, ScenarioVersion
from tests import factories
from tests.databases import ScratchDatabase, postgresql_unavailable
from tests.rule_cases import ITEMISED

LIBRARY = "library-deposit-free"  # common level ≥ 3, once a day per person
BUS = "bus-fare-discount"  # common level ≥ 4
HUANGSHI, SANYA, HAIKOU = "420200", "460200", "460100"

# Sanya scores on a six-tier 0–1000 scale; Huangshi uses the AA…D table of tests.rule_cases.
SIX_TIER = """
name: sanya-six-tier
kind: itemised
title: {zh: 三亚六级, en: Sanya six tiers}
base_score: 600
score_range: {min: 0, max: 1000}
validity:
  - {max_abs_points: 500, days: 730}
dimensions:
  - {code: good, name: {zh: 好, en: Good}, cap: {max: 300}}
  - {code: bad, name: {zh: 差, en: Bad}, cap: {min: -600}}
tiers:
  - {code: S1, name: {zh: 极好, en: Top}, min_score: 900, common_tier: 5}
  - {code: S2, name: {zh: 优秀, en: Very good}, min_score: 750, common_tier: 4}
  - {code: S3, name: {zh: 良好, en: Good}, min_score: 600, common_tier: 3}
  - {code: S4, name: {zh: 一般, en: Fair}, min_score: 450, common_tier: 2}
  - {code: S5, name: {zh: 较差, en: Poor}, min_score: 300, common_tier: 1}
  - {code: S6, name: {zh: 差, en: Bad}, min_score: 0, common_tier: 1}
items:
  - {code: AWARD, name: {zh: 奖, en: Award}, dimension: good, catalogue_category: 行政奖励信息,
     legal_basis: 测试依据第一条, points: 200}
  - {code: FINE, name: {zh: 罚, en: Fine}, dimension: bad, catalogue_category: 行政处罚信息,
     legal_basis: 测试依据第二条, points: -200}
"""


def _seeder(model: str, people: dict[str, list[str]]) -> Callable[[Session, Settings], Any]:
    def seed(session: Session, settings: Settings) -> dict[str, Any]:
        factories.source(session, "court")
        factories.published(session, model)
        ensure_demo_scenarios(session)
        # The operators open these benefits to partner cities' visitors.
        for code in (LIBRARY, BUS):
            scenario_id = session.scalar(select(Scenario.id).where(Scenario.code == code))
            for version in session.scalars(
                select(ScenarioVersion).where(ScenarioVersion.scenario_id == scenario_id)
            ):
                version.open_to_visitors = True
        numbers = {}
        today = dt.datetime.now(settings.tz).date()
        for label, items in people.items():
            number = factories.id_number()
            person = engine.get_or_create_citizen(
                session, settings.id_hash_key, parse_id_number(number)
            )
            for item in items:
                factories.record(session, person, item, "2026-06-01")
            engine.give_consent(session, person, channel="test", as_of=today)
            numbers[label] = number
        creds = {}
        for role, kind, scopes in (
            ("venue", "venue", ["verify", "redeem"]),
            ("app", "app", ["codes:issue"]),
            ("services", "city", ["tiers:exchange"]),
        ):
            issued = register_client(
                session, name=role, kind=kind, scopes=scopes, key_secret=settings.key_secret
            )
            creds[role] = (issued.client.client_id, issued.secret)
        return {"people": numbers, "clients": creds}

    return seed


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("federation")
    pg = None
    if postgresql_unavailable() is None:
        pg = ScratchDatabase("postgresql", base)
    cities = [
        CitySpec(
            HUANGSHI,
            "黄石市",
            "Huangshi",
            database_url=pg.url if pg else "",
            seed=_seeder(ITEMISED, {"traveller": ["AWARD"], "stayer": ["AWARD"], "fair": []}),
        ),
        CitySpec(
            SANYA, "三亚市", "Sanya", seed=_seeder(SIX_TIER, {"local": [], "star": ["AWARD"]})
        ),
        CitySpec(HAIKOU, "海口市", "Haikou", seed=_seeder(ITEMISED, {"resident": ["AWARD"]})),
    ]
    cluster = Cluster(base, cities, max_age=3600)
    try:
        with cluster:
            yield cluster
    finally:
        if pg is not None:
            pg.drop()


def person(city: Deployment, label: str) -> str:
    number: str = city.seeded["people"][label]
    return number


def share(city: Deployment, label: str, partner: str, *, withdraw: bool = False) -> None:
    with city.session() as session:
        citizen = find_citizen(
            session, city.settings.id_hash_key, parse_id_number(person(city, label))
        )
        assert citizen is not None
        if withdraw:
            consent.withdraw(session, citizen, partner, actor="test")
        else:
            consent.give(session, citizen, partner, channel="test", actor="test")


_APP_TOKENS: dict[str, tuple[float, str]] = {}


def app_token(city: Deployment) -> str:
    """The city app's access token, reused while it lasts, as a real app does.

    Fetching one per code ran into the token endpoint's limit of 30 a minute per client when a test
    polled with ``eventually`` on a slow machine (CI: a 429 where a token was expected).
    """
    client_id, secret = city.seeded["clients"]["app"]
    held = _APP_TOKENS.get(city.url + " " + client_id)
    if held is not None and time.monotonic() < held[0]:
        return held[1]
    response = httpx.post(
        city.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    token: str = body["access_token"]
    _APP_TOKENS[city.url + " " + client_id] = (time.monotonic() + body["expires_in"] - 60, token)
    return token


def code_of(city: Deployment, label: str) -> str:
    token = app_token(city)
    response = httpx.post(
        city.url + "/api/v1/credit-codes",
        json={"id_number": person(city, label)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    code: str = response.json()["token"]
    return code


def desk(fed: Cluster, city: Deployment) -> PartnerClient:
    client_id, secret = city.seeded["clients"]["venue"]
    return PartnerClient(
        client_id, secret, city.url, trust_anchor=fed.anchor, max_retries=0, jwks_refresh_interval=0
    )


def visitors_of(city: Deployment) -> list[tuple[str, str]]:
    with city.session() as session:
        return [
            (v.issuer, v.pseudonym) for v in session.scalars(select(Visitor).order_by(Visitor.id))
        ]


def eventually(check: Callable[[], Any], *, seconds: float = 8.0) -> Any:
    """Workers re-read the held trust list every few seconds: wait for a sync to reach them."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except (AssertionError, CodeRejectedError, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --- recognition -----------------------------------------------------------------------------------


def test_a_visitor_is_recognised_online_and_redeems_within_their_own_quota(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "traveller", "*")
    first, second = code_of(huangshi, "traveller"), code_of(huangshi, "traveller")
    with desk(fed, sanya) as sanya_desk:
        result = sanya_desk.verify(first, LIBRARY)
        assert result.eligible and result.visitor
        assert result.tier.level == 4  # Huangshi's AA is common level 4
        assert result.issuer is not None and result.issuer.code == HUANGSHI
        assert result.issuer.name_zh == "黄石市"
        sanya_desk.redeem(first, LIBRARY)
        # Another code of the same person: the same pseudonym, so the daily quota of one holds.
        with pytest.raises(QuotaExhaustedError):
            sanya_desk.redeem(second, LIBRARY)
    visitors = visitors_of(sanya)
    assert len(visitors) == 1 and visitors[0][0] == HUANGSHI
    # Huangshi recorded Sanya's questions: what the citizen sees as "Sanya checked my code".
    with huangshi.session() as session:
        asked = session.scalars(select(PartnerQuestion).where(PartnerQuestion.asker == SANYA)).all()
        assert {q.purpose for q in asked} == {"verification", "redemption"}
        assert all(q.citizen_id is not None and q.category for q in asked)


def test_the_venue_learns_only_the_common_level_and_the_city(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "traveller", "*")
    code = code_of(huangshi, "traveller")
    client_id, secret = sanya.seeded["clients"]["venue"]
    access = httpx.post(
        sanya.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    ).json()["access_token"]
    body = httpx.post(
        sanya.url + "/api/v1/verifications",
        json={"token": code, "scenario": BUS},
        headers={"Authorization": f"Bearer {access}"},
    ).json()
    assert set(body) == {
        "verification_id", "eligible", "tier", "scenario", "scenario_version", "benefit",
        "verified_at", "visitor", "issuer",
    }  # fmt: skip
    assert body["tier"] == {"level": 4, "name_zh": "优秀", "name_en": "Very good"}
    assert body["issuer"] == {"code": HUANGSHI, "name_zh": "黄石市", "name_en": "Huangshi"}
    text = json.dumps(body, ensure_ascii=False)
    assert person(huangshi, "traveller") not in text
    assert (
        "AA" not in text and "1010" not in text and "score" not in text
    )  # no local tier, no score


def test_offline_the_desk_checks_a_visitor_against_the_signed_trust_list(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "traveller", "*")
    with desk(fed, sanya) as sanya_desk:
        result = sanya_desk.verify_offline(code_of(huangshi, "traveller"))
        assert result.visitor and result.issuer == HUANGSHI and result.tier_level == 4
        assert result.issuer_name_zh == "黄石市" and result.local_tier is None
        # Its own city's code takes the usual path.
        local = sanya_desk.verify_offline(code_of(sanya, "local"))
        assert not local.visitor and local.tier_level == 3


def test_tiers_map_through_each_citys_own_table(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(sanya, "star", HUANGSHI)  # Sanya's 优秀 (800 on its 0–1000 scale) is common level 4
    share(sanya, "local", HUANGSHI)  # 良好 (600) is common level 3
    with desk(fed, huangshi) as huangshi_desk:
        star = huangshi_desk.verify(code_of(sanya, "star"), BUS)
        assert (star.eligible, star.tier.level) == (True, 4)
        local = huangshi_desk.verify(code_of(sanya, "local"), BUS)
        assert (local.eligible, local.tier.level) == (False, 3)
        assert huangshi_desk.verify(code_of(sanya, "local"), LIBRARY).eligible
    claims = jwt.decode(code_of(sanya, "star"), options={"verify_signature": False})
    assert claims["lt"] == "S2" and claims["ct"] == 4 and claims["xc"] == [HUANGSHI]


def test_two_asking_cities_get_unlinkable_pseudonyms(fed: Cluster) -> None:
    huangshi, sanya, haikou = fed.city(HUANGSHI), fed.city(SANYA), fed.city(HAIKOU)
    share(huangshi, "traveller", "*")
    with desk(fed, sanya) as sanya_desk, desk(fed, haikou) as haikou_desk:
        sanya_desk.verify(code_of(huangshi, "traveller"), BUS)
        sanya_desk.verify(code_of(huangshi, "traveller"), BUS)
        haikou_desk.verify(code_of(huangshi, "traveller"), BUS)
    at_sanya = {p for issuer, p in visitors_of(sanya) if issuer == HUANGSHI}
    at_haikou = {p for issuer, p in visitors_of(haikou) if issuer == HUANGSHI}
    assert len(at_sanya) == 1 and len(at_haikou) == 1  # stable within a city
    assert at_sanya.isdisjoint(at_haikou)  # unlinkable across cities


def test_consent_is_per_partner_city_and_withdrawal_stops_everything(fed: Cluster) -> None:
    huangshi, sanya, haikou = fed.city(HUANGSHI), fed.city(SANYA), fed.city(HAIKOU)
    share(huangshi, "stayer", HAIKOU)
    only_haikou = code_of(huangshi, "stayer")
    with desk(fed, sanya) as sanya_desk, desk(fed, haikou) as haikou_desk:
        for check in (
            lambda: sanya_desk.verify(only_haikou, BUS),
            lambda: sanya_desk.verify_offline(only_haikou),
        ):
            with pytest.raises(CodeRejectedError) as refused:
                check()
            assert refused.value.reason == "no-cross-city-consent"
        assert haikou_desk.verify(only_haikou, BUS).eligible
        share(huangshi, "stayer", "*", withdraw=True)
        fresh = code_of(huangshi, "stayer")
        assert "xc" not in jwt.decode(fresh, options={"verify_signature": False})
        with pytest.raises(CodeRejectedError) as refused:
            haikou_desk.verify(fresh, BUS)
        assert refused.value.reason == "no-cross-city-consent"
        # A code issued before the withdrawal: the issuing city refuses the server-to-server question.
        with pytest.raises(CodeRejectedError) as refused:
            haikou_desk.verify(only_haikou, BUS)
        assert refused.value.reason == "no-cross-city-consent"


def test_tier_exchange_without_a_code_needs_consent_and_reveals_nothing_else(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    client_id, secret = sanya.seeded["clients"]["services"]
    access = httpx.post(
        sanya.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    ).json()["access_token"]

    def ask(number: str) -> httpx.Response:
        return httpx.post(
            sanya.url + "/api/v1/partner-tiers",
            json={
                "issuer": HUANGSHI,
                "id_number": number,
                "reason": "租房押金减免 / deposit waiver",
            },
            headers={"Authorization": f"Bearer {access}"},
        )

    share(huangshi, "fair", SANYA)
    answered = ask(person(huangshi, "fair"))
    assert answered.status_code == 200, answered.text
    assert set(answered.json()) == {"issuer", "pseudonym", "level", "valid_until"}
    assert answered.json()["level"] == 3
    share(huangshi, "fair", SANYA, withdraw=True)
    refused = ask(person(huangshi, "fair"))
    unknown = ask(factories.id_number())
    # Withdrawn consent and a stranger answer alike: the asking city learns nothing more.
    assert refused.status_code == unknown.status_code == 403
    assert refused.json()["type"] == unknown.json()["type"] == "/problems/not-shared"
    with huangshi.session() as session:
        reasons = session.scalars(
            select(PartnerQuestion.reason).where(PartnerQuestion.purpose == "tier-request")
        ).all()
        assert "租房押金减免 / deposit waiver" in reasons


# --- the trust list -------------------------------------------------------------------------------


def _anchor_signed(fed: Cluster, mutate: Callable[[dict[str, Any]], None]) -> str:
    """The coordinator's current list, changed and re-signed with the real anchor key."""
    coord = fed.coordinator
    from federation import keys as fed_keys
    from federation.coordinator import latest_published

    with coord.session() as session:
        published = latest_published(session)
        assert published is not None
        payload = jws.unverified_payload(published.document)
        mutate(payload)
        _, anchor = fed_keys.private_key(session, coord.settings.key_secret, "anchor")
        return jws.sign(payload, anchor, typ=jws.TYP_TRUST_LIST, with_key=True)


def _sync_with(city: Deployment, document: str) -> str:
    with city.session() as session:
        try:
            operations.sync_trust_list(
                session, city.settings, fetch=lambda _url: {"trust_list": document}
            )
        except operations.SyncFailed as exc:
            return exc.type
    return "accepted"


def test_forged_unsigned_rolled_back_and_over_age_lists_are_refused(fed: Cluster) -> None:
    sanya = fed.city(SANYA)
    with sanya.session() as session:
        held = session.scalar(select(HeldTrustList).order_by(HeldTrustList.seq.desc()).limit(1))
        assert held is not None
        held_seq = held.seq

    forger = Ed25519PrivateKey.generate()
    forged = jws.sign(
        jws.unverified_payload(held.document) | {"seq": held_seq + 10},
        forger,
        typ=jws.TYP_TRUST_LIST,
        with_key=True,
    )
    assert _sync_with(sanya, forged) == "trust-list-bad-signature"

    def swap_entry(payload: dict[str, Any]) -> None:
        payload["seq"] += 10
        haikou = next(m for m in payload["members"] if m["issuer"] == HAIKOU)
        huangshi = next(m for m in payload["members"] if m["issuer"] == HUANGSHI)
        haikou["entry"] = huangshi["entry"]  # Huangshi's signed entry passed off as Haikou's

    assert _sync_with(sanya, _anchor_signed(fed, swap_entry)) == "trust-list-entry-unsigned"

    def roll_back(payload: dict[str, Any]) -> None:
        payload["seq"] = held_seq - 1

    assert _sync_with(sanya, _anchor_signed(fed, roll_back)) == "trust-list-rollback"

    def age(payload: dict[str, Any]) -> None:
        payload["seq"] += 10
        payload["iat"] = int((utcnow() - dt.timedelta(hours=2)).timestamp())

    assert _sync_with(sanya, _anchor_signed(fed, age)) == "trust-list-too-old"
    with sanya.session() as session:  # the last good list still serves
        assert (
            session.scalar(select(HeldTrustList.seq).order_by(HeldTrustList.seq.desc())) == held_seq
        )


def test_a_held_list_past_its_maximum_age_stops_visitors_but_not_locals(fed: Cluster) -> None:
    from federation.visitors import open_visitor_code

    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "traveller", "*")
    code = code_of(huangshi, "traveller")
    later = utcnow() + dt.timedelta(seconds=fed.max_age + 60)
    with sanya.session() as session:
        operations.forget_cached_list()
        with pytest.raises(Exception) as refused:
            open_visitor_code(session, sanya.settings, code, HUANGSHI, now=later)
        assert getattr(refused.value, "type", None) == "trust-list-too-old"


def test_a_key_rotation_is_accepted_after_one_sync(fed: Cluster) -> None:
    haikou, sanya = fed.city(HAIKOU), fed.city(SANYA)
    share(haikou, "resident", "*")
    with haikou.session() as session:
        create_signing_key(session, haikou.settings.key_secret)
    rotated = code_of(haikou, "resident")
    with desk(fed, sanya) as sanya_desk:
        with pytest.raises(CodeRejectedError) as refused:
            sanya_desk.verify(rotated, BUS)
        assert refused.value.reason == "unknown-key"
        assert fed.publish() is not None
        fed.sync(SANYA)
        eventually(lambda: sanya_desk.verify(code_of(haikou, "resident"), BUS).eligible)
        # The desk's own cached list follows (an unknown kid makes it refresh once).
        assert sanya_desk.verify_offline(code_of(haikou, "resident")).issuer == HAIKOU


def test_the_coordinator_down_leaves_the_last_good_list_serving(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "traveller", "*")
    fed.halt(fed.coordinator)
    try:
        with sanya.session() as session, pytest.raises(operations.SyncFailed) as failed:
            operations.sync_trust_list(session, sanya.settings)
        assert failed.value.type == "coordinator-unreachable"
        with desk(fed, sanya) as sanya_desk:
            assert sanya_desk.verify(code_of(huangshi, "traveller"), BUS).eligible
    finally:
        fed.serve(fed.coordinator)


def test_the_issuing_city_down_is_a_clear_try_again_and_offline_still_works(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "traveller", "*")
    code = code_of(huangshi, "traveller")
    fed.halt(huangshi)
    try:
        with desk(fed, sanya) as sanya_desk:
            with pytest.raises(APIStatusError) as unavailable:
                sanya_desk.verify(code, BUS)
            assert unavailable.value.status == 503
            assert unavailable.value.problem["type"] == "/problems/issuer-unavailable"
            # The desk falls back to its signed copy of the trust list: the code is still good.
            assert sanya_desk.verify_offline(code).tier_level == 4
    finally:
        fed.serve(huangshi)


def test_a_suspended_member_is_refused_after_one_sync_and_resumes(fed: Cluster) -> None:
    haikou, sanya = fed.city(HAIKOU), fed.city(SANYA)
    share(haikou, "resident", "*")
    fed.change(HAIKOU, "suspend")
    fed.publish()
    fed.sync(SANYA)
    with desk(fed, sanya) as sanya_desk:

        def refused() -> None:
            with pytest.raises(CodeRejectedError) as caught:
                sanya_desk.verify(code_of(haikou, "resident"), BUS)
            assert caught.value.reason == "member-suspended"

        eventually(refused)
        fed.change(HAIKOU, "resume")
        fed.publish()
        fed.sync(SANYA)
        eventually(lambda: sanya_desk.verify(code_of(haikou, "resident"), BUS).eligible)


def test_a_city_that_leaves_is_no_longer_a_member(fed: Cluster) -> None:
    haikou, sanya = fed.city(HAIKOU), fed.city(SANYA)
    share(haikou, "resident", "*")
    fed.change(HAIKOU, "leave")
    fed.publish()
    fed.sync(SANYA)
    with desk(fed, sanya) as sanya_desk:

        def refused() -> None:
            with pytest.raises(CodeRejectedError) as caught:
                sanya_desk.verify(code_of(haikou, "resident"), BUS)
            assert caught.value.reason == "issuer-not-member"

        eventually(refused)
    # And Haikou can no longer ask Huangshi about Huangshi's citizens.
    with fed.city(HUANGSHI).session() as session:
        before = session.scalar(select(PartnerQuestion.id).order_by(PartnerQuestion.id.desc()))
    fed.sync(HUANGSHI)
    time.sleep(operations.HELD_TTL + 1)  # Huangshi's workers re-read the held list this often
    share(fed.city(HUANGSHI), "traveller", "*")
    with desk(fed, haikou) as haikou_desk:
        haikou_desk_refused = None
        try:
            haikou_desk.verify(code_of(fed.city(HUANGSHI), "traveller"), BUS)
        except Exception as exc:
            haikou_desk_refused = exc
        assert haikou_desk_refused is not None
    with fed.city(HUANGSHI).session() as session:
        after = session.scalar(select(PartnerQuestion.id).order_by(PartnerQuestion.id.desc()))
    assert after == before  # nothing was answered about the citizen
