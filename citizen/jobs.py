"""Scheduled jobs of the citizen page: spent sign-in challenges and ended sessions are deleted daily."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete
from sqlalchemy.orm import Session

from citizen.models import CitizenSession, SignInChallenge
from citycredit.core.db import utcnow
from citycredit.core.jobs import JobContext, JobSpec

log = logging.getLogger(__name__)

# Kept a day past expiry: the rate limit counts the last ten minutes, the audit trail the rest.
RETENTION = dt.timedelta(days=1)


def purge_sign_in_challenges(session: Session, ctx: JobContext) -> None:
    result = session.execute(
        delete(SignInChallenge).where(SignInChallenge.expires_at < utcnow() - RETENTION)
    )
    purged: int = result.rowcount  # type: ignore[attr-defined]
    log.log(logging.INFO if purged else logging.DEBUG, "sign-in challenges purged: %d", purged)
    ended = session.execute(
        delete(CitizenSession).where(CitizenSession.started_at < utcnow() - dt.timedelta(hours=13))
    )
    gone: int = ended.rowcount  # type: ignore[attr-defined]
    log.log(logging.INFO if gone else logging.DEBUG, "ended citizen sessions purged: %d", gone)


JOBS = (JobSpec("citizen.purge_sign_in_challenges", purge_sign_in_challenges, "cron", {"hour": 3}),)
