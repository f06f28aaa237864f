"""Jobs: each domain declares its jobs (``Domain.jobs``, usually ``<domain>/jobs.py:JOBS``); one scheduler runs them.

Jobs take a session and a context and never commit: :func:`run_job` owns the unit of work, so a job that
fails leaves nothing half-done and the next run starts clean.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from citycredit.core.config import Settings
from citycredit.core.db import unit_of_work
from citycredit.core.registry import installed_domains, resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    settings: Settings

    def today(self) -> dt.date:
        """Today in the city's own timezone (expiry is a calendar matter, not a UTC one)."""
        return dt.datetime.now(self.settings.tz).date()


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[Session, JobContext], None]
    trigger: str
    # Trigger arguments for APScheduler, e.g. {"hour": 0, "minute": 5} for a daily cron.
    options: dict[str, Any] = field(default_factory=dict)


def registered_jobs() -> list[JobSpec]:
    jobs: list[JobSpec] = []
    for domain in installed_domains():
        if domain.jobs:
            jobs.extend(resolve(domain.jobs))
    return jobs


def run_job(spec: JobSpec, factory: sessionmaker[Session], ctx: JobContext) -> None:
    try:
        with unit_of_work(factory) as session:
            spec.func(session, ctx)
    except Exception:
        log.exception("job %s failed; it will run again at its next time", spec.id)


def run_scheduler(settings: Settings, factory: sessionmaker[Session]) -> None:
    """Block, running every registered job on its trigger in the city's timezone."""
    # Lazy: only the scheduler process needs APScheduler; the app and the CLI never load it.
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone=settings.tz)
    ctx = JobContext(settings)
    for spec in registered_jobs():
        scheduler.add_job(
            run_job,
            spec.trigger,
            args=(spec, factory, ctx),
            id=spec.id,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
            **spec.options,
        )
        log.info("scheduled %s (%s %s)", spec.id, spec.trigger, spec.options)
    scheduler.start()
