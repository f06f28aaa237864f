"""The citizen's pages in English on a 390×844 phone, in a real browser (Debian's Chromium), on SQLite
and PostgreSQL.

A citizen switches to English with the page's link: the navigation fits in two rows, so "Refresh now"
on the code page is on screen without scrolling; no full-width colon (nor ；、（）。，) is left in what
the pages show; departments go by their English names; the tier is the pair "City tier … · common
level …" with the sentence that relates the two. Every page is axe-core clean in both languages.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import DemoCity, demo_city, phone, sign_in  # noqa: F401 - fixture
from tests.browser.test_pages import screenshot

WAIT = 20_000  # ms: the machine may be busy with another test run
HEIGHT = 844
PAGES = ("/me/", "/me/records", "/me/code", "/me/benefits", "/me/checks", "/me/partners",
         "/me/data", "/me/consent", "/me/objections", "/me/repairs")  # fmt: skip
# Distinct tops of the navigation's items: one per row it wraps to.
NAV_ROWS = """() => new Set([...document.querySelectorAll('nav.tabs li')]
    .map(li => Math.round(li.getBoundingClientRect().top))).size"""


def nav_rows(page: Any) -> int:
    return int(page.evaluate(NAV_ROWS))


def test_english_pages_fit_a_phone_and_speak_english(
    browser: Any,
    demo_city: DemoCity,  # noqa: F811 - the fixture imported above
) -> None:
    city = demo_city
    context, page, outside, errors = phone(browser)
    page.set_default_navigation_timeout(WAIT)
    violations: list[str] = []

    # 1. Chinese first: the tier pair and the sentence relating the two, axe-clean pages.
    sign_in(page, city, city.excellent)
    expect(page).to_have_url(re.compile(r".*/me/$"), timeout=WAIT)
    expect(page.locator("#tier")).to_have_text("本市等级 AA · 通用等级 优秀")
    expect(page.locator("#tier-relation")).to_contain_text("通用等级是合作城市共同认可的五级标准")
    for path in PAGES:
        page.goto(city.url + path)
        assert nav_rows(page) <= 2, f"{path}: the Chinese navigation wraps to {nav_rows(page)} rows"
        violations += axe_violations(page)

    # 2. English, switched with the page's link and kept from page to page.
    page.goto(city.url + "/me/")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en", timeout=WAIT)
    expect(page.locator("#tier")).to_have_text("City tier AA · common level Very good")
    expect(page.locator("#tier-relation")).to_contain_text(
        "the common level is the five-step scale that partner cities recognise"
    )
    screenshot(page, "citizen-home-en")
    # The full-width colon above all, and its kin: none is left in what an English page shows.
    colons: dict[str, list[str]] = {}
    for path in PAGES:
        page.goto(city.url + path)
        expect(page.locator("html")).to_have_attribute("lang", "en")
        rows = nav_rows(page)
        assert rows <= 2, f"{path}: the English navigation wraps to {rows} rows at 390 px"
        shown = page.locator("body").inner_text()
        found = [line for line in shown.splitlines() if any(c in line for c in "：；、（）。，")]
        if found:
            colons[path] = found
        violations += axe_violations(page)
    assert not colons, f"full-width punctuation in English: {colons}"

    # 3. Departments by their English names (the test city's court: "court dept").
    page.goto(city.url + "/me/records")
    records = page.locator("#records")
    expect(records).to_contain_text("court dept")
    expect(records).not_to_contain_text("court 单位")

    # 4. The code page: "Refresh now" on screen at 390×844 as it opens, without scrolling.
    page.goto(city.url + "/me/code")
    refresh = page.get_by_role("button", name="Refresh now")
    expect(refresh).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    box = refresh.bounding_box()
    assert box is not None and box["y"] + box["height"] <= HEIGHT, (
        f"'Refresh now' ends at {box and box['y'] + box['height']:.0f} px, below the fold ({HEIGHT})"
    )
    expect(refresh).to_be_in_viewport(ratio=1)
    screenshot(page, "citizen-code-en")
    context.close()

    assert not violations, "\n".join(violations)
    assert outside == []
    assert errors == []
