"""The scheduler keeps the federation current: entries and the list (coordinator), the held list and
partners' bulletins (every member), and this city's own daily bulletin."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from citycredit.core.jobs import JobContext, JobSpec
from federation import bulletins, coordinator, operations, s2s

log = logging.getLogger(__name__)


def sync(session: Session, ctx: JobContext) -> None:
    settings = ctx.settings
    s2s.purge_seen_requests(session, now=utcnow())
    if settings.federation_coordinator:
        coordinator.refresh_entries(session, settings)
        coordinator.compile_list(session, settings)
    if settings.federation_coordinator_url and settings.trust_anchor:
        try:
            operations.sync_trust_list(session, settings)
        except operations.SyncFailed as exc:
            log.warning(
                "trust list not synced (%s): %s; the last good list serves", exc.type, exc.detail
            )
        bulletins.sync_bulletins(session, settings)
        # Publishing is idempotent: a day missed at 00:10 (the city was down) is published here.
        bulletins.publish_due(session, settings, today=ctx.today())


def publish_bulletins(session: Session, ctx: JobContext) -> None:
    published = bulletins.publish_due(session, ctx.settings, today=ctx.today())
    log.log(logging.INFO if published else logging.DEBUG, "bulletins published: %d", len(published))


JOBS = (
    JobSpec("federation.sync", sync, "interval", {"minutes": 15}),
    JobSpec("federation.publish_bulletins", publish_bulletins, "cron", {"hour": 0, "minute": 10}),
)
