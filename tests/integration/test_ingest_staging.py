"""Ingest through its staging table: the edge cases a set-based merge of a chunk has to get right."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from citycredit.core.idnumber import id_hash, parse_id_number
from points_engine import batches, ingest
from points_engine.models import (
    Citizen,
    IngestTally,
    Record,
    RecordRevision,
    RejectedRow,
    ScoreDirty,
)
from tests import factories
from tests.conftest import KEY
from tests.rule_cases import AS_OF, ITEMISED

HEADER = "source,source_record_id,id_number,item_code,document_no,occurred_on,reported_on,status\n"


def setup(session: Session) -> None:
    factories.source(session, "court")
    factories.published(session, ITEMISED)


def line(
    ref: str, number: str, doc: str = "文书", day: str = "2026-01-01", status: str = ""
) -> str:
    return f"court,{ref},{number},FINE,{doc},{day},2026-01-02,{status}\n"


def run(session: Session, text: str, chunk_size: int = 5000) -> ingest.IngestReport:
    rows = ingest.read_rows(io.StringIO(text), "csv")
    return batches.ingest(
        session, rows, origin="test", fmt="csv", key=KEY, today=AS_OF, chunk_size=chunk_size
    ).report


def write(session: Session, text: str, chunk_size: int) -> ingest.IngestReport:
    """Rows written without the drain that follows them (their dirty marks stay to be seen)."""
    batch = ingest.start_batch(session, "test", "csv")
    *_, report = ingest.ingest_rows(
        session,
        ingest.read_rows(io.StringIO(text), "csv"),
        key=KEY,
        batch=batch,
        today=AS_OF,
        chunk_size=chunk_size,
    )
    return report


def count(session: Session, table: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(table)) or 0)


def tallies(session: Session, batch_id: int) -> tuple[int, ...]:
    tally = session.scalar(select(IngestTally).where(IngestTally.batch_id == batch_id))
    assert tally is not None
    return (tally.received, tally.inserted, tally.updated, tally.unchanged, tally.rejected)


def test_the_same_record_twice_in_one_input_lands_then_is_corrected_or_repeated(
    session: Session,
) -> None:
    setup(session)
    person = factories.id_number()
    report = run(
        session,
        HEADER
        + line("r1", person, "第一版")
        + line("r2", person)
        + line("r1", person, "第二版")  # a correction of row 2, in the same input
        + line("r2", person),  # row 3 again, unchanged
    )
    assert (report.inserted, report.updated, report.unchanged) == (2, 1, 1)
    assert tallies(session, report.batch_id) == (4, 2, 1, 1, 0)
    record = session.scalar(select(Record).where(Record.source_record_id == "r1"))
    assert record is not None and (record.document_no, record.revision) == ("第二版", 2)
    revision = session.scalar(select(RecordRevision).where(RecordRevision.record_id == record.id))
    assert revision is not None and revision.content["document_no"] == "第一版"
    assert revision.content["occurred_on"] == "2026-01-01"
    assert count(session, Record) == 2 and count(session, Citizen) == 1


def test_a_chunk_mixing_new_changed_and_repeated_records_counts_each_once(
    session: Session,
) -> None:
    setup(session)
    people = [factories.id_number() for _ in range(3)]
    first = run(session, HEADER + "".join(line(f"r{n}", p) for n, p in enumerate(people)))
    assert first.inserted == 3
    # r0 repeated, r1 corrected (now repaired: its repair date is the day it was reported), r2 moved
    # to another citizen, r3 new with a citizen never seen.
    newcomer = factories.id_number()
    report = write(
        session,
        HEADER
        + line("r0", people[0])
        + line("r1", people[1], status="repaired")
        + line("r2", newcomer)
        + line("r3", newcomer),
        chunk_size=2,
    )
    assert (report.inserted, report.updated, report.unchanged) == (1, 2, 1)
    assert tallies(session, report.batch_id) == (4, 1, 2, 1, 0)
    r1 = session.scalar(select(Record).where(Record.source_record_id == "r1"))
    assert r1 is not None and (r1.status, str(r1.repaired_on), r1.revision) == (
        "repaired",
        "2026-01-02",
        2,
    )
    # Marked for rescoring: the corrected record's citizen, both citizens of the moved record and
    # the new record's; not the citizen whose record came back unchanged.
    citizen_of = dict(session.execute(select(Citizen.id_hash, Citizen.id)).all())
    ids = {
        number: citizen_of[id_hash(KEY, parse_id_number(number))] for number in (*people, newcomer)
    }
    dirty = set(session.scalars(select(ScoreDirty.citizen_id)))
    assert dirty == {ids[people[1]], ids[people[2]], ids[newcomer]}
    # Sent a third time: nothing changes.
    again = run(
        session,
        HEADER
        + line("r0", people[0])
        + line("r1", people[1], status="repaired")
        + line("r2", newcomer)
        + line("r3", newcomer),
    )
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    assert count(session, RecordRevision) == 2


def test_a_nul_byte_refuses_its_row_and_the_rest_of_the_chunk_lands(session: Session) -> None:
    setup(session)
    person = factories.id_number()
    report = run(
        session,
        HEADER + line("r1", person) + line("r2", person, "文书\x00二") + line("r3", person),
    )
    assert (report.inserted, report.rejected) == (2, 1)
    assert [(e.row, e.field, e.code) for e in report.errors] == [(3, "document_no", "unstorable")]
    assert count(session, Record) == 2
    assert count(session, RejectedRow) == 1
    # Its re-send, clean, lands and resolves the refused row.
    fixed = run(session, HEADER + line("r2", person, "文书二"))
    assert fixed.inserted == 1
    row = session.scalar(select(RejectedRow))
    assert row is not None and row.resolution == "resent"


def test_a_database_lost_in_the_middle_of_a_chunk_leaves_nothing_of_it(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(session)
    first = [factories.id_number() for _ in range(3)]
    second = [factories.id_number() for _ in range(3)]
    rows = [
        (n + 2, dict(zip(ingest.FIELDS, line(f"k{n}", p).strip().split(","), strict=True)))
        for n, p in enumerate(first + second)
    ]
    original = ingest._write_corrections
    chunks = iter(range(2))

    def lost_after_the_records(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        if next(chunks) == 1:  # the second chunk: citizens and records written, not finished
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(ingest, "_write_corrections", lost_after_the_records)
    batch = ingest.start_batch(session, "test", "csv")
    session.commit()
    with pytest.raises(OperationalError):
        for _ in ingest.ingest_rows(
            session, iter(rows), key=KEY, batch=batch, today=AS_OF, chunk_size=3
        ):
            session.commit()
    session.rollback()
    # The first chunk whole; of the second, no citizen, record, mark or tally.
    assert count(session, Record) == 3 and count(session, Citizen) == 3
    assert count(session, ScoreDirty) == 3
    assert tallies(session, batch.id) == (3, 3, 0, 0, 0)
    monkeypatch.setattr(ingest, "_write_corrections", original)

    def rerun() -> Iterator[tuple[int, dict[str, Any]]]:
        yield from rows

    batch = ingest.start_batch(session, "test", "csv")
    *_, report = ingest.ingest_rows(session, rerun(), key=KEY, batch=batch, today=AS_OF)
    assert (report.inserted, report.unchanged) == (3, 3)
    assert count(session, Record) == 6 and count(session, Citizen) == 6
