"""The web admin's pages: who may open what, the dashboard's charts, the audit log, sources, models."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin.models import AdminUser
from citycredit.cli.demo import ensure_reference_models, ensure_sources
from citycredit.core import audit_chain
from citycredit.core.audit import AuditEvent, audit
from citycredit.core.clients import ApiClient, register_client
from citycredit.core.db import utcnow
from citycredit.web.admin.web import READ_ONLY_ALLOWED
from credit_codes.models import Redemption, Verification
from points_engine import operations
from points_engine.ingest import finish_batch, ingest_rows, start_batch
from points_engine.models import Citizen, DataSource, ScoreSnapshot, ScoringModelVersion
from scenarios.models import Operator, Scenario, ScenarioVersion
from tests import factories
from tests.conftest import KEY
from tests.databases import ScratchDatabase
from tests.integration.admin_support import (
    PASSWORD,
    AdminApp,
    admin_app,
    csrf,
    post,
    signed_in,
)
from tests.integration.audit_support import as_superuser

CITY_TZ = dt.timezone(dt.timedelta(hours=8))
TODAY = dt.date(2026, 6, 30)  # the admin_support clock's date in the city


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        with web.session() as session:
            ensure_sources(session)
            ensure_reference_models(session, actor="test")
            session.add(Operator(code="city-library", name_zh="市图书馆", name_en="City Library"))
        web.add_user("boss", "platform_admin")
        web.add_user("audit1", "auditor")
        web.add_user("clerk-all", "clerk")
        web.add_user("clerk-court", "clerk", source_code="court")
        web.add_user("lib-op", "operator", operator_code="city-library")
        web.add_user("rev1", "reviewer")
        yield web


# --- who may do what ------------------------------------------------------------------------------


def _post_routes(site: AdminApp) -> list[str]:
    """Every POST route of the admin, with 1 for each id in its path."""
    routes = []
    for rule in site.app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or "POST" not in (rule.methods or ()):
            continue
        if rule.endpoint in READ_ONLY_ALLOWED:
            continue
        routes.append(re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule))
    return sorted(routes)


def test_an_auditor_reads_everything_and_changes_nothing(site: AdminApp) -> None:
    client = signed_in(site, "audit1")
    for path in ("/admin/", "/admin/audit", "/admin/sources", "/admin/models", "/admin/users"):
        assert client.get(path).status_code == 200, path
    log = client.get("/admin/audit").get_data(as_text=True)
    assert "admin:audit1" in log and "admin.login" in log

    routes = _post_routes(site)
    assert "/admin/models/1/publish" in routes and "/admin/users/new" in routes
    before = site.events()
    with site.session() as session:
        users_before = session.scalars(select(AdminUser.status).order_by(AdminUser.id)).all()
    for path in routes:
        refused = post(
            client,
            path,
            status="disabled",
            password="x" * 20,
            password_again="x" * 20,
            username="sneaky",
            role="platform_admin",
        )
        assert refused.status_code == 403, path
        assert "审计员账户为只读" in refused.get_data(as_text=True)
    with site.session() as session:
        assert (
            session.scalars(select(AdminUser.status).order_by(AdminUser.id)).all() == users_before
        )
        published = session.scalar(
            select(ScoringModelVersion.name).where(ScoringModelVersion.status == "published")
        )
    assert published == "itemised-base1000"
    denied = site.events("admin.denied")
    assert len(denied) == len(routes) and {e.actor for e in denied} == {"admin:audit1"}
    # Only refusals were recorded (and the pages read): nothing else happened.
    new = {e.action for e in site.events()[len(before) :]}
    assert new <= {"admin.denied", "admin.users_view"}
    # Signing out is not a change: an auditor may.
    assert post(client, "/admin/logout").status_code == 302


@pytest.mark.parametrize(
    ("username", "allowed", "forbidden"),
    [
        (
            "clerk-all",
            ["/admin/", "/admin/sources"],
            ["/admin/audit", "/admin/users", "/admin/models"],
        ),
        (
            "lib-op",
            ["/admin/"],
            ["/admin/users", "/admin/users/new", "/admin/audit", "/admin/sources"],
        ),
        ("rev1", ["/admin/", "/admin/sources"], ["/admin/audit", "/admin/models", "/admin/users"]),
        ("boss", ["/admin/audit", "/admin/users", "/admin/users/new", "/admin/models"], []),
    ],
)
def test_roles_open_only_their_pages(
    site: AdminApp, username: str, allowed: list[str], forbidden: list[str]
) -> None:
    client = signed_in(site, username)
    for path in allowed:
        assert client.get(path).status_code == 200, path
    for path in forbidden:
        page = client.get(path)
        assert page.status_code == 403, path
        assert "无权访问" in page.get_data(as_text=True)
    nav = client.get("/admin/").get_data(as_text=True)
    assert ('href="/admin/users"' in nav) == (username == "boss")
    assert ('href="/admin/audit"' in nav) == (username == "boss")


def test_signed_out_visitors_are_sent_to_sign_in_and_back(site: AdminApp) -> None:
    client = site.client()
    response = client.get("/admin/sources")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login?next=/admin/sources"
    # A POST from a signed-out visitor changes nothing and goes to the login page too.
    boss = site.user("boss")
    assert (
        client.post(f"/admin/users/{boss.id}/status", data={"status": "disabled"}).status_code
        == 302
    )
    assert site.user("boss").status == "active"


# --- the dashboard --------------------------------------------------------------------------------


def _snapshots(session: Session, tiers: dict[str, int]) -> None:
    version, model = operations.published_model(session)
    for code, count in tiers.items():
        tier = model.tier(code)
        for _ in range(count):
            person = factories.citizen(session)
            session.add(
                ScoreSnapshot(
                    citizen_id=person.id,
                    model_version_id=version.id,
                    score=tier.min_score,
                    tier_code=tier.code,
                    tier_rank=tier.rank,
                    common_tier=tier.common_tier,
                    direct_tier=False,
                    breakdown={},
                    is_current=True,
                )
            )
    session.flush()


def _scenario(
    session: Session,
    code: str,
    category: str,
    names: tuple[str, str],
    *,
    status: str = "published",
    operator_code: str = "city-library",
) -> Scenario:
    operator = session.scalar(select(Operator).where(Operator.code == operator_code))
    assert operator is not None
    scenario = Scenario(code=code, operator_id=operator.id, category=category, status=status)
    session.add(scenario)
    session.flush()
    # An older, superseded version with another name: the chart must name the live one.
    session.add(
        ScenarioVersion(
            scenario_id=scenario.id,
            number=1,
            state="superseded",
            name_zh="旧名称",
            name_en="Old name",
            benefit_zh="-",
            benefit_en="-",
            eligibility={"min_common_tier": 3},
            created_by="test",
        )
    )
    session.add(
        ScenarioVersion(
            scenario_id=scenario.id,
            number=2,
            state="published" if status == "published" else "withdrawn",
            name_zh=names[0],
            name_en=names[1],
            benefit_zh="-",
            benefit_en="-",
            eligibility={"min_common_tier": 3},
            created_by="test",
        )
    )
    session.flush()
    return scenario


def _redeem(session: Session, scenario: Scenario, day: dt.date, times: int) -> None:
    client = session.scalar(select(ApiClient).where(ApiClient.client_id == "desk"))
    if client is None:
        client = ApiClient(client_id="desk", name="desk", kind="venue", scopes="verify redeem")
        session.add(client)
        session.flush()
    version_id = session.scalar(
        select(ScenarioVersion.id).where(
            ScenarioVersion.scenario_id == scenario.id, ScenarioVersion.number == 2
        )
    )
    person = session.scalar(select(Citizen).limit(1))
    assert person is not None and version_id is not None
    at = dt.datetime.combine(day, dt.time(12), CITY_TZ)
    for _ in range(times):
        check = Verification(
            public_id=uuid.uuid4().hex,
            client_id=client.id,
            citizen_id=person.id,
            scenario_id=scenario.id,
            scenario_version_id=version_id,
            token_jti=uuid.uuid4().hex,
            eligible=True,
            common_tier=4,
            at=at,
        )
        session.add(check)
        session.flush()
        session.add(
            Redemption(
                public_id=uuid.uuid4().hex,
                verification_id=check.id,
                client_id=client.id,
                citizen_id=person.id,
                scenario_id=scenario.id,
                scenario_version_id=version_id,
                token_jti=check.token_jti,
                day=day,
                at=at,
            )
        )
    session.flush()


def _titles(svg: str) -> list[str]:
    return re.findall(r"<rect[^>]*><title>([^<]*)</title></rect>", svg)


def _figure(page: str, figure_id: str) -> str:
    start = page.index(f'<figure id="{figure_id}">')
    return page[start : page.index("</figure>", start)]


def test_the_dashboard_draws_three_charts_from_the_data(site: AdminApp) -> None:
    with site.session() as session:
        _snapshots(session, {"AAA": 3, "A": 5, "C": 1})
        session.add(Citizen(id_hash="x" * 64, consent_given=False))  # on record, not scored
        books = _scenario(session, "books", "library", ("免押金借书", "Deposit-free books"))
        bus = _scenario(session, "bus", "transport", ("公交八折", "Bus discount"))
        _scenario(session, "idle", "sports", ("健身", "Gym"))
        gone = _scenario(session, "gone", "rental", ("旧场景", "Old scenario"), status="suspended")
        _redeem(session, books, TODAY, 2)
        _redeem(session, books, TODAY - dt.timedelta(days=1), 4)
        _redeem(session, bus, TODAY - dt.timedelta(days=1), 1)
        _redeem(session, bus, TODAY - dt.timedelta(days=29), 1)
        _redeem(session, gone, TODAY - dt.timedelta(days=3), 3)
        _redeem(session, bus, TODAY - dt.timedelta(days=30), 50)  # before the 30 days: left out

    client = signed_in(site, "boss")
    page = client.get("/admin/").get_data(as_text=True)
    assert page.count('<svg class="chart"') == 3
    figures = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page))
    assert figures == {"在册市民": "10", "已评分": "9", "已发布场景": "3", "今日核验": "2"}

    tiers = _figure(page, "tiers")
    assert _titles(tiers) == [
        "本市等级 AAA级（诚信模范） · 通用等级 极好: 3",
        "本市等级 AA级（诚信优秀） · 通用等级 优秀: 0",
        "本市等级 A级（诚信） · 通用等级 良好: 5",
        "本市等级 B级（较诚信） · 通用等级 一般: 0",
        "本市等级 C级（诚信警示） · 通用等级 待提升: 1",
        "本市等级 D级（待提升） · 通用等级 待提升: 0",
    ]
    # Under the chart, which city tiers (the bars' labels) map to which common level.
    legend = re.search(r'<p class="hint" id="tier-legend">(.*?)</p>', page)
    assert legend and legend.group(1) == (
        "通用等级 极好：AAA；通用等级 优秀：AA；通用等级 良好：A；通用等级 一般：B；"
        "通用等级 待提升：C、D"
    )
    assert "<title" in tiers and "<desc" in tiers and ">人数</text>" in tiers

    per_day = _figure(page, "redemptions")
    assert sorted(_titles(per_day)) == sorted(
        [
            "06-01 公共交通: 1",
            "06-27 共享租赁: 3",
            "06-29 图书借阅: 4",
            "06-29 公共交通: 1",
            "06-30 图书借阅: 2",
        ]
    )
    assert ">图书借阅</text>" in per_day and ">体育健身</text>" not in per_day

    top = _figure(page, "top-scenarios")
    # Named from the live version; a suspended scenario has none, so its code stands in.
    assert _titles(top) == ["免押金借书: 6", "gone: 3", "公交八折: 2"]
    assert "旧名称" not in top

    english = client.get("/admin/?lang=en").get_data(as_text=True)
    assert "City tier AAA (exemplary) · common level Excellent: 3" in _figure(english, "tiers")
    assert "common level Needs improvement: C, D</p>" in english
    assert "06-29 Libraries: 4" in _figure(english, "redemptions")
    assert "Deposit-free books: 6" in _figure(english, "top-scenarios")
    assert "Current distribution by city tier" in english


def test_the_dashboard_says_when_there_is_nothing_to_draw(site: AdminApp) -> None:
    page = signed_in(site, "boss").get("/admin/").get_data(as_text=True)
    assert page.count('<svg class="chart"') == 3
    assert page.count(">暂无数据</text>") == 2
    assert "本市等级 AAA级（诚信模范） · 通用等级 极好: 0" in _figure(page, "tiers")


def test_an_operator_sees_its_own_scenarios_usage_and_clerks_and_reviewers_none(
    site: AdminApp,
) -> None:
    with site.session() as session:
        _snapshots(session, {"A": 2})
        session.add(Operator(code="bus-group", name_zh="公交集团", name_en="Bus Group"))
        session.flush()
        books = _scenario(session, "books", "library", ("免押金借书", "Deposit-free books"))
        bus = _scenario(
            session, "bus", "transport", ("公交八折", "Bus discount"), operator_code="bus-group"
        )
        _redeem(session, books, TODAY, 2)
        _redeem(session, bus, TODAY, 5)

    def dashboard(username: str) -> tuple[str, dict[str, str]]:
        page = signed_in(site, username).get("/admin/").get_data(as_text=True)
        return page, dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page))

    # The library's operator: its own scenario's usage only; citizens and tiers are city-wide.
    page, figures = dashboard("lib-op")
    assert "公交八折" not in page and ">公共交通</text>" not in page
    assert _titles(_figure(page, "top-scenarios")) == ["免押金借书: 2"]
    assert _titles(_figure(page, "redemptions")) == ["06-30 图书借阅: 2"]
    assert figures == {"在册市民": "2", "已评分": "2", "已发布场景": "1", "今日核验": "2"}
    assert "本市等级 A级（诚信） · 通用等级 良好: 2" in _figure(page, "tiers")
    assert "仅含本运营方的场景" in page

    # The platform (and its auditor) see every operator's.
    page, figures = dashboard("boss")
    assert _titles(_figure(page, "top-scenarios")) == ["公交八折: 5", "免押金借书: 2"]
    assert figures["已发布场景"] == "2" and figures["今日核验"] == "7"
    assert "公交八折" in signed_in(site, "audit1").get("/admin/").get_data(as_text=True)

    # Clerks and reviewers: city-wide aggregates by category, never a scenario's own usage.
    for username in ("clerk-all", "clerk-court", "rev1"):
        page, figures = dashboard(username)
        assert page.count('<svg class="chart"') == 2, username
        assert 'id="top-scenarios"' not in page and "公交八折" not in page and "books" not in page
        assert sorted(_titles(_figure(page, "redemptions"))) == [
            "06-30 公共交通: 5",
            "06-30 图书借阅: 2",
        ]
        assert figures["已发布场景"] == "2" and figures["今日核验"] == "7"


# --- the audit log --------------------------------------------------------------------------------


def test_the_audit_log_filters_and_pages_newest_first(site: AdminApp) -> None:
    with site.session() as session:
        for n in range(120):
            audit(session, actor=f"cli:ops{n % 2}", action="score.read", citizen_id=1000 + n % 3)
        audit(session, actor="api:desk", action="verify", citizen_id=77)
    client = signed_in(site, "boss")
    page = client.get("/admin/audit?actor=ops1&action=score.").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<tr><td class="num">(\d+)</td>', page)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    assert "cli:ops0" not in page and "api:desk" not in page
    older = re.search(r'href="([^"]+)" rel="next"', page)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    more = [int(i) for i in re.findall(r'<tr><td class="num">(\d+)</td>', second)]
    assert len(more) == 10 and max(more) < min(ids)
    assert 'rel="next"' not in second and 'rel="prev"' in second

    by_citizen = client.get("/admin/audit?citizen=77").get_data(as_text=True)
    assert by_citizen.count("api:desk") == 1 and "cli:ops" not in by_citizen
    future = client.get("/admin/audit?from=2030-01-01").get_data(as_text=True)
    assert "没有符合条件的记录" in future
    bad = client.get("/admin/audit?from=yesterday&citizen=abc").get_data(as_text=True)
    assert "日期“yesterday”无效" in bad and "市民编号“abc”无效" in bad
    viewed = site.events("admin.audit_log_view")
    assert viewed[0].actor == "admin:boss" and viewed[0].detail["filters"] == {
        "actor": "ops1",
        "action": "score.",
    }


def test_the_auditor_verifies_the_audit_chain_and_sees_the_broken_link(site: AdminApp) -> None:
    with site.session() as session:
        for n in range(5):
            audit(session, actor="cli:ops", action="score.read", citizen_id=1000 + n)
    key_secret = site.app.extensions["citycredit"].settings.key_secret
    with site.session() as session:
        run = audit_chain.seal(
            session, key_secret, grace=dt.timedelta(minutes=5), now=utcnow() + dt.timedelta(hours=1)
        )
    assert run.up_to is not None
    auditor = signed_in(site, "audit1")
    log = auditor.get("/admin/audit").get_data(as_text=True)
    assert 'href="/admin/audit/chain"' in log and "校验审计链" in log
    intact = auditor.get("/admin/audit/chain").get_data(as_text=True)
    assert f"审计链完整：第 {run.up_to} 条事件及之前的记录均未被改动" in intact
    english = auditor.get("/admin/audit/chain?lang=en").get_data(as_text=True)
    assert f"The audit chain is intact up to event {run.up_to}" in english
    assert "Last checkpoint" in english and f"up to event {run.up_to}, signed" in english
    changed = run.up_to - 2
    with site.session() as session, as_superuser(session):
        session.execute(
            sa.text("UPDATE audit_event SET actor = 'cli:nobody' WHERE id = :id"), {"id": changed}
        )
    broken = auditor.get("/admin/audit/chain?lang=zh").get_data(as_text=True)
    assert f"审计链在第 {changed} 条事件处断开" in broken and "被修改（已改动）" in broken
    assert 'role="alert"' in broken
    english = auditor.get("/admin/audit/chain?lang=en").get_data(as_text=True)
    assert f"Event {changed} was changed after it was sealed" in english
    checks = site.events("audit.chain_verify")  # the check reads the log: it is recorded
    assert [e.actor for e in checks] == ["admin:audit1"] * 4
    assert [e.detail["ok"] for e in checks] == [True, True, False, False]
    assert checks[-1].detail["broken_at"] == changed
    # Only those who may read the log may check it.
    assert signed_in(site, "clerk-all").get("/admin/audit/chain").status_code == 403


# --- data sources and ingestion batches -----------------------------------------------------------


def _ingest(site: AdminApp, origin: str, rows: list[dict[str, str]]) -> int:
    with site.session() as session:
        batch = start_batch(session, origin, "csv")
        *_, report = ingest_rows(
            session, enumerate(rows, start=1), key=KEY, batch=batch, today=TODAY
        )
        finish_batch(batch, report, None)
        return batch.id


def _row(source: str, record_id: str, number: str, **changes: str) -> dict[str, str]:
    row = {
        "source": source,
        "source_record_id": record_id,
        "id_number": number,
        "item_code": "COURT_DISHONEST",
        "document_no": "罚字1号",
        "occurred_on": "2026-03-01",
        "reported_on": "2026-03-02",
        "status": "active",
    }
    return {**row, **changes}


def test_sources_show_their_batches_and_a_clerk_sees_only_their_own(site: AdminApp) -> None:
    number = factories.id_number()
    court = _ingest(
        site,
        "court-2026-06.csv",
        [
            _row("court", "c1", number),
            _row("court", "c2", number, occurred_on="2026-13-01"),
            _row("court", "c3", number[:17] + ("0" if number[17] != "0" else "1")),
        ],
    )
    tax = _ingest(site, "tax.csv", [_row("tax", "t1", number, item_code="TAX_ARREARS")])
    client = signed_in(site, "boss")
    page = client.get("/admin/sources").get_data(as_text=True)
    assert f"/admin/sources/batches/{court}" in page and f"/admin/sources/batches/{tax}" in page
    assert "<code>occurred_on</code> ×1" in page

    detail = client.get(f"/admin/sources/batches/{court}").get_data(as_text=True)
    assert "court-2026-06.csv" in detail and "c2" in detail and "occurred_on" in detail
    assert number not in detail
    assert site.events("admin.batch_view")[0].detail == {"batch": court}

    clerk = signed_in(site, "clerk-court")
    own = clerk.get("/admin/sources").get_data(as_text=True)
    assert f"/admin/sources/batches/{court}" in own and f"/admin/sources/batches/{tax}" not in own
    assert clerk.get(f"/admin/sources/batches/{court}").status_code == 200
    assert clerk.get(f"/admin/sources/batches/{tax}").status_code == 403
    every = signed_in(site, "clerk-all").get("/admin/sources").get_data(as_text=True)
    assert f"/admin/sources/batches/{tax}" in every


def test_a_clerk_limited_to_one_source_reads_only_that_sources_rejected_rows(
    site: AdminApp,
) -> None:
    number = factories.id_number()
    mixed = _ingest(
        site,
        "mixed.csv",
        [
            _row("court", "court-ok-1", number),
            _row("tax", "TAX-SECRET-REF-77", number, item_code="TAX_ARREARS", occurred_on="x"),
            _row("court", "COURT-CSV-BAD-3", number, status="?"),
        ],
    )
    with site.session() as session:
        court_id = session.scalar(select(DataSource.id).where(DataSource.code == "court"))
        feed = register_client(
            session,
            name="court feed",
            kind="source",
            scopes=["records:write"],
            source_id=court_id,
            key_secret=site.app.extensions["citycredit"].settings.key_secret,
        ).client.client_id
    uploaded = _ingest(site, f"api:{feed}", [_row("court", "COURT-BAD-9", number, status="?")])

    clerk = signed_in(site, "clerk-court")
    page = clerk.get(f"/admin/sources/batches/{mixed}")
    body = page.get_data(as_text=True)
    # The batch is the court's too (it wrote a court record), but the rejected tax row is not: a
    # rejected row wrote nothing, so only the source it names, or an uploader bound to the court,
    # ties it to the court.
    assert page.status_code == 200 and "mixed.csv" in body
    assert "TAX-SECRET-REF-77" not in body and "1 条拒收错误未显示" in body
    # A rejected row that names the court is the court's to read, whoever uploaded the file.
    assert "COURT-CSV-BAD-3" in body
    listing = clerk.get("/admin/sources").get_data(as_text=True)
    assert "<code>occurred_on</code>" not in listing
    own = clerk.get(f"/admin/sources/batches/{uploaded}").get_data(as_text=True)
    assert "COURT-BAD-9" in own and "未显示" not in own

    # Those who see every source read every row.
    for username in ("boss", "clerk-all"):
        every = signed_in(site, username).get(f"/admin/sources/batches/{mixed}")
        assert "TAX-SECRET-REF-77" in every.get_data(as_text=True), username


# --- scoring models -------------------------------------------------------------------------------


def test_what_if_shows_internal_ids_only_and_publishing_rescores(site: AdminApp) -> None:
    numbers = [factories.id_number() for _ in range(3)]
    _ingest(
        site,
        "court.csv",
        [_row("court", f"r{i}", n) for i, n in enumerate(numbers)],
    )
    with site.session() as session:
        session.execute(Citizen.__table__.update().values(consent_given=True))
        operations.recompute_all(session, as_of=TODAY)
        draft = operations.find_version(session, "weighted-dimensions")
        draft_id, draft_label = draft.id, draft.label
        citizen_ids = session.scalars(select(Citizen.id)).all()

    auditor = signed_in(site, "audit1")
    page = post(auditor, f"/admin/models/{draft_id}/whatif").get_data(as_text=True)
    assert "3 人中有" in page
    for cid in citizen_ids:
        assert f">C{cid}</td>" in page  # the reference `citycredit explain` takes
    assert not any(n in page for n in numbers)
    assert "发布 weighted-dimensions@v1" not in page  # only a platform admin sees the button
    viewed = site.events("admin.what_if_view")
    assert viewed[0].actor == "admin:audit1" and sorted(viewed[0].detail["movers"]) == sorted(
        citizen_ids
    )
    assert site.events("model.what_if")[0].actor == "admin:audit1"

    boss = signed_in(site, "boss")
    assert f"发布 {draft_label}" in post(boss, f"/admin/models/{draft_id}/whatif").get_data(
        as_text=True
    )
    done = post(boss, f"/admin/models/{draft_id}/publish")
    assert done.status_code == 302
    assert "已重新计算 3 位市民的积分" in boss.get("/admin/models").get_data(as_text=True)
    with site.session() as session:
        assert operations.published_model(session)[0].label == draft_label
        scored_with = session.scalars(
            select(ScoreSnapshot.model_version_id).where(ScoreSnapshot.is_current.is_(True))
        ).all()
    assert set(scored_with) == {draft_id}
    assert [e.actor for e in site.events("model.publish")][-1] == "admin:boss"
    assert site.events("admin.model_publish")[0].detail["citizens"] == 3


def test_a_what_if_runs_only_from_the_models_pages_form(site: AdminApp) -> None:
    with site.session() as session:
        draft_id = operations.find_version(session, "weighted-dimensions").id
    boss = signed_in(site, "boss")
    listing = boss.get("/admin/models").get_data(as_text=True)
    assert (
        f'<form class="inline" method="post" action="/admin/models/{draft_id}/whatif">' in listing
    )
    # Heavy work that writes scratch rows: no link, image or other site's form sets it off.
    assert boss.get(f"/admin/models/{draft_id}/whatif").status_code == 405
    forged = boss.post(f"/admin/models/{draft_id}/whatif")
    assert forged.status_code == 400 and not site.events("model.what_if")
    assert post(boss, f"/admin/models/{draft_id}/whatif").status_code == 200
    assert len(site.events("model.what_if")) == 1


# --- bad input ------------------------------------------------------------------------------------


def test_bad_numbers_on_the_scenario_pages_are_answered_not_failures(site: AdminApp) -> None:
    boss = signed_in(site, "boss")
    for page in ("99999999999999999999999", "10001", "-3", "x"):
        answer = boss.get(f"/admin/scenarios?page={page}")
        assert answer.status_code == 200, page
    form = {
        "code": "lib-books",
        "operator": "city-library",
        "category": "library",
        "name_zh": "免押金借书",
        "name_en": "Deposit-free books",
        "benefit_zh": "免押金",
        "benefit_en": "No deposit",
    }
    for tier in ("x", "²", "３", "9" * 5000, "-1"):
        answer = post(boss, "/admin/scenarios", **form, min_common_tier=tier)
        assert answer.status_code == 422, tier
        assert 'eligibility-error">min_common_tier：须为 1 到 5 的整数' in answer.get_data(
            as_text=True
        )
    with site.session() as session:
        assert session.scalar(select(Scenario).where(Scenario.code == "lib-books")) is None
    assert post(boss, "/admin/scenarios", **form, min_common_tier=" 3 ").status_code == 302


# --- users ----------------------------------------------------------------------------------------


def test_platform_admins_create_users_with_a_password_policy(site: AdminApp) -> None:
    client = signed_in(site, "boss")
    weak = post(
        client,
        "/admin/users/new",
        username="newbie",
        display_name="新人",
        role="clerk",
        source="tax",
        password="too short",
        password_again="too short",
    )
    assert weak.status_code == 400 and "密码至少需要 12 个字符" in weak.get_data(as_text=True)
    orphan = post(
        client,
        "/admin/users/new",
        username="op2",
        role="operator",
        password=PASSWORD,
        password_again=PASSWORD,
    )
    assert "场景运营方账户必须指定所属运营方" in orphan.get_data(as_text=True)
    with site.session() as session:
        assert session.scalar(select(func.count()).select_from(AdminUser)) == 6

    made = post(
        client,
        "/admin/users/new",
        username="newbie",
        display_name="新人",
        role="clerk",
        source="tax",
        password=PASSWORD,
        password_again=PASSWORD,
    )
    assert made.status_code == 302
    newbie = site.user("newbie")
    assert newbie.role == "clerk" and newbie.source_id is not None
    assert signed_in(site, "newbie").get("/admin/sources").status_code == 200
    listing = client.get("/admin/users").get_data(as_text=True)
    assert "newbie" in listing and "数据源专员" in listing and "<code>tax</code>" in listing

    missing = client.get("/admin/users/9999")
    assert missing.status_code == 404 and "找不到此页面或此条目" in missing.get_data(as_text=True)

    me = site.user("boss")
    refused = post(client, f"/admin/users/{me.id}/status", status="disabled")
    assert refused.status_code == 302 and site.user("boss").status == "active"


def test_every_admin_action_leaves_an_audit_event(site: AdminApp) -> None:
    client = signed_in(site, "boss")
    clerk = site.user("clerk-all")
    with site.session() as session:
        draft = session.scalar(
            select(ScoringModelVersion.id).where(ScoringModelVersion.status == "draft")
        )
    actions = [
        (
            "/admin/users/new",
            {
                "username": "x1",
                "role": "reviewer",
                "password": PASSWORD,
                "password_again": PASSWORD,
            },
            "admin.user_create",
        ),
        (f"/admin/users/{clerk.id}/status", {"status": "disabled"}, "admin.user_disable"),
        (f"/admin/users/{clerk.id}/status", {"status": "active"}, "admin.user_enable"),
        (
            f"/admin/users/{clerk.id}/password",
            {"password": "p" * 14, "password_again": "p" * 14},
            "admin.password_reset",
        ),
        (f"/admin/models/{draft}/publish", {}, "admin.model_publish"),
        (
            "/admin/account/password",
            {
                "current_password": PASSWORD,
                "new_password": "q" * 14,
                "new_password_again": "q" * 14,
            },
            "admin.password_change",
        ),
        ("/admin/logout", {}, "admin.logout"),
    ]
    for path, form, action in actions:
        seen = len(site.events())
        response = client.post(path, data={**form, "csrf_token": csrf(client, "/admin/account")})
        assert response.status_code == 302, (path, response.get_data(as_text=True)[:500])
        new = site.events()[seen:]
        assert action in [e.action for e in new], path
        assert {e.actor for e in new if e.action == action} == {"admin:boss"}
    with site.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) > len(actions)
