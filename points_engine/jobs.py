"""Scheduled jobs of the points engine, registered with the platform scheduler (``citycredit scheduler``)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from citycredit.core.jobs import JobContext, JobSpec
from points_engine import batches, operations

log = logging.getLogger(__name__)


def expire_due_records(session: Session, ctx: JobContext) -> None:
    """Records past their validity become archive and the affected scores are recomputed."""
    expired, result = operations.expire_records(session, today=ctx.today())
    log.log(
        logging.INFO if expired else logging.DEBUG,
        "expiry: %d record(s) expired, %d score(s) changed",
        expired,
        result.changed if result else 0,
    )


def drain_dirty_scores(session: Session, ctx: JobContext) -> None:
    """Catch up on scores an interrupted ingest left to recompute."""
    try:
        # A transaction per range when the marks are city-wide (an import interrupted before its drain).
        result = operations.drain_dirty(session, as_of=ctx.today(), commit=session.commit)
    except operations.NoPublishedModel:
        return
    if result.citizens:
        log.info("dirty scores: %d recomputed, %d changed", result.citizens, result.changed)


def mark_interrupted_batches(session: Session, ctx: JobContext) -> None:
    """Ingest runs killed without a word (their heartbeat went silent) are marked interrupted."""
    found = batches.mark_interrupted(session)
    if found:
        log.warning(
            "ingest batch(es) %s interrupted: rerun the same file to complete them",
            ", ".join(f"#{n}" for n in found),
        )


JOBS = (
    JobSpec("points.expire_records", expire_due_records, "cron", {"hour": 0, "minute": 5}),
    JobSpec("points.drain_dirty_scores", drain_dirty_scores, "interval", {"minutes": 1}),
    JobSpec(
        "points.mark_interrupted_batches", mark_interrupted_batches, "interval", {"minutes": 5}
    ),
)
