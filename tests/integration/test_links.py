"""Linking with consent (issue 15): OAuth 2 authorization code with PKCE S256, through the Flask test
client, on SQLite and PostgreSQL: the operator's system sends the citizen to /oauth/authorize, the
citizen signs in and agrees, the system exchanges the code at /oauth/token and pulls the link; every
refusal; the citizen's 我的授权 page revokes in one tap and the operator is told."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from citycredit.core.actors import SYSTEM
from citycredit.core.audit import AuditEvent
from citycredit.core.clients import register_client
from points_engine import operations
from points_engine.models import Citizen
from push.apps import AppError, check_redirect_uri, register_app
from push.models import Delivery, Event, Link, LinkGrant
from push.subscriptions import create_subscription
from scenarios.demo import SEEDER
from scenarios.operations import create_scenario, ensure_operator, publish_directly
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import (
    START,
    CitizenApp,
    Person,
    citizen_app,
    csrf,
    post,
    sign_in,
    text,
)
from tests.integration.test_cli import run

# RFC 7636 Appendix B: the specification's own example, computed independently of the server.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
CALLBACK = "http://127.0.0.1:8765/linked"
BUS_CALLBACK = "https://bus.example/cb"
STATE = "s-42/xyz"
TODAY = START.date()


@dataclass
class Operators:
    library_id: str
    library_secret: str
    bus_id: str
    bus_secret: str


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Any:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def _operator(city: CitizenApp, code: str, uri: str, rules: dict[str, int]) -> tuple[str, str]:
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        operator = ensure_operator(session, code, code + "运营", code + " operator")
        for scenario_code, level in rules.items():
            scenario = create_scenario(
                session,
                SEEDER,
                code=scenario_code,
                operator=operator,
                category="library",
                content={
                    "name_zh": scenario_code,
                    "name_en": scenario_code,
                    "benefit_zh": "优惠",
                    "benefit_en": "a benefit",
                    "eligibility": {"min_common_tier": level},
                    "quota_per_day": 1,
                },
            )
            publish_directly(session, scenario, submitter=SEEDER, publisher=SYSTEM)
        issued = register_client(
            session,
            name=code + " 借阅系统",
            kind="operator",
            scopes=["links:read", "webhooks:manage"],
            operator_id=operator.id,
            key_secret=settings.key_secret,
        )
        register_app(session, issued.client, [uri], actor="test")
        create_subscription(
            session,
            issued.client,
            url="https://" + code + ".example/hook",
            event_types=["tier.changed", "link.revoked"],
            key_secret=settings.key_secret,
            actor="test",
        )
        assert issued.secret
        return issued.client.client_id, issued.secret


def operators(city: CitizenApp) -> Operators:
    # Alice is at common level 3: she qualifies for lib-open (3) but not lib-top (5); bus-any is
    # another operator's, never told to the library.
    library = _operator(city, "lib", CALLBACK, {"lib-open": 3, "lib-top": 5})
    bus = _operator(city, "bus", BUS_CALLBACK, {"bus-any": 1})
    return Operators(*library, *bus)


def authorize_url(client_id: str | None, **changes: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": STATE,
        "scope": "links:read",
        **changes,
    }
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def consent_to_scoring(client: FlaskClient) -> None:
    response = post(client, "/me/consent", token_from="/me/consent", action="give")
    assert response.status_code == 302, text(response)


def agree(client: FlaskClient, url: str, decision: str = "approve") -> Any:
    page = text(client.get(url))
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    assert fields, page
    return client.post("/oauth/authorize", data={**_unescape(fields), "decision": decision})


def _unescape(fields: dict[str, str]) -> dict[str, str]:
    return {
        k: v.replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
        for k, v in fields.items()
    }


def returned(response: Any) -> dict[str, str]:
    """The query the browser is sent back to the operator's redirect URI with."""
    assert response.status_code == 302, text(response)
    location = urlsplit(response.location)
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + token}


def exchange(city: CitizenApp, ops: Operators, code: str, **changes: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": VERIFIER,
        **changes,
    }
    return city.client().post(
        "/oauth/token", data=form, headers=basic(ops.library_id, ops.library_secret)
    )


def bearer(city: CitizenApp, client_id: str, secret: str) -> dict[str, str]:
    response = city.client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, secret),
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": "Bearer " + response.get_json()["access_token"]}


def linked(city: CitizenApp, ops: Operators, person: Person) -> tuple[FlaskClient, str]:
    """``person`` signed in, consented to scoring and agreed: their browser and the code returned."""
    browser = city.client()
    sign_in(browser, person.number)
    consent_to_scoring(browser)
    answer = returned(agree(browser, authorize_url(ops.library_id)))
    assert answer["state"] == STATE
    return browser, answer["code"]


def assert_problem(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["error"] == error and body["status"] == status
    return body


# --- the whole flow --------------------------------------------------------------------------------


def test_a_citizen_signs_in_agrees_and_the_operator_pulls_only_what_was_agreed(
    city: CitizenApp,
) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser = city.client()
    url = authorize_url(ops.library_id)

    # Not signed in: the usual sign-in, then back to the same request.
    response = browser.get(url)
    assert response.status_code == 302 and "/me/login" in response.location
    signed_in = sign_in(browser, seeded.alice.number)
    assert signed_in.location.endswith(url)

    # Without consent to be scored there is nothing to share: no link, no code.
    page = browser.get(url)
    assert page.status_code == 409 and 'id="needs-consent"' in text(page)
    assert 'id="approve"' not in text(page)
    refused = browser.post(
        "/oauth/authorize",
        data={
            **dict(parse_qs(urlsplit(url).query, keep_blank_values=True)),
            "decision": "approve",
            "csrf_token": csrf(browser, url),
        },
    )
    assert refused.status_code == 409
    with city.session() as session:
        assert session.scalars(select(Link)).all() == []
        assert session.scalars(select(LinkGrant)).all() == []

    consent_to_scoring(browser)
    page = browser.get(url)
    body = text(page)
    assert page.status_code == 200
    assert "lib运营" in body and "lib 借阅系统" in body
    for what in ("shared", "not-shared"):
        assert f'id="{what}"' in body
    assert "您的信用分" in body and "身份证号" in body  # said plainly: not shared
    # The form's answer may redirect to the operator's registered origin, and nowhere else.
    assert "form-action 'self' http://127.0.0.1:8765;" in page.headers["Content-Security-Policy"]

    answer = returned(agree(browser, url))
    assert answer["state"] == STATE and len(answer["code"]) >= 40

    token = exchange(city, ops, answer["code"])
    assert token.status_code == 200, token.get_json()
    assert token.headers["Cache-Control"] == "no-store"
    issued = token.get_json()
    assert issued["token_type"] == "Bearer" and issued["scope"] == "links:read"
    link = issued["link"]
    assert set(link) == {"pseudonym", "common_level", "valid_until", "scenarios"}
    assert link["pseudonym"].startswith("lk_")
    assert link["common_level"] == 3
    assert link["scenarios"] == ["lib-open"]  # not lib-top (level 5), never the bus's scenario
    assert seeded.alice.number not in token.get_data(as_text=True)

    # The pull: the same view with the code's access token.
    pulled = city.client().get(
        f"/api/v1/links/{link['pseudonym']}",
        headers={"Authorization": "Bearer " + issued["access_token"]},
    )
    assert pulled.status_code == 200 and pulled.get_json()["common_level"] == 3
    assert pulled.get_json()["scenarios"] == ["lib-open"]
    # Another operator's system does not learn the link exists.
    other = city.client().get(
        f"/api/v1/links/{link['pseudonym']}", headers=bearer(city, ops.bus_id, ops.bus_secret)
    )
    assert_problem_404(other)
    with city.session() as session:
        reads = session.scalars(select(AuditEvent).where(AuditEvent.action == "link.read")).all()
        assert len(reads) == 2 and {r.citizen_id for r in reads} == {seeded.alice.citizen_id}
        assert {r.actor for r in reads} == {f"client:{ops.library_id}"}


def assert_problem_404(response: Any) -> None:
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/not-found")


def test_a_reused_code_is_refused_and_revokes_the_link_made_from_it(city: CitizenApp) -> None:
    seeded = city.seed()
    ops = operators(city)
    _, code = linked(city, ops, seeded.alice)
    first = exchange(city, ops, code)
    assert first.status_code == 200
    pseudonym = first.get_json()["link"]["pseudonym"]

    again = exchange(city, ops, code)
    body = assert_problem(again, 400, "invalid_grant")
    assert "already used" in body["detail"]
    with city.session() as session:
        link = session.scalars(select(Link)).one()
        assert link.revoked_at is not None and link.revoked_by == "city"
        revoked = session.scalars(select(Event).where(Event.type == "link.revoked")).one()
        assert revoked.data["pseudonym"] == pseudonym
    pulled = city.client().get(
        f"/api/v1/links/{pseudonym}", headers=bearer(city, ops.library_id, ops.library_secret)
    )
    assert_problem_404(pulled)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"redirect_uri": "http://127.0.0.1:8765/other"}, "invalid_grant"),
        ({"code_verifier": "x" * 43}, "invalid_grant"),
        ({"code_verifier": VERIFIER[:-1] + "Y"}, "invalid_grant"),
        ({"code_verifier": ""}, "invalid_request"),
    ],
    ids=["other-redirect-uri", "wrong-verifier", "one-character-off", "no-verifier"],
)
def test_the_exchange_refuses_what_does_not_match_the_request(
    city: CitizenApp, changes: dict[str, str], error: str
) -> None:
    seeded = city.seed()
    ops = operators(city)
    _, code = linked(city, ops, seeded.alice)
    assert_problem(exchange(city, ops, code, **changes), 400, error)
    # A failed attempt does not use the code up: the real system still finishes the link.
    assert exchange(city, ops, code).status_code == 200


def test_an_expired_code_or_another_clients_code_is_refused(city: CitizenApp) -> None:
    seeded = city.seed()
    ops = operators(city)
    _, code = linked(city, ops, seeded.alice)
    stolen = city.client().post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER,
        },
        headers=basic(ops.bus_id, ops.bus_secret),
    )
    assert_problem(stolen, 400, "invalid_grant")
    with city.session() as session:
        grant = session.scalars(select(LinkGrant)).one()
        now = dt.datetime.now(dt.UTC)
        assert grant.expires_at - now <= dt.timedelta(minutes=10)  # ten minutes at most
        # ... and then they have passed.
        grant.expires_at = now - dt.timedelta(seconds=1)
    body = assert_problem(exchange(city, ops, code), 400, "invalid_grant")
    assert "expired" in body["detail"]
    unauthenticated = city.client().post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER,
            "client_id": ops.library_id,
            "client_secret": "wrong",
        },
    )
    assert unauthenticated.status_code == 401


def test_bad_clients_and_redirect_uris_are_shown_never_redirected(city: CitizenApp) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser = city.client()
    sign_in(browser, seeded.alice.number)
    for url in (
        authorize_url(ops.library_id, redirect_uri="http://127.0.0.1:8765/evil"),
        authorize_url(ops.library_id, redirect_uri=BUS_CALLBACK),  # another client's address
        authorize_url(ops.library_id, redirect_uri=None),
        authorize_url("no-such-client"),
        authorize_url(None),
    ):
        response = browser.get(url)
        assert response.status_code == 400, url
        assert "Location" not in response.headers
        assert 'id="refused"' in text(response)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "links:read scenarios:write"}, "invalid_scope"),
    ],
    ids=["no-pkce", "plain-pkce", "no-method", "short-challenge", "implicit", "more-scope"],
)
def test_other_errors_go_back_with_the_error_and_the_state(
    city: CitizenApp, changes: dict[str, str | None], error: str
) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser = city.client()
    sign_in(browser, seeded.alice.number)
    answer = returned(browser.get(authorize_url(ops.library_id, **changes)))
    assert answer["error"] == error and answer["state"] == STATE
    assert "code" not in answer


def test_declining_tells_the_operator_and_links_nothing(city: CitizenApp) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser = city.client()
    sign_in(browser, seeded.alice.number)
    consent_to_scoring(browser)
    answer = returned(agree(browser, authorize_url(ops.library_id), decision="deny"))
    assert answer == {
        "error": "access_denied",
        "error_description": "the citizen said no",
        "state": STATE,
    }
    with city.session() as session:
        assert session.scalars(select(Link)).all() == []
    forged = browser.post("/oauth/authorize", data={"decision": "approve"})
    assert forged.status_code == 400  # no CSRF token: nothing happens


# --- 我的授权 -----------------------------------------------------------------------------------------


def test_revoking_from_the_page_tells_the_operator_and_cancels_what_was_not_sent(
    city: CitizenApp,
) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser, code = linked(city, ops, seeded.alice)
    pseudonym = exchange(city, ops, code).get_json()["link"]["pseudonym"]
    with city.session() as session:
        alice = session.get(Citizen, seeded.alice.citizen_id)
        assert alice is not None
        for day in ("2026-06-20", "2026-06-21"):
            factories.record(session, alice, "AWARD", day)
        operations.drain_dirty(session, as_of=TODAY)
        pending = session.execute(
            select(Event.type, Delivery.status).join(Delivery, Delivery.event_id == Event.id)
        ).all()
        assert [tuple(p) for p in pending] == [("tier.changed", "pending")]

    page = text(browser.get("/me/links"))
    assert "lib运营" in page and "有效" in page and "撤销授权" in page
    link_id = int(re.search(r'id="link-(\d+)"', page).group(1))  # type: ignore[union-attr]
    # Bob cannot revoke Alice's link.
    bob = city.client()
    sign_in(bob, seeded.bob.number)
    assert post(bob, f"/me/links/{link_id}/revoke", token_from="/me/links").status_code == 404

    # One tap.
    response = post(browser, f"/me/links/{link_id}/revoke", token_from="/me/links")
    assert response.status_code == 302 and response.location.endswith("/me/links?revoked=1")
    page = text(browser.get("/me/links?revoked=1"))
    assert 'id="flash"' in page and "已撤销" in page and "撤销授权</button>" not in page
    with city.session() as session:
        link = session.scalars(select(Link)).one()
        assert link.revoked_by == "citizen"
        sent = session.execute(
            select(Event.type, Delivery.status, Event.data)
            .join(Delivery, Delivery.event_id == Event.id)
            .order_by(Delivery.id)
        ).all()
        assert [(t, s) for t, s, _ in sent] == [
            ("tier.changed", "cancelled"),
            ("link.revoked", "pending"),
        ]
        assert sent[1][2]["pseudonym"] == pseudonym
    assert_problem_404(
        city.client().get(
            f"/api/v1/links/{pseudonym}", headers=bearer(city, ops.library_id, ops.library_secret)
        )
    )


def test_the_page_is_in_english_too_and_lists_nothing_before_a_link(city: CitizenApp) -> None:
    seeded = city.seed()
    browser = city.client()
    sign_in(browser, seeded.bob.number)
    consent_to_scoring(browser)
    page = text(browser.get("/me/links?lang=en"))
    assert "My links" in page and 'id="no-links"' in page
    for page in ("/me/", "/me/consent"):  # linked from home and from consent
        assert 'href="/me/links"' in text(browser.get(page)), page


def test_redirect_uris_are_https_or_loopback_only() -> None:
    for good in (CALLBACK, "https://lib.example/cb?x=1", "http://localhost:3000/cb"):
        assert check_redirect_uri(good) == good
    for bad in (
        "http://lib.example/cb",
        "https://lib.example/cb#frag",
        "https://user:pw@lib.example/cb",
        "https://a;b.example/cb",
        "javascript:alert(1)",
        "/relative",
    ):
        with pytest.raises(AppError):
            check_redirect_uri(bad)


def test_a_control_character_in_the_request_is_a_page_not_a_problem(city: CitizenApp) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser = city.client()
    sign_in(browser, seeded.alice.number)
    response = browser.get(authorize_url(ops.library_id, state="a\x00b"))
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "Location" not in response.headers


def test_the_city_registers_a_link_app_from_the_cli(city: CitizenApp, tmp_path: Path) -> None:
    seeded = city.seed()
    ops = operators(city)
    shown = run(city.db, tmp_path, "links", "show-app", ops.library_id)
    assert shown.returncode == 0 and shown.stdout.split() == [CALLBACK], shown.stderr
    refused = run(
        city.db, tmp_path, "links", "register-app", ops.library_id, "--redirect-uri",
        "http://lib.example/cb",
    )  # fmt: skip
    assert refused.returncode != 0 and "https" in refused.stderr
    changed = run(
        city.db, tmp_path, "links", "register-app", ops.library_id, "--redirect-uri",
        "https://lib.example/cb",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    # The old address is no longer one the citizen can be sent back to.
    browser = city.client()
    sign_in(browser, seeded.alice.number)
    assert browser.get(authorize_url(ops.library_id)).status_code == 400


def test_the_citizens_data_download_holds_every_link_and_its_revocation(city: CitizenApp) -> None:
    seeded = city.seed()
    ops = operators(city)
    browser, code = linked(city, ops, seeded.alice)
    pseudonym = exchange(city, ops, code).get_json()["link"]["pseudonym"]
    held = json.loads(text(browser.get("/me/data.json")))["links"]
    assert [(h["pseudonym"], h["shares"], h["revoked_at"]) for h in held] == [
        (pseudonym, ["common_level", "scenarios"], None)
    ]
    assert held[0]["operator"]["zh"] == "lib运营" and held[0]["since"]
    link_id = int(re.search(r'id="link-(\d+)"', text(browser.get("/me/links"))).group(1))  # type: ignore[union-attr]
    post(browser, f"/me/links/{link_id}/revoke", token_from="/me/links")
    held = json.loads(text(browser.get("/me/data.json")))["links"]
    assert held[0]["revoked_by"] == "citizen" and held[0]["revoked_at"]
    bob = city.client()
    sign_in(bob, seeded.bob.number)
    assert json.loads(text(bob.get("/me/data.json")))["links"] == []
