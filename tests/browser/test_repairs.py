"""Credit repair (信用修复) from the citizen's phone to the second reviewer's approval, in a real browser
(Debian's Chromium), on SQLite and PostgreSQL; and the next-day bulletin that reports it.

A citizen listed as a dishonest debtor eight months ago (tier D) applies on their phone to repair the
listing, with a PDF as proof, and reads the confirmation. The court's clerk, at a desk, downloads the
document and proposes approval, and may not do the second review (four eyes); a reviewer of the credit
office confirms it. The citizen reads 修复通过 and the rescored score, and the home page no longer
shows tier D. A second application, for arrears, is withdrawn through the confirmation page. The
platform admin reads the bulletins the next morning's job signs. Every repair and bulletin page, the
citizen's and the admin's, is axe-core clean, works in English and fits 390 px (also at 200 % text
size); nothing leaves loopback.

Two of the tax office's applications are already in the queue (one awaiting the first review, one
the second), so the admin's every form is seen on a phone too.
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
from citizen import repairs
from citycredit.core.actors import Actor
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.idnumber import parse_id_number
from governance import bulletins
from points_engine import operations
from tests import factories
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import DOUBLE_TEXT, horizontal_overflow, phone, sign_in
from tests.browser.test_objections import PASSWORD, admin_sign_in, desk
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env
from tests.integration.test_repair_rules import REPAIRABLE
from tests.integration.test_repairs import PDF

STATEMENT = "判决确定的款项已于上月全部履行完毕，法院已出具结案证明，特申请信用修复。"
SECOND_STATEMENT = "欠缴的水费已于本月全部补缴，附缴费凭证，申请修复该记录。"
TAX_STATEMENT = "税款及滞纳金已全部缴清，已取得完税证明，申请信用修复。"
PROOF = "结案证明.pdf"


@dataclass
class RepairCity(LiveCity):
    applicant: str = ""  # a listing (tier D) and two arrears, all the court's, consented: 880
    listing_id: int = 0
    arrears_id: int = 0
    later_arrears_id: int = 0
    today: dt.date = dt.date.min
    tax_cases: dict[str, str] = field(default_factory=dict)  # submitted / proposed


@pytest.fixture(params=BACKENDS)
def repair_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RepairCity]:
    """A live city in demo mode (the one-time code shows on screen) under a model whose listing may be
    repaired after six months: a citizen with the court's listing and two arrears, the tax office's
    two applications under way, the platform admin, a reviewer and the court's clerk."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port, CITYCREDIT_DEMO_MODE="1")
    settings = load_settings(env=env)
    seeded = _seed(db, settings)  # the court, the itemised test model (base 1000)
    today = dt.datetime.now(settings.tz).date()
    now = utcnow()
    tax_cases: dict[str, str] = {}
    with unit_of_work(make_session_factory(db.engine)) as session:
        factories.published(session, REPAIRABLE)  # LISTING: −100, tier D; repaired −50
        court = factories.source(session, "court")
        tax = operations.add_source(session, "tax", "市税务局", "City Tax Office")
        applicant = factories.id_number()
        person = operations.get_or_create_citizen(
            session, settings.id_hash_key, parse_id_number(applicant)
        )
        listing = factories.record(
            session, person, "LISTING", today - dt.timedelta(days=240), src=court
        )
        arrears = factories.record(
            session, person, "ARREARS", today - dt.timedelta(days=90), src=court
        )
        later = factories.record(
            session, person, "ARREARS", today - dt.timedelta(days=30), src=court
        )
        operations.give_consent(session, person, channel="test", as_of=today)
        # The tax office's applications, filed yesterday: one awaiting each review.
        for stage in ("submitted", "proposed"):
            other = factories.citizen(session, consent=False)
            operations.give_consent(session, other, channel="test", as_of=today)
            record = factories.record(
                session, other, "LISTING", today - dt.timedelta(days=300), src=tax
            )
            moment = now - dt.timedelta(days=1)
            application = repairs.apply(
                session, other, record, TAX_STATEMENT, [], today=today, now=moment
            )
            if stage == "proposed":
                repairs.propose(
                    session, application, Actor("admin:seed-reviewer"), True, "", now=moment
                )
            tax_cases[stage] = application.public_id
        for username, name, role, options in (
            ("root", "管理员", "platform_admin", {}),
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
        ids = (listing.id, arrears.id, later.id)
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield RepairCity(
                url=url,
                db=db,
                settings=settings,
                applicant=applicant,
                listing_id=ids[0],
                arrears_id=ids[1],
                later_arrears_id=ids[2],
                today=today,
                tax_cases=tax_cases,
                **seeded,  # type: ignore[arg-type]
            )
    finally:
        db.drop()


def test_a_listing_is_repaired_from_a_phone_through_two_reviews_and_another_withdrawn(
    browser: Any, repair_city: RepairCity, tmp_path: Path
) -> None:
    city = repair_city
    violations: list[str] = []
    citizen, page, outside, errors = phone(browser)
    downloads: list[str] = []
    page.on("download", lambda d: downloads.append(d.suggested_filename))
    proof = tmp_path / PROOF
    proof.write_bytes(PDF)

    # 1. The citizen (880: 1000 − listing 100 − arrears 2 × 10; the listing sets tier D) applies to
    # repair the listing on a phone, with the court's closing certificate as a PDF.
    sign_in(page, city, city.applicant)
    expect(page.locator("#score")).to_have_text("880")
    expect(page.locator("#tier")).to_contain_text("D")
    page.get_by_role("link", name="我的记录").first.click()
    page.wait_for_url("**/me/records")
    listing = page.locator(f"#record-{city.listing_id}")
    expect(listing.get_by_text("直接定级 D")).to_be_visible()
    listing.get_by_role("link", name="申请信用修复").click()
    page.wait_for_url(f"**/me/records/{city.listing_id}/repair")
    expect(page.locator("#record-name")).to_have_text("失信被执行人")
    last_day = city.today.replace(year=city.today.year + 2) - dt.timedelta(days=1)
    effect = page.locator("#effect")
    expect(effect).to_contain_text("该记录改按 -50 分计")
    expect(effect).to_contain_text("不再直接定级")
    expect(effect).to_contain_text(f"计分至 {last_day.isoformat()}（如今日修复）")
    violations += axe_violations(page)
    screenshot(page, "citizen-repair-form")
    page.get_by_label("情况说明").fill(STATEMENT)
    page.get_by_label("证明材料（可选）").set_input_files(proof)
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_url(re.compile(r".*/me/repairs/rep_[0-9a-f]+\?applied=1$"))
    first = re.search(r"rep_[0-9a-f]+", page.url).group(0)  # type: ignore[union-attr]

    # The confirmation; the application awaits its first review, the document is listed.
    expect(page.locator("#applied")).to_contain_text("申请已提交，审核结果将在本页显示。")
    expect(page.locator("#case-no")).to_have_text(first)
    expect(page.locator("#case-status")).to_have_text("待初审")
    expect(page.locator("#steps > li").first).to_contain_text("提交修复申请")
    expect(page.get_by_role("link", name=PROOF)).to_be_visible()
    expect(page.get_by_role("link", name="撤回申请")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-repair-applied")
    # Applying changes nothing yet.
    page.goto(city.url + "/me/")
    expect(page.locator("#score")).to_have_text("880")

    # 2. The court's clerk, at a desk, sees only the court's application; reads the statement,
    # downloads the document and proposes approval.
    clerk, first_review, outside_clerk, errors_clerk = desk(browser)
    admin_sign_in(first_review, city, "court-clerk")
    first_review.get_by_role("link", name="信用修复", exact=True).first.click()
    first_review.wait_for_url("**/admin/repairs")
    rows = first_review.locator("#applications tbody tr")
    expect(rows).to_have_count(1)
    mine = first_review.locator(f"#application-{first}")
    expect(mine).to_contain_text("失信被执行人")
    expect(mine).to_contain_text("待初审")
    violations += axe_violations(first_review)
    screenshot(first_review, "admin-repairs")
    mine.get_by_role("link", name=first).click()
    first_review.wait_for_url(f"**/admin/repairs/{first}")
    expect(first_review.locator("#statement")).to_have_text(STATEMENT)
    expect(first_review.locator("#attachments")).to_contain_text("application/pdf")
    with first_review.expect_download() as fetched:
        first_review.locator("#attachments").get_by_role("link", name=PROOF).click()
    assert fetched.value.suggested_filename == PROOF
    assert Path(fetched.value.path()).read_bytes() == PDF
    violations += axe_violations(first_review)
    screenshot(first_review, "admin-repair-first-review")
    first_review.get_by_label("建议通过：记录修复").check()
    first_review.get_by_role("button", name="提交初审").click()
    first_review.wait_for_url(f"**/admin/repairs/{first}")
    expect(first_review.get_by_text("初审意见已提交，等待复核。")).to_be_visible()
    expect(first_review.locator("#case-status")).to_have_text("初审完成，待复核")
    expect(first_review.locator("#proposal")).to_contain_text("建议通过 · admin:court-clerk")
    # Four eyes: no second-review form for the first reviewer.
    expect(first_review.get_by_role("button", name="提交复核")).to_have_count(0)
    expect(first_review.locator("#four-eyes")).to_have_text(
        "您做了初审，复核须由另一名工作人员进行。"
    )
    violations += axe_violations(first_review)
    # Another source's application does not exist for the court's clerk.
    response = first_review.goto(f"{city.url}/admin/repairs/{city.tax_cases['proposed']}")
    assert response is not None and response.status == 404
    clerk.close()

    # 3. A reviewer of the credit office confirms it: the record is repaired today.
    reviewer, second_review, outside_desk, errors_desk = desk(browser)
    admin_sign_in(second_review, city, "rev")
    second_review.get_by_role("link", name="信用修复", exact=True).first.click()
    second_review.wait_for_url("**/admin/repairs")
    rows = second_review.locator("#applications tbody tr")
    expect(rows).to_have_count(3)  # first come, first served: the tax office's are older
    expect(rows.nth(0)).to_have_attribute("id", f"application-{city.tax_cases['submitted']}")
    expect(rows.nth(2)).to_have_attribute("id", f"application-{first}")
    expect(rows.nth(2)).to_contain_text("初审完成，待复核")
    rows.nth(2).get_by_role("link", name=first).click()
    second_review.wait_for_url(f"**/admin/repairs/{first}")
    expect(second_review.locator("#proposal")).to_contain_text("admin:court-clerk")
    violations += axe_violations(second_review)
    screenshot(second_review, "admin-repair-second-review")
    second_review.get_by_label("同意初审意见").check()
    second_review.get_by_role("button", name="提交复核").click()
    second_review.wait_for_url(f"**/admin/repairs/{first}")
    expect(second_review.get_by_text("复核完成。")).to_be_visible()
    expect(second_review.locator("#case-status")).to_have_text("修复通过")
    expect(second_review.locator("#steps > li")).to_have_count(3)
    expect(second_review.locator("#steps > li").last).to_contain_text("admin:rev")
    expect(second_review.get_by_role("button", name="提交复核")).to_have_count(0)
    # The queue has moved it to the closed list.
    second_review.get_by_role("link", name="← 信用修复").click()
    second_review.wait_for_url("**/admin/repairs")
    expect(second_review.locator(f"#application-{first}")).to_have_count(0)
    second_review.get_by_role("link", name="已办结").click()
    second_review.wait_for_url(re.compile(r".*/admin/repairs\?view=closed$"))
    expect(second_review.locator(f"#application-{first}")).to_contain_text("修复通过")
    violations += axe_violations(second_review)
    reviewer.close()

    # 4. The citizen reads the outcome: the listing counts −50 from today, no longer sets the tier.
    page.goto(city.url + "/me/records")
    expect(listing).to_contain_text(f"修复于 {city.today.isoformat()}")
    expect(listing).to_contain_text("-50")
    expect(listing.get_by_text("直接定级 D")).to_have_count(0)
    expect(listing.get_by_role("link", name="申请信用修复")).to_have_count(0)
    page.get_by_role("link", name="信用修复", exact=True).click()
    page.wait_for_url("**/me/repairs")
    applications = page.locator("#applications > li")
    expect(applications).to_have_count(1)
    expect(applications.first).to_contain_text("修复通过")
    expect(page.locator(f"#repairable-{city.listing_id}")).to_contain_text("该记录已修复。")
    violations += axe_violations(page)
    screenshot(page, "citizen-repairs")
    applications.first.get_by_role("link", name="失信被执行人").click()
    page.wait_for_url(f"**/me/repairs/{first}")
    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("修复通过")
    expect(outcome).to_contain_text(f"该记录自 {city.today.isoformat()} 起按修复后分值计分")
    expect(page.locator("#score-now")).to_have_text("930")  # 1000 − 50 − 2 × 10
    expect(page.get_by_role("link", name="撤回申请")).to_have_count(0)
    violations += axe_violations(page)
    screenshot(page, "citizen-repair-outcome")
    page.goto(city.url + "/me/")
    expect(page.locator("#score")).to_have_text("930")
    expect(page.locator("#tier")).to_have_text(re.compile(r"^本市等级 C\b"))  # 900–949, no longer D

    # 5. A second application, for the older arrears, from the repair page; no document.
    page.goto(city.url + "/me/repairs")
    page.locator(f"#repairable-{city.arrears_id}").get_by_role("link", name="申请信用修复").click()
    page.wait_for_url(f"**/me/records/{city.arrears_id}/repair")
    expect(page.locator("#effect")).to_contain_text("该记录不再扣分")
    page.get_by_label("情况说明").fill(SECOND_STATEMENT)
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_url(re.compile(r".*/me/repairs/rep_[0-9a-f]+\?applied=1$"))
    second = re.search(r"rep_[0-9a-f]+", page.url).group(0)  # type: ignore[union-attr]
    expect(page.locator("#case-status")).to_have_text("待初审")

    # Every citizen page in English (the choice is kept) and Chinese, 390 px wide, 200 % text too.
    citizen_pages = {
        "/me/repairs": ("h1", "Credit repair"),
        f"/me/records/{city.later_arrears_id}/repair": ("#effect", "no longer deducts points"),
        f"/me/repairs/{second}": ("#case-status", "awaiting review"),
        f"/me/repairs/{second}/withdraw": ("h1", "Withdraw your application to repair “Arrears”?"),
        f"/me/repairs/{first}": ("#outcome", "Rescored: your score is now"),
    }
    too_wide: dict[str, str] = {}
    page.goto(city.url + "/me/repairs")
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/me/repairs\?lang=en$"))
    for path, (where, english) in citizen_pages.items():
        page.goto(city.url + path)
        expect(page.locator(where)).to_contain_text(english)
        violations += axe_violations(page)
        too_wide.update(overflow(page, path + " (en)"))
    page.get_by_role("link", name="中文").click()
    page.wait_for_url(re.compile(rf".*/me/repairs/{first}\?lang=zh$"))
    for path in citizen_pages:
        page.goto(city.url + path)
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        too_wide.update(overflow(page, path + " (zh)"))

    # 6. Withdrawing asks first: cancel changes nothing, confirming withdraws.
    page.goto(f"{city.url}/me/repairs/{second}")
    page.get_by_role("link", name="撤回申请").click()
    page.wait_for_url(f"**/me/repairs/{second}/withdraw")
    expect(page.get_by_role("heading", name="撤回对“欠费”的修复申请？")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-repair-withdraw")
    page.get_by_role("link", name="取消").click()
    page.wait_for_url(f"**/me/repairs/{second}")
    expect(page.locator("#case-status")).to_have_text("待初审")
    page.get_by_role("link", name="撤回申请").click()
    page.wait_for_url(f"**/me/repairs/{second}/withdraw")
    page.get_by_role("button", name="确认撤回").click()
    page.wait_for_url(re.compile(rf".*/me/repairs/{second}\?withdrawn=1$"))
    expect(page.locator("#withdrawn")).to_have_text("申请已撤回。")
    expect(page.locator("#case-status")).to_have_text("已撤回")
    expect(page.locator("#steps > li").last).to_contain_text("本人撤回")
    expect(page.get_by_role("link", name="撤回申请")).to_have_count(0)
    page.goto(city.url + "/me/repairs")
    expect(page.locator(f"#repairable-{city.arrears_id}")).to_contain_text("申请信用修复")
    page.goto(city.url + "/me/")
    expect(page.locator("#score")).to_have_text("930")
    citizen.close()

    # 7. The next morning's job signs yesterday's and today's bulletins; today's reports the repair.
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        for day in (city.today, city.today + dt.timedelta(days=1)):
            bulletins.publish_due(session, city.settings, today=day, now=utcnow())

    # 8. The admin's pages on a phone, in English and Chinese: the queue, the closed list, an
    # application at every step (both review forms, approved) and the bulletins.
    admin, page, outside_admin, errors_admin = phone(browser)
    admin_sign_in(page, city, "root")
    admin_pages = {
        "/admin/repairs": (f"#application-{city.tax_cases['proposed']}", "awaiting a second"),
        "/admin/repairs?view=closed": (f"#application-{second}", "withdrawn"),
        f"/admin/repairs/{city.tax_cases['submitted']}": ("button", "Submit the first review"),
        f"/admin/repairs/{city.tax_cases['proposed']}": ("button", "Submit the second review"),
        f"/admin/repairs/{first}": ("#case-status", "approved"),
        "/admin/bulletins": ("#bulletin-2", "for pulling"),  # no endpoint configured
        "/admin/bulletins/2": ("#payload", first),
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
            shown = path.replace(city.tax_cases["submitted"], "<first-review form>").replace(
                city.tax_cases["proposed"], "<second-review form>"
            )
            too_wide.update(overflow(page, f"{shown} ({language})"))
    # The list through its link: two days, today's with the one repair decided today.
    page.goto(f"{city.url}/admin/")
    page.get_by_role("link", name="次日报送").click()
    page.wait_for_url("**/admin/bulletins")
    listed = page.locator("#bulletins tbody tr")
    expect(listed).to_have_count(2)
    expect(listed.nth(0)).to_contain_text(city.today.isoformat())
    expect(listed.nth(1)).to_contain_text((city.today - dt.timedelta(days=1)).isoformat())
    listed.nth(0).get_by_role("link", name="#2").click()
    page.wait_for_url("**/admin/bulletins/2")
    expect(page.get_by_role("heading", name=f"报送 #2 · {city.today.isoformat()}")).to_be_visible()
    expect(page.get_by_text("异议 0 件，修复 1 件，名单变化 0 条")).to_be_visible()
    payload = page.locator("#payload")
    expect(payload).to_contain_text(f'"application": "{first}"')
    expect(payload).to_contain_text('"outcome": "approved"')
    expect(payload).not_to_contain_text(second)  # a withdrawal is not an outcome to report
    admin.close()

    assert not violations, "\n".join(violations)
    assert downloads == []  # the citizen's pages start no download by themselves
    assert outside == outside_clerk == outside_desk == outside_admin == []
    assert errors == errors_clerk == errors_desk == errors_admin == []
    assert not too_wide, f"wider than 390 px (as it is, or at 200 % text size): {too_wide}"


# What sticks out: the deepest elements whose content spills out of their own box.
WIDE_ELEMENTS = """() => {
    const spills = e => e.scrollWidth > e.clientWidth + 1
        && getComputedStyle(e).overflowX === 'visible';
    const all = [...document.body.querySelectorAll('*')].filter(spills);
    return all.filter(e => !all.some(d => d !== e && e.contains(d))).slice(0, 3).map(e =>
        e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
        + (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ')[0] : ''));
}"""


def overflow(page: Any, name: str) -> dict[str, str]:
    """How far the page is wider than the phone and what sticks out, as it is and at 200 % text
    size (only if it is)."""
    found = {}
    if extra := horizontal_overflow(page):
        found[name] = f"{extra} px: {page.evaluate(WIDE_ELEMENTS)}"
    page.evaluate(DOUBLE_TEXT)
    if extra := horizontal_overflow(page):
        found[name + " at 200 %"] = f"{extra} px: {page.evaluate(WIDE_ELEMENTS)}"
    return found
