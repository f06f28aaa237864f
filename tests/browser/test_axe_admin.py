"""axe-core on every admin page, in Chinese and in English, on SQLite and PostgreSQL (see sweep.py)."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.sweep import DemoCity, crawl, sweep
from tests.browser.test_citizen import phone


def test_every_admin_page_is_axe_clean_in_both_languages(browser: Any, demo: DemoCity) -> None:
    context, page, outside, errors = phone(browser)
    violations = sweep(page, [demo.url + "/admin/login"]) if demo.kind == "sqlite" else []
    page.goto(demo.url + "/admin/login")
    page.get_by_label("用户名").fill("admin")
    page.get_by_label("密码").fill(demo.accounts["admin"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/admin/?$"))
    urls = crawl(page, demo.url, "/admin/", ("/admin",))
    # The crawl reached the sections a platform admin works in, not just the dashboard.
    sections = ("/admin/scenarios", "/admin/users", "/admin/audit", "/admin/objections")
    # The webhook pages: the subscription, the deliveries with their chart, one delivery's attempts.
    sections += ("/admin/push/sub_", "/admin/push/deliveries?", "/admin/push/deliveries/")
    for section in sections:
        assert any(u.startswith(demo.url + section) for u in urls), (section, urls)
    if demo.kind == "sqlite":
        violations += sweep(page, urls)
    assert outside == [] and errors == []
    assert violations == [], "\n".join(violations)
    context.close()
