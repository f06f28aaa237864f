"""What the operator's CLI prints, as a real process: what-if movers, empty files, the scheduler."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.jobs import JobContext, registered_jobs, run_job
from points_engine import operations
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.test_cli import CLI, run
from tests.integration.test_ingest_cli import prepare, row, write_csv
from tests.rule_cases import AS_OF, ITEMISED


def test_whatif_names_its_movers_as_explain_takes_them(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    numbers = [factories.id_number() for _ in range(2)]
    with unit_of_work(make_session_factory(db.engine)) as session:
        factories.source(session)
        factories.published(session, ITEMISED)
        fined, awarded = (factories.citizen(session, number=n) for n in numbers)
        factories.record(session, fined, "PENALTY", "2026-03-01")
        factories.record(session, awarded, "AWARD", "2026-03-01")
        operations.recompute_all(session, as_of=AS_OF)
        awarded_id = awarded.id
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        ITEMISED.replace("name: test-itemised", "name: test-draft")
        .replace("points: -30, repeat_multiplier: 3", "points: -45, repeat_multiplier: 3")
        .replace("points: 10, yearly_cap: 15", "points: 5, yearly_cap: 15"),
        encoding="utf-8",
    )
    assert run(db, tmp_path, "model", "load", str(draft)).returncode == 0
    whatif = run(db, tmp_path, "model", "whatif", "test-draft@v1")
    assert whatif.returncode == 0, whatif.stderr
    movers = re.findall(r"^  (C\d+) .*$", whatif.stdout, flags=re.MULTILINE)
    # The one who drops a tier (AA -> A, 5 points) before the one who loses 15 points within B.
    assert movers[0] == f"C{awarded_id}"
    first = next(line for line in whatif.stdout.splitlines() if line.startswith(f"  {movers[0]} "))
    assert re.search(r"1010 AA ->\s+1005 A\s+-1\s+-0\.4%", first), first
    assert "#" not in whatif.stdout and not any(n in whatif.stdout for n in numbers)
    explained = run(db, tmp_path, "explain", movers[0], "--lang", "en")
    assert explained.returncode == 0, explained.stderr
    assert "1010" in explained.stdout and "Award" in explained.stdout
    unknown = run(db, tmp_path, "explain", "C999999")
    assert unknown.returncode == 1 and "no citizen C999999" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    # A reference is for reading: what acts for a citizen takes the ID number they show.
    consent = run(db, tmp_path, "consent", "withdraw", movers[0])
    assert consent.returncode == 1 and "invalid ID number" in consent.stderr
    assert run(db, tmp_path, "explain", movers[0]).returncode == 0  # still scored


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_scheduler_logs_in_city_time_and_stops_cleanly(
    stop: signal.Signals, tmp_path: Path
) -> None:
    db = ScratchDatabase("sqlite", tmp_path)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = {
        **os.environ,
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_INSTANCE_DIR": str(tmp_path / "instance"),
        "CITYCREDIT_TIMEZONE": "Asia/Shanghai",
        "TZ": "UTC",  # the host's clock in another zone than the city's
    }
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([*CLI, "scheduler"], env=env, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while "scheduled governance.deliver" not in err.read_text():
                assert process.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.2)
            time.sleep(0.5)  # into the scheduler's wait
            process.send_signal(stop)
            status = process.wait(timeout=60)
        finally:
            process.kill()
    said, logged = out.read_text(), err.read_text()
    assert status == 0, logged
    assert said.splitlines() == [
        "scheduler running in Asia/Shanghai time; Ctrl-C to stop",
        "scheduler stopped",
    ]
    assert "Aborted" not in said + logged and "Traceback" not in logged
    lines = logged.splitlines()
    # Only what the scheduler set up: no APScheduler chatter, every time in city time with its offset.
    assert len(lines) == len(registered_jobs()) and "apscheduler" not in logged
    for line in lines:
        assert re.match(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00 INFO citycredit\.core\.jobs: ", line
        )


def test_a_routine_job_run_with_nothing_to_do_logs_below_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = ScratchDatabase("sqlite", tmp_path)
    factory = make_session_factory(db.engine)
    with unit_of_work(factory) as session:
        factories.published(session, ITEMISED)
    settings = load_settings(
        env={}, environment="development", database_url=db.url, instance_dir=tmp_path
    )
    caplog.set_level(logging.DEBUG)
    for job in registered_jobs():
        if job.id in ("points.drain_dirty_scores", "points.expire_records", "governance.deliver"):
            run_job(job, factory, JobContext(settings))
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    assert "job points.drain_dirty_scores ran in" in caplog.text


def test_an_empty_file_is_no_rows_and_a_clean_run_leaves_no_report(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    prepare(db)
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("\n", encoding="utf-8")
    write_csv(header_only, [])
    for file, holds in ((empty, "empty"), (header_only, "a header only")):
        done = run(db, tmp_path, "ingest", str(file))
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{file}: no rows to ingest (the file is {holds}); nothing recorded\n"
        assert not file.with_name(file.name + ".report.csv").exists()
    with db.engine.connect() as c:
        assert c.execute(sa.text("select count(*) from ingest_batch")).scalar_one() == 0

    # A rejected row gets a report; once the file is fixed, the rerun removes the stale report.
    records, number = tmp_path / "records.csv", factories.id_number()
    write_csv(records, [row("a1", number), row("a2", "not-a-number")])
    report = tmp_path / "records.csv.report.csv"
    first = run(db, tmp_path, "ingest", str(records))
    assert first.returncode == 3 and report.exists()
    assert "2 rows: 1 new, 0 updated, 0 unchanged, 1 rejected" in first.stdout
    write_csv(records, [row("a1", number)])
    fixed = run(db, tmp_path, "ingest", str(records))
    assert fixed.returncode == 0, fixed.stderr
    assert "1 row: 0 new, 0 updated, 1 unchanged, 0 rejected" in fixed.stdout
    assert not report.exists()
