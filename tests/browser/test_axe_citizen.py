"""axe-core on every citizen and public page, in Chinese and in English, on SQLite and PostgreSQL
(see sweep.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.sweep import DemoCity, crawl, serve, sweep
from tests.browser.test_citizen import phone, sign_in
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase


@pytest.fixture(params=BACKENDS)
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DemoCity]:
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    try:
        yield from serve(db, tmp_path)
    finally:
        db.drop()


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
