"""The printable report agrees with the records page, in a real browser (Debian's Chromium at 390×844),
on SQLite and PostgreSQL (issue 12).

A consented citizen with an award that counts, a fine under objection and an award past its validity
asks for a one-time code (the focus lands on the code field, so the code is typed straight in), reads
the records page and the report, and finds the same records in the same order with the same name,
date, status and points, in Chinese and in English; the report's times are the city's, as the consent
page shows them. The report, the records page and home are axe-core clean in both languages and fit
390 px (also at 200 % text size); nothing leaves loopback.
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
from tests.browser.test_citizen import phone
from tests.browser.test_consent import overflow
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env

WAIT = 20_000  # ms: the machine may be busy with another test run
REASON = "该罚款已于当日全额缴纳，处罚决定书已撤销，请核实。"
# What the reader sees of one record on either page.
READ_RECORDS = """selector => [...document.querySelectorAll(selector)].map(el => ({
    id: el.id.replace(/^(report-)?record-/, ''),
    name: el.querySelector('.rec-name').innerText.trim(),
    date: el.querySelector('.rec-date').innerText.trim(),
    status: el.querySelector('.rec-status').innerText.trim(),
    points: el.querySelector('.rec-points').innerText.trim(),
}))"""


@dataclass
class ReportCity(LiveCity):
    citizen: str = ""
    award_on: str = ""  # counts
    fine_on: str = ""  # under objection: the deduction is suspended
    old_award_on: str = ""  # past its 365 days


@pytest.fixture(params=BACKENDS)
def report_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportCity]:
    """A live city in demo mode (the one-time code shows on screen) with one consented citizen whose
    records stand three different ways."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port, CITYCREDIT_DEMO_MODE="1")
    settings = load_settings(env=env)
    seeded = _seed(db, settings)  # the court, the itemised test model (base 1000)
    today = dt.datetime.now(settings.tz).date()
    award_on, fine_on, old_award_on = (today - dt.timedelta(days=d) for d in (30, 20, 400))
    number = factories.id_number()
    with unit_of_work(make_session_factory(db.engine)) as session:
        person = operations.get_or_create_citizen(
            session, settings.id_hash_key, parse_id_number(number)
        )
        factories.record(session, person, "AWARD", award_on)
        fine = factories.record(session, person, "FINE", fine_on)
        factories.record(session, person, "AWARD", old_award_on)
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
            yield ReportCity(
                url=url,
                db=db,
                settings=settings,
                citizen=number,
                award_on=award_on.isoformat(),
                fine_on=fine_on.isoformat(),
                old_award_on=old_award_on.isoformat(),
                **seeded,  # type: ignore[arg-type]
            )
    finally:
        db.drop()


def test_the_report_agrees_with_the_records_page_record_by_record(
    browser: Any, report_city: ReportCity
) -> None:
    city = report_city
    violations: list[str] = []
    too_wide: dict[str, int] = {}
    context, page, outside, errors = phone(browser)
    page.set_default_navigation_timeout(WAIT)

    # 1. After asking for a code the focus is on the code field: the code is typed straight in.
    page.goto(city.url + "/me/login")
    page.get_by_label("身份证号码").fill(city.citizen)
    page.get_by_role("button", name="获取验证码").click()
    code = page.locator("#demo-code").inner_text()
    expect(page.get_by_label("验证码")).to_be_focused(timeout=WAIT)
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r".*/me/$"), timeout=WAIT)
    expect(page.locator("#score")).to_have_text("1010", timeout=WAIT)  # 1000 + the award
    violations += axe_violations(page)

    # 2. The records page and the report list the same records, the same way, in both languages.
    expected = {
        "zh": [
            ("奖", city.award_on, "计分中", "+10"),
            ("罚", city.fine_on, "异议处理中", "+0"),
            ("奖", city.old_award_on, "不计分", "+0"),
        ],
        "en": [
            ("Award", city.award_on, "counting", "+10"),
            ("Fine", city.fine_on, "under objection", "+0"),
            ("Award", city.old_award_on, "not counting", "+0"),
        ],
    }
    for lang in ("zh", "en"):
        page.goto(f"{city.url}/me/records?lang={lang}")
        listed = page.evaluate(READ_RECORDS, "#records li[id^=record-]")
        violations += axe_violations(page)
        screenshot(page, f"citizen-records-{lang}")
        too_wide.update(overflow(page, f"/me/records ({lang})"))
        page.goto(f"{city.url}/me/report?lang={lang}")
        reported = page.evaluate(READ_RECORDS, "tr[id^=report-record-]")
        assert reported == listed, lang
        assert [(r["name"], r["date"], r["status"], r["points"]) for r in reported] == expected[
            lang
        ]
        heading = "记录 (3)" if lang == "zh" else "Records (3)"
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        violations += axe_violations(page)
        screenshot(page, f"citizen-report-{lang}")
        too_wide.update(overflow(page, f"/me/report ({lang})"))

    # 3. Why a record does not count, and until when it counts, as the records page says it.
    page.goto(f"{city.url}/me/report?lang=zh")
    old = page.locator("tr[id^=report-record-]").nth(2)
    expect(old).to_contain_text("已过有效期，不再计分")
    fine = page.locator("tr[id^=report-record-]").nth(1)
    expect(fine).to_contain_text("异议处理中，暂停扣分")
    expect(fine).to_contain_text("（含）")
    assert "有效" not in page.locator("table.records").first.inner_text()

    # 4. Times in the city's time: the consent as the consent page shows it, no raw UTC stamp.
    body = page.locator("main").inner_text()
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", body), body
    assert not re.search(r"[a-z][\w-]*@v\d+", body), body  # the engine's identifier
    given = page.locator("#report-consents > li").first.inner_text()
    page.goto(city.url + "/me/consent")
    history = page.locator("h2:has-text('授权记录') + ul > li").first.inner_text()
    stamp = re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d", history)
    assert stamp and given.startswith(stamp.group(0)), (given, history)

    # 5. Home in English, with its charts, is clean too.
    page.goto(city.url + "/me/?lang=en")
    expect(page.locator("figcaption.chart-title")).to_have_count(2)
    violations += axe_violations(page)
    screenshot(page, "citizen-home-en")
    context.close()

    assert not violations, "\n".join(violations)
    assert outside == [] and errors == []
    assert not too_wide, f"wider than 390 px (extra px): {too_wide}"
