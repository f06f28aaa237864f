"""Data quality per source (issue 13 §2) in a real browser (Debian's Chromium), on SQLite and PostgreSQL.

The court's system sends three records through the records API, one with a wrong ID-number check
digit. The court's clerk signs in: the dashboard flags the missed target, the quality page shows the
court's row only (the market's page is not there for them), the court's page lists the refused row
with its problem; the clerk downloads the open rows as CSV, the court's system sends the corrected row
again, and the page shows it resolved by that batch. Every page, in Chinese and English, is axe-core
clean and fits 390 px (also at 200 % text size); nothing leaves loopback.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from admin import operations as admin_operations
from citycredit.cli.demo import ensure_reference_models, ensure_sources
from citycredit.core.clients import register_client
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.keys import current_signing_key
from points_engine.models import DataSource
from tests import factories
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import phone
from tests.browser.test_objections import PASSWORD, admin_sign_in, desk
from tests.browser.test_repairs import overflow
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import free_port, gunicorn, live_env


@dataclass
class QualityCity:
    url: str
    client_id: str
    client_secret: str
    today: dt.date

    def send(self, rows: list[dict[str, str]]) -> dict[str, Any]:
        """The court's system uploads records through the partner API."""
        token = httpx.post(
            self.url + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
        ).json()["access_token"]
        response = httpx.post(
            self.url + "/api/v1/records",
            json={"records": rows},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(params=BACKENDS)
def quality_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QualityCity]:
    """The demo's sources, catalogue and reference model; the court's API client; its clerk."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    env = live_env(db, tmp_path, port)
    settings = load_settings(env=env)
    with unit_of_work(make_session_factory(db.engine)) as session:
        ensure_sources(session)
        ensure_reference_models(session, actor="test")
        current_signing_key(session, settings.key_secret)
        court = session.scalar(select(DataSource).where(DataSource.code == "court"))
        assert court is not None
        issued = register_client(
            session,
            name="court system",
            kind="source",
            scopes=["records:write"],
            source_id=court.id,
            key_secret=settings.key_secret,
        )
        assert issued.secret is not None
        admin_operations.create_user(
            session,
            username="court-clerk",
            display_name="陈专员",
            password=PASSWORD,
            role="clerk",
            source_code="court",
            actor="test",
            now=utcnow(),
        )
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield QualityCity(
                url,
                issued.client.client_id,
                issued.secret,
                dt.datetime.now(settings.tz).date(),
            )
    finally:
        db.drop()


def court_row(ref: str, number: str, day: dt.date) -> dict[str, str]:
    return {
        "source": "court",
        "source_record_id": ref,
        "id_number": number,
        "item_code": "COURT_DISHONEST",
        "document_no": f"（{day.year}）鄂02执{ref}号",
        "occurred_on": day.isoformat(),
        "reported_on": day.isoformat(),
    }


def test_a_clerk_sees_the_refused_row_downloads_it_and_sees_it_resolved_once_resent(
    browser: Any, quality_city: QualityCity
) -> None:
    city = quality_city
    violations: list[str] = []
    too_wide: dict[str, int] = {}
    number = factories.id_number()
    wrong = number[:17] + ("1" if number[17] == "0" else "0")
    first = city.send(
        [
            court_row("q-1", factories.id_number(), city.today),
            court_row("q-2", factories.id_number(), city.today),
            court_row("q-3", wrong, city.today),
        ]
    )
    assert (first["inserted"], first["rejected"]) == (2, 1)

    # 1. The clerk at a desk: the dashboard flags the court's missed target and links the page.
    _context, page, outside, errors = desk(browser)
    admin_sign_in(page, city, "court-clerk")  # type: ignore[arg-type]  # needs .url only
    flag = page.locator("#quality-flag")
    expect(flag).to_contain_text("本月 1 个数据来源未达到质量目标")
    expect(flag).to_contain_text("市中级人民法院")
    violations += axe_violations(page)
    flag.get_by_role("link", name="查看数据质量").click()
    page.wait_for_url("**/admin/quality")
    court = page.locator("#source-court")
    expect(court).to_contain_text("66.7% 未达标")
    expect(page.locator("#source-market")).to_have_count(0)  # another source's row is not theirs
    violations += axe_violations(page)
    assert page.request.get(city.url + "/admin/quality/sources/market").status == 404

    # 2. The court's page: the refused row with its problem, a CSV of the open rows.
    court.get_by_role("link", name="市中级人民法院").click()
    page.wait_for_url(re.compile(r".*/admin/quality/sources/court\?month=\d{4}-\d{2}$"))
    refused = page.locator("#open-rows tbody tr")
    expect(refused).to_have_count(1)
    expect(refused.first).to_contain_text("q-3")
    expect(refused.first).to_contain_text("身份证号码错误")
    expect(refused.first).to_contain_text(f"#{first['batch_id']}")
    assert number not in page.content() and wrong not in page.content()
    violations += axe_violations(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="下载待处理拒收行（CSV）").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(r["source_record_id"], r["reason"], r["batch"]) for r in lines] == [
        ("q-3", "id_number", str(first["batch_id"]))
    ]
    assert wrong not in text

    # 3. The court corrects the row and sends it again: resolved by that batch.
    again = city.send([court_row("q-3", number, city.today)])
    assert (again["inserted"], again["rejected"]) == (1, 0)
    page.reload()
    expect(page.locator("#no-open")).to_be_visible()
    resolved = page.locator("#resolved-rows tbody tr")
    expect(resolved).to_have_count(1)
    expect(resolved.first).to_contain_text(f"已在批次 #{again['batch_id']} 重新报送")
    violations += axe_violations(page)
    page.goto(page.url + "&lang=en")
    expect(resolved.first).to_contain_text(f"re-sent in batch #{again['batch_id']}")
    expect(resolved.first).to_contain_text("invalid ID number")
    violations += axe_violations(page)

    # 4. On a phone, both languages: every quality page fits 390 px.
    _phone, small, outside_phone, errors_phone = phone(browser)
    admin_sign_in(small, city, "court-clerk")  # type: ignore[arg-type]
    for path in ("/admin/quality", "/admin/quality/sources/court", "/admin/quality/targets"):
        for lang in ("zh", "en"):
            small.goto(f"{city.url}{path}?lang={lang}")
            expect(small.locator("html")).to_have_attribute(
                "lang", "en" if lang == "en" else "zh-CN"
            )
            violations += axe_violations(small)
            too_wide.update(overflow(small, f"{path} ({lang})"))
    expect(small.locator("#qualified_rate")).to_have_count(0)  # a clerk reads the targets only

    assert violations == []
    assert too_wide == {}
    assert outside == [] and outside_phone == []
    assert errors == [] and errors_phone == []
