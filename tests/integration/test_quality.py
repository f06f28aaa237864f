"""Data quality per source (issue 13 §2): a month of collection gives exactly the expected figures.

The expected figures are worked out here from the rows the test generates, with the calendar read
from ``chinese_calendar`` directly (not through the platform's calendar code), so an error in the
platform's deadline arithmetic, tallies or rejections shows up as a mismatch.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections import Counter
from dataclasses import dataclass, field

import chinese_calendar
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor
from points_engine import batches, catalogue, ingest, quality, queries
from points_engine.models import Record, RejectedRow
from tests import factories
from tests.conftest import KEY
from tests.rule_cases import ITEMISED

HEADER = "source,source_record_id,id_number,item_code,document_no,occurred_on,reported_on,status\n"
OFFICE = Actor("office-a", can_publish=True)
REVIEWER = Actor("office-b", can_publish=True)
# FINE must be reported within 3 working days, AWARD within 5; LICENCE scores nothing.
CATALOGUE = (
    "code,kind,name_zh,name_en,legal_basis,fields,reporters,deadline_days,public,publish_days\n"
    "AWARD,award,奖,Award,测试依据第一条,,,5,no,\n"
    "FINE,penalty,罚,Fine,测试依据第二条,,,3,yes,7\n"
    "BIG_FINE,penalty,重罚,Big fine,测试依据第三条,,,3,yes,7\n"
    "PENALTY,penalty,处罚,Penalty,测试依据第四条,,,3,yes,7\n"
    "DEBTOR,judicial,失信,Debtor,测试依据第五条,,court,3,yes,7\n"
    "WATCH,judicial,关注,Watch list,测试依据第八条,,court,3,no,\n"
    "LICENCE,licensing,许可,Licence,测试依据第九条,,,3,yes,7\n"
)
DEADLINE = {"AWARD": 5, "FINE": 3, "LICENCE": 3}
JUNE = dt.date(2026, 6, 1)


def publish_catalogue(session: Session) -> int:
    version = catalogue.create_draft(session, CATALOGUE, actor=OFFICE)
    catalogue.submit(session, version, actor=OFFICE)
    catalogue.publish(session, version, actor=REVIEWER)
    return version.number


def working_days_back(day: dt.date, k: int) -> dt.date:
    """The date with exactly ``k`` working days after it up to and including ``day``."""
    count = 0
    while count < k:
        if chinese_calendar.is_workday(day):
            count += 1
        day -= dt.timedelta(days=1)
    return day


def csv_row(source: str, ref: str, number: str, item: str, occurred: dt.date, doc: str) -> str:
    return f"{source},{ref},{number},{item},{doc},{occurred},{occurred},active\n"


def run(session: Session, text: str, today: dt.date) -> ingest.IngestReport:
    rows = ingest.read_rows(io.StringIO(text), "csv")
    return batches.ingest(session, rows, origin="t", fmt="csv", key=KEY, today=today).report


@dataclass
class Expected:
    received: int = 0
    rejected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    id_errors: int = 0
    inserted: int = 0
    duplicates: int = 0
    corrections: int = 0
    timed: int = 0
    on_time: int = 0


def test_a_month_of_collection_gives_exactly_the_expected_rates_and_grades(
    session: Session,
) -> None:
    for code in ("court", "market", "tax"):
        factories.source(session, code)
    factories.published(session, ITEMISED)
    publish_catalogue(session)
    rng = random.Random(13)
    # Each source's own mix: the court is nearly perfect, the market late, tax sends bad rows.
    mix = {
        "court": {"late": 0.02, "bad": 0.0, "dup": 0.1},
        "market": {"late": 0.3, "bad": 0.05, "dup": 0.1},
        "tax": {"late": 0.1, "bad": 0.25, "dup": 0.05},
    }
    expected = {code: Expected() for code in mix}
    sent: dict[str, list[tuple[str, str, str, dt.date, str]]] = {code: [] for code in mix}
    serial = 0
    # Sent on the last working day of May: outside June's figures.
    may = working_days_back(JUNE - dt.timedelta(days=1), 0)
    run(session, HEADER + csv_row("court", "may-1", factories.id_number(), "FINE", may, "d"), may)
    day = JUNE
    while day.month == 6:
        if not chinese_calendar.is_workday(day):
            day += dt.timedelta(days=1)
            continue
        for source, rates in mix.items():
            text = HEADER
            exp = expected[source]
            for _ in range(rng.randint(3, 8)):
                serial += 1
                ref = f"{source}-{serial}"
                roll = rng.random()
                exp.received += 1
                if roll < rates["bad"]:
                    problem = rng.choice(("id", "missing", "uncatalogued"))
                    exp.rejected += 1
                    number = factories.id_number()
                    item, doc = "FINE", "doc"
                    if problem == "id":
                        number = number[:-1] + ("0" if number[-1] != "0" else "1")
                        exp.by_reason["id_number"] += 1
                        exp.id_errors += 1
                    elif problem == "missing":
                        doc = ""
                        exp.by_reason["missing"] += 1
                    else:
                        item = "NOT_CATALOGUED"
                        exp.by_reason["uncatalogued"] += 1
                    text += csv_row(source, ref, number, item, day, doc)
                    continue
                if sent[source] and roll < rates["bad"] + rates["dup"]:
                    old_ref, number, item, occurred, doc = rng.choice(sent[source])
                    if rng.random() < 0.5:
                        exp.duplicates += 1
                        text += csv_row(source, old_ref, number, item, occurred, doc)
                    else:
                        exp.corrections += 1
                        new_doc = doc + "-corrected"
                        sent[source] = [
                            s if s[0] != old_ref else (old_ref, number, item, occurred, new_doc)
                            for s in sent[source]
                        ]
                        text += csv_row(source, old_ref, number, item, occurred, new_doc)
                    continue
                item = rng.choice(("AWARD", "FINE", "LICENCE"))
                late = rng.random() < rates["late"]
                k = DEADLINE[item] + rng.randint(1, 4) if late else rng.randint(0, DEADLINE[item])
                occurred = working_days_back(day, k)
                number = factories.id_number()
                exp.inserted += 1
                exp.timed += 1
                exp.on_time += not late
                sent[source].append((ref, number, item, occurred, "doc"))
                text += csv_row(source, ref, number, item, occurred, "doc")
            run(session, text, day)
        day += dt.timedelta(days=1)

    figures = {f.code: f for f in quality.month_figures(session, JUNE)}
    assert set(figures) == set(mix)
    grades = {}
    for source, exp in expected.items():
        got = figures[source]
        assert (got.received, got.rejected, got.accepted) == (
            exp.received,
            exp.rejected,
            exp.received - exp.rejected,
        ), source
        assert got.rejected_by_reason == dict(exp.by_reason), source
        assert got.id_number_errors == exp.id_errors
        assert (got.inserted, got.duplicates, got.corrections) == (
            exp.inserted,
            exp.duplicates,
            exp.corrections,
        ), source
        assert (got.timed, got.on_time) == (exp.timed, exp.on_time), source
        qualified = (exp.received - exp.rejected) / exp.received
        on_time = exp.on_time / exp.timed
        assert got.qualified_rate == pytest.approx(qualified)
        assert got.on_time_rate == pytest.approx(on_time)
        score = 50 * qualified + 50 * on_time - (10 if exp.id_errors / exp.received > 0.0001 else 0)
        assert got.score == pytest.approx(round(score, 2))
        grades[source] = "A" if score >= 90 else "B" if score >= 80 else "C"
        assert got.grade == grades[source]
    # The mixes were chosen to land in different bands: the figures must tell them apart.
    assert grades["court"] == "A" and grades["tax"] == "C", grades
    assert "qualified_rate" in figures["tax"].missed()
    assert figures["court"].qualified_rate == 1.0
    assert "qualified_rate" not in figures["court"].missed()
    total = quality.city_total(figures.values(), quality.targets(session))
    assert total.received == sum(e.received for e in expected.values())
    # May's row is May's.
    may_figures = {f.code: f for f in quality.month_figures(session, may)}
    assert may_figures["court"].received == 1 and may_figures["market"].received == 0
    # A clerk's view is their source only.
    only = quality.month_figures(session, JUNE, source_ids=[figures["tax"].source_id])
    assert [f.code for f in only] == ["tax"]


def test_a_rejected_row_is_tracked_until_the_source_resends_it_corrected(session: Session) -> None:
    court = factories.source(session, "court")
    factories.published(session, ITEMISED)
    publish_catalogue(session)
    day = dt.date(2026, 6, 10)
    good = factories.id_number()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    report = run(
        session,
        HEADER
        + csv_row("court", "c-1", bad, "FINE", day, "doc")
        + csv_row("court", "c-2", good, "NOT_CATALOGUED", day, "doc"),
        day,
    )
    assert report.rejected == 2
    clerk = Actor.for_source("clerk", source_id=court.id)
    still_open = quality.open_rejections(session, actor=clerk)
    assert [(r.source_record_id, r.reason) for r in still_open] == [
        ("c-1", "id_number"),
        ("c-2", "uncatalogued"),
    ]
    # No ID number is kept with the rejected row, not even the wrong one.
    assert bad not in str([r.errors for r in still_open])
    # Another source's clerk sees none of them.
    other = factories.source(session, "tax")
    assert quality.open_rejections(session, actor=Actor.for_source("x", source_id=other.id)) == []

    later = dt.date(2026, 6, 12)
    fixed = run(session, HEADER + csv_row("court", "c-1", good, "FINE", day, "doc"), later)
    assert fixed.inserted == 1
    row = session.scalar(select(RejectedRow).where(RejectedRow.source_record_id == "c-1"))
    assert row is not None and row.resolution == "resent"
    assert row.resolved_by_batch_id == fixed.batch_id
    assert [r.source_record_id for r in quality.open_rejections(session, actor=clerk)] == ["c-2"]
    # The clerk closes the other one: it will not be sent again.
    with pytest.raises(ValueError):
        quality.dismiss_rejection(session, still_open[1].id, actor=clerk, reason=" ")
    quality.dismiss_rejection(session, still_open[1].id, actor=clerk, reason="sent by mistake")
    assert quality.open_rejections(session, actor=clerk) == []
    june = {f.code: f for f in quality.month_figures(session, day)}["court"]
    assert (june.received, june.rejected, june.open_rejections) == (3, 2, 0)
    # Resent two working days after it occurred, within the entry's three: on time.
    record = session.scalar(select(Record).where(Record.source_record_id == "c-1"))
    assert record is not None and record.received_on == later and record.due_on is not None
    assert (june.timed, june.on_time) == (1, 1)


def test_a_non_scoring_catalogued_record_lands_and_changes_no_score(session: Session) -> None:
    factories.source(session, "court")
    factories.published(session, ITEMISED)
    number = publish_catalogue(session)
    person = factories.id_number()
    day = dt.date(2026, 6, 10)
    run(session, HEADER + csv_row("court", "a-1", person, "AWARD", day, "doc"), day)
    from citycredit.core.idnumber import parse_id_number

    citizen = queries.find_citizen(session, KEY, parse_id_number(person))
    assert citizen is not None
    citizen.consent_given = True
    session.flush()
    from points_engine import operations

    operations.mark_dirty(session, [citizen.id])
    operations.drain_dirty(session, as_of=day)
    before = queries.current_snapshot(session, citizen.id)
    assert before is not None and before.score == 1010
    report = run(session, HEADER + csv_row("court", "l-1", person, "LICENCE", day, "doc"), day)
    assert (report.inserted, report.rejected) == (1, 0)
    licence = session.scalar(select(Record).where(Record.source_record_id == "l-1"))
    assert licence is not None and licence.catalogue_version == number
    assert licence.expires_on is None  # nothing of it counts, so nothing expires
    operations.mark_dirty(session, [citizen.id])
    operations.drain_dirty(session, as_of=day)
    after = queries.current_snapshot(session, citizen.id)
    assert after is not None and after.score == before.score
    # An uncatalogued one is refused, naming the catalogue's version.
    refused = run(session, HEADER + csv_row("court", "x-1", person, "PARKING", day, "doc"), day)
    assert refused.rejected == 1
    error = refused.errors[0]
    assert error.field == "item_code" and f"(version {number})" in error.reason
    assert "catalogue" in error.reason
    # A reporter restriction: DEBTOR is the court's only.
    factories.source(session, "tax")
    wrong = run(session, HEADER + csv_row("tax", "t-1", person, "DEBTOR", day, "doc"), day)
    assert wrong.rejected == 1 and "not a reporter" in wrong.errors[0].reason


def test_a_backfill_of_historic_records_is_held_to_no_deadline(session: Session) -> None:
    factories.source(session, "court")
    factories.published(session, ITEMISED)
    publish_catalogue(session)
    day = dt.date(2026, 6, 10)
    old = dt.date(2024, 3, 1)
    text = HEADER + csv_row("court", "h-1", factories.id_number(), "FINE", old, "doc")
    rows = ingest.read_rows(io.StringIO(text), "csv")
    batches.ingest(session, rows, origin="h", fmt="csv", key=KEY, today=day, backfill=True)
    # The same old record sent as daily reporting is late.
    late = HEADER + csv_row("court", "h-2", factories.id_number(), "FINE", old, "doc")
    run(session, late, day)
    court = {f.code: f for f in quality.month_figures(session, day)}["court"]
    assert (court.received, court.inserted, court.timed, court.on_time) == (2, 2, 1, 0)
