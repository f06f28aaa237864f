"""Jobs: each domain declares its jobs (``Domain.jobs``, usually ``<domain>/jobs.py:JOBS``); one scheduler runs them.

Jobs take a session and a context and never commit: :func:`run_job` owns the unit of work, so a job that
fails leaves nothing half-done and the next run starts clean.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from citycredit.core.config import Settings
from citycredit.core.db import unit_of_work
from citycredit.core.registry import installed_domains, resolve

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    # A routine run is DEBUG: the jobs themselves log at INFO when they did something, so a quiet
    # city's scheduler log stays quiet (two jobs run every minute).
    started = time.monotonic()
    try:
        with unit_of_work(factory) as session:
            spec.func(session, ctx)
    except Exception:
        log.exception("job %s failed; it will run again at its next time", spec.id)
    else:
        log.debug("job %s ran in %.2f s", spec.id, time.monotonic() - started)


class CityTimeFormatter(logging.Formatter):
    """Log times in the city's timezone with its offset (``2026-12-07 06:05:00+08:00``), the one
    zone the scheduler's jobs are timed in, whatever the host's clock is set to."""

    def __init__(self, tz: dt.tzinfo, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, self.tz).isoformat(" ", "seconds")


# How often the scheduler's main thread looks whether Ctrl-C or SIGTERM asked it to stop.
STOP_POLL_SECONDS = 0.2


def run_scheduler(settings: Settings, factory: sessionmaker[Session]) -> None:
    """Block, running every registered job on its trigger in the city's timezone, until Ctrl-C or
    SIGTERM; a job running then finishes its unit of work first.

    The signals only set a flag, which the main thread polls between sleeps: a KeyboardInterrupt
    raised at an arbitrary point of APScheduler's loop could land between a lock's acquire and its
    ``with`` block, leaving the lock held and the shutdown waiting on it for ever (the scheduler
    once ignored Ctrl-C on a loaded machine)."""
    # Lazy: only the scheduler process needs APScheduler; the app and the CLI never load it.
    from apscheduler.schedulers.background import BackgroundScheduler

    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C while a job finishes: stop now (its work rolls back)
            raise KeyboardInterrupt
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # APScheduler says "Running job …" and "… executed successfully" at INFO for every run:
        # routine, so shown only when debugging. Its warnings and errors still show.
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(timezone=settings.tz)
        ctx = JobContext(settings)
        for spec in registered_jobs():
            scheduler.add_job(
                run_job,
                spec.trigger,
                args=(spec, factory, ctx),
                id=spec.id,
                name=spec.id,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,
                **spec.options,
            )
            log.info("scheduled %s (%s %s)", spec.id, spec.trigger, spec.options)
        scheduler.start()
        try:
            while not stopping:
                time.sleep(STOP_POLL_SECONDS)
        finally:
            scheduler.shutdown(wait=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
