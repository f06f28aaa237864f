"""The SDK alone, against its mock city: retries and backoff, Retry-After, typed errors, offline checks."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from citycredit_partner import (
    AlreadyRedeemedError,
    APIConnectionError,
    CodeRejectedError,
    NotEligibleError,
    NotFoundError,
    PartnerClient,
    QuotaExhaustedError,
    ServerError,
)
from citycredit_partner import _client as client_module
from citycredit_partner.testing import MockCity


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", recorded.append)
    return recorded


def make(city: MockCity, **options: object) -> PartnerClient:
    return PartnerClient("cc_test", "s", "https://city.test", transport=city.transport(), **options)  # type: ignore[arg-type]


def test_verify_redeem_and_the_typed_refusals() -> None:
    city = MockCity(scenarios={"library": 3, "bus": 4})
    with make(city) as desk:
        code = city.issue_code(tier_level=3)
        assert desk.verify(code, "library").eligible and not desk.verify(code, "bus").eligible
        assert desk.redeem(code, "library").scenario == "library"
        with pytest.raises(AlreadyRedeemedError):
            desk.redeem(code, "library")
        with pytest.raises(QuotaExhaustedError):
            desk.redeem(city.issue_code(tier_level=3), "library")
        with pytest.raises(NotEligibleError):
            desk.redeem(code, "bus")
        with pytest.raises(NotFoundError) as missing:
            desk.verify(code, "zoo")
        assert missing.value.type == "/problems/unknown-scenario"


def test_server_errors_are_retried_with_growing_jittered_backoff(sleeps: list[float]) -> None:
    city = MockCity()
    with make(city, max_retries=3, backoff=0.5) as desk:
        desk._access_token()
        city.fail_next(503, times=3)
        assert desk.verify(city.issue_code(tier_level=3), "library-deposit-free").eligible
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.5 * 2**i for i, s in enumerate(sleeps))


def test_retries_give_up_with_a_typed_error(sleeps: list[float]) -> None:
    city = MockCity()
    with make(city, max_retries=2) as desk:
        desk._access_token()
        city.fail_next(500, times=3)
        with pytest.raises(ServerError):
            desk.verify(city.issue_code(tier_level=3), "library-deposit-free")
    assert len(sleeps) == 2


def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(
                429, headers={"Retry-After": "7"}, json={"type": "/problems/rate-limited"}
            )
        return httpx.Response(200, json={"issuer": "x"})

    with PartnerClient("a", "b", "https://c.test", transport=httpx.MockTransport(handler)) as desk:
        assert desk.issuer == "x"
    assert sleeps == [7.0]


def test_connection_errors_are_retried_then_reported(sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        PartnerClient(
            "a", "b", "https://c.test", transport=httpx.MockTransport(handler), max_retries=2
        ) as desk,
        pytest.raises(APIConnectionError),
    ):
        desk.verify("x", "y")
    assert len(sleeps) == 2


def test_one_idempotency_key_is_sent_on_every_retry_of_a_redemption(sleeps: list[float]) -> None:
    city = MockCity()
    with make(city) as desk:
        desk._access_token()
        city.fail_next(502)
        desk.redeem(city.issue_code(tier_level=3), "library-deposit-free")
    keys = [
        r.headers.get("Idempotency-Key")
        for r in city.requests
        if r.url.path == "/api/v1/redemptions"
    ]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


def test_offline_checks_and_a_rate_limited_jwks_refetch() -> None:
    city = MockCity(issuer="huangshi")
    with make(city) as desk:
        result = desk.verify_offline(city.issue_code(tier_level=4, local_tier="AA"))
        assert (result.tier_level, result.local_tier, result.qualifies(4)) == (4, "AA", True)
        stale = city.issue_code(
            tier_level=4, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        )
        with pytest.raises(CodeRejectedError) as expired:
            desk.verify_offline(stale)
        assert expired.value.reason == "token-expired"
        other = MockCity(issuer="huangshi")
        for _ in range(5):
            with pytest.raises(CodeRejectedError) as unknown:
                desk.verify_offline(other.issue_code(tier_level=4))
            assert unknown.value.reason == "unknown-key"
    fetches = [r for r in city.requests if r.url.path == "/.well-known/jwks.json"]
    assert len(fetches) == 1  # five unknown kids within a minute cost no extra download


def test_a_key_the_city_withdraws_stops_verifying_once_the_cache_ages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from citycredit_partner import _offline

    city = MockCity(issuer="huangshi")
    clock = [1000.0]
    monkeypatch.setattr(_offline.time, "monotonic", lambda: clock[0])
    with make(city) as desk:
        old_code = city.issue_code(tier_level=3)
        assert desk.verify_offline(old_code).tier_level == 3
        # The city rotates and withdraws the old key.
        city.key, city.kid = Ed25519PrivateKey.generate(), "mock-next"
        clock[0] += 301
        with pytest.raises(CodeRejectedError) as withdrawn:
            desk.verify_offline(old_code)
        assert withdrawn.value.reason == "unknown-key"
