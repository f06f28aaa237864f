"""The monthly report (通报) in a real browser (Debian's Chromium), on SQLite and PostgreSQL: the
platform admin generates last month's report on a phone (390 px), reads the city's report in Chinese
and in English, the print view leaves the navigation out, and the pages are axe-clean and fit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import expect

from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.periods import add_months
from points_engine import batches
from tests import factories
from tests.browser.test_admin import _seed_admin, _sign_in
from tests.browser.test_admin_papercuts import axe_violations
from tests.browser.test_citizen import phone
from tests.browser.test_repairs import overflow
from tests.e2e.conftest import LiveCity


def _last_month_of_collection(city: LiveCity) -> dt.date:
    """Three rows from the court on the 10th of last month, one with a bad ID number."""
    today = dt.datetime.now(city.settings.tz).date()
    month = add_months(today.replace(day=1), -1)
    day = month.replace(day=10)
    rows = [
        {
            "source": "court",
            "source_record_id": f"rep-{i}",
            "id_number": number,
            "item_code": "AWARD",
            "document_no": f"奖〔{month.year}〕{i}号",
            "occurred_on": day.isoformat(),
            "reported_on": day.isoformat(),
            "status": "active",
        }
        for i, number in enumerate([factories.id_number(), factories.id_number(), "12345"])
    ]
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        batches.ingest(
            session,
            list(enumerate(rows, start=2)),
            origin="browser-test",
            fmt="json",
            key=city.settings.id_hash_key,
            today=day,
        )
    return month


def test_a_months_report_is_generated_read_in_both_languages_and_printed(
    browser: Any, city: LiveCity
) -> None:
    _seed_admin(city)
    month = _last_month_of_collection(city)
    label = f"{month:%Y-%m}"
    context, page, outside, errors = phone(browser)
    _sign_in(page, city, "root")
    page.get_by_role("link", name="通报").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("通报")
    expect(page.get_by_label("月份")).to_have_value(label)
    found = {"list": axe_violations(page), **overflow(page, "list")}
    page.reload()
    page.get_by_role("button", name="生成").click()
    page.wait_for_url(f"**/admin/reports/{label}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(
        f"{month.year} 年 {month.month} 月信用信息归集与应用情况通报（全市）"
    )
    expect(page.locator("#check")).to_contain_text("一致")
    court = page.locator("#table-quality tbody tr").first
    expect(court.locator("th")).to_have_text("court 单位")
    # 3 rows received, 2 accepted: 66.67% qualified.
    expect(court.locator('td[data-col="qualified_rate"]')).to_have_text("66.67%")
    expect(court.locator('td[data-col="received"]')).to_have_text("3")
    found |= {"report": axe_violations(page), **overflow(page, "report")}
    page.reload()

    # Printing leaves the navigation, the language switch and the downloads out.
    page.emulate_media(media="print")
    expect(page.locator("nav.main")).to_be_hidden()
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("link", name="下载 CSV")).to_be_hidden()
    expect(heading).to_be_visible()
    expect(page.locator("#table-grades")).to_be_visible()
    page.emulate_media(media="screen")
    expect(page.locator("nav.main")).to_be_visible()

    page.goto(f"{city.url}/admin/reports/{label}?lang=en")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Monthly report {label}: City")
    expect(page.locator("#table-quality thead")).to_contain_text("Qualified rate")
    assert page.locator("html").get_attribute("lang") == "en"
    found |= {"report en": axe_violations(page), **overflow(page, "report en")}
    page.reload()
    page.get_by_role("link", name="court dept").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Monthly report {label}: court dept")
    found |= {"department en": axe_violations(page), **overflow(page, "department en")}
    assert found == {"list": [], "report": [], "report en": [], "department en": []}
    assert outside == [] and errors == []
    context.close()
