"""The request pipeline fails safe (issue 9 §2), on SQLite and PostgreSQL: control characters and deep
bodies are refused at the edge, the token is checked before the body, a database that does not answer
(or a final commit that fails) is a 503 with Retry-After on the API and the pages, the pool recovers
after an outage, and no caller can forge a log line."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from citizen.models import Objection
from citycredit.core.audit import AuditEvent
from citycredit.core.clients import register_client
from citycredit.core.db import CONNECT_TIMEOUT_SECONDS
from citycredit.web.app import create_app
from citycredit.web.pipeline import MAX_JSON_DEPTH, RETRY_AFTER_SECONDS, SafeFormatter
from tests import factories
from tests.conftest import BACKENDS, _require
from tests.databases import PG_URL, ScratchDatabase
from tests.integration import admin_support, citizen_support
from tests.integration.citizen_support import CitizenApp, Seeded, citizen_app
from tests.tcp_proxy import TcpProxy

PROBLEM = "application/problem+json"


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def client_token(city: CitizenApp, kind: str, scopes: list[str]) -> str:
    """A bearer token for a new API client of ``kind`` holding ``scopes``."""
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        issued = register_client(
            session, name=kind, kind=kind, scopes=scopes, key_secret=settings.key_secret
        )
    assert issued.secret is not None
    answer = city.client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(issued.client.client_id, issued.secret),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    token: str = answer.get_json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def page_text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def assert_refused_page(response: Any, field: str) -> None:
    """A readable 400 page (Chinese first, English too) naming ``field``, never a 500."""
    body = page_text(response)
    assert response.status_code == 400 and response.mimetype == "text/html", body
    assert "控制字符" in body and "control character" in body and f"“{field}”" in body, body


def assert_refused_problem(response: Any, field: str) -> None:
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.get_data()
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert list(problem["errors"]) == [field]


def signed_in_admin(city: CitizenApp) -> FlaskClient:
    admin = admin_support.AdminApp(city.app, admin_support.Clock())
    city.app.extensions["admin"].now = admin.clock
    admin.add_user("root", "platform_admin")
    return admin_support.signed_in(admin, "root")


# --- control characters ----------------------------------------------------------------------------


def test_nul_and_other_control_characters_are_refused_at_every_edge(city: CitizenApp) -> None:
    seeded = city.seed()
    client = city.client()
    # OAuth parameters, before any client is looked up.
    token_answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "x\x00y", "client_secret": "s"},
    )
    assert_refused_problem(token_answer, "client_id")
    assert token_answer.get_json()["error"] == "invalid_request"
    # The admin's sign-in form and its list filters.
    admin_support_token = admin_support.csrf(client)
    login = client.post(
        "/admin/login",
        data={"username": "ad\x00min", "password": "x", "csrf_token": admin_support_token},
    )
    assert_refused_page(login, "username")
    admin = signed_in_admin(city)
    assert_refused_page(admin.get("/admin/audit?actor=%00"), "actor")
    assert_refused_page(admin.get("/admin/audit?action=a%0Ab&lang=en"), "action")
    assert "holds a control character" in page_text(admin.get("/admin/audit?actor=%1b&lang=en"))
    assert admin.get("/admin/audit?actor=root").status_code == 200
    # The citizen's sign-in: the one-time code's challenge.
    asked = citizen_support.ask_code(client, seeded.alice.number)
    assert asked.challenge and asked.code
    assert_refused_page(
        citizen_support.answer(client, asked.challenge + "\x00", asked.code), "challenge"
    )
    # ...and the right answer still signs in afterwards: the refusal changed nothing.
    assert citizen_support.answer(client, asked.challenge, asked.code).status_code == 302
    # Paths, query strings and JSON bodies of the API, each naming the field.
    venue = client_token(city, "venue", ["verify", "redeem"])
    assert_refused_problem(
        client.get("/api/v1/scenarios/bus%00pass", headers=bearer(venue)), "path"
    )
    assert_refused_problem(
        client.get("/api/v1/scenarios?category=%00", headers=bearer(venue)), "category"
    )
    verify = client.post(
        "/api/v1/verifications",
        json={"token": "x", "scenario": "bus\u0000pass"},
        headers=bearer(venue),
    )
    assert_refused_problem(verify, "scenario")
    source = client_token(city, "source", ["records:write"])
    row = {
        "source": "court",
        "source_record_id": "r1",
        "id_number": seeded.alice.number,
        "item_code": "FINE",
        "document_no": "doc\u00001",
        "occurred_on": "2026-06-01",
        "reported_on": "2026-06-02",
    }
    upload = client.post(
        "/api/v1/records",
        json={"records": [{**row, "document_no": "ok"}, row]},
        headers=bearer(source),
    )
    # Except where the view checks the text itself: a records upload's bad row is a row error and
    # the good rows land.
    assert upload.status_code == 200, upload.get_data(as_text=True)
    assert upload.get_json()["inserted"] == 1
    assert [(e["row"], e["field"]) for e in upload.get_json()["errors"]] == [(2, "document_no")]
    bad_member = client.post(
        "/api/v1/records", json={"records": [row], "note\u0000": 1}, headers=bearer(source)
    )
    assert_refused_problem(bad_member, "note\\x00")
    # A name is refused like a value, and shown escaped.
    oddly_named = client.post("/api/v1/verifications", json={"a\nb": 1}, headers=bearer(venue))
    assert_refused_problem(oddly_named, "a\\nb")


def test_control_characters_inside_signed_tokens_are_refused_as_bad_credentials(
    city: CitizenApp,
) -> None:
    key = "k" * 64
    client = city.client()
    bad_kid = jwt.encode({"sub": "x"}, key, algorithm="HS256", headers={"kid": "\x00"})
    answer = client.get("/api/v1/scenarios", headers=bearer(bad_kid))
    assert answer.status_code == 401 and answer.get_json()["type"] == "/problems/invalid-token"
    assertion = jwt.encode({"iss": "a\x00b", "sub": "a\x00b"}, key, algorithm="HS256")
    token_answer = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert token_answer.status_code == 401
    assert token_answer.get_json()["type"] == "/problems/invalid-client"


def test_text_areas_keep_their_line_breaks_and_nothing_else_does(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    citizen_support.sign_in(client, alice.number)
    citizen_support.post(client, "/me/consent", token_from="/me/consent", action="give")
    path = f"/me/records/{alice.records['fine']}/objection"
    reason = "罚款决定书上的日期与事实不符。\r\n\t第二行：当天我在外地。"
    filed = citizen_support.post(client, path, token_from=path, reason=reason)
    assert filed.status_code == 302, page_text(filed)
    with city.session() as session:
        stored = session.scalar(select(Objection.reason))
    assert stored is not None and "\n\t第二行" in stored
    # A NUL is refused even in a text area.
    other = f"/me/records/{alice.records['award']}/objection"
    refused = citizen_support.post(
        client, other, token_from=other, reason="理由\x00不足十个字的一半"
    )
    assert_refused_page(refused, "reason")


# --- deep bodies, and the token before the body ------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"token": "x", "scenario": ' + b"[" * depth + b"]" * depth + b"}"


def test_deep_bodies_are_a_400_and_anonymous_callers_get_401_before_any_validation(
    city: CitizenApp,
) -> None:
    city.seed()
    client = city.client()
    # Anonymous: 401 whatever the body (deep, empty, malformed), never validation errors or a 500.
    for body in (nested(5000), b"{}", b"{not json"):
        answer = client.post("/api/v1/verifications", data=body, content_type="application/json")
        assert answer.status_code == 401 and answer.get_json()["type"] == "/problems/invalid-token"
    anonymous_upload = client.post("/api/v1/records", json={"records": []})
    assert anonymous_upload.status_code == 401
    venue = client_token(city, "venue", ["verify", "redeem"])
    for depth in (5000, MAX_JSON_DEPTH):
        answer = client.post(
            "/api/v1/verifications",
            data=nested(depth),
            content_type="application/json",
            headers=bearer(venue),
        )
        assert answer.status_code == 400 and answer.mimetype == PROBLEM
        assert str(MAX_JSON_DEPTH) in answer.get_json()["detail"]
    # Within the limit, the body reaches validation (a list is not a scenario code).
    fits = client.post(
        "/api/v1/verifications",
        data=nested(MAX_JSON_DEPTH - 2),
        content_type="application/json",
        headers=bearer(venue),
    )
    assert fits.status_code == 422 and "scenario" in fits.get_json()["errors"]
    # The token endpoint reads a form: a deep JSON body is not even parsed (no work for strangers).
    deep_token = client.post("/oauth/token", data=nested(5000), content_type="application/json")
    assert deep_token.status_code == 400
    assert deep_token.get_json()["type"] == "/problems/invalid-request"  # it read a form: no grant
    # Pages read forms: a deep JSON body sent to them changes nothing either.
    deep_page = client.post("/me/login", data=nested(5000), content_type="application/json")
    assert deep_page.status_code == 400 and deep_page.mimetype == "text/html"


# --- the database unavailable ----------------------------------------------------------------------


def dead_database_url(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'no-such-directory' / 'city.sqlite3'}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    return make_url(PG_URL).set(port=closed_port).render_as_string(hide_password=False)


def assert_unavailable_problem(answer: Any) -> None:
    assert answer.status_code == 503 and answer.mimetype == PROBLEM, answer.get_data()
    assert answer.get_json()["type"] == "/problems/service-unavailable"
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


def assert_unavailable_page(answer: Any, words: str = "服务暂时不可用") -> None:
    body = page_text(answer)
    assert answer.status_code == 503 and answer.mimetype == "text/html", body
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert words in body and "Try again in" in body


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_database_that_does_not_answer_is_a_503_with_retry_after_everywhere(
    kind: str, tmp_path: Path
) -> None:
    _require(kind)
    app = create_app(
        {
            "database_url": dead_database_url(kind, tmp_path),
            "id_hash_key": b"k" * 32,
            "instance_dir": tmp_path,
        }
    )
    try:
        client = app.test_client()
        assert_unavailable_problem(
            client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"},
            )
        )
        assert_unavailable_problem(client.get("/.well-known/jwks.json"))
        assert_unavailable_page(client.get("/"))
        admin_login = client.post(
            "/admin/login",
            data={"username": "root", "password": "x", "csrf_token": admin_support.csrf(client)},
        )
        assert_unavailable_page(admin_login)
        english = client.post(
            "/me/login?lang=en",
            data={"id_number": factories.id_number(), "csrf_token": citizen_support.csrf(client)},
        )
        assert_unavailable_page(english, "The service is briefly unavailable")
        assert f"Reference: <code>{english.headers['X-Request-Id']}</code>" in page_text(english)
        chinese = client.get("/")
        assert f"参考编号: <code>{chinese.headers['X-Request-Id']}</code>" in page_text(chinese)
    finally:
        app.extensions["citycredit"].engine.dispose()


@contextmanager
def failing_commits(app: Flask) -> Iterator[None]:
    """Every COMMIT fails as a lost connection does (the driver's own OperationalError)."""
    engine = app.extensions["citycredit"].engine
    dialect = engine.dialect

    def fail(_connection: Any) -> None:
        raise dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    dialect.do_commit = fail  # type: ignore[method-assign]
    try:
        yield
    finally:
        del dialect.do_commit


def test_a_failed_final_commit_is_a_503_and_keeps_nothing(city: CitizenApp) -> None:
    seeded: Seeded = city.seed()
    app_token = client_token(city, "app", ["codes:issue"])
    admin_support.AdminApp(city.app, admin_support.Clock()).add_user("root", "platform_admin")
    client, browser = city.client(), city.client()
    with city.session() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    with failing_commits(city.app):
        issued = client.post(
            "/api/v1/credit-codes",
            json={"id_number": seeded.alice.number},
            headers=bearer(app_token),
        )
        assert_unavailable_problem(issued)
        # The right password: the sign-in would have succeeded but for the commit.
        assert_unavailable_page(admin_support.sign_in(browser, "root"))
        asked = citizen_support.ask_code(browser, seeded.alice.number)
        assert_unavailable_page(asked.response)
    # Nothing of those requests was kept: no audit event, and no sign-in in the session cookie.
    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert browser.get("/admin/").status_code == 302
    # Commits work again: the same requests succeed.
    again = client.post(
        "/api/v1/credit-codes", json={"id_number": seeded.alice.number}, headers=bearer(app_token)
    )
    assert again.status_code in (201, 409), again.get_data(as_text=True)
    assert admin_support.sign_in(browser, "root").status_code == 302
    assert browser.get("/admin/").status_code == 200


@contextlib.contextmanager
def app_through_proxy(tmp_path: Path) -> Iterator[tuple[TcpProxy, FlaskClient]]:
    """An app on a fresh PostgreSQL schema reached through a proxy the test can cut and stall."""
    _require("postgresql")
    db = ScratchDatabase("postgresql", tmp_path)
    url = make_url(db.url)
    try:
        with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            through = url.set(port=proxy.port).render_as_string(hide_password=False)
            app = create_app(
                {"database_url": through, "id_hash_key": b"k" * 32, "instance_dir": tmp_path}
            )
            try:
                yield proxy, app.test_client()
            finally:
                app.extensions["citycredit"].engine.dispose()
    finally:
        db.drop()


def test_the_pool_recovers_after_the_database_comes_back(tmp_path: Path) -> None:
    with app_through_proxy(tmp_path) as (proxy, client):
        assert client.get("/.well-known/jwks.json").status_code == 200
        assert client.get("/").status_code == 200
        proxy.cut()  # the server "restarts": every pooled connection is dead
        assert_unavailable_problem(client.get("/.well-known/jwks.json"))
        assert_unavailable_page(client.get("/"))
        proxy.restore()
        assert client.get("/.well-known/jwks.json").status_code == 200
        # A restart while the pool is idle: the first request after it succeeds, not lost
        # to a pooled connection that died with the old server.
        proxy.cut()
        proxy.restore()
        assert client.get("/").status_code == 200
        assert client.get("/.well-known/jwks.json").status_code == 200


def test_a_database_host_that_does_not_answer_is_a_503_within_seconds(tmp_path: Path) -> None:
    with app_through_proxy(tmp_path) as (proxy, client):
        assert client.get("/.well-known/jwks.json").status_code == 200
        proxy.cut(stall=True)
        started = time.monotonic()
        assert_unavailable_problem(client.get("/.well-known/jwks.json"))
        assert time.monotonic() - started < CONNECT_TIMEOUT_SECONDS + 3
        proxy.restore()
        assert client.get("/.well-known/jwks.json").status_code == 200


# --- logs and request ids --------------------------------------------------------------------------


@contextmanager
def captured_log(level: int = logging.INFO) -> Iterator[io.StringIO]:
    """What the app logs, formatted as the server's log formats it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


LINE_START = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ \[[0-9A-Za-z._:-]+\] |^  \["
)


def test_no_caller_can_start_a_log_line_and_every_line_has_the_request_id(
    city: CitizenApp,
) -> None:
    def boom() -> Any:
        # An error whose text carries what a caller sent, as a driver's message may.
        raise ValueError("bad value from the caller\n2026-01-01 00:00:00,000 CRITICAL [x] forged")

    city.app.add_url_rule("/api/v1/boom", "boom", boom)
    client = city.client()
    forged = "%0A2026-01-01%2000:00:00,000%20CRITICAL%20[x]%20forged%0D%1B[2J"
    with captured_log() as log:
        refused = client.get(f"/problems/{forged}", headers={"X-Request-Id": "req-1"})
        failed = client.get("/api/v1/boom", headers={"X-Request-Id": "bad id\u2028"})
    assert refused.status_code == 422 and refused.headers["X-Request-Id"] == "req-1"
    assert failed.status_code == 500
    made = failed.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    lines = log.getvalue().splitlines()
    assert any("[req-1]" in line and "\\n2026-01-01" in line for line in lines), lines
    assert any(f"[{made}]" in line and "unhandled error" in line for line in lines), lines
    for line in lines:
        assert LINE_START.match(line), line
        assert "\x1b" not in line and "\r" not in line
    # The request id of an answer is on every line of its traceback.
    assert sum(f"[{made}]" in line for line in lines) >= 4


def test_the_request_id_is_echoed_and_a_sane_one_is_kept(city: CitizenApp) -> None:
    client = city.client()
    assert (
        client.get("/healthz", headers={"X-Request-Id": "abc.DEF-123:4"}).headers["X-Request-Id"]
        == "abc.DEF-123:4"
    )
    for insane in ("", "a" * 200, "a b", "ä"):
        answer = client.get("/healthz", headers={"X-Request-Id": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])


def test_a_raw_del_inside_a_json_string_is_refused_like_its_escape(city: CitizenApp) -> None:
    """JSON lets DEL stand unescaped in a string; the edge refuses it as it refuses "\\u007f"."""
    token = client_token(city, "venue", ["verify"])
    for code in (b"ab\x7fc", b"ab\\u007fc"):
        body = b'{"token": "' + code + b'", "scenario": "library-deposit-free"}'
        answer = city.client().post(
            "/api/v1/verifications",
            data=body,
            content_type="application/json",
            headers=bearer(token),
        )
        assert_refused_problem(answer, "token")
