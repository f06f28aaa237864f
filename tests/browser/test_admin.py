"""The admin in a real browser: an operator registers a benefit, an admin publishes it, a desk
credential issued in the admin verifies a citizen's code for it through the partner SDK."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from admin import operations as admin_operations
from citycredit.core import actors
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit_partner import PartnerClient, ScenarioUnavailableError
from scenarios import operations as registry
from tests.browser.test_pages import open_page, screenshot
from tests.e2e.conftest import LiveCity

PASSWORD = "correct horse battery"


def _seed_admin(city: LiveCity) -> None:
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        library = registry.ensure_operator(session, "city-library", "市图书馆", "City Library")
        registry.add_venue(
            session,
            actors.SYSTEM,
            operator=library,
            code="library-main",
            category="library",
            name_zh="市图书馆总馆",
            name_en="City Library, main building",
            address_zh="黄石市磁湖路1号",
        )
        for username, role, options in (
            ("librarian", "operator", {"operator_code": "city-library"}),
            ("root", "platform_admin", {}),
        ):
            admin_operations.create_user(
                session,
                username=username,
                display_name={"librarian": "王图书", "root": "李管理"}[username],
                password=PASSWORD,
                role=role,
                actor="test",
                now=utcnow(),
                **options,
            )


def _sign_in(page: Any, city: LiveCity, username: str) -> None:
    page.goto(city.url + "/admin/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/admin/?$"))


def _sign_out(page: Any) -> None:
    page.get_by_role("button", name="退出").click()
    page.wait_for_url(re.compile(r".*/admin/login.*"))


def test_an_operator_registers_a_benefit_that_a_venue_then_verifies(
    browser: Any, city: LiveCity
) -> None:
    _seed_admin(city)
    context, page, outside = open_page(browser, city)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A script or style the Content-Security-Policy blocks is reported on the console only.
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))

    # The operator drafts "deposit-free borrowing of 40 books for tier 良好 and above" and submits it.
    _sign_in(page, city, "librarian")
    page.get_by_role("link", name="场景管理").click()
    page.get_by_role("link", name="新建场景").click()
    page.get_by_label("场景编码").fill("library-forty-books")
    page.get_by_label("名称（中文）").fill("信易阅·免押金借书40册")
    page.get_by_label("名称（英文）").fill("Borrow 40 books deposit-free")
    page.get_by_label("权益内容（中文）").fill("信用良好及以上，免押金借阅图书最多40册")
    page.get_by_label("权益内容（英文）").fill("Tier Good or better: up to 40 books, no deposit")
    page.get_by_label("最低通用等级").select_option("3")
    page.get_by_label("年满18周岁").check()
    page.get_by_label("每人每日次数").fill("1")
    page.get_by_label("市图书馆总馆").check()
    screenshot(page, "admin-scenario-form")
    page.get_by_role("button", name="保存草稿").click()
    page.wait_for_url("**/admin/scenarios/library-forty-books")
    expect(page.get_by_text("通用等级 良好及以上且年满18周岁").first).to_be_visible()
    page.get_by_role("button", name="提交审核").click()
    expect(page.locator(".badge.in_review").first).to_be_visible()
    _sign_out(page)

    # The credit office reviews and publishes it, then issues the library desk its credentials.
    _sign_in(page, city, "root")
    page.get_by_role("link", name="场景管理").click()
    page.get_by_label("审核").select_option("review")
    page.get_by_role("button", name="筛选").click()
    screenshot(page, "admin-scenarios")
    page.get_by_role("link", name="信易阅·免押金借书40册").click()
    screenshot(page, "admin-scenario-review")
    page.get_by_role("button", name="审核通过并发布").click()
    expect(page.get_by_text("library-forty-books：已发布")).to_be_visible()
    page.get_by_role("link", name="场所与凭证").click()
    page.get_by_role("link", name="市图书馆总馆").click()
    page.get_by_label("终端名称").fill("一楼借阅台")
    page.get_by_role("button", name="签发").click()
    client_id = page.locator("#client-id").inner_text()
    secret = page.locator("#client-secret").inner_text()
    screenshot(page, "admin-client-secret")

    # The desk verifies a citizen's code with those credentials, through the SDK.
    with PartnerClient(client_id, secret, city.url) as desk:
        verdict = desk.verify(city.code(city.excellent), "library-forty-books")
        assert verdict.eligible and verdict.tier.level >= 3 and verdict.scenario_version == 1
        refused = desk.verify(city.code(city.poor), "library-forty-books")
        assert not refused.eligible
        # The desk belongs to the library: the city's bus benefit is not honoured there.
        with pytest.raises(ScenarioUnavailableError):
            desk.verify(city.code(city.excellent), "bus-fare-discount")
        redeemed = desk.redeem(city.code(city.excellent), "library-forty-books")
        assert redeemed.scenario_version == 1

    # The scenario's page counts the verifications; the audit log shows who did what.
    page.get_by_role("link", name="场景管理").click()
    page.get_by_label("搜索（编码或名称）").fill("40册")
    page.get_by_role("button", name="筛选").click()
    page.get_by_role("link", name="信易阅·免押金借书40册").click()
    expect(page.get_by_text("核验 3；近30天核销 1；累计核销 1")).to_be_visible()
    page.get_by_role("link", name="审计日志").click()
    expect(page.get_by_text("scenario.publish").first).to_be_visible()
    screenshot(page, "admin-audit")
    for name, shot in (("评分模型", "admin-models"), ("数据来源", "admin-sources")):
        page.get_by_role("link", name=name).click()
        screenshot(page, shot)
    page.get_by_role("link", name="概览").click()
    assert page.locator("svg.chart").count() == 3
    screenshot(page, "admin-dashboard")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("link", name="Scenarios")).to_be_visible()
    screenshot(page, "admin-dashboard-en")
    assert outside == [] and errors == []
    context.close()
