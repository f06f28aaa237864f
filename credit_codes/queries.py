"""Reads about verifications: what a citizen sees as "who checked me" (查询记录)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from credit_codes.models import Redemption, Verification
from points_engine.models import Citizen
from scenarios.models import ScenarioVersion, Venue


@dataclass(frozen=True)
class Check:
    at: dt.datetime
    checker: str  # the venue's name (or, for a city-wide desk, its client's registered name)
    checker_en: str
    scenario_zh: str
    scenario_en: str
    eligible: bool
    redeemed: bool
    verification_id: str


def checks_of_citizen(
    session: Session, citizen: Citizen, *, actor: str, limit: int = 100
) -> list[Check]:
    """Every time a venue checked the citizen's code, newest first, and whether a benefit was granted."""
    audit(session, actor=actor, action="citizen.checks", citizen_id=citizen.id)
    rows = session.execute(
        select(
            Verification,
            ApiClient.name,
            Venue.name_zh,
            Venue.name_en,
            ScenarioVersion.name_zh,
            ScenarioVersion.name_en,
            Redemption.id,
        )
        .join(ApiClient, ApiClient.id == Verification.client_id)
        .outerjoin(Venue, Venue.id == ApiClient.venue_id)
        .join(ScenarioVersion, ScenarioVersion.id == Verification.scenario_version_id)
        .outerjoin(Redemption, Redemption.verification_id == Verification.id)
        .where(Verification.citizen_id == citizen.id)
        .order_by(Verification.at.desc(), Verification.id.desc())
        .limit(limit)
    ).all()
    return [
        Check(
            at=v.at,
            checker=venue_zh or client_name,
            checker_en=venue_en or client_name,
            scenario_zh=zh,
            scenario_en=en,
            eligible=v.eligible,
            redeemed=redemption_id is not None,
            verification_id=v.public_id,
        )
        for v, client_name, venue_zh, venue_en, zh, en, redemption_id in rows
    ]
