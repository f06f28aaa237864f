"""axe-core on every citizen and public page, in Chinese and in English, on SQLite and PostgreSQL
(see sweep.py)."""

from __future__ import annotations

from typing import Any

from tests.browser.sweep import DemoCity, crawl, sweep
from tests.browser.test_citizen import phone, sign_in


def test_every_citizen_and_public_page_is_axe_clean_in_both_languages(
    browser: Any, demo: DemoCity
) -> None:
    context, page, outside, errors = phone(browser)
    public = crawl(page, demo.url, "/", ("/lists", "/me/login"))
    sign_in(page, demo, demo.citizen)  # type: ignore[arg-type]
    urls = crawl(page, demo.url, "/me/", ("/me",))
    for section in ("/me/records", "/me/benefits", "/me/code", "/me/report", "/me/checks"):
        assert any(u.startswith(demo.url + section) for u in urls), (section, urls)
    violations = sweep(page, urls) if demo.kind == "sqlite" else []
    context.clear_cookies()
    if demo.kind == "sqlite":
        violations += sweep(page, [*public, demo.url + "/me/login"])
    assert outside == [] and errors == []
    assert violations == [], "\n".join(violations)
    context.close()
