"""The citizen page's daily job: spent and expired sign-in challenges do not pile up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from citizen.models import SignInChallenge
from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.jobs import JobContext, registered_jobs, run_job
from tests.databases import ScratchDatabase


def test_expired_challenges_are_purged_and_recent_ones_kept(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    factory = make_session_factory(fresh_database.engine)
    now = utcnow()
    with unit_of_work(factory) as session:
        for name, age in (("old", dt.timedelta(days=3)), ("recent", dt.timedelta(minutes=2))):
            session.add(
                SignInChallenge(
                    public_id=name,
                    id_hash="h" * 64,
                    code_hash="c" * 64,
                    attempts=0,
                    created_at=now - age,
                    expires_at=now - age + dt.timedelta(minutes=5),
                )
            )
    settings = load_settings(
        env={},
        database_url=fresh_database.url,
        id_hash_key=b"k" * 32,
        instance_dir=tmp_path,
        environment="development",
    )
    job = next(j for j in registered_jobs() if j.id == "citizen.purge_sign_in_challenges")
    assert (job.trigger, job.options) == ("cron", {"hour": 3})
    run_job(job, factory, JobContext(settings))
    with factory() as session:
        assert list(session.scalars(select(SignInChallenge.public_id))) == ["recent"]
