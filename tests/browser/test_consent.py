"""Withdrawing consent to scoring on the citizen's phone, in a real browser (Debian's Chromium), on
SQLite and PostgreSQL.

A consented citizen with a score (and an objection pending) opens 授权 and follows the withdraw
link: a page says what is lost (scores deleted, the code stops, the pending objection goes on).
Cancelling keeps the score; a forged form without the confirmation deletes nothing; confirming
deletes the score, says so, and from then on home leads to the consent page, whose history lists the
withdrawal. The confirm page is axe-core clean, works in English and fits 390 px (also at 200 %
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
from playwright.sync_api import expect

from citizen import operations as citizen_ops
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.idnumber import parse_id_number
from points_engine import operations
from tests import factories
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import DOUBLE_TEXT, horizontal_overflow, phone, sign_in
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env

WAIT = 20_000  # ms: the machine may be busy with another test run
REASON = "该罚款已于当日全额缴纳，处罚决定书已撤销，请核实。"


@dataclass
class ConsentCity(LiveCity):
    consenter: str = ""  # an award and a fine under objection, consented: 1010


@pytest.fixture(params=BACKENDS)
def consent_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsentCity]:
    """A live city in demo mode (the one-time code shows on screen) with a consented citizen whose
    objection to a fine is pending."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port, CITYCREDIT_DEMO_MODE="1")
    settings = load_settings(env=env)
    seeded = _seed(db, settings)  # the court, the itemised test model (base 1000)
    today = dt.datetime.now(settings.tz).date()
    consenter = factories.id_number()
    with unit_of_work(make_session_factory(db.engine)) as session:
        person = operations.get_or_create_citizen(
            session, settings.id_hash_key, parse_id_number(consenter)
        )
        factories.record(session, person, "AWARD", today - dt.timedelta(days=30))
        fine = factories.record(session, person, "FINE", today - dt.timedelta(days=20))
        operations.give_consent(session, person, channel="test", as_of=today)
        citizen_ops.file_objection(
            session,
            person,
            fine,
            REASON,
            today=today,
            now=utcnow(),
            terms=citizen_ops.ObjectionTerms.from_settings(settings),
        )
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield ConsentCity(
                url=url,
                db=db,
                settings=settings,
                consenter=consenter,
                **seeded,  # type: ignore[arg-type]
            )
    finally:
        db.drop()


def test_withdrawing_consent_asks_first_and_then_deletes_the_score(
    browser: Any, consent_city: ConsentCity
) -> None:
    city = consent_city
    violations: list[str] = []
    too_wide: dict[str, int] = {}
    context, page, outside, errors = phone(browser)
    page.set_default_navigation_timeout(WAIT)

    # 1. The citizen has a score (1000 + award 10; the fine under objection does not count).
    sign_in(page, city, city.consenter)
    expect(page).to_have_url(re.compile(r".*/me/$"), timeout=WAIT)
    expect(page.locator("#score")).to_have_text("1010", timeout=WAIT)

    # 2. 授权 → the withdraw link → a page that says what happens, before anything is deleted.
    page.get_by_role("link", name="授权", exact=True).click()
    expect(page).to_have_url(re.compile(r".*/me/consent$"), timeout=WAIT)
    expect(page.get_by_text("当前状态：已授权")).to_be_visible(timeout=WAIT)
    page.get_by_role("link", name="撤回授权并删除信用分…").click()
    expect(page).to_have_url(re.compile(r".*/me/consent/withdraw$"), timeout=WAIT)
    expect(page.get_by_role("heading", name="撤回授权并删除信用分？")).to_be_visible(timeout=WAIT)
    happens = page.locator("#what-happens > li")
    expect(happens).to_have_count(4)
    expect(happens.nth(0)).to_contain_text("删除为您计算过的全部信用分和等级")
    expect(happens.nth(1)).to_contain_text("信用码随即失效")
    expect(happens.nth(2)).to_contain_text("（办理中的异议 1 件）")
    expect(happens.nth(3)).to_contain_text("可以随时重新授权")
    expect(page.get_by_role("button", name="确认撤回并删除")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-consent-withdraw")
    too_wide.update(overflow(page, "/me/consent/withdraw (zh)"))

    # 3. 取消 goes back; nothing is lost: home still shows the score.
    page.reload()
    page.get_by_role("link", name="取消").click()
    expect(page).to_have_url(re.compile(r".*/me/consent$"), timeout=WAIT)
    expect(page.get_by_text("当前状态：已授权")).to_be_visible(timeout=WAIT)
    page.get_by_role("link", name="首页").click()
    expect(page).to_have_url(re.compile(r".*/me/$"), timeout=WAIT)
    expect(page.locator("#score")).to_have_text("1010", timeout=WAIT)

    # 4. The same in English (switched with the page's link, and kept).
    page.get_by_role("link", name="授权", exact=True).click()
    expect(page).to_have_url(re.compile(r".*/me/consent$"), timeout=WAIT)
    page.get_by_role("link", name="English").click()
    expect(page).to_have_url(re.compile(r".*/me/consent\?lang=en$"), timeout=WAIT)
    page.get_by_role("link", name="Withdraw and delete my score…").click()
    expect(page).to_have_url(re.compile(r".*/me/consent/withdraw$"), timeout=WAIT)
    expect(page.locator("html")).to_have_attribute("lang", "en", timeout=WAIT)
    expect(
        page.get_by_role("heading", name="Withdraw consent and delete your score?")
    ).to_be_visible()
    expect(page.locator("#what-happens")).to_contain_text("every score and tier computed for you")
    expect(page.locator("#what-happens")).to_contain_text("(1 objection(s) pending)")
    expect(page.get_by_role("button", name="Yes, withdraw and delete")).to_be_visible()
    expect(page.get_by_role("link", name="Cancel")).to_be_visible()
    violations += axe_violations(page)
    too_wide.update(overflow(page, "/me/consent/withdraw (en)"))
    page.reload()
    page.get_by_role("link", name="中文").click()
    expect(page).to_have_url(re.compile(r".*/me/consent/withdraw\?lang=zh$"), timeout=WAIT)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN", timeout=WAIT)

    # 5. A form without the confirmation (one tap, or forged) deletes nothing: back to the question.
    page.locator("#what-happens").wait_for()
    page.locator("input[name=confirm]").evaluate("input => input.remove()")
    with page.expect_response(consent_post, timeout=WAIT) as answer:
        page.get_by_role("button", name="确认撤回并删除").click()
    assert answer.value.status == 302
    assert answer.value.headers["location"].endswith("/me/consent/withdraw")
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r".*/me/consent/withdraw$"), timeout=WAIT)
    expect(page.get_by_role("heading", name="撤回授权并删除信用分？")).to_be_visible(timeout=WAIT)

    # 6. Confirming withdraws and deletes the score, and says so.
    page.get_by_role("button", name="确认撤回并删除").click()
    expect(page).to_have_url(re.compile(r".*/me/consent\?withdrawn=1$"), timeout=WAIT)
    expect(page.get_by_role("status")).to_have_text("已撤回授权，您的信用分已删除。", timeout=WAIT)
    expect(page.get_by_text("当前状态：未授权，尚无信用分")).to_be_visible()
    expect(page.get_by_role("button", name="同意授权并计算信用分")).to_be_visible()
    expect(page.get_by_role("link", name="撤回授权并删除信用分…")).to_have_count(0)
    # The consent history lists the withdrawal (newest first) above the earlier consent.
    history = page.locator("h2:has-text('授权记录') + ul > li")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("撤回授权")
    expect(history.nth(0)).to_contain_text("(citizen-page)")
    expect(history.nth(1)).to_contain_text("同意授权")
    violations += axe_violations(page)
    screenshot(page, "citizen-consent-withdrawn")

    # 7. Home now leads to the consent page, and so does the withdraw page (nothing to withdraw).
    page.get_by_role("link", name="首页").click()
    expect(page).to_have_url(re.compile(r".*/me/consent$"), timeout=WAIT)
    expect(page.get_by_text("当前状态：未授权，尚无信用分")).to_be_visible(timeout=WAIT)
    expect(page.locator("#score")).to_have_count(0)
    page.goto(city.url + "/me/consent/withdraw")
    expect(page).to_have_url(re.compile(r".*/me/consent$"), timeout=WAIT)
    context.close()

    assert not violations, "\n".join(violations)
    assert outside == []
    assert errors == []
    at_100 = {k: v for k, v in too_wide.items() if not k.endswith(" at 200 %")}
    assert not at_100, f"wider than 390 px (extra px): {at_100}"
    assert not too_wide, f"wider than 390 px at 200 % text size (extra px): {too_wide}"


def consent_post(response: Any) -> bool:
    return bool(response.request.method == "POST" and response.url.endswith("/me/consent"))


def overflow(page: Any, name: str) -> dict[str, int]:
    """How far the page is wider than the phone, as it is and at 200 % text size (only if it is)."""
    found = {}
    if extra := horizontal_overflow(page):
        found[name] = extra
    page.evaluate(DOUBLE_TEXT)
    if extra := horizontal_overflow(page):
        found[name + " at 200 %"] = extra
    return found
