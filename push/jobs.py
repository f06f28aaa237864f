"""Scheduled jobs of the push domain (the delivery worker is added by the delivery module)."""

from __future__ import annotations

from citycredit.core.jobs import JobSpec

JOBS: tuple[JobSpec, ...] = ()
