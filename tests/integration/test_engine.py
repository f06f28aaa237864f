"""Consent, ingestion, expiry, explanation and what-if, as operators and citizens see them."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citycredit.cli.demo import reference_model_text
from citycredit.core.audit import AuditEvent
from citycredit.core.db import utcnow
from citycredit.core.idnumber import parse_id_number
from citycredit.core.jobs import registered_jobs
from points_engine import batches, ingest, operations, quality, queries
from points_engine.models import (
    IngestBatch,
    Record,
    RecordRevision,
    ScoreDirty,
    ScoreSnapshot,
)
from tests import factories
from tests.conftest import KEY
from tests.rule_cases import AS_OF, ITEMISED

HEADER = "source,source_record_id,id_number,item_code,document_no,occurred_on,reported_on,status\n"


def run_ingest(session: Session, text: str, fmt: str = "csv") -> ingest.IngestReport:
    """The records API's way: one unit of work."""
    rows = ingest.read_rows(io.StringIO(text), fmt)
    return batches.ingest(session, rows, origin="test", fmt=fmt, key=KEY, today=AS_OF).report


def setup(session: Session) -> None:
    factories.source(session, "court")
    factories.published(session, ITEMISED)


def score_of(session: Session, number: str) -> int | None:
    from citycredit.core.idnumber import parse_id_number

    person = queries.find_citizen(session, KEY, parse_id_number(number))
    assert person is not None
    snap = queries.current_snapshot(session, person.id)
    return snap.score if snap else None


def test_good_rows_land_and_each_bad_row_is_reported_with_row_field_and_reason(
    session: Session,
) -> None:
    setup(session)
    good = factories.id_number()
    bad_id = good[:17] + ("0" if good[17] != "0" else "1")
    text = HEADER + (
        f"court,a1,{good},FINE,文书1,2026-01-01,2026-01-02,active\n"
        f"court,a2,{bad_id},FINE,文书2,2026-01-01,2026-01-02,active\n"
        f"court,a3,{good},JAYWALKING,文书3,2026-01-01,2026-01-02,active\n"
        f"tax,a4,{good},FINE,文书4,2026-01-01,2026-01-02,active\n"
        f"court,a5,{good},FINE,,2099-01-01,2026-01-02,active\n"
        f"court,a6,{good},BIG_FINE,文书6,2026-02-01,2026-02-01,\n"
    )
    report = run_ingest(session, text)
    assert (report.rows, report.inserted, report.rejected) == (6, 2, 4)
    found = {(e.row, e.field) for e in report.errors}
    assert found == {
        (3, "id_number"),
        (4, "item_code"),
        (5, "source"),
        (6, "document_no"),
        (6, "occurred_on"),
        (6, "reported_on"),
    }
    assert all(bad_id not in e.reason and good not in e.reason for e in report.errors)
    # Ingested records update the citizen's score at once (consent given first).
    person = queries.find_citizen(session, KEY, parse_id_number(good))
    assert person is not None
    operations.give_consent(session, person, channel="test", as_of=AS_OF)
    assert score_of(session, good) == 1000 - 5 - 20


def test_reingesting_the_same_rows_changes_nothing(session: Session) -> None:
    setup(session)
    number = factories.id_number()
    text = HEADER + f"court,b1,{number},FINE,文书,2026-01-01,2026-01-02,active\n"
    first = run_ingest(session, text)
    records = session.scalar(select(func.count()).select_from(Record))
    second = run_ingest(session, text)
    assert (first.inserted, second.inserted, second.updated, second.unchanged) == (1, 0, 0, 1)
    assert session.scalar(select(func.count()).select_from(Record)) == records


def test_a_changed_row_is_an_update_kept_in_history_and_rescored(session: Session) -> None:
    setup(session)
    number = factories.id_number()
    person = factories.citizen(session, number=number)
    run_ingest(session, HEADER + f"court,c1,{number},BIG_FINE,文书,2026-01-01,2026-01-02,active\n")
    assert score_of(session, number) == 980
    report = run_ingest(
        session, HEADER + f"court,c1,{number},BIG_FINE,文书,2026-01-01,2026-01-02,revoked\n"
    )
    assert (report.inserted, report.updated) == (0, 1)
    assert score_of(session, number) == 1000
    revision = session.scalar(select(RecordRevision))
    assert revision is not None and revision.content["source_status"] == "active"
    record = session.scalar(select(Record).where(Record.citizen_id == person.id))
    assert record is not None and (record.revision, record.status) == (2, "revoked")


def test_the_same_record_twice_in_one_file_is_written_then_updated(session: Session) -> None:
    setup(session)
    number = factories.id_number()
    text = HEADER + (
        f"court,d1,{number},FINE,文书,2026-01-01,2026-01-02,active\n"
        f"court,d1,{number},FINE,文书,2026-01-01,2026-01-02,revoked\n"
    )
    report = run_ingest(session, text)
    assert (report.inserted, report.updated) == (1, 1)


def test_json_lines_with_a_broken_line(session: Session) -> None:
    setup(session)
    number = factories.id_number()
    text = (
        json.dumps(
            {
                "source": "court",
                "source_record_id": "e1",
                "id_number": number,
                "item_code": "FINE",
                "document_no": "文书",
                "occurred_on": "2026-01-01",
                "reported_on": "2026-01-01",
            }
        )
        + "\n{not json\n"
    )
    report = run_ingest(session, text, "jsonl")
    assert report.inserted == 1
    assert [(e.row, e.field) for e in report.errors] == [(2, "(line)")]


def test_consent_withdrawal_erases_scores_and_stops_scoring(session: Session) -> None:
    setup(session)
    person = factories.citizen(session, consent=False)
    factories.record(session, person, "FINE", "2026-01-01")
    assert operations.give_consent(session, person, channel="app", as_of=AS_OF) is not None
    assert queries.current_snapshot(session, person.id) is not None
    operations.withdraw_consent(session, person, channel="app")
    assert (
        session.scalar(
            select(func.count())
            .select_from(ScoreSnapshot)
            .where(ScoreSnapshot.citizen_id == person.id)
        )
        == 0
    )
    operations.recompute_all(session, as_of=AS_OF)
    assert queries.current_snapshot(session, person.id) is None
    assert [e.action for e in person.consent_events] == ["given", "withdrawn"]


def test_expiry_job_archives_records_and_updates_scores(session: Session) -> None:
    setup(session)
    person = factories.citizen(session)
    record = factories.record(session, person, "BIG_FINE", "2025-01-10")  # valid 730 days
    record.expires_on = dt.date(2027, 1, 10)
    operations.recompute_all(session, as_of=AS_OF)
    assert queries.current_snapshot(session, person.id).score == 980  # type: ignore[union-attr]
    expired, result = operations.expire_records(session, today=dt.date(2027, 1, 10))
    assert expired == 1 and result is not None and result.changed == 1
    # Time is not a status (issue 11 §0): the record stays active and counts no more by its date.
    session.refresh(record)
    assert (record.status, record.expiry_rescored) == ("active", True)
    snap = queries.current_snapshot(session, person.id)
    assert snap is not None and snap.score == 1000
    assert session.scalar(select(func.count()).select_from(ScoreDirty)) == 0
    # The old score stays in history.
    assert (
        session.scalar(
            select(func.count())
            .select_from(ScoreSnapshot)
            .where(ScoreSnapshot.citizen_id == person.id)
        )
        == 2
    )


def test_explanation_accounts_for_every_point_and_is_audited(session: Session) -> None:
    setup(session)
    person = factories.citizen(session)
    factories.record(session, person, "FINE", "2026-03-01")
    factories.record(session, person, "BIG_FINE", "2026-03-01")
    factories.record(session, person, "AWARD", "2026-01-01")
    factories.record(session, person, "AWARD", "2026-02-01")
    operations.recompute_all(session, as_of=AS_OF)
    explanation = queries.explain(session, person, as_of=AS_OF, actor="tester", purpose="test")
    snap = queries.current_snapshot(session, person.id)
    assert snap is not None and explanation.score == snap.score == 1000 - 20 + 15
    assert sum(r.points for r in explanation.records) == explanation.score - 1000
    reasons = sorted(reason for r in explanation.records for reason in r.reasons)
    assert reasons == ["capped", "overlapped"]
    assert all(r.legal_basis for r in explanation.records)
    event = session.scalar(select(AuditEvent).where(AuditEvent.citizen_id == person.id))
    assert event is not None and (event.actor, event.action) == ("tester", "citizen.explain")


def test_what_if_compares_a_draft_without_publishing_it(session: Session) -> None:
    setup(session)
    people = [factories.citizen(session) for _ in range(3)]
    factories.record(session, people[0], "BIG_FINE", "2026-03-01")
    operations.recompute_all(session, as_of=AS_OF)
    harsher = ITEMISED.replace(
        "points: -20, overlap_group: act", "points: -60, validity_days: 730, overlap_group: act"
    ).replace("cap: {min: -50}", "cap: {min: -100}")
    draft = operations.load_model_version(session, harsher, "harsher.yaml")
    report = queries.what_if(session, draft, as_of=AS_OF, actor="tester")
    assert (report.basis, report.citizens, report.moved) == ("tier", 3, 1)
    assert report.common_transitions[(2, 1)] == 1  # B is level 2, C level 1
    assert report.transitions[("B", "C")] == 1 and report.transitions[("A", "A")] == 2
    assert report.biggest_movers[0].citizen_id == people[0].id
    assert (report.biggest_movers[0].old_score, report.biggest_movers[0].new_score) == (980, 940)
    assert draft.status == "draft"
    assert queries.current_snapshot(session, people[0].id).score == 980  # type: ignore[union-attr]


def test_what_if_ranks_tier_changes_first_then_the_share_of_each_scale(session: Session) -> None:
    setup(session)
    fined, awarded = factories.citizen(session), factories.citizen(session)
    factories.record(session, fined, "PENALTY", "2026-03-01")  # 970, tier B
    factories.record(session, awarded, "AWARD", "2026-03-01")  # 1010, tier AA
    operations.recompute_all(session, as_of=AS_OF)
    # The fine costs 15 more points but stays in B; the award gives 5 fewer and drops AA to A.
    # Raw points would list the fine first; the tier a citizen lands in is what changes benefits.
    draft_text = (
        ITEMISED.replace("points: -30, repeat_multiplier: 3", "points: -45, repeat_multiplier: 3")
        .replace("points: 10, yearly_cap: 15", "points: 5, yearly_cap: 15")
        .replace("score_range: {min: 0, max: 1200}", "score_range: {min: 0, max: 2400}")
    )
    draft = operations.load_model_version(session, draft_text, "draft.yaml")
    movers = queries.what_if(session, draft, as_of=AS_OF, actor="t").biggest_movers
    first, second = movers[0], movers[1]
    assert (first.citizen_id, first.tier_steps, first.old_tier, first.new_tier) == (
        awarded.id,
        -1,
        "AA",
        "A",
    )
    assert (second.citizen_id, second.tier_steps) == (fined.id, 0)
    # Each score is placed on its own model's range: 0-1200 now, 0-2400 in the draft.
    assert first.scale_change == pytest.approx(1005 / 2400 - 1010 / 1200)
    assert second.scale_change == pytest.approx(955 / 2400 - 970 / 1200)
    assert first.reference == f"C{awarded.id}"
    assert queries.find_citizen_by_reference(session, first.reference) == awarded
    assert queries.find_citizen_by_reference(session, f"#{awarded.id}") == awarded
    for not_a_reference in (str(awarded.id), "C", "Cx1", "C１", factories.id_number()):
        assert queries.find_citizen_by_reference(session, not_a_reference) is None


def test_publishing_a_model_rederives_expiry_dates(session: Session) -> None:
    setup(session)
    person = factories.citizen(session)
    record = factories.record(session, person, "VOLUNTEER_SERVICE", "2026-01-01")
    version = operations.load_model_version(
        session, reference_model_text("itemised-base1000.yaml"), "ref"
    )
    operations.publish_model_version(session, version, actor="test")
    session.refresh(record)
    assert record.expires_on == dt.date(2027, 1, 1)


def test_an_interrupted_ingest_keeps_whole_chunks_and_a_rerun_completes_it(
    session: Session,
) -> None:
    setup(session)
    numbers = [factories.id_number() for _ in range(12)]
    rows = [
        (
            n + 2,
            dict(
                zip(
                    ingest.FIELDS,
                    [
                        "court",
                        f"k{n}",
                        numbers[n],
                        "FINE",
                        "文书",
                        "2026-01-01",
                        "2026-01-02",
                        "active",
                    ],
                    strict=True,
                )
            ),
        )
        for n in range(12)
    ]

    def crashing() -> Iterator[tuple[int, dict[str, str]]]:
        yield from rows[:8]
        raise ConnectionResetError("the source's file share went away")

    batch = ingest.start_batch(session, "test", "csv")
    session.commit()
    with pytest.raises(ConnectionResetError):
        for _ in ingest.ingest_rows(
            session, crashing(), key=KEY, batch=batch, today=AS_OF, chunk_size=5
        ):
            session.commit()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Record)) == 5  # one whole chunk

    batch = ingest.start_batch(session, "test", "csv")
    *_, report = ingest.ingest_rows(
        session, iter(rows), key=KEY, batch=batch, today=AS_OF, chunk_size=5
    )
    assert (report.inserted, report.unchanged) == (7, 5)
    assert session.scalar(select(func.count()).select_from(Record)) == 12
    # Every citizen touched by either run is rescored once the input ends.
    operations.drain_dirty(session, as_of=AS_OF)
    assert session.scalar(select(func.count()).select_from(ScoreDirty)) == 0


def test_what_if_across_tier_tables_compares_on_the_common_scale(session: Session) -> None:
    setup(session)
    person = factories.citizen(session)
    factories.record(session, person, "BIG_FINE", "2026-03-01")
    operations.recompute_all(session, as_of=AS_OF)
    other = operations.load_model_version(
        session, reference_model_text("weighted-dimensions.yaml"), "weighted.yaml"
    )
    report = queries.what_if(session, other, as_of=AS_OF, actor="tester")
    # B (level 2) under the test model; no records the weighted model knows: bases only, 710, GOOD (3).
    assert report.basis == "common_tier"
    assert report.transitions == {("B", "GOOD"): 1}
    assert report.common_transitions == {(2, 3): 1} and report.moved == 1


def test_resending_a_row_after_its_expiry_changes_nothing(session: Session) -> None:
    setup(session)
    number = factories.id_number()
    row = HEADER + f"court,z1,{number},FINE,文书,2024-01-01,2024-01-02,active\n"
    run_ingest(session, row)
    operations.expire_records(session, today=AS_OF)
    report = run_ingest(session, row)
    assert (report.updated, report.unchanged) == (0, 1)
    assert session.scalar(select(Record.expiry_rescored)) is True
    assert session.scalar(select(func.count()).select_from(RecordRevision)) == 0


def test_a_shifted_row_never_echoes_an_id_number(session: Session) -> None:
    setup(session)
    number = factories.id_number()
    # The source_record_id cell is missing: every later value moves one column left.
    report = run_ingest(
        session, HEADER + f"court,{number},FINE,文书,2026-01-01,2026-01-02,active,\n"
    )
    text = repr(report.errors)
    assert report.rejected == 1 and number not in text and number[6:14] not in text


def test_a_model_with_longer_validity_brings_archived_records_back(session: Session) -> None:
    setup(session)
    person = factories.citizen(session)
    factories.record(session, person, "AWARD", "2025-05-01", status="expired")
    operations.recompute_all(session, as_of=AS_OF)
    assert queries.current_snapshot(session, person.id).score == 1000  # type: ignore[union-attr]
    longer = ITEMISED.replace("{max_abs_points: 10, days: 365}", "{max_abs_points: 10, days: 730}")
    draft = operations.load_model_version(session, longer, "longer.yaml")
    assert (
        queries.what_if(session, draft, as_of=AS_OF, actor="t").biggest_movers[0].new_score == 1010
    )
    operations.publish_model_version(session, draft, actor="t", today=AS_OF)
    operations.recompute_all(session, as_of=AS_OF)
    assert session.scalar(select(Record.status)) == "active"
    assert queries.current_snapshot(session, person.id).score == 1010  # type: ignore[union-attr]


def test_a_source_may_file_only_its_own_items(session: Session) -> None:
    setup(session)
    operations.add_source(session, "volunteer", "志愿者联合会", "Volunteers", items=["AWARD"])
    number = factories.id_number()
    report = run_ingest(
        session,
        HEADER
        + f"volunteer,v1,{number},AWARD,证1,2026-01-01,2026-01-02,active\n"
        + f"volunteer,v2,{number},DEBTOR,证2,2026-01-01,2026-01-02,active\n",
    )
    assert report.inserted == 1
    assert [(e.row, e.field, e.reason) for e in report.errors] == [
        (3, "item_code", "source 'volunteer' does not report 'DEBTOR'")
    ]


def _row(ref: str, number: str, document: str = "文书", **fields: str) -> dict[str, str]:
    base = dict(
        source="court",
        source_record_id=ref,
        id_number=number,
        item_code="FINE",
        document_no=document,
        occurred_on="2026-01-01",
        reported_on="2026-01-02",
        status="active",
    )
    return base | fields


def _jsonl(*rows: dict[str, str]) -> str:
    # ensure_ascii: NUL and lone surrogates travel as \u escapes, as they do in the records API's JSON.
    return "".join(json.dumps(row, ensure_ascii=True) + "\n" for row in rows)


def test_control_characters_are_row_errors_naming_the_field_and_the_other_rows_land(
    session: Session,
) -> None:
    setup(session)
    number = factories.id_number()
    report = run_ingest(
        session,
        _jsonl(
            _row("n1", number, "文书\x00一"),
            _row("n2\x1b[2J", number),
            _row("n3", number, item_code="FINE\t"),
            _row("n4", number + "\x00"),
            _row("n5", number, source="court\x00"),
            _row("n6", number, "文书\ud800"),
            _row("n7", number, "第一行\n第二行"),
            _row("n8", number, note="a column the platform ignores, with a NUL\x00"),
            _row("n9", number, "文书9"),
        ),
        "jsonl",
    )
    assert (report.rows, report.inserted, report.rejected) == (9, 1, 8)
    # One precise error per bad field, no cascade ("missing", "unknown source") after it.
    assert [(e.row, e.field, e.reason) for e in report.errors] == [
        (1, "document_no", "contains a control character U+0000 at character 3"),
        (2, "source_record_id", "contains a control character U+001B at character 3"),
        (3, "item_code", "contains a control character U+0009 at character 5"),
        (4, "id_number", "contains a control character U+0000 at character 19"),
        (5, "source", "contains a control character U+0000 at character 6"),
        (
            6,
            "document_no",
            "contains an unpaired surrogate (not valid Unicode text) U+D800 at character 3",
        ),
        (7, "document_no", "contains a control character U+000A at character 4"),
        (8, "note", "contains a control character U+0000 at character 42"),
    ]
    # What is echoed is escaped: one line, storable, and no terminal escape.
    assert report.errors[1].source_record_id == "n2\\x1b[2J"
    stored = session.get(IngestBatch, report.batch_id)
    assert stored is not None and stored.errors[1]["source_record_id"] == "n2\\x1b[2J"
    assert session.scalars(select(Record.source_record_id)).all() == ["n9"]


def test_an_id_number_in_a_free_text_field_is_a_row_error_that_never_echoes_it(
    session: Session,
) -> None:
    setup(session)
    number, other = factories.id_number(), factories.id_number()
    wide = other.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    not_checked = other[:17] + ("1" if other[17] != "1" else "2")
    report = run_ingest(
        session,
        HEADER
        + f"court,{other},{number},FINE,文书1,2026-01-01,2026-01-02,active\n"
        + f"court,i2,{number},FINE,罚字 当事人{other}号,2026-01-01,2026-01-02,active\n"
        + f"court,i3,{number},FINE,当事人{wide},2026-01-01,2026-01-02,active\n"
        + f"court,i4,{number},FINE,{other.lower()},2026-01-01,2026-01-02,active\n"
        # Not ID numbers: a longer serial, and 18 digits that fail the check digit.
        + f"court,i5,{number},FINE,编号{other}7,2026-01-01,2026-01-02,active\n"
        + f"court,i6,{number},FINE,编号{not_checked},2026-01-01,2026-01-02,active\n",
    )
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "source_record_id"),
        (3, "document_no"),
        (4, "document_no"),
        (5, "document_no"),
    ]
    assert report.errors[0].reason == (
        "holds a citizen ID number; it belongs in id_number only and is never stored in other fields"
    )
    stored = session.get(IngestBatch, report.batch_id)
    assert stored is not None
    echoed = repr(report.errors) + json.dumps(stored.errors, ensure_ascii=False)
    assert other not in echoed and other[6:14] not in echoed and number not in echoed
    kept = session.scalars(select(Record.document_no).order_by(Record.source_record_id)).all()
    assert kept == [f"编号{other}7", f"编号{not_checked}"]


def test_an_id_number_in_full_width_digits_or_at_a_cut_is_never_echoed(session: Session) -> None:
    setup(session)
    number, other = factories.id_number(), factories.id_number()
    wide = other.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    at_cut = "R" * 120 + other  # cut at 128 characters: the region and birth date would show
    report = run_ingest(
        session,
        HEADER
        + f"court,ref-{wide},{number},FINE,文书1,2026-01-01,2026-01-02,active\n"
        + f"court,{at_cut},{number},FINE,文书2,2026-01-01,2026-01-02,active\n",
    )
    assert [(e.row, e.field) for e in report.errors][:1] == [(2, "source_record_id")]
    assert {e.row for e in report.errors} == {2, 3}
    stored = session.get(IngestBatch, report.batch_id)
    assert stored is not None
    echoed = repr(report.errors) + json.dumps(stored.errors, ensure_ascii=False)
    assert wide not in echoed and other not in echoed
    assert wide[6:14] not in echoed and other[:8] not in echoed


def _numbered(count: int, prefix: str = "k") -> list[tuple[int, dict[str, str]]]:
    return [(n + 2, _row(f"{prefix}{n}", factories.id_number())) for n in range(count)]


def test_a_rerun_completes_the_batch_a_killed_run_left_running(session: Session) -> None:
    setup(session)
    rows = _numbered(12)
    # A run killed after its first chunk: its batch still says running, and its process is gone.
    killed = ingest.start_batch(session, "/data/court.csv", "csv")
    killed.runner = f"{socket.gethostname()}:{_pid_of_finished_process()}"
    for _ in ingest.ingest_rows(
        session, iter(rows[:5]), key=KEY, batch=killed, today=AS_OF, chunk_size=5
    ):
        session.commit()
    assert killed.status == "running"

    result = batches.ingest(
        session,
        iter(rows),
        origin="/data/court.csv",
        fmt="csv",
        key=KEY,
        today=AS_OF,
        chunk_size=5,
        commit_chunks=True,
    )
    assert str(result.completes) == f"completes batch #{killed.id} (interrupted after 5 rows)"
    assert (result.report.inserted, result.report.unchanged) == (7, 5)
    rerun = session.get(IngestBatch, result.report.batch_id)
    assert rerun is not None and (rerun.status, rerun.completes_batch_id) == (
        "completed",
        killed.id,
    )
    assert killed.status == "interrupted"
    assert session.scalar(select(func.count()).select_from(ScoreDirty)) == 0
    # The source's figures count each row once: 12 received, 12 new records, no duplicates (the
    # five rows the killed run wrote are not the source sending them twice).
    court = {f.code: f for f in quality.figures(session, AS_OF, AS_OF)}["court"]
    assert (court.received, court.inserted, court.duplicates) == (12, 12, 0)
    # The next rerun has nothing left to complete.
    again = batches.ingest(
        session, iter(rows), origin="/data/court.csv", fmt="csv", key=KEY, today=AS_OF,
        commit_chunks=True,
    )  # fmt: skip
    assert again.completes is None and again.report.unchanged == 12
    # Sent again, in full: that is twelve duplicates.
    court = {f.code: f for f in quality.figures(session, AS_OF, AS_OF)}["court"]
    assert (court.received, court.inserted, court.duplicates) == (24, 12, 12)


def _pid_of_finished_process() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_running_batch_stays_running_while_its_runner_lives_and_is_marked_once_silent(
    session: Session,
) -> None:
    assert "points.mark_interrupted_batches" in {job.id for job in registered_jobs()}
    here = ingest.start_batch(session, "a.csv", "csv")  # this very process
    elsewhere = ingest.start_batch(session, "b.csv", "csv")
    elsewhere.runner = "another-host:4242"
    silent = ingest.start_batch(session, "c.csv", "csv")
    silent.runner = "another-host:4243"
    silent.progress_at = utcnow() - batches.STALE_AFTER - dt.timedelta(seconds=1)
    gone = ingest.start_batch(session, "d.csv", "csv")
    gone.runner = f"{socket.gethostname()}:{_pid_of_finished_process()}"
    session.flush()
    assert batches.mark_interrupted(session) == [silent.id, gone.id]
    assert (here.status, elsewhere.status) == ("running", "running")
    later = utcnow() + batches.STALE_AFTER + dt.timedelta(seconds=1)
    assert batches.mark_interrupted(session, now=later) == [here.id, elsewhere.id]


def test_a_failed_run_says_so_ctrl_c_says_interrupted_and_the_rerun_completes_either(
    session: Session,
) -> None:
    rows = _numbered(12)
    with pytest.raises(operations.NoPublishedModel):
        batches.ingest(session, iter(rows), origin="f.csv", fmt="csv", key=KEY, today=AS_OF)
    assert session.scalar(select(func.count()).select_from(IngestBatch)) == 0
    setup(session)

    def stopping(error: BaseException) -> Iterator[tuple[int, dict[str, str]]]:
        yield from rows[:8]
        raise error

    options: dict[str, Any] = dict(
        origin="f.csv", fmt="csv", key=KEY, today=AS_OF, chunk_size=5, commit_chunks=True
    )
    with pytest.raises(ConnectionResetError):
        batches.ingest(session, stopping(ConnectionResetError("share gone")), **options)
    with pytest.raises(KeyboardInterrupt):
        batches.ingest(session, stopping(KeyboardInterrupt()), **options)
    first, second = session.scalars(select(IngestBatch).order_by(IngestBatch.id)).all()
    assert (first.status, first.rows_total, first.finished_at is not None) == ("failed", 5, True)
    assert (second.status, second.completes_batch_id) == ("interrupted", first.id)
    result = batches.ingest(session, iter(rows), **options)
    assert str(result.completes) == f"completes batch #{second.id} (interrupted after 5 rows)"
    assert (result.report.inserted, result.report.unchanged) == (7, 5)
