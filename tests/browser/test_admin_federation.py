"""The admin's federation section in a real browser (Debian's Chromium at 390×844), on SQLite and
PostgreSQL.

A live city (黄石市, 420200) coordinates a federation with 三亚市 and 武汉市: it holds the trust list
it signed, and another platform admin has proposed suspending Sanya. The credit office reads its
fingerprint and the members' mappings, approves the suspension (a new list is signed), sees its own
proposal refused for approval by four eyes, and reads how many visitors from each partner city used
which benefits. Every page is axe-core clean, in Chinese and English, and fits 390 px (also at 200 %
text size); nothing leaves loopback.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from admin import operations as admin_operations
from citycredit.core.actors import Actor
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from federation import coordinator
from tests.browser.test_citizen import DOUBLE_TEXT, horizontal_overflow, phone
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env
from tests.integration.test_admin_federation import (
    make_keys,
    sanya,
    seed_federation,
    seed_visitors,
    wuhan,
)

PASSWORD = "correct horse battery"
PAGES = ("/admin/federation", "/admin/federation/members", "/admin/federation/visitors")


@dataclass
class FederatedCity:
    city: LiveCity
    fingerprint: str
    sanya_fingerprint: str


@pytest.fixture(params=BACKENDS)
def coordinating_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FederatedCity]:
    """A live city that coordinates a federation of three, with visitors from two partners."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(
        db,
        tmp_path,
        port,
        CITYCREDIT_CITY_CODE="420200",
        CITYCREDIT_CITY_NAME="黄石市",
        CITYCREDIT_CITY_NAME_EN="Huangshi",
        CITYCREDIT_FEDERATION_COORDINATOR="1",
    )
    seeded = _seed(db, load_settings(env=env))  # publishes this city's model: AA→4 … D→1
    factory = make_session_factory(db.engine)
    with unit_of_work(factory) as session:
        own, anchor = make_keys(session, load_settings(env=env).key_secret)
    env["CITYCREDIT_TRUST_ANCHOR"] = anchor
    settings = load_settings(env=env)
    partners = [sanya(), wuhan()]
    now = utcnow()
    with unit_of_work(factory) as session:
        seed_federation(session, settings, partners, now=now, publish_model=False)
        hour = dt.timedelta(hours=1)
        seed_visitors(
            session,
            settings.key_secret,
            [
                ("460200", "tourism", now - hour, True),
                ("460200", "tourism", now - 2 * hour, False),
                ("460200", "transport", now - 26 * hour, True),
                ("420100", "tourism", now - 50 * hour, True),
                ("420100", "library", now - 200 * hour, False),
            ],
        )
        for username, name in (("root", "李管理"), ("root2", "张复核")):
            admin_operations.create_user(
                session,
                username=username,
                display_name=name,
                password=PASSWORD,
                role="platform_admin",
                actor="test",
                now=now,
            )
        coordinator.propose(session, settings, Actor("admin:root2"), "460200", "suspend")
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            city = LiveCity(url=url, db=db, settings=settings, **seeded)  # type: ignore[arg-type]
            yield FederatedCity(city, own, partners[0].fingerprint)
    finally:
        db.drop()


def axe_violations(page: Any) -> list[str]:
    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}) {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
    ]


def test_the_credit_office_reads_and_runs_the_federation_on_a_phone(
    browser: Any, coordinating_city: FederatedCity
) -> None:
    city = coordinating_city.city
    context, page, outside, errors = phone(browser)
    violations: list[str] = []
    page.goto(city.url + "/admin/login")
    page.get_by_label("用户名").fill("root")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/admin/?$"))

    # 1. This city in the federation: the fingerprint to read out, the list, the mappings.
    page.get_by_role("link", name="合作城市").click()
    page.wait_for_url("**/admin/federation")
    assert page.locator("#own-fingerprint").inner_text() == coordinating_city.fingerprint
    expect(page.locator("#held-list").get_by_text("有效")).to_be_visible()
    mappings = page.locator("#mappings")
    assert mappings.locator("thead th").count() == 4  # the common level and three members
    assert mappings.locator("tbody tr").first.inner_text().split("\t")[0] == "5 极好"
    expect(page.get_by_role("heading", name=re.compile("三亚市 460200"))).to_be_visible()
    expect(page.get_by_text(coordinating_city.sanya_fingerprint)).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "admin-federation")

    # 2. Membership: approve what the other admin proposed; a new list is signed at once.
    page.get_by_role("link", name="成员管理（协调方）").click()
    page.wait_for_url("**/admin/federation/members")
    expect(page.get_by_role("heading", name="#1 暂停 三亚市 460200")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "admin-federation-members")
    page.get_by_role("button", name="批准 #1").click()
    page.wait_for_url("**/admin/federation/members")
    assert (
        page.get_by_role("status").inner_text() == "已批准 #1 暂停 460200；已签发信任列表第 2 版。"
    )
    expect(page.locator("#registered").get_by_text("已暂停")).to_be_visible()

    # 3. A proposal of one's own cannot be approved by oneself (four eyes).
    page.get_by_label("变更类型", exact=True).select_option("resume")
    page.get_by_label("城市代码", exact=True).fill("460200")
    page.get_by_role("button", name="提交提议").click()
    page.wait_for_url("**/admin/federation/members")
    assert page.get_by_role("status").inner_text().startswith("已提议 #2：恢复 460200")
    expect(page.get_by_text("这是您提出的变更")).to_be_visible()
    page.get_by_role("button", name="批准 #2").click()
    page.wait_for_url("**/admin/federation/members")
    assert page.get_by_role("alert").inner_text().startswith("四眼原则")
    violations += axe_violations(page)

    # 4. Visitors: per partner city per day, and per partner and category.
    page.get_by_role("link", name="来访者统计").click()
    page.wait_for_url("**/admin/federation/visitors")
    chart = page.locator("svg.chart[role=img]")
    assert chart.count() == 1
    assert "来访者每日核验次数" in chart.locator("title").first.text_content()
    rows = page.locator("#by-category tbody tr")
    assert rows.count() == 4
    assert rows.first.inner_text().split("\t") == ["三亚市 460200", "信易游·文化旅游", "2", "1"]
    violations += axe_violations(page)
    screenshot(page, "admin-federation-visitors")

    # 5. In English too; every page fits 390 px, also at 200 % text.
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/admin/federation/visitors\?lang=en$"))
    expect(page.get_by_role("heading", name="Visitors from partner cities")).to_be_visible()
    too_wide = {}
    for path in PAGES:
        page.goto(city.url + path)
        violations += axe_violations(page)
        too_wide[path] = horizontal_overflow(page)
        page.evaluate(DOUBLE_TEXT)
        too_wide[path + " (200 %)"] = horizontal_overflow(page)
    page.goto(city.url + "/admin/federation?lang=zh")
    for path in PAGES:
        page.goto(city.url + path)
        too_wide[path + " (zh)"] = horizontal_overflow(page)
    assert too_wide == dict.fromkeys(too_wide, 0)
    assert violations == []
    assert outside == [] and errors == []
    context.close()
