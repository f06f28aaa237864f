"""Red and black lists (红黑名单) from the court's import to the public page and back, in a real browser
(Debian's Chromium), on SQLite and PostgreSQL.

The court's clerk, at a desk, imports a CSV with one good black-list row and one whose publication
period is out of the list type's bounds: the refused row is named by line and field, the listing lands
with the name masked. A visitor opens /lists on a phone and reads the masked name, the list and the
decision number — never the full name or the ID number — in Chinese and in English, and the JSON feed
has the entry. The listed citizen's phone shows tier D. The clerk lifts the entry with a reason: it is
off /lists and the feed at once and the citizen is no longer tier D. Every page visited (/lists in
both languages and for the red list alone, /admin/lists in both languages with the refused rows and
the lift form) is axe-core clean and fits 390 px (also at 200 % text size); nothing leaves loopback.

Another department's red-list entry is already published, so the public page has both lists and the
clerk's page shows only the court's entries.
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

import points_engine
from admin import operations as admin_operations
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.idnumber import parse_id_number
from governance import lists
from points_engine import operations
from tests import factories
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import phone, sign_in
from tests.browser.test_objections import PASSWORD, admin_sign_in, desk
from tests.browser.test_pages import screenshot
from tests.browser.test_repairs import overflow
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env

REFERENCE = Path(points_engine.__file__).parent / "models" / "reference" / "itemised-base1000.yaml"
FULL_NAME = "张三丰"
MASKED = "张*丰"
DECISION = "（2026）鄂02执118号"
BAD_DECISION = "（2026）鄂02执119号"
RED_NAME = "李四"
RED_MASKED = "李*"
RED_DECISION = "鄂文明〔2026〕7号"
LIFT_REASON = "被执行人已履行生效法律文书确定的全部义务，依法移出。"
HEADER = "list,id_number,name,decision_no,start_on,publish_months"


@dataclass
class ListCity(LiveCity):
    listed: str = ""  # the ID number the court lists: consented, no records (1000, tier A)
    red_listed: str = ""  # on the civilisation office's red list
    today: dt.date = dt.date.min


@pytest.fixture(params=BACKENDS)
def list_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ListCity]:
    """A live city in demo mode (the one-time code shows on screen) under the reference model (its
    COURT_DISHONEST sets tier D), a citizen about to be listed, the civilisation office's red-list
    entry, the platform admin and the court's clerk."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port, CITYCREDIT_DEMO_MODE="1")
    settings = load_settings(env=env)
    seeded = _seed(db, settings)  # the court, the itemised test model (base 1000)
    today = dt.datetime.now(settings.tz).date()
    now = utcnow()
    with unit_of_work(make_session_factory(db.engine)) as session:
        factories.published(session, REFERENCE.read_text(encoding="utf-8"), REFERENCE.name)
        factories.source(session, "court")
        civil = operations.add_source(session, "civil", "市文明办", "City Civilisation Office")
        listed, red_listed = factories.id_number(), factories.id_number()
        for number in (listed, red_listed):
            person = operations.get_or_create_citizen(
                session, settings.id_hash_key, parse_id_number(number)
            )
            operations.give_consent(session, person, channel="test", as_of=today)
        red = lists.import_entries(
            session,
            [
                (
                    2,
                    {
                        "list": "honesty_model",
                        "id_number": red_listed,
                        "name": RED_NAME,
                        "decision_no": RED_DECISION,
                        "start_on": (today - dt.timedelta(days=10)).isoformat(),
                        "publish_months": "12",
                    },
                )
            ],
            source=civil,
            key=settings.id_hash_key,
            today=today,
            now=now,
            actor="test",
        )
        assert red.errors == [] and len(red.listed) == 1
        for username, name, role, options in (
            ("root", "管理员", "platform_admin", {}),
            ("court-clerk", "陈专员", "clerk", {"source_code": "court"}),
        ):
            admin_operations.create_user(
                session,
                username=username,
                display_name=name,
                password=PASSWORD,
                role=role,
                actor="test",
                now=now,
                **options,
            )
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield ListCity(
                url=url,
                db=db,
                settings=settings,
                listed=listed,
                red_listed=red_listed,
                today=today,
                **seeded,  # type: ignore[arg-type]
            )
    finally:
        db.drop()


def csv_file(path: Path, *rows: tuple[str, ...]) -> Path:
    path.write_text("\n".join([HEADER, *(",".join(row) for row in rows)]) + "\n", encoding="utf-8")
    return path


def test_the_court_lists_a_debtor_the_public_reads_the_masked_name_and_the_clerk_lifts_it(
    browser: Any, list_city: ListCity, tmp_path: Path
) -> None:
    city = list_city
    violations: list[str] = []
    too_wide: dict[str, str] = {}
    start = (city.today - dt.timedelta(days=30)).isoformat()
    # Line 2 lists the citizen for 36 months; line 3's 99 months exceeds the list's 24–60.
    upload = csv_file(
        tmp_path / "court-list.csv",
        ("dishonest_debtor", city.listed, FULL_NAME, DECISION, start, "36"),
        ("dishonest_debtor", factories.id_number(), "王五", BAD_DECISION, start, "99"),
    )

    # 1. The citizen, not yet listed, on their phone: 1000, tier A.
    citizen, mine, outside_citizen, errors_citizen = phone(browser)
    sign_in(mine, city, city.listed)
    expect(mine.locator("#score")).to_have_text("1000")
    expect(mine.locator("#tier")).to_contain_text("A级")

    # 2. The court's clerk, at a desk, imports the CSV: one row listed, line 3 refused by field.
    clerk, desk_page, outside_clerk, errors_clerk = desk(browser)
    admin_sign_in(desk_page, city, "court-clerk")
    desk_page.get_by_role("link", name="红黑名单", exact=True).first.click()
    desk_page.wait_for_url("**/admin/lists")
    expect(desk_page.locator("#entries")).to_have_count(0)  # the red entry is not the court's
    department = desk_page.get_by_label("认定部门")
    expect(department.locator("option")).to_have_count(1)  # a clerk imports for their own source
    department.select_option("court")
    desk_page.get_by_label("文件").set_input_files(upload)
    desk_page.get_by_role("button", name="导入", exact=True).click()
    desk_page.wait_for_url("**/admin/lists/import")
    expect(desk_page.get_by_text("已列入 1 条，未变化 0 条，拒收 1 行。")).to_be_visible()
    refused = desk_page.locator("#row-errors > li")
    expect(refused).to_have_count(1)
    expect(refused.first).to_contain_text("第 3 行")
    expect(refused.first).to_contain_text("publish_months")
    expect(refused.first).to_contain_text("24 to 60 months")
    entries = desk_page.locator("#entries tbody tr")
    expect(entries).to_have_count(1)
    entry = entries.first
    expect(entry).to_have_attribute("id", re.compile(r"^entry-lst_[0-9a-f]+$"))
    entry_id = entry.get_attribute("id")
    expect(entry).to_contain_text(MASKED)
    expect(entry).to_contain_text("失信被执行人名单")
    expect(entry).to_contain_text(DECISION)
    expect(entry).to_contain_text("公示中")
    content = desk_page.content()
    assert FULL_NAME not in content and city.listed not in content
    assert BAD_DECISION not in content  # the refused row lists nothing
    violations += axe_violations(desk_page)
    screenshot(desk_page, "admin-lists-imported")

    # 3. The citizen's phone: the listing sets tier D (1000 − 100).
    mine.goto(city.url + "/me/")
    expect(mine.locator("#score")).to_have_text("900")
    expect(mine.locator("#tier")).to_contain_text("D级")

    # 4. A visitor on a phone, no sign-in: the masked name, the list, the decision number.
    visitor, page, outside, errors = phone(browser)
    page.goto(city.url + "/lists")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="黑名单 (1)")).to_be_visible()
    black = page.locator("#black tbody tr")
    expect(black).to_have_count(1)
    expect(black.first).to_contain_text(MASKED)
    expect(black.first).to_contain_text("失信被执行人名单")
    expect(black.first).to_contain_text(DECISION)
    expect(page.locator("#red")).to_contain_text(RED_MASKED)
    content = page.content()
    assert FULL_NAME not in content and city.listed not in content
    assert RED_NAME not in content and city.red_listed not in content
    violations += axe_violations(page)
    screenshot(page, "public-lists")
    too_wide.update(overflow(page, "/lists (zh)"))
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/lists\?lang=en$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Black lists (1)")).to_be_visible()
    expect(black.first).to_contain_text("Dishonest judgment debtors")
    expect(black.first).to_contain_text(MASKED)
    expect(black.first).to_contain_text(DECISION)
    assert FULL_NAME not in page.content() and city.listed not in page.content()
    violations += axe_violations(page)
    too_wide.update(overflow(page, "/lists (en)"))
    # The red list alone.
    page.goto(city.url + "/lists?kind=red")
    expect(page.locator("#red tbody tr")).to_have_count(1)
    expect(page.locator("#red")).to_contain_text("诚信典型红名单")
    expect(page.locator("#black")).to_have_count(0)
    expect(page.get_by_text(MASKED)).to_have_count(0)
    violations += axe_violations(page)
    too_wide.update(overflow(page, "/lists?kind=red"))
    # The feed has the entry, masked.
    feed = page.request.get(city.url + "/lists.json")
    assert feed.ok and feed.headers["content-type"].startswith("application/json")
    shown = feed.json()["entries"]
    assert {(e["masked_name"], e["decision_no"], e["list_code"]) for e in shown} == {
        (MASKED, DECISION, "dishonest_debtor"),
        (RED_MASKED, RED_DECISION, "honesty_model"),
    }
    assert FULL_NAME not in feed.text() and city.listed not in feed.text()

    # 5. The clerk's list page on a phone, in English and Chinese, with the lift form; and a refused
    # row there (an ID number that is not one).
    on_phone, admin_page, outside_admin, errors_admin = phone(browser)
    admin_sign_in(admin_page, city, "court-clerk")
    admin_page.goto(city.url + "/admin/lists?lang=en")
    expect(admin_page.locator(f"#{entry_id}")).to_contain_text("Dishonest judgment debtors")
    expect(admin_page.locator(f"#{entry_id}").get_by_role("button", name="Lift")).to_be_visible()
    violations += axe_violations(admin_page)
    too_wide.update(overflow(admin_page, "/admin/lists (en)"))
    admin_page.goto(city.url + "/admin/lists?lang=zh")
    expect(admin_page.locator(f"#{entry_id}").get_by_role("button", name="移出")).to_be_visible()
    violations += axe_violations(admin_page)
    too_wide.update(overflow(admin_page, "/admin/lists (zh)"))
    admin_page.get_by_label("文件").set_input_files(
        csv_file(
            tmp_path / "bad.csv",
            ("dishonest_debtor", "11010119900307001X", FULL_NAME, BAD_DECISION, start, "36"),
        )
    )
    admin_page.get_by_role("button", name="导入", exact=True).click()
    admin_page.wait_for_url("**/admin/lists/import")
    expect(admin_page.locator("#row-errors > li")).to_have_count(1)
    expect(admin_page.locator("#row-errors")).to_contain_text("第 2 行")
    expect(admin_page.locator("#row-errors")).to_contain_text("id_number")
    violations += axe_violations(admin_page)
    screenshot(admin_page, "admin-lists-refused-phone")
    too_wide.update(overflow(admin_page, "/admin/lists/import (refused rows)"))

    # 6. The clerk lifts the entry with a reason.
    desk_page.goto(city.url + "/admin/lists")
    row = desk_page.locator(f"#{entry_id}")
    row.get_by_label("移出理由").fill(LIFT_REASON)
    row.get_by_role("button", name="移出", exact=True).click()
    desk_page.wait_for_url(re.compile(r".*/admin/lists$"))
    expect(desk_page.get_by_text(f"{MASKED} 已移出名单，信用分已重新计算。")).to_be_visible()
    expect(row).to_contain_text(f"已移出 {city.today.isoformat()}")
    expect(row).to_contain_text(LIFT_REASON)
    expect(row.get_by_role("button", name="移出", exact=True)).to_have_count(0)
    clerk.close()
    # The same on the phone: the lifted entry, its reason and no form.
    admin_page.goto(city.url + "/admin/lists?lang=zh")
    expect(admin_page.locator(f"#{entry_id}")).to_contain_text(LIFT_REASON)
    violations += axe_violations(admin_page)
    too_wide.update(overflow(admin_page, "/admin/lists (zh, lifted)"))
    on_phone.close()

    # 7. Off the public list and the feed at once; the red entry stays.
    page.goto(city.url + "/lists")
    expect(page.get_by_role("heading", name="黑名单 (0)")).to_be_visible()
    expect(page.locator("#black")).to_have_count(0)
    expect(page.get_by_text(MASKED)).to_have_count(0)
    expect(page.locator("#red")).to_contain_text(RED_MASKED)
    feed = page.request.get(city.url + "/lists.json")
    assert [e["masked_name"] for e in feed.json()["entries"]] == [RED_MASKED]
    visitor.close()

    # 8. The citizen is rescored at once: no longer tier D.
    mine.goto(city.url + "/me/")
    expect(mine.locator("#score")).to_have_text("1000")
    expect(mine.locator("#tier")).to_contain_text("A级")
    expect(mine.locator("#tier")).not_to_contain_text("D级")
    citizen.close()

    assert not violations, "\n".join(violations)
    assert outside == outside_citizen == outside_clerk == outside_admin == []
    assert errors == errors_citizen == errors_clerk == errors_admin == []
    assert not too_wide, f"wider than 390 px (as it is, or at 200 % text size): {too_wide}"
