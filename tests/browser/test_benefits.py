"""Finding a benefit on a phone (Debian's Chromium at 390×844), on SQLite and PostgreSQL.

With the demo catalogue (210 benefits) loaded, a citizen of tier A (common level 3) searches, picks a
category and a district, opens the folded rest; in Chinese and in English. Every state is axe-core
clean, fits 390 px (also at 200 % text size), and nothing leaves loopback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work
from scenarios import catalogue
from scenarios.demo import load_catalogue
from tests.browser.test_citizen import DOUBLE_TEXT, horizontal_overflow, phone, sign_in
from tests.browser.test_citizen_federation import axe_violations
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env

OFFERED = list(catalogue.scenarios())


@pytest.fixture(params=BACKENDS)
def catalogue_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveCity]:
    """A live city in demo mode (the one-time code shows on screen) with the demo catalogue."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port, CITYCREDIT_DEMO_MODE="1")
    settings = load_settings(env=env)
    seeded = _seed(db, settings)  # the three demo scenarios; citizens of tier AA, A and D
    with unit_of_work(make_session_factory(db.engine)) as session:
        load_catalogue(session)
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield LiveCity(url=url, db=db, settings=settings, **seeded)  # type: ignore[arg-type]
    finally:
        db.drop()


def fits_a_phone(page: Any) -> list[str]:
    """Where the page needs sideways scrolling at 390 px, at 100 % and at 200 % text size."""
    problems = []
    if overflow := horizontal_overflow(page):
        problems.append(f"{page.url} is {overflow} px too wide")
    page.evaluate(DOUBLE_TEXT)
    if overflow := horizontal_overflow(page):
        problems.append(f"{page.url} is {overflow} px too wide at 200 % text")
    page.reload()
    return problems


def found(page: Any) -> int:
    match = re.match(r"(?:找到 (\d+) 项|(\d+) found)", page.locator("#found").inner_text())
    assert match, page.locator("#found").inner_text()
    return int(match.group(1) or match.group(2))


def listed(page: Any, within: str = "main") -> list[str]:
    return [n.strip() for n in page.locator(f"{within} li > strong").all_text_contents()]


def test_a_citizen_searches_picks_a_category_and_opens_the_rest_on_a_phone(
    browser: Any, catalogue_city: LiveCity
) -> None:
    city = catalogue_city
    total = len(OFFERED) + 3  # and the three scenarios every demo city has
    context, page, outside, errors = phone(browser)
    sign_in(page, city, city.good)
    violations: list[str] = []
    too_wide: list[str] = []

    # 1. The page: what I qualify for, then the rest folded, its count on the fold.
    page.get_by_role("link", name="我的权益").click()
    page.wait_for_url("**/me/benefits")
    expect(page.locator("#eligible-count")).to_have_text(re.compile(r"\d+"))
    eligible = int(page.locator("#eligible-count").inner_text())
    assert 0 < eligible < total
    rest = page.locator("details#rest")
    expect(rest.locator("summary")).to_have_text(f"其余权益（暂不符合） （{total - eligible} 项）")
    assert rest.get_attribute("open") is None
    first_folded = rest.locator("li > strong").first
    expect(first_folded).to_be_hidden()
    violations += axe_violations(page)
    too_wide += fits_a_phone(page)
    screenshot(page, "citizen-benefits")

    # 2. Search: the box (a plain GET form) finds Xialu's library by two words.
    page.get_by_label("搜索权益").fill("下陆区 图书馆")
    page.get_by_role("button", name="搜索", exact=True).click()
    page.wait_for_url(re.compile(r".*/me/benefits\?q="))
    assert found(page) == 4
    assert all(name.startswith("信易阅·下陆区图书馆") for name in listed(page)), listed(page)
    expect(page.get_by_label("搜索权益")).to_have_value("下陆区 图书馆")
    violations += axe_violations(page)

    # 3. Nothing found says so and offers to clear; clearing shows everything again.
    page.get_by_label("搜索权益").fill("潜水艇")
    page.get_by_role("button", name="搜索", exact=True).click()
    expect(page.locator("#none")).to_contain_text("没有符合筛选条件的权益。")
    violations += axe_violations(page)
    page.locator("#none").get_by_role("link", name="清除筛选").click()
    page.wait_for_url(re.compile(r".*/me/benefits$"))
    expect(page.locator("#found")).to_have_count(0)

    # 4. A category, then near me (a district): the chips are links, the chosen one is current.
    categories = page.get_by_role("navigation", name="按类别")
    categories.get_by_role("link", name=re.compile(r"^文化旅游 \d+$")).click()
    page.wait_for_url("**/me/benefits?category=tourism")
    tourism = sum(1 for s in OFFERED if s["category"] == "tourism")
    assert found(page) == tourism
    expect(categories.locator('[aria-current="true"]')).to_have_text(f"文化旅游 {tourism}")
    page.get_by_role("navigation", name="附近：按区县").get_by_role(
        "link", name=re.compile(r"^铁山区 \d+$")
    ).click()
    page.wait_for_url("**/me/benefits?category=tourism&district=ts")
    names = listed(page)
    assert found(page) == len(names) == 4
    assert all(name.startswith("信易游·铁山区景区") for name in names)

    # 5. The folded rest opens with a tap and says why, once for its condition.
    rest = page.locator("details#rest")
    folded = rest.locator("li > strong")
    expect(folded.first).to_be_hidden()
    rest.locator("summary").click()
    expect(folded.first).to_be_visible()
    expect(rest.locator("p.why").first).to_contain_text("原因：需达到通用等级 优秀及以上")
    assert rest.locator("p.why").count() == rest.locator("h3").count()
    violations += axe_violations(page)
    too_wide += fits_a_phone(page)
    screenshot(page, "citizen-benefits-filtered")

    # 6. In English, the same: search, a category, the rest opened.
    page.goto(city.url + "/me/benefits?lang=en")
    violations += axe_violations(page)
    page.get_by_label("Search benefits").fill("library")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r".*/me/benefits\?q=library"))
    libraries = sum(1 for s in OFFERED if s["category"] == "library") + 1
    assert found(page) == libraries
    page.get_by_role("navigation", name="Near me: by district").get_by_role(
        "link", name=re.compile(r"^Daye \d+$")
    ).click()
    page.wait_for_url("**/me/benefits?q=library&district=dy")
    assert found(page) == 4 and all(n.startswith("Daye Library") for n in listed(page))
    page.locator("details#rest summary").click()
    expect(page.locator("details#rest li > strong").first).to_be_visible()
    violations += axe_violations(page)
    too_wide += fits_a_phone(page)
    page.goto(city.url + "/me/benefits?category=sports")
    expect(page.locator("h1")).to_have_text("My benefits")
    violations += axe_violations(page)

    # 7. Bad input is answered on the page, tied to the box.
    page.goto(city.url + "/me/benefits?lang=zh&q=" + "图" * 120)
    expect(page.locator("#q-error")).to_contain_text("搜索词太长")
    expect(page.get_by_label("搜索权益")).to_have_attribute("aria-invalid", "true")
    violations += axe_violations(page)

    assert violations == []
    assert too_wide == []
    assert outside == [] and errors == []
    context.close()
