"""What the federation pages read: this city's standing, members side by side, visitors per day,
partner cities' questions about a citizen, and the benefits partner cities open to visitors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from credit_codes.models import Redemption, Verification, Visitor
from federation import keys as fed_keys
from federation.models import (
    HeldTrustList,
    Member,
    MemberChange,
    PartnerBulletin,
    PartnerQuestion,
    PublishedTrustList,
    SyncState,
)
from federation.operations import held_list
from federation.trustlist import MemberView
from points_engine.models import Citizen
from scenarios.models import Scenario


@dataclass
class Standing:
    city_code: str
    fingerprint: str | None
    anchor_fingerprint: str | None  # the anchor key held here (coordinator only)
    pinned_anchor: str
    coordinator_url: str
    is_coordinator: bool
    held_seq: int | None
    held_issued_at: dt.datetime | None
    held_age_seconds: int | None
    too_old: bool
    max_age: int
    members: list[MemberView] = field(default_factory=list)
    syncs: list[SyncState] = field(default_factory=list)
    registered: list[Member] = field(default_factory=list)
    pending: list[MemberChange] = field(default_factory=list)
    published_seq: int | None = None


def standing(session: Session, settings: Settings, *, now: dt.datetime | None = None) -> Standing:
    now = now or utcnow()
    city_key = fed_keys.current(session, "city")
    anchor_key = fed_keys.current(session, "anchor")
    trust_list = held_list(session, settings)
    held = session.scalar(select(HeldTrustList).order_by(HeldTrustList.seq.desc()).limit(1))
    published = session.scalar(select(func.max(PublishedTrustList.seq)))
    return Standing(
        city_code=settings.city_code,
        fingerprint=city_key.fingerprint if city_key else None,
        anchor_fingerprint=anchor_key.fingerprint if anchor_key else None,
        pinned_anchor=settings.trust_anchor,
        coordinator_url=settings.federation_coordinator_url,
        is_coordinator=settings.federation_coordinator,
        held_seq=held.seq if held else None,
        held_issued_at=held.issued_at if held else None,
        held_age_seconds=int((now - held.issued_at).total_seconds()) if held else None,
        too_old=bool(held and (now - held.issued_at).total_seconds() > settings.trust_list_max_age),
        max_age=settings.trust_list_max_age,
        members=sorted(trust_list.members.values(), key=lambda m: m.issuer) if trust_list else [],
        syncs=list(session.scalars(select(SyncState).order_by(SyncState.what))),
        registered=list(session.scalars(select(Member).order_by(Member.issuer))),
        pending=list(
            session.scalars(
                select(MemberChange)
                .where(MemberChange.state == "pending")
                .order_by(MemberChange.proposed_at)
            )
        ),
        published_seq=published,
    )


def recent_changes(session: Session, limit: int = 50) -> list[MemberChange]:
    return list(session.scalars(select(MemberChange).order_by(MemberChange.id.desc()).limit(limit)))


def visitors_per_day(
    session: Session, settings: Settings, *, days: int = 30, today: dt.date | None = None
) -> dict[str, dict[dt.date, tuple[int, int]]]:
    """Per partner city, per city-local day: visitors' (verifications, redemptions) here."""
    today = today or dt.datetime.now(settings.tz).date()
    start = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), settings.tz)
    out: dict[str, dict[dt.date, list[int]]] = {}
    for table, index in ((Verification, 0), (Redemption, 1)):
        rows = session.execute(
            select(Visitor.issuer, table.at)
            .join(Visitor, Visitor.id == table.visitor_id)
            .where(table.at >= start.astimezone(dt.UTC))
        )
        for issuer, at in rows:
            day = at.astimezone(settings.tz).date()
            out.setdefault(issuer, {}).setdefault(day, [0, 0])[index] += 1
    return {issuer: {d: (v[0], v[1]) for d, v in per.items()} for issuer, per in out.items()}


def visitors_by_category(
    session: Session, *, since: dt.datetime, until: dt.datetime | None = None
) -> list[tuple[str, str, int, int]]:
    """(partner, category, verifications, redemptions) from ``since`` up to ``until`` (excluded)."""
    figures: dict[tuple[str, str], list[int]] = {}
    for table, index in ((Verification, 0), (Redemption, 1)):
        rows = session.execute(
            select(Visitor.issuer, Scenario.category, func.count())
            .select_from(table)
            .join(Visitor, Visitor.id == table.visitor_id)
            .join(Scenario, Scenario.id == table.scenario_id)
            .where(table.at >= since, table.at < until if until is not None else true())
            .group_by(Visitor.issuer, Scenario.category)
        )
        for issuer, category, count in rows:
            figures.setdefault((issuer, category), [0, 0])[index] = count
    return [(k[0], k[1], v[0], v[1]) for k, v in sorted(figures.items())]


@dataclass(frozen=True)
class PartnerCheck:
    at: dt.datetime
    partner: str
    partner_zh: str
    partner_en: str
    purpose: str
    scenario: str | None
    category: str | None
    reason: str | None
    answered: bool


def partner_checks_of_citizen(
    session: Session, settings: Settings, citizen: Citizen, *, actor: str, limit: int = 100
) -> list[PartnerCheck]:
    """Partner cities' questions about the citizen (their codes checked there, tier requests)."""
    audit(session, actor=actor, action="citizen.partner_checks", citizen_id=citizen.id)
    trust_list = held_list(session, settings)
    names = trust_list.members if trust_list else {}
    rows = session.scalars(
        select(PartnerQuestion)
        .where(PartnerQuestion.citizen_id == citizen.id)
        .order_by(PartnerQuestion.at.desc(), PartnerQuestion.id.desc())
        .limit(limit)
    )
    out = []
    for q in rows:
        member = names.get(q.asker)
        out.append(
            PartnerCheck(
                at=q.at,
                partner=q.asker,
                partner_zh=member.name_zh if member else q.asker,
                partner_en=member.name_en if member else q.asker,
                purpose=q.purpose,
                scenario=q.scenario,
                category=q.category,
                reason=q.reason,
                answered=q.answered,
            )
        )
    return out


@dataclass(frozen=True)
class PartnerOffer:
    partner: str
    partner_zh: str
    partner_en: str
    benefits: list[dict[str, Any]]


def partner_offers(session: Session, settings: Settings) -> list[PartnerOffer]:
    """Each active partner city and the benefits its latest bulletin opens to visitors."""
    trust_list = held_list(session, settings)
    if trust_list is None:
        return []
    latest = {
        issuer: seq
        for issuer, seq in session.execute(
            select(PartnerBulletin.issuer, func.max(PartnerBulletin.seq)).group_by(
                PartnerBulletin.issuer
            )
        )
    }
    offers = []
    for member in sorted(trust_list.members.values(), key=lambda m: m.issuer):
        if member.issuer == settings.city_code or member.status != "active":
            continue
        benefits: list[dict[str, Any]] = []
        if member.issuer in latest:
            bulletin = session.scalar(
                select(PartnerBulletin).where(
                    PartnerBulletin.issuer == member.issuer,
                    PartnerBulletin.seq == latest[member.issuer],
                )
            )
            if bulletin is not None:
                benefits = list(bulletin.payload.get("catalogue", []))
        offers.append(PartnerOffer(member.issuer, member.name_zh, member.name_en, benefits))
    return offers


def partners(session: Session, settings: Settings) -> list[MemberView]:
    """Active partner cities (not this one), for the phone page's consent choices."""
    trust_list = held_list(session, settings)
    if trust_list is None:
        return []
    return [
        m
        for m in sorted(trust_list.members.values(), key=lambda m: m.issuer)
        if m.issuer != settings.city_code and m.status == "active"
    ]
