"""Issue 11 §1: the objection workflow (domain layer), on SQLite and PostgreSQL.

filed → forwarded → answered → upheld (the record is revoked) | rejected (the suspension ends), or
withdrawn by the citizen before a decision; deadlines in working days on the official calendar; the
reviewer's queue ordered by deadline with near / overdue flags; every step audited.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen.models import Objection, ObjectionStep
from citizen.operations import (
    ObjectionStateError,
    ObjectionTerms,
    decide,
    file_objection,
    forward,
    objection_queue,
    record_source_answer,
    withdraw,
)
from citizen.queries import steps_of
from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import AuditEvent
from citycredit.core.workdays import load_calendar
from points_engine import operations
from points_engine.models import Citizen, Record
from points_engine.queries import current_snapshot
from tests import factories
from tests.rule_cases import ITEMISED

# Friday before the 2026 Mid-Autumn (09-25..27) and National Day (10-01..07) holidays; Sunday 09-20
# and Saturday 10-10 are working days. 20 working days later is 2026-10-22.
FILED = dt.date(2026, 9, 18)
NOW = dt.datetime(2026, 9, 18, 2, 0, tzinfo=dt.UTC)
REVIEWER = Actor("admin:reviewer")
CLERK = Actor.for_source("admin:court-clerk", source_id=None)
REASON = "这条处罚记录的日期与事实不符，请核实。"


def _later(days: int) -> dt.datetime:
    return NOW + dt.timedelta(days=days)


def _setup(session: Session) -> tuple[Citizen, Record]:
    factories.published(session, ITEMISED)
    person = factories.citizen(session)
    fine = factories.record(session, person, "BIG_FINE", "2026-06-01")
    operations.recompute_all(session, as_of=FILED)
    return person, fine


def _score(session: Session, person: Citizen) -> int:
    snap = current_snapshot(session, person.id)
    assert snap is not None
    return snap.score


def _actions(session: Session, objection: Objection) -> list[str]:
    return [
        e.action
        for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        if e.detail.get("objection") == objection.public_id
    ]


def _to_answered(session: Session, objection: Objection) -> None:
    forward(session, objection, REVIEWER, _later(1))
    record_source_answer(session, objection, CLERK, "经核实，处罚日期登记有误。", _later(5))


def test_upheld_revokes_the_record(session: Session) -> None:
    person, fine = _setup(session)
    assert _score(session, person) == 980
    objection = file_objection(session, person, fine, REASON, today=FILED, now=NOW)
    assert objection.deadline == dt.date(2026, 10, 22)
    assert (objection.status, fine.status, _score(session, person)) == (
        "open",
        "under_objection",
        1000,
    )
    forward(session, objection, REVIEWER, _later(1))
    assert objection.status == "forwarded"
    record_source_answer(session, objection, CLERK, "经核实，处罚日期登记有误。", _later(5))
    assert (objection.status, objection.source_answer) == ("answered", "经核实，处罚日期登记有误。")
    decide(
        session,
        objection,
        REVIEWER,
        True,
        "来源单位确认登记有误，撤销该记录。",
        "revoke",
        now=_later(6),
        today=FILED + dt.timedelta(days=6),
    )
    session.expire_all()
    record = session.get(Record, fine.id)
    assert record is not None
    # The decision is the platform's outcome; the source's word is kept as it was.
    assert (record.source_status, record.workflow, record.outcome, record.status) == (
        "active",
        "none",
        "revoked",
        "revoked",
    )
    assert objection.status == "upheld" and objection.decided_at is not None
    assert _score(session, person) == 1000
    assert [s.step for s in steps_of(session, objection)] == [
        "filed",
        "forwarded",
        "answered",
        "upheld",
    ]
    assert [s.actor for s in steps_of(session, objection)] == [
        f"citizen:{person.id}",
        REVIEWER.name,
        CLERK.name,
        REVIEWER.name,
    ]
    assert _actions(session, objection) == [
        "objection.file",
        "objection.forward",
        "objection.answer",
        "objection.upheld",
    ]
    # Decided: nothing more happens to it.
    with pytest.raises(ObjectionStateError, match="upheld"):
        withdraw(session, person, objection, now=_later(7), today=FILED)
    with pytest.raises(ObjectionStateError):
        decide(session, objection, REVIEWER, False, "再议", now=_later(7), today=FILED)


def test_rejected_ends_the_suspension(session: Session) -> None:
    person, fine = _setup(session)
    objection = file_objection(session, person, fine, REASON, today=FILED, now=NOW)
    assert _score(session, person) == 1000
    _to_answered(session, objection)
    decide(
        session, objection, REVIEWER, False, "来源单位确认记录无误。", now=_later(6), today=FILED
    )
    session.expire_all()
    record = session.get(Record, fine.id)
    assert record is not None
    assert (record.source_status, record.workflow, record.status) == ("active", "none", "active")
    assert objection.status == "rejected"
    assert objection.decision_note == "来源单位确认记录无误。"
    assert _score(session, person) == 980
    assert _actions(session, objection)[-1] == "objection.rejected"
    # The record can be objected to again once the first objection is decided.
    again = file_objection(session, person, record, REASON, today=FILED, now=_later(7))
    assert again.status == "open"


@pytest.mark.parametrize("steps", [0, 1, 2])
def test_withdrawal_before_a_decision(session: Session, steps: int) -> None:
    person, fine = _setup(session)
    objection = file_objection(session, person, fine, REASON, today=FILED, now=NOW)
    if steps >= 1:
        forward(session, objection, REVIEWER, _later(1))
    if steps >= 2:
        record_source_answer(session, objection, CLERK, "记录无误。", _later(2))
    other = factories.citizen(session)
    with pytest.raises(NotPermitted):
        withdraw(session, other, objection, now=_later(3), today=FILED)
    withdraw(session, person, objection, now=_later(3), today=FILED)
    session.expire_all()
    assert session.get(Record, fine.id).status == "active"  # type: ignore[union-attr]
    assert objection.status == "withdrawn"
    assert _score(session, person) == 980
    assert steps_of(session, objection)[-1].step == "withdrawn"
    assert _actions(session, objection)[-1] == "objection.withdraw"
    with pytest.raises(ObjectionStateError, match="withdrawn: cannot decide"):
        decide(session, objection, REVIEWER, True, "撤销", "revoke", now=_later(4), today=FILED)
    with pytest.raises(ObjectionStateError):
        forward(session, objection, REVIEWER, _later(4))
    with pytest.raises(ObjectionStateError):
        withdraw(session, person, objection, now=_later(4), today=FILED)


def test_wrong_transitions_are_refused(session: Session) -> None:
    person, fine = _setup(session)
    objection = file_objection(session, person, fine, REASON, today=FILED, now=NOW)
    with pytest.raises(ObjectionStateError, match="open: cannot decide"):
        decide(session, objection, REVIEWER, True, "撤销", "revoke", now=_later(1), today=FILED)
    with pytest.raises(ObjectionStateError):
        record_source_answer(session, objection, CLERK, "答复", _later(1))
    forward(session, objection, REVIEWER, _later(1))
    with pytest.raises(ObjectionStateError, match="forwarded: cannot forward"):
        forward(session, objection, REVIEWER, _later(2))
    with pytest.raises(ObjectionStateError):
        decide(session, objection, REVIEWER, False, "驳回", now=_later(2), today=FILED)
    with pytest.raises(ValueError, match="answer"):
        record_source_answer(session, objection, CLERK, "  ", _later(2))
    record_source_answer(session, objection, CLERK, "答复", _later(2))
    with pytest.raises(ValueError, match="reason"):
        decide(session, objection, REVIEWER, False, "", now=_later(3), today=FILED)
    with pytest.raises(ValueError, match="correction"):
        decide(session, objection, REVIEWER, True, "改正", "amend", now=_later(3), today=FILED)  # type: ignore[arg-type]
    with pytest.raises(NotPermitted):
        decide(
            session, objection, Actor("auditor", read_only=True), True, "x", now=NOW, today=FILED
        )
    # Nothing of the refused attempts was written.
    assert objection.status == "answered"
    assert [s.step for s in steps_of(session, objection)] == ["filed", "forwarded", "answered"]


def test_deadline_terms_and_calendar(session: Session, tmp_path: object) -> None:
    person, fine = _setup(session)
    calendar = load_calendar(None)
    # Five working days from the Friday before the holidays: 09-20 (a swapped Sunday), 09-21..24.
    short = ObjectionTerms(days=5, calendar=calendar)
    objection = file_objection(session, person, fine, REASON, today=FILED, now=NOW, terms=short)
    assert objection.deadline == dt.date(2026, 9, 24)
    withdraw(session, person, objection, now=_later(1), today=FILED)
    # Six: the Mid-Autumn holiday (09-25..27) is skipped.
    again = file_objection(
        session, person, fine, REASON, today=FILED, now=_later(2), terms=ObjectionTerms(6, calendar)
    )
    assert again.deadline == dt.date(2026, 9, 28)


def test_queue_order_and_flags(session: Session) -> None:
    factories.published(session, ITEMISED)
    people = [factories.citizen(session) for _ in range(4)]
    fines = [factories.record(session, p, "BIG_FINE", "2026-06-01") for p in people]
    filed = [dt.date(2026, 9, 1), dt.date(2026, 9, 18), dt.date(2026, 8, 20), dt.date(2026, 9, 10)]
    cases = [
        file_objection(session, p, f, REASON, today=d, now=NOW)
        for p, f, d in zip(people, fines, filed, strict=True)
    ]
    # Deadlines (20 working days): 08-20 → 09-17; 09-01 → 09-29; 09-10 → 10-14; 09-18 → 10-22.
    assert [c.deadline for c in cases] == [
        dt.date(2026, 9, 29),
        dt.date(2026, 10, 22),
        dt.date(2026, 9, 17),
        dt.date(2026, 10, 14),
    ]
    forward(session, cases[0], REVIEWER, NOW)
    withdraw(session, people[3], cases[3], now=NOW, today=dt.date(2026, 9, 10))
    # 2026-09-24 (Thursday): 09-28 and 09-29 are 2 working days ahead (09-25..27 off).
    queue = objection_queue(session, today=dt.date(2026, 9, 24))
    assert [e.objection.id for e in queue] == [cases[2].id, cases[0].id, cases[1].id]
    assert [(e.overdue, e.near, e.working_days_left) for e in queue] == [
        (True, False, -6),  # 09-18, 09-20 (swapped Sunday), 09-21..24
        (False, True, 2),
        (False, False, 15),
    ]


def test_a_deadline_in_a_year_without_a_loaded_schedule_is_provisional(session: Session) -> None:
    """chinesecalendar 1.11 knows no 2027 yet (the State Council publishes it late in 2026): an
    objection filed in December is taken all the same, counting Monday to Friday in 2027, and its
    first step says the deadline is provisional."""
    person, fine = _setup(session)
    calendar = load_calendar(None)
    assert 2027 not in calendar.years  # if a newer library knows 2027, this test needs a later year
    december = dt.date(2026, 12, 21)  # a Monday
    objection = file_objection(
        session,
        person,
        fine,
        REASON,
        today=december,
        now=NOW,
        terms=ObjectionTerms(days=10, calendar=calendar),
    )
    # 12-22..25, 12-28..31 (eight in 2026, none a holiday); in 2027 New Year's Day (a Friday, a
    # fixed-date statutory holiday) is skipped even without the schedule: Monday 01-04, then 01-05.
    assert objection.deadline == dt.date(2027, 1, 5)
    steps = session.scalars(
        select(ObjectionStep).where(ObjectionStep.objection_id == objection.id)
    ).all()
    assert [s.step for s in steps] == ["filed"]
    assert steps[0].note is not None and "2027" in steps[0].note and "provisional" in steps[0].note
    # The year's schedule is what counts once it is known: the library's 2026 part is unchanged.
    assert calendar.add_working_days(december, 8) == dt.date(2026, 12, 31)
    queue = objection_queue(session, today=december, terms=ObjectionTerms(10, calendar))
    assert [e.objection.id for e in queue] == [objection.id]
    assert queue[0].working_days_left == 10 and not queue[0].overdue


def test_a_source_clerk_answers_only_for_their_own_source(session: Session) -> None:
    """The court's clerk answers a case against a court record; the tax office's clerk cannot, and
    neither clerk may forward or decide: those steps are the reviewer's."""
    person, fine = _setup(session)
    tax = factories.source(session, "tax")
    court_clerk = Actor.for_source("admin:court-clerk", source_id=fine.source_id)
    tax_clerk = Actor.for_source("api:cc_tax", source_id=tax.id)
    objection = file_objection(session, person, fine, REASON, today=FILED, now=NOW)
    with pytest.raises(NotPermitted):
        forward(session, objection, court_clerk, _later(1))
    forward(session, objection, REVIEWER, _later(1))
    with pytest.raises(NotPermitted):
        record_source_answer(session, objection, tax_clerk, "不是我们的记录。", _later(2))
    assert objection.status == "forwarded"
    # The tax clerk's queue does not even show the court's case; the court clerk's does.
    assert objection_queue(session, today=FILED, source_id=tax.id) == []
    court_queue = objection_queue(session, today=FILED, source_id=fine.source_id)
    assert [c.objection.public_id for c in court_queue] == [objection.public_id]
    assert court_queue[0].item_name_zh != "BIG_FINE"  # the record by its name, not its code
    record_source_answer(session, objection, court_clerk, "经核实，记录无误。", _later(2))
    with pytest.raises(NotPermitted):
        decide(session, objection, court_clerk, False, "记录无误", now=_later(3), today=FILED)
    decide(session, objection, REVIEWER, False, "来源核实记录无误", now=_later(3), today=FILED)
    assert objection.status == "rejected"
