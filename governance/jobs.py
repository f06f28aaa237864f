"""Scheduled jobs: publish yesterday's governance bulletin after midnight (and any missed day),
push pending bulletins every minute with backoff, and the previous month's report on the 1st."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from citycredit.core.jobs import JobContext, JobSpec
from governance import bulletins, reports

log = logging.getLogger(__name__)


def publish(session: Session, ctx: JobContext) -> None:
    made = bulletins.publish_due(session, ctx.settings, today=ctx.today(), now=utcnow())
    if made:
        log.info("governance bulletins published: %s", ", ".join(b.batch_id for b in made))


def deliver(session: Session, ctx: JobContext) -> None:
    bulletins.deliver_due(session, ctx.settings, now=utcnow())


def monthly_report(session: Session, ctx: JobContext) -> None:
    made = reports.generate_due(session, ctx.settings, today=ctx.today(), now=utcnow())
    if made is not None:
        log.info("monthly report %s generated (%s)", f"{made.month:%Y-%m}", made.sha256[:12])


JOBS = (
    # 00:20 city time, well before 08:00; the hourly re-run catches a scheduler that was down.
    JobSpec("governance.publish", publish, "cron", {"minute": 20}),
    JobSpec("governance.deliver", deliver, "interval", {"minutes": 1}),
    # The previous month's report (通报) on the 1st at 00:10 city time; the hourly re-runs of the 1st
    # catch a scheduler that was down then, and find the month stored otherwise (one per month).
    JobSpec("governance.monthly_report", monthly_report, "cron", {"day": 1, "minute": 10}),
)
