"""Security headers on every surface, nonces on inline scripts, rate limits (429 + Retry-After) and
what a token request costs, on both databases."""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from citycredit.core import clients as client_module
from citycredit.core.clients import ApiClient, find_client, register_client
from citycredit.web import security
from citycredit.web.app import create_app
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, clear_of_a_window_edge
from tests.integration.admin_support import sign_in as admin_sign_in
from tests.integration.citizen_support import citizen_app, post, sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "citycredit" / "web"
HTML_SURFACES = ["/", "/api/docs", "/admin/login", "/me/login"]
OTHER_SURFACES = [
    "/healthz",
    "/api/openapi.json",
    "/problems/",
    "/nowhere",
    "/static/site.css",
    "/api/docs/assets/swagger-ui.css",
    "/me/static/citizen.css",
]


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        yield web


def _key_secret(site: AdminApp) -> bytes:
    secret: bytes = site.app.extensions["citycredit"].settings.key_secret
    return secret


def _client(site: AdminApp, name: str = "desk", scopes: tuple[str, ...] = ("verify",)) -> Any:
    with site.session() as session:
        issued = register_client(
            session, name=name, kind="venue", scopes=list(scopes), key_secret=_key_secret(site)
        )
        return issued.client.client_id, issued.secret


def _token(web: FlaskClient, client_id: str, secret: str, address: str = "192.0.2.1") -> Any:
    return web.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        },
        environ_base={"REMOTE_ADDR": address},
    )


def _check_headers(response: Any, path: str) -> None:
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy, path
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("X-Frame-Options") == "DENY", path
    assert headers.get("Referrer-Policy") == "same-origin", path
    assert "Strict-Transport-Security" not in headers, path  # the public URL is http here


# --- headers --------------------------------------------------------------------------------------


def test_every_surface_sends_the_security_headers(site: AdminApp) -> None:
    web = site.client()
    for path in HTML_SURFACES:
        response = web.get(path)
        assert response.status_code == 200 and response.mimetype == "text/html", path
        _check_headers(response, path)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for path in OTHER_SURFACES:
        with web.get(path) as response:  # static files are streamed: close them
            _check_headers(response, path)
            if response.mimetype != "text/html":
                policy = response.headers["Content-Security-Policy"]
                assert policy.startswith("default-src 'none'"), path
    # The API's answers too, errors included, and a form POST of the pages.
    for response, what in (
        (web.post("/api/v1/verifications", json={}), "verify without token"),
        (web.post("/oauth/token", data={"grant_type": "password"}), "token"),
        (web.post("/admin/login", data={"username": "x", "password": "y"}), "admin POST"),
    ):
        assert response.status_code >= 400, what
        _check_headers(response, what)


def test_a_signed_in_admins_pages_send_them_too(site: AdminApp) -> None:
    from tests.integration.admin_support import signed_in

    site.add_user("boss", "platform_admin")
    web = signed_in(site, "boss")
    for path in ("/admin/", "/admin/users", "/admin/audit", "/admin/scenarios", "/admin/venues"):
        response = web.get(path)
        assert response.status_code == 200, path
        _check_headers(response, path)
        _no_inline_code(response.get_data(as_text=True), path)


def test_hsts_only_when_the_public_url_is_https(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    app = create_app(
        {
            "database_url": fresh_database.url,
            "id_hash_key": b"k" * 32,
            "instance_dir": tmp_path,
            "public_url": "https://credit.example.gov.cn",
        }
    )
    try:
        web = app.test_client()
        for path in ("/", "/api/openapi.json", "/admin/login", "/me/login", "/nowhere"):
            hsts = web.get(path).headers.get("Strict-Transport-Security", "")
            assert hsts.startswith("max-age=31536000"), path
    finally:
        app.extensions["citycredit"].engine.dispose()


_SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
_NONCE = re.compile(r"'nonce-([^']+)'")


def _no_inline_code(page: str, where: str) -> None:
    """No inline style and no event handler attribute; every inline script carries a nonce."""
    assert not re.search(r"<style\b", page, re.IGNORECASE), where
    assert not re.search(r"\sstyle\s*=", page, re.IGNORECASE), where
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE), where
    for attributes in _SCRIPT.findall(page):
        assert "src=" in attributes or "nonce=" in attributes, where


def _nonces(response: Any) -> tuple[str, list[str]]:
    """The nonce of the response's policy, and those of its inline scripts."""
    policy = _NONCE.search(response.headers["Content-Security-Policy"])
    assert policy, "no nonce in the policy"
    page = response.get_data(as_text=True)
    used = re.findall(r'<script nonce="([^"]+)">', page)
    return policy.group(1), used


def test_the_swagger_uis_script_carries_the_nonce_of_its_response(site: AdminApp) -> None:
    web = site.client()
    first = web.get("/api/docs")
    nonce, used = _nonces(first)
    assert used == [nonce] and len(base64.b64decode(nonce)) == 16
    _no_inline_code(first.get_data(as_text=True), "/api/docs")
    # A new nonce for every response: one seen before is worth nothing.
    assert _nonces(web.get("/api/docs"))[0] != nonce
    # The docs make no outside requests (the online validator badge is off).
    assert "validatorUrl: null" in first.get_data(as_text=True)


def test_the_qr_pages_script_carries_the_nonce_and_no_page_has_inline_code(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with citizen_app(fresh_database, tmp_path) as city:
        alice = city.seed().alice
        web = city.client()
        sign_in(web, alice.number)
        post(web, "/me/consent", token_from="/me/consent", action="give")
        code = web.get("/me/code")
        assert code.status_code == 200
        nonce, used = _nonces(code)
        assert used == [nonce]
        report = web.get("/me/report")
        report_nonce, report_used = _nonces(report)
        assert report_used == [report_nonce] != [nonce]
        _check_headers(code, "/me/code")
        # Every page the citizen was sent on the way (sign-in, consent, code, report).
        pages = [sent for sent in city.sent if sent.mimetype == "text/html"]
        assert len(pages) >= 5
        for sent in pages:
            _no_inline_code(sent.body, sent.path)


def test_no_template_has_inline_styles_handlers_or_unnonced_scripts() -> None:
    templates = sorted(TEMPLATES.glob("**/templates/**/*.html"))
    assert len(templates) > 30
    for path in templates:
        text = path.read_text()
        where = str(path.relative_to(TEMPLATES))
        assert not re.search(r"<style\b", text), where
        assert not re.search(r"\sstyle\s*=", text), where
        assert not re.search(r"\son[a-z]+\s*=", text), where
        for attributes in _SCRIPT.findall(text):
            assert "src=" in attributes or 'nonce="{{ csp_nonce() }}"' in attributes, where


# --- rate limits ----------------------------------------------------------------------------------


def test_the_token_endpoint_answers_429_with_retry_after_per_client_and_address(
    site: AdminApp,
) -> None:
    client_id, secret = _client(site)
    web = site.client()
    answers = [_token(web, client_id, "wrong" + secret).status_code for _ in range(30)]
    assert answers == [401] * 30
    refused = _token(web, client_id, secret)
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    body = refused.get_json()
    assert body["type"] == "/problems/too-many-requests" and body["status"] == 429
    # The client itself, from its own address, is not affected by a stranger's guesses.
    assert _token(web, client_id, secret, address="198.51.100.5").status_code == 200
    # The type is documented where the problem says.
    assert web.get("/problems/too-many-requests").get_json()["status"] == 429


def test_one_address_is_throttled_across_client_ids(site: AdminApp) -> None:
    web = site.client()
    clear_of_a_window_edge(60, 15)  # 120 a minute: the guesses must not straddle a window's turn
    statuses = [
        _token(web, f"cc_{n:016x}", "ccs_guess", address="192.0.2.9").status_code
        for n in range(121)
    ]
    assert statuses == [401] * 120 + [429]


@pytest.fixture
def three_a_minute(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    """A city whose API clients may verify three times a minute."""
    app = create_app(
        {
            "database_url": fresh_database.url,
            "id_hash_key": b"k" * 32,
            "instance_dir": tmp_path,
            "rate_limit_verify": "3 per minute",
        }
    )
    try:
        yield AdminApp(app, clock=None)  # type: ignore[arg-type]
    finally:
        app.extensions["citycredit"].engine.dispose()


def test_verifications_are_limited_per_client_after_its_token_is_checked(
    three_a_minute: AdminApp,
) -> None:
    site, app = three_a_minute, three_a_minute.app
    web = app.test_client()
    tokens = {}
    for name in ("busy", "calm"):
        client_id, secret = _client(site, name)
        tokens[name] = _token(web, client_id, secret).get_json()["access_token"]

    def verify(token: str) -> Any:
        return web.post(
            "/api/v1/verifications",
            json={"token": "not-a-code", "scenario": "library-deposit-free"},
            headers={"Authorization": f"Bearer {token}"},
        )

    # A forged token naming the busy client is refused before anything is counted.
    header, payload, _ = tokens["busy"].split(".")
    for _ in range(5):
        assert verify(f"{header}.{payload}.AAAA").status_code == 401
    answers = [verify(tokens["busy"]).status_code for _ in range(3)]
    assert answers[0] in (404, 422) and answers == [answers[0]] * 3  # answered, not throttled
    refused = verify(tokens["busy"])
    assert refused.status_code == 429
    assert refused.get_json()["type"] == "/problems/too-many-requests"
    assert int(refused.headers["Retry-After"]) > 0
    assert verify(tokens["calm"]).status_code == answers[0]  # another client: its own count


def test_citizen_code_requests_are_throttled_the_same_for_any_id_number(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with citizen_app(fresh_database, tmp_path) as city:
        alice = city.seed().alice
        web = city.client()
        web.environ_base["REMOTE_ADDR"] = "203.0.113.40"
        numbers = [alice.number] + [factories.id_number() for _ in range(199)] + ["x"]
        statuses = [post(web, "/me/login", id_number=n).status_code for n in numbers]
        # 200 code requests per address per ten minutes (thousands of phones share a carrier's
        # address), known and unknown numbers alike.
        assert statuses[:200] == [200] * 200 and statuses[200] == 429
        page = post(web, "/me/login", id_number=alice.number)
        assert page.status_code == 429 and "请求过于频繁" in page.get_data(as_text=True)
        assert int(page.headers["Retry-After"]) > 0
        # Alice on her own phone is not affected.
        phone = city.client()
        phone.environ_base["REMOTE_ADDR"] = "198.51.100.41"
        sign_in(phone, alice.number)


# --- what a token costs ---------------------------------------------------------------------------


def test_a_token_request_costs_no_password_hash_and_a_few_milliseconds(
    site: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = _client(site)
    with site.session() as session:
        client = find_client(session, client_id)
        assert client is not None and client.secret_hash is not None
        assert client.secret_hash.startswith("hmac-sha256$") and secret not in client.secret_hash
    for limiter in site.app.extensions["limiter"]:
        limiter.enabled = False  # measuring the cost, not the limit
    web = site.client()
    assert _token(web, client_id, secret).status_code == 200  # warm: signing key, caches
    scrypts: list[int] = []
    real = client_module.check_password
    monkeypatch.setattr(client_module, "check_password", lambda *a: scrypts.append(1) or real(*a))
    started = time.process_time()
    for _ in range(20):
        assert _token(web, client_id, secret).status_code == 200
    cpu_ms = (time.process_time() - started) / 20 * 1000
    assert scrypts == []
    # scrypt alone took ~150 ms of CPU per request; the whole request now takes a few.
    assert cpu_ms < 30, f"{cpu_ms:.1f} ms of CPU per token request"


def test_an_unknown_client_and_a_wrong_secret_get_the_same_answer_after_the_same_work(
    site: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = _client(site)
    hashed: list[str] = []
    real = client_module.hash_secret
    monkeypatch.setattr(client_module, "hash_secret", lambda s, k: hashed.append(s) or real(s, k))
    web = site.client()
    wrong = _token(web, client_id, "ccs_" + secrets.token_urlsafe(32))
    unknown = _token(web, "cc_0123456789abcdef", secret)
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: {k: v for k, v in r.get_json().items() if k != "instance"}  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert len(hashed) == 2  # one keyed hash each, nothing more for either


def test_a_secret_hashed_with_scrypt_still_works_and_is_upgraded_on_its_next_use(
    site: AdminApp,
) -> None:
    client_id, _ = _client(site)
    old_secret = "ccs_" + secrets.token_urlsafe(32)
    with site.session() as session:
        client = find_client(session, client_id)
        assert client is not None
        client.secret_hash = generate_password_hash(old_secret)  # as stored before issue 9
    web = site.client()
    assert _token(web, client_id, "ccs_wrong").status_code == 401
    with site.session() as session:
        stored = session.get(ApiClient, find_client(session, client_id).id)  # type: ignore[union-attr]
        assert stored is not None and stored.secret_hash.startswith("scrypt:")  # type: ignore[union-attr]
    assert _token(web, client_id, old_secret).status_code == 200
    with site.session() as session:
        client = find_client(session, client_id)
        assert client is not None and client.secret_hash is not None
        assert client.secret_hash == client_module.hash_secret(old_secret, _key_secret(site))
    assert _token(web, client_id, old_secret).status_code == 200


# --- Redis ----------------------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_unavailable() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except Exception as exc:  # any failure: no Redis to test against
        return f"Redis at {REDIS_URL} does not answer ({type(exc).__name__}: {exc})"
    return None


def test_with_redis_storage_every_worker_shares_one_count(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    reason = _redis_unavailable()
    if reason is not None:
        pytest.skip(reason)
    # A city code of its own: keys are prefixed with it, so parallel runs never share a count.
    settings = {
        "database_url": fresh_database.url,
        "id_hash_key": b"k" * 32,
        "instance_dir": tmp_path,
        "rate_limit_storage": REDIS_URL,
        "city_code": "t" + secrets.token_hex(6),
    }
    workers = [create_app(settings), create_app(settings)]  # two processes' apps, one Redis
    try:
        site = AdminApp(workers[0], clock=None)  # type: ignore[arg-type]
        client_id, secret = _client(site)
        statuses = [
            _token(workers[n % 2].test_client(), client_id, "wrong").status_code for n in range(30)
        ]
        assert statuses == [401] * 30
        refused = _token(workers[1].test_client(), client_id, secret)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        for app in workers:
            assert app.extensions["citycredit_limiter"]._storage_dead is False
    finally:
        for app in workers:
            app.extensions["citycredit"].engine.dispose()


def test_a_bad_rate_limit_setting_is_a_startup_error_naming_it(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    from citycredit.core.config import ConfigError

    for override, variable in (
        ({"rate_limit_verify": "lots"}, "CITYCREDIT_RATE_LIMIT_VERIFY"),
        ({"rate_limit_storage": "mysql://x"}, "CITYCREDIT_RATE_LIMIT_STORAGE"),
    ):
        with pytest.raises(ConfigError, match=variable):
            create_app({"database_url": fresh_database.url, "instance_dir": tmp_path, **override})
    assert security.STRATEGY == "sliding-window-counter"


def test_with_redis_down_every_request_is_answered_and_the_doors_still_count(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    app = create_app(
        {
            "database_url": fresh_database.url,
            "id_hash_key": b"k" * 32,
            "instance_dir": tmp_path,
            "rate_limit_storage": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    )
    try:
        site = AdminApp(app, clock=None)  # type: ignore[arg-type]
        client_id, secret = _client(site)
        web = app.test_client()
        statuses = [_token(web, client_id, secret).status_code for _ in range(31)]
        # Counted in this process meanwhile: the limit still holds.
        assert statuses == [200] * 30 + [429]
        token = _token(web, client_id, secret, address="198.51.100.9").get_json()["access_token"]
        verify = web.post(
            "/api/v1/verifications",
            json={"token": "not-a-code", "scenario": "library-deposit-free"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert verify.status_code in (404, 422)  # answered, not a 500
    finally:
        app.extensions["citycredit"].engine.dispose()


def _assertion(claims_json: str) -> str:
    def part(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")

    header = part('{"alg": "EdDSA", "typ": "JWT"}')
    return f"{header}.{part(claims_json)}.AAAA"


@pytest.mark.parametrize(
    "claims",
    [
        '{"iss": "\ud800"}',  # a lone surrogate, as JSON decodes "\\ud800"
        "[" * 2000,  # deeper than the JSON decoder's recursion limit
        '{"iss": ["cc_1"]}',
        '{"iss": "cc_\u0000x"}',
    ],
    ids=["surrogate", "deep", "list", "nul"],
)
def test_a_hostile_assertion_is_a_bad_credential_never_a_500(site: AdminApp, claims: str) -> None:
    answer = site.client().post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": _assertion(claims),
        },
    )
    assert answer.status_code in (400, 401), answer.get_data(as_text=True)
    assert answer.mimetype == "application/problem+json"


def test_ipv6_callers_are_counted_by_their_64_bit_prefix(site: AdminApp) -> None:
    """One subscriber holds a whole /64: rotating its addresses buys no new guesses."""
    clear_of_a_window_edge()
    web = site.client()

    def guess(address: str) -> int:
        web.environ_base["REMOTE_ADDR"] = address
        return int(admin_sign_in(web, "nobody", "wrong password 1").status_code)

    assert [guess(f"2001:db8:1:2::{n:x}") for n in range(1, 6)] == [200] * 5
    assert guess("2001:db8:1:2::99") == 429
    assert guess("2001:db8:1:3::1") == 200  # the neighbour's /64 is another caller


def test_a_redemption_counts_as_a_verification(three_a_minute: AdminApp) -> None:
    site, app = three_a_minute, three_a_minute.app
    web = app.test_client()
    client_id, secret = _client(site, "desk", ("verify", "redeem"))
    headers = {
        "Authorization": "Bearer " + _token(web, client_id, secret).get_json()["access_token"]
    }
    body = {"token": "not-a-code", "scenario": "library-deposit-free"}
    answers = [
        web.post("/api/v1/redemptions", json=body, headers=headers).status_code for _ in range(3)
    ]
    assert 429 not in answers
    assert web.post("/api/v1/verifications", json=body, headers=headers).status_code == 429
    assert web.post("/api/v1/redemptions", json=body, headers=headers).status_code == 429
