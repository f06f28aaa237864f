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

:class:`MockFederation` plays several member cities and the federation's trust anchor
(docs/FEDERATION.md), for desks that meet visitors from partner cities:

    federation = MockFederation(2)  # 420200 黄石市 (a 0–1000 scale), 420100 武汉市 (AAA–D)
    home, away = federation.cities
    desk = federation.client(home.issuer)  # trust_anchor pinned
    code = away.issue_code(local_tier="AA", cross_city="*")
    result = desk.verify_offline(code)
    assert result.visitor and result.tier_level == 4 and result.local_tier is None

:func:`signed_webhook` makes a webhook as the city sends it, for a receiver's tests:

    secret = new_webhook_secret()
    body, headers = signed_webhook(secret, "tier.changed", {"pseudonym": "lk_1", ...})
    assert WebhookReceiver(secret).receive(body, headers).type == "tier.changed"
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks import Webhook

from ._client import PartnerClient
from ._errors import CodeRejectedError
from ._offline import MAX_LIFETIME, KeyCache, verify_offline
from ._trustlist import (
    DEFAULT_MAX_AGE,
    ENTRY_TYPE,
    LIST_TYPE,
    TrustListCache,
    jwk_thumbprint,
    public_jwk,
)

__all__ = [
    "LETTER_GRADES",
    "SCORE_SCALE",
    "MockCity",
    "MockFederation",
    "new_webhook_secret",
    "signed_webhook",
]

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
    "unsupported-grant-type": "The grant type is not supported",
    "token-malformed": "The credit code is not a well-formed signed token",
    "token-unsigned": "The credit code is not signed (alg 'none')",
    "algorithm-not-allowed": "The credit code uses an algorithm the city does not use",
    "unknown-key": "The credit code names a key the city has not published",
    "bad-signature": "The credit code's signature does not match its content",
    "token-expired": "The credit code has expired",
    "wrong-issuer": "The credit code was issued by another city",
    "issuer-not-member": "The credit code was issued by a city that is not a member of the federation",
    "member-suspended": "The credit code's city is suspended from the federation",
    "trust-list-too-old": "The trust list held here is older than its maximum age",
    "mapping-unknown": "The credit code names a tier mapping its city has not published",
    "no-cross-city-consent": "The citizen has not consented to recognition of their code in this city",
    "not-federated": "This city is not part of a federation",
    "unknown-scenario": "No published scenario has this code",
    "not-eligible": "The citizen does not qualify for this benefit",
    "scenario-unavailable": "The scenario cannot be used here or now",
    "already-redeemed": "This credit code was already redeemed for this benefit",
    "quota-exhausted": "The benefit's quota is used up",
    "not-found": "No such resource",
    "method-not-allowed": "The method is not allowed on this resource",
    "internal-error": "Internal error",
    "service-unavailable": "The service is briefly unavailable",
    "too-many-requests": "Too many requests",
}
# Two cities' tier tables (local tier -> common level), deliberately unlike: "A" is 4 on one, 3 on the other.
SCORE_SCALE: list[dict[str, Any]] = [
    {"code": "S", "name_zh": "S级（900–1000分）", "name_en": "S (900–1000)", "common_level": 5},
    {"code": "A", "name_zh": "A级（800–899分）", "name_en": "A (800–899)", "common_level": 4},
    {"code": "B", "name_zh": "B级（700–799分）", "name_en": "B (700–799)", "common_level": 3},
    {"code": "C", "name_zh": "C级（600–699分）", "name_en": "C (600–699)", "common_level": 3},
    {"code": "D", "name_zh": "D级（500–599分）", "name_en": "D (500–599)", "common_level": 2},
    {"code": "E", "name_zh": "E级（0–499分）", "name_en": "E (0–499)", "common_level": 1},
]
LETTER_GRADES: list[dict[str, Any]] = [
    {"code": "AAA", "name_zh": "AAA级（诚信）", "name_en": "AAA", "common_level": 5},
    {"code": "AA", "name_zh": "AA级（守信）", "name_en": "AA", "common_level": 4},
    {"code": "A", "name_zh": "A级（良好）", "name_en": "A", "common_level": 3},
    {"code": "B", "name_zh": "B级（一般）", "name_en": "B", "common_level": 2},
    {"code": "C", "name_zh": "C级（警示）", "name_en": "C", "common_level": 1},
    {"code": "D", "name_zh": "D级（失信）", "name_en": "D", "common_level": 1},
]
_MEMBERS = (
    ("420200", "黄石市", "Huangshi"),
    ("420100", "武汉市", "Wuhan"),
    ("420500", "宜昌市", "Yichang"),
    ("420600", "襄阳市", "Xiangyang"),
    ("420700", "鄂州市", "Ezhou"),
    ("420800", "荆门市", "Jingmen"),
    ("420900", "孝感市", "Xiaogan"),
    ("421000", "荆州市", "Jingzhou"),
    ("421100", "黄冈市", "Huanggang"),
    ("421200", "咸宁市", "Xianning"),
)
# A refused code is 422, except these (as the city answers them).
_REJECTION_STATUS = {"no-cross-city-consent": 403, "trust-list-too-old": 503}
_SCENARIO_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_MISSING = "Missing data for required field."
_METHODS = {
    "/oauth/token": "POST",
    "/.well-known/jwks.json": "GET",
    "/.well-known/citycredit-configuration": "GET",
    "/api/v1/verifications": "POST",
    "/api/v1/redemptions": "POST",
    "/api/v1/scenarios": "GET",
    "/api/v1/federation/trust-list": "GET",
    "/api/v1/federation/entry": "GET",
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
        name_zh: str | None = None,
        name_en: str | None = None,
        tiers: list[dict[str, Any]] | None = None,
        mapping_version: int = 1,
    ):
        """``scenarios``: code -> common tier needed; ``credentials``: the only client accepted;
        ``tiers``: the local tier table (code, name_zh, name_en, common_level) under ``mapping_version``."""
        # daily_quota counts per citizen per scenario per day, as the city's does; credentials None
        # accepts any client.
        self.issuer = issuer
        self.name_zh = name_zh or issuer
        self.name_en = name_en or issuer
        self.scenarios = dict(scenarios or {"library-deposit-free": 3})
        self.daily_quota = daily_quota
        self.credentials = credentials
        self.key = Ed25519PrivateKey.generate()
        self.kid = "mock-" + secrets.token_hex(4)
        self.key_nbf = int(dt.datetime.now(dt.UTC).timestamp())
        # kid -> (key, nbf, exp): retired keys whose codes may still be valid (``rotate_key``).
        self.retired_keys: dict[str, tuple[Ed25519PrivateKey, int, int]] = {}
        # The tier tables published (mapping version -> table), newest first in the entry.
        self.mapping_version = mapping_version
        self.tier_tables: dict[int, list[dict[str, Any]]] = {mapping_version: list(tiers or [])}
        self.federation_key = Ed25519PrivateKey.generate()
        self.federation: MockFederation | None = None
        # Scenarios that do not answer visitors (as a live version without open_to_visitors).
        self.closed_to_visitors: set[str] = set()
        self.redemptions: list[tuple[str, str]] = []
        self.requests: list[httpx.Request] = []
        self._failures: list[tuple[int, int | None]] = []
        self._citizens: dict[str, str] = {}  # code id -> citizen
        self._used: dict[tuple[str, str, str], int] = {}  # (citizen, scenario, day) -> count
        self._keys = KeyCache(self._jwks, min_refresh_interval=0)
        self._trust: TrustListCache | None = None

    def issue_code(
        self,
        *,
        tier_level: int | None = None,
        local_tier: str = "",
        lifetime: int = MAX_LIFETIME,
        now: dt.datetime | None = None,
        citizen: str = "citizen",
        cross_city: str | list[str] | None = None,
        mapping_version: int | None = None,
        key_id: str | None = None,
    ) -> str:
        """A code as the city's app shows it; codes of one ``citizen`` share that citizen's quotas.

        ``cross_city`` (claim ``xc``): ``"*"`` or the partner cities' issuer codes the citizen lets
        recognise the code; None, no consent. With a tier table, ``tier_level`` follows from
        ``local_tier`` (or the first local tier of that level is taken); giving both unlike the table
        makes a code whose ``ct`` does not follow its mapping. ``key_id`` signs with a retired key.
        """
        version = self.mapping_version if mapping_version is None else mapping_version
        table = self.tier_tables.get(version) or self.tier_tables.get(self.mapping_version, [])
        if tier_level is None:
            tier_level = next(t["common_level"] for t in table if t["code"] == local_tier)
        if not local_tier and table:
            local_tier = next(t["code"] for t in table if t["common_level"] == tier_level)
        issued = int((now or dt.datetime.now(dt.UTC)).timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": secrets.token_urlsafe(24),
            "ct": tier_level,
            "lt": local_tier,
            "mv": version,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_urlsafe(9),
        }
        if cross_city is not None:
            claims["xc"] = cross_city
        self._citizens[str(claims["jti"])] = citizen
        key, kid = self.key, self.kid
        if key_id is not None and key_id != self.kid:
            key, kid = self.retired_keys[key_id][0], key_id
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": None})

    def rotate_key(self, *, now: dt.datetime | None = None) -> str:
        """A new code-signing key; the old one stays published until its last code expires."""
        moment = int((now or dt.datetime.now(dt.UTC)).timestamp())
        self.retired_keys[self.kid] = (self.key, self.key_nbf, moment + MAX_LIFETIME)
        self.key, self.kid, self.key_nbf = (
            Ed25519PrivateKey.generate(),
            "mock-" + secrets.token_hex(4),
            moment,
        )
        return self.kid

    def entry(self, *, now: dt.datetime | None = None) -> str:
        """The city's entry (docs/FEDERATION.md), signed with its federation key."""
        issued = int((now or dt.datetime.now(dt.UTC)).timestamp())
        keys = [_signing_jwk(self.key, self.kid, self.key_nbf, None)]
        keys += [_signing_jwk(k, kid, nbf, exp) for kid, (k, nbf, exp) in self.retired_keys.items()]
        versions = sorted(self.tier_tables, reverse=True)[:3]
        payload = {
            "iss": self.issuer,
            "iat": issued,
            "names": {"zh": self.name_zh, "en": self.name_en},
            "level": "prefecture",
            "base_url": f"https://{self.issuer}.test",
            "signing_keys": keys,
            "mappings": [{"version": v, "tiers": self.tier_tables[v]} for v in versions],
            "current_mapping": self.mapping_version,
        }
        return jwt.encode(
            payload,
            self.federation_key,
            algorithm="EdDSA",
            headers={"kid": jwk_thumbprint(public_jwk(self.federation_key)), "typ": ENTRY_TYPE},
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
                    "city_name": self.name_zh,
                    "token_endpoint": base + "/oauth/token",
                    "jwks_uri": base + "/.well-known/jwks.json",
                    "api_base": base + "/api/v1",
                    "credit_code_algorithms": ["EdDSA"],
                    "credit_code_lifetime_seconds": MAX_LIFETIME,
                    "trust_anchor": self.federation.fingerprint if self.federation else None,
                    "trust_list_uri": base + "/api/v1/federation/trust-list",
                },
            )
        if path.startswith("/api/v1/federation/"):
            if self.federation is None:
                return _problem(request, 409, "not-federated", "this city holds no trust list")
            return self._federation_document(request, path, self.federation)
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
        now = dt.datetime.now(dt.UTC).timestamp()
        retired = [
            {k: v for k, v in _signing_jwk(key, kid, nbf, exp).items() if k not in ("nbf", "exp")}
            for kid, (key, nbf, exp) in self.retired_keys.items()
            if exp >= now
        ]
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": x,
                    "kid": self.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                },
                *retired,
            ]
        }

    def _federation_document(
        self, request: httpx.Request, path: str, federation: MockFederation
    ) -> httpx.Response:
        if path.endswith("/entry"):
            return httpx.Response(200, json={"entry": self.entry()})
        if federation.outage:
            return _problem(request, 503, "service-unavailable", "the trust list cannot be read")
        return httpx.Response(200, json={"trust_list": federation.served})

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
                "requirement": {"zh": f"通用等级 {zh}及以上", "en": f"common level {en} or above"},
                "eligibility": {"min_common_tier": level},
                "quota_per_day": self.daily_quota,
                "open_to_visitors": code not in self.closed_to_visitors,
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
        if self.federation is not None and self._trust is None:
            federation = self.federation
            # The city re-reads the list on every question: the mock follows the federation at once.
            self._trust = TrustListCache(
                lambda: federation.served,
                federation.anchor_jwk,
                max_age=federation.max_age,
                min_refresh_interval=0,
                refresh_after=0,
            )
        try:
            code = verify_offline(
                token, keys=self._keys, issuer=self.issuer, trust=self._trust, leeway=0
            )
        except CodeRejectedError as exc:
            status = _REJECTION_STATUS.get(exc.reason, 422)
            return _problem(request, status, exc.reason, exc.detail)
        level = code.tier_level
        eligible = level >= self.scenarios[scenario]
        now = dt.datetime.now(dt.UTC)
        benefit = {"zh": f"{scenario}（测试）", "en": f"{scenario} (test)"}
        answer: dict[str, Any] = {
            "verification_id": "ver_" + secrets.token_hex(8),
            "scenario": scenario,
            "scenario_version": 1,
            "benefit": benefit,
        }
        if code.visitor and scenario in self.closed_to_visitors:
            return _problem(
                request, 409, "scenario-unavailable", f"{scenario!r} is not open to visitors"
            )
        citizens = self._citizens
        # Who issued the code (a visitor's city, or this one); never the other city's local tier.
        issuer: dict[str, str | None] = {
            "code": self.issuer,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
        }
        if code.visitor:
            issuer = {
                "code": code.issuer,
                "name_zh": code.issuer_name_zh,
                "name_en": code.issuer_name_en,
            }
            if self.federation is not None:
                citizens = {
                    jti: f"{code.issuer}:{who}"
                    for jti, who in self.federation.city(code.issuer)._citizens.items()
                }
        if not redeem:
            zh, en = _TIER_NAMES[level]
            tier = {"level": level, "name_zh": zh, "name_en": en}
            return httpx.Response(
                200,
                json={
                    **answer,
                    "eligible": eligible,
                    "tier": tier,
                    "verified_at": now.isoformat(),
                    "visitor": code.visitor,
                    "issuer": issuer,
                },
            )
        if not eligible:
            return _problem(
                request, 403, "not-eligible", "the citizen does not qualify for this benefit"
            )
        if (token, scenario) in self.redemptions:
            return _problem(
                request, 409, "already-redeemed", "this code was already used for this benefit"
            )
        counter = (citizens.get(code.code_id, ""), scenario, now.date().isoformat())
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


class MockFederation:
    """A federation of mock cities: the trust anchor, ``cities`` members, and the list they serve.

    Every member serves the anchor-signed list at ``/api/v1/federation/trust-list`` and names the
    anchor's fingerprint in its discovery document. Members alternate two unlike tier tables
    (:data:`SCORE_SCALE`, a 0–1000 scale in six tiers, and :data:`LETTER_GRADES`, AAA–D). A test can
    suspend a member, rotate a city's code key, or have every city serve a rolled-back, forged,
    over-age or otherwise refused list, and can cut the list off (``outage``).
    """

    def __init__(
        self,
        cities: int | list[tuple[str, str, str]] = 2,
        *,
        scenarios: dict[str, int] | None = None,
        max_age: int = DEFAULT_MAX_AGE,
    ):
        """``cities``: how many, or (issuer, name_zh, name_en) for each; the first coordinates."""
        if isinstance(cities, int):
            extra = [
                (f"mock{i:02d}", f"测试市{i}", f"Mock City {i}") for i in range(11, cities + 1)
            ]
            cities = [*_MEMBERS, *extra][:cities]
        self.anchor_key = Ed25519PrivateKey.generate()
        self.anchor_jwk = public_jwk(self.anchor_key)
        self.fingerprint = jwk_thumbprint(self.anchor_jwk)
        self.max_age = max_age
        self.cities: list[MockCity] = []
        for index, (issuer, name_zh, name_en) in enumerate(cities):
            city = MockCity(
                issuer=issuer,
                name_zh=name_zh,
                name_en=name_en,
                scenarios=scenarios,
                tiers=SCORE_SCALE if index % 2 == 0 else LETTER_GRADES,
                mapping_version=7 if index % 2 == 0 else 3,
            )
            city.federation = self
            self.cities.append(city)
        self.status = {city.issuer: "active" for city in self.cities}
        self.seq = 0
        self.published: list[str] = []  # every list signed, oldest first
        self.served = ""  # what every member serves now
        self.outage = False  # True: the list endpoint answers 503
        self.publish()

    def city(self, issuer: str) -> MockCity:
        return next(city for city in self.cities if city.issuer == issuer)

    def client(self, issuer: str, **options: Any) -> PartnerClient:
        """A desk in city ``issuer`` with the anchor pinned (``options`` go to PartnerClient)."""
        options.setdefault("trust_anchor", self.fingerprint)
        return PartnerClient(
            "cc_test",
            "secret",
            f"https://{issuer}.test",
            transport=self.city(issuer).transport(),
            **options,
        )

    def publish(self, *, now: dt.datetime | None = None) -> str:
        """Sign the next list (the members' current entries and statuses); every member serves it."""
        self.seq += 1
        token = self.sign_list(seq=self.seq, now=now)
        self.published.append(token)
        self.served = token
        return token

    def sign_list(
        self,
        *,
        seq: int,
        now: dt.datetime | None = None,
        members: list[dict[str, Any]] | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> str:
        """A list as the coordinator signs it (``key`` another than the anchor's forges one)."""
        moment = now or dt.datetime.now(dt.UTC)
        signer = key or self.anchor_key
        payload = {
            "format": 1,
            "seq": seq,
            "iat": int(moment.timestamp()),
            "coordinator": self.cities[0].issuer,
            "value_sets": {
                "common_levels": [
                    {"level": level, "name_zh": zh, "name_en": en}
                    for level, (zh, en) in _TIER_NAMES.items()
                ],
                "categories": [{"code": "library", "name_zh": "图书馆", "name_en": "Libraries"}],
            },
            "members": self.members(now=moment) if members is None else members,
        }
        # The anchor's public key travels in the header; a verifier uses it only if its thumbprint
        # is the pinned fingerprint (the kid).
        return jwt.encode(
            payload,
            signer,
            algorithm="EdDSA",
            headers={"kid": self.fingerprint, "typ": LIST_TYPE, "jwk": public_jwk(signer)},
        )

    def members(self, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        return [
            {
                "issuer": city.issuer,
                "status": self.status[city.issuer],
                "federation_key": public_jwk(city.federation_key),
                "status_changed_at": city.key_nbf,
                "entry": city.entry(now=now),
            }
            for city in self.cities
        ]

    # --- what a test makes happen -----------------------------------------------------------------

    def suspend(self, issuer: str) -> str:
        self.status[issuer] = "suspended"
        return self.publish()

    def reinstate(self, issuer: str) -> str:
        self.status[issuer] = "active"
        return self.publish()

    def leave(self, issuer: str) -> str:
        self.status[issuer] = "left"
        return self.publish()

    def rotate_key(self, issuer: str) -> str:
        """City ``issuer`` signs codes with a new key from now on; the list says so. The new kid."""
        kid = self.city(issuer).rotate_key()
        self.publish()
        return kid

    def serve(self, token: str) -> None:
        """Have every member serve this list (as a compromised or confused city might)."""
        self.served = token

    def publish_rolled_back(self) -> str:
        """Serve the list before the newest (genuinely signed, a lower ``seq``), as a replay would."""
        if len(self.published) < 2:
            self.publish()
        self.serve(self.published[-2])
        return self.served

    def publish_forged(self) -> str:
        """Serve a list signed by an impostor's key that claims the anchor's kid."""
        self.serve(self.sign_list(seq=self.seq + 1, key=Ed25519PrivateKey.generate()))
        return self.served

    def publish_over_age(self, age: float | None = None) -> str:
        """Sign and serve a genuine list whose ``iat`` is ``age`` (default max age + 1 h) ago."""
        back = dt.timedelta(seconds=self.max_age + 3600 if age is None else age)
        return self.publish(now=dt.datetime.now(dt.UTC) - back)

    def publish_with_unsigned_entry(self, issuer: str) -> str:
        """Sign and serve a list whose entry for ``issuer`` its federation key did not sign."""
        members = self.members()
        impostor = MockCity(issuer=issuer, tiers=SCORE_SCALE)
        for member in members:
            if member["issuer"] == issuer:
                member["entry"] = impostor.entry()
        self.seq += 1
        self.serve(self.sign_list(seq=self.seq, members=members))
        return self.served


def _signing_jwk(key: Ed25519PrivateKey, kid: str, nbf: int, exp: int | None) -> dict[str, Any]:
    return {**public_jwk(key), "kid": kid, "alg": "EdDSA", "use": "sig", "nbf": nbf, "exp": exp}


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


def new_webhook_secret() -> str:
    """A subscription secret like the city's: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_webhook(
    secret: str | list[str],
    event_type: str,
    data: dict[str, Any],
    *,
    webhook_id: str | None = None,
    created_at: dt.datetime | None = None,
    sent_at: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook as the city sends it: compact UTF-8 JSON, and a ``v1``
    signature per secret (several during a rotation), made by the `standardwebhooks` library."""
    created = (created_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    document = {
        "type": event_type,
        "timestamp": created.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    webhook_id = webhook_id or "msg_" + secrets.token_urlsafe(18)
    sent = int(time.time() if sent_at is None else sent_at)
    moment = dt.datetime.fromtimestamp(sent, dt.UTC)
    held = [secret] if isinstance(secret, str) else secret
    signatures = " ".join(Webhook(one).sign(webhook_id, moment, body) for one in held)
    return body, {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(sent),
        "webhook-signature": signatures,
    }
