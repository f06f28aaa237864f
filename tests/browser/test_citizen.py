"""The citizen's phone pages in a real browser (Debian's Chromium at 390×844), on SQLite and PostgreSQL.

A citizen without consent signs in with the demo one-time code, consents, sees the score, shows the
live QR credit code (decoded from a screenshot with zxing-cpp and verified through the partner SDK,
before and after it expires, and after the phone sleeps and wakes), objects to a deduction, browses
benefits and who checked them, downloads their data. Every page stays under 300 KB, fits 390 px at
200 % text size, and nothing leaves loopback.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import select

from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.idnumber import parse_id_number
from citycredit_partner import CodeRejectedError, PartnerClient
from points_engine import operations
from points_engine.models import Record
from tests import factories
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env

LIFETIME = 10  # seconds a credit code lives in this city, so the test can wait past expiry
PHONE: dict[str, Any] = dict(
    viewport={"width": 390, "height": 844},
    device_scale_factor=2,
    is_mobile=True,
    has_touch=True,
    locale="zh-CN",
)
LEEWAY = 5  # seconds a verifier accepts a code past its expiry (credit_codes.tokens.verify_code)
WIDTH = 390
PAGE_BUDGET = 300 * 1024
SCENARIO = "library-deposit-free"
REASON = "该罚款已于当日全额缴纳，处罚决定书已撤销，请核实。"
PAGES = ("/me/consent", "/me/", "/me/records", "/me/code", "/me/benefits", "/me/checks",
         "/me/data", "/me/report", "/me/objections", "/me/repairs")  # fmt: skip
DOUBLE_TEXT = """() => {
    const html = document.documentElement;
    html.style.fontSize = 2 * parseFloat(getComputedStyle(html).fontSize) + 'px';
}"""
WAKE = """() => {
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
    Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


@dataclass
class DemoCity(LiveCity):
    newcomer: str = ""  # an award and a fine on record, no consent yet
    fine_id: int = 0  # the newcomer's fine
    others_record_id: int = 0  # a record of another citizen


@pytest.fixture(params=BACKENDS)
def demo_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DemoCity]:
    """A live city in demo mode (the one-time code shows on screen) whose codes live 10 seconds."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(
        db, tmp_path, port, CITYCREDIT_DEMO_MODE="1", CITYCREDIT_CODE_LIFETIME=str(LIFETIME)
    )
    settings = load_settings(env=env)
    seeded = _seed(db, settings)
    newcomer = factories.id_number()
    with unit_of_work(make_session_factory(db.engine)) as session:
        person = operations.get_or_create_citizen(
            session, settings.id_hash_key, parse_id_number(newcomer)
        )
        factories.record(session, person, "AWARD", "2026-06-01")
        fine_id = factories.record(session, person, "FINE", "2026-06-15").id
        assert not person.consent_given
        others = session.scalar(select(Record.id).where(Record.citizen_id != person.id).limit(1))
        assert others is not None
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield DemoCity(
                url=url,
                db=db,
                settings=settings,
                newcomer=newcomer,
                fine_id=fine_id,
                others_record_id=others,
                **seeded,  # type: ignore[arg-type]
            )
    finally:
        db.drop()


def only_loopback(outside: list[str]) -> Callable[[Any], None]:
    """A route handler that lets loopback through and blocks (and notes) anything else."""

    def route(route: Any) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    return route


def phone(browser: Any) -> tuple[Any, Any, list[str], list[str]]:
    """A phone-sized page that may reach only loopback; returns (context, page, outside, errors)."""
    context = browser.new_context(**PHONE, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    outside: list[str] = []
    errors: list[str] = []
    page.route("**/*", only_loopback(outside))
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A script or style the Content-Security-Policy blocks is reported on the console only.
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    return context, page, outside, errors


def sign_in(page: Any, city: LiveCity, number: str, *, shot: str | None = None) -> None:
    page.goto(city.url + "/me/login")
    page.get_by_label("身份证号码").fill(number)
    page.get_by_role("button", name="获取验证码").click()
    code = page.locator("#demo-code").inner_text()
    assert re.fullmatch(r"\d{6}", code)
    if shot:
        screenshot(page, shot)
    page.get_by_label("验证码").fill(code)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/me/(consent)?$"))


def read_qr(page: Any) -> str:
    """The one QR code on screen, decoded from a screenshot of the page as a scanner would see it."""
    image = Image.open(io.BytesIO(page.screenshot()))
    found = [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(found) == 1, f"expected one QR code on screen, found {len(found)}"
    token = found[0].text
    parts = token.split(".")
    assert len(parts) == 3 and all(parts), token  # a compact JWS
    return token


def expiry(token: str) -> float:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


def refreshes(page: Any) -> int:
    return int(page.locator("#qr").get_attribute("data-refreshed") or 0)


def wait_until(page: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll from Python, as the page's own timers may be frozen by a fake clock. Waiting through
    Playwright (never time.sleep) keeps serving the route handler, which every request waits for."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(100)


def weigh(page: Any, url: str) -> dict[str, int]:
    """Load ``url`` afresh (routing disables the HTTP cache); the body size of every response."""
    sizes: dict[str, int] = {}

    def record(response: Any) -> None:
        try:
            sizes[response.url] = sizes.get(response.url, 0) + len(response.body())
        except Exception:  # a redirect has no body
            sizes.setdefault(response.url, 0)

    page.on("response", record)
    try:
        page.goto(url, wait_until="load")
        # Response events may trail the load event: wait until the document and every resource it
        # loaded (not the code page's later fetches, nor the favicon the browser asks for) is counted.
        loaded = set(
            page.evaluate(
                """() => [location.href, ...performance.getEntriesByType('resource')
                    .filter(e => !['fetch', 'xmlhttprequest', 'other'].includes(e.initiatorType))
                    .map(e => e.name)]"""
            )
        )
        wait_until(page, lambda: loaded <= sizes.keys(), 5, f"the responses of {url}")
    finally:
        page.remove_listener("response", record)
    return sizes


def horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the phone (a mobile layout viewport widens to fit
    overflowing content, so compare with the device width rather than window.innerWidth)."""
    width: int = page.evaluate("document.scrollingElement.scrollWidth")
    inner: int = page.evaluate("window.innerWidth")
    return max(width - WIDTH, width - inner - 1, 0)


def test_a_citizen_signs_in_consents_shows_the_code_and_objects(
    browser: Any, demo_city: DemoCity
) -> None:
    city = demo_city
    context, page, outside, errors = phone(browser)
    weights = {"/me/login": weigh(page, city.url + "/me/login")}

    # 1. Sign in with the one-time code the demo shows on screen → the consent screen.
    sign_in(page, city, city.newcomer, shot="citizen-login")
    assert page.url.endswith("/me/consent")
    expect(page.get_by_text("当前状态：未授权，尚无信用分")).to_be_visible()
    screenshot(page, "citizen-consent")

    # 2. Consent → home: score, tier, trend and dimension charts.
    page.get_by_role("button", name="同意授权并计算信用分").click()
    page.wait_for_url(re.compile(r".*/me/$"))
    assert page.locator("#score").inner_text().strip() == "1005"  # 1000 + award 10 − fine 5
    assert page.locator("#tier").inner_text() == "本市等级 A · 通用等级 良好"
    charts = page.locator("svg.chart")
    assert charts.count() == 2 and all(chart.is_visible() for chart in charts.all())
    screenshot(page, "citizen-home")

    with PartnerClient(city.venue.client_id, city.venue.client_secret, city.url) as desk:
        # 3. The QR code on screen is a genuine credit code: the venue's SDK verifies it.
        page.get_by_role("link", name="信用码", exact=True).click()
        page.wait_for_url("**/me/code")
        first = read_qr(page)
        assert desk.verify(first, SCENARIO).eligible is True  # tier A (common tier 3) qualifies
        screenshot(page, "citizen-code")

        # 4. Past the first code's expiry (and the verifier's 5 s clock leeway) the page shows a
        # fresh code, which verifies; the first is refused.
        wait_until(page, lambda: time.time() > expiry(first) + LEEWAY + 1, LIFETIME + 10, "expiry")
        assert refreshes(page) >= 1
        second = read_qr(page)
        assert second != first and expiry(second) > time.time()
        assert desk.verify(second, SCENARIO).eligible is True
        with pytest.raises(CodeRejectedError) as rejected:
            desk.verify(first, SCENARIO)
        assert rejected.value.reason == "token-expired"
        assert 0 < int(page.locator("#countdown").inner_text()) <= LIFETIME

        # Sleep and wake, on a second phone signed in as the same citizen: with its clock frozen
        # (a sleeping phone runs no timers) the code on screen goes stale; the wake-up
        # (visibilitychange) fetches a fresh one at once.
        sleepy = browser.new_context(**PHONE, storage_state=context.storage_state())
        nap = sleepy.new_page()
        nap.route("**/*", only_loopback(outside))
        nap.on("pageerror", lambda error: errors.append(str(error)))
        nap.clock.install()
        nap.goto(city.url + "/me/code")
        nap.clock.pause_at(dt.datetime.now() + dt.timedelta(seconds=1))
        nap.wait_for_timeout(1000)  # let a fetch already under way land
        asleep = refreshes(nap)
        stale = read_qr(nap)
        wait_until(
            nap, lambda: time.time() > expiry(stale) + 1, LIFETIME + 5, "the code to go stale"
        )
        assert refreshes(nap) == asleep, "the page refreshed while its timers were frozen"
        nap.evaluate(WAKE)
        wait_until(nap, lambda: refreshes(nap) > asleep, 5, "a refresh on wake-up")
        woken = read_qr(nap)
        assert woken != stale and desk.verify(woken, SCENARIO).eligible is True
        sleepy.close()

    # 5. Object to the fine: the case is open and the record is under objection at once.
    page.goto(city.url + "/me/")
    page.get_by_role("link", name="我的记录").click()
    page.wait_for_url("**/me/records")
    fine = page.locator(f"#record-{city.fine_id}")
    expect(fine.get_by_text("计分中", exact=True)).to_be_visible()
    screenshot(page, "citizen-records")
    fine.get_by_role("link", name="对此记录提出异议").click()
    page.get_by_label("异议理由").fill(REASON)
    page.get_by_role("button", name="提交异议").click()
    page.wait_for_url(re.compile(r".*/me/objections/obj_[0-9a-f]+\?filed=1$"))
    assert page.locator("#case-status").inner_text() == "待处理"
    screenshot(page, "citizen-objection")
    page.get_by_role("link", name="我的记录").first.click()
    page.wait_for_url("**/me/records")
    expect(fine.get_by_text("异议处理中", exact=True)).to_be_visible()
    expect(fine.get_by_role("link", name="查看异议")).to_be_visible()
    # Another citizen's record is not there at all.
    response = page.goto(f"{city.url}/me/records/{city.others_record_id}/objection")
    assert response is not None and response.status == 404

    # 6. Benefits, and who checked me: the three checks the desk made above.
    page.goto(city.url + "/me/")
    page.get_by_role("link", name="我的权益").click()
    page.wait_for_url("**/me/benefits")
    expect(page.get_by_text("信易阅·免押金借书").first).to_be_visible()
    assert int(page.locator("#eligible-count").inner_text()) >= 1
    screenshot(page, "citizen-benefits")
    page.get_by_role("link", name="查询记录").click()
    page.wait_for_url("**/me/checks")
    checks = page.locator("#checks > li")
    assert checks.count() == 3
    for check in checks.all():
        assert "信易阅·免押金借书" in check.inner_text() and "符合条件" in check.inner_text()
    screenshot(page, "citizen-checks")

    # 7. Download my data as JSON (never the ID number), then the printable report.
    page.get_by_role("link", name="我的数据").click()
    page.wait_for_url("**/me/data")
    with page.expect_download() as download_info:
        page.locator("#download-json").click()
    download = download_info.value
    assert download.suggested_filename.startswith("my-credit-data-")
    text = Path(download.path()).read_text(encoding="utf-8")
    held = json.loads(text)
    assert city.newcomer not in text and city.newcomer[:17] not in text
    assert {r["item_code"] for r in held["records"]} == {"AWARD", "FINE"}
    assert held["scores"] and held["consents"][-1]["action"] == "given"
    assert [(o["status"], o["reason"]) for o in held["objections"]] == [("open", REASON)]
    assert len(held["verifications"]) == 3
    page.locator("#open-report").click()
    page.wait_for_url("**/me/report")
    expect(page.get_by_role("heading", name="个人信用报告")).to_be_visible()
    expect(page.get_by_role("heading", name="记录 (2)", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="查询记录 (3)", exact=True)).to_be_visible()
    screenshot(page, "citizen-report")

    # 8. At 200 % text size, 390 px wide, home needs no sideways scrolling and the score shows.
    page.goto(city.url + "/me/")
    page.evaluate(DOUBLE_TEXT)
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 32
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth + 1")
    assert horizontal_overflow(page) == 0
    box = page.locator("#score").bounding_box()
    expect(page.locator("#score")).to_be_visible()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH + 1

    # 9. No page weighs 300 KB on a first load, its styles and scripts included.
    for path in PAGES:
        weights[path] = weigh(page, city.url + path)
    for path, sizes in weights.items():
        assert any(url.endswith("/citizen.css") for url in sizes), (path, sizes)
        assert 0 < sum(sizes.values()) < PAGE_BUDGET, (path, sizes)

    # 10. The English switch.
    page.goto(city.url + "/me/")
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/me/?lang=en")
    assert page.locator("h1").inner_text() == "My credit"
    expect(page.get_by_role("link", name="Checks", exact=True)).to_be_visible()

    # 11. Nothing left loopback; no script failed.
    assert outside == [] and errors == []
    context.close()


def test_the_code_renews_once_per_lifetime_not_every_second(
    browser: Any, demo_city: DemoCity
) -> None:
    """The page renews the code shortly before it expires; with a short lifetime (allowed: 5–120 s)
    it must not fetch, sign and audit a new code on every tick of the countdown."""
    context, page, outside, errors = phone(browser)
    sign_in(page, demo_city, demo_city.excellent)
    fetched: list[float] = []
    page.on("request", lambda r: fetched.append(time.time()) if "/code.json" in r.url else None)
    page.goto(demo_city.url + "/me/code")
    page.wait_for_timeout(LIFETIME * 1000)
    assert outside == [] and errors == []
    # One renewal per lifetime, two at most with timing slack.
    assert len(fetched) <= 2, f"{len(fetched)} codes fetched in {LIFETIME} s"
    context.close()


CLASHING_LABELS = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
    const frame = svg.getBoundingClientRect();
    const boxes = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
    const clipped = boxes.filter(([, b]) => b.left < frame.left - 0.5 || b.right > frame.right + 0.5)
        .map(([name]) => `${name} is cut off`);
    const overlapping = boxes.flatMap(([a, p], i) => boxes.slice(i + 1)
        .filter(([, q]) => p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom)
        .map(([b]) => `${a} overlaps ${b}`));
    return [...clipped, ...overlapping];
})"""


def test_every_page_is_legible_on_a_phone(browser: Any, demo_city: DemoCity) -> None:
    """At 390 px the charts' labels neither overlap nor get cut off, and at 200 % text size no
    page needs sideways scrolling."""
    context, page, outside, errors = phone(browser)
    sign_in(page, demo_city, demo_city.newcomer)
    page.get_by_role("button", name="同意授权并计算信用分").click()
    page.wait_for_url(re.compile(r".*/me/$"))
    clashes = page.evaluate(CLASHING_LABELS)
    page.goto(f"{demo_city.url}/me/records/{demo_city.fine_id}/objection")
    page.get_by_label("异议理由").fill(REASON)
    page.get_by_role("button", name="提交异议").click()
    page.wait_for_url(re.compile(r".*/me/objections/obj_[0-9a-f]+\?filed=1$"))
    too_wide = {}
    for path in (*PAGES, page.url.removeprefix(demo_city.url)):
        page.goto(demo_city.url + path)
        page.evaluate(DOUBLE_TEXT)
        if overflow := horizontal_overflow(page):
            too_wide[path] = overflow
    assert outside == [] and errors == []
    problems = {
        "wider than 390 px at 200 % text (extra px)": too_wide,
        "home chart labels": clashes,
    }
    assert not too_wide and not clashes, problems
    context.close()
