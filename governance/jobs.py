"""Scheduled jobs: publish yesterday's governance bulletin after midnight (and any missed day), and
push pending bulletins every minute with backoff."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from citycredit.core.jobs import JobContext, JobSpec
from governance import bulletins

log = logging.getLogger(__name__)


def publish(session: Session, ctx: JobContext) -> None:
    made = bulletins.publish_due(session, ctx.settings, today=ctx.today(), now=utcnow())
    if made:
        log.info("governance bulletins published: %s", ", ".join(b.batch_id for b in made))


def deliver(session: Session, ctx: JobContext) -> None:
    bulletins.deliver_due(session, ctx.settings, now=utcnow())


JOBS = (
    # 00:20 city time, well before 08:00; the hourly re-run catches a scheduler that was down.
    JobSpec("governance.publish", publish, "cron", {"minute": 20}),
    JobSpec("governance.deliver", deliver, "interval", {"minutes": 1}),
)
