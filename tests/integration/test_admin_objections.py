"""The objection reviewer's queue and case pages in the admin, and the data source clerk's share.

The clock is the admin's (2026-06-30 10:00 in the city, a Tuesday). Deadlines are 20 working days
on the official calendar: a case filed 2026-05-29 is due 2026-06-29 (Dragon Boat Festival 06-19 off),
so it is overdue; one filed 06-03 is due 07-02, two working days away (near); one filed 06-29 is
due 07-27.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from citizen import operations as citizen_ops
from citizen.models import Objection
from points_engine import operations
from points_engine.models import Record
from points_engine.queries import current_snapshot
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.admin_support import START, AdminApp, admin_app, post, signed_in
from tests.rule_cases import ITEMISED

REASON = "处罚对象有误，当天我不在本市。"


@dataclass
class Cases:
    overdue: str  # a court record's case, filed 05-29
    near: str  # a tax record's case, filed 06-03
    fresh: str  # a court record's case, filed 06-29
    fresh_record: int
    fresh_citizen: int


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        with web.session() as session:
            factories.published(session, ITEMISED)
            factories.source(session, "court")
            factories.source(session, "tax")
        web.add_user("boss", "platform_admin")
        web.add_user("rev", "reviewer")
        web.add_user("court-clerk", "clerk", source_code="court")
        web.add_user("tax-clerk", "clerk", source_code="tax")
        web.add_user("aud", "auditor")
        yield web


def file_cases(site: AdminApp) -> Cases:
    ids = []
    with site.session() as session:
        court, tax = factories.source(session, "court"), factories.source(session, "tax")
        for filed, src in (
            (dt.date(2026, 5, 29), court),
            (dt.date(2026, 6, 3), tax),
            (dt.date(2026, 6, 29), court),
        ):
            person = factories.citizen(session)
            fine = factories.record(session, person, "BIG_FINE", "2026-05-01", src=src)
            operations.recompute_all(session, as_of=filed)
            moment = dt.datetime.combine(filed, dt.time(2), tzinfo=dt.UTC)
            case = citizen_ops.file_objection(
                session, person, fine, REASON, today=filed, now=moment
            )
            ids.append((case.public_id, fine.id, person.id))
    return Cases(ids[0][0], ids[1][0], ids[2][0], ids[2][1], ids[2][2])


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def rows(page: str) -> list[str]:
    return re.findall(r'<tr id="case-(obj_[0-9a-f]+)">', page)


def test_the_queue_is_ordered_by_deadline_and_flags_near_and_overdue(site: AdminApp) -> None:
    cases = file_cases(site)
    reviewer = signed_in(site, "rev")
    page = text(reviewer.get("/admin/objections"))
    assert rows(page) == [cases.overdue, cases.near, cases.fresh]
    assert "逾期 1 件，临近期限 1 件。" in page
    overdue_row = re.search(rf'<tr id="case-{cases.overdue}">(.*?)</tr>', page, re.S)
    near_row = re.search(rf'<tr id="case-{cases.near}">(.*?)</tr>', page, re.S)
    fresh_row = re.search(rf'<tr id="case-{cases.fresh}">(.*?)</tr>', page, re.S)
    assert overdue_row and "2026-06-29" in overdue_row.group(1) and "逾期" in overdue_row.group(1)
    assert near_row and "2026-07-02" in near_row.group(1) and "临近" in near_row.group(1)
    assert fresh_row and "2026-07-27" in fresh_row.group(1)
    assert "逾期" not in fresh_row.group(1) and "临近" not in fresh_row.group(1)
    assert "重罚" in page and "BIG_FINE" not in page  # the record by its name
    # In English too.
    english = text(reviewer.get("/admin/objections?lang=en"))
    assert "1 overdue, 1 near the deadline." in english and "Big fine" in english
    # The nav shows the queue to the reviewer, the clerks and the auditor.
    for user in ("rev", "court-clerk", "aud", "boss"):
        assert 'href="/admin/objections"' in text(signed_in(site, user).get("/admin/"))


def test_forward_answer_decide_with_the_clerk_answering_for_their_own_source(
    site: AdminApp,
) -> None:
    cases = file_cases(site)
    reviewer = signed_in(site, "rev")
    court_clerk = signed_in(site, "court-clerk")
    tax_clerk = signed_in(site, "tax-clerk")
    # Each clerk sees only the cases against their own source's records.
    assert rows(text(court_clerk.get("/admin/objections"))) == [cases.overdue, cases.fresh]
    assert rows(text(tax_clerk.get("/admin/objections"))) == [cases.near]
    assert tax_clerk.get(f"/admin/objections/{cases.fresh}").status_code == 404

    url = f"/admin/objections/{cases.fresh}"
    case = text(reviewer.get(url))
    assert REASON in case and "转来源单位" in case and "提交决定" not in case
    # A clerk cannot forward or decide; the tax clerk cannot even reach the court's case.
    assert post(court_clerk, url + "/forward").status_code == 403
    assert post(tax_clerk, url + "/answer", answer="不是我们的记录").status_code == 404
    response = post(reviewer, url + "/forward")
    assert response.status_code == 302
    assert "已转数据来源单位核实。" in text(reviewer.get(url))
    # Forwarding twice says it no longer applies and changes nothing.
    again = post(reviewer, url + "/forward")
    assert again.status_code == 302
    assert "不能执行该操作" in text(reviewer.get(url))

    # The court's clerk answers (an empty answer is refused with a message).
    clerk_view = text(court_clerk.get(url))
    assert "记录答复" in clerk_view and "提交决定" not in clerk_view
    post(court_clerk, url + "/answer", answer="   ")
    assert "请填写内容" in text(court_clerk.get(url))
    post(court_clerk, url + "/answer", answer="经核实，处罚对象登记错误。")
    assert post(court_clerk, url + "/decide", outcome="upheld", reason="x").status_code == 403

    # The reviewer decides: upheld revokes the record, so the suspended deduction never returns.
    with site.session() as session:
        before = current_snapshot(session, cases.fresh_citizen)
        assert before is not None
    case = text(reviewer.get(url))
    assert "经核实，处罚对象登记错误。" in case and "提交决定" in case
    post(reviewer, url + "/decide", outcome="upheld", reason="来源单位确认登记错误")
    done = text(reviewer.get(url))
    assert '<dd id="case-status">异议成立' in done and "来源单位确认登记错误" in done
    with site.session() as session:
        record = session.get(Record, cases.fresh_record)
        assert record is not None and record.status == "revoked"
        after = current_snapshot(session, cases.fresh_citizen)
        assert after is not None and after.score == before.score
        objection = session.scalar(select(Objection).where(Objection.public_id == cases.fresh))
        assert objection is not None and objection.decided_at == START
    # The case moved from the queue to the closed list.
    assert cases.fresh not in rows(text(reviewer.get("/admin/objections")))
    assert rows(text(reviewer.get("/admin/objections?view=decided"))) == [cases.fresh]

    # Every step is audited under the person's name; opening a case is a read of personal data.
    actions = [(e.actor, e.action) for e in site.events() if e.action.startswith("objection.")]
    assert ("admin:rev", "objection.forward") in actions
    assert ("admin:court-clerk", "objection.answer") in actions
    assert ("admin:rev", "objection.upheld") in actions
    views = site.events("objection.view")
    assert {e.actor for e in views} >= {"admin:rev", "admin:court-clerk"}
    assert all(e.citizen_id == cases.fresh_citizen for e in views if e.actor == "admin:rev")


def test_the_auditor_reads_and_cannot_act_and_a_rejection_needs_a_reason(site: AdminApp) -> None:
    cases = file_cases(site)
    url = f"/admin/objections/{cases.near}"
    auditor = signed_in(site, "aud")
    page = text(auditor.get(url))
    assert REASON in page and "转来源单位" not in page
    assert post(auditor, url + "/forward").status_code == 403
    reviewer = signed_in(site, "rev")
    post(reviewer, url + "/forward")
    post(reviewer, url + "/answer", answer="记录无误。")
    post(reviewer, url + "/decide", outcome="rejected", reason="")
    assert "请填写内容" in text(reviewer.get(url))
    post(reviewer, url + "/decide", outcome="maybe", reason="理由")
    assert "请选择决定" in text(reviewer.get(url))
    with site.session() as session:
        objection = session.scalar(select(Objection).where(Objection.public_id == cases.near))
        assert objection is not None and objection.status == "answered"
    with site.session() as session:
        objection = session.scalar(select(Objection).where(Objection.public_id == cases.near))
        assert objection is not None
        suspended = current_snapshot(session, objection.citizen_id)
        assert suspended is not None
    post(reviewer, url + "/decide", outcome="rejected", reason="来源单位核实记录无误")
    with site.session() as session:
        rescored = current_snapshot(session, objection.citizen_id)
        assert rescored is not None and rescored.score == suspended.score - 20  # BIG_FINE counts

        objection = session.scalar(select(Objection).where(Objection.public_id == cases.near))
        assert objection is not None and objection.status == "rejected"
        record = session.get(Record, objection.record_id)
        assert record is not None and record.status == "active"
