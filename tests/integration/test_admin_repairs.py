"""The admin's credit-repair pages: the queue, the first review by the credit office or the record's
source's clerk, the second review by another person (four eyes), documents read with an audit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from citizen import repairs
from citizen.models import RepairApplication
from points_engine import operations
from points_engine.models import Record
from points_engine.queries import current_snapshot
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.admin_support import START, AdminApp, admin_app, post, signed_in
from tests.integration.test_repair_rules import REPAIRABLE
from tests.integration.test_repairs import PDF, STATEMENT


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        with web.session() as session:
            factories.published(session, REPAIRABLE)
            factories.source(session, "court")
            factories.source(session, "tax")
        web.add_user("boss", "platform_admin")
        web.add_user("rev", "reviewer")
        web.add_user("court-clerk", "clerk", source_code="court")
        web.add_user("tax-clerk", "clerk", source_code="tax")
        web.add_user("aud", "auditor")
        yield web


def apply(site: AdminApp) -> tuple[str, int, int]:
    """A court listing's repair application with a document; returns (id, record, citizen)."""
    today = START.date()
    with site.session() as session:
        person = factories.citizen(session)
        listing = factories.record(session, person, "LISTING", "2025-01-10")
        operations.recompute_all(session, as_of=today)
        application = repairs.apply(
            session,
            person,
            listing,
            STATEMENT,
            [repairs.Upload("结案证明.pdf", PDF)],
            today=today,
            now=START - dt.timedelta(days=2),
        )
        return application.public_id, listing.id, person.id


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def test_first_review_by_the_source_second_by_the_office_repairs_the_record(
    site: AdminApp,
) -> None:
    public_id, record_id, citizen_id = apply(site)
    url = f"/admin/repairs/{public_id}"
    clerk, other_clerk = signed_in(site, "court-clerk"), signed_in(site, "tax-clerk")
    assert public_id in text(clerk.get("/admin/repairs"))
    assert public_id not in text(other_clerk.get("/admin/repairs"))
    assert other_clerk.get(url).status_code == 404
    page = text(clerk.get(url))
    assert STATEMENT in page and "失信被执行人" in page and "提交初审" in page
    document = re.search(r'href="(/admin/repairs/rep_[0-9a-f]+/attachments/\d+)"', page)
    assert document and clerk.get(document.group(1)).data == PDF

    # A refusal needs a reason; an approval does not.
    post(clerk, url + "/propose", proposal="refuse", note="")
    assert "请填写理由" in text(clerk.get(url))
    post(clerk, url + "/propose", proposal="approve", note="已履行完毕。")
    page = text(clerk.get(url))
    assert "初审意见已提交" in page and "提交复核" not in page  # a clerk does no second review
    assert post(clerk, url + "/confirm", agree="yes").status_code == 403

    boss = signed_in(site, "boss")
    page = text(boss.get(url))
    assert "建议通过" in page and "admin:court-clerk" in page and "提交复核" in page
    post(boss, url + "/confirm", agree="yes", note="")
    page = text(boss.get(url))
    assert '<dd id="case-status">修复通过</dd>' in page
    with site.session() as session:
        record = session.get(Record, record_id)
        assert record is not None
        assert (record.status, record.repaired_on) == ("repaired", START.date())
        snap = current_snapshot(session, citizen_id)
        assert snap is not None and (snap.score, snap.tier_code) == (950, "B")
    assert public_id in text(boss.get("/admin/repairs?view=closed"))
    actors = [(e.actor, e.action) for e in site.events() if e.action.startswith("repair.")]
    assert ("admin:court-clerk", "repair.propose") in actors
    assert ("admin:boss", "repair.approved") in actors
    assert ("admin:court-clerk", "repair.attachment.read") in actors
    assert ("admin:court-clerk", "repair.view") in actors


def test_four_eyes_and_the_auditor(site: AdminApp) -> None:
    public_id, _, _ = apply(site)
    url = f"/admin/repairs/{public_id}"
    reviewer = signed_in(site, "rev")
    post(reviewer, url + "/propose", proposal="approve", note="")
    page = text(reviewer.get(url))
    assert "提交复核" not in page and "复核须由另一名工作人员进行" in page
    post(reviewer, url + "/confirm", agree="yes")
    assert "四眼原则" in text(reviewer.get(url))
    with site.session() as session:
        application = session.scalar(select(RepairApplication))
        assert application is not None and application.status == "proposed"

    auditor = signed_in(site, "aud")
    page = text(auditor.get(url))
    assert STATEMENT in page and "提交复核" not in page and "提交初审" not in page
    assert post(auditor, url + "/confirm", agree="yes").status_code == 403

    # The platform admin sends it back: a first review is due again.
    boss = signed_in(site, "boss")
    post(boss, url + "/confirm", agree="no", note="")
    assert "请填写理由" in text(boss.get(url))
    post(boss, url + "/confirm", agree="no", note="请核实履行凭证的真实性。")
    page = text(boss.get(url))
    assert '<dd id="case-status">待初审</dd>' in page and "复核退回重审" in page
    assert "提交初审" in page
