"""A fake city for partners' own tests: real signatures, no server.

    from citycredit_partner import PartnerClient
    from citycredit_partner.testing import MockCity

    city = MockCity(scenarios={"library-deposit-free": 3})
    client = PartnerClient("cc_test", "secret", "https://city.test", transport=city.transport())
    code = city.issue_code(tier_level=4)
    assert client.verify(code, "library-deposit-free").eligible
    client.redeem(code, "library-deposit-free")
    assert city.redemptions == [(code, "library-deposit-free")]

It answers the same endpoints with the same shapes and problem types as a real city (token, JWKS,
discovery, verifications, redemptions), signs codes with a fresh Ed25519 key, and can be told to fail
(``fail_next(503)``) to exercise retries.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ._offline import MAX_LIFETIME

__all__ = ["MockCity"]

_TIER_NAMES = {
    5: ("极好", "Excellent"),
    4: ("优秀", "Very good"),
    3: ("良好", "Good"),
    2: ("一般", "Fair"),
    1: ("待提升", "Needs improvement"),
}


class MockCity:
    def __init__(
        self,
        *,
        issuer: str = "mockcity",
        scenarios: dict[str, int] | None = None,
        daily_quota: int = 1,
    ):
        self.issuer = issuer
        self.scenarios = dict(scenarios or {"library-deposit-free": 3})
        self.daily_quota = daily_quota
        self.key = Ed25519PrivateKey.generate()
        self.kid = "mock-" + secrets.token_hex(4)
        self.redemptions: list[tuple[str, str]] = []
        self.requests: list[httpx.Request] = []
        self._failures: list[int] = []

    def issue_code(
        self,
        *,
        tier_level: int,
        local_tier: str = "",
        lifetime: int = MAX_LIFETIME,
        now: dt.datetime | None = None,
    ) -> str:
        issued = int((now or dt.datetime.now(dt.UTC)).timestamp())
        claims = {
            "iss": self.issuer,
            "sub": secrets.token_urlsafe(24),
            "ct": tier_level,
            "lt": local_tier,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_urlsafe(9),
        }
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": None}
        )

    def fail_next(self, status: int, times: int = 1) -> None:
        self._failures.extend([status] * times)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    # --- the fake endpoints --------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._failures:
            return _problem(self._failures.pop(0), "internal-error", "injected failure")
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(
                200,
                json={
                    "access_token": "mock-token",
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "verify redeem",
                },
            )
        if path == "/.well-known/jwks.json":
            raw = self.key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
            return httpx.Response(
                200,
                json={
                    "keys": [
                        {
                            "kty": "OKP",
                            "crv": "Ed25519",
                            "x": x,
                            "kid": self.kid,
                            "alg": "EdDSA",
                            "use": "sig",
                        }
                    ]
                },
            )
        if path == "/.well-known/citycredit-configuration":
            return httpx.Response(200, json={"issuer": self.issuer})
        if request.headers.get("Authorization") != "Bearer mock-token":
            return _problem(401, "invalid-token", "send the access token")
        body = json.loads(request.content or b"{}")
        if path in ("/api/v1/verifications", "/api/v1/redemptions"):
            return self._verify_or_redeem(path.endswith("redemptions"), body)
        return _problem(404, "not-found", path)

    def _verify_or_redeem(self, redeem: bool, body: dict[str, Any]) -> httpx.Response:
        scenario = body.get("scenario", "")
        if scenario not in self.scenarios:
            return _problem(404, "unknown-scenario", f"no published scenario {scenario!r}")
        try:
            claims = jwt.decode(
                body.get("token", ""),
                self.key.public_key(),
                algorithms=["EdDSA"],
                issuer=self.issuer,
            )
        except jwt.ExpiredSignatureError:
            return _problem(422, "token-expired", "the code has expired")
        except jwt.PyJWTError as exc:
            return _problem(422, "bad-signature", str(exc))
        level = int(claims["ct"])
        eligible = level >= self.scenarios[scenario]
        now = dt.datetime.now(dt.UTC).isoformat()
        benefit = {"zh": f"{scenario}（测试）", "en": f"{scenario} (test)"}
        if not redeem:
            zh, en = _TIER_NAMES[level]
            return httpx.Response(
                200,
                json={
                    "verification_id": "ver_mock",
                    "eligible": eligible,
                    "tier": {"level": level, "name_zh": zh, "name_en": en},
                    "scenario": scenario,
                    "benefit": benefit,
                    "verified_at": now,
                },
            )
        if not eligible:
            return _problem(403, "not-eligible", "the tier does not qualify")
        if (body["token"], scenario) in self.redemptions:
            return _problem(409, "already-redeemed", "this code was already used for this benefit")
        used = sum(1 for _, s in self.redemptions if s == scenario)
        if used >= self.daily_quota:
            return _problem(409, "quota-exhausted", "today's quota is used")
        self.redemptions.append((body["token"], scenario))
        return httpx.Response(
            201,
            json={
                "redemption_id": f"red_mock{len(self.redemptions)}",
                "verification_id": "ver_mock",
                "scenario": scenario,
                "benefit": benefit,
                "redeemed_at": now,
            },
        )


def _problem(status: int, slug: str, detail: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "type": f"/problems/{slug}",
            "title": slug.replace("-", " "),
            "status": status,
            "detail": detail,
        },
        headers={"Content-Type": "application/problem+json"},
    )
