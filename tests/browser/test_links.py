"""Linking with consent in a real browser (Chromium at 390×844), on SQLite and PostgreSQL: a library's
lending system (a real HTTP server on loopback) sends the citizen to the city; the citizen signs in,
reads what is and is not shared, agrees; the system exchanges the code with its PKCE verifier and
pulls the link; the citizen sees it on 我的授权 and revokes it in one tap; the pull then finds
nothing. Every page fits 390 px and nothing leaves loopback."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from citycredit.core.clients import register_client
from citycredit.core.db import make_session_factory, unit_of_work
from push.apps import register_app
from scenarios.operations import ensure_operator
from tests.browser.test_citizen import (  # noqa: F401 - demo_city is a fixture
    DemoCity,
    demo_city,
    horizontal_overflow,
    phone,
)
from tests.browser.test_pages import screenshot

# RFC 7636 Appendix B: the specification's own verifier and its S256 challenge.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


class Receiver(BaseHTTPRequestHandler):
    """The lending system's redirect endpoint: notes the query it was sent back with."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"<!doctype html><html lang='en'><title>linked</title><p id='back'>back</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    seen: list[str] = []
    Receiver.seen = seen
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/linked", seen
    finally:
        server.shutdown()
        server.server_close()


def lending_system(city: DemoCity, redirect_uri: str) -> tuple[str, str]:
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        operator = ensure_operator(session, "lending-operator", "市图书馆借阅中心", "City lending")
        issued = register_client(
            session,
            name="借阅系统",
            kind="operator",
            scopes=["links:read"],
            operator_id=operator.id,
            key_secret=city.settings.key_secret,
        )
        register_app(session, issued.client, [redirect_uri], actor="test")
        assert issued.secret
        return issued.client.client_id, issued.secret


def test_a_citizen_links_sees_the_link_and_revokes_it_in_one_tap(
    browser: Any,
    demo_city: DemoCity,  # noqa: F811 - the fixture imported above
    receiver: tuple[str, list[str]],
) -> None:
    city = demo_city
    callback, seen = receiver
    client_id, secret = lending_system(city, callback)
    context, page, outside, errors = phone(browser)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": callback,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "state": "borrower-17",
        }
    )
    # The lending system sends the citizen over; signed out, they sign in and come straight back.
    page.goto(f"{city.url}/oauth/authorize?{query}")
    page.wait_for_url(re.compile(r".*/me/login"))
    page.get_by_label("身份证号码").fill(city.excellent)
    page.get_by_role("button", name="获取验证码").click()
    page.get_by_label("验证码").fill(page.locator("#demo-code").inner_text())
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/oauth/authorize\?.*"))

    expect(page.get_by_role("heading", level=1)).to_contain_text("市图书馆借阅中心")
    expect(page.locator("#not-shared")).to_contain_text("您的信用分")
    expect(page.locator("#not-shared")).to_contain_text("身份证号")
    assert horizontal_overflow(page) == 0
    screenshot(page, "link-consent")
    page.get_by_role("button", name="同意").click()
    page.wait_for_url(callback + "?*")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert answer["state"] == "borrower-17" and seen == [
        urlsplit(page.url).path + "?" + urlsplit(page.url).query
    ]

    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = httpx.post(
        city.url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": callback,
            "code_verifier": VERIFIER,
        },
        headers={"Authorization": basic},
    )
    assert token.status_code == 200, token.text
    link = token.json()["link"]
    assert link["common_level"] == 4  # the "excellent" citizen: AA under the test model
    pull = f"{city.url}/api/v1/links/{link['pseudonym']}"
    bearer = {"Authorization": "Bearer " + token.json()["access_token"]}
    assert httpx.get(pull, headers=bearer).status_code == 200

    # 我的授权, from the home page: the link, what it shares, since when; revoked in one tap.
    page.goto(city.url + "/me/")
    page.get_by_role("link", name="我的授权").click()
    card = page.locator("#links > li").first
    expect(card).to_contain_text("市图书馆借阅中心")
    expect(card).to_contain_text("通用信用等级")
    expect(card).to_contain_text("有效")
    assert horizontal_overflow(page) == 0
    screenshot(page, "links")
    card.get_by_role("button", name="撤销授权").click()
    expect(page.locator("#flash")).to_be_visible()
    expect(page.locator("#links > li").first).to_contain_text("已撤销")
    expect(page.get_by_role("button", name="撤销授权")).to_have_count(0)
    assert horizontal_overflow(page) == 0

    gone = httpx.get(pull, headers=bearer)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    assert outside == [] and errors == []
    context.close()
