"""Issue 11 §2: validity in calendar years and months, and repaired records that count as their item
says from the repair date — the same in the SQL engine and the Python rules, on both databases — and
the platform's decisions (an upheld objection, an approved repair) surviving a source's re-send."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from points_engine import batches, operations
from points_engine.models import Citizen, Record
from points_engine.queries import current_snapshot
from points_engine.record_state import Outcome, change_record_state
from points_engine.rules import RecordFact, evaluate
from points_engine.scoring_model import ModelFileError, parse_model
from tests import factories
from tests.conftest import KEY
from tests.rule_cases import ITEMISED

# A dishonest-debtor listing sets tier D for five calendar years; repaired (not before six months
# have passed), it counts −50 for two years from the repair date instead. Arrears count 18 months;
# repaired, they count the model's repaired value (0) — for six months, which changes nothing.
REPAIRABLE = (
    ITEMISED
    + """
  - {code: LISTING, name: {zh: 失信被执行人, en: Dishonest debtor}, dimension: court,
     catalogue_category: 司法信息, legal_basis: 测试依据第九条, points: -100, direct_tier: D,
     valid_for: {years: 5},
     repair: {after: {months: 6}, points: -50, counts_for: {years: 2}}}
  - {code: ARREARS, name: {zh: 欠费, en: Arrears}, dimension: bad, catalogue_category: 公用事业信息,
     legal_basis: 测试依据第十条, points: -10, valid_for: {months: 18},
     repair: {counts_for: {months: 6}}}
"""
)


def _both_engines_agree(session: Session, person: Citizen, as_of: dt.date) -> tuple[int, str]:
    """Score ``person`` as of ``as_of`` in SQL and with the Python rules over the stored records;
    return (score, tier) once both say the same."""
    _, model = operations.published_model(session)
    operations.recompute_all(session, as_of=as_of)
    snap = current_snapshot(session, person.id)
    assert snap is not None
    facts = [
        RecordFact(r.id, r.item_code, r.status, r.occurred_on, r.repaired_on)
        for r in session.scalars(select(Record).where(Record.citizen_id == person.id))
    ]
    want = evaluate(model, facts, as_of)
    assert (snap.score, snap.tier_code, snap.direct_tier, snap.breakdown) == (
        want.score,
        want.tier.code,
        want.direct_tier,
        want.dimensions,
    )
    return snap.score, snap.tier_code


def test_a_five_year_listing_ends_on_the_same_calendar_day(session: Session) -> None:
    factories.published(session, REPAIRABLE)
    person = factories.citizen(session)
    listing = factories.record(session, person, "LISTING", "2026-01-10")
    assert listing.expires_on == dt.date(2031, 1, 10)  # not 1,825 days later (2031-01-09)
    assert _both_engines_agree(session, person, dt.date(2031, 1, 9)) == (900, "D")
    assert _both_engines_agree(session, person, dt.date(2031, 1, 10)) == (1000, "A")
    leap = factories.record(session, factories.citizen(session), "ARREARS", "2024-08-31")
    assert leap.expires_on == dt.date(2026, 2, 28)  # 18 months on, at the end of a short month


def test_a_repaired_listing_counts_minus_50_for_two_years_from_the_repair_date(
    session: Session,
) -> None:
    factories.published(session, REPAIRABLE)
    person = factories.citizen(session)
    listing = factories.record(session, person, "LISTING", "2024-03-01")
    assert _both_engines_agree(session, person, dt.date(2025, 3, 1)) == (900, "D")
    change_record_state(
        session,
        listing,
        outcome=Outcome.REPAIRED,
        repaired_on=dt.date(2025, 3, 1),
        as_of=dt.date(2025, 3, 1),
    )
    assert (listing.status, listing.repaired_on) == ("repaired", dt.date(2025, 3, 1))
    assert listing.expires_on == dt.date(2027, 3, 1)  # two years from the repair, not 2029
    snap = current_snapshot(session, person.id)
    assert snap is not None and (snap.score, snap.tier_code) == (950, "B")  # rescored at once
    assert _both_engines_agree(session, person, dt.date(2027, 2, 28)) == (950, "B")
    assert _both_engines_agree(session, person, dt.date(2027, 3, 1)) == (1000, "A")


def test_a_late_repair_never_makes_a_record_count_longer(session: Session) -> None:
    factories.published(session, REPAIRABLE)
    person = factories.citizen(session)
    listing = factories.record(session, person, "LISTING", "2021-08-01")  # counts to 2026-07-31
    change_record_state(
        session,
        listing,
        outcome=Outcome.REPAIRED,
        repaired_on=dt.date(2026, 1, 1),
        as_of=dt.date(2026, 1, 1),
    )
    assert listing.expires_on == dt.date(2026, 8, 1)  # not 2028-01-01
    assert _both_engines_agree(session, person, dt.date(2026, 7, 31)) == (950, "B")
    assert _both_engines_agree(session, person, dt.date(2026, 8, 1)) == (1000, "A")


def _send(session: Session, number: str, status: str, today: dt.date) -> None:
    row = {
        "source": "court",
        "source_record_id": "L-1",
        "id_number": number,
        "item_code": "LISTING",
        "document_no": "（2024）鄂02执1号",
        "occurred_on": "2024-03-01",
        "reported_on": "2024-03-02",
        "status": status,
    }
    result = batches.ingest(session, [(2, row)], origin="test", fmt="json", key=KEY, today=today)
    assert result.report.rejected == 0, result.report.errors


def test_a_source_re_sending_a_row_does_not_undo_the_platform_s_decisions(
    session: Session,
) -> None:
    """An approved repair and an upheld objection are the platform's outcomes: the court's monthly
    full export, which still says "active", changes neither."""
    factories.published(session, REPAIRABLE)
    factories.source(session, "court")
    number = factories.id_number()
    today = dt.date(2025, 3, 1)
    _send(session, number, "active", today)
    listing = session.scalar(select(Record).where(Record.source_record_id == "L-1"))
    assert listing is not None and listing.status == "active"
    change_record_state(session, listing, outcome=Outcome.REPAIRED, repaired_on=today, as_of=today)
    _send(session, number, "active", today + dt.timedelta(days=30))  # the same row, unchanged
    session.refresh(listing)
    assert (listing.status, listing.outcome, listing.repaired_on) == ("repaired", "repaired", today)
    assert listing.expires_on == dt.date(2027, 3, 1)
    # The source now sends it as repaired itself: the platform's earlier repair date is kept.
    _send(session, number, "repaired", today + dt.timedelta(days=60))
    session.refresh(listing)
    assert (listing.source_status, listing.repaired_on) == ("repaired", today)
    # An upheld objection's revocation stands whatever the source re-sends.
    change_record_state(session, listing, outcome=Outcome.REVOKED, as_of=today)
    _send(session, number, "active", today + dt.timedelta(days=90))
    session.refresh(listing)
    assert (listing.source_status, listing.outcome, listing.status) == (
        "active",
        "revoked",
        "revoked",
    )


def test_a_source_s_repair_dates_from_the_day_it_reported_it(session: Session) -> None:
    factories.published(session, REPAIRABLE)
    factories.source(session, "court")
    number = factories.id_number()
    _send(session, number, "repaired", dt.date(2025, 3, 1))
    listing = session.scalar(select(Record).where(Record.source_record_id == "L-1"))
    assert listing is not None
    assert (listing.status, listing.repaired_on) == ("repaired", dt.date(2024, 3, 2))
    assert listing.expires_on == dt.date(2026, 3, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("valid_for: {years: 5},", "valid_for: {years: 5}, validity_days: 30,"), "not both"),
        (("counts_for: {years: 2}}}", "counts_for: {years: 0}}}"), "longer than zero"),
        (("points: -10, valid_for", "points: 10, valid_for"), "counts against someone"),
        (("points: -50, counts_for", "points: 50, counts_for"), "less than or equal to 0"),
    ],
)
def test_repair_and_period_mistakes_are_refused_with_their_line(
    change: tuple[str, str], message: str
) -> None:
    text = REPAIRABLE.replace(*change)
    assert text != REPAIRABLE
    with pytest.raises(ModelFileError) as caught:
        parse_model(text, "model.yaml")
    assert message in str(caught.value) and "model.yaml:" in str(caught.value)


@pytest.mark.parametrize("seed", range(3))
def test_random_repairs_score_the_same_in_both_engines(session: Session, seed: int) -> None:
    rng = random.Random(seed)
    factories.published(session, REPAIRABLE)
    people = [factories.citizen(session) for _ in range(5)]
    for person in people:
        for _ in range(rng.randint(1, 5)):
            occurred = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(5 * 365))
            item = rng.choice(("LISTING", "ARREARS", "FINE", "AWARD", "DEBTOR"))
            record = factories.record(session, person, item, occurred)
            if item in ("LISTING", "ARREARS", "DEBTOR") and rng.random() < 0.6:
                repaired_on = occurred + dt.timedelta(days=rng.randrange(30, 3 * 365))
                change_record_state(
                    session,
                    record,
                    outcome=Outcome.REPAIRED,
                    repaired_on=repaired_on,
                    as_of=repaired_on,
                )
    for as_of in (dt.date(2024, 6, 30), dt.date(2026, 6, 30), dt.date(2028, 1, 1)):
        for person in people:
            _both_engines_agree(session, person, as_of)
