"""Operators' systems and venues against a real server: who sees and changes which scenario."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from citycredit.core import actors
from citycredit.core.clients import register_client
from citycredit.core.db import make_session_factory, unit_of_work
from scenarios import operations as registry
from tests.e2e.conftest import LiveCity

LIBRARY_RULE = {"all": [{"min_common_tier": 3}, {"min_age": 18}]}


@dataclass
class Caller:
    city: LiveCity
    token: str

    def __call__(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(
            method,
            self.city.url + "/api/v1/scenarios" + path,
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,  # type: ignore[arg-type]
        )


def _client(city: LiveCity, **fields: object) -> Caller:
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        issued = register_client(session, key_secret=city.settings.key_secret, **fields)  # type: ignore[arg-type]
        client_id, secret = issued.client.client_id, issued.secret
    token = httpx.post(
        city.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret or ""),
    ).json()["access_token"]
    return Caller(city, token)


def _two_operators(city: LiveCity) -> tuple[Caller, Caller, Caller]:
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        library = registry.ensure_operator(session, "city-library", "市图书馆", "City Library")
        buses = registry.ensure_operator(session, "bus-group", "公交集团", "Bus Group")
        desk = registry.add_venue(
            session,
            actors.SYSTEM,
            operator=library,
            code="library-main",
            category="library",
            name_zh="市图书馆总馆",
            name_en="Main library",
        )
        ids = library.id, buses.id, desk.id
    scopes = ["scenarios:write"]
    library_system = _client(
        city, name="library system", kind="operator", scopes=scopes, operator_id=ids[0]
    )
    bus_system = _client(
        city, name="bus system", kind="operator", scopes=scopes, operator_id=ids[1]
    )
    desk_client = _client(
        city, name="main desk", kind="venue", scopes=["verify"], venue_id=ids[2], operator_id=ids[0]
    )
    return library_system, bus_system, desk_client


def _draft(code: str = "library-forty-books") -> dict[str, object]:
    return {
        "code": code,
        "category": "library",
        "name_zh": "信易阅·免押金借书40册",
        "name_en": "Borrow 40 books deposit-free",
        "benefit_zh": "免押金借阅图书最多40册",
        "benefit_en": "Up to 40 books without a deposit",
        "eligibility": LIBRARY_RULE,
        "quota_per_day": 1,
        "venues": ["library-main"],
    }


def test_an_operator_manages_only_its_own_scenarios(city: LiveCity) -> None:
    library, buses, desk = _two_operators(city)
    created = library("POST", "", json=_draft())
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    assert created.json()["pending"]["requirement"]["zh"] == "通用等级 良好及以上且年满18周岁"

    # The other operator cannot see, edit, submit or suspend it: for it, the scenario does not exist.
    assert buses("GET", "/library-forty-books").status_code == 404
    assert "library-forty-books" not in {s["code"] for s in buses("GET", "").json()}
    edit = {k: v for k, v in _draft().items() if k not in ("code", "category", "venues")}
    for method, path, body in (
        ("PUT", "/library-forty-books/draft", edit),
        ("POST", "/library-forty-books/submit", None),
        ("POST", "/library-forty-books/suspend", {"reason": "x"}),
    ):
        refused = buses(method, path, json=body)
        assert refused.status_code == 404, (path, refused.text)
        assert refused.json()["type"] == "/problems/unknown-scenario"
    # Nor can it create one at another operator's venue.
    stolen = buses("POST", "", json={**_draft("bus-at-library"), "category": "transport"})
    assert stolen.status_code == 422
    assert stolen.json()["errors"]["venues"] == ["venue 'library-main' belongs to another operator"]

    # A venue's desk sees nothing until the city publishes.
    assert desk("GET", "/library-forty-books").status_code == 404
    submitted = library("POST", "/library-forty-books/submit")
    assert submitted.json()["status"] == "in_review"
    # Frozen under review; publishing is not an API step at all.
    frozen = library("PUT", "/library-forty-books/draft", json=edit)
    assert frozen.status_code == 409 and frozen.json()["type"] == "/problems/workflow-conflict"
    assert library("POST", "/library-forty-books/publish").status_code in (404, 405)

    with unit_of_work(make_session_factory(city.db.engine)) as session:
        scenario = registry.find_scenario(session, "library-forty-books")
        registry.publish(session, actors.Actor("admin:reviewer", can_publish=True), scenario)
    seen = desk("GET", "/library-forty-books").json()
    assert seen["live"]["benefit"]["zh"] == "免押金借阅图书最多40册" and seen["pending"] is None
    # The desk sees only what its venue honours, not the city's bus scenarios.
    assert {s["code"] for s in desk("GET", "").json()} == {"library-forty-books"}


def test_bad_scenarios_get_field_and_rule_path_errors(city: LiveCity) -> None:
    library, _, _ = _two_operators(city)
    bad = {
        **_draft("Bad Code!"),
        "eligibility": {"all": [{"min_common_tier": 3}, {"max_tier": 2}]},
        "quota_per_day": 0,
    }
    answer = library("POST", "", json=bad)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert set(errors) == {"code", "eligibility", "quota_per_day"}
    assert errors["eligibility"][0].startswith("all.1.max_tier: unknown condition kind")
    # A client without the operator scope cannot write at all.
    plain = _client(city, name="reader", kind="venue", scopes=["verify"])
    refused = plain("POST", "", json=_draft())
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/insufficient-scope"


def test_an_operator_opens_a_scenario_to_visitors_through_the_api(city: LiveCity) -> None:
    library, _, desk = _two_operators(city)
    # Without the field a new scenario is closed to visitors (clients written before it still work).
    created = library("POST", "", json=_draft())
    assert created.status_code == 201 and created.json()["pending"]["open_to_visitors"] is False
    opened = library("POST", "", json={**_draft("library-open-books"), "open_to_visitors": True})
    assert opened.status_code == 201 and opened.json()["pending"]["open_to_visitors"] is True
    # JSON true or false only, as the document says: no "yes", no 1.
    for wrong in ("yes", 1, None):
        refused = library("POST", "", json={**_draft("library-wrong"), "open_to_visitors": wrong})
        assert refused.status_code == 422, (wrong, refused.text)
    described = httpx.get(city.url + "/api/openapi.json").json()["components"]["schemas"]
    field = described["ContentIn"]["properties"]["open_to_visitors"]
    assert field["type"] == "boolean" and "partner cities" in field["description"]
    assert "open_to_visitors" in described["VersionOut"]["required"]

    with unit_of_work(make_session_factory(city.db.engine)) as session:
        scenario = registry.find_scenario(session, "library-open-books")
        registry.submit(session, actors.Actor("librarian"), scenario)
        registry.publish(session, actors.Actor("admin:reviewer", can_publish=True), scenario)
    assert desk("GET", "/library-open-books").json()["live"]["open_to_visitors"] is True

    # An edit that leaves the field out keeps it; the live version serves until the new one is out.
    edit = {k: v for k, v in _draft().items() if k not in ("code", "category", "venues")}
    kept = library("PUT", "/library-open-books/draft", json={**edit, "quota_per_day": 2})
    assert kept.status_code == 200, kept.text
    assert kept.json()["pending"]["open_to_visitors"] is True
    closed = library("PUT", "/library-open-books/draft", json={**edit, "open_to_visitors": False})
    assert closed.json()["pending"]["open_to_visitors"] is False
    assert closed.json()["live"]["open_to_visitors"] is True
