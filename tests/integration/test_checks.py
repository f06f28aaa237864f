"""A citizen sees every check of their code: who, when, for what, and whether a benefit was granted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import AuditEvent
from citycredit.core.clients import register_client
from citycredit.core.config import load_settings
from credit_codes import operations
from credit_codes.queries import checks_of_citizen
from points_engine.operations import give_consent
from scenarios.demo import ensure_demo_scenarios
from tests import factories
from tests.rule_cases import ITEMISED


def test_who_checked_me_lists_venues_newest_first(session: Session, tmp_path: Path) -> None:
    settings = load_settings(
        env={"CITYCREDIT_INSTANCE_DIR": str(tmp_path)}, environment="development"
    )
    factories.source(session)
    factories.published(session, ITEMISED)
    ensure_demo_scenarios(session)
    person = factories.citizen(session, consent=False)
    factories.record(session, person, "AWARD", "2026-06-01")
    today = dt.datetime.now(settings.tz).date()
    give_consent(session, person, channel="app", as_of=today)
    key = settings.key_secret
    library = register_client(
        session,
        name="黄石市图书馆借阅台",
        kind="venue",
        scopes=["verify", "redeem"],
        key_secret=key,
    ).client
    bus = register_client(
        session, name="黄石公交5路闸机", kind="venue", scopes=["verify", "redeem"], key_secret=key
    ).client
    now = dt.datetime.now(dt.UTC)

    def code() -> str:
        return operations.issue_credit_code(session, settings, person, now=now, actor="app").token

    operations.verify_presentation(
        session, settings, library, code(), "library-deposit-free", now=now
    )
    operations.redeem(
        session, settings, bus, code(), "bus-fare-discount", now=now + dt.timedelta(seconds=5)
    )
    checks = checks_of_citizen(session, person, actor="citizen-page")
    assert [(c.checker, c.scenario_zh, c.eligible, c.redeemed) for c in checks] == [
        ("黄石公交5路闸机", "信易行·公交八折", True, True),
        ("黄石市图书馆借阅台", "信易阅·免押金借书", True, False),
    ]
    assert (
        session.scalar(select(AuditEvent).where(AuditEvent.action == "citizen.checks")) is not None
    )
