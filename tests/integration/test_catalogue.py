"""The public credit information catalogue (issue 13 §1): versions with four eyes and their diff, the
admin's 目录管理 pages, ingest against the published version, non-scoring records shown by their
catalogue names, and ``GET /api/v1/catalogue``. Both databases."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from citycredit.cli.demo import ensure_reference_models, ensure_sources
from citycredit.core.actors import SYSTEM, Actor, NotPermitted
from points_engine import catalogue, operations
from points_engine.explain_text import render_explanation
from points_engine.ingest import finish_batch, ingest_rows, start_batch
from points_engine.models import CatalogueStatus, CatalogueVersion, Record
from points_engine.queries import current_snapshot, explain
from tests import factories
from tests.conftest import KEY
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, csrf, post, signed_in
from tests.integration.citizen_support import CitizenApp, citizen_app, sign_in
from tests.integration.test_pipeline import bearer, client_token

TODAY = dt.date(2026, 6, 30)  # the admin_support clock's date in the city
OFFICE_A = Actor("admin:boss", can_publish=True)
OFFICE_B = Actor("admin:boss2", can_publish=True)


def _reference_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(catalogue.reference_text())))


def _csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=catalogue.COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _changed(**by_code: dict[str, str]) -> str:
    """The reference catalogue with some entries' columns changed (None as a value: entry removed)."""
    rows = []
    for row in _reference_rows():
        change = by_code.get(row["code"], {})
        if change is None:
            continue
        rows.append({**row, **change})
    return _csv(rows)


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        with web.session() as session:
            ensure_sources(session)
            ensure_reference_models(session, actor="test")
        web.add_user("boss", "platform_admin")
        web.add_user("boss2", "platform_admin")
        web.add_user("audit1", "auditor")
        web.add_user("rev1", "reviewer")
        web.add_user("clerk-market", "clerk", source_code="market")
        yield web


# --- the workflow ----------------------------------------------------------------------------------


def test_a_version_is_published_by_another_person_and_supersedes_the_last(site: AdminApp) -> None:
    text = _changed(
        LICENCE_GRANTED={"deadline_days": "5", "reporters": "market"},
        ADMIN_RULING=None,
    )
    text += "NEW_ENTRY,inspection,新条目,New entry,《条例》,,,3,yes,\n"
    with site.session() as session:
        draft = catalogue.create_draft(session, text, actor=OFFICE_A, note="v2")
        catalogue.submit(session, draft, actor=OFFICE_A)
        # Four eyes: the author cannot publish nor reject it.
        with pytest.raises(NotPermitted, match="four eyes"):
            catalogue.publish(session, draft, actor=OFFICE_A)
        with pytest.raises(NotPermitted, match="four eyes"):
            catalogue.reject(session, draft, actor=OFFICE_A, reason="no")
        # An auditor-like reader cannot either.
        with pytest.raises(NotPermitted):
            catalogue.publish(session, draft, actor=Actor("admin:audit1", read_only=True))
        catalogue.publish(session, draft, actor=OFFICE_B)
        assert draft.status == CatalogueStatus.PUBLISHED and draft.decided_by == "admin:boss2"
        first = catalogue.find_version(session, 1)
        assert first.status == CatalogueStatus.SUPERSEDED
        changes = {
            c.code: (c.what, c.fields)
            for c in catalogue.diff(catalogue.entries_of(first), catalogue.entries_of(draft))
        }
        assert changes == {
            "ADMIN_RULING": ("removed", ()),
            "LICENCE_GRANTED": ("changed", ("reporters", "deadline_days")),
            "NEW_ENTRY": ("added", ()),
        }
        assert catalogue.current_catalogue(session).version == 2  # type: ignore[union-attr]
        # The new entry took the defaults: public within 7 working days.
        new = catalogue.current_catalogue(session).entries["NEW_ENTRY"]  # type: ignore[union-attr]
        assert (new.public, new.publish_days, new.deadline_days) == (True, 7, 3)


def test_a_version_without_an_entry_the_published_model_scores_is_not_published(
    site: AdminApp,
) -> None:
    with site.session() as session:
        draft = catalogue.create_draft(session, _changed(COURT_DISHONEST=None), actor=OFFICE_A)
        catalogue.submit(session, draft, actor=OFFICE_A)
        with pytest.raises(catalogue.CatalogueError, match="COURT_DISHONEST"):
            catalogue.publish(session, draft, actor=OFFICE_B)
    with site.session() as session:
        assert catalogue.current_catalogue(session).version == 1  # type: ignore[union-attr]


# --- the admin's pages -----------------------------------------------------------------------------


def upload(client: FlaskClient, text: str | bytes, note: str = "", name: str = "c.csv") -> Any:
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        "/admin/catalogue/new",
        data={
            "file": (io.BytesIO(data), name),
            "note": note,
            "csrf_token": csrf(client, "/admin/catalogue/new"),
        },
        content_type="multipart/form-data",
    )


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return str(response.get_data(as_text=True))


def count_versions(site: AdminApp) -> int:
    with site.session() as session:
        return session.scalar(select(func.count()).select_from(CatalogueVersion)) or 0


def test_a_file_with_problems_lists_each_by_line_and_column_and_stores_nothing(
    site: AdminApp,
) -> None:
    client = signed_in(site, "boss")
    rows = _reference_rows()
    rows[2]["kind"] = "gossip"  # line 4
    rows[5]["deadline_days"] = "soon"  # line 7
    rows[6]["code"] = rows[0]["code"]  # line 8: twice
    answer = upload(client, _csv(rows), name="bad.csv")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "文件有 3 处问题，未保存任何内容" in body
    table = body.split('id="upload-problems"', 1)[1].split("</table>", 1)[0]
    lines = [cell.split("</td>")[0] for cell in table.split('<td class="num">')[1:]]
    assert lines == ["4", "7", "8"]
    assert "<code>kind</code>" in table and "<code>deadline_days</code>" in table
    assert (
        "须为以下之一：licensing, penalty" in table
        and "须为整数个工作日，而不是 &#39;soon&#39;" in table
    )
    assert "出现了两次" in table
    assert 'aria-invalid="true"' in body and 'role="alert"' in body
    assert count_versions(site) == 1
    refused = site.events("catalogue.upload_refused")
    assert refused and refused[-1].actor == "admin:boss"

    not_utf8 = upload(client, "code,kind\n许可,x\n".encode("gb18030"))
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.get_data(as_text=True)
    assert count_versions(site) == 1


def test_upload_submit_and_publish_by_another_admin_in_the_pages(site: AdminApp) -> None:
    boss = signed_in(site, "boss")
    answer = upload(
        boss,
        _changed(LICENCE_GRANTED={"reporters": "market", "publish_days": "5"}),
        note="许可由市场监管局报送",
    )
    assert answer.status_code == 302 and answer.location.endswith("/admin/catalogue/2")
    draft_page = page(boss, "/admin/catalogue/2")
    assert "草稿" in draft_page and "提交审核" in draft_page
    # The diff against version 1 names the changed columns.
    diff = draft_page.split('id="catalogue-diff"', 1)[1].split("</table>", 1)[0]
    assert "LICENCE_GRANTED" in diff and "报送单位" in diff and "公示时限" in diff
    assert "ADMIN_PENALTY" not in diff

    assert post(boss, "/admin/catalogue/2/submit").status_code == 302
    refused = post(boss, "/admin/catalogue/2/publish")
    assert refused.status_code == 302
    after = page(boss, "/admin/catalogue/2")
    assert "四眼原则" in after and "待审核" in after
    assert site.events("catalogue.four_eyes_refused")

    boss2 = signed_in(site, "boss2")
    assert post(boss2, "/admin/catalogue/2/publish").status_code == 302
    published = page(boss2, "/admin/catalogue/2")
    assert "已发布（现行）" in published
    with site.session() as session:
        assert catalogue.find_version(session, 2).decided_by == "admin:boss2"
        assert catalogue.find_version(session, 1).status == CatalogueStatus.SUPERSEDED
    listing = page(boss2, "/admin/catalogue")
    current = listing.split('id="catalogue-v2"', 1)[1].split("</tr>", 1)[0]
    assert 'class="current"' in listing.split('id="catalogue-v2"', 1)[1][:20]
    assert (
        "admin:boss2" in current and "admin:boss" in current and "许可由市场监管局报送" in current
    )
    assert "已被替代" in listing.split('id="catalogue-v1"', 1)[1].split("</tr>", 1)[0]
    actions = [e.action for e in site.events() if e.action.startswith("catalogue.")]
    assert actions[-3:] == ["catalogue.submit", "catalogue.four_eyes_refused", "catalogue.publish"]
    assert {e.actor for e in site.events("catalogue.publish")} >= {"admin:boss2"}

    # Entries grouped by kind, the administrative kinds first, with reporters and scoring.
    entries = page(boss2, "/admin/catalogue/2")
    kinds = [part.split('"', 1)[0] for part in entries.split('id="kind-')[1:]]
    assert kinds[:2] == ["licensing", "penalty"] and kinds.index("judicial") > kinds.index("award")
    licence = entries.split('id="entry-LICENCE_GRANTED"', 1)[1].split("</tr>", 1)[0]
    assert (
        "<code>market</code>" in licence and "不计分" in licence and "5 个工作日内公示" in licence
    )
    court = entries.split('id="entry-COURT_DISHONEST"', 1)[1].split("</tr>", 1)[0]
    assert "计分项" in court and "任何来源" in court


def test_a_reviewer_rejects_with_a_reason_and_a_reason_is_required(site: AdminApp) -> None:
    boss = signed_in(site, "boss")
    upload(boss, _changed(LICENCE_GRANTED={"deadline_days": "9"}))
    post(boss, "/admin/catalogue/2/submit")
    boss2 = signed_in(site, "boss2")
    post(boss2, "/admin/catalogue/2/reject", reason="  ")
    assert "请写明原因" in page(boss2, "/admin/catalogue/2")
    post(boss2, "/admin/catalogue/2/reject", reason="时限应为 3 个工作日")
    shown = page(boss2, "/admin/catalogue/2")
    assert "已退回" in shown and "时限应为 3 个工作日" in shown
    with site.session() as session:
        assert catalogue.current_catalogue(session).version == 1  # type: ignore[union-attr]
    assert [e.actor for e in site.events("catalogue.reject")] == ["admin:boss2"]


def test_a_version_the_model_needs_is_refused_in_the_page_with_the_reason(
    site: AdminApp,
) -> None:
    boss = signed_in(site, "boss")
    upload(boss, _changed(COURT_DISHONEST=None))
    post(boss, "/admin/catalogue/2/submit")
    boss2 = signed_in(site, "boss2")
    post(boss2, "/admin/catalogue/2/publish")
    shown = page(boss2, "/admin/catalogue/2")
    assert "不能发布" in shown and "COURT_DISHONEST" in shown and "待审核" in shown


def test_the_export_is_the_version_and_safe_to_open_in_a_spreadsheet(site: AdminApp) -> None:
    boss = signed_in(site, "boss")
    upload(boss, _changed(LICENCE_GRANTED={"legal_basis": '=HYPERLINK("http://x")'}))
    answer = boss.get("/admin/catalogue/2/export.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    text = answer.get_data(as_text=True)
    assert text.startswith("\ufeffcode,kind,")
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))}
    assert rows["LICENCE_GRANTED"]["legal_basis"] == '\'=HYPERLINK("http://x")'
    assert len(rows) == len(_reference_rows())
    assert site.events("catalogue.export")[-1].actor == "admin:boss"
    # The exported file reads back as it was.
    assert upload(boss, text.removeprefix("\ufeff")).status_code == 302
    with site.session() as session:
        again = catalogue.entries_of(catalogue.find_version(session, 3))
        assert {e.code: e.legal_basis for e in again}["LICENCE_GRANTED"] == '=HYPERLINK("http://x")'
        assert not catalogue.diff(catalogue.entries_of(catalogue.find_version(session, 2)), again)


def test_who_may_read_and_who_may_change_the_catalogue(site: AdminApp) -> None:
    for username in ("audit1", "rev1", "clerk-market"):
        client = signed_in(site, username)
        listing = page(client, "/admin/catalogue")
        assert "目录管理" in listing and "上传新版本" not in listing, username
        assert "审核通过并发布" not in page(client, "/admin/catalogue/1")
        assert client.get("/admin/catalogue/1/export.csv").status_code == 200
        assert client.get("/admin/catalogue/new").status_code == 403
        assert post(client, "/admin/catalogue/1/submit").status_code == 403, username
    assert upload(signed_in(site, "audit1"), catalogue.reference_text()).status_code == 403
    assert count_versions(site) == 1


def test_the_pages_in_english(site: AdminApp) -> None:
    boss = signed_in(site, "boss")
    listing = page(boss, "/admin/catalogue?lang=en")
    assert "Public credit information catalogue" in listing and "published (in effect)" in listing
    assert '<html lang="en"' in listing
    version = page(boss, "/admin/catalogue/1")
    assert "Administrative licensing" in version and "not scored" in version
    assert "scoring item" in version and "any source" in version and "3 working days" in version
    bad = upload(boss, "code,kind\n")
    assert "missing column(s)" in bad.get_data(as_text=True)
    assert "nothing was stored" in bad.get_data(as_text=True)


# --- ingest ----------------------------------------------------------------------------------------


def _row(source: str, record_id: str, number: str, item: str, **changes: str) -> dict[str, str]:
    return {
        "source": source,
        "source_record_id": record_id,
        "id_number": number,
        "item_code": item,
        "document_no": f"文书-{record_id}",
        "occurred_on": "2026-06-22",
        "reported_on": "2026-06-23",
        "status": "active",
        **changes,
    }


def _ingest(session: Any, rows: list[dict[str, str]]) -> Any:
    batch = start_batch(session, "test.csv", "csv")
    *_, report = ingest_rows(session, enumerate(rows, start=1), key=KEY, batch=batch, today=TODAY)
    finish_batch(batch, report, None)
    return report


def test_ingest_checks_rows_against_the_published_catalogue(site: AdminApp) -> None:
    number = factories.id_number()
    with site.session() as session:
        person = factories.citizen(session, number=number)
        report = _ingest(session, [_row("court", "c1", number, "COURT_DISHONEST")])
        assert report.inserted == 1
        operations.drain_dirty(session, as_of=TODAY)
        before = current_snapshot(session, person.id)
        assert before is not None
        score = before.score

    with site.session() as session:
        report = _ingest(
            session,
            [
                _row("market", "m1", number, "LICENCE_GRANTED"),
                _row("market", "m2", number, "GOSSIP_HEARD"),
            ],
        )
        assert report.inserted == 1 and report.rejected == 1
        (error,) = report.errors
        assert error.field == "item_code" and error.source_record_id == "m2"
        assert "GOSSIP_HEARD" in error.reason and "(version 1)" in error.reason
        operations.drain_dirty(session, as_of=TODAY)
        after = current_snapshot(session, person.id)
        assert after is not None and after.score == score
        landed = session.scalar(select(Record).where(Record.source_record_id == "m1"))
        assert landed is not None and landed.item_code == "LICENCE_GRANTED"

    # A version that names the reporters of an entry: another source's record of it is refused.
    with site.session() as session:
        draft = catalogue.create_draft(
            session, _changed(LICENCE_GRANTED={"reporters": "market"}), actor=OFFICE_A
        )
        catalogue.submit(session, draft, actor=OFFICE_A)
        catalogue.publish(session, draft, actor=OFFICE_B)
    with site.session() as session:
        report = _ingest(
            session,
            [
                _row("court", "c2", number, "LICENCE_GRANTED"),
                _row("market", "m3", number, "LICENCE_GRANTED"),
            ],
        )
        assert report.inserted == 1 and report.rejected == 1
        (error,) = report.errors
        assert error.source_record_id == "c2"
        assert "'court' is not a reporter" in error.reason and "(version 2)" in error.reason


# --- non-scoring records by their catalogue names ---------------------------------------------------


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        with built.session() as session:
            ensure_sources(session)
            ensure_reference_models(session, actor="test")
        yield built


def test_a_non_scoring_record_reads_by_its_catalogue_name_and_changes_no_score(
    city: CitizenApp,
) -> None:
    number, other = factories.id_number(), factories.id_number()
    with city.session() as session:
        person = factories.citizen(session, number=number)
        court_only = factories.citizen(session, number=other)
        citizen_id, other_id = person.id, court_only.id
        report = _ingest(
            session,
            [
                _row("court", "c1", number, "COURT_DISHONEST"),
                _row("market", "m1", number, "LICENCE_GRANTED", occurred_on="2026-06-19"),
                _row("court", "c2", other, "COURT_DISHONEST"),
            ],
        )
        assert report.inserted == 3
        operations.drain_dirty(session, as_of=TODAY)
        licence = session.scalar(select(Record.id).where(Record.source_record_id == "m1"))
        # The licence changes nothing: the same score as a citizen with the court's record only.
        scores = [current_snapshot(session, c) for c in (citizen_id, other_id)]
        assert scores[0] is not None and scores[1] is not None
        assert scores[0].score == scores[1].score

    client = city.client()
    sign_in(client, number)
    records = client.get("/me/records").get_data(as_text=True)
    item = records.split(f'id="record-{licence}"', 1)[1].split("</li>", 1)[0]
    assert "行政许可（准予）" in item, item
    assert "LICENCE_GRANTED" not in item and "不计分" in item and "+0" not in item
    english = client.get("/me/records?lang=en").get_data(as_text=True)
    item_en = english.split(f'id="record-{licence}"', 1)[1].split("</li>", 1)[0]
    assert "Administrative licence granted" in item_en
    assert "not scored" in item_en and "LICENCE_GRANTED" not in item_en
    report = client.get("/me/report?lang=zh").get_data(as_text=True)
    assert "行政许可（准予）" in report and "LICENCE_GRANTED" not in report

    with city.session() as session:
        person = session.get(type(court_only), citizen_id)
        text = render_explanation(
            explain(session, person, as_of=TODAY, actor="test", purpose="test"), "en"
        )
    line = next(x for x in text.splitlines() if "2026-06-19" in x)
    assert "LICENCE_GRANTED" not in line and "not scored" in line


# --- the API ---------------------------------------------------------------------------------------


def test_a_source_reads_the_published_catalogue(city: CitizenApp) -> None:
    token = client_token(city, "source", ["records:write"])
    answer = city.client().get("/api/v1/catalogue", headers=bearer(token))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["version"] == 1
    entries = {e["code"]: e for e in body["entries"]}
    assert set(entries) == {r["code"] for r in _reference_rows()}
    licence = entries["LICENCE_GRANTED"]
    assert licence["kind"] == "licensing" and licence["kind_name_zh"] == "行政许可"
    assert licence["reporters"] is None and licence["deadline_days"] == 3
    assert set(licence) >= {"name_zh", "name_en", "legal_basis", "fields", "public", "publish_days"}
    assert city.client().get("/api/v1/catalogue").status_code == 401
    other = client_token(city, "venue", ["verify"])
    assert city.client().get("/api/v1/catalogue", headers=bearer(other)).status_code == 200
    document = city.client().get("/api/openapi.json")
    assert document.status_code == 200
    assert "/api/v1/catalogue" in document.get_json()["paths"]


def test_without_a_published_catalogue_the_api_says_so(city: CitizenApp) -> None:
    with city.session() as session:
        for version in session.scalars(select(CatalogueVersion)):
            version.status = CatalogueStatus.SUPERSEDED
    token = client_token(city, "source", ["records:write"])
    answer = city.client().get("/api/v1/catalogue", headers=bearer(token))
    assert answer.status_code == 404 and "no catalogue" in answer.get_json()["detail"]


def test_the_system_adopts_the_reference_catalogue_but_a_person_cannot(site: AdminApp) -> None:
    with site.session() as session:
        with pytest.raises(NotPermitted):
            catalogue.adopt_reference(session, actor=OFFICE_A)
        assert catalogue.published_version(session).number == 1  # type: ignore[union-attr]
        assert catalogue.published_version(session).created_by == SYSTEM.name  # type: ignore[union-attr]
