"""The monthly report (通报, issue 13 §3): a month of collection, objections, repairs and verifications
made through the real operations; the report's figures against values worked out here by hand; the
stored copy and its check; the job on the 1st, once; CSV and XLSX with the same numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citizen import operations as objections
from citizen import repairs
from citizen.operations import ObjectionTerms
from citycredit.core.actors import SYSTEM, Actor, NotPermitted
from citycredit.core.clients import register_client
from citycredit.core.config import Settings, load_settings
from citycredit.core.jobs import JobContext, registered_jobs
from credit_codes import operations as codes
from governance import reports
from governance.models import MonthlyReport
from points_engine import batches, catalogue
from points_engine.models import Citizen, DataSource, Record
from points_engine.operations import give_consent
from scenarios.demo import ensure_demo_scenarios
from tests import factories
from tests.conftest import KEY
from tests.databases import ScratchDatabase

MONTH = dt.date(2026, 11, 1)
REVIEWER = Actor("admin:rev")
SECOND = Actor("admin:boss")
# Nov 2026 has no public holiday: 1 Nov is a Sunday, so the 6th is a Friday, the 9th a Monday.
NUMBERS = {name: factories.id_number(900_000 + i) for i, name in enumerate("ABCDE")}


def _at(day: int, hour: int = 3) -> dt.datetime:
    """A moment on a November day, 11:00 city time (UTC+8)."""
    return dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)


def _row(source: str, ref: str, who: str, item: str, occurred: str, **extra: str) -> dict[str, str]:
    return {
        "source": source,
        "source_record_id": ref,
        "id_number": NUMBERS.get(who, who),
        "item_code": item,
        "document_no": extra.get("document_no", f"文书〔2026〕{ref}号"),
        "occurred_on": occurred,
        "reported_on": occurred,
        "status": "active",
    }


def _ingest(session: Session, rows: list[dict[str, str]], today: dt.date) -> None:
    batches.ingest(
        session,
        list(enumerate(rows, start=2)),
        origin=f"t-{today}",
        fmt="json",
        key=KEY,
        today=today,
    )


def _settings(tmp: Path) -> Settings:
    return load_settings(env={"CITYCREDIT_INSTANCE_DIR": str(tmp)}, environment="development")


def _record(session: Session, ref: str) -> Record:
    return session.scalars(select(Record).where(Record.source_record_id == ref)).one()


def _citizen(session: Session, record: Record) -> Citizen:
    person = session.get(Citizen, record.citizen_id)
    assert person is not None
    return person


@dataclass
class Month:
    settings: Settings
    police: DataSource
    market: DataSource


def build_month(session: Session, tmp: Path) -> Month:
    settings = _settings(tmp)
    catalogue.adopt_reference(session, actor=SYSTEM)
    text = (
        resources.files("points_engine") / "models" / "reference" / "itemised-base1000.yaml"
    ).read_text("utf-8")
    factories.published(session, text)
    police = factories.source(session, "police")
    market = factories.source(session, "market")
    # Batch 1 on Tue 10 Nov. Deadline 3 working days from the day it happened.
    _ingest(
        session,
        [
            _row("police", "p1", "A", "TRAFFIC_PENALTY", "2026-11-06"),  # due Wed 11: on time
            _row("police", "p2", "B", "DRUNK_DRIVING", "2026-11-02"),  # due Thu 5: late
            _row("police", "p3", "110101199003071234", "TRAFFIC_PENALTY", "2026-11-06"),  # bad ID
            _row("police", "p4", "E", "NOT_IN_THE_CATALOGUE", "2026-11-06"),  # refused
            _row("market", "m1", "A", "LICENCE_GRANTED", "2026-11-09"),  # due Thu 12: on time
            _row("market", "m2", "C", "UTILITY_ARREARS", "2026-11-09"),
            _row("market", "m3", "D", "VOLUNTEER_SERVICE", "2026-11-09"),
        ],
        dt.date(2026, 11, 10),
    )
    # Batch 2 on Fri 20 Nov: p4 corrected and resent (lands, resolves its rejection), p1 again
    # unchanged (a duplicate), m1 with a corrected document number (a correction).
    _ingest(
        session,
        [
            _row("police", "p4", "E", "TRAFFIC_PENALTY", "2026-11-19"),  # due Tue 24: on time
            _row("police", "p1", "A", "TRAFFIC_PENALTY", "2026-11-06"),
            _row(
                "market", "m1", "A", "LICENCE_GRANTED", "2026-11-09", document_no="更正〔2026〕1号"
            ),
        ],
        dt.date(2026, 11, 20),
    )
    # A record received in October counts in no November figure.
    _ingest(
        session, [_row("police", "o1", "D", "TRAFFIC_PENALTY", "2026-10-28")], dt.date(2026, 10, 29)
    )

    # Objections on police records: on time, late, and one still open past its deadline.
    p1, p2, p4 = (_record(session, ref) for ref in ("p1", "p2", "p4"))
    first = objections.file_objection(
        session,
        _citizen(session, p1),
        p1,
        "这条记录不是我的，请核实当事人身份。",
        today=dt.date(2026, 11, 11),
        now=_at(11),
    )  # 20 working days: deadline 9 Dec
    second = objections.file_objection(
        session,
        _citizen(session, p2),
        p2,
        "该处罚决定已被复议机关撤销。",
        today=dt.date(2026, 11, 11),
        now=_at(11),
        terms=ObjectionTerms(days=2),
    )  # deadline Fri 13 Nov
    objections.file_objection(
        session,
        _citizen(session, p4),
        p4,
        "违法发生日期有误，请来源单位核实。",
        today=dt.date(2026, 11, 20),
        now=_at(20),
        terms=ObjectionTerms(days=2),
    )  # deadline Tue 24 Nov, never decided: overdue and open at the month's end
    for case, day in ((first, 25), (second, 26)):
        objections.forward(session, case, REVIEWER, _at(day, 1))
        objections.record_source_answer(session, case, REVIEWER, "经核实记录无误。", _at(day, 2))
        objections.decide(
            session, case, SECOND, False, "记录无误。", now=_at(day), today=dt.date(2026, 11, day)
        )
    # A repair of a market record, decided within 20 working days.
    m2 = _record(session, "m2")
    application = repairs.apply(
        session,
        _citizen(session, m2),
        m2,
        "欠缴的水电燃气费已全部结清，附缴费凭证。",
        [],
        today=dt.date(2026, 11, 12),
        now=_at(12),
    )
    repairs.propose(session, application, REVIEWER, True, "已结清。", now=_at(16, 1))
    repairs.confirm(
        session, application, SECOND, True, "", now=_at(16), today=dt.date(2026, 11, 16)
    )

    # Application cases: D (volunteer, base 1000) checked at the library, redeemed at a power-bank kiosk.
    ensure_demo_scenarios(session)
    d = _citizen(session, _record(session, "m3"))
    give_consent(session, d, channel="app", as_of=dt.date(2026, 11, 16))
    desk = register_client(
        session,
        name="图书馆借阅台",
        kind="venue",
        scopes=["verify", "redeem"],
        key_secret=settings.key_secret,
    ).client
    now = _at(17)

    def code(at: dt.datetime) -> str:
        return codes.issue_credit_code(session, settings, d, now=at, actor="app").token

    codes.verify_presentation(session, settings, desk, code(now), "library-deposit-free", now=now)
    codes.redeem(session, settings, desk, code(now), "power-bank-free", now=now)
    codes.redeem(session, settings, desk, code(_at(18)), "power-bank-free", now=_at(18))
    return Month(settings, police, market)


def test_the_months_figures_equal_those_worked_out_by_hand(
    session: Session, tmp_path: Path
) -> None:
    m = build_month(session, tmp_path)
    report = reports.build(session, MONTH, tz=m.settings.tz)
    police, market = report.department("police"), report.department("market")
    assert police is not None and market is not None

    # Collection volume: new records first received in November, by catalogue kind.
    assert {k: n for k, n in police.volume.items() if n} == {"penalty": 3}  # p1, p2, p4
    assert {k: n for k, n in market.volume.items() if n} == {
        "licensing": 1,
        "public_service": 1,
        "social": 1,
    }
    assert report.city.volume_total == 6

    # Police: 4 + 2 rows received, 2 refused (a bad ID number, an uncatalogued item).
    q = police.quality
    assert (q.received, q.rejected, q.accepted, q.duplicates) == (6, 2, 4, 1)
    assert q.rejected_by_reason == {"id_number": 1, "uncatalogued": 1}
    assert (q.timed, q.on_time) == (3, 2)  # p1 and p4 on time, p2 late
    assert q.id_number_errors == 1 and q.open_rejections == 1  # p4's was resolved by the resend
    assert q.qualified_rate == pytest.approx(4 / 6)
    assert q.on_time_rate == pytest.approx(2 / 3)
    assert police.score == round(50 * 4 / 6 + 50 * 2 / 3 - 10, 2)  # 56.67: ID errors above 0.01%
    assert police.grade == "C"
    mq = market.quality
    assert (mq.received, mq.rejected, mq.corrections, mq.timed, mq.on_time) == (4, 0, 1, 3, 3)
    assert (market.score, market.grade) == (100.0, "A")
    city = report.city
    assert (city.quality.received, city.quality.rejected) == (10, 2)
    assert city.score == round(50 * 8 / 10 + 50 * 5 / 6 - 10, 2) and city.grade == "C"

    # Objections (police): one decided on time, one late, one overdue and still open.
    assert (police.objections.decided, police.objections.on_time) == (2, 1)
    assert (police.objections.late, police.objections.overdue_open) == (1, 1)
    assert (market.repairs.decided, market.repairs.on_time, market.repairs.overdue_open) == (
        1,
        1,
        0,
    )
    assert (police.repairs.decided, market.objections.decided) == (0, 0)
    assert (city.objections.decided, city.repairs.decided) == (2, 1)

    # Application cases: one check at the library, two power-bank redemptions (each verifies too).
    usage = {u.key: (u.verifications, u.eligible, u.redemptions) for u in report.scenarios}
    assert usage == {"library-deposit-free": (1, 1, 0), "power-bank-free": (2, 2, 2)}
    by_category = {u.key: (u.verifications, u.redemptions) for u in report.categories}
    assert by_category == {"library": (1, 0), "rental": (2, 2)}

    # October is its own month: only the record received then.
    october = reports.build(session, dt.date(2026, 10, 1), tz=m.settings.tz)
    assert october.city.volume_total == 1 and october.scenarios == []


def test_stored_copy_its_check_and_a_late_correction(session: Session, tmp_path: Path) -> None:
    m = build_month(session, tmp_path)
    with pytest.raises(ValueError, match="not ended"):
        reports.generate(
            session, MONTH, tz=m.settings.tz, actor=SYSTEM, today=dt.date(2026, 11, 30)
        )
    with pytest.raises(NotPermitted):
        reports.generate(
            session,
            MONTH,
            tz=m.settings.tz,
            actor=Actor("admin:aud", read_only=True),
            today=dt.date(2026, 12, 1),
        )
    row = reports.generate(
        session, MONTH, tz=m.settings.tz, actor=Actor("admin:boss"), today=dt.date(2026, 12, 1)
    )
    assert row.generated_by == "admin:boss"
    assert row.sha256 == reports.digest(row.figures)
    assert reports.check(session, row, tz=m.settings.tz).same
    # Read back from the database (JSONB reorders keys): still the same hash and figures.
    session.expire(row)
    assert reports.digest(row.figures) == row.sha256
    again = reports.from_dict(row.figures)
    assert reports.to_dict(again) == row.figures

    # A late row received in December for November does not change November (received in Dec)...
    _ingest(
        session, [_row("market", "m9", "B", "LICENCE_GRANTED", "2026-11-30")], dt.date(2026, 12, 2)
    )
    assert reports.check(session, row, tz=m.settings.tz).same
    # ...but a correction to November's data does (an operator puts p2's received day right):
    # the check names what changed.
    p2 = _record(session, "p2")
    p2.received_on = dt.date(2026, 10, 30)
    session.flush()
    result = reports.check(session, row, tz=m.settings.tz)
    assert not result.same
    paths = {c.path: (c.stored, c.fresh) for c in result.changes}
    assert paths["departments[police].volume.penalty"] == (3, 2)
    assert paths["city.volume.penalty"] == (3, 2)
    # The clerk's view compares only their department.
    assert reports.check(session, row, tz=m.settings.tz, department="market").same


def test_the_job_makes_last_months_report_on_the_1st_once(session: Session, tmp_path: Path) -> None:
    m = build_month(session, tmp_path)
    spec = next(j for j in registered_jobs() if j.id == "governance.monthly_report")
    assert spec.trigger == "cron"
    trigger = CronTrigger(**spec.options, timezone=m.settings.tz)
    fires = [dt.datetime(2026, 11, 20, tzinfo=m.settings.tz)]
    for _ in range(3):
        fires.append(trigger.get_next_fire_time(None, fires[-1] + dt.timedelta(seconds=1)))
    # On the 1st in city time, hourly (the re-runs find the month stored), then next month.
    assert [f"{f:%m-%d %H:%M}" for f in fires[1:]] == ["12-01 00:10", "12-01 01:10", "12-01 02:10"]
    last_of_day = trigger.get_next_fire_time(
        None, dt.datetime(2026, 12, 1, 23, 11, tzinfo=m.settings.tz)
    )
    assert f"{last_of_day:%Y-%m-%d %H:%M}" == "2027-01-01 00:10"

    class On(JobContext):
        def today(self) -> dt.date:
            return dt.date(2026, 12, 1)

    ctx = On(m.settings)
    spec.func(session, ctx)
    spec.func(session, ctx)  # the hourly re-run of the 1st
    rows = session.scalars(select(MonthlyReport)).all()
    assert [(r.month, r.generated_by) for r in rows] == [(MONTH, "scheduler")]
    assert rows[0].figures["city"]["quality"]["received"] == 10
    assert session.scalar(select(func.count()).select_from(MonthlyReport)) == 1


def _csv_sections(data: bytes) -> dict[str, list[list[str]]]:
    assert data.startswith(b"\xef\xbb\xbf")
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))):
        if len(row) == 1 and row[0].startswith("【"):
            current = sections.setdefault(row[0].strip("【】"), [])
        elif current is not None and row and len(row) > 1:
            current.append(row)
    return sections


def _number(text: str) -> Any:
    if text.endswith("%"):
        return float(text[:-1]) / 100
    if text == "—":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def test_csv_and_xlsx_carry_the_same_numbers(session: Session, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    m = build_month(session, tmp_path)
    m.market.name_zh = '=HYPERLINK("http://evil")'
    session.flush()
    report = reports.build(session, MONTH, tz=m.settings.tz)
    sections = _csv_sections(reports.to_csv(report, lang="zh"))
    book = load_workbook(io.BytesIO(reports.to_xlsx(report, lang="zh")))
    tables = reports.tables(report, lang="zh")
    assert list(sections) == [t.zh for t in tables]
    assert book.sheetnames == ["概要", *(t.zh for t in tables)]
    for table in tables:
        sheet = book[table.zh]
        header, *rows = [list(r) for r in sheet.iter_rows(values_only=True) if any(r)]
        assert header == [c.zh for c in table.columns]
        assert all(cell.font.bold for cell in sheet[1])
        csv_rows = sections[table.zh][1:]
        data_rows = rows[: len(table.rows)]
        assert len(data_rows) == len(csv_rows) == len(table.rows)
        for xlsx_row, csv_row, values in zip(data_rows, csv_rows, table.rows, strict=True):
            for x, c, v, col in zip(xlsx_row, csv_row, values, table.columns, strict=True):
                if col.kind == "text":
                    continue
                if v is None:
                    assert x is None and c == "—"
                    continue
                assert isinstance(x, int | float) and not isinstance(x, bool)  # numbers, not text
                assert x == pytest.approx(v, rel=1e-12)
                assert _number(c) == pytest.approx(x, abs=5e-7 if col.kind == "rate4" else 5e-5)
    quality = book["数据质量与及时性"]
    rate_cells = [row[3] for row in quality.iter_rows(min_row=2) if row[3].value is not None]
    assert rate_cells and all(c.number_format == "0.00%" for c in rate_cells)
    # The formula-looking department name is text in both files.
    assert "'=HYPERLINK" in reports.to_csv(report).decode("utf-8-sig")
    names = [r[0] for r in book["数据质量评级"].iter_rows(values_only=True)]
    assert '\'=HYPERLINK("http://evil")' in names
    assert book["数据质量评级"]["A2"].data_type == "s"
    # A department's report holds only that department, and no application cases.
    own = _csv_sections(reports.to_csv(report, department="police"))
    assert "应用案例（按场景）" not in own
    assert [r[0] for r in own["数据质量评级"][1:]] == ["police 单位"]


def test_the_command_writes_a_csv_and_an_xlsx_per_report(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    from tests.integration.test_cli import run

    with Session(fresh_database.engine) as session:
        build_month(session, tmp_path / "city")
        session.commit()
    out = tmp_path / "out"
    made = run(fresh_database, tmp_path, "reports", "month", "2026-11", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        f"report-2026-11-{who}.{ext}"
        for who in ("city", "market", "police")
        for ext in ("csv", "xlsx")
    ]
    police = (out / "report-2026-11-police.csv").read_bytes().decode("utf-8-sig")
    assert "police 单位,6,4,66.67%,3,2,66.67%,1,16.6667%,0,1,2,1" in police
    assert "market" not in police
    book = load_workbook(out / "report-2026-11-city.xlsx")
    grades = list(book["数据质量评级"].iter_rows(min_row=2, max_row=4, values_only=True))
    assert grades == [
        ("market 单位", 100.0, "A"),
        ("police 单位", 56.67, "C"),
        ("全市", 71.67, "C"),
    ]
    again = run(fresh_database, tmp_path, "reports", "month", "2026-11", "--out", str(out))
    assert again.returncode == 0
    with Session(fresh_database.engine) as session:
        assert session.scalar(select(func.count()).select_from(MonthlyReport)) == 1
    early = run(fresh_database, tmp_path, "reports", "month", "2099-01")
    assert early.returncode == 1 and "has not ended" in early.stderr
    # The calendar's edges are no month a report is about: a usage error, not a traceback.
    for odd in ("0001-01", "9999-12"):
        edge = run(fresh_database, tmp_path, "reports", "month", odd)
        assert edge.returncode == 2 and "not a month" in edge.stderr, edge.stderr
        assert "Traceback" not in edge.stderr
