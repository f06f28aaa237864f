"""Credit repair on application (issue 11 §2): the item's terms decide which records qualify and
from when; attachments are checked by content and size; four eyes; approval repairs the record from
that day and rescores at once; refusal gives reasons; every step audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen import repairs
from citizen.models import RepairApplication, RepairAttachment, RepairStep
from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import AuditEvent
from points_engine import operations
from points_engine.models import Citizen, Record
from points_engine.queries import current_snapshot
from tests import factories
from tests.integration.test_repair_rules import REPAIRABLE

TODAY = dt.date(2025, 3, 3)
NOW = dt.datetime(2025, 3, 3, 2, tzinfo=dt.UTC)
STATEMENT = "法院判决的款项已于 2025 年 2 月全部履行完毕，附执行法院出具的结案证明。"
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
OFFICE = Actor("admin:rev")
SECOND = Actor("admin:boss")


def _setup(session: Session) -> tuple[Citizen, Record]:
    factories.published(session, REPAIRABLE)
    person = factories.citizen(session)
    listing = factories.record(session, person, "LISTING", "2024-03-01")
    operations.recompute_all(session, as_of=TODAY)
    return person, listing


def _score(session: Session, person: Citizen) -> tuple[int, str]:
    snap = current_snapshot(session, person.id)
    assert snap is not None
    return snap.score, snap.tier_code


def test_approved_with_four_eyes_the_listing_counts_minus_50_from_that_day(
    session: Session,
) -> None:
    person, listing = _setup(session)
    assert _score(session, person) == (900, "D")
    verdict = repairs.eligibility(session, listing, today=TODAY)
    assert verdict.allowed and verdict.repaired_points == -50
    assert verdict.repaired_last_day == dt.date(2027, 3, 2)  # two years from today, inclusive
    application = repairs.apply(
        session,
        person,
        listing,
        STATEMENT,
        [repairs.Upload("结案证明.pdf", PDF), repairs.Upload("C:\\scan\\收据.png", PNG)],
        today=TODAY,
        now=NOW,
    )
    stored = session.scalars(
        select(RepairAttachment).where(RepairAttachment.application_id == application.id)
    ).all()
    assert [(a.filename, a.content_type, a.size) for a in stored] == [
        ("结案证明.pdf", "application/pdf", len(PDF)),
        ("收据.png", "image/png", len(PNG)),
    ]
    # A second application for the same record waits for the first.
    again = repairs.eligibility(session, listing, today=TODAY)
    assert not again.allowed and again.why_not and "已有修复申请" in again.why_not[0]

    repairs.propose(session, application, OFFICE, True, "材料齐全，义务已履行。", now=NOW)
    with pytest.raises(NotPermitted, match="four eyes"):
        repairs.confirm(session, application, OFFICE, True, "", now=NOW, today=TODAY)
    assert _score(session, person) == (900, "D")  # nothing changes before the second review
    repairs.confirm(session, application, SECOND, True, "", now=NOW, today=TODAY)
    assert (application.status, application.repaired_on) == ("approved", TODAY)
    assert (listing.status, listing.outcome, listing.repaired_on) == ("repaired", "repaired", TODAY)
    assert listing.expires_on == dt.date(2027, 3, 3)
    assert _score(session, person) == (950, "B")  # rescored at once
    steps = session.scalars(
        select(RepairStep.step).where(RepairStep.application_id == application.id)
    ).all()
    assert steps == ["submitted", "proposed", "approved"]
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("repair.%")).order_by(AuditEvent.id)
    ).all()
    assert actions == ["repair.apply", "repair.propose", "repair.approved"]


def test_a_refusal_gives_reasons_and_a_disagreement_goes_back_to_the_first_review(
    session: Session,
) -> None:
    person, listing = _setup(session)
    application = repairs.apply(session, person, listing, STATEMENT, [], today=TODAY, now=NOW)
    with pytest.raises(repairs.RepairRefused, match="reason"):
        repairs.propose(session, application, OFFICE, False, "  ", now=NOW)
    repairs.propose(session, application, OFFICE, False, "未提供履行证明。", now=NOW)
    with pytest.raises(repairs.RepairRefused):
        repairs.confirm(session, application, SECOND, False, "", now=NOW, today=TODAY)
    repairs.confirm(
        session, application, SECOND, False, "请补充核实履行情况。", now=NOW, today=TODAY
    )
    assert application.status == "submitted" and application.proposal is None
    repairs.propose(session, application, Actor("admin:rev2"), False, "经核实未履行。", now=NOW)
    repairs.confirm(session, application, SECOND, True, "", now=NOW, today=TODAY)
    assert application.status == "refused" and application.decision_note == "经核实未履行。"
    assert listing.status == "active" and _score(session, person) == (900, "D")
    # Refused, the citizen may apply again (with new facts).
    assert repairs.eligibility(session, listing, today=TODAY).allowed


def test_who_may_review(session: Session) -> None:
    person, listing = _setup(session)
    tax = factories.source(session, "tax")
    application = repairs.apply(session, person, listing, STATEMENT, [], today=TODAY, now=NOW)
    for outsider in (
        Actor("auditor", read_only=True),
        Actor.for_partner("desk"),
        Actor.for_source("admin:tax-clerk", source_id=tax.id),
    ):
        with pytest.raises(NotPermitted):
            repairs.propose(session, application, outsider, True, "", now=NOW)
    court_clerk = Actor.for_source("admin:court-clerk", source_id=listing.source_id)
    repairs.propose(session, application, court_clerk, True, "已履行。", now=NOW)
    with pytest.raises(NotPermitted, match="credit office"):
        repairs.confirm(
            session,
            application,
            Actor.for_source("admin:c2", source_id=None),
            True,
            "",
            now=NOW,
            today=TODAY,
        )
    repairs.confirm(session, application, SECOND, True, "", now=NOW, today=TODAY)
    assert application.status == "approved"
    with pytest.raises(repairs.RepairStateError):
        repairs.confirm(session, application, Actor("admin:third"), True, "", now=NOW, today=TODAY)


@pytest.mark.parametrize(
    ("uploads", "message"),
    [
        ([repairs.Upload("a.pdf", PDF)] * 4, "at most 3"),
        ([repairs.Upload("big.pdf", PDF + b"0" * (2 * 1024 * 1024))], "larger than 2 MB"),
        ([repairs.Upload("fake.pdf", b"MZ\x90\x00 not a pdf")], "not a PDF, PNG or JPEG"),
        ([repairs.Upload("empty.png", b"")], "empty"),
    ],
)
def test_attachments_are_checked_by_content_size_and_number(
    session: Session, uploads: list[repairs.Upload], message: str
) -> None:
    person, listing = _setup(session)
    with pytest.raises(repairs.RepairRefused, match=message):
        repairs.apply(session, person, listing, STATEMENT, uploads, today=TODAY, now=NOW)
    assert session.scalar(select(RepairApplication.id)) is None  # nothing stored


def test_which_records_qualify_and_from_when(session: Session) -> None:
    factories.published(session, REPAIRABLE)
    person = factories.citizen(session)
    recent = factories.record(session, person, "LISTING", "2025-01-15")
    fine = factories.record(session, person, "FINE", "2025-01-15")  # no repair terms
    old = factories.record(session, person, "ARREARS", "2023-01-01")  # counted until 2024-07-01
    verdict = repairs.eligibility(session, recent, today=TODAY)
    assert not verdict.allowed and verdict.from_day == dt.date(2025, 7, 15)
    assert verdict.why_not and "2025-07-15" in verdict.why_not[0]
    assert repairs.eligibility(session, recent, today=dt.date(2025, 7, 15)).allowed
    assert not repairs.eligibility(session, fine, today=TODAY).allowed
    stale = repairs.eligibility(session, old, today=TODAY)
    assert not stale.allowed and stale.why_not and "不再计分" in stale.why_not[0]
    listed = repairs.repairable_records(session, person, today=TODAY)
    assert {v.record.id for v in listed} == {recent.id, old.id}  # FINE cannot be repaired at all
    with pytest.raises(repairs.RepairRefused, match="10 to 2000"):
        repairs.apply(session, person, recent, "太短", [], today=dt.date(2025, 8, 1), now=NOW)


def test_the_citizen_withdraws_before_the_decision(session: Session) -> None:
    person, listing = _setup(session)
    application = repairs.apply(session, person, listing, STATEMENT, [], today=TODAY, now=NOW)
    other = factories.citizen(session)
    with pytest.raises(NotPermitted):
        repairs.withdraw(session, other, application, now=NOW)
    repairs.withdraw(session, person, application, now=NOW)
    assert application.status == "withdrawn"
    with pytest.raises(repairs.RepairStateError):
        repairs.propose(session, application, OFFICE, True, "", now=NOW)
    cases = repairs.repair_cases(session, citizen=person, with_details=True)
    assert [c.application.status for c in cases] == ["withdrawn"]
    assert [s.step for s in cases[0].steps] == ["submitted", "withdrawn"]
    assert cases[0].item_name_zh == "失信被执行人"
