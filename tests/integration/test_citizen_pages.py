"""The citizen's phone pages (/me), through the Flask test client, on SQLite and PostgreSQL.

Each test builds the app on a fresh migrated database with a movable clock that starts at
2026-06-30 10:00 in the city (START). The seeded model is the ITEMISED test model; Alice has a fine
(−5, 2026-03-01), an award (+10, 2026-06-10) and an award of 2025-03-01 that expired on 2026-03-01.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from citizen import operations as citizen_ops
from citizen.models import Objection
from citycredit.core.actors import SYSTEM, Actor
from citycredit.core.clients import register_client
from credit_codes.operations import issue_credit_code, verify_presentation
from points_engine.models import Citizen, ConsentEvent, Record, ScoreSnapshot
from points_engine.tiers import common_tier
from scenarios import catalogue
from scenarios.demo import SEEDER, load_catalogue
from scenarios.models import Venue
from scenarios.operations import (
    add_venue,
    create_scenario,
    ensure_operator,
    publish_directly,
)
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import (
    START,
    CitizenApp,
    Person,
    answer,
    ask_code,
    citizen_app,
    csrf,
    post,
    sign_in,
    text,
    wrong,
)

JWS = re.compile(r"[\w-]+\.[\w-]+\.[\w-]+")  # a compact JWS: a credit code
PAGES = ("/me/", "/me/records", "/me/code", "/me/benefits", "/me/checks", "/me/data", "/me/report")


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Any:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def consented(city: CitizenApp, person: Person) -> FlaskClient:
    """A client signed in as ``person`` who has given consent on the consent page."""
    client = city.client()
    sign_in(client, person.number)
    response = post(client, "/me/consent", token_from="/me/consent", action="give")
    assert response.status_code == 302 and response.location.endswith("/me/"), text(response)
    return client


def record_items(page: str) -> dict[int, str]:
    """Each record's list item on the records page, by record id."""
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r'<li id="record-(\d+)">(.*?)</li>', page, re.DOTALL)
    }


def score_on_home(client: FlaskClient) -> int:
    page = text(client.get("/me/"))
    found = re.search(r'<p class="score" id="score">(\d+)</p>', page)
    assert found, page
    return int(found.group(1))


def current_score(city: CitizenApp, citizen_id: int) -> int | None:
    with city.session() as session:
        return session.scalar(
            select(ScoreSnapshot.score).where(
                ScoreSnapshot.citizen_id == citizen_id, ScoreSnapshot.is_current.is_(True)
            )
        )


def snapshots(city: CitizenApp, citizen_id: int) -> int:
    with city.session() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(ScoreSnapshot)
                .where(ScoreSnapshot.citizen_id == citizen_id)
            )
            or 0
        )


def file_objection(client: FlaskClient, record_id: int, reason: str) -> Any:
    path = f"/me/records/{record_id}/objection"
    return post(client, path, token_from=path, reason=reason)


# --- sign-in ---------------------------------------------------------------------------------------


def test_a_valid_id_number_gets_a_code_and_the_right_code_signs_in_to_consent_first(
    city: CitizenApp, caplog: pytest.LogCaptureFixture
) -> None:
    alice = city.seed().alice
    client = city.client()
    assert client.get("/me/").location.endswith("/me/login")
    caplog.set_level(logging.INFO)
    asked = ask_code(client, alice.number)
    assert asked.response.status_code == 200
    assert asked.challenge and asked.code
    assert "验证码已写入服务器日志" in text(asked.response)
    # The demo provider "sends" the code to the server log, naming the challenge, not the person.
    assert asked.code in caplog.text and asked.challenge in caplog.text
    response = answer(client, asked.challenge, asked.code)
    assert response.status_code == 302
    assert response.location.endswith("/me/consent")
    assert "信用评分授权" in text(client.get("/me/consent"))
    # A spent code does not sign in twice.
    again = city.client()
    assert answer(again, asked.challenge, asked.code).status_code == 422


def test_wrong_codes_say_how_many_attempts_are_left_and_the_sixth_is_refused(
    city: CitizenApp,
) -> None:
    alice = city.seed().alice
    client = city.client()
    asked = ask_code(client, alice.number)
    assert asked.challenge and asked.code
    for left in (4, 3, 2, 1, 0):
        response = answer(client, asked.challenge, wrong(asked.code))
        assert response.status_code == 422
        assert f"验证码不正确，还可尝试 {left} 次。" in text(response)
    # The sixth attempt is refused even with the right code.
    response = answer(client, asked.challenge, asked.code)
    assert response.status_code == 422
    assert "错误次数过多，请重新获取验证码。" in text(response)
    assert client.get("/me/").location.endswith("/me/login")


def test_an_expired_challenge_is_refused(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    asked = ask_code(client, alice.number)
    assert asked.challenge and asked.code
    city.clock.advance(minutes=6)
    response = answer(client, asked.challenge, asked.code)
    assert response.status_code == 422
    assert "验证码已失效，请重新获取。" in text(response)
    assert client.get("/me/").location.endswith("/me/login")


def test_at_most_five_codes_per_ten_minutes_for_one_id_number(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    for _ in range(5):
        assert ask_code(client, alice.number).code is not None
        city.clock.advance(seconds=30)
    refused = ask_code(client, alice.number)
    assert refused.response.status_code == 422
    assert refused.code is None
    assert "验证码发送过于频繁，请十分钟后再试。" in text(refused.response)
    # Another ID number is not held back by Alice's codes; ten minutes later Alice may ask again.
    assert ask_code(client, factories.id_number()).code is not None
    city.clock.advance(minutes=10)
    assert ask_code(client, alice.number).code is not None


def test_an_invalid_id_number_gets_a_readable_error(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    bad_digit = alice.number[:17] + ("0" if alice.number[17] != "0" else "1")
    response = ask_code(client, bad_digit).response
    assert response.status_code == 422
    assert "身份证号码无效：校验位不正确" in text(response)
    assert bad_digit not in text(response)
    response = ask_code(client, "4202021980").response
    assert response.status_code == 422
    assert "身份证号码无效：应为18位" in text(response)
    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(Citizen)) == 2


def test_the_id_number_is_never_stored_logged_or_shown(
    city: CitizenApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seeded = city.seed()
    newcomer = factories.id_number()  # no records yet: a first sign-in registers them
    numbers = [seeded.alice.number, seeded.bob.number, newcomer]
    alice = consented(city, seeded.alice)
    stranger = city.client()
    asked = ask_code(stranger, seeded.alice.number)
    assert asked.challenge and asked.code
    assert answer(stranger, asked.challenge, wrong(asked.code)).status_code == 422
    for path in (*PAGES, "/me/consent", "/me/code.json", "/me/data.json"):
        assert alice.get(path).status_code == 200, path
    filed = file_objection(alice, seeded.alice.records["fine"], "罚款决定书上的日期与事实不符。")
    assert filed.status_code == 302
    assert alice.get(filed.location).status_code == 200
    bob = consented(city, seeded.bob)
    post(bob, "/me/consent", token_from="/me/consent", action="withdraw", confirm="yes")
    post(bob, "/me/logout", token_from="/me/consent")
    other = city.client()
    sign_in(other, newcomer)
    assert other.get("/me/records").status_code == 200
    invalid = newcomer[:17] + ("0" if newcomer[17] != "0" else "1")
    assert ask_code(city.client(), invalid).response.status_code == 422
    english = city.client()
    english.get("/me/login?lang=en")
    refused = ask_code(english, invalid).response
    assert refused.status_code == 422 and "not a valid ID number" in text(refused)

    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(Citizen)) == 3  # the newcomer joined
    for number in numbers:
        for fragment in (number, number[:17]):
            stored = [(t, c) for t, c, value in city.every_stored_text() if fragment in value]
            assert stored == [], f"an ID number is stored in {stored}"
            assert fragment not in caplog.text
            shown = [s.path for s in city.sent if fragment in s.body]
            assert shown == [], f"an ID number is shown on {shown}"
    assert len(city.sent) > 20


def test_the_demo_code_is_not_on_the_page_outside_demo_mode(
    fresh_database: ScratchDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with citizen_app(fresh_database, tmp_path, demo_mode=False) as city:
        alice = city.seed().alice
        client = city.client()
        asked = ask_code(client, alice.number)
        assert asked.response.status_code == 200
        assert asked.challenge and asked.code is None
        assert 'id="demo-code"' not in text(asked.response)
        # The code went to the server log only; with it, the citizen signs in.
        logged = re.search(
            rf"one-time code (\d{{6}}) for challenge {re.escape(asked.challenge)}", caplog.text
        )
        assert logged
        assert logged.group(1) not in text(asked.response)
        response = answer(client, asked.challenge, logged.group(1))
        assert response.status_code == 302 and response.location.endswith("/me/consent")


# --- sessions --------------------------------------------------------------------------------------


def test_sign_out_ends_the_session(city: CitizenApp) -> None:
    client = consented(city, city.seed().alice)
    assert client.get("/me/").status_code == 200
    # Someone copies the session cookie before the citizen signs out on a shared phone…
    copied = city.app.test_client()
    for cookie in client._cookies.values():
        copied.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
    assert copied.get("/me/").status_code == 200
    response = post(client, "/me/logout", token_from="/me/")
    assert response.status_code == 302 and response.location.endswith("/me/login?signed_out=1")
    assert "您已退出登录" in text(client.get(response.location))  # says so, not just a login form
    assert client.get("/me/").location.endswith("/me/login")
    assert client.get("/me/records").location.endswith("/me/login")
    assert client.get("/me/code.json").status_code == 401
    # …and after sign-out the copy is worthless: the session itself ended on the server.
    assert copied.get("/me/").location.endswith("/me/login?expired=1")


def test_an_idle_session_expires_after_thirty_minutes(city: CitizenApp) -> None:
    client = consented(city, city.seed().alice)
    city.clock.advance(minutes=29)
    assert client.get("/me/").status_code == 200  # activity keeps the session alive
    city.clock.advance(minutes=31)
    response = client.get("/me/")
    assert response.status_code == 302
    assert response.location.endswith("/me/login?expired=1")
    assert "登录已超时，请重新登录。" in text(client.get(response.location))
    # The session is gone, not merely hidden: going back once more still lands on the login page.
    assert client.get("/me/records").location.endswith("/me/login")


def test_a_session_ends_after_twelve_hours_however_active(city: CitizenApp) -> None:
    client = consented(city, city.seed().alice)
    for _ in range(35):  # every 20 minutes up to 11 h 40 min
        city.clock.advance(minutes=20)
        assert client.get("/me/code.json").status_code == 200
    city.clock.advance(minutes=21)  # 12 h 01 min after signing in
    response = client.get("/me/")
    assert response.status_code == 302
    assert response.location.endswith("/me/login?expired=1")


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    city: CitizenApp,
) -> None:
    seeded = city.seed()
    client = city.client()
    sign_in(client, seeded.alice.number)
    fine = seeded.alice.records["fine"]
    for token in ({}, {"csrf_token": "not-the-token"}):
        assert client.post("/me/consent", data={"action": "give", **token}).status_code == 400
        response = client.post(
            f"/me/records/{fine}/objection", data={"reason": "这条记录不是我的，请核实。", **token}
        )
        assert response.status_code == 400
        assert client.post("/me/logout", data=token).status_code == 400
        assert (
            client.post("/me/login", data={"id_number": seeded.alice.number, **token}).status_code
            == 400
        )
    with city.session() as session:
        citizen = session.get(Citizen, seeded.alice.citizen_id)
        assert citizen is not None and citizen.consent_given is False
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
        assert session.scalar(select(func.count()).select_from(Objection)) == 0
        record = session.get(Record, fine)
        assert record is not None and record.status == "active"
    assert snapshots(city, seeded.alice.citizen_id) == 0
    # Still signed in: the refused sign-out did not sign out.
    assert client.get("/me/consent").status_code == 200


# --- consent ---------------------------------------------------------------------------------------


def test_consent_comes_before_any_score_and_withdrawing_removes_it(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    sign_in(client, alice.number)
    assert client.get("/me/").location.endswith("/me/consent")
    page = text(client.get("/me/consent"))
    for said in ("我们使用哪些数据", "用于什么", "您可以随时撤回", "当前状态：未授权，尚无信用分"):
        assert said in page
    assert 'id="score"' not in page
    assert snapshots(city, alice.citizen_id) == 0
    assert "您还没有信用分" in text(client.get("/me/code"))
    assert client.get("/me/code.json").status_code == 409

    response = post(client, "/me/consent", token_from="/me/consent", action="give")
    assert response.status_code == 302 and response.location.endswith("/me/")
    assert score_on_home(client) == 1005
    assert current_score(city, alice.citizen_id) == 1005
    assert client.get("/me/code.json").status_code == 200

    # Withdrawing asks first: the button leads to a page that says what is lost; a bare POST
    # (one tap, or a forged form without the confirmation) deletes nothing.
    consent_page = text(client.get("/me/consent"))
    assert 'href="/me/consent/withdraw"' in consent_page
    unconfirmed = post(client, "/me/consent", token_from="/me/consent", action="withdraw")
    assert unconfirmed.location.endswith("/me/consent/withdraw")
    assert current_score(city, alice.citizen_id) == 1005
    confirm = text(client.get("/me/consent/withdraw"))
    assert "删除为您计算过的全部信用分和等级" in confirm and "确认撤回并删除" in confirm
    response = post(
        client, "/me/consent", token_from="/me/consent/withdraw", action="withdraw", confirm="yes"
    )
    assert response.status_code == 302 and response.location.endswith("/me/consent?withdrawn=1")
    assert "已撤回授权，您的信用分已删除。" in text(client.get(response.location))
    assert snapshots(city, alice.citizen_id) == 0
    assert client.get("/me/").location.endswith("/me/consent")
    code_page = text(client.get("/me/code"))
    assert "您还没有信用分" in code_page and "<svg" not in code_page
    refused = client.get("/me/code.json")
    assert refused.status_code == 409 and refused.get_json() == {"error": "not-scored"}
    history = text(client.get("/me/consent"))
    assert "同意授权 <span" in history and "撤回授权 <span" in history
    assert history.index("撤回授权 <span") < history.index("同意授权 <span")  # newest first
    with city.session() as session:
        actions = session.scalars(
            select(ConsentEvent.action).where(ConsentEvent.citizen_id == alice.citizen_id)
        ).all()
        assert sorted(actions) == ["given", "withdrawn"]


# --- home ------------------------------------------------------------------------------------------


def test_home_shows_score_tier_change_trend_and_dimensions(city: CitizenApp) -> None:
    client = consented(city, city.seed().alice)
    page = text(client.get("/me/"))
    assert re.search(r'id="score">1005<', page)
    tier = re.search(r'<p class="tier" id="tier">(.*?)</p>', page, re.DOTALL)
    # One pair, the city tier then the common level, and the sentence relating them.
    assert tier and re.sub(r"<[^>]+>", "", tier.group(1)) == (
        f"本市等级 A · 通用等级 {common_tier(3).name_zh}"
    )
    assert "通用等级是合作城市共同认可的五级标准" in page
    # A month ago (2026-05-31) the fine counted and the 2026-06-10 award had not happened: 995.
    change = re.search(r'<p id="change">(.*?)</p>', page, re.DOTALL)
    assert (
        change
        and "较上月" in change.group(1)
        and '<strong class="up">+10</strong>' in change.group(1)
    )
    # Twelve month-ends, under today's rules: the 2025 award counts until 2026-03-01, the fine from then.
    figures = re.search(
        r"<details><summary>数据</summary><ul>(.*?)</ul></details>", page, re.DOTALL
    )
    assert figures
    points = re.findall(r"<li>(\d{4}-\d{2})：(\d+)</li>", figures.group(1))
    assert points == [
        *[(f"2025-{m:02d}", "1010") for m in range(7, 13)],
        ("2026-01", "1010"),
        ("2026-02", "1010"),
        ("2026-03", "995"),
        ("2026-04", "995"),
        ("2026-05", "995"),
        ("2026-06", "1005"),
    ]
    charts = re.findall(r'<svg class="chart".*?</svg>', page, re.DOTALL)
    assert len(charts) == 2
    assert "近12个月信用分走势" in charts[0] and charts[0].count("<circle") == 12
    assert "各维度得分" in charts[1]
    for name, value in (("好", "+10"), ("差", "-5"), ("法院", "+0")):
        assert f"<title>{name}: {value}</title>" in charts[1]


# --- records and objections ------------------------------------------------------------------------


def test_each_record_shows_its_source_date_points_and_reasons(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = consented(city, alice)
    items = record_items(text(client.get("/me/records")))
    assert set(items) == set(alice.records.values())
    fine, award, old = (items[alice.records[k]] for k in ("fine", "award", "old_award"))
    for item in (fine, award, old):
        assert "court 单位" in item
    assert "罚" in fine and "2026-03-01" in fine and ">-5</span>" in fine and "计分中" in fine
    assert "计分至 2027-02-28（含）" in fine  # the last day it counts
    assert "奖" in award and "2026-06-10" in award and ">+10</span>" in award
    assert "2025-03-01" in old and ">+0</span>" in old and "不计分" in old
    assert "已过有效期，不再计分" in old
    # How to improve: the model's positive items.
    assert re.search(
        r"<li>奖 <span class=\"points plus\">\+10</span></li>", text(client.get("/me/records"))
    )


def test_an_objection_flags_the_record_at_once_and_stops_the_deduction(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = consented(city, alice)
    fine = alice.records["fine"]
    assert score_on_home(client) == 1005
    form = text(client.get(f"/me/records/{fine}/objection"))
    assert "对记录提出异议" in form and "2026-03-01" in form

    reason = "我当天不在本市，处罚对象有误。"
    response = file_objection(client, fine, reason)
    assert response.status_code == 302
    case_url = response.location
    assert re.search(r"/me/objections/obj_[0-9a-f]{16}\?filed=1$", case_url)
    case = text(client.get(case_url))
    assert re.search(r'<dd id="case-status">待处理</dd>', case)
    assert reason in case
    # The confirmation names the record, the date it will be decided by, and how to withdraw.
    assert "异议已受理：“罚”这条记录已标记为异议处理中" in case
    assert re.search(r"信用中心将于 \d{4}-\d\d-\d\d 前作出决定", case)
    assert "撤回异议" in case

    item = record_items(text(client.get("/me/records")))[fine]
    assert "异议处理中" in item and "异议处理中，暂停扣分" in item
    assert case_url.split("/me")[1].split("?")[0] in item  # the record links to its case
    assert score_on_home(client) == 1010  # the −5 no longer counts
    assert current_score(city, alice.citizen_id) == 1010  # and the stored score follows at once

    # A second objection on the same record is refused.
    again = file_objection(client, fine, "再次提出异议，理由同上。")
    assert again.status_code == 422
    assert "该记录已在异议处理中。" in text(again)
    # A too-short reason is refused and the typed text kept.
    award = alice.records["award"]
    short = file_objection(client, award, "不对<b>")
    assert short.status_code == 422
    assert "请用 10 到 1000 个字说明理由。" in text(short)
    assert ">不对&lt;b&gt;</textarea>" in text(short)
    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(Objection)) == 1
        record = session.get(Record, award)
        assert record is not None and record.status == "active"


def test_the_citizen_follows_the_case_withdraws_one_and_sees_the_outcome_of_another(
    city: CitizenApp,
) -> None:
    """The case page shows the record by name, the case number, the deadline and each step; a
    withdrawal asks first, then ends the suspension; a decided case shows the reason and the score
    as rescored."""
    alice = city.seed().alice
    client = consented(city, alice)
    fine, award = alice.records["fine"], alice.records["award"]
    case_url = file_objection(client, fine, "我当天不在本市，处罚对象有误。").location.split("?")[0]
    public_id = case_url.rsplit("/", 1)[1]
    case = text(client.get(case_url))
    assert f'<code id="case-no">{public_id}</code>' in case
    assert "<h1>异议：罚</h1>" in case
    with city.session() as session:
        objection = session.scalar(select(Objection).where(Objection.public_id == public_id))
        assert objection is not None and objection.deadline is not None
        deadline = objection.deadline
    assert re.search(rf'<dd id="deadline">{deadline}（还有 \d+ 个工作日）', case)
    assert "提交异议" in case and "等待信用中心决定" in case
    listed = text(client.get("/me/objections"))
    assert public_id in listed and "罚" in listed and f"决定期限 {deadline}" in listed

    # Withdrawing asks first; cancelling changes nothing.
    confirm = text(client.get(case_url + "/withdraw"))
    assert "撤回对“罚”的异议？" in confirm and "该记录恢复计分" in confirm
    assert score_on_home(client) == 1010
    response = post(client, case_url + "/withdraw", token_from=case_url + "/withdraw")
    assert response.status_code == 302 and response.location.endswith("?withdrawn=1")
    after = text(client.get(response.location))
    assert '<dd id="case-status">已撤回</dd>' in after and "本人撤回" in after
    assert "撤回异议</a>" not in after  # nothing left to withdraw
    assert score_on_home(client) == 1005  # the −5 counts again
    # Withdrawing twice changes nothing.
    again = post(client, case_url + "/withdraw", token_from=case_url)
    assert again.status_code == 302 and "withdrawn" not in again.location
    item = record_items(text(client.get("/me/records")))[fine]
    assert "异议结果" in item and "再次提出异议" in item

    # A case decided by the reviewer: the outcome, its reason, and the score as rescored.
    second = file_objection(client, fine, "补充证据：当天在外地出差，有车票为证。").location
    second_id = second.split("?")[0].rsplit("/", 1)[1]
    with city.session() as session:
        objection = session.scalar(select(Objection).where(Objection.public_id == second_id))
        assert objection is not None
        reviewer = Actor("admin:reviewer")
        now = START + dt.timedelta(days=1)
        citizen_ops.forward(session, objection, reviewer, now)
        citizen_ops.record_source_answer(session, objection, reviewer, "经核实，系登记错误。", now)
        citizen_ops.decide(
            session, objection, reviewer, True, "来源单位确认登记错误", now=now, today=now.date()
        )
    outcome = text(client.get(second.split("?")[0]))
    assert '<dd id="case-status">异议成立</dd>' in outcome
    assert "来源单位确认登记错误" in outcome and "经核实，系登记错误。" in outcome
    assert "该记录已撤销，不再计分" in outcome
    assert re.search(r'<strong id="score-now">1010</strong>', outcome)
    assert score_on_home(client) == 1010
    assert award  # the other record was never touched
    item = record_items(text(client.get("/me/records")))[fine]
    assert "再次提出异议" not in item  # a revoked record cannot be objected to


# --- isolation -------------------------------------------------------------------------------------


def test_another_citizens_records_and_cases_answer_404(city: CitizenApp) -> None:
    seeded = city.seed()
    alice = consented(city, seeded.alice)
    fine = seeded.alice.records["fine"]
    case_url = file_objection(alice, fine, "我当天不在本市，处罚对象有误。").location
    award = seeded.alice.records["award"]
    bob = consented(city, seeded.bob)
    assert bob.get(f"/me/records/{award}/objection").status_code == 404
    assert bob.get(f"/me/records/{fine}/objection").status_code == 404
    token = csrf(bob, "/me/")
    response = bob.post(
        f"/me/records/{award}/objection",
        data={"reason": "这是别人的记录吗？试一试。", "csrf_token": token},
    )
    assert response.status_code == 404
    assert bob.get(case_url).status_code == 404
    withdraw_path = case_url.split("?")[0] + "/withdraw"
    assert bob.get(withdraw_path).status_code == 404
    assert bob.post(withdraw_path, data={"csrf_token": token}).status_code == 404
    assert bob.get("/me/records/999999/objection").status_code == 404
    with city.session() as session:
        record = session.get(Record, award)
        assert record is not None and record.status == "active"
        assert session.scalar(select(func.count()).select_from(Objection)) == 1

    def exported(client: FlaskClient) -> dict[str, Any]:
        return json.loads(text(client.get("/me/data.json")))

    mine, theirs = exported(alice), exported(bob)
    assert {r["id"] for r in mine["records"]} == set(seeded.alice.records.values())
    assert {r["id"] for r in theirs["records"]} == {seeded.bob.records["award"]}
    assert [o["record_id"] for o in mine["objections"]] == [fine] and theirs["objections"] == []
    assert [s["score"] for s in theirs["scores"]] == [1010]
    assert set(record_items(text(bob.get("/me/records")))) == {seeded.bob.records["award"]}


# --- my data, checks, report -----------------------------------------------------------------------


def venue_checks(city: CitizenApp, person: Person) -> str:
    """A library desk verifies the citizen's code, as a venue does through the partner API."""
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        operator = ensure_operator(
            session, "test-library", "测试图书馆运营", "Test library operator"
        )
        add_venue(
            session,
            SEEDER,
            operator=operator,
            code="library-huangshigang",
            category="library",
            name_zh="黄石港区图书馆",
            name_en="Huangshigang Library",
        )
        scenario = create_scenario(
            session,
            SEEDER,
            code="test-library-deposit-free",
            operator=operator,
            category="library",
            content={
                "name_zh": "信易阅·免押金借书",
                "name_en": "Library: deposit-free borrowing",
                "benefit_zh": "免押金借阅图书最多20册",
                "benefit_en": "Borrow 20 books deposit-free",
                "eligibility": {"min_common_tier": 3},
                "quota_per_day": 1,
            },
            venue_codes=["library-huangshigang"],
        )
        publish_directly(session, scenario, submitter=SEEDER, publisher=SYSTEM)
        venue = session.scalar(select(Venue).where(Venue.code == "library-huangshigang"))
        assert venue is not None
        desk = register_client(
            session,
            name="借阅台一号",
            kind="venue",
            scopes=["verify", "redeem"],
            venue_id=venue.id,
            key_secret=settings.key_secret,
        ).client
        citizen = session.get(Citizen, person.citizen_id)
        assert citizen is not None
        code = issue_credit_code(session, settings, citizen, now=city.clock(), actor="app")
        result = verify_presentation(
            session, settings, desk, code.token, "test-library-deposit-free", now=city.clock()
        )
        assert result.eligible
        return result.verification.public_id


def test_my_data_is_a_download_of_everything_held_and_the_check_is_listed(
    city: CitizenApp,
) -> None:
    seeded = city.seed()
    alice = seeded.alice
    client = consented(city, alice)
    file_objection(client, alice.records["fine"], "我当天不在本市，处罚对象有误。")
    verification = venue_checks(city, alice)

    checks = text(client.get("/me/checks"))
    listed = re.search(r'<ul class="plain" id="checks">(.*?)</ul>', checks, re.DOTALL)
    assert listed and "黄石港区图书馆" in listed.group(1)
    assert "信易阅·免押金借书" in listed.group(1) and "符合条件" in listed.group(1)
    assert "2026-06-30 10:00" in listed.group(1)  # in the city's time

    assert 'href="/me/data.json"' in text(client.get("/me/data"))
    response = client.get("/me/data.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=my-credit-data-2026-06-30.json"
    )
    held = json.loads(text(response))
    assert {"records", "scores", "consents", "objections", "verifications"} <= held.keys()
    assert {r["id"] for r in held["records"]} == set(alice.records.values())
    assert {r["source_name_zh"] for r in held["records"]} == {"court 单位"}
    assert [s["score"] for s in held["scores"] if s["current"]] == [1010]
    assert [c["action"] for c in held["consents"]] == ["given"]
    assert [(o["record_id"], o["status"]) for o in held["objections"]] == [
        (alice.records["fine"], "open")
    ]
    assert [(v["venue"], v["scenario_zh"], v["eligible"]) for v in held["verifications"]] == [
        ("黄石港区图书馆", "信易阅·免押金借书", True)
    ]
    assert verification.startswith("ver_")
    body = text(response)
    assert alice.number not in body and alice.number[:17] not in body
    assert held["citizen"]["consent_given"] is True

    report = client.get("/me/report")
    assert report.status_code == 200
    page = text(report)
    assert "个人信用报告" in page and "<strong>1010</strong>" in page
    assert "记录 (3)" in page and "黄石港区图书馆" in page and "查询记录 (1)" in page


# --- the credit code -------------------------------------------------------------------------------


def test_the_code_page_shows_a_qr_and_a_countdown_and_json_gives_fresh_codes(
    city: CitizenApp,
) -> None:
    client = consented(city, city.seed().alice)
    page = text(client.get("/me/code"))
    # The phone draws the QR (the vendored library, from this site); the page carries the token only.
    qr = re.search(r'<div class="qr" id="qr"[^>]*>(.*?)</div>', page, re.DOTALL)
    assert qr and qr.group(1) == "" and "<svg" not in page
    assert '<script src="/static/vendor/qrcode-generator.min.js"></script>' in page
    first_code = re.search(r"var first = (\{.*?\});", page)
    assert first_code and JWS.fullmatch(json.loads(first_code.group(1))["token"])
    countdown = re.search(r'<span id="countdown">(\d+)</span>', page)
    assert countdown and 0 < int(countdown.group(1)) <= 120
    assert "code.json" in page  # it refreshes itself
    # Without scripts: a plain message and a link to a code the server draws.
    noscript = re.search(r"<noscript>(.*?)</noscript>", page, re.DOTALL)
    assert noscript and "JavaScript" in noscript.group(1)
    assert 'href="/me/code.png"' in noscript.group(1)

    first = client.get("/me/code.json")
    assert first.status_code == 200 and first.mimetype == "application/json"
    assert first.headers["Cache-Control"] == "no-store"
    one = first.get_json()
    assert set(one) == {"token", "expires_at", "expires_in"}
    assert JWS.fullmatch(one["token"]) and 0 < one["expires_in"] <= 120
    city.clock.advance(seconds=115)  # the page asks for a fresh one shortly before expiry
    two = client.get("/me/code.json").get_json()
    assert two["token"] != one["token"]
    assert two["expires_at"] > one["expires_at"] and 0 < two["expires_in"] <= 120


def test_without_scripts_the_code_comes_as_a_png_the_server_draws(city: CitizenApp) -> None:
    client = consented(city, city.seed().alice)
    image = client.get("/me/code.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.headers["Cache-Control"] == "no-store"
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.data)))
    assert len(found) == 1 and JWS.fullmatch(found[0].text) and found[0].ec_level == "M"
    # A fresh code each time, like the page's renewals.
    again = zxingcpp.read_barcodes(Image.open(io.BytesIO(client.get("/me/code.png").data)))
    assert again[0].text != found[0].text
    # Signed out: to the sign-in page, as every page.
    assert city.client().get("/me/code.png").status_code == 302


def test_every_page_and_the_code_json_answer_no_store(city: CitizenApp) -> None:
    seeded = city.seed()
    client = city.client()
    client.get("/me/login")
    sign_in(client, seeded.alice.number)
    client.get("/me/consent")
    post(client, "/me/consent", token_from="/me/consent", action="give")
    case = file_objection(client, seeded.alice.records["fine"], "我当天不在本市，处罚对象有误。")
    for path in (
        *PAGES,
        "/me/consent",
        "/me/code.json",
        "/me/code.png",
        "/me/data.json",
        f"/me/records/{seeded.alice.records['award']}/objection",
        case.location,
        "/me/records/999999/objection",
    ):
        client.get(path)
    file_objection(client, seeded.alice.records["award"], "短")
    client.post("/me/consent", data={"action": "give"})  # a refused POST (400)
    post(client, "/me/logout", token_from="/me/")
    client.get("/me/")
    served = [s for s in city.sent if not s.path.startswith("/me/static/")]
    assert len(served) > 20
    assert {s.status for s in served} >= {200, 302, 400, 404, 422}
    lingering = [(s.path, s.status) for s in served if s.headers.get("Cache-Control") != "no-store"]
    assert lingering == []


# --- page weight -----------------------------------------------------------------------------------


def test_every_page_with_its_styles_and_scripts_is_under_300_kb(city: CitizenApp) -> None:
    seeded = city.seed()
    with city.session() as session:
        load_catalogue(session)
    client = consented(city, seeded.alice)
    venue_checks(city, seeded.alice)
    case = file_objection(client, seeded.alice.records["fine"], "我当天不在本市，处罚对象有误。")
    anonymous = city.client()
    pages = {
        "/me/login": anonymous,
        "/me/consent": client,
        f"/me/records/{seeded.alice.records['award']}/objection": client,
        case.location: client,
        **dict.fromkeys(PAGES, client),
    }
    for path, who in pages.items():
        response = who.get(path)
        assert response.status_code == 200, path
        html = response.get_data()
        linked = re.findall(r'<link rel="stylesheet" href="([^"]+)"', text(response))
        linked += re.findall(r'<script[^>]+src="([^"]+)"', text(response))
        assert "/me/static/citizen.css" in linked, path
        total = len(html)
        for url in linked:
            assert not url.startswith(("http:", "https:", "//")), f"{path} loads {url} from outside"
            asset = who.get(url)
            assert asset.status_code == 200, url
            total += len(asset.get_data())
            asset.close()
        assert total < 300 * 1024, f"{path} weighs {total} bytes with its styles and scripts"


# --- benefits --------------------------------------------------------------------------------------


def needed_tier(eligibility: dict[str, Any]) -> int:
    conditions = eligibility.get("all", [eligibility])
    return max(c["min_common_tier"] for c in conditions if "min_common_tier" in c)


def test_benefits_list_what_i_qualify_for_and_the_tier_the_others_need(city: CitizenApp) -> None:
    seeded = city.seed()
    with city.session() as session:
        load_catalogue(session)
    client = consented(city, seeded.alice)  # tier A: common level 3 (良好), no direct tier
    page = text(client.get("/me/benefits?category=library"))
    offered = list(catalogue.scenarios())
    qualifying = [s for s in offered if needed_tier(s["eligibility"]) <= 3]
    assert 0 < len(qualifying) < len(offered)
    count = re.search(r'您可享受 <strong id="eligible-count">(\d+)</strong> 项，共 (\d+) 项', page)
    assert count and (int(count.group(1)), int(count.group(2))) == (len(qualifying), len(offered))
    # What I qualify for first; the rest folded, each condition with the tier it needs once.
    mine, _, rest = page.partition('<details class="rest"')
    by_name = {
        name: after
        for name, after in re.findall(r"<li><strong>(.*?)</strong>(.*?)</li>", page, re.DOTALL)
    }
    library = [s for s in offered if s["category"] == "library"]
    assert set(by_name) == {s["name_zh"] for s in library}
    yes = next(s for s in library if needed_tier(s["eligibility"]) <= 3)
    assert yes["name_zh"] in mine and yes["benefit_zh"] in by_name[yes["name_zh"]]
    no = next(s for s in library if needed_tier(s["eligibility"]) == 4)
    assert no["name_zh"] in rest and no["benefit_zh"] in by_name[no["name_zh"]]
    assert f"原因：需达到通用等级 {common_tier(4).name_zh}及以上" in rest


# --- audit -----------------------------------------------------------------------------------------


def test_every_read_of_my_data_is_audited_as_mine(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = consented(city, alice)
    actor = f"citizen:{alice.citizen_id}"
    expected = {
        "/me/": "citizen.explain",
        "/me/records": "citizen.explain",
        "/me/benefits": "benefits.view",
        "/me/checks": "citizen.checks",
        "/me/data.json": "citizen.export",
        "/me/report": "citizen.export",
        "/me/code.json": "code.issue",
        "/me/code.png": "code.issue",
    }
    for path, action in expected.items():
        before = len(city.events(actor=actor))
        assert client.get(path).status_code == 200, path
        added = city.events(actor=actor)[before:]
        assert action in [e.action for e in added], (path, [e.action for e in added])
        assert all(e.citizen_id == alice.citizen_id for e in added)
    assert "citizen.sign_in" in [e.action for e in city.events(actor=actor)]


def test_a_code_renewal_is_the_token_alone_under_1_kb(city: CitizenApp) -> None:
    """The phone draws the QR, so a renewal is the token and its expiry: under 1 KB, with or without
    gzip (it is under the compression threshold, and a signed token does not compress anyway)."""
    client = consented(city, city.seed().alice)
    zipped = client.get("/me/code.json", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.status_code == 200 and "Content-Encoding" not in zipped.headers
    assert len(zipped.data) < 1024, len(zipped.data)  # was 8.6 KB of SVG (63 KB before that)
    renewed = json.loads(zipped.data)
    assert JWS.fullmatch(renewed["token"]) and "svg" not in renewed
    plain = client.get("/me/code.json")
    assert len(plain.data) < 1024 and JWS.fullmatch(plain.get_json()["token"])
    page = client.get("/me/code", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Content-Encoding"] == "gzip"
    assert '<div class="qr" id="qr"' in gzip.decompress(page.data).decode()
