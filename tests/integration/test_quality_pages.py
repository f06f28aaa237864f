"""The data-quality pages (issue 13 §2): a month's figures per source against the targets, a source's
rejected rows tracked to resolution, a clerk limited to their own source, the targets, the dashboard's flag."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from citycredit.cli.demo import ensure_reference_models, ensure_sources
from points_engine import batches, quality
from points_engine.models import DataSource, RejectedRow
from tests import factories
from tests.conftest import KEY
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, post, signed_in

MONTH = dt.date(2026, 6, 1)
YESTERDAY, TODAY = dt.date(2026, 6, 29), dt.date(2026, 6, 30)  # the admin clock's day is the 30th


def bad_checksum(number: str) -> str:
    last = number[-1]
    return number[:-1] + ("0" if last == "X" else str((int(last) + 1) % 10))


def row(ref: str, number: str, **fields: str) -> dict[str, str]:
    base = {
        "source": "court",
        "source_record_id": ref,
        "id_number": number,
        "item_code": "COURT_DISHONEST",
        "document_no": f"（2026）鄂02执{ref}号",
        "occurred_on": "2026-06-26",
        "reported_on": "2026-06-26",
    }
    return base | fields


def send(web: AdminApp, rows: list[dict[str, str]], day: dt.date) -> int:
    with web.session() as session:
        result = batches.ingest(
            session,
            iter(enumerate(rows, start=2)),
            origin=f"test-{day}-{len(rows)}",
            fmt="csv",
            key=KEY,
            today=day,
        )
        return result.report.batch_id


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        with web.session() as session:
            ensure_sources(session)
            ensure_reference_models(session, actor="test")
        web.add_user("boss", "platform_admin")
        web.add_user("court-clerk", "clerk", source_code="court")
        web.add_user("eyes", "auditor")
        yield web


@pytest.fixture
def month(site: AdminApp) -> dict[str, int]:
    """Two days of the court's and the market's collection: on time and late, a bad ID number and a
    missing code (the first re-sent corrected the next day), a duplicate and a correction."""
    ids = {ref: factories.id_number() for ref in ("c1", "c2", "c3", "c4", "c5", "c6", "c7")}
    first = send(
        site,
        [
            row("c1", ids["c1"]),
            row("c2", ids["c2"]),
            row("c3", ids["c3"]),
            row("c4", ids["c4"]),
            row("c5", ids["c5"], occurred_on="2026-05-04", reported_on="2026-05-04"),  # late
            row("c6", bad_checksum(ids["c6"])),
            row("c7", ids["c7"], item_code=""),
            row(
                "m1",
                factories.id_number(),
                source="market",
                item_code="LICENCE_GRANTED",
                document_no="黄市监许〔2026〕1号",
            ),
        ],
        YESTERDAY,
    )
    second = send(
        site,
        [
            row("c1", ids["c1"]),  # unchanged: a duplicate
            row("c2", ids["c2"], document_no="（2026）鄂02执c2号之一"),  # a correction
            row("c6", ids["c6"]),  # the refused row, corrected and re-sent
        ],
        TODAY,
    )
    with site.session() as session:
        court = session.scalar(select(DataSource).where(DataSource.code == "court"))
        market = session.scalar(select(DataSource).where(DataSource.code == "market"))
        assert court is not None and market is not None
        open_row = session.scalar(
            select(RejectedRow.id).where(RejectedRow.source_record_id == "c7")
        )
        return {
            "first": first,
            "second": second,
            "court": court.id,
            "market": market.id,
            "open": int(open_row),
        }


def table_row(page: str, row_id: str) -> list[str]:
    """The text of each cell of the row with that id (tags stripped, whitespace collapsed)."""
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row {row_id}"
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", found.group(1), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]


def shown(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def test_the_overview_shows_each_sources_month_figures_against_the_targets(
    site: AdminApp, month: dict[str, int]
) -> None:
    with site.session() as session:
        expected = {f.code: f for f in quality.month_figures(session, MONTH)}
        total = quality.city_total(expected.values(), quality.targets(session))
    court = expected["court"]
    # Worked out from the rows sent: 7 court rows, 3 again the next day; 2 refused; 1 of 6 new late.
    assert (court.received, court.rejected, court.duplicates, court.corrections) == (10, 2, 1, 1)
    assert (court.timed, court.on_time, court.open_rejections) == (6, 5, 1)
    assert court.grade == "C"  # 50 × 80% + 50 × 5/6 − 10 for the ID-number errors

    client = signed_in(site, "boss")
    page = client.get("/admin/quality?month=2026-06").get_data(as_text=True)
    cells = table_row(page, "source-court")
    assert cells[1:4] == [str(court.received), str(court.accepted), str(court.rejected)]
    assert "身份证号码错误 1" in cells[4] and "必填项缺失 1" in cells[4]
    assert cells[5:7] == [str(court.duplicates), str(court.corrections)]
    # Qualified 80% and on time 80% both miss 100%: said in words, not by colour alone.
    assert cells[7] == f"{shown(court.qualified_rate)} 未达标" == "80.0% 未达标"
    assert cells[8] == f"{shown(court.on_time_rate)} 未达标"
    assert cells[9] == f"{shown(court.id_error_rate, 3)} 未达标"
    assert cells[10] == str(court.open_rejections)
    assert cells[11] == f"{court.grade} ({court.score:.1f})"
    market = table_row(page, "source-market")
    assert market[1:4] == ["1", "1", "0"] and market[7] == "100.0%"
    city = table_row(page, "source-city")
    assert city[0] == "全市合计" and city[1] == str(total.received)
    assert city[11] == f"{total.grade} ({total.score:.1f})"
    assert 'id="missed-summary"' in page

    english = client.get("/admin/quality?month=2026-06&lang=en").get_data(as_text=True)
    cells = table_row(english, "source-court")
    assert cells[7] == "80.0% missed"
    assert "invalid ID number 1" in cells[4]
    assert table_row(english, "source-city")[0] == "City total"

    # Another month has nothing: dashes, no grade, no flag.
    empty = client.get("/admin/quality?month=2026-05").get_data(as_text=True)
    assert table_row(empty, "source-court")[7] == "—"
    assert 'id="missed-summary"' not in empty
    bad = client.get("/admin/quality?month=June").get_data(as_text=True)
    assert "bad month “June”" in bad and 'aria-invalid="true"' in bad


def test_a_source_page_lists_rejected_rows_open_first_and_how_each_was_resolved(
    site: AdminApp, month: dict[str, int]
) -> None:
    client = signed_in(site, "court-clerk")
    page = client.get("/admin/quality/sources/court?month=2026-06").get_data(as_text=True)
    open_part = page.split('id="open-rows"')[1].split("</table>")[0]
    assert f'id="rejected-{month["open"]}"' in open_part
    assert "<code>item_code</code>：必填项缺失" in open_part and "<code>c7</code>" in open_part
    assert f'href="/admin/sources/batches/{month["first"]}">#{month["first"]}' in open_part
    resolved = page.split('id="resolved-rows"')[1].split("</table>")[0]
    assert "<code>c6</code>" in resolved and "<code>id_number</code>：身份证号码错误" in resolved
    assert (
        f'已在批次 <a href="/admin/sources/batches/{month["second"]}">#{month["second"]}</a> 重新报送'
        in resolved
    )
    # The charts are images with a title and description, their figures in a table too.
    assert page.count('role="img"') == 2 and "<desc" in page
    assert "<td>2026-06-29</td>" in page
    views = site.events("admin.quality_rejected_view")
    assert views and views[-1].actor == "admin:court-clerk"
    assert views[-1].detail["open"] == [month["open"]]

    english = client.get("/admin/quality/sources/court?month=2026-06&lang=en").get_data(
        as_text=True
    )
    assert "a required field is missing" in english
    assert f're-sent in batch <a href="/admin/sources/batches/{month["second"]}">' in english


def test_a_clerk_sees_only_their_own_source(site: AdminApp, month: dict[str, int]) -> None:
    client = signed_in(site, "court-clerk")
    page = client.get("/admin/quality?month=2026-06").get_data(as_text=True)
    assert 'id="source-court"' in page
    assert 'id="source-market"' not in page and 'id="source-city"' not in page
    assert client.get("/admin/quality/sources/market").status_code == 404
    assert client.get("/admin/quality/sources/market/rejected.csv").status_code == 404
    with site.session() as session:
        market_row = RejectedRow(
            source_id=month["market"],
            batch_id=month["first"],
            row=99,
            source_record_id="m9",
            received_on=TODAY,
            reason="missing",
            errors=[{"field": "item_code", "reason": "missing", "code": "missing"}],
        )
        session.add(market_row)
        session.flush()
        market_row_id = market_row.id
    refused = post(client, f"/admin/quality/rejected/{market_row_id}/dismiss", reason="不是我们的")
    assert refused.status_code == 404
    with site.session() as session:
        assert session.get(RejectedRow, market_row_id).resolved_at is None  # type: ignore[union-attr]
    # The platform admin sees both.
    boss = signed_in(site, "boss").get("/admin/quality/sources/market").status_code
    assert boss == 200


def test_the_csv_of_open_rejected_rows_and_dismissing_one(
    site: AdminApp, month: dict[str, int]
) -> None:
    client = signed_in(site, "court-clerk")
    response = client.get("/admin/quality/sources/court/rejected.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert lines[0] == [
        "source",
        "source_record_id",
        "batch",
        "row",
        "received_on",
        "reason",
        "problems",
    ]
    assert lines[1:] == [
        ["court", "c7", str(month["first"]), "8", "2026-06-29", "missing", "item_code: missing"]
    ]
    exported = site.events("admin.quality_rejected_export")
    assert exported[-1].detail["rows"] == [month["open"]]

    path = f"/admin/quality/rejected/{month['open']}/dismiss"
    unsaid = post(client, path, reason="  ", month="2026-06")
    assert unsaid.status_code == 302
    page = client.get(unsaid.headers["Location"]).get_data(as_text=True)
    assert "请说明不再重新报送的原因" in page
    closed = post(client, path, reason="法院已撤销该案件", month="2026-06")
    assert closed.status_code == 302
    page = client.get("/admin/quality/sources/court?month=2026-06").get_data(as_text=True)
    assert 'id="no-open"' in page
    assert "由 admin:court-clerk 关闭，原因：法院已撤销该案件" in page
    (event,) = site.events("quality.dismiss")
    assert event.actor == "admin:court-clerk" and event.detail["row"] == month["open"]
    again = client.get("/admin/quality/sources/court/rejected.csv").get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(again.lstrip("\ufeff"))))) == 1
    # The auditor reads but closes nothing.
    auditor = signed_in(site, "eyes")
    assert auditor.get("/admin/quality/sources/court").status_code == 200
    assert post(auditor, path, reason="x").status_code == 403


def test_the_credit_office_sets_the_targets_with_errors_said_per_field(
    site: AdminApp, month: dict[str, int]
) -> None:
    clerk = signed_in(site, "court-clerk")
    assert "数据合格率" in clerk.get("/admin/quality/targets").get_data(as_text=True)
    assert post(clerk, "/admin/quality/targets", qualified_rate="90").status_code == 403

    boss = signed_in(site, "boss")
    form = boss.get("/admin/quality/targets").get_data(as_text=True)
    assert (
        'name="qualified_rate" value="100"' in form and 'name="id_error_rate" value="0.01"' in form
    )
    wrong = post(
        boss,
        "/admin/quality/targets",
        qualified_rate="abc",
        on_time_rate="120",
        id_error_rate="0.5",
    )
    assert wrong.status_code == 422
    text = wrong.get_data(as_text=True)
    assert 'id="qualified_rate-error"' in text and 'id="on_time_rate-error"' in text
    assert 'id="id_error_rate-error"' not in text
    assert 'aria-describedby="qualified_rate-hint qualified_rate-error"' in text
    assert 'value="abc"' in text
    with site.session() as session:
        assert quality.targets(session) == quality.DEFAULT_TARGETS

    saved = post(
        boss, "/admin/quality/targets", qualified_rate="75", on_time_rate="75%", id_error_rate="20"
    )
    assert saved.status_code == 302
    with site.session() as session:
        assert quality.targets(session) == {
            "qualified_rate": 0.75,
            "on_time_rate": 0.75,
            "id_error_rate": 0.2,
        }
    assert {e.detail["target"] for e in site.events("quality.target")} == set(
        quality.DEFAULT_TARGETS
    )
    assert site.events("admin.quality_targets")[-1].actor == "admin:boss"
    # Against the lower targets the court meets every one.
    page = boss.get("/admin/quality?month=2026-06&lang=en").get_data(as_text=True)
    assert table_row(page, "source-court")[7] == "80.0%"
    assert 'id="missed-summary"' not in page


def test_the_dashboard_flags_a_missed_target_this_month(
    site: AdminApp, month: dict[str, int]
) -> None:
    boss = signed_in(site, "boss")
    page = boss.get("/admin/").get_data(as_text=True)
    flag = re.search(
        r'<p class="flash error" role="status" id="quality-flag">(.*?)</p>', page, re.S
    )
    assert flag is not None
    assert "本月 1 个数据来源未达到质量目标" in flag.group(1) and "市中级人民法院" in flag.group(1)
    assert 'href="/admin/quality"' in flag.group(1)
    english = boss.get("/admin/?lang=en").get_data(as_text=True)
    assert "1 source(s) missed a quality target this month" in english

    # A clerk of another source that missed nothing sees no flag.
    site.add_user("market-clerk", "clerk", source_code="market")
    market = signed_in(site, "market-clerk").get("/admin/").get_data(as_text=True)
    assert 'id="quality-flag"' not in market
    # Next month nothing is sent yet: nothing is missed.
    site.clock.advance(days=2)
    assert 'id="quality-flag"' not in boss.get("/admin/").get_data(as_text=True)
