"""The printable report says what the records page says (issue 12), through the Flask test client, on
SQLite and PostgreSQL: the same records in the same order, each with its points, standing, reasons and
last counting day; every time in the city's time; the scoring model by its name, never the engine's
identifier. The clock stands at 2026-06-30 10:00 in the city (START); see ``citizen_support``."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.databases import ScratchDatabase
from tests.integration.citizen_support import CitizenApp, citizen_app, sign_in, text
from tests.integration.test_citizen_pages import consented, file_objection, venue_checks

ENGINE_ID = re.compile(r"[a-z][\w-]*@v\d+")
UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Any:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def _field(chunk: str, name: str) -> str:
    found = re.search(rf'class="[^"]*\b{name}\b[^"]*">(.*?)</', chunk, re.DOTALL)
    assert found, (name, chunk)
    return html.unescape(found.group(1)).strip()


def _line(chunk: str) -> tuple[str, str, str, str, str, str]:
    """(name, date, standing, points, last counting day, reasons) as the reader sees them."""
    until = re.search(r"(计分至 \S+（含）|counts until \S+ \(inclusive\))", chunk)
    reasons = re.search(r'<span class="hint">(.*?)</span>', chunk, re.DOTALL)
    return (
        _field(chunk, "rec-name"),
        _field(chunk, "rec-date"),
        _field(chunk, "rec-status"),
        _field(chunk, "rec-points"),
        until.group(1) if until else "",
        html.unescape(reasons.group(1)) if reasons else "",
    )


def records_page(client: FlaskClient, lang: str = "zh") -> list[tuple[int, tuple[str, ...]]]:
    page = text(client.get(f"/me/records?lang={lang}"))
    return [
        (int(m.group(1)), _line(m.group(2)))
        for m in re.finditer(r'<li id="record-(\d+)">(.*?)</li>', page, re.DOTALL)
    ]


def report_rows(client: FlaskClient, lang: str = "zh") -> list[tuple[int, tuple[str, ...]]]:
    page = text(client.get(f"/me/report?lang={lang}"))
    return [
        (int(m.group(1)), _line(m.group(2)))
        for m in re.finditer(r'<tr id="report-record-(\d+)">(.*?)</tr>', page, re.DOTALL)
    ]


def test_the_report_lists_every_record_exactly_as_the_records_page_does(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = consented(city, alice)
    file_objection(client, alice.records["fine"], "我当天不在本市，处罚对象有误。")
    venue_checks(city, alice)
    fine, award, old = (alice.records[k] for k in ("fine", "award", "old_award"))

    for lang in ("zh", "en"):
        assert report_rows(client, lang) == records_page(client, lang)
    # What they agree on: what counts first, newest first; the points; the standing and why.
    assert records_page(client) == [
        (award, ("奖", "2026-06-10", "计分中", "+10", "计分至 2027-06-09（含）", "")),
        (
            fine,
            (
                "罚",
                "2026-03-01",
                "异议处理中",
                "+0",  # suspended while the objection is open
                "计分至 2027-02-28（含）",
                "异议处理中，暂停扣分",
            ),
        ),
        (
            old,
            ("奖", "2025-03-01", "不计分", "+0", "计分至 2026-02-28（含）", "已过有效期，不再计分"),
        ),
    ]
    assert [line[1][2:] for line in report_rows(client, "en")] == [
        ("counting", "+10", "counts until 2027-06-09 (inclusive)", ""),
        ("under objection", "+0", "counts until 2027-02-28 (inclusive)", "under objection: deduction suspended"),
        ("not counting", "+0", "counts until 2026-02-28 (inclusive)", "past its validity period"),
    ]  # fmt: skip

    # The grouping is said once, above the lists, on both.
    sentence = "计分的记录在前，不计分的（已过有效期、异议处理中暂停扣分、已撤销等）在后"
    records = text(client.get("/me/records?lang=zh"))
    report = text(client.get("/me/report?lang=zh"))
    for page in (records, report):
        assert sentence in page
        assert page.index("计分的记录 (1)") < page.index("不计分的记录 (2)")

    # Every time in the city's time (the check, the objection and the report at 10:00 on 06-30).
    assert not UTC_STAMP.search(report), UTC_STAMP.search(report)
    assert '<span id="produced-at">2026-06-30 10:00</span>' in report
    checks = re.search(r'<ul id="report-checks">(.*?)</ul>', report, re.DOTALL)
    assert checks and "2026-06-30 10:00 黄石港区图书馆 — 信易阅·免押金借书" in checks.group(1)
    objections = re.search(r'<ul id="report-objections">(.*?)</ul>', report, re.DOTALL)
    assert objections and "2026-06-30 10:00 待处理" in objections.group(1)
    assert "2026-06-30 10:00" in text(client.get("/me/checks"))  # the check as that page shows it


def test_no_citizen_page_shows_the_engines_identifier_only_the_models_name(
    city: CitizenApp,
) -> None:
    client = consented(city, city.seed().alice)
    for path in ("/me/", "/me/records", "/me/report", "/me/data", "/me/benefits", "/me/checks"):
        for lang in ("zh", "en"):
            page = text(client.get(f"{path}?lang={lang}"))
            assert not ENGINE_ID.search(page), (path, lang, ENGINE_ID.search(page))
    for path in ("/me/", "/me/report"):
        zh = text(client.get(f"{path}?lang=zh"))
        en = text(client.get(f"{path}?lang=en"))
        assert re.search(r'id="model-name">评分规则：测试模型（第 1 版） ·', zh), path
        assert re.search(r'id="model-name">Scoring rules: Test model \(version 1\) ·', en), path


def test_without_consent_the_report_lists_the_records_as_not_scored(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    sign_in(client, alice.number)
    report = text(client.get("/me/report?lang=zh"))
    assert "未授权评分，无信用分。" in report and "记录 (3)" in report
    rows = re.findall(
        r'<tr id="report-record-(\d+)">.*?<span class="rec-date">([\d-]+)</span>.*?'
        r'<span class="badge rec-status">(.*?)</span>',
        report,
        re.DOTALL,
    )
    assert rows == [
        (str(alice.records["award"]), "2026-06-10", "未评分"),
        (str(alice.records["fine"]), "2026-03-01", "未评分"),
        (str(alice.records["old_award"]), "2025-03-01", "未评分"),
    ]
    assert "有效" not in report and "rec-points" not in report


def test_after_asking_for_a_code_the_code_field_has_the_focus(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = city.client()
    form = text(client.get("/me/login"))
    assert "autofocus" not in form  # nothing jumps on arrival
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    sent = text(
        client.post("/me/login", data={"id_number": alice.number, "csrf_token": token.group(1)})
    )
    fields = re.findall(r"<input [^>]*>", sent)
    focused = [f for f in fields if re.search(r"\bautofocus\b", f)]
    assert len(focused) == 1 and 'id="code"' in focused[0], fields
