"""Verifications and redemptions: who checked whom, when, for which scenario, and what was granted."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, BigIntPK, utcnow

BigFK = BigInteger().with_variant(Integer(), "sqlite")


class Verification(Base):
    """One scan of a citizen's code by a venue; the citizen sees these as "who checked me"."""

    __tablename__ = "verification"
    __table_args__ = (
        Index("ix_verification_citizen_id_at", "citizen_id", "at"),
        # A local citizen or a visitor from a partner city, never both.
        CheckConstraint("(citizen_id IS NULL) <> (visitor_id IS NULL)", name="holder"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"))
    citizen_id: Mapped[int | None] = mapped_column(BigFK, ForeignKey("citizen.id"))
    visitor_id: Mapped[int | None] = mapped_column(BigFK, ForeignKey("visitor.id"), index=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenario.id"))
    # The exact rules the answer was given under (a published version never changes).
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_version.id"))
    token_jti: Mapped[str] = mapped_column(String(32))
    eligible: Mapped[bool] = mapped_column(Boolean)
    common_tier: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Redemption(Base):
    """A benefit granted (核销). One code redeems a scenario once, within the scenario's quotas."""

    __tablename__ = "redemption"
    __table_args__ = (
        # A code's issuer is part of its identity: two cities may draw the same jti.
        UniqueConstraint("token_jti", "scenario_id", "issuer"),
        CheckConstraint("(citizen_id IS NULL) <> (visitor_id IS NULL)", name="holder"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    verification_id: Mapped[int] = mapped_column(BigFK, ForeignKey("verification.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"))
    citizen_id: Mapped[int | None] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    visitor_id: Mapped[int | None] = mapped_column(BigFK, ForeignKey("visitor.id"), index=True)
    # The city that issued the code ("" for this city's own codes).
    issuer: Mapped[str] = mapped_column(String(32), default="", server_default="")
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenario.id"))
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_version.id"))
    token_jti: Mapped[str] = mapped_column(String(32))
    day: Mapped[dt.date] = mapped_column(Date)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RedemptionCounter(Base):
    """How much of a scenario's quota a citizen used in one period; conditional increments make it exact.

    ``period`` is the city-local day (``2026-11-23``) for the daily quota and the month (``2026-11``)
    for the monthly one; both rows are incremented in the redemption's savepoint.
    """

    __tablename__ = "redemption_counter"

    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenario.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class VisitorRedemptionCounter(Base):
    """A visitor's use of a scenario's quota in one period, counted by the pairwise pseudonym."""

    __tablename__ = "visitor_redemption_counter"

    visitor_id: Mapped[int] = mapped_column(BigFK, ForeignKey("visitor.id"), primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenario.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class Visitor(Base):
    """A citizen of a partner city as this city knows them: the pairwise pseudonym their city gave us.

    Stable for (that citizen, this city), so per-person quotas hold; unlinkable to what any other city
    was told, and nothing else about the person is known here."""

    __tablename__ = "visitor"
    __table_args__ = (UniqueConstraint("issuer", "pseudonym"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(32))
    pseudonym: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CrossCityConsent(Base):
    """Consent to cross-city recognition (PIPL art. 23): for one partner city, or ``*`` for every one.

    Its own purpose, apart from consent to be scored. Rows are never deleted: withdrawing sets
    ``withdrawn_at``, and giving again adds a row, so the history is the table."""

    __tablename__ = "cross_city_consent"
    __table_args__ = (Index("ix_cross_city_consent_citizen_id_partner", "citizen_id", "partner"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"))
    partner: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))
    given_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[dt.datetime | None]
