"""Security of every response and of every door: headers, and rate limits (Flask-Limiter).

Headers, on every response (pages, ``/api/docs``, the API, ``/me``): a Content-Security-Policy without
``'unsafe-inline'`` (inline scripts carry the request's nonce, :func:`csp_nonce`), ``nosniff``, a
Referrer-Policy, no framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), and HSTS when the
city's public URL is https.

Rate limits guard what a stranger can reach: the token endpoint, admin and citizen sign-in, one-time
code requests, and (after authentication) each client's verifications. A limit breached answers 429
with ``Retry-After``: a ``too-many-requests`` problem on the API, a page in Chinese and English on the
pages. Sign-in is throttled by name *and address* together and by address alone, never by name alone:
no account is ever locked, so a stranger cannot lock a real user out (the user signs in from their own
address), and every name, existing or not, is throttled alike, so no answer tells whether it exists.
Counters live where ``CITYCREDIT_RATE_LIMIT_STORAGE`` says: in memory (the demo; per process) or
Redis (production: shared by every worker and host).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Flask, Response, current_app, g, render_template, request, url_for
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse

from citycredit.core.config import ConfigError, Settings
from citycredit.web.api.problems import Problem, problem_response

log = logging.getLogger(__name__)

# --- limits -----------------------------------------------------------------------------------------
# "per name and address" limits count only failures, so a user signing in often is never throttled;
# the "attempts" limits count every request before the password is checked (atomically in the
# storage), which bounds a burst of parallel guesses that all arrive before any failure is counted.
SIGN_IN_FAILURES_PER_NAME_AND_ADDRESS = "5 per 15 minutes"
SIGN_IN_ATTEMPTS_PER_NAME_AND_ADDRESS = "10 per minute"
SIGN_IN_FAILURES_PER_ADDRESS = "30 per 15 minutes"
# A one-time code is an SMS in production: asking for one costs the city money. (The demo provider
# itself allows five per citizen per ten minutes, from anywhere, and answers that in its own words.)
CODE_REQUESTS_PER_ACCOUNT_AND_ADDRESS = "10 per 10 minutes"
# Per address alone, far above one person's use: thousands of phones share a carrier's NAT address.
CODE_REQUESTS_PER_ADDRESS = "200 per 10 minutes"
# A challenge allows five wrong codes (and says so); its count is read, then written, so this bounds
# the checks a burst of parallel guesses at one challenge could get in between.
CODE_CHECKS_PER_CHALLENGE = "10 per 5 minutes"
CODE_CHECK_FAILURES_PER_ADDRESS = "200 per 10 minutes"
# A client fetches a token every few minutes; these bound what a stranger (or a broken client) sends.
TOKEN_REQUESTS_PER_CLIENT_AND_ADDRESS = "30 per minute"
TOKEN_REQUESTS_PER_ADDRESS = "120 per minute"
# Counted only when a token is issued, i.e. only by whoever holds the client's credentials.
TOKENS_ISSUED_PER_CLIENT = "60 per minute"

STRATEGY = "sliding-window-counter"  # constant memory per key, no burst at a window's edge
NONCE_KEY = "csp_nonce"
FAILED_KEY = "sign_in_failed"
_TAG_LABEL = b"citycredit/rate-limit-key/v1"


def init_security(app: Flask) -> None:
    """Headers on every response, rate limits on the doors, 429 answers; call after every blueprint."""
    settings: Settings = app.extensions["citycredit"].settings
    limiter = _limiter(app, settings)
    app.extensions["citycredit_limiter"] = limiter
    app.extensions["citycredit_verify_limit"] = (
        parse(settings.rate_limit_verify),
        limiter,
        _key_prefix(settings),
    )
    _limit_doors(app, limiter)
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    hsts = settings.public_url.lower().startswith("https://")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _policy(response))
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def csp_nonce() -> str:
    """This request's script nonce (``<script nonce="{{ csp_nonce() }}">``); made on first use."""
    nonce: str | None = g.get(NONCE_KEY)
    if nonce is None:
        nonce = base64.b64encode(secrets.token_bytes(16)).decode()
        setattr(g, NONCE_KEY, nonce)
    return nonce


def allow_form_redirect(response: Response, url: str) -> Response:
    """Let this page's forms end in a redirect to ``url``'s origin (CSP ``form-action``: browsers
    check it on the redirect after a form POST too), e.g. the consent page of OAuth linking, whose
    answer returns to the operator's registered redirect URI. ``url`` must be a checked one."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    response.headers["Content-Security-Policy"] = _policy(response).replace(
        "form-action 'self'", f"form-action 'self' {origin}"
    )
    return response


def _policy(response: Response) -> str:
    if response.mimetype != "text/html":
        # JSON, CSV, images: nothing in them may load or run anything, nor be framed.
        return "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    nonce = g.get(NONCE_KEY)
    script = "script-src 'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    # form-action 'self': a sign-in provider that redirects to another origin after a form POST
    # (single sign-on) must add that origin here.
    return (
        f"default-src 'self'; {script}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


# --- rate limits ------------------------------------------------------------------------------------


def _limiter(app: Flask, settings: Settings) -> Limiter:
    for variable, value in (("CITYCREDIT_RATE_LIMIT_VERIFY", settings.rate_limit_verify),):
        try:
            parse(value)
        except ValueError:
            raise ConfigError(
                f"{variable} must be a rate such as '1200 per minute', not {value!r}"
            ) from None
    storage = settings.rate_limit_storage
    if not storage.startswith(("memory://", "redis://", "rediss://", "redis+unix://")):
        raise ConfigError(
            "CITYCREDIT_RATE_LIMIT_STORAGE must be memory:// or redis://host:6379/N, "
            f"not {storage!r}"
        )
    if storage.startswith("memory://") and not (
        settings.demo_mode or settings.environment == "development"
    ):
        log.warning(
            "rate limits are counted in memory, per worker process: set "
            "CITYCREDIT_RATE_LIMIT_STORAGE=redis://… so every worker and host shares one count"
        )
    # A Redis that does not answer must not hold a request for long (the limiter then counts in memory).
    options: dict[str, Any] = {}
    if not storage.startswith("memory://"):
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    limiter = Limiter(
        key_func=_address,
        storage_uri=storage,
        storage_options=options,
        strategy=STRATEGY,
        key_prefix=_key_prefix(settings),
        # Redis down: count in this process meanwhile, rather than fail every request or none.
        in_memory_fallback_enabled=True,
        headers_enabled=False,  # Retry-After is set on the 429 itself, no extra reads per request
    )
    limiter.init_app(app)
    return limiter


_storage_warned_at = -math.inf
# After the storage fails, verifications go uncounted this long before it is tried again.
STORAGE_RETRY_SECONDS = 10.0
_storage_down_until = -math.inf


def _key_prefix(settings: Settings) -> str:
    # Several cities may share one Redis; their counters must not mix.
    return f"citycredit:{settings.city_code}"


def limit_verifications() -> None:
    """Count a verification against the authenticated client's limit (``Settings.rate_limit_verify``).

    Called by the endpoint after the bearer token is checked: counting before would let anyone spend
    a client's allowance by sending its id with a forged token. One hit on the limiter's storage,
    not Flask-Limiter's per-view machinery: on the busiest endpoint that machinery cost ~0.6 ms a
    request (about a tenth of a verification), the hit ~0.03 ms (docs/BENCHMARKS.md).
    """
    item, limiter, prefix = current_app.extensions["citycredit_verify_limit"]
    if not limiter.enabled:
        return
    global _storage_down_until, _storage_warned_at
    if time.monotonic() < _storage_down_until:
        # The storage failed a moment ago: a hanging Redis would cost every verification its
        # timeout, so the count is skipped for a while rather than asked for again at once.
        return
    key = (prefix, "client|" + g.caller.client.client_id, "verifications")
    try:
        allowed = limiter.limiter.hit(item, *key)
    except Exception as exc:  # the storage is down: verify rather than fail every venue's desk
        _storage_down_until = time.monotonic() + STORAGE_RETRY_SECONDS
        if time.monotonic() - _storage_warned_at > 60:  # say so once a minute, not per request
            _storage_warned_at = time.monotonic()
            log.warning("rate limit storage unreachable, verifications not counted: %r", exc)
        return
    if not allowed:
        reset_at = limiter.limiter.get_window_stats(item, *key).reset_time
        retry_after = min(max(1, math.ceil(reset_at - time.time())), item.get_expiry())
        raise Problem(
            "too-many-requests",
            f"this client's verifications are over {item}; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def mark_failed() -> None:
    """This sign-in attempt failed: it counts against the failure limits (see the module's doc)."""
    setattr(g, FAILED_KEY, True)


def _failed(_response: Response) -> bool:
    return bool(g.get(FAILED_KEY, False))


def _issued(response: Response) -> bool:
    return response.status_code == 200


def _address() -> str:
    """The caller's address as the limits count it: an IPv6 address by its /64, which one subscriber
    holds whole (counting each /128 would give them 2^64 fresh allowances)."""
    address = get_remote_address() or "-"
    if ":" in address:
        try:
            return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
        except ValueError:
            return address
    return address


def _tag(text: str) -> str:
    """A keyed digest of what was typed (a name, an ID number): storage keys never hold it in clear."""
    key = hmac.new(str(current_app.secret_key).encode(), _TAG_LABEL, hashlib.sha256).digest()
    # "surrogatepass": a lone surrogate decoded from a caller's base64 must pick a counter, not raise.
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]


def _form(name: str) -> str:
    return request.form.get(name, "")[:256]


def _keyed(kind: str, *parts: Callable[[], str]) -> Callable[[], str]:
    def key() -> str:
        return "|".join([kind, *(part() for part in parts)])

    return key


def _admin_name() -> str:
    return _tag(_form("username").strip().lower()[:64])


def _admin_user() -> str:
    user = g.get("admin_user")
    return f"user:{user.id}" if user is not None else "-"


def _id_number() -> str:
    return _tag(_form("id_number").strip().upper())


def _challenge() -> str:
    return _tag(_form("challenge").strip())


def _token_client() -> str:
    """The client id a token request names (HTTP Basic, form field or assertion issuer), unverified."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    name = ""
    if scheme.lower() == "basic":
        try:
            # Decoded as the token endpoint decodes it (RFC 6749 2.3.1), so that `%63c_…` and `cc_…`
            # share one counter.
            name = unquote(base64.b64decode(value.strip()).decode().partition(":")[0])
        except ValueError:
            name = ""
    name = name or _form("client_id") or _assertion_issuer(request.form.get("client_assertion", ""))
    return _tag(name[:128])


def _assertion_issuer(assertion: str) -> str:
    """The ``iss`` an RFC 7523 assertion claims (unverified: it only picks the counter)."""
    parts = assertion.split(".")
    if len(parts) != 3 or len(parts[1]) > 4096:
        return ""
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):  # a caller's bytes: "[[[[…" two thousand deep is no claim
        return ""
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or not issuer.isprintable():
        return ""
    return "assertion:" + issuer[:64]


def _limit_doors(app: Flask, limiter: Limiter) -> None:
    address = _address
    doors: dict[str, list[tuple[str, Callable[[], str], Any]]] = {
        "oauth.token": [
            (TOKEN_REQUESTS_PER_CLIENT_AND_ADDRESS, _keyed("token", _token_client, address), None),
            (TOKEN_REQUESTS_PER_ADDRESS, _keyed("token-address", address), None),
            (TOKENS_ISSUED_PER_CLIENT, _keyed("token-issued", _token_client), _issued),
        ],
        "admin.login": [
            (
                SIGN_IN_ATTEMPTS_PER_NAME_AND_ADDRESS,
                _keyed("admin-try", _admin_name, address),
                None,
            ),
            (
                SIGN_IN_FAILURES_PER_NAME_AND_ADDRESS,
                _keyed("admin-fail", _admin_name, address),
                _failed,
            ),
            (SIGN_IN_FAILURES_PER_ADDRESS, _keyed("admin-fail-address", address), _failed),
        ],
        "admin.change_own_password": [
            (
                SIGN_IN_ATTEMPTS_PER_NAME_AND_ADDRESS,
                _keyed("password-try", _admin_user, address),
                None,
            ),
            (
                SIGN_IN_FAILURES_PER_NAME_AND_ADDRESS,
                _keyed("password-fail", _admin_user, address),
                _failed,
            ),
        ],
        "citizen.send_code": [
            (
                CODE_REQUESTS_PER_ACCOUNT_AND_ADDRESS,
                _keyed("code-request", _id_number, address),
                None,
            ),
            (CODE_REQUESTS_PER_ADDRESS, _keyed("code-request-address", address), None),
        ],
        "citizen.check_code": [
            (CODE_CHECKS_PER_CHALLENGE, _keyed("code-check", _challenge), None),
            (CODE_CHECK_FAILURES_PER_ADDRESS, _keyed("code-fail-address", address), _failed),
        ],
    }
    for endpoint, limits in doors.items():
        view: Any = app.view_functions.get(endpoint)
        if view is None:  # that shell is not installed in this app
            continue
        for value, key, deduct_when in limits:
            view = limiter.limit(value, key_func=key, methods=["POST"], deduct_when=deduct_when)(
                view
            )
        app.view_functions[endpoint] = view


# --- 429 ----------------------------------------------------------------------------------------


def _too_many(error: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions["citycredit_limiter"]
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else time.time() + 60
    # The window's end is reported in whole seconds: never promise more than one window's wait.
    period = current.limit.get_expiry() if current is not None else 60
    retry_after = min(max(1, math.ceil(reset_at - time.time())), period)
    headers = {"Retry-After": str(retry_after)}
    if request.blueprint in _PAGES:
        page = render_template(
            "throttled.html",
            minutes=max(1, math.ceil(retry_after / 60)),
            back=url_for(_PAGES[request.blueprint]),
        )
        return Response(page, 429, headers, mimetype="text/html")
    return problem_response(
        "too-many-requests",
        f"too many requests; try again in {retry_after} s",
        status=429,
        headers=headers,
    )


# The pages' blueprints, and where their 429 page sends the reader back to.
_PAGES = {"admin": "admin.login", "citizen": "citizen.login"}
