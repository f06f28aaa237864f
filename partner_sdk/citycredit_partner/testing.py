"""A fake city for partners' own tests: real signatures, no server.

    from citycredit_partner import PartnerClient
    from citycredit_partner.testing import MockCity

    city = MockCity(scenarios={"library-deposit-free": 3})
    client = PartnerClient("cc_test", "secret", "https://city.test", transport=city.transport())
    code = city.issue_code(tier_level=4)
    assert client.verify(code, "library-deposit-free").eligible
    client.redeem(code, "library-deposit-free")
    assert city.redemptions == [(code, "library-deposit-free")]

It answers the same endpoints with the same status codes, problem types and shapes as a real city
(token, JWKS, discovery, the scenario catalogue, verifications, redemptions) — a contract test in the
city's own suite holds it to a real server — signs codes with a fresh Ed25519 key, and can be told to
fail (``fail_next(503)``) to exercise retries. Give ``credentials`` to have it refuse other clients.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ._errors import CodeRejectedError
from ._offline import MAX_LIFETIME, KeyCache, verify_offline

__all__ = ["MockCity"]

_TIER_NAMES = {
    5: ("极好", "Excellent"),
    4: ("优秀", "Very good"),
    3: ("良好", "Good"),
    2: ("一般", "Fair"),
    1: ("待提升", "Needs improvement"),
}
# The city's problem titles (``/problems/<type>``) for the problems the mock answers.
_TITLES = {
    "validation-error": "The request is not valid",
    "invalid-client": "Client authentication failed",
    "invalid-token": "The access token is missing, expired or void",
    "invalid-request": "The token request is missing a required parameter",
    "unsupported-grant-type": "Only the client-credentials grant is supported",
    "token-malformed": "The credit code is not a well-formed signed token",
    "token-unsigned": "The credit code is not signed (alg 'none')",
    "algorithm-not-allowed": "The credit code uses an algorithm the city does not use",
    "unknown-key": "The credit code names a key the city has not published",
    "bad-signature": "The credit code's signature does not match its content",
    "token-expired": "The credit code has expired",
    "wrong-issuer": "The credit code was issued by another city",
    "unknown-scenario": "No published scenario has this code",
    "not-eligible": "The citizen does not qualify for this benefit",
    "already-redeemed": "This credit code was already redeemed for this benefit",
    "quota-exhausted": "The benefit's quota is used up",
    "not-found": "No such resource",
    "method-not-allowed": "The method is not allowed on this resource",
    "internal-error": "Internal error",
    "service-unavailable": "The service is briefly unavailable",
    "too-many-requests": "Too many requests",
}
_SCENARIO_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_MISSING = "Missing data for required field."
_METHODS = {
    "/oauth/token": "POST",
    "/.well-known/jwks.json": "GET",
    "/.well-known/citycredit-configuration": "GET",
    "/api/v1/verifications": "POST",
    "/api/v1/redemptions": "POST",
    "/api/v1/scenarios": "GET",
}
_TOKEN = "mock-token"


class MockCity:
    def __init__(
        self,
        *,
        issuer: str = "mockcity",
        scenarios: dict[str, int] | None = None,
        daily_quota: int = 1,
        credentials: tuple[str, str] | None = None,
    ):
        """``scenarios``: code -> common tier needed; ``credentials``: the only client accepted."""
        # daily_quota counts per citizen per scenario per day, as the city's does; credentials None
        # accepts any client.
        self.issuer = issuer
        self.scenarios = dict(scenarios or {"library-deposit-free": 3})
        self.daily_quota = daily_quota
        self.credentials = credentials
        self.key = Ed25519PrivateKey.generate()
        self.kid = "mock-" + secrets.token_hex(4)
        self.redemptions: list[tuple[str, str]] = []
        self.requests: list[httpx.Request] = []
        self._failures: list[tuple[int, int | None]] = []
        self._citizens: dict[str, str] = {}  # code id -> citizen
        self._used: dict[tuple[str, str, str], int] = {}  # (citizen, scenario, day) -> count
        self._keys = KeyCache(self._jwks, min_refresh_interval=0)

    def issue_code(
        self,
        *,
        tier_level: int,
        local_tier: str = "",
        lifetime: int = MAX_LIFETIME,
        now: dt.datetime | None = None,
        citizen: str = "citizen",
    ) -> str:
        """A code as the city's app shows it; codes of one ``citizen`` share that citizen's quotas."""
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
        self._citizens[str(claims["jti"])] = citizen
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": None}
        )

    def fail_next(self, status: int, times: int = 1, *, retry_after: int | None = None) -> None:
        """Answer the next ``times`` requests with a ``status`` problem, ``Retry-After`` if given."""
        self._failures.extend([(status, retry_after)] * times)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    # --- the fake endpoints --------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self._failures:
            status, retry_after = self._failures.pop(0)
            slug = {503: "service-unavailable", 429: "too-many-requests"}.get(
                status, "internal-error"
            )
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            return _problem(request, status, slug, "injected failure", headers=headers)
        allowed = _METHODS.get(path)
        if allowed is None:
            return _problem(request, 404, "not-found", "The requested URL was not found.")
        if request.method != allowed:
            return _problem(
                request,
                405,
                "method-not-allowed",
                "The method is not allowed for the requested URL.",
                headers={
                    "Allow": ", ".join(
                        sorted({"OPTIONS", allowed} | ({"HEAD"} if allowed == "GET" else set()))
                    )
                },
            )
        if path == "/oauth/token":
            return self._token(request)
        if path == "/.well-known/jwks.json":
            return httpx.Response(200, json=self._jwks())
        if path == "/.well-known/citycredit-configuration":
            base = f"{request.url.scheme}://{request.url.netloc.decode()}"
            return httpx.Response(
                200,
                json={
                    "issuer": self.issuer,
                    "city_name": self.issuer,
                    "token_endpoint": base + "/oauth/token",
                    "jwks_uri": base + "/.well-known/jwks.json",
                    "api_base": base + "/api/v1",
                    "credit_code_algorithms": ["EdDSA"],
                    "credit_code_lifetime_seconds": MAX_LIFETIME,
                },
            )
        scope = {"/api/v1/verifications": "verify", "/api/v1/redemptions": "redeem"}.get(path)
        refused = self._bearer(request, scope)
        if refused is not None:
            return refused
        if path == "/api/v1/scenarios":
            return httpx.Response(
                200, json=[self._scenario(code) for code in sorted(self.scenarios)]
            )
        try:
            body = json.loads(request.content or b"")
        except ValueError:
            return _problem(request, 400, "validation-error", "Invalid JSON body.")
        errors = _presented_errors(body)
        if errors:
            return _problem(request, 422, "validation-error", "see errors", errors=errors)
        return self._verify_or_redeem(request, path.endswith("redemptions"), body)

    def _jwks(self) -> dict[str, Any]:
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {
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
        }

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode(errors="replace")).items()}
        if not form.get("grant_type"):
            return _problem(
                request,
                400,
                "invalid-request",
                "grant_type is required (grant_type=client_credentials)",
                error="invalid_request",
                error_description="grant_type is required (grant_type=client_credentials)",
            )
        if form["grant_type"] != "client_credentials":
            return _problem(
                request,
                400,
                "unsupported-grant-type",
                "grant_type must be client_credentials",
                error="unsupported_grant_type",
                error_description="grant_type must be client_credentials",
            )
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and value:
            decoded = base64.b64decode(value).decode()
            client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
        if not client_id or not secret:
            why = "send client credentials (HTTP Basic, form fields or an assertion)"
        elif self.credentials is not None and (client_id, secret) != self.credentials:
            why = "unknown client or wrong secret"
        else:
            return httpx.Response(
                200,
                json={
                    "access_token": _TOKEN,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "redeem verify",
                },
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
        return _problem(
            request,
            401,
            "invalid-client",
            why,
            headers={"WWW-Authenticate": 'Basic realm="citycredit"'},
            error="invalid_client",
            error_description=why,
        )

    def _bearer(self, request: httpx.Request, scope: str | None) -> httpx.Response | None:
        challenge = 'Bearer realm="citycredit"' + (f', scope="{scope}"' if scope else "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            detail = "send Authorization: Bearer <access token>"
        elif token.strip() != _TOKEN:
            detail, challenge = (
                "the access token is not valid",
                challenge + ', error="invalid_token"',
            )
        else:
            return None
        return _problem(
            request, 401, "invalid-token", detail, headers={"WWW-Authenticate": challenge}
        )

    def _scenario(self, code: str) -> dict[str, Any]:
        level = self.scenarios[code]
        zh, en = _TIER_NAMES[level]
        name = {"zh": f"{code}（测试）", "en": f"{code} (test)"}
        return {
            "code": code,
            "operator": "mock-operator",
            "category": "library",
            "status": "published",
            "live": {
                "number": 1,
                "state": "published",
                "name": name,
                "benefit": name,
                "requirement": {"zh": f"信用等级{zh}及以上", "en": f"tier {en} or better"},
                "eligibility": {"min_common_tier": level},
                "quota_per_day": self.daily_quota,
                "quota_per_month": None,
                "quota_total": None,
                "valid_from": None,
                "valid_until": None,
                "review_note": None,
            },
            "pending": None,
            "venues": [],
        }

    def _verify_or_redeem(
        self, request: httpx.Request, redeem: bool, body: dict[str, Any]
    ) -> httpx.Response:
        scenario, token = body["scenario"], body["token"]
        if scenario not in self.scenarios:
            return _problem(
                request,
                404,
                "unknown-scenario",
                f"no published scenario {scenario!r} in effect here",
            )
        try:
            code = verify_offline(token, keys=self._keys, issuer=self.issuer, leeway=0)
        except CodeRejectedError as exc:
            return _problem(request, 422, exc.reason, exc.detail)
        level = code.tier_level
        eligible = level >= self.scenarios[scenario]
        now = dt.datetime.now(dt.UTC)
        benefit = {"zh": f"{scenario}（测试）", "en": f"{scenario} (test)"}
        answer = {
            "verification_id": "ver_" + secrets.token_hex(8),
            "scenario": scenario,
            "scenario_version": 1,
            "benefit": benefit,
        }
        if not redeem:
            zh, en = _TIER_NAMES[level]
            tier = {"level": level, "name_zh": zh, "name_en": en}
            return httpx.Response(
                200,
                json={**answer, "eligible": eligible, "tier": tier, "verified_at": now.isoformat()},
            )
        if not eligible:
            return _problem(
                request, 403, "not-eligible", "the citizen does not qualify for this benefit"
            )
        if (token, scenario) in self.redemptions:
            return _problem(
                request, 409, "already-redeemed", "this code was already used for this benefit"
            )
        counter = (self._citizens.get(code.code_id, ""), scenario, now.date().isoformat())
        if self._used.get(counter, 0) >= self.daily_quota:
            return _problem(
                request, 409, "quota-exhausted", f"today's quota of {self.daily_quota} is used"
            )
        self._used[counter] = self._used.get(counter, 0) + 1
        self.redemptions.append((token, scenario))
        return httpx.Response(
            201,
            json={
                **answer,
                "redemption_id": f"red_mock{len(self.redemptions)}",
                "redeemed_at": now.isoformat(),
            },
        )


def _presented_errors(body: Any) -> dict[str, list[str]]:
    """What the city's schema says of a verification or redemption body."""
    if not isinstance(body, dict):
        return {"_schema": ["Invalid input type."]}
    errors: dict[str, list[str]] = {}
    for name in ("token", "scenario"):
        value = body.get(name)
        if name not in body:
            errors[name] = [_MISSING]
        elif not isinstance(value, str):
            errors[name] = ["Not a valid string."]
        elif name == "token" and not 1 <= len(value) <= 2000:
            errors[name] = ["Length must be between 1 and 2000."]
        elif name == "scenario" and not _SCENARIO_CODE.match(value):
            errors[name] = ["3–64 characters: lower-case letters, digits and '-'"]
    for name in body:
        if name not in ("token", "scenario"):
            errors[name] = ["Unknown field."]
    return errors


def _problem(
    request: httpx.Request,
    status: int,
    slug: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {
        "type": f"/problems/{slug}",
        "title": _TITLES.get(slug, slug.replace("-", " ")),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/problem+json", **(headers or {})},
    )
