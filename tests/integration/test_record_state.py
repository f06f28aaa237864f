"""Issue 11 §0: one owner of a record's state.

What the source asserts (active / repaired / revoked), the platform's workflow (an objection) and time
(``expires_on`` against the as-of date) are kept apart: the expiry job and a model publication change
neither the source's word nor the objection, and both engines score what the rules say.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen.operations import file_objection
from points_engine import operations
from points_engine.models import Record
from points_engine.queries import current_snapshot
from points_engine.rules import RecordFact, evaluate
from tests import factories
from tests.rule_cases import AS_OF, ITEMISED

BEFORE = dt.date(2026, 1, 5)  # when the objection is filed: both records still count then
NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
LONGER = ITEMISED.replace(
    "{max_abs_points: 10, days: 365}", "{max_abs_points: 10, days: 900}"
).replace("validity_days: 1000", "validity_days: 2000")
REASON = "这条记录的日期与事实不符，请核实。"


def _expected(records: dict[int, tuple[Record, str]]) -> list[RecordFact]:
    return [RecordFact(r.id, r.item_code, status, r.occurred_on) for r, status in records.values()]


def _sql_and_rules(session: Session, person_id: int, facts: list[RecordFact]) -> None:
    """The SQL snapshot, the Python rules over the stored records and the rules over the expected
    states give one result."""
    _, model = operations.published_model(session)
    want = evaluate(model, facts, AS_OF)
    stored = [
        RecordFact(r.id, r.item_code, r.status, r.occurred_on)
        for r in session.scalars(select(Record).where(Record.citizen_id == person_id))
    ]
    from_rows = evaluate(model, stored, AS_OF)
    snap = current_snapshot(session, person_id)
    assert snap is not None
    got = (snap.score, snap.tier_rank, snap.direct_tier, snap.breakdown)
    assert got == (want.score, want.tier.rank, want.direct_tier, want.dimensions)
    assert (from_rows.score, from_rows.tier.rank, from_rows.direct_tier) == (
        want.score,
        want.tier.rank,
        want.direct_tier,
    )


def test_expiry_then_a_longer_model_keeps_repair_and_objection(session: Session) -> None:
    factories.published(session, ITEMISED)
    person = factories.citizen(session)
    # DEBTOR counts 1000 days (to 2026-02-25), FINE 365 days (to 2026-05-01): both expire before AS_OF.
    repaired = factories.record(session, person, "DEBTOR", "2023-06-01", status="repaired")
    fine = factories.record(session, person, "FINE", "2025-05-01")
    operations.recompute_all(session, as_of=BEFORE)
    file_objection(session, person, fine, REASON, today=BEFORE, now=NOW)
    assert fine.status == "under_objection"

    operations.expire_records(session, today=AS_OF)
    draft = operations.load_model_version(session, LONGER, "longer.yaml")
    operations.publish_model_version(session, draft, actor="test", today=AS_OF)
    operations.recompute_all(session, as_of=AS_OF)
    session.expire_all()

    assert session.get(Record, repaired.id).status == "repaired"  # type: ignore[union-attr]
    assert session.get(Record, fine.id).status == "under_objection"  # type: ignore[union-attr]
    snap = current_snapshot(session, person.id)
    # The repaired listing counts its repaired points (−30, no direct tier); the fine is suspended.
    assert snap is not None and (snap.score, snap.tier_code, snap.direct_tier) == (970, "B", False)
    _sql_and_rules(
        session,
        person.id,
        [
            RecordFact(repaired.id, "DEBTOR", "repaired", repaired.occurred_on),
            RecordFact(fine.id, "FINE", "under_objection", fine.occurred_on),
        ],
    )


def test_the_expiry_job_takes_an_expired_record_out_of_the_score_without_a_status(
    session: Session,
) -> None:
    factories.published(session, ITEMISED)
    person = factories.citizen(session)
    award = factories.record(session, person, "AWARD", "2025-05-01")  # counts to 2026-05-01
    operations.recompute_all(session, as_of=BEFORE)
    assert current_snapshot(session, person.id).score == 1010  # type: ignore[union-attr]
    expired, result = operations.expire_records(session, today=AS_OF)
    assert expired == 1 and result is not None and result.changed == 1
    assert current_snapshot(session, person.id).score == 1000  # type: ignore[union-attr]
    session.expire_all()
    assert session.get(Record, award.id).status == "active"  # type: ignore[union-attr]
    # Run again the same day: nothing new crossed its expiry, nobody is rescored.
    assert operations.expire_records(session, today=AS_OF) == (0, None)


ITEMS = ("AWARD", "FINE", "BIG_FINE", "PENALTY", "DEBTOR", "WATCH")


@pytest.mark.parametrize("seed", range(4))
def test_random_cities_across_expiry_and_a_model_change(session: Session, seed: int) -> None:
    rng = random.Random(seed)
    factories.published(session, ITEMISED)
    people = [factories.citizen(session) for _ in range(6)]
    expected: dict[int, dict[int, tuple[Record, str]]] = {p.id: {} for p in people}
    for person in people:
        for _ in range(rng.randint(1, 6)):
            occurred = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(3 * 365))
            occurred = min(occurred, BEFORE)
            source_status = rng.choice(("active", "active", "repaired", "revoked"))
            rec = factories.record(
                session, person, rng.choice(ITEMS), occurred, status=source_status
            )
            expected[person.id][rec.id] = (rec, source_status)
    operations.recompute_all(session, as_of=BEFORE)
    for person in people:
        for rec, status in list(expected[person.id].values()):
            still_counts = rec.expires_on is not None and rec.expires_on > BEFORE
            if status != "revoked" and still_counts and rng.random() < 0.5:
                file_objection(session, person, rec, REASON, today=BEFORE, now=NOW)
                expected[person.id][rec.id] = (rec, "under_objection")

    operations.expire_records(session, today=AS_OF)
    draft = operations.load_model_version(session, LONGER, "longer.yaml")
    operations.publish_model_version(session, draft, actor="test", today=AS_OF)
    operations.recompute_all(session, as_of=AS_OF)
    operations.expire_records(session, today=AS_OF)
    session.expire_all()

    for person in people:
        for rec, status in expected[person.id].values():
            assert session.get(Record, rec.id).status == status  # type: ignore[union-attr]
        _sql_and_rules(session, person.id, _expected(expected[person.id]))
