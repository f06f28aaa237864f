"""Scheduled jobs of the push domain: the webhook delivery worker, every few seconds."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from citycredit.core.db import make_session_factory
from citycredit.core.jobs import JobContext, JobSpec
from push.delivery import deliver_due

# A run goes on while rounds find work, for at most this long (the scheduler's next run
# follows; one instance at a time).
RUN_SECONDS = 20.0
ROUND_LIMIT = 200


def deliver_webhooks(session: Session, ctx: JobContext) -> None:
    """Deliver what is due. Each round commits its own claim and record (no transaction is held
    while receivers answer), so the job's own session stays unused."""
    sessions = make_session_factory(session.get_bind().engine)
    ends = time.monotonic() + RUN_SECONDS
    while time.monotonic() < ends:
        done = deliver_due(sessions, ctx.settings, worker="scheduler", limit=ROUND_LIMIT)
        # A round that claimed anything may have freed the next of a queue: look again.
        if not done.claimed:
            return


JOBS: tuple[JobSpec, ...] = (JobSpec("push.deliver", deliver_webhooks, "interval", {"seconds": 3}),)
