"""The citizen's credit-repair pages: which records qualify, the application with attachments, the
case page with its steps and outcome, downloads of one's own documents only, and withdrawal."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citizen import repairs
from citizen.models import RepairApplication
from citycredit.core.actors import Actor
from citycredit.core.audit import AuditEvent
from points_engine import operations
from points_engine.models import Citizen, Record
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import CitizenApp, citizen_app, csrf, post, text
from tests.integration.test_citizen_pages import consented, record_items, score_on_home
from tests.integration.test_repair_rules import REPAIRABLE
from tests.integration.test_repairs import PDF, STATEMENT

TODAY = "2026-06-30"  # the citizen app's clock


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def _listing(city: CitizenApp) -> tuple[object, int, int]:
    """Alice, with a dishonest-debtor listing of 2025-01-10 (tier D) and one of 2026-05-01 (too
    recent to repair) under the repairable model."""
    seeded = city.seed()
    with city.session() as session:
        version = operations.load_model_version(session, REPAIRABLE, "repairable.yaml")
        operations.publish_model_version(session, version, actor="test")
        alice = session.get(Citizen, seeded.alice.citizen_id)
        assert alice is not None
        old = factories.record(session, alice, "LISTING", "2025-01-10").id
        new = factories.record(session, alice, "LISTING", "2026-05-01").id
    return seeded, old, new


def _apply(
    client: object, record_id: int, statement: str, files: list[tuple[bytes, str]]
) -> object:
    path = f"/me/records/{record_id}/repair"
    token = csrf(client, path)  # type: ignore[arg-type]
    data: dict[str, object] = {
        "statement": statement,
        "csrf_token": token,
        "attachments": [(io.BytesIO(body), name) for body, name in files],
    }
    return client.post(path, data=data, content_type="multipart/form-data")  # type: ignore[attr-defined]


def test_a_citizen_applies_follows_the_case_and_sees_the_repaired_score(city: CitizenApp) -> None:
    seeded, old, new = _listing(city)
    client = consented(city, seeded.alice)
    before = score_on_home(client)
    items = record_items(text(client.get("/me/records")))
    assert "申请信用修复" in items[old]
    assert "2026-11-01 起可申请修复" in items[new]  # six months' minimum disclosure
    assert "计分至 2030-01-09（含）" in items[old]  # five calendar years
    listing = text(client.get("/me/repairs"))
    assert "最短公示期未满，2026-11-01 起可以申请。" in listing

    form = text(client.get(f"/me/records/{old}/repair"))
    assert "失信被执行人" in form and "该记录改按 -50 分计" in form and "不再直接定级" in form
    assert "计分至 2028-06-29（如今日修复）" in form
    # A file that is not what it claims is refused, the statement kept, nothing stored.
    refused = _apply(client, old, STATEMENT, [(b"MZ\x90 not a pdf", "证明.pdf")])
    assert refused.status_code == 422  # type: ignore[attr-defined]
    page = text(refused)
    assert "附件“证明.pdf”不是 PDF、PNG 或 JPEG 文件。" in page and STATEMENT in page
    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(RepairApplication)) == 0

    response = _apply(client, old, STATEMENT, [(PDF, "结案证明.pdf")])
    assert response.status_code == 302, text(response)  # type: ignore[attr-defined]
    case_url = response.location.split("?")[0]  # type: ignore[attr-defined]
    case = text(client.get(response.location))  # type: ignore[attr-defined]
    assert "申请已提交" in case and '<dd id="case-status">待初审</dd>' in case
    found = re.search(r'href="(/me/repairs/rep_[0-9a-f]+/attachments/\d+)">结案证明.pdf</a>', case)
    assert found
    download = client.get(found.group(1))
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.mimetype == "application/pdf"

    # Bob reaches neither the case nor the document.
    bob = consented(city, seeded.bob)
    assert bob.get(case_url).status_code == 404
    assert bob.get(found.group(1)).status_code == 404
    assert bob.get(f"/me/records/{old}/repair").status_code == 404

    # Two reviewers approve: the case shows the outcome and the rescored score.
    with city.session() as session:
        application = session.scalar(select(RepairApplication))
        assert application is not None
        now = city.clock()
        repairs.propose(session, application, Actor("admin:rev"), True, "材料齐全。", now=now)
        repairs.confirm(
            session, application, Actor("admin:boss"), True, "", now=now, today=now.date()
        )
    done = text(client.get(case_url))
    assert '<dd id="case-status">修复通过</dd>' in done
    assert "计分至 2028-06-29" in done
    after = score_on_home(client)
    assert after > before  # tier D lifted, −50 instead of −100
    assert re.search(rf'<strong id="score-now">{after}</strong>', done)
    item = record_items(text(client.get("/me/records")))[old]
    assert "修复于" in item and "申请信用修复" not in item
    with city.session() as session:
        reads = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action == "repair.attachment.read")
        ).all()
        assert reads == ["repair.attachment.read"]


def test_withdrawing_asks_first(city: CitizenApp) -> None:
    seeded, old, _ = _listing(city)
    client = consented(city, seeded.alice)
    response = _apply(client, old, STATEMENT, [])
    case_url = response.location.split("?")[0]  # type: ignore[attr-defined]
    confirm = text(client.get(case_url + "/withdraw"))
    assert "撤回对“失信被执行人”的修复申请？" in confirm
    done = post(client, case_url + "/withdraw", token_from=case_url + "/withdraw")
    assert done.status_code == 302 and done.location.endswith("?withdrawn=1")
    assert '<dd id="case-status">已撤回</dd>' in text(client.get(done.location))
    with city.session() as session:
        record = session.get(Record, old)
        assert record is not None and record.status == "active"
    # It can be applied for again.
    assert "申请信用修复" in record_items(text(client.get("/me/records")))[old]
