"""Pages in a real browser: the API docs work offline, the overview speaks Chinese first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from playwright.sync_api import expect

from tests.e2e.conftest import LiveCity


def screenshot(page: Any, name: str) -> None:
    """Keep a picture of the page when CITYCREDIT_SCREENSHOTS names a folder (docs/screenshots/)."""
    folder = os.environ.get("CITYCREDIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def open_page(browser: Any, city: LiveCity) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    return context, page, outside


def test_the_api_docs_render_from_local_assets_only(browser: Any, city: LiveCity) -> None:
    context, page, outside = open_page(browser, city)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A script or style the Content-Security-Policy blocks is reported on the console only.
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    page.goto(city.url + "/api/docs")
    page.get_by_text("/api/v1/verifications").first.wait_for(timeout=15_000)
    expect(page.get_by_text("/api/v1/redemptions").first).to_be_visible()
    expect(page.get_by_text("citycredit partner API").first).to_be_visible()
    assert outside == [] and errors == []
    screenshot(page, "api-docs")
    context.close()


def test_the_overview_is_in_chinese_with_an_english_switch(browser: Any, city: LiveCity) -> None:
    context, page, outside = open_page(browser, city)
    errors: list[str] = []
    # A script or style the Content-Security-Policy blocks is reported on the console only.
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    page.goto(city.url + "/")
    assert page.locator("h1").inner_text().endswith("个人信用积分")
    expect(page.get_by_text("已授权评分")).to_be_visible()
    screenshot(page, "overview-zh")
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/?lang=en")
    expect(page.get_by_text("Consented to scoring")).to_be_visible()
    screenshot(page, "overview-en")
    assert outside == [] and errors == []
    context.close()
