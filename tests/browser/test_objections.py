"""An objection (异议) from the citizen's phone to the reviewer's decision, in a real browser (Debian's
Chromium), on SQLite and PostgreSQL.

A citizen objects to a fine on their phone (390×844) and reads the confirmation: the record by name
and the deadline in working days. The objection reviewer (at a desk) sees the case in the queue and
sends it to the court; the court's clerk, who sees only the court's cases, records the court's
answer; the reviewer upholds the objection with a reason. The citizen reads the outcome, the reason
and the rescored score, then objects to a second record and withdraws it through the confirmation
page. Every objection page, the citizen's and the admin's, is axe-core clean, works in English and
fits 390 px (also at 200 % text size); nothing leaves loopback.

Three cases against the tax office's records are already in the queue (an overdue one still open, one
near its deadline with the source, one answered), so the admin's every form is seen on a phone too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from admin import operations as admin_operations
from citizen import operations as citizen_ops
from citycredit.core.actors import Actor
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.idnumber import parse_id_number
from citycredit.core.workdays import WorkCalendar
from points_engine import operations
from tests import factories
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import (
    DOUBLE_TEXT,
    horizontal_overflow,
    only_loopback,
    phone,
    sign_in,
)
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env

PASSWORD = "correct horse battery"
DESK: dict[str, Any] = dict(viewport={"width": 1280, "height": 900}, locale="zh-CN")
FIRST_REASON = "该罚款已于当日全额缴纳，处罚决定书已撤销，请核实。"
SECOND_REASON = "这次处罚的对象不是我，当天我在外地出差，有车票为证。"
COURT_ANSWER = "经核查，该处罚决定已于次日撤销，原记录推送有误。"
DECISION = "法院确认处罚决定已撤销，该记录不应计分。"
TAX_REASON = "纳税记录有误，申报已按期完成，请核实。"


@dataclass
class ObjectionCity(LiveCity):
    objector: str = ""  # an award, a fine and a penalty (all the court's), consented: 975
    award_id: int = 0
    fine_id: int = 0
    penalty_id: int = 0
    today: dt.date = dt.date.min
    deadline: dt.date = dt.date.min  # of an objection filed today
    tax_cases: dict[str, str] = field(default_factory=dict)  # open (overdue) / forwarded (near) / …


def _near_filing_day(calendar: WorkCalendar, today: dt.date, days: int) -> dt.date:
    """A filing day whose deadline is today or at most three working days away (flagged near)."""
    for back in range(1, 60):
        filed = today - dt.timedelta(days=back)
        deadline = calendar.add_working_days(filed, days, provisional=True)
        left = calendar.working_days_between(today, deadline, provisional=True)
        if deadline >= today and left <= 3:
            return filed
    raise AssertionError("no filing day gives a near deadline")


@pytest.fixture(params=BACKENDS)
def objection_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectionCity]:
    """A live city in demo mode (the one-time code shows on screen) with an objection reviewer, the
    court's clerk, a citizen with three of the court's records, and three of the tax office's cases."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port, CITYCREDIT_DEMO_MODE="1")
    settings = load_settings(env=env)
    seeded = _seed(db, settings)  # the court, the itemised test model (base 1000)
    terms = citizen_ops.ObjectionTerms.from_settings(settings)
    today = dt.datetime.now(settings.tz).date()
    now = utcnow()
    tax_cases: dict[str, str] = {}
    with unit_of_work(make_session_factory(db.engine)) as session:
        court = factories.source(session, "court")
        tax = operations.add_source(session, "tax", "市税务局", "City Tax Office")
        objector = factories.id_number()
        person = operations.get_or_create_citizen(
            session, settings.id_hash_key, parse_id_number(objector)
        )
        award = factories.record(session, person, "AWARD", today - dt.timedelta(days=30), src=court)
        fine = factories.record(session, person, "FINE", today - dt.timedelta(days=20), src=court)
        penalty = factories.record(
            session, person, "PENALTY", today - dt.timedelta(days=40), src=court
        )
        operations.give_consent(session, person, channel="test", as_of=today)
        # The tax office's cases: overdue (still open), near (with the source), answered.
        reviewer = Actor("admin:seed-reviewer")
        for stage, filed in (
            ("open", today - dt.timedelta(days=60)),
            ("forwarded", _near_filing_day(terms.calendar, today, terms.days)),
            ("answered", today - dt.timedelta(days=1)),
        ):
            other = factories.citizen(session, consent=False)
            operations.give_consent(session, other, channel="test", as_of=filed)
            record = factories.record(
                session, other, "BIG_FINE", filed - dt.timedelta(days=30), src=tax
            )
            moment = dt.datetime.combine(filed, dt.time(2), tzinfo=dt.UTC)
            case = citizen_ops.file_objection(
                session, other, record, TAX_REASON, today=filed, now=moment, terms=terms
            )
            if stage != "open":
                citizen_ops.forward(session, case, reviewer, moment)
            if stage == "answered":
                citizen_ops.record_source_answer(
                    session, case, reviewer, "税务局：申报记录正在核对。", moment
                )
            tax_cases[stage] = case.public_id
        for username, name, role, options in (
            ("rev", "周审核", "reviewer", {}),
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
        ids = (award.id, fine.id, penalty.id)
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield ObjectionCity(
                url=url,
                db=db,
                settings=settings,
                objector=objector,
                award_id=ids[0],
                fine_id=ids[1],
                penalty_id=ids[2],
                today=today,
                deadline=terms.calendar.add_working_days(today, terms.days, provisional=True),
                tax_cases=tax_cases,
                **seeded,  # type: ignore[arg-type]
            )
    finally:
        db.drop()


def desk(browser: Any) -> tuple[Any, Any, list[str], list[str]]:
    """A desktop page that may reach only loopback; returns (context, page, outside, errors)."""
    context = browser.new_context(**DESK)
    page = context.new_page()
    page.set_default_timeout(15_000)
    outside: list[str] = []
    errors: list[str] = []
    page.route("**/*", only_loopback(outside))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    return context, page, outside, errors


def admin_sign_in(page: Any, city: LiveCity, username: str) -> None:
    page.goto(city.url + "/admin/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r".*/admin/?$"))


CASE_URL = re.compile(r".*/admin/objections/obj_[0-9a-f]+$")


def test_an_objection_is_filed_on_a_phone_decided_in_the_admin_and_another_withdrawn(
    browser: Any, objection_city: ObjectionCity
) -> None:
    city = objection_city
    violations: list[str] = []
    citizen, phone_page, outside, errors = phone(browser)
    page = phone_page

    # 1. The citizen (975: 1000 + award 10 − fine 5 − penalty 30) objects to the fine on a phone.
    sign_in(page, city, city.objector)
    expect(page.locator("#score")).to_have_text("975")
    page.get_by_role("link", name="我的记录").first.click()
    page.wait_for_url("**/me/records")
    fine = page.locator(f"#record-{city.fine_id}")
    expect(fine.get_by_text("计分中", exact=True)).to_be_visible()
    fine.get_by_role("link", name="对此记录提出异议").click()
    page.wait_for_url(f"**/me/records/{city.fine_id}/objection")
    expect(page.locator("#record-name")).to_have_text("罚")
    violations += axe_violations(page)
    screenshot(page, "citizen-objection-form")
    page.get_by_label("异议理由").fill(FIRST_REASON)
    page.get_by_role("button", name="提交异议").click()
    page.wait_for_url(re.compile(r".*/me/objections/obj_[0-9a-f]+\?filed=1$"))
    first_case = re.search(r"obj_[0-9a-f]+", page.url).group(0)  # type: ignore[union-attr]

    # The confirmation names the record and the deadline; the case is pending, step by step.
    confirmation = page.locator("#filed")
    expect(confirmation).to_contain_text("“罚”这条记录已标记为异议处理中")
    expect(confirmation).to_contain_text(f"信用中心将于 {city.deadline.isoformat()} 前作出决定")
    expect(page.locator("#case-no")).to_have_text(first_case)
    expect(page.locator("#case-status")).to_have_text("待处理")
    expect(page.locator("#deadline")).to_contain_text(city.deadline.isoformat())
    expect(page.locator("#deadline")).to_contain_text("个工作日")
    expect(page.locator("#steps > li").first).to_contain_text("提交异议")
    expect(page.get_by_role("link", name="撤回异议")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-objection-filed")
    # The deduction stops counting at once: 1000 + 10 − 30.
    page.goto(city.url + "/me/")
    expect(page.locator("#score")).to_have_text("980")

    # 2. The reviewer, at a desk, sees the case in the queue (after the overdue and the near one).
    reviewer, review, outside_desk, errors_desk = desk(browser)
    admin_sign_in(review, city, "rev")
    review.get_by_role("link", name="异议处理").click()
    review.wait_for_url("**/admin/objections")
    expect(review.locator("#queue-flags")).to_have_text("逾期 1 件，临近期限 1 件。")
    rows = review.locator("#cases tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_have_attribute("id", f"case-{city.tax_cases['open']}")
    expect(rows.nth(0)).to_contain_text("逾期")
    expect(rows.nth(1)).to_have_attribute("id", f"case-{city.tax_cases['forwarded']}")
    expect(rows.nth(1)).to_contain_text("临近")
    mine = review.locator(f"#case-{first_case}")
    expect(mine).to_contain_text("罚")
    expect(mine).to_contain_text(city.deadline.isoformat())
    expect(mine).to_contain_text("待处理")
    violations += axe_violations(review)
    screenshot(review, "admin-objections")
    mine.get_by_role("link", name=first_case).click()
    review.wait_for_url(f"**/admin/objections/{first_case}")
    expect(review.locator("#reason")).to_have_text(FIRST_REASON)
    expect(review.locator("#deadline")).to_contain_text(city.deadline.isoformat())
    violations += axe_violations(review)
    review.get_by_role("button", name="转来源单位").click()
    review.wait_for_url(f"**/admin/objections/{first_case}")
    expect(review.get_by_text("已转数据来源单位核实。")).to_be_visible()
    expect(review.locator("#case-status")).to_contain_text("数据来源单位核实中")
    expect(review.get_by_role("button", name="转来源单位")).to_have_count(0)

    # 3. The court's clerk sees only the court's case, answers it, and may neither forward nor decide.
    clerk, answer, outside_clerk, errors_clerk = desk(browser)
    admin_sign_in(answer, city, "court-clerk")
    answer.get_by_role("link", name="异议处理").click()
    answer.wait_for_url("**/admin/objections")
    expect(answer.locator("#cases tbody tr")).to_have_count(1)
    answer.locator(f"#case-{first_case}").get_by_role("link", name=first_case).click()
    answer.wait_for_url(f"**/admin/objections/{first_case}")
    violations += axe_violations(answer)
    screenshot(answer, "admin-objection-answer")
    answer.get_by_label("答复内容").fill(COURT_ANSWER)
    answer.get_by_role("button", name="记录答复").click()
    answer.wait_for_url(f"**/admin/objections/{first_case}")
    expect(answer.get_by_text("来源单位的答复已记录。")).to_be_visible()
    expect(answer.locator("#answer")).to_have_text(COURT_ANSWER)
    expect(answer.locator("#case-status")).to_contain_text("来源单位已答复，待决定")
    expect(answer.get_by_role("button", name="提交决定")).to_have_count(0)
    # Another source's case does not exist for the court's clerk.
    response = answer.goto(f"{city.url}/admin/objections/{city.tax_cases['answered']}")
    assert response is not None and response.status == 404
    clerk.close()

    # 4. The reviewer upholds the objection with a reason the citizen will read.
    review.reload()
    expect(review.locator("#answer")).to_have_text(COURT_ANSWER)
    violations += axe_violations(review)
    screenshot(review, "admin-objection-decide")
    review.get_by_label("异议成立：撤销该记录，重新评分").check()
    review.get_by_label("理由（市民可见）").fill(DECISION)
    review.get_by_role("button", name="提交决定").click()
    review.wait_for_url(f"**/admin/objections/{first_case}")
    expect(review.get_by_text("已决定：异议成立，记录已撤销并重新评分。")).to_be_visible()
    expect(review.locator("#case-status")).to_contain_text("异议成立")
    steps = review.locator("#steps > li")
    expect(steps).to_have_count(4)
    expect(steps.nth(2)).to_contain_text("admin:court-clerk")
    expect(steps.nth(3)).to_contain_text(DECISION)
    violations += axe_violations(review)
    # The queue has moved it to the closed list.
    review.get_by_role("link", name="异议处理", exact=True).first.click()
    review.wait_for_url("**/admin/objections")
    expect(review.locator(f"#case-{first_case}")).to_have_count(0)
    review.get_by_role("link", name="已办结").click()
    review.wait_for_url(re.compile(r".*/admin/objections\?view=decided$"))
    expect(review.locator(f"#case-{first_case}")).to_contain_text("异议成立")
    violations += axe_violations(review)
    screenshot(review, "admin-objections-closed")
    reviewer.close()

    # 5. The citizen reads the outcome, its reason and the rescored score in "my objections".
    page.get_by_role("link", name="我的记录").first.click()
    page.wait_for_url("**/me/records")
    expect(fine.get_by_text("不计分", exact=True)).to_be_visible()
    page.get_by_role("link", name="我的异议及处理进度").click()
    page.wait_for_url("**/me/objections")
    listed = page.locator("#objections > li")
    expect(listed).to_have_count(1)
    expect(listed.first).to_contain_text("异议成立")
    violations += axe_violations(page)
    listed.first.get_by_role("link", name="罚").click()
    page.wait_for_url(f"**/me/objections/{first_case}")
    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("异议成立")
    expect(outcome).to_contain_text(f"理由：{DECISION}")
    expect(outcome).to_contain_text("该记录已撤销，不再计分。")
    expect(page.locator("#score-now")).to_have_text("980")
    expect(page.locator("#steps")).to_contain_text(COURT_ANSWER)
    expect(page.get_by_role("link", name="撤回异议")).to_have_count(0)
    violations += axe_violations(page)
    screenshot(page, "citizen-objection-outcome")
    page.get_by_role("link", name="查看首页").click()
    page.wait_for_url(re.compile(r".*/me/$"))
    expect(page.locator("#score")).to_have_text("980")

    # 6. A second objection, to the penalty: its deduction stops counting (1010) …
    page.get_by_role("link", name="我的记录").first.click()
    page.wait_for_url("**/me/records")
    page.locator(f"#record-{city.penalty_id}").get_by_role("link", name="对此记录提出异议").click()
    page.wait_for_url(f"**/me/records/{city.penalty_id}/objection")
    page.get_by_label("异议理由").fill(SECOND_REASON)
    page.get_by_role("button", name="提交异议").click()
    page.wait_for_url(re.compile(r".*/me/objections/obj_[0-9a-f]+\?filed=1$"))
    second_case = re.search(r"obj_[0-9a-f]+", page.url).group(0)  # type: ignore[union-attr]
    expect(page.locator("#filed")).to_contain_text("“处罚”这条记录已标记为异议处理中")
    page.goto(city.url + "/me/")
    expect(page.locator("#score")).to_have_text("1010")

    # Every citizen page in English (the choice is kept) and Chinese, 390 px wide, 200 % text too.
    citizen_pages = {
        f"/me/records/{city.award_id}/objection": ("h1", "Object to a record"),
        f"/me/objections/{second_case}": ("#case-status", "received"),
        f"/me/objections/{second_case}/withdraw": (
            "h1",
            "Withdraw your objection to “Penalty”?",
        ),
        "/me/objections": ("h1", "My objections"),
        f"/me/objections/{first_case}": ("#outcome", "Rescored: your score is now"),
    }
    too_wide: dict[str, int] = {}
    page.goto(city.url + "/me/objections")
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/me/objections\?lang=en$"))
    for path, (where, english) in citizen_pages.items():
        page.goto(city.url + path)
        expect(page.locator(where)).to_contain_text(english)
        violations += axe_violations(page)
        too_wide.update(overflow(page, path + " (en)"))
    page.get_by_role("link", name="中文").click()
    page.wait_for_url(re.compile(r".*/me/objections/obj_[0-9a-f]+\?lang=zh$"))
    for path in citizen_pages:
        page.goto(city.url + path)
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        too_wide.update(overflow(page, path + " (zh)"))

    # 7. … and withdrawing it asks first: cancel changes nothing, confirming withdraws.
    page.goto(f"{city.url}/me/objections/{second_case}")
    page.get_by_role("link", name="撤回异议").click()
    page.wait_for_url(f"**/me/objections/{second_case}/withdraw")
    expect(page.get_by_role("heading", name="撤回对“处罚”的异议？")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-objection-withdraw")
    page.get_by_role("link", name="取消").click()
    page.wait_for_url(f"**/me/objections/{second_case}")
    expect(page.locator("#case-status")).to_have_text("待处理")
    page.get_by_role("link", name="撤回异议").click()
    page.wait_for_url(f"**/me/objections/{second_case}/withdraw")
    page.get_by_role("button", name="确认撤回").click()
    page.wait_for_url(re.compile(rf".*/me/objections/{second_case}\?withdrawn=1$"))
    expect(page.locator("#withdrawn")).to_contain_text("异议已撤回，该记录恢复计分。")
    expect(page.locator("#case-status")).to_have_text("已撤回")
    expect(page.locator("#steps > li").last).to_contain_text("本人撤回")
    expect(page.get_by_role("link", name="撤回异议")).to_have_count(0)
    page.goto(city.url + "/me/")
    expect(page.locator("#score")).to_have_text("980")
    page.get_by_role("link", name="我的记录").first.click()
    page.wait_for_url("**/me/records")
    penalty = page.locator(f"#record-{city.penalty_id}")
    expect(penalty.get_by_text("计分中", exact=True)).to_be_visible()
    expect(penalty.get_by_role("link", name="再次提出异议")).to_be_visible()
    citizen.close()

    # 8. The admin's pages on a phone, in English and Chinese: the queue, the closed list, and a
    # case at every step (the forward, answer and decide forms, and the decided case).
    admin, page, outside_admin, errors_admin = phone(browser)
    admin_sign_in(page, city, "rev")
    admin_pages = {
        "/admin/objections": ("#queue-flags", "1 overdue, 1 near the deadline."),
        "/admin/objections?view=decided": (f"#case-{first_case}", "upheld"),
        f"/admin/objections/{city.tax_cases['open']}": ("button", "Send to the source"),
        f"/admin/objections/{city.tax_cases['forwarded']}": ("button", "Record the answer"),
        f"/admin/objections/{city.tax_cases['answered']}": ("button", "Submit the decision"),
        f"/admin/objections/{first_case}": ("#case-status", "upheld"),
    }
    for language in ("en", "zh"):
        for path, (where, english) in admin_pages.items():
            joiner = "&" if "?" in path else "?"
            page.goto(f"{city.url}{path}{joiner}lang={language}")
            if language == "en" and where == "button":
                expect(page.get_by_role("button", name=english)).to_be_visible()
            elif language == "en":
                expect(page.locator(where)).to_contain_text(english)
            if language == "en":
                violations += axe_violations(page)
            else:
                expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            too_wide.update(overflow(page, f"{path} ({language})"))
    admin.close()

    assert not violations, "\n".join(violations)
    assert outside == outside_desk == outside_clerk == outside_admin == []
    assert errors == errors_desk == errors_clerk == errors_admin == []
    at_100 = {k: v for k, v in too_wide.items() if not k.endswith(" at 200 %")}
    assert not at_100, f"wider than 390 px (extra px): {at_100}"
    assert not too_wide, f"wider than 390 px at 200 % text size (extra px): {too_wide}"


def overflow(page: Any, name: str) -> dict[str, int]:
    """How far the page is wider than the phone, as it is and at 200 % text size (only if it is)."""
    found = {}
    if extra := horizontal_overflow(page):
        found[name] = extra
    page.evaluate(DOUBLE_TEXT)
    if extra := horizontal_overflow(page):
        found[name + " at 200 %"] = extra
    return found
