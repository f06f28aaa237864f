"""Tables of the federation: keys, trust lists, members (at the coordinator), what partners asked,
and the daily bulletins. What a citizen consents to share, and visitors' rows, live in credit_codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, BigIntPK, JSONDoc, utcnow

BigFK = BigInteger().with_variant(Integer(), "sqlite")

MEMBER_STATUSES = ("active", "suspended", "left")
CHANGE_ACTIONS = ("join", "suspend", "resume", "leave", "rekey")


class FederationKey(Base):
    """The city's federation key (role ``city``) and, at a coordinator, the trust anchor (``anchor``).

    Long-lived: partners pin them. The private key is stored encrypted with the key secret."""

    __tablename__ = "federation_key"
    __table_args__ = (CheckConstraint("role IN ('city', 'anchor')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None]


class HeldTrustList(Base):
    """A trust list this city accepted (every one, newest with the highest ``seq``)."""

    __tablename__ = "trust_list_held"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    issued_at: Mapped[dt.datetime]
    document: Mapped[str] = mapped_column(Text)
    accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SyncState(Base):
    """The last attempt and success of each thing the city fetches (``trust-list``, ``bulletins:<iss>``)."""

    __tablename__ = "federation_sync"

    what: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_attempt_at: Mapped[dt.datetime | None]
    last_success_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class Member(Base):
    """A member of the federation as the coordinator registers it (status set with four eyes)."""

    __tablename__ = "federation_member"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended', 'left')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(32), unique=True)
    base_url: Mapped[str] = mapped_column(String(300))
    federation_jwk: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The member's latest entry that verified with its federation key.
    entry: Mapped[str | None] = mapped_column(Text)
    entry_fetched_at: Mapped[dt.datetime | None]
    entry_error: Mapped[str | None] = mapped_column(String(500))
    joined_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MemberChange(Base):
    """A proposed change to the membership; another platform admin approves it (four eyes)."""

    __tablename__ = "federation_member_change"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'rejected')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    proposed_by: Mapped[str] = mapped_column(String(200))
    proposed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None]


class PublishedTrustList(Base):
    """A trust list this city signed as coordinator."""

    __tablename__ = "trust_list_published"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    issued_at: Mapped[dt.datetime]
    digest: Mapped[str] = mapped_column(String(64))  # of the members part: re-sign only on change
    document: Mapped[str] = mapped_column(Text)


class PartnerQuestion(Base):
    """A partner city asked about one of our citizens (a visitor's code, or a tier request).

    The citizen sees these in "who checked me"; refused questions are kept too."""

    __tablename__ = "partner_question"
    __table_args__ = (Index("ix_partner_question_citizen_id_at", "citizen_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    citizen_id: Mapped[int | None] = mapped_column(BigFK, ForeignKey("citizen.id"))
    asker: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))  # verification | redemption | tier-request
    scenario: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(200))  # a tier request's stated purpose
    answered: Mapped[bool] = mapped_column(Boolean)
    refusal: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SeenRequest(Base):
    """Server-to-server request ids seen until they expire: a replayed request is refused."""

    __tablename__ = "federation_seen_request"
    __table_args__ = (UniqueConstraint("issuer", "jti"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(32))
    jti: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class Bulletin(Base):
    """A daily bulletin this city published (one per city-local day)."""

    __tablename__ = "federation_bulletin"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    day: Mapped[dt.date] = mapped_column(Date, unique=True)
    document: Mapped[str] = mapped_column(Text)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PartnerBulletin(Base):
    """A partner's bulletin, verified and kept (its statistics and its catalogue of open benefits)."""

    __tablename__ = "federation_partner_bulletin"
    __table_args__ = (UniqueConstraint("issuer", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    day: Mapped[dt.date] = mapped_column(Date)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
