"""Consent to cross-city recognition (跨城互认), a purpose of its own (PIPL art. 23).

Given and withdrawn per partner city, or for all (``*``), apart from consent to be scored. A code
carries cross-city use (``xc``) only while this consent stands; the issuing city refuses partners'
server-to-server questions without it. Every change is kept (rows are never deleted) and audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Exists, exists, or_, select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from credit_codes.models import CrossCityConsent
from points_engine.models import Citizen

ALL = "*"


def standing(session: Session, citizen_id: int) -> list[CrossCityConsent]:
    return list(
        session.scalars(
            select(CrossCityConsent)
            .where(
                CrossCityConsent.citizen_id == citizen_id, CrossCityConsent.withdrawn_at.is_(None)
            )
            .order_by(CrossCityConsent.partner)
        )
    )


def shared_with(session: Session, citizen_id: int) -> str | list[str] | None:
    """What a new code's ``xc`` claim says: ``"*"``, the partner codes, or None (no consent)."""
    partners = {row.partner for row in standing(session, citizen_id)}
    if not partners:
        return None
    if ALL in partners:
        return ALL
    return sorted(partners)


def sharing(citizen_id: ColumnElement[int] | int, partner: ColumnElement[str] | str) -> Exists:
    """SQL: whether a standing consent lets ``partner`` recognise the citizen (for ``partner``
    itself or for all), to be read in one statement with what else a question needs."""
    consent = CrossCityConsent.__table__.c
    return exists().where(
        consent.citizen_id == citizen_id,
        consent.withdrawn_at.is_(None),
        or_(consent.partner == partner, consent.partner == ALL),
    )


def shares_with(session: Session, citizen_id: int, partner: str) -> bool:
    session.flush()  # a Core statement does not autoflush: consent given in this session counts
    return bool(session.connection().scalar(select(sharing(citizen_id, partner))))


def give(
    session: Session, citizen: Citizen, partner: str, *, channel: str, actor: str
) -> CrossCityConsent | None:
    """Consent to recognition by ``partner`` (or ``*``); giving it twice changes nothing."""
    if any(row.partner == partner for row in standing(session, citizen.id)):
        return None
    row = CrossCityConsent(
        citizen_id=citizen.id, partner=partner, channel=channel, given_at=utcnow()
    )
    session.add(row)
    audit(
        session,
        actor=actor,
        action="cross_city.consent_given",
        citizen_id=citizen.id,
        partner=partner,
    )
    session.flush()
    return row


def withdraw(session: Session, citizen: Citizen, partner: str, *, actor: str) -> int:
    """Withdraw for ``partner``, or for every partner with ``*`` (which ends each standing consent)."""
    now = utcnow()
    ended = 0
    for row in standing(session, citizen.id):
        if partner == ALL or row.partner == partner:
            row.withdrawn_at = now
            ended += 1
    if ended:
        audit(
            session,
            actor=actor,
            action="cross_city.consent_withdrawn",
            citizen_id=citizen.id,
            partner=partner,
        )
        session.flush()
    return ended


def stop_sharing(
    session: Session,
    citizen: Citizen,
    partner: str,
    *,
    partners: list[str],
    channel: str,
    actor: str,
) -> int:
    """Stop sharing with ``partner`` (or ``*``: with everyone), the one use case every entry point calls.

    Stopping one city while sharing with all (``*``) keeps the others by name: the ``*`` consent ends
    and each other current partner (``partners``, from the trust list) gets its own, in one step."""
    partners_now = {row.partner for row in standing(session, citizen.id)}
    if partner != ALL and ALL in partners_now:
        ended = withdraw(session, citizen, ALL, actor=actor)
        for other in sorted(set(partners) | (partners_now - {ALL})):
            if other != partner:
                give(session, citizen, other, channel=channel, actor=actor)
        return ended
    return withdraw(session, citizen, partner, actor=actor)


@dataclass(frozen=True)
class ConsentChange:
    partner: str
    given_at: dt.datetime
    withdrawn_at: dt.datetime | None
    channel: str


def history(session: Session, citizen: Citizen, *, actor: str) -> list[ConsentChange]:
    """Every cross-city consent the citizen gave, newest first (audited: it is their data)."""
    audit(session, actor=actor, action="cross_city.consent_history", citizen_id=citizen.id)
    rows = session.scalars(
        select(CrossCityConsent)
        .where(CrossCityConsent.citizen_id == citizen.id)
        .order_by(CrossCityConsent.given_at.desc(), CrossCityConsent.id.desc())
    )
    return [ConsentChange(r.partner, r.given_at, r.withdrawn_at, r.channel) for r in rows]
