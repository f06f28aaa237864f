"""Reads about verifications: what a citizen sees as "who checked me" (查询记录)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.audit import audit
from citycredit.clients import ApiClient
from credit_codes.models import Redemption, Verification
from points_engine.models import Citizen
from scenarios.models import Scenario


@dataclass(frozen=True)
class Check:
    at: dt.datetime
    checker: str  # the venue's registered name
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
        select(Verification, ApiClient.name, Scenario.name_zh, Scenario.name_en, Redemption.id)
        .join(ApiClient, ApiClient.id == Verification.client_id)
        .join(Scenario, Scenario.id == Verification.scenario_id)
        .outerjoin(Redemption, Redemption.verification_id == Verification.id)
        .where(Verification.citizen_id == citizen.id)
        .order_by(Verification.at.desc(), Verification.id.desc())
        .limit(limit)
    ).all()
    return [
        Check(
            at=v.at,
            checker=checker,
            scenario_zh=zh,
            scenario_en=en,
            eligible=v.eligible,
            redeemed=redemption_id is not None,
            verification_id=v.public_id,
        )
        for v, checker, zh, en, redemption_id in rows
    ]
