"""Operators' paper cuts in a real browser (issue 12): the copy button beside a once-shown secret, and
forms whose errors are tied to their fields, axe-clean, on a phone."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.test_admin import PASSWORD, _seed_admin, _sign_in
from tests.browser.test_citizen import phone
from tests.browser.test_pages import screenshot
from tests.e2e.conftest import LiveCity


def axe_violations(page: Any) -> list[str]:
    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}) {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
    ]


def _issue_desk(page: Any, city: LiveCity, name: str) -> None:
    page.goto(city.url + "/admin/venues/library-main")
    page.get_by_label("终端名称").fill(name)
    page.get_by_role("button", name="签发").click()
    expect(page.get_by_role("heading", name="已签发凭证")).to_be_visible()


def test_a_once_shown_secret_is_copied_with_one_tap_and_said_so(
    browser: Any, city: LiveCity
) -> None:
    _seed_admin(city)
    context, page, outside, errors = phone(browser)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=city.url)
    _sign_in(page, city, "root")
    _issue_desk(page, city, "一楼借阅台")
    secret = page.locator("#client-secret").inner_text().strip()
    assert len(secret) > 20

    status = page.locator("#client-secret-copied")
    assert status.get_attribute("role") == "status"
    assert status.get_attribute("aria-live") == "polite"
    expect(status).to_have_text("")
    page.get_by_role("button", name="复制密钥").click()
    expect(status).to_have_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_role("button", name="复制 client_id").click()
    expect(page.locator("#client-id-copied")).to_have_text("已复制")
    assert (
        page.evaluate("navigator.clipboard.readText()") == page.locator("#client-id").inner_text()
    )
    screenshot(page, "admin-client-secret-copied")
    assert axe_violations(page) == []
    assert errors == [] and outside == []
    context.close()

    # Without scripts there is no dead button, and the secret is still there to select and copy.
    context = browser.new_context(locale="zh-CN", java_script_enabled=False)
    page = context.new_page()
    page.goto(city.url + "/admin/login")
    page.get_by_label("用户名").fill("root")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    _issue_desk(page, city, "二楼服务台")
    expect(page.locator("button.copy").first).to_be_hidden()
    assert len(page.locator("#client-secret").inner_text().strip()) > 20
    context.close()


def test_failed_forms_tie_each_error_to_its_field_and_are_axe_clean(
    browser: Any, city: LiveCity
) -> None:
    _seed_admin(city)
    context, page, outside, errors = phone(browser)
    _sign_in(page, city, "root")

    # My account: a wrong current password.
    page.get_by_role("link", name="李管理").click()
    page.get_by_label("当前密码").fill("not my password at all")
    page.get_by_label("新密码（至少 12 个字符）").fill("a brand new passphrase")
    page.get_by_label("再次输入新密码").fill("a brand new passphrase")
    page.get_by_role("button", name="修改密码").click()
    current = page.get_by_label("当前密码")
    expect(current).to_have_attribute("aria-invalid", "true")
    expect(current).to_have_accessible_description("当前密码不正确。")
    expect(page.get_by_label("新密码（至少 12 个字符）")).not_to_have_attribute(
        "aria-invalid", "true"
    )
    screenshot(page, "admin-account-error")
    assert axe_violations(page) == []

    # A scenario whose end comes before its start.
    page.goto(city.url + "/admin/scenarios/new")
    page.get_by_label("场景编码").fill("library-dates")
    page.get_by_label("名称（中文）").fill("借书")
    page.get_by_label("名称（英文）").fill("Books")
    page.get_by_label("权益内容（中文）").fill("免押金")
    page.get_by_label("权益内容（英文）").fill("No deposit")
    page.get_by_label("生效日期").fill("2026-09-01")
    page.get_by_label("截止日期").fill("2026-08-01")
    page.get_by_role("button", name="保存草稿").click()
    until = page.get_by_label("截止日期")
    expect(until).to_have_attribute("aria-invalid", "true")
    expect(until).to_have_accessible_description("不能早于生效日期")
    expect(page.get_by_label("生效日期")).not_to_have_attribute("aria-invalid", "true")
    # The code's hint is still read with the code.
    expect(page.get_by_label("场景编码")).to_have_accessible_description(
        "3–64 位小写字母、数字或连字符，发布后不可更改"
    )
    screenshot(page, "admin-scenario-form-error")
    assert axe_violations(page) == []
    assert errors == [] and outside == []
    context.close()
