"""The federation under attack, on loopback: a hostile partner city, a hostile venue, a network
attacker and a curious partner, against real servers (a coordinator and three cities, one on
PostgreSQL when it is available).

Whatever they send, the answer is a precise RFC 9457 problem, never a 500; nothing is counted twice;
a refusal tells the asker nothing the citizen did not let it learn; no ID number reaches a log.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import event, func, select

from citycredit.cli.cluster import CitySpec, Cluster, Deployment
from citycredit.core.db import utcnow
from citycredit.core.keys import current_signing_key
from federation import answers, bulletins, jws, s2s
from federation import keys as fed_keys
from federation.models import PartnerBulletin, PartnerQuestion
from federation.operations import held_list
from federation.trustlist import verify_list
from tests import factories
from tests.databases import ScratchDatabase, postgresql_unavailable
from tests.e2e.test_federation import (
    BUS,
    HAIKOU,
    HUANGSHI,
    ITEMISED,
    LIBRARY,
    SANYA,
    SIX_TIER,
    _seeder,
    code_of,
    person,
    share,
)

INTROSPECTIONS = "/api/v1/federation/introspections"
TIER_REQUESTS = "/api/v1/federation/tier-requests"
_DROP = object()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("federation-attacks")
    pg = ScratchDatabase("postgresql", base) if postgresql_unavailable() is None else None
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
            share(cluster.city(HUANGSHI), "traveller", "*")
            share(cluster.city(SANYA), "star", "*")
            share(cluster.city(HAIKOU), "resident", "*")
            yield cluster
    finally:
        if pg is not None:
            pg.drop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_bytes(value: Any) -> bytes:
    # allow_nan: a hostile city writes Infinity and NaN too; surrogatepass: and lone surrogates.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def signed_request(
    asker: Deployment,
    answerer: Deployment,
    body: dict[str, Any],
    *,
    raw_payload: str = "",
    **over: Any,
) -> str:
    """A request really signed with ``asker``'s federation key, with whatever claims it likes."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": asker.code,
        "aud": answerer.code,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
        **body,
        **over,
    }
    payload = {k: v for k, v in payload.items() if v is not _DROP}
    with asker.session() as session:
        _, private = fed_keys.private_key(session, asker.settings.key_secret, "city")
    return sign_raw(raw_payload or _b64(_json_bytes(payload)), private, jws.TYP_REQUEST)


def sign_raw(body_part: str, private: Any, typ: str) -> str:
    """A compact JWS over whatever bytes (``jws.sign`` refuses what is not UTF-8)."""
    kid = jws.thumbprint(jws.public_jwk_of(private.public_key()))
    head = _b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": typ}).encode())
    return f"{head}.{body_part}.{_b64(private.sign(f'{head}.{body_part}'.encode()))}"


def send(city: Deployment, path: str, request: str) -> httpx.Response:
    return httpx.post(city.url + path, json={"request": request}, timeout=30)


def problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.status_code, str(response.json()["type"]).rsplit("/", 1)[-1]


def introspection_body(city: Deployment, label: str) -> dict[str, Any]:
    return {
        "code": code_of(city, label),
        "purpose": "verification",
        "scenario": BUS,
        "category": "transport",
    }


def questions(city: Deployment) -> int:
    with city.session() as session:
        return int(session.scalar(select(func.count()).select_from(PartnerQuestion)) or 0)


def access_token(city: Deployment, role: str) -> str:
    client_id, secret = city.seeded["clients"][role]
    token: str = httpx.post(
        city.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    ).json()["access_token"]
    return token


# --- a network attacker: no signature needed ------------------------------------------------------


@pytest.mark.parametrize("path", [INTROSPECTIONS, TIER_REQUESTS])
def test_a_deeply_nested_request_is_refused_before_any_signature_check(
    fed: Cluster, path: str
) -> None:
    for city in (fed.city(HUANGSHI), fed.city(SANYA)):
        deep = _b64(b"[" * 5000 + b"]" * 5000)
        assert problem(send(city, path, f"e30.{deep}.AAAA")) == (403, "federation-request-refused")
        deep_header = _b64(b"[" * 3000)
        # The payload names a member, so the header is parsed too.
        claims = _b64(json.dumps({"iss": SANYA if city.code == HUANGSHI else HUANGSHI}).encode())
        assert problem(send(city, path, f"{deep_header}.{claims}.AAAA")) == (
            403,
            "federation-request-refused",
        )


# --- a hostile partner city: its requests are validly signed ---------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": float("inf")},
        {"exp": float("-inf")},
        {"iat": True},
        {"jti": ["a", "b", "c", "d", "e", "f", "g", "h"]},
        {"jti": 1234567890},
        {"jti": "\x00" * 10},
        {"jti": "\ud800" * 10},
        {"jti": _DROP},
    ],
    ids=["iat-inf", "exp-minus-inf", "iat-bool", "jti-list", "jti-int", "jti-nul", "jti-surrogate",
         "jti-missing"],
)  # fmt: skip
def test_odd_request_claims_are_a_precise_refusal(fed: Cluster, claims: dict[str, Any]) -> None:
    for answerer, asker, label in (
        (fed.city(HUANGSHI), fed.city(SANYA), "traveller"),
        (fed.city(SANYA), fed.city(HUANGSHI), "star"),
    ):
        request = signed_request(asker, answerer, introspection_body(answerer, label), **claims)
        status, kind = problem(send(answerer, INTROSPECTIONS, request))
        assert status == 403 and kind in ("federation-request-refused", "request-expired")


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        (INTROSPECTIONS, "scenario", "bus\x00fare"),
        (INTROSPECTIONS, "scenario", "bus\udc00"),
        (INTROSPECTIONS, "category", "\ud800"),
        (INTROSPECTIONS, "category", "transport\x1b[2J"),
        (INTROSPECTIONS, "scenario", {"code": "bus-fare-discount"}),
        (TIER_REQUESTS, "reason", "租房押金\x00减免"),
        (TIER_REQUESTS, "reason", "租房押金\ud800"),
        (TIER_REQUESTS, "reason", {"why": "租房押金减免"}),
    ],
    ids=["scenario-nul", "scenario-surrogate", "category-surrogate", "category-escape",
         "scenario-object", "reason-nul", "reason-surrogate", "reason-object"],
)  # fmt: skip
def test_free_text_a_citizen_will_read_is_text_or_a_validation_error(
    fed: Cluster, path: str, field: str, value: Any
) -> None:
    for answerer, asker, label in (
        (fed.city(HUANGSHI), fed.city(SANYA), "traveller"),
        (fed.city(SANYA), fed.city(HUANGSHI), "star"),
    ):
        if path == INTROSPECTIONS:
            body = introspection_body(answerer, label)
        else:
            body = {"id_number": person(answerer, label), "reason": "租房押金减免"}
        before = questions(answerer)
        response = send(answerer, path, signed_request(asker, answerer, body | {field: value}))
        assert problem(response) == (422, "validation-error")
        assert field in response.json()["detail"]
        assert questions(answerer) == before  # nothing unreadable is kept for the citizen


def test_a_tier_request_reason_may_span_lines(fed: Cluster) -> None:
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "fair", SANYA)
    body = {"id_number": person(huangshi, "fair"), "reason": "租房押金减免\n(deposit waiver)"}
    assert send(huangshi, TIER_REQUESTS, signed_request(sanya, huangshi, body)).status_code == 200


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        ({"mv": [1]}, "mapping-unknown"),
        ({"mv": {"version": 1}}, "mapping-unknown"),
        ({"mv": True}, "mapping-unknown"),
        ({"mv": 1.0}, "mapping-unknown"),
        ({"exp": "soon"}, "token-malformed"),
        ({"exp": float("nan")}, "token-malformed"),
    ],
    ids=["mv-list", "mv-object", "mv-bool", "mv-float", "exp-string", "exp-nan"],
)
def test_a_partner_citys_oddly_signed_code_is_refused_at_the_desk(
    fed: Cluster, claims: dict[str, Any], kind: str
) -> None:
    """Haikou signs codes with its real key but odd claims; Sanya's venue gets a precise problem."""
    haikou, sanya = fed.city(HAIKOU), fed.city(SANYA)
    real = jwt.decode(code_of(haikou, "resident"), options={"verify_signature": False})
    with haikou.session() as session:
        kid, private = current_signing_key(session, haikou.settings.key_secret)
    now = int(time.time())
    forged = jwt.encode(
        {**real, "iat": now, "exp": now + 100, **claims},
        private,
        algorithm="EdDSA",
        headers={"kid": kid, "typ": None},
    )
    response = httpx.post(
        sanya.url + "/api/v1/verifications",
        json={"token": forged, "scenario": BUS},
        headers={"Authorization": f"Bearer {access_token(sanya, 'venue')}"},
        timeout=30,
    )
    assert problem(response) == (422, kind)


def test_a_member_cannot_replay_another_members_request(fed: Cluster) -> None:
    huangshi, sanya, haikou = fed.city(HUANGSHI), fed.city(SANYA), fed.city(HAIKOU)
    request = signed_request(sanya, huangshi, introspection_body(huangshi, "traveller"))
    assert send(huangshi, INTROSPECTIONS, request).status_code == 200
    # Haikou got hold of Sanya's request: Huangshi answers it once only.
    assert problem(send(huangshi, INTROSPECTIONS, request)) == (409, "request-replayed")
    # Sent to Haikou instead, it is not addressed there.
    assert problem(send(haikou, INTROSPECTIONS, request))[0] == 403


@pytest.mark.parametrize(
    "content", [b"[" * 5000, b'{"answer": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"\xff\xfe"]
)
def test_an_issuing_citys_nonsense_answer_is_issuer_unavailable(
    fed: Cluster, content: bytes
) -> None:
    """Huangshi (hostile) answers Sanya's question with nonsense: Sanya says "try again", no 500."""
    sanya = fed.city(SANYA)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=content))
    with sanya.session() as session:
        trust_list = held_list(session, sanya.settings)
        assert trust_list is not None
        with pytest.raises(s2s.IssuerUnavailable):
            s2s.ask(
                session,
                sanya.settings,
                trust_list.members[HUANGSHI],
                INTROSPECTIONS,
                {"code": "x", "purpose": "verification"},
                transport=transport,
            )


# --- a curious partner: refusals of a tier request all look alike ----------------------------------


def test_every_refused_tier_request_does_the_same_work(fed: Cluster) -> None:
    """Unknown person, or known without consent for the asker: the same statements, so neither the
    answer nor its timing tells the asker whether the person is a citizen here."""
    huangshi, sanya = fed.city(HUANGSHI), fed.city(SANYA)
    share(huangshi, "fair", HAIKOU)  # consent for another partner city only
    share(huangshi, "fair", SANYA, withdraw=True)

    def statements(number: str) -> list[str]:
        request = signed_request(sanya, huangshi, {"id_number": number, "reason": "租房押金减免"})
        seen: list[str] = []
        with huangshi.session() as session:
            # Warm: the held list and the purge of old request ids are not part of the answer.
            s2s.check_request(session, huangshi.settings, request, now=utcnow())
            engine = session.get_bind().engine

            def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                seen.append(re.sub(r"\s+", " ", statement.split(" WHERE ")[0]))

            event.listen(engine, "before_cursor_execute", note)
            try:
                again = signed_request(
                    sanya, huangshi, {"id_number": number, "reason": "租房押金减免"}
                )
                with pytest.raises(answers.NotShared):
                    answers.answer_tier_request(session, huangshi.settings, again, now=utcnow())
            finally:
                event.remove(engine, "before_cursor_execute", note)
            session.rollback()
        return seen

    stranger = statements(factories.id_number())
    known = statements(person(huangshi, "fair"))
    assert stranger == known


def test_concurrent_redemptions_of_one_visitors_codes_grant_exactly_one(fed: Cluster) -> None:
    for issuer, label, desk_city in (
        (fed.city(HUANGSHI), "stayer", fed.city(SANYA)),
        (fed.city(SANYA), "star", fed.city(HUANGSHI)),
    ):
        share(issuer, label, "*")
        codes = [code_of(issuer, label) for _ in range(8)]
        access = access_token(desk_city, "venue")

        def redeem(code: str, desk_city: Deployment = desk_city, access: str = access) -> int:
            return httpx.post(
                desk_city.url + "/api/v1/redemptions",
                json={"token": code, "scenario": LIBRARY},
                headers={"Authorization": f"Bearer {access}"},
                timeout=30,
            ).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(redeem, codes))
        assert statuses == [201] + [409] * 7


# --- a hostile member's signed entry and bulletins reach every member ---------------------------


def _list_with_entry_of(fed: Cluster, code: str, mutate: Any) -> str:
    """The coordinator's list with ``code``'s entry changed and re-signed by ``code`` itself — what
    the coordinator publishes when a member serves such an entry (it checks signature and issuer)."""
    from federation.coordinator import latest_published

    member = fed.city(code)
    with member.session() as session:
        _, member_key = fed_keys.private_key(session, member.settings.key_secret, "city")
    with fed.coordinator.session() as session:
        published = latest_published(session)
        assert published is not None
        payload = jws.unverified_payload(published.document)
        _, anchor = fed_keys.private_key(session, fed.coordinator.settings.key_secret, "anchor")
    listed = next(m for m in payload["members"] if m["issuer"] == code)
    entry = jws.unverified_payload(listed["entry"])
    mutate(entry)
    listed["entry"] = jws.sign(entry, member_key, typ=jws.TYP_ENTRY)
    payload["seq"] += 1
    return jws.sign(payload, anchor, typ=jws.TYP_TRUST_LIST, with_key=True)


def _set(**values: Any) -> Any:
    return lambda entry: entry.update(values)


def _first_key(**values: Any) -> Any:
    return lambda entry: entry["signing_keys"][0].update(values)


def _first_tier(**values: Any) -> Any:
    return lambda entry: entry["mappings"][0]["tiers"][0].update(values)


@pytest.mark.parametrize(
    "mutate",
    [
        _set(names=["海口"]),
        _set(names="海口"),
        _set(signing_keys=5),
        _set(mappings=5),
        _set(iat="yesterday"),
        _set(iat=float("inf")),
        _first_key(nbf=float("inf")),
        _first_tier(common_level=float("inf")),
    ],
    ids=["names-list", "names-string", "keys-number", "mappings-number", "iat-string",
         "iat-inf", "nbf-inf", "level-inf"],
)  # fmt: skip
def test_a_members_odd_entry_harms_no_other_member(fed: Cluster, mutate: Any) -> None:
    """Haikou serves an entry, signed by itself, with odd fields; the list holding it still verifies
    (with what of Haikou's entry is usable), so one member cannot stop every member's sync."""
    document = _list_with_entry_of(fed, HAIKOU, mutate)
    trust_list = verify_list(
        document,
        anchor_fingerprint=fed.anchor,
        held_seq=None,
        held_document=None,
        now=utcnow(),
        max_age=fed.max_age,
    )
    assert set(trust_list.members) == {HUANGSHI, SANYA, HAIKOU}
    assert trust_list.members[HUANGSHI].signing_keys  # the others are whole


def test_a_partners_odd_bulletins_stop_no_other_partner(fed: Cluster) -> None:
    """Sanya serves bulletins a database cannot store or a number cannot hold; Huangshi refuses
    them (recorded), keeps Haikou's and stays usable."""
    huangshi, sanya, haikou = fed.city(HUANGSHI), fed.city(SANYA), fed.city(HAIKOU)
    with sanya.session() as session:
        _, sanya_key = fed_keys.private_key(session, sanya.settings.key_secret, "city")
    with haikou.session() as session:
        _, haikou_key = fed_keys.private_key(session, haikou.settings.key_secret, "city")

    def bulletin(key: Any, issuer: str, **extra: Any) -> str:
        payload = {
            "iss": issuer,
            "seq": 1,
            "date": "2026-01-01",
            "iat": int(time.time()),
            "revoked_keys": [],
            "visitors": [],
            "catalogue": [],
            **extra,
        }
        return sign_raw(_b64(_json_bytes(payload)), key, jws.TYP_BULLETIN)

    odd = [
        bulletin(sanya_key, SANYA, catalogue=[{"code": "x", "name_zh": "图书\x00馆"}]),
        bulletin(sanya_key, SANYA, catalogue=[{"code": "x", "name_zh": "图书\ud800"}]),
        bulletin(sanya_key, SANYA, seq=float("inf")),
    ]
    for document in odd:

        def fetch(url: str, document: str = document) -> dict[str, Any]:
            if url.startswith(sanya.url):
                return {"bulletins": [document]}
            if url.startswith(haikou.url) and url.endswith("after=0"):
                return {"bulletins": [bulletin(haikou_key, HAIKOU)]}
            return {"bulletins": []}

        with huangshi.session() as session:
            outcome = bulletins.sync_bulletins(session, huangshi.settings, fetch=fetch)
            assert str(outcome[SANYA]).startswith("error"), outcome
            assert outcome[HAIKOU] in (0, 1)
            held = session.scalars(
                select(PartnerBulletin.issuer).where(PartnerBulletin.issuer != HAIKOU)
            ).all()
            assert held == []
    with huangshi.session() as session:
        assert session.scalar(select(func.count()).where(PartnerBulletin.issuer == HAIKOU)) == 1


# --- last: what the servers wrote ---------------------------------------------------------------


def test_no_server_log_holds_an_id_number_or_a_stack_trace(fed: Cluster) -> None:
    numbers = [n for city in fed.cities for n in fed.city(city.code).seeded["people"].values()]
    for deployment in fed.deployments.values():
        text = (deployment.directory / "server.log").read_text(errors="replace")
        assert not any(n in text for n in numbers), deployment.code
        assert "Traceback" not in text, f"{deployment.code}: an unhandled error was logged"
