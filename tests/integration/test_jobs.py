"""The scheduler's jobs: registered per domain, each run one unit of work that commits or rolls back."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.jobs import JobContext, JobSpec, registered_jobs, run_job
from points_engine.ingest import start_batch
from points_engine.models import IngestBatch, Record, ScoreSnapshot
from tests import factories
from tests.databases import ScratchDatabase
from tests.rule_cases import ITEMISED


def test_the_points_engine_registers_its_daily_expiry() -> None:
    jobs = {job.id: job for job in registered_jobs()}
    expiry = jobs["points.expire_records"]
    assert (expiry.trigger, expiry.options) == ("cron", {"hour": 0, "minute": 5})
    assert "points.drain_dirty_scores" in jobs


def test_a_job_run_commits_its_work_and_a_failing_job_leaves_nothing(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    factory = make_session_factory(fresh_database.engine)
    with unit_of_work(factory) as session:
        factories.source(session)
        factories.published(session, ITEMISED)
        person = factories.citizen(session)
        old = factories.record(session, person, "FINE", "2020-01-01")
        old.expires_on = dt.date(2021, 1, 1)
    settings = load_settings(
        env={},
        environment="development",  # its keys made on the fly: this test needs none of them
        database_url=fresh_database.url,
        id_hash_key=b"k" * 32,
        instance_dir=tmp_path,
    )
    ctx = JobContext(settings)
    expiry = next(job for job in registered_jobs() if job.id == "points.expire_records")
    run_job(expiry, factory, ctx)
    with factory() as session:
        assert session.scalar(select(Record.expiry_rescored)) is True
        assert session.scalar(select(func.count()).select_from(ScoreSnapshot)) == 1

    def half_done_then_fail(session, _ctx):  # type: ignore[no-untyped-def]
        session.execute(Record.__table__.update().values(source_status="revoked"))
        raise RuntimeError("disk full")

    run_job(JobSpec("test.fail", half_done_then_fail, "interval", {}), factory, ctx)
    with factory() as session:
        assert session.scalar(select(Record.source_status)) == "active"


def test_the_scheduler_marks_an_ingest_whose_process_is_gone_interrupted(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    factory = make_session_factory(fresh_database.engine)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with unit_of_work(factory) as session:
        killed = start_batch(session, "/exchange/court.csv", "csv")
        killed.runner = f"{socket.gethostname()}:{gone.pid}"
        alive = start_batch(session, "/exchange/tax.csv", "csv")  # this process: still running
    settings = load_settings(
        env={}, environment="development", database_url=fresh_database.url, instance_dir=tmp_path
    )
    job = next(job for job in registered_jobs() if job.id == "points.mark_interrupted_batches")
    run_job(job, factory, JobContext(settings))
    with factory() as session:
        statuses = dict(session.execute(select(IngestBatch.id, IngestBatch.status)).all())
    assert statuses == {killed.id: "interrupted", alive.id: "running"}
