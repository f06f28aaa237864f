"""The citizen's QR code page in a real browser (Debian's Chromium at 390×844), on SQLite and PostgreSQL.

The phone draws the QR from the token (the vendored qrcode-generator): what it draws reads back with
zxing-cpp as exactly the token the server issued, and a renewal is the token alone. The server's
compact SVG (API, CLI), as Chromium draws it, reads back too. Offline, the code is renewed until
it cannot be: one polite warning, then at expiry the code is greyed out and covered (no scanner reads
it) with a plain message and a retry button, never "剩余 0 秒"; back online a new code comes at once.
The countdown is not a live region; only those changes are announced. The page is axe-core clean in
both languages, live and expired.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from citycredit_partner import PartnerClient
from credit_codes import qr
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import (
    LIFETIME,
    PHONE,
    SCENARIO,
    DemoCity,
    demo_city,  # noqa: F401 - the live city fixture, reused here
    expiry,
    only_loopback,
    phone,
    read_qr,
    refreshes,
    sign_in,
)
from tests.browser.test_pages import screenshot
from tests.unit.test_qr import token

WAIT = (LIFETIME + 10) * 1000  # ms: past a code's life, with room for a busy machine
# Every text the polite live region takes, in order (the countdown itself is never spoken).
LISTEN = """() => {
    window.said = [];
    const region = document.getElementById('announce');
    new MutationObserver(() => window.said.push(region.textContent))
        .observe(region, {childList: true, characterData: true, subtree: true});
}"""


def decoded(page: Any) -> list[str]:
    image = Image.open(io.BytesIO(page.screenshot()))
    return [
        b.text for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode
    ]


@pytest.mark.parametrize("length", [120, 337, 400])
def test_the_compact_svg_reads_back_as_chromium_draws_it(browser: Any, length: int) -> None:
    """A short code, a credit code's 337 characters and one near version 15's limit, drawn at the
    SVG's own size and as wide as the phone page draws it."""
    code = token(length)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    svg = qr.render_svg(code)
    for style in ("", "svg { width: 300px; height: 300px; }"):
        page.set_content(f"<!doctype html><style>{style}</style><body>{svg}</body>")
        assert decoded(page) == [code], style or "the SVG's own size"
    context.close()


def test_an_expired_code_offline_is_greyed_out_and_renews_back_online(
    browser: Any,
    demo_city: DemoCity,  # noqa: F811 - the fixture imported above
) -> None:
    city = demo_city
    context, page, outside, errors = phone(browser)
    sign_in(page, city, city.excellent)
    violations: list[str] = []
    page.goto(city.url + "/me/code")
    page.evaluate(LISTEN)
    first = read_qr(page)
    # The visible countdown is not live; the one live region is the (visually hidden) announcer.
    assert page.locator("#countdown-line").get_attribute("aria-live") is None
    live = page.locator("main [aria-live], main [role=status], main [role=alert]")
    expect(live).to_have_count(1)
    assert live.get_attribute("id") == "announce"
    violations += axe_violations(page)

    # 1. Offline, the renewal fails: one polite warning, then at expiry the code is greyed out and
    # covered, says so plainly, and offers a retry; "剩余 0 秒" never shows, and no scanner reads it.
    context.set_offline(True)
    expired = page.locator("#expired")
    expect(expired).to_be_visible(timeout=WAIT)
    assert time.time() >= expiry(first) - 1
    expect(expired).to_contain_text("信用码已过期")
    expect(expired).to_contain_text("恢复联网后将自动更新")
    expect(page.locator("#countdown-line")).to_be_hidden()
    assert not re.search(r"剩余\s*0\s*秒", page.locator("main").inner_text())  # what shows
    expect(page.get_by_role("img", name="已过期的信用码，不能使用")).to_be_visible()
    assert decoded(page) == []
    screenshot(page, "citizen-code-expired")
    said = page.evaluate("window.said")
    assert said == ["信用码即将过期，正在尝试更新。", "信用码已过期。恢复联网后将自动更新。"], said
    violations += axe_violations(page)

    # Retrying while still offline keeps it expired and says so again.
    before = refreshes(page)
    page.get_by_role("button", name="重试").click()
    page.wait_for_timeout(1000)
    expect(expired).to_be_visible()
    assert refreshes(page) == before
    assert page.evaluate("window.said.at(-1)") == "信用码已过期。恢复联网后将自动更新。"

    # 2. Back online, a new code comes at once (not on the next back-off step): readable and valid.
    context.set_offline(False)
    expect(expired).to_be_hidden(timeout=3000)
    assert refreshes(page) == before + 1
    expect(page.locator("#countdown-line")).to_be_visible()
    renewed = read_qr(page)
    assert renewed != first and expiry(renewed) > time.time()
    assert re.fullmatch(r"已更新信用码，有效 \d+ 秒。", page.evaluate("window.said.at(-1)"))
    expect(page.get_by_role("img", name="信用码二维码")).to_be_visible()

    # 3. The same in English, live and expired, with no per-second chatter either.
    page.goto(city.url + "/me/code?lang=en")
    page.evaluate(LISTEN)
    expect(page.get_by_role("button", name="Refresh now")).to_be_visible()
    violations += axe_violations(page)
    context.set_offline(True)
    expect(expired).to_be_visible(timeout=WAIT)
    expect(expired).to_contain_text("This code has expired")
    expect(expired).to_contain_text("It renews itself when you are back online.")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    assert page.evaluate("window.said") == [
        "This code expires soon; trying to renew it.",
        "This code has expired. It renews itself when you are back online.",
    ]
    violations += axe_violations(page)
    context.set_offline(False)
    expect(expired).to_be_hidden(timeout=3000)

    assert violations == []
    assert outside == [] and errors == []
    context.close()


def read_element(element: Any) -> zxingcpp.Barcode:
    """The one QR code in a screenshot of ``element`` alone, as a scanner would see it."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(element.screenshot())))
    codes = [b for b in found if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(codes) == 1, f"expected one QR code, found {len(codes)}"
    return codes[0]


def test_the_phone_draws_the_token_the_server_issued_and_a_renewal_is_the_token_alone(
    browser: Any,
    demo_city: DemoCity,  # noqa: F811 - the fixture imported above
) -> None:
    """The page draws the QR itself (the vendored qrcode-generator): what it draws is exactly the
    token the server issued, at level M with a quiet zone of four modules, and a venue's SDK
    accepts it. A renewal carries the token alone (< 1 KB). Without scripts, or without the library,
    the page says so and links to a code the server draws, which verifies too."""
    city = demo_city
    context, page, outside, errors = phone(browser)
    sign_in(page, city, city.excellent)
    served = page.goto(city.url + "/me/code")
    assert served is not None
    first = re.search(r"var first = (\{.*?\});", served.text())
    assert first is not None
    issued = json.loads(first.group(1))["token"]
    symbol = page.locator("#qr svg")
    expect(symbol).to_be_visible()
    expect(page.get_by_role("img", name="信用码二维码")).to_be_visible()
    drawn = read_element(symbol)
    assert drawn.text == issued and drawn.ec_level == "M"
    # The quiet zone: four modules of white around the symbol, as the server's images have it.
    modules = qr.qr_version(issued) * 4 + 17
    box = symbol.bounding_box()
    assert box is not None and box["width"] <= 390
    module = box["width"] / (modules + 2 * qr.BORDER)  # CSS px
    left = drawn.position.top_left.x / 2  # the screenshot is at device scale 2
    assert abs(left - qr.BORDER * module) < module, (left, module)

    with PartnerClient(city.venue.client_id, city.venue.client_secret, city.url) as desk:
        assert desk.verify(issued, SCENARIO).eligible is True

        # A renewal: the token and its expiry only, drawn by the phone.
        with page.expect_response(lambda r: "/me/code.json" in r.url) as answer:
            page.get_by_role("button", name="立即刷新").click()
        body = answer.value.body()
        assert answer.value.status == 200 and len(body) < 1024, len(body)
        renewed = json.loads(body)
        assert set(renewed) == {"token", "expires_at", "expires_in"}
        expect(page.locator("#qr")).to_have_attribute("data-refreshed", "1")
        again = read_element(symbol)
        assert again.text == renewed["token"] != issued and again.ec_level == "M"
        assert desk.verify(renewed["token"], SCENARIO).eligible is True

        # The drawing library blocked on the way: the page says so and links to the server's image.
        blocked = context.new_page()
        blocked.route("**/vendor/qrcode-generator.min.js", lambda route: route.abort())
        blocked.goto(city.url + "/me/code")
        expect(blocked.locator("#no-drawing")).to_have_text("无法在本页显示信用码。")
        fallback = blocked.get_by_role("link", name=re.compile("打开信用码图片"))
        expect(fallback).to_have_attribute("href", "/me/code.png")
        expect(blocked.locator("#live")).to_be_hidden()
        blocked.close()

        # Without scripts: nothing of the live part shows, the page says why and links to a code
        # the server draws. (Chromium, with scripts disabled by Playwright, still parses <noscript>
        # as if they ran, so its message is checked in the page's text and the link followed here.)
        plain = browser.new_context(
            **PHONE, java_script_enabled=False, storage_state=context.storage_state()
        )
        still = plain.new_page()
        still.route("**/*", only_loopback(outside))
        bare = still.goto(city.url + "/me/code")
        assert bare is not None
        expect(still.locator("#live")).to_be_hidden()
        noscript = re.search(r"<noscript>(.*?)</noscript>", bare.text(), re.DOTALL)
        assert (
            noscript and "信用码需要浏览器启用 JavaScript 才能显示和自动刷新。" in noscript.group(1)
        )
        assert 'href="/me/code.png"' in noscript.group(1)
        image = still.goto(city.url + "/me/code.png")
        assert image is not None and image.headers["content-type"] == "image/png"
        found = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.body())))
        assert len(found) == 1 and found[0].ec_level == "M"
        assert desk.verify(found[0].text, SCENARIO).eligible is True
        plain.close()

    assert outside == [] and errors == []
    context.close()
