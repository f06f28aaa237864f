"""The OpenAPI document against a real server: schemathesis generates requests for every operation from
the document (valid ones, with real credit codes, ID numbers and scenario codes swapped in, and invalid
ones), and every answer must be what the document says: never a server error, a documented status,
media type and headers, and a body of the documented schema.

Bounded and deterministic: a fixed seed and a fixed number of examples per operation and mode; the
server is on 127.0.0.1 and nothing else is contacted.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from citycredit.core.clients import register_client
from citycredit.core.db import make_session_factory, unit_of_work
from scenarios.eligibility import CONDITIONS
from scenarios.models import CATEGORIES, Operator, Scenario
from scenarios.operations import CODE
from tests import factories
from tests.e2e.conftest import Credentials, LiveCity

SEED = 20261127
# Examples per operation: valid requests (with real values swapped in) and invalid ones.
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 120, schemathesis.GenerationMode.NEGATIVE: 60}
# CITYCREDIT_FUZZ_SCALE=10 runs ten times as many (a longer hunt, by hand).
SCALE = float(os.environ.get("CITYCREDIT_FUZZ_SCALE", "1"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,  # what the document calls invalid is refused (4xx)
    response_headers_conformance,
    response_schema_conformance,
]
# A body over the size limit is refused with 413 before it is read: a rejection like the others.
REJECTIONS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "414",  # a request line over gunicorn's limit, refused before the app reads it
    "415",
    "422",
    "428",
    "429",
    "5xx",
]
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
)
ALL_SCOPES = [
    "verify",
    "redeem",
    "codes:issue",
    "records:write",
    "scenarios:write",
    "objections:answer",
    "governance:read",
    "lists:write",
    "webhooks:manage",
    "links:read",
]


@dataclass
class Real:
    """Real values the server knows, to swap into generated requests so they get past the lookups."""

    city: LiveCity
    fuzzer: Credentials
    scenarios: list[str]
    ids: list[str]  # citizens whose codes are shown
    filed: list[
        str
    ]  # citizens that generated records are filed about (codes' tiers stay as seeded)
    rng: random.Random
    # Webhook subscriptions the fuzzer made (so their routes answer more than 404).
    subscriptions: list[str] = field(default_factory=list)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def access_token(self, who: Credentials) -> str:
        token, fetched = self._tokens.get(who.client_id, ("", 0.0))
        if time.monotonic() - fetched > 240:  # tokens live 300 s
            for _ in range(3):
                response = httpx.post(
                    self.city.url + "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(who.client_id, who.client_secret),
                )
                if response.status_code != 429:  # the fuzzing of /oauth/token meets its limit
                    break
                time.sleep(float(response.headers["Retry-After"]))
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            self._tokens[who.client_id] = (token, time.monotonic())
        return token

    def credit_code(self) -> str:
        number = self.rng.choice([self.city.excellent, self.city.good, self.city.poor])
        response = httpx.post(
            self.city.url + "/api/v1/credit-codes",
            json={"id_number": number},
            headers={"Authorization": f"Bearer {self.access_token(self.city.app)}"},
        )
        assert response.status_code == 201, response.text
        code: str = response.json()["token"]
        return code

    def maybe(self, probability: float = 0.6) -> bool:
        return self.rng.random() < probability

    def swap_in(self, case: schemathesis.Case) -> None:
        """Replace some generated values by real ones (valid cases only, so they stay valid)."""
        if "code" in (case.path_parameters or {}) and self.maybe():
            case.path_parameters["code"] = self.rng.choice(self.scenarios)
        if (
            "subscription_id" in (case.path_parameters or {})
            and self.subscriptions
            and self.maybe()
        ):
            case.path_parameters["subscription_id"] = self.rng.choice(self.subscriptions)
        body = case.body
        if not isinstance(body, dict):
            return
        if "token" in body and self.maybe():
            body["token"] = self.credit_code()
        if "scenario" in body and self.maybe(0.8):
            body["scenario"] = self.rng.choice(self.scenarios)
        if "id_number" in body and self.maybe():
            body["id_number"] = self.rng.choice(self.ids)
        if "url" in body and self.maybe():
            body["url"] = "https://receiver.example/hooks"  # nothing is sent: no scheduler runs
        if "event_types" in body and self.maybe():
            body["event_types"] = ["scenario.published", "keys.rotated"]
        if "venues" in body and isinstance(body["venues"], list):
            body["venues"] = []  # the city office has no venues; unknown ones are a 422 anyway
        if isinstance(body.get("records"), list):
            for row in body["records"]:
                if isinstance(row, dict) and self.maybe():
                    row.update(
                        source="court",
                        id_number=self.rng.choice(self.filed),
                        item_code=self.rng.choice(["AWARD", "DEBTOR"]),
                        occurred_on="2026-05-01",
                        reported_on="2026-05-03",
                    )


def _fuzzer(city: LiveCity) -> Credentials:
    """A client with every scope, acting for the operator that runs the demo scenarios."""
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        operator_id = session.scalar(
            select(Scenario.operator_id).where(Scenario.code == "library-deposit-free")
        )
        assert session.get(Operator, operator_id) is not None
        issued = register_client(
            session,
            name="fuzzer",
            kind="operator",
            scopes=ALL_SCOPES,
            operator_id=operator_id,
            key_secret=city.settings.key_secret,
        )
        assert issued.secret is not None
        return Credentials(issued.client.client_id, issued.secret)


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)


def _run(
    operation: Any,
    mode: schemathesis.GenerationMode,
    real: Real,
    http: requests.Session,
    tally: Tally,
) -> None:
    examples = max(1, int(EXAMPLES[mode] * SCALE))

    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: schemathesis.Case) -> None:
        if mode is schemathesis.GenerationMode.POSITIVE:
            real.swap_in(case)
        headers = {"Authorization": f"Bearer {real.access_token(real.fuzzer)}"}
        response = case.call(base_url=real.city.url, session=http, headers=headers, timeout=30)
        tally.cases[operation.label] += 1
        if response.status_code == 201 and case.path.endswith("/webhooks/subscriptions"):
            real.subscriptions.append(response.json()["id"])
        tally.statuses[response.status_code] += 1
        kind = ""
        if response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
            kind = str(response.json().get("type", "")).rsplit("/", 1)[-1]
        tally.by_operation[(operation.label, response.status_code, kind)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (operation.label, failure.title)
                tally.failures.setdefault(
                    key,
                    f"{failure.title}: {failure.message}\n{case.as_curl_command(headers=headers)}",
                )

    try:
        one()
    except Unsatisfiable:
        # Nothing to get wrong (no parameters and no body): there is no invalid request to make.
        assert mode is schemathesis.GenerationMode.NEGATIVE


# The suite's longest test: PostgreSQL's run is in test_api_fuzz_postgresql.py, so that pytest-xdist
# (--dist loadfile) gives it another worker than this SQLite one.
@pytest.mark.parametrize("city", ["sqlite"], indirect=True)
def test_the_api_answers_generated_requests_as_its_document_says(
    city: LiveCity, record_property: Callable[[str, object], None]
) -> None:
    fuzzer = _fuzzer(city)
    schema = schemathesis.openapi.from_url(city.url + "/api/openapi.json", config=CONFIG)
    real = Real(
        city,
        fuzzer,
        scenarios=["library-deposit-free", "bus-fare-discount", "power-bank-free"],
        ids=[city.excellent, city.good, city.poor, factories.id_number()],
        filed=[factories.id_number(), factories.id_number()],
        rng=random.Random(SEED),
    )
    real.access_token(fuzzer), real.access_token(city.app)  # before /oauth/token is fuzzed
    tally = Tally()
    started = time.monotonic()
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in EXAMPLES:
                _run(operation, mode, real, http, tally)
    elapsed = time.monotonic() - started
    total = sum(tally.cases.values())
    summary = (
        f"{total} cases over {len(tally.cases)} operations in {elapsed:.0f} s; "
        f"statuses {dict(sorted(tally.statuses.items()))}; {len(tally.failures)} distinct failures"
    )
    print(summary)
    for (label, status, kind), n in sorted(tally.by_operation.items()):
        print(f"  {label:45} {status} {kind:24} × {n}")
    record_property("fuzz", summary)
    assert not tally.failures, (
        summary
        + "\n\n"
        + "\n\n".join(f"{label}: {text}" for (label, _), text in sorted(tally.failures.items()))
    )
    # Operations without parameters or body have one possible request; every other one gets many.
    # (The federation's entry and trust list, like discovery, the JWKS and the catalogue, take no
    # parameters; the objections list takes one enumerated query parameter, so it has fewer distinct
    # requests.) 37: issue 15 adds the 8 webhook subscription operations and the pull of a link
    # (GET /api/v1/links/{pseudonym}).
    assert len(tally.cases) == 37 and sum(n >= 100 * SCALE for n in tally.cases.values()) >= 20, (
        tally.cases
    )


def test_the_document_describes_errors_codes_and_rules_as_the_server_has_them(
    city: LiveCity,
) -> None:
    document = httpx.get(city.url + "/api/openapi.json").json()
    responses = document["components"]["responses"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert "default" not in operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                if int(status) == 414:
                    # gunicorn's refusal of an over-long request line, before the app: said, with
                    # no body the app would shape (documented where a query string can grow).
                    assert "content" not in response and response["description"], (method, path)
                    continue
                shared = responses[response["$ref"].rsplit("/", 1)[-1]]
                assert shared["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
            listed = {int(s) for s in operation["responses"]}
            assert {400, 422, 500, 503} <= listed, (method, path)
            if operation.get("security", [{}])[0].get("oauth2") is not None:
                assert 401 in listed, (method, path)
    assert responses["TOO_MANY_REQUESTS"]["headers"]["Retry-After"]["required"]
    assert responses["SERVICE_UNAVAILABLE"]["headers"]["Retry-After"]["required"]
    assert responses["METHOD_NOT_ALLOWED"]["headers"]["Allow"]["required"]

    issued = document["paths"]["/api/v1/credit-codes"]["post"]["responses"]["201"]
    assert set(issued["content"]) == {"application/json", "image/png", "image/svg+xml"}
    assert issued["content"]["application/json"]["schema"]["$ref"].endswith("/IssuedCode")
    schemas = document["components"]["schemas"]
    id_number = schemas["IssueRequest"]["properties"]["id_number"]
    assert (id_number["minLength"], id_number["maxLength"]) == (18, 18)
    assert schemas["ScenarioIn"]["properties"]["category"]["enum"] == sorted(CATEGORIES)
    assert schemas["ContentIn"]["properties"]["quota_per_day"]["minimum"] == 1
    assert schemas["Presented"]["properties"]["scenario"]["pattern"] == CODE.pattern
    rule = schemas["EligibilityRule"]
    assert {kind["title"] for kind in rule["oneOf"]} == set(CONDITIONS)
    assert schemas["ContentIn"]["properties"]["eligibility"]["allOf"] == [
        {"$ref": "#/components/schemas/EligibilityRule"}
    ]


def test_a_method_a_path_does_not_document_is_405_naming_the_ones_it_does(city: LiveCity) -> None:
    document = httpx.get(city.url + "/api/openapi.json").json()
    token = httpx.post(
        city.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(city.venue.client_id, city.venue.client_secret),
    ).json()["access_token"]
    checked = 0
    for path, operations in document["paths"].items():
        documented = {m.upper() for m in operations if m != "parameters"}
        url = city.url + path.replace("{code}", "library-deposit-free")
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
            answer = httpx.request(method, url, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert answer.json()["type"] == "/problems/method-not-allowed"
            allowed = {m.strip() for m in answer.headers["Allow"].split(",")}
            assert allowed - {"OPTIONS", "HEAD"} == documented, (method, path)
            checked += 1
    assert checked >= 40


def test_each_bad_id_number_is_named_and_never_echoed(city: LiveCity) -> None:
    good = city.good
    wrong_check = good[:-1] + ("1" if good[-1] != "1" else "2")
    cases = {
        good[:-1]: 422,  # 17 characters
        f" {good} ": 422,  # spaces are not part of an ID number
        good[:-1] + "Y": 422,
        "４" + good[1:]: 422,  # a full-width digit
        wrong_check: 422,  # the check character does not match
        factories.id_number(): 404,  # valid, but no records here
        city.poor.lower(): 201,  # a lower-case check character X is read as X
    }
    for number, status in cases.items():
        answer = city.issue_code(number)
        assert answer.status_code == status, (number, answer.text)
        if status == 422:
            assert answer.json()["type"] == "/problems/validation-error"
            assert list(answer.json()["errors"]) == ["id_number"]
        assert number.strip() not in answer.text and good not in answer.text
