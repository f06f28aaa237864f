"""The catalogue (目录管理) in a real browser (Debian's Chromium), on SQLite and PostgreSQL.

One credit-office admin, on a phone (390 px), uploads a catalogue CSV with a mistake (every problem
named by line and column, nothing stored), then a good one that names the market bureau as the only
reporter of licences; she submits it and cannot publish it herself (four eyes, said on the page).
Another admin, at a desk and in English, reads the diff against version 1 and publishes it; the list
shows version 2 in effect and version 1 superseded. Every page visited is axe-core clean in both
languages and fits 390 px (also at 200 % text size); nothing leaves loopback.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from admin import operations as admin_operations
from citycredit.cli.demo import ensure_reference_models, ensure_sources
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from points_engine import catalogue
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import phone
from tests.browser.test_objections import PASSWORD, desk
from tests.browser.test_pages import screenshot
from tests.browser.test_repairs import overflow
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import free_port, gunicorn, live_env


@dataclass
class CatalogueCity:
    url: str


@pytest.fixture(params=BACKENDS)
def catalogue_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CatalogueCity]:
    """A live city with the demo's sources, the reference catalogue (version 1) and model, and two
    credit-office admins."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port)
    load_settings(env=env)
    with unit_of_work(make_session_factory(db.engine)) as session:
        ensure_sources(session)
        ensure_reference_models(session, actor="test")
        for username, name in (("office-a", "王主任"), ("office-b", "李科长")):
            admin_operations.create_user(
                session,
                username=username,
                display_name=name,
                password=PASSWORD,
                role="platform_admin",
                actor="test",
                now=utcnow(),
            )
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield CatalogueCity(url)
    finally:
        db.drop()


def catalogue_file(path: Path, *, mistakes: bool) -> Path:
    rows = list(csv.DictReader(io.StringIO(catalogue.reference_text())))
    for row in rows:
        if row["code"] == "LICENCE_GRANTED":
            row["reporters"] = "market"
    if mistakes:
        rows[1]["kind"] = "gossip"  # line 3
        rows[4]["deadline_days"] = "soon"  # line 6
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=catalogue.COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def sign_in(page: Any, city: CatalogueCity, username: str) -> None:
    page.goto(city.url + "/admin/login?lang=zh")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/admin/?$"))


def test_one_admin_uploads_and_submits_another_publishes(
    browser: Any, catalogue_city: CatalogueCity, tmp_path: Path
) -> None:
    city = catalogue_city
    violations: list[str] = []
    too_wide: dict[str, str] = {}

    def check(page: Any, name: str, page_url: str | None = None) -> None:
        violations.extend(axe_violations(page))
        too_wide.update(overflow(page, name))
        # The phone's viewport widened for the 200 % text: read the page afresh before using it.
        page.goto(page.url if page_url is None else page_url)

    # 1. Office A on a phone: the catalogue from the nav, version 1 in effect.
    context_a, a, outside_a, errors_a = phone(browser)
    sign_in(a, city, "office-a")
    a.get_by_role("link", name="目录管理", exact=True).click()
    a.wait_for_url("**/admin/catalogue")
    expect(a.locator("#catalogue-v1")).to_contain_text("已发布（现行）")
    check(a, "/admin/catalogue (zh)")

    # 2. A file with two mistakes: both named by line and column, nothing stored.
    expect(a.get_by_role("link", name="上传新版本（CSV）")).to_be_visible()
    a.get_by_role("link", name="上传新版本（CSV）").click()
    a.wait_for_url("**/admin/catalogue/new")
    check(a, "/admin/catalogue/new (zh)")
    a.get_by_label("CSV 文件（UTF-8）").set_input_files(
        catalogue_file(tmp_path / "bad.csv", mistakes=True)
    )
    a.get_by_role("button", name="上传并保存草稿").click()
    expect(a.locator("#upload-problems-summary")).to_contain_text("文件有 2 处问题，未保存任何内容")
    problems = a.locator("#upload-problems tbody tr")
    expect(problems).to_have_count(2)
    expect(problems.nth(0)).to_contain_text("3")
    expect(problems.nth(0)).to_contain_text("kind")
    expect(problems.nth(1)).to_contain_text("6")
    expect(problems.nth(1)).to_contain_text("deadline_days")
    expect(a.get_by_label("CSV 文件（UTF-8）")).to_have_attribute("aria-invalid", "true")
    screenshot(a, "admin-catalogue-upload-problems")
    check(a, "/admin/catalogue/new (problems)", city.url + "/admin/catalogue/new")

    # 3. The corrected file: a draft, submitted; office A cannot publish it herself.
    a.get_by_label("CSV 文件（UTF-8）").set_input_files(
        catalogue_file(tmp_path / "good.csv", mistakes=False)
    )
    a.get_by_label("版本说明（可选）").fill("许可仅由市场监管局报送")
    a.get_by_role("button", name="上传并保存草稿").click()
    a.wait_for_url("**/admin/catalogue/2")
    expect(a.get_by_role("status")).to_contain_text("已保存第 2 版草稿")
    expect(a.locator("#catalogue-diff")).to_contain_text("LICENCE_GRANTED")
    expect(a.locator("#entry-LICENCE_GRANTED")).to_contain_text("market")
    expect(a.locator("#entry-LICENCE_GRANTED")).to_contain_text("不计分")
    check(a, "/admin/catalogue/2 (draft)")
    a.get_by_role("button", name="提交审核").click()
    expect(a.get_by_role("status")).to_contain_text("第 2 版已提交审核")
    expect(a.locator("#own-work")).to_contain_text("四眼原则")
    a.get_by_role("button", name="审核通过并发布").click()
    expect(a.get_by_role("alert")).to_contain_text("四眼原则")
    expect(a.locator("h1")).to_contain_text("待审核")
    check(a, "/admin/catalogue/2 (in review, own)", city.url + "/admin/catalogue/2")
    screenshot(a, "admin-catalogue-four-eyes")

    # 4. Office B at a desk, in English: reads the diff and publishes.
    context_b, b, outside_b, errors_b = desk(browser)
    sign_in(b, city, "office-b")
    b.goto(city.url + "/admin/catalogue?lang=en")
    expect(b.locator("html")).to_have_attribute("lang", "en")
    expect(b.locator("#catalogue-v2")).to_contain_text("in review")
    violations.extend(axe_violations(b))
    expect(b.get_by_role("link", name="Version 2")).to_have_attribute("href", "/admin/catalogue/2")
    # Straight to the version in English: the language lives in the session cookie, which a
    # response to a request begun before ?lang=en (a static file, a prefetch) can overwrite.
    b.goto(city.url + "/admin/catalogue/2?lang=en")
    diff = b.locator("#catalogue-diff")
    expect(diff).to_contain_text("LICENCE_GRANTED")
    expect(diff).to_contain_text("changed")
    expect(diff).to_contain_text("Reporters")
    expect(b.locator("#kind-licensing")).to_contain_text("Administrative licensing")
    violations.extend(axe_violations(b))
    b.get_by_role("button", name="Approve and publish").click()
    expect(b.get_by_role("status")).to_contain_text("Version 2 published")
    expect(b.locator("h1")).to_contain_text("published (in effect)")
    violations.extend(axe_violations(b))
    b.goto(city.url + "/admin/catalogue")
    expect(b.locator("#catalogue-v2")).to_contain_text("admin:office-b")
    expect(b.locator("#catalogue-v1")).to_contain_text("superseded")
    context_b.close()

    # 5. Office A sees it in effect, in both languages, on the phone.
    a.goto(city.url + "/admin/catalogue?lang=zh")
    expect(a.locator("#catalogue-v2")).to_contain_text("已发布（现行）")
    expect(a.locator("#catalogue-v1")).to_contain_text("已被替代")
    check(a, "/admin/catalogue (zh, published)")
    a.goto(city.url + "/admin/catalogue/2?lang=en")
    expect(a.locator("#entry-LICENCE_GRANTED")).to_contain_text("not scored")
    check(a, "/admin/catalogue/2 (en)")
    a.goto(city.url + "/admin/catalogue/new?lang=en")
    check(a, "/admin/catalogue/new (en)")
    context_a.close()

    assert not violations, "\n".join(violations)
    assert outside_a == outside_b == [] and errors_a == errors_b == []
    assert not too_wide, f"wider than 390 px (as it is, or at 200 % text size): {too_wide}"
