"""The SDK's MockCity held to the real city: the same requests, sent to both, get the same status codes,
media types, problem types and titles, headers that matter, and answer shapes (the same keys, nested,
with the same JSON types). A partner testing against the mock meets no surprise at the real city."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from citycredit_partner.testing import MockCity
from tests.e2e.conftest import LiveCity
from tests.e2e.test_partner_api import _forge

LIBRARY = "library-deposit-free"  # common tier ≥ 3, once per citizen a day, in both cities


@dataclass
class Side:
    """One city as the contract sees it: where to send requests, and codes to present."""

    http: httpx.Client
    client_id: str
    secret: str
    good: Callable[[], str]  # a fresh code of one citizen at tier 3 (qualifies)
    poor: Callable[[], str]  # a fresh code at tier 1 (does not)
    expired: str
    tampered: str


def _tamper(token: str) -> str:
    """The payload changed (tier raised to 5), the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    raised = base64.urlsafe_b64encode(json.dumps({**claims, "ct": 5}).encode()).rstrip(b"=")
    return f"{header}.{raised.decode()}.{signature}"


@contextmanager
def mock_side() -> Iterator[Side]:
    city = MockCity(
        issuer="huangshi",
        scenarios={LIBRARY: 3},
        daily_quota=1,
        credentials=("cc_contract", "contract-secret"),
    )
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with httpx.Client(base_url="https://city.test", transport=city.transport()) as http:
        yield Side(
            http,
            "cc_contract",
            "contract-secret",
            good=lambda: city.issue_code(tier_level=3, local_tier="A", citizen="good"),
            poor=lambda: city.issue_code(tier_level=1, local_tier="D", citizen="poor"),
            expired=city.issue_code(tier_level=3, now=past),
            tampered=_tamper(city.issue_code(tier_level=3)),
        )


@contextmanager
def real_side(city: LiveCity) -> Iterator[Side]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    with httpx.Client(base_url=city.url) as http:
        yield Side(
            http,
            city.venue.client_id,
            city.venue.client_secret,
            good=lambda: city.code(city.good),
            poor=lambda: city.code(city.poor),
            expired=_forge(city, iat=now - 600, exp=now - 480),
            tampered=_tamper(city.code(city.good)),
        )


def _shape(value: Any) -> Any:
    """The keys, nested, and JSON types of an answer, without its values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None if value is None else type(value).__name__


def _observe(response: httpx.Response, *, only: str | None = None) -> dict[str, Any]:
    media = response.headers.get("Content-Type", "").split(";")[0]
    body = response.json() if media.endswith("json") else None
    if only is not None and isinstance(body, list):
        body = next(item for item in body if item.get("code") == only)
    seen: dict[str, Any] = {"status": response.status_code, "media": media, "shape": _shape(body)}
    if media == "application/problem+json":
        seen.update(type=body["type"], title=body["title"], fields=sorted(body.get("errors", {})))
        if "error" in body:
            seen["oauth_error"] = body["error"]
    if "WWW-Authenticate" in response.headers:
        seen["challenge"] = response.headers["WWW-Authenticate"].split()[0]
    if "Allow" in response.headers:
        seen["allow"] = sorted(m.strip() for m in response.headers["Allow"].split(","))
    if response.headers.get("Cache-Control") == "no-store":
        seen["no_store"] = True
    return seen


def _exchanges(side: Side) -> dict[str, dict[str, Any]]:
    """The same requests, in the same order, for either city."""
    http = side.http
    seen: dict[str, dict[str, Any]] = {}

    def token(**kwargs: Any) -> httpx.Response:
        return http.post("/oauth/token", **kwargs)

    grant = {"grant_type": "client_credentials"}
    answer = token(data=grant, auth=(side.client_id, side.secret))
    seen["token"] = _observe(answer)
    bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    seen["token, wrong secret"] = _observe(token(data=grant, auth=(side.client_id, "wrong")))
    seen["token, no credentials"] = _observe(token(data=grant))
    seen["token, password grant"] = _observe(
        token(data={"grant_type": "password"}, auth=(side.client_id, side.secret))
    )
    seen["token, no grant type"] = _observe(token(data={}, auth=(side.client_id, side.secret)))
    seen["jwks"] = _observe(http.get("/.well-known/jwks.json"))
    seen["configuration"] = _observe(http.get("/.well-known/citycredit-configuration"))
    seen["catalogue"] = _observe(http.get("/api/v1/scenarios", headers=bearer), only=LIBRARY)

    def post(path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return http.post(path, json=body, headers=bearer if headers is None else headers)

    good = side.good()
    verify = "/api/v1/verifications"
    seen["verify, no token"] = _observe(post(verify, {"token": good, "scenario": LIBRARY}, {}))
    seen["verify, void token"] = _observe(
        post(verify, {"token": good, "scenario": LIBRARY}, {"Authorization": "Bearer void"})
    )
    seen["verify, good"] = _observe(post(verify, {"token": good, "scenario": LIBRARY}))
    seen["verify, poor"] = _observe(post(verify, {"token": side.poor(), "scenario": LIBRARY}))
    seen["verify, expired"] = _observe(post(verify, {"token": side.expired, "scenario": LIBRARY}))
    seen["verify, tampered"] = _observe(post(verify, {"token": side.tampered, "scenario": LIBRARY}))
    seen["verify, not a code"] = _observe(
        post(verify, {"token": "not a code", "scenario": LIBRARY})
    )
    seen["verify, unknown scenario"] = _observe(
        post(verify, {"token": good, "scenario": "no-such-scenario"})
    )
    seen["verify, no token field"] = _observe(post(verify, {"scenario": LIBRARY}))
    seen["verify, bad scenario code"] = _observe(
        post(verify, {"token": good, "scenario": "Not A Code!"})
    )
    seen["verify, number for token"] = _observe(post(verify, {"token": 5, "scenario": LIBRARY}))
    seen["verify, unknown field"] = _observe(
        post(verify, {"token": good, "scenario": LIBRARY, "tier": 5})
    )
    seen["verify, not JSON"] = _observe(
        http.post(verify, content=b"{", headers={**bearer, "Content-Type": "application/json"})
    )

    redeem = "/api/v1/redemptions"
    seen["redeem"] = _observe(post(redeem, {"token": good, "scenario": LIBRARY}))
    seen["redeem, replayed"] = _observe(post(redeem, {"token": good, "scenario": LIBRARY}))
    seen["redeem, second code same day"] = _observe(
        post(redeem, {"token": side.good(), "scenario": LIBRARY})
    )
    seen["redeem, not eligible"] = _observe(
        post(redeem, {"token": side.poor(), "scenario": LIBRARY})
    )
    seen["redeem, expired"] = _observe(post(redeem, {"token": side.expired, "scenario": LIBRARY}))

    seen["GET on verifications"] = _observe(http.get(verify, headers=bearer))
    seen["unknown path"] = _observe(http.get("/api/v1/nothing-here", headers=bearer))
    return seen


def test_the_mock_city_answers_as_the_real_city_does(city: LiveCity) -> None:
    with mock_side() as side:
        mock = _exchanges(side)
    with real_side(city) as side:
        real = _exchanges(side)
    assert list(mock) == list(real)
    differences = {
        name: {"mock": mock[name], "real": real[name]} for name in real if mock[name] != real[name]
    }
    assert not differences, json.dumps(differences, indent=1, ensure_ascii=False)
    # The contract is about something: the requests did reach every kind of answer.
    assert {seen["status"] for seen in real.values()} >= {
        200,
        201,
        400,
        401,
        403,
        404,
        405,
        409,
        422,
    }
