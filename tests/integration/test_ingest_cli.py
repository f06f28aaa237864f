"""`citycredit ingest` as a real process: rows it must refuse, and a run killed without warning."""

from __future__ import annotations

import csv
import os
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from citycredit.core.db import make_session_factory, unit_of_work
from points_engine.ingest import FIELDS
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.test_cli import CLI, run
from tests.rule_cases import ITEMISED


def prepare(db: ScratchDatabase) -> None:
    with unit_of_work(make_session_factory(db.engine)) as session:
        factories.source(session, "court")
        factories.published(session, ITEMISED)


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerows(rows)


def row(ref: str, number: str, document: str = "文书") -> list[str]:
    return ["court", ref, number, "FINE", document, "2026-01-05", "2026-01-06", "active"]


def test_a_nul_or_an_id_number_in_text_rejects_that_row_and_the_others_land(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    prepare(db)
    number, other = factories.id_number(), factories.id_number()
    data = tmp_path / "records.csv"
    write_csv(
        data,
        [
            row("a1", number),
            row("a2", number, "文书\x00二"),
            row("a3", number, f"当事人 {other}"),
            row("a4\x07", number),
            row("a5", number),
        ],
    )
    result = run(db, tmp_path, "ingest", str(data))
    assert result.returncode == 3, result.stderr  # rows rejected, the rest landed
    assert "Traceback" not in result.stderr
    assert "5 rows: 2 new, 0 updated, 0 unchanged, 3 rejected" in result.stdout
    assert "row 3: document_no: contains a control character U+0000 at character 3" in result.stderr
    assert "row 4: document_no: holds a citizen ID number" in result.stderr
    assert "row 5: source_record_id: contains a control character U+0007" in result.stderr
    report = (tmp_path / "records.csv.report.csv").read_text("utf-8")
    assert [line.split(",")[:2] for line in report.splitlines()[1:]] == [
        ["3", "document_no"],
        ["4", "document_no"],
        ["5", "source_record_id"],
    ]
    assert "a4\\x07" in report and "\x07" not in report
    everything = result.stdout + result.stderr + report
    assert other not in everything and other[6:14] not in everything
    with db.engine.connect() as c:
        kept = c.execute(sa.text("select source_record_id from record order by 1")).scalars()
        assert list(kept) == ["a1", "a5"]
        assert c.execute(sa.text("select status from ingest_batch")).scalar_one() == "completed"


def test_a_killed_ingest_is_marked_interrupted_and_the_rerun_completes_it(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    prepare(db)
    total = 10_000
    data = tmp_path / "big.csv"
    write_csv(data, [row(f"b{n}", factories.id_number()) for n in range(total)])
    process = subprocess.Popen(
        [*CLI, "ingest", str(data), "--chunk-size", "20"],
        env={
            **os.environ,
            "CITYCREDIT_DATABASE_URL": db.url,
            "CITYCREDIT_ID_HASH_KEY": "ab" * 32,
            "CITYCREDIT_INSTANCE_DIR": str(tmp_path / "instance"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Kill it (SIGKILL: no chance to clean up) as soon as its first chunks are committed.
        deadline = time.monotonic() + 60
        while True:
            with db.engine.connect() as c:
                landed = c.execute(sa.text("select coalesce(max(rows_total), 0) from ingest_batch"))
                if landed.scalar_one() > 0:
                    break
            assert process.poll() is None, "the run ended before the test could kill it"
            assert time.monotonic() < deadline, "no chunk was committed within a minute"
            time.sleep(0.02)
        process.kill()
    finally:
        process.kill()
        process.wait(timeout=30)
    with db.engine.connect() as c:
        status, rows = c.execute(sa.text("select status, rows_total from ingest_batch")).one()
        records = c.execute(sa.text("select count(*) from record")).scalar_one()
    # Killed mid-run: the batch claims to be running still, whole chunks only were kept.
    assert status == "running" and 0 < rows < total and records == rows and rows % 20 == 0

    rerun = run(db, tmp_path, "ingest", str(data))
    assert rerun.returncode == 0, rerun.stderr
    assert f"batch #2 completes batch #1 (interrupted after {rows} rows)" in rerun.stdout
    assert f"{total} rows: {total - rows} new, 0 updated, {rows} unchanged, 0 rejected" in (
        rerun.stdout
    )
    with db.engine.connect() as c:
        batches = c.execute(
            sa.text("select id, status, completes_batch_id from ingest_batch order by id")
        ).all()
        assert [tuple(b) for b in batches] == [(1, "interrupted", None), (2, "completed", 1)]
        assert c.execute(sa.text("select count(*) from record")).scalar_one() == total
