"""The monthly report's admin pages (issue 13 §3): the platform admin generates, everyone entitled
reads the same figures on the page and in the CSV and XLSX, a data-source clerk sees only their own
department, the stored copy is checked against a fresh computation."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from governance.models import MonthlyReport
from points_engine.models import Record
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, post, signed_in
from tests.integration.test_reports import build_month

DECEMBER = dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC)  # 10:00 on 1 Dec in the city


@pytest.fixture
def admin(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as built:
        with built.session() as session:
            build_month(session, tmp_path / "city")
        built.clock.moment = DECEMBER
        built.add_user("boss", "platform_admin")
        built.add_user("aud", "auditor")
        built.add_user("cop", "clerk", source_code="police")
        yield built


def _cells(html: str, table: str) -> list[list[str]]:
    body = html.split(f'id="table-{table}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)
        ]
        for r in rows
    ]


def test_generate_read_and_download_the_same_figures(admin: AdminApp) -> None:
    from openpyxl import load_workbook

    boss = signed_in(admin, "boss")
    listing = boss.get("/admin/reports").get_data(as_text=True)
    assert 'id="month-2026-11"' in listing and "未生成" in listing
    refused = post(boss, "/admin/reports/generate", month="2026-12")
    assert refused.status_code == 302
    answer = post(boss, "/admin/reports/generate", month="2026-11")
    assert answer.headers["Location"].endswith("/admin/reports/2026-11")
    with admin.session() as session:
        rows = session.scalars(select(MonthlyReport)).all()
        assert [(r.month, r.generated_by) for r in rows] == [(dt.date(2026, 11, 1), "admin:boss")]
    assert [e.detail["month"] for e in admin.events("report.generate")] == ["2026-11"]

    page = boss.get("/admin/reports/2026-11").get_data(as_text=True)
    assert "2026 年 11 月信用信息归集与应用情况通报（全市）" in page
    assert 'id="check"' in page and "一致" in page
    quality = _cells(page, "quality")
    assert [r[0] for r in quality] == ["market 单位", "police 单位", "全市"]
    # police: 6 received, 4 accepted, 66.67% qualified, 3 timed, 2 on time, 66.67% on time
    assert quality[1][1:7] == ["6", "4", "66.67%", "3", "2", "66.67%"]
    assert _cells(page, "grades")[1][1:] == ["56.67", "C"]

    workbook = load_workbook(io.BytesIO(boss.get("/admin/reports/2026-11/export.xlsx").data))
    sheet = workbook["数据质量与及时性"]
    police = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == "police 单位")
    assert police[1:7] == (6, 4, pytest.approx(4 / 6), 3, 2, pytest.approx(2 / 3))
    csv = boss.get("/admin/reports/2026-11/export.csv")
    assert csv.headers["Content-Disposition"] == 'attachment; filename="report-2026-11-city.csv"'
    assert csv.data.startswith(b"\xef\xbb\xbf")
    assert "police 单位,6,4,66.67%,3,2,66.67%" in csv.data.decode("utf-8-sig")

    english = boss.get("/admin/reports/2026-11?lang=en").get_data(as_text=True)
    assert "Monthly report 2026-11: City" in english and "Qualified rate" in english
    assert '<html lang="en">' in english

    # A correction after generation: the check names what changed.
    with admin.session() as session:
        p2 = session.scalars(select(Record).where(Record.source_record_id == "p2")).one()
        p2.received_on = dt.date(2026, 10, 30)
    changed = boss.get("/admin/reports/2026-11").get_data(as_text=True)
    assert "departments[police].volume.penalty</code>: 3 → 2" in changed


def test_the_auditor_reads_and_the_clerk_sees_only_their_department(admin: AdminApp) -> None:
    auditor = signed_in(admin, "aud")
    assert auditor.get("/admin/reports/2026-11").status_code == 200
    assert "生成通报" not in auditor.get("/admin/reports").get_data(as_text=True)
    assert post(auditor, "/admin/reports/generate", month="2026-11").status_code == 403

    clerk = signed_in(admin, "cop")
    city = clerk.get("/admin/reports/2026-11")
    assert city.status_code == 302 and city.headers["Location"].endswith("/reports/2026-11/police")
    own = clerk.get("/admin/reports/2026-11/police").get_data(as_text=True)
    assert [r[0] for r in _cells(own, "quality")] == ["police 单位"]
    assert "market 单位" not in own and "table-scenarios" not in own
    assert clerk.get("/admin/reports/2026-11/market").status_code == 404
    assert clerk.get("/admin/reports/2026-11/market/export.csv").status_code == 404
    assert clerk.get("/admin/reports/2026-11/export.xlsx").status_code == 403
    csv = clerk.get("/admin/reports/2026-11/police/export.csv").data.decode("utf-8-sig")
    assert "police 单位" in csv and "market" not in csv
    listing = clerk.get("/admin/reports").get_data(as_text=True)
    assert (
        "/admin/reports/2026-11/police" in listing
        and 'href="/admin/reports/2026-11"' not in listing
    )
    assert post(clerk, "/admin/reports/generate", month="2026-11").status_code == 403


def test_odd_months_and_numbers_in_new_urls_are_not_found_never_a_500(admin: AdminApp) -> None:
    """The calendar's edges overflowed a month's bounds, and an id past the column's range the
    database driver: each is a page that does not exist."""
    auditor = signed_in(admin, "aud")
    for path in (
        "/admin/reports/0001-01",
        "/admin/reports/9999-12",
        "/admin/reports/0001-01/export.csv",
        "/admin/catalogue/99999999999999999999",
    ):
        assert auditor.get(path).status_code == 404, path
    for month in ("0001-01", "9999-12"):
        page = auditor.get(f"/admin/quality?month={month}")
        assert page.status_code == 200 and month in page.get_data(as_text=True)
