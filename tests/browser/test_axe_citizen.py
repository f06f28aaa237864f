"""axe-core on every citizen and public page, in Chinese and in English, on SQLite and PostgreSQL
(see sweep.py)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.browser.sweep import DemoCity, crawl, sweep
from tests.browser.test_citizen import phone, sign_in


def test_every_citizen_and_public_page_is_axe_clean_in_both_languages(
    browser: Any, demo: DemoCity
) -> None:
    context, page, outside, errors = phone(browser)
    public = crawl(page, demo.url, "/", ("/lists", "/me/login"))
    sign_in(page, demo, demo.citizen)  # type: ignore[arg-type]
    urls = crawl(page, demo.url, "/me/", ("/me",))
    for section in (
        "/me/records",
        "/me/benefits",
        "/me/code",
        "/me/report",
        "/me/checks",
        "/me/links",
    ):
        assert any(u.startswith(demo.url + section) for u in urls), (section, urls)
    # The demo citizen linked the demo library's system: 我的授权 lists it with its revoke button.
    page.goto(demo.url + "/me/links")
    assert page.locator("#links li").count() >= 1
    # The consent page an operator's system sends a citizen to (not linked from any page).
    consent = authorize_url(demo)
    answer = page.goto(consent)
    assert answer is not None and answer.status == 200 and page.locator("#approve").count() == 1
    urls.append(consent)
    violations = sweep(page, urls) if demo.kind == "sqlite" else []
    context.clear_cookies()
    if demo.kind == "sqlite":
        violations += sweep(page, [*public, demo.url + "/me/login"])
    assert outside == [] and errors == []
    assert violations == [], "\n".join(violations)
    context.close()


def authorize_url(demo: DemoCity) -> str:
    """The demo library's system asking to link (RFC 7636 Appendix B's challenge)."""
    clients = json.loads((demo.log.parent / "instance" / "demo" / "clients.json").read_text())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": clients["links"]["client_id"],
            "redirect_uri": clients["links"]["redirect_uri"],
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "axe",
        }
    )
    return f"{demo.url}/oauth/authorize?{query}"
