"""PartnerClient: tokens, retries with backoff, typed errors, online and offline verification."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import os
import random
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from ._errors import APIConnectionError, PartnerError, error_from_response
from ._models import LinkedMember, OfflineVerification, Redemption, UploadResult, Verification
from ._offline import KeyCache, verify_offline
from ._trustlist import DEFAULT_MAX_AGE, TrustListCache

__all__ = ["PartnerClient"]

# Refusals (4xx) are final answers; only overload and server trouble are worth another try.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class PartnerClient:
    """A partner's connection to one city.

    >>> client = PartnerClient("cc_…", "ccs_…", "https://credit.example.gov.cn")
    >>> result = client.verify(scanned_text, "library-deposit-free")
    >>> if result.eligible: client.redeem(scanned_text, "library-deposit-free")
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        base_url: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        jwks_refresh_interval: float = 60.0,
        trust_anchor: str | None = None,
        trust_list_max_age: float = DEFAULT_MAX_AGE,
        trust_list_path: str | os.PathLike[str] | None = None,
    ):
        """``trust_anchor``: the federation's anchor fingerprint (or public JWK), pinned out of band,
        to recognise partner cities' codes offline. Left None, it is read once from the city's
        discovery document, which then trusts the city's TLS certificate as far as the pin goes.
        ``trust_list_path``: a file keeping the last good trust list across restarts (offline desks)."""
        self.client_id = client_id
        self._secret = client_secret
        self.max_retries = max_retries
        self._backoff = backoff
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "citycredit-partner/0.1", "Accept": "application/json"},
        )
        self._token: str | None = None
        self._token_expiry = 0.0
        self._token_lock = threading.Lock()
        self._keys = KeyCache(self._fetch_jwks, min_refresh_interval=jwks_refresh_interval)
        self._configuration: dict[str, Any] | None = None
        self.trust_list = TrustListCache(
            self._fetch_trust_list,
            trust_anchor if trust_anchor is not None else self._discovered_anchor,
            max_age=trust_list_max_age,
            min_refresh_interval=jwks_refresh_interval,
            store=trust_list_path,
        )

    # --- the partner's operations -------------------------------------------------------------

    def verify(self, token: str, scenario: str) -> Verification:
        """Ask the city whether the citizen qualifies; the answer is recorded as a verification."""
        data = self._request(
            "POST", "/api/v1/verifications", json={"token": token, "scenario": scenario}
        )
        return Verification.from_api(data)

    def redeem(
        self, token: str, scenario: str, *, idempotency_key: str | None = None
    ) -> Redemption:
        """Grant the benefit. Retries reuse one idempotency key, so a lost answer never redeems twice."""
        data = self._request(
            "POST",
            "/api/v1/redemptions",
            json={"token": token, "scenario": scenario},
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return Redemption.from_api(data)

    def verify_offline(self, token: str, *, now: dt.datetime | None = None) -> OfflineVerification:
        """Check the code's signature, issuer and expiry without asking the city about the citizen.

        The city's own codes are checked against its cached JWKS; a visitor's code (another member
        city's, ``visitor`` True) against the cached trust list: member, key, tier mapping and the
        citizen's cross-city consent. Only a key or city the caches have never seen makes them
        refetch (at most once a minute).
        """
        result = verify_offline(
            token, keys=self._keys, issuer=self.issuer, trust=self.trust_list, now=now
        )
        if not result.visitor and result.issuer_name_zh is None:
            name = self._discovery().get("city_name")
            result = dataclasses.replace(result, issuer_name_zh=name and str(name))
        return result

    def upload_records(
        self, records: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> UploadResult:
        """For data sources: up to 10,000 records; per-row errors come back in ``errors``."""
        data = self._request(
            "POST",
            "/api/v1/records",
            json={"records": records},
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return UploadResult(**data)

    def link(self, pseudonym: str) -> LinkedMember:
        """A linked member's level now (scope ``links:read``): refresh it before ``valid_until``.
        A revoked link, or one that never was, raises :class:`NotFoundError`: forget the member."""
        data = self._request("GET", "/api/v1/links/" + quote(pseudonym, safe=""))
        return LinkedMember.from_api(data)

    @property
    def issuer(self) -> str:
        """The city's issuer code, discovered once from ``/.well-known/citycredit-configuration``."""
        return str(self._discovery()["issuer"])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------

    def _discovery(self) -> dict[str, Any]:
        if self._configuration is None:
            self._configuration = self._send_with_retries(
                "GET", "/.well-known/citycredit-configuration", auth=False
            )
        return self._configuration

    def _discovered_anchor(self) -> str | None:
        # Trusts the city's TLS as far as the pin goes: whoever can answer for the city could name
        # another anchor. Pin trust_anchor where that matters.
        anchor = self._discovery().get("trust_anchor")
        return str(anchor) if isinstance(anchor, str) and anchor else None

    def _fetch_trust_list(self) -> str:
        data = self._send_with_retries("GET", "/api/v1/federation/trust-list", auth=False)
        return str(data["trust_list"])

    def _fetch_jwks(self) -> dict[str, Any]:
        return self._send_with_retries("GET", "/.well-known/jwks.json", auth=False)

    def _access_token(self, *, force: bool = False) -> str:
        with self._token_lock:
            # Refresh 30 s early so a token never expires between fetch and use.
            if force or self._token is None or time.monotonic() > self._token_expiry - 30:
                data = self._send_with_retries(
                    "POST",
                    "/oauth/token",
                    auth=False,
                    data={"grant_type": "client_credentials"},
                    basic=(self.client_id, self._secret),
                )
                self._token = str(data["access_token"])
                self._token_expiry = time.monotonic() + float(data.get("expires_in", 300))
            return self._token

    def _request(
        self, method: str, path: str, *, idempotency_key: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            return self._send_with_retries(
                method, path, auth=True, idempotency_key=idempotency_key, **kwargs
            )
        except PartnerError as exc:
            # A token voided by a secret rotation elsewhere: fetch a fresh one, once.
            if getattr(exc, "status", None) == 401:
                self._access_token(force=True)
                return self._send_with_retries(
                    method, path, auth=True, idempotency_key=idempotency_key, **kwargs
                )
            raise

    def _send_with_retries(
        self,
        method: str,
        path: str,
        *,
        auth: bool,
        idempotency_key: str | None = None,
        basic: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            headers = {}
            if auth:
                headers["Authorization"] = f"Bearer {self._access_token()}"
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
            try:
                response = self._http.request(method, path, headers=headers, auth=basic, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise APIConnectionError(f"cannot reach {self._http.base_url}: {exc}") from exc
                self._sleep(attempt, None)
                attempt += 1
                continue
            if response.is_success:
                body: dict[str, Any] = response.json()
                return body
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                self._sleep(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            raise error_from_response(response.status_code, _problem(response))

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            # Exponential backoff with full jitter (AWS architecture blog), so desks do not retry in step.
            delay = random.uniform(0, self._backoff * (2**attempt))
        time.sleep(min(delay, MAX_RETRY_AFTER))


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {
            "type": "about:blank",
            "title": response.reason_phrase,
            "status": response.status_code,
        }
    return body if isinstance(body, dict) else {"detail": str(body)}


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
