"""Issuing credit codes, verifying them for a venue, and redeeming benefits exactly once within quota."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, TextClause, bindparam, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citycredit.core import keys
from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient, AuthError, forget_client
from citycredit.core.config import Settings
from citycredit.core.db import UTCDateTime
from credit_codes import consent, tokens
from credit_codes.models import (
    Redemption,
    RedemptionCounter,
    Verification,
    VisitorRedemptionCounter,
)
from points_engine.models import Citizen
from points_engine.operations import insert_ignore
from points_engine.queries import current_snapshot
from points_engine.tiers import common_tier
from scenarios.benefits import age_on
from scenarios.eligibility import CitizenFacts
from scenarios.models import Scenario, ScenarioVersion
from scenarios.operations import (
    InUse,
    forget_in_use,
    rule_of,
    scenario_for_use,
    scenario_in_use,
)


class NotScored(Exception):
    """The citizen has no score (no consent, or not yet computed), so there is no code to show."""


class RedemptionRefused(Exception):
    type = "redemption-refused"
    title = "The benefit cannot be redeemed"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotEligible(RedemptionRefused):
    type = "not-eligible"
    title = "The citizen does not qualify for this benefit"


class AlreadyRedeemed(RedemptionRefused):
    type = "already-redeemed"
    title = "This credit code has already been redeemed for this benefit"


class QuotaExhausted(RedemptionRefused):
    type = "quota-exhausted"
    title = "The benefit's quota is used up"


def issue_credit_code(
    session: Session, settings: Settings, citizen: Citizen, *, now: dt.datetime, actor: str
) -> tokens.CreditCode:
    """A fresh code for a consenting, scored citizen (the phone page refreshes it every two minutes)."""
    snapshot = current_snapshot(session, citizen.id) if citizen.consent_given else None
    if snapshot is None:
        raise NotScored("the citizen has no score: consent first, and wait for scoring")
    kid, private = keys.current_signing_key(session, settings.key_secret)
    code = tokens.issue_code(
        kid=kid,
        private_key=private,
        token_key=settings.token_key,
        issuer=settings.city_code,
        citizen_id=citizen.id,
        common_tier=snapshot.common_tier,
        local_tier=snapshot.tier_code,
        now=now,
        lifetime=dt.timedelta(seconds=settings.code_lifetime_seconds),
        local_score=snapshot.score,
        direct_tier=snapshot.direct_tier,
        mapping_version=snapshot.model_version_id,
        cross_city=consent.shared_with(session, citizen.id),
    )
    audit(session, actor=actor, action="code.issue", citizen_id=citizen.id, jti=code.jti)
    return code


@dataclass(frozen=True)
class Presentation:
    citizen_id: int
    jti: str
    common_tier: int
    local_tier: str
    expires_at: dt.datetime
    # Sealed in the code at issue (None in codes from before they were sealed there).
    local_score: int | None = None
    direct_tier: bool = False


def open_presentation(
    session: Session,
    settings: Settings,
    token: str,
    *,
    now: dt.datetime,
    parsed: tokens.ParsedCode | None = None,
) -> Presentation:
    """Check a presented code completely; raise the precise :class:`tokens.TokenRejected` if it fails.
    ``parsed``: the code as :func:`tokens.parse_code` read it, if already read."""
    code = parsed if parsed is not None else tokens.parse_code(token)
    issuer = code.claims.get("iss")
    if issuer != settings.city_code:
        raise tokens.WrongIssuer(f"issued by {str(issuer)[:32]!r}, this is {settings.city_code!r}")
    public = keys.public_key_for(session, code.header["kid"])
    if public is None:
        raise tokens.UnknownKey(
            f"key {str(code.header['kid'])[:32]!r} is not published by this city"
        )
    claims = tokens.verify_parsed(code, public_key=public, issuer=settings.city_code, now=now)
    sealed = tokens.open_sealed(
        settings.token_key, claims["sub"], issuer=settings.city_code, jti=claims["jti"]
    )
    return Presentation(
        sealed.citizen_id,
        claims["jti"],
        claims["ct"],
        str(claims.get("lt", "")),
        dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
        sealed.local_score,
        sealed.direct_tier,
    )


@dataclass(frozen=True)
class Issuer:
    """The city that issued a code, as a venue may know it: code and names, nothing more."""

    code: str
    name_zh: str
    name_en: str

    @classmethod
    def local(cls, settings: Settings) -> Issuer:
        return cls(settings.city_code, settings.city_name, settings.city_name_en)


@dataclass(frozen=True)
class VerificationResult:
    verification: Verification
    scenario: Scenario
    version: ScenarioVersion
    eligible: bool
    common_tier: int
    issuer: Issuer
    visitor: bool = False

    def as_dict(self) -> dict[str, Any]:
        tier = common_tier(self.common_tier)
        return {
            "verification_id": self.verification.public_id,
            "eligible": self.eligible,
            "tier": {"level": tier.level, "name_zh": tier.name_zh, "name_en": tier.name_en},
            "scenario": self.scenario.code,
            "scenario_version": self.version.number,
            "benefit": {"zh": self.version.benefit_zh, "en": self.version.benefit_en},
            "verified_at": self.verification.at.isoformat(),
            "visitor": self.visitor,
            "issuer": {
                "code": self.issuer.code,
                "name_zh": self.issuer.name_zh,
                "name_en": self.issuer.name_en,
            },
        }


def record_verification(
    session: Session,
    client: ApiClient,
    scenario: Scenario,
    version: ScenarioVersion,
    *,
    jti: str,
    eligible: bool,
    level: int,
    now: dt.datetime,
    citizen_id: int | None = None,
    visitor_id: int | None = None,
) -> Verification:
    """The verification row: the audit record of this read (who checked whom, when, for which
    benefit, with what result), insert-only, and what "who checked me" shows."""
    verification = Verification(
        public_id="ver_" + secrets.token_hex(8),
        client_id=client.id,
        citizen_id=citizen_id,
        visitor_id=visitor_id,
        scenario_id=scenario.id,
        scenario_version_id=version.id,
        token_jti=jti,
        eligible=eligible,
        common_tier=level,
        at=now,
    )
    session.add(verification)
    return verification


def require_current_client(session: Session, client: ApiClient) -> None:
    """Raise :class:`AuthError` unless the client, as the database says now, is active with the
    credential version ``client`` carries (a process's copy of it may be seconds old)."""
    current = session.execute(
        select(ApiClient.status, ApiClient.credential_version).where(ApiClient.id == client.id)
    ).first()
    if current is None or current.status != "active":
        forget_client(client.client_id)
        raise AuthError("invalid_token", "this client has been revoked")
    if current.credential_version != client.credential_version:
        forget_client(client.client_id)
        raise AuthError("invalid_token", "the client's credentials changed; fetch a new token")


def verify_presentation(
    session: Session,
    settings: Settings,
    client: ApiClient,
    token: str,
    scenario_code: str,
    *,
    now: dt.datetime,
    parsed: tokens.ParsedCode | None = None,
    remembered: bool = False,
) -> VerificationResult:
    """Eligible or not, and the tier — all a venue learns. Every verification is recorded.

    The scenario must be in effect today and, for a venue's client, honoured at that venue. The
    eligibility rule of the live version decides; the tier is the one the code vouches for.
    ``parsed``: the code as :func:`tokens.parse_code` read it. ``remembered``: take the scenario
    from the process's memory (:func:`scenario_in_use`) and insert the verification row at once, on
    condition that the scenario is still as remembered (a redemption needs the row in the session,
    so it reads the scenario as it is).
    """
    today = now.astimezone(settings.tz).date()
    in_use = (
        scenario_in_use(session, scenario_code, venue_id=client.venue_id, today=today)
        if remembered
        else None
    )
    if in_use is None:
        scenario, version = scenario_for_use(
            session, scenario_code, venue_id=client.venue_id, today=today
        )
        rule = rule_of(version)
    else:
        scenario, version, rule = in_use.scenario, in_use.version, in_use.rule
    try:
        presented = open_presentation(session, settings, token, now=now, parsed=parsed)
    except tokens.TokenRejected as exc:
        audit(
            session,
            actor=client.client_id,
            action="code.rejected",
            reason=exc.type,
            scenario=scenario_code,
        )
        raise
    # A code vouches for its tier for its 120 s, online exactly as offline. Re-checking consent here
    # would answer "not eligible" for a qualifying tier and so tell the venue that consent was
    # withdrawn; withdrawal stops new codes at once instead.
    # Every fact comes from the code itself (tier, and the sealed score and direct-tier flag) or
    # never changes (age from the birth date): the answer cannot reveal a withdrawal since issue.
    age = None
    if "age" in rule.facts_needed():
        citizen = session.get(Citizen, presented.citizen_id)
        age = age_on(citizen.birth_date if citizen else None, today)
    facts = CitizenFacts(
        common_tier=presented.common_tier,
        local_score=presented.local_score,
        age=age,
        resident=True,
        has_direct_tier_record=presented.direct_tier,
    )
    eligible = rule.evaluate(facts).eligible
    if in_use is not None:
        recorded = _record_if_current(
            session,
            in_use,
            client,
            jti=presented.jti,
            eligible=eligible,
            level=presented.common_tier,
            now=now,
            citizen_id=presented.citizen_id,
        )
        if recorded is None:
            # The client or the scenario changed since the process read them: forget the scenario,
            # and answer as both are now.
            forget_in_use(session, scenario_code)
            require_current_client(session, client)
            return verify_presentation(
                session, settings, client, token, scenario_code, now=now, parsed=parsed
            )
        return VerificationResult(
            recorded, scenario, version, eligible, presented.common_tier, Issuer.local(settings)
        )
    verification = record_verification(
        session,
        client,
        scenario,
        version,
        jti=presented.jti,
        eligible=eligible,
        level=presented.common_tier,
        now=now,
        citizen_id=presented.citizen_id,
    )
    return VerificationResult(
        verification, scenario, version, eligible, presented.common_tier, Issuer.local(settings)
    )


_RECORD_IF_CURRENT = """
INSERT INTO verification (public_id, client_id, citizen_id, scenario_id, scenario_version_id,
                          token_jti, eligible, common_tier, at)
SELECT :public_id, :client_id, :citizen_id, :scenario_id, :scenario_version_id,
       :token_jti, :eligible, :common_tier, :at
FROM scenario
WHERE scenario.id = :scenario_id AND scenario.updated_at = :updated_at
  AND scenario.status = :status
  AND EXISTS (SELECT 1 FROM scenario_version
              WHERE scenario_version.id = :scenario_version_id
                AND scenario_version.scenario_id = scenario.id
                AND scenario_version.state = 'published')
  AND EXISTS (SELECT 1 FROM api_client
              WHERE api_client.id = :client_id AND api_client.status = 'active'
                AND api_client.credential_version = :credential_version)
  {venue}
RETURNING id
"""
_AT_VENUE = """AND EXISTS (SELECT 1 FROM scenario_venue
              WHERE scenario_venue.scenario_id = scenario.id
                AND scenario_venue.venue_id = :venue_id)"""


def _record_statement(venue: bool) -> TextClause:
    # Written once, as text: building it with select()/exists() cost more CPU than the round trip.
    return text(_RECORD_IF_CURRENT.format(venue=_AT_VENUE if venue else "")).bindparams(
        bindparam("at", type_=UTCDateTime()),
        bindparam("updated_at", type_=UTCDateTime()),
        bindparam("eligible", type_=Boolean()),
    )


_RECORD_STATEMENTS = {venue: _record_statement(venue) for venue in (False, True)}


def _record_if_current(
    session: Session,
    in_use: InUse,
    client: ApiClient,
    *,
    jti: str,
    eligible: bool,
    level: int,
    now: dt.datetime,
    citizen_id: int,
) -> Verification | None:
    """:func:`record_verification` as one ``INSERT … SELECT … FROM scenario WHERE <still as
    remembered>``: the check of the remembered scenario costs no round trip of its own. None (and
    nothing written) when the scenario is no longer as remembered (``InUse.still_current``: its
    status, ``updated_at``, live version and venue), or the client is no longer active with the
    credential version its access token carries: a client revoked in another process verifies
    nothing more, although that process's copy of it lives a few seconds."""
    values: dict[str, Any] = {
        "public_id": "ver_" + secrets.token_hex(8),
        "client_id": client.id,
        "citizen_id": citizen_id,
        "scenario_id": in_use.scenario.id,
        "scenario_version_id": in_use.version.id,
        "token_jti": jti,
        "eligible": eligible,
        "common_tier": level,
        "at": now,
    }
    conditions = {
        "updated_at": in_use.scenario.updated_at,
        "status": in_use.scenario.status,
        "credential_version": client.credential_version,
    }
    if client.venue_id is not None:
        conditions["venue_id"] = client.venue_id
    inserted = session.execute(
        _RECORD_STATEMENTS[client.venue_id is not None], {**values, **conditions}
    ).scalar_one_or_none()
    if inserted is None:
        return None
    return Verification(id=inserted, **values)


@dataclass(frozen=True)
class RedemptionResult:
    redemption: Redemption
    verification: VerificationResult

    def as_dict(self) -> dict[str, Any]:
        return {
            "redemption_id": self.redemption.public_id,
            "verification_id": self.verification.verification.public_id,
            "scenario": self.verification.scenario.code,
            "scenario_version": self.verification.version.number,
            "benefit": {
                "zh": self.verification.version.benefit_zh,
                "en": self.verification.version.benefit_en,
            },
            "redeemed_at": self.redemption.at.isoformat(),
        }


def redeem(
    session: Session,
    settings: Settings,
    client: ApiClient,
    token: str,
    scenario_code: str,
    *,
    now: dt.datetime,
    parsed: tokens.ParsedCode | None = None,
) -> RedemptionResult:
    """Grant the benefit once per code and within the version's quotas, exactly, under concurrency.

    The redemption row is inserted first, so its unique (code, scenario) key refuses a second use of
    one code before any quota is looked at: a replay answers "already redeemed" whatever the quota
    (a concurrent replay waits on the first one's key). Then the citizen's day and month counters and
    the scenario's running total are incremented with conditional UPDATEs (``used < quota``), which
    the database serialises per row, always in that order. All of it happens in one savepoint, so a
    refused redemption leaves no row and every counter untouched.
    """
    result = verify_presentation(
        session, settings, client, token, scenario_code, now=now, parsed=parsed
    )
    return grant(session, settings, client, result, now=now)


def grant(
    session: Session,
    settings: Settings,
    client: ApiClient,
    result: VerificationResult,
    *,
    now: dt.datetime,
) -> RedemptionResult:
    """Redeem a verified code (:func:`redeem`'s second half, shared by locals and visitors).

    A visitor's quotas count by the pairwise pseudonym their city gave us (``visitor_id``)."""
    # A benefit is never granted on a process's seconds-old copy of a revoked client.
    require_current_client(session, client)
    session.flush()  # the redemption refers to the verification's id
    if not result.eligible:
        raise NotEligible("the citizen does not qualify for this benefit")
    scenario, version = result.scenario, result.version
    citizen_id = result.verification.citizen_id
    visitor_id = result.verification.visitor_id
    counter: Any = RedemptionCounter if visitor_id is None else VisitorRedemptionCounter
    holder_column = counter.citizen_id if visitor_id is None else counter.visitor_id
    holder = citizen_id if visitor_id is None else visitor_id
    holder_key = "citizen_id" if visitor_id is None else "visitor_id"
    day = now.astimezone(settings.tz).date()
    periods = [
        (day.isoformat(), version.quota_per_day, "today's quota of {} is used"),
        (day.strftime("%Y-%m"), version.quota_per_month, "this month's quota of {} is used"),
    ]
    periods = [p for p in periods if p[1] is not None]
    redemption = Redemption(
        public_id="red_" + secrets.token_hex(8),
        verification_id=result.verification.id,
        client_id=client.id,
        citizen_id=citizen_id,
        visitor_id=visitor_id,
        issuer="" if not result.visitor else result.issuer.code,
        scenario_id=scenario.id,
        scenario_version_id=version.id,
        token_jti=result.verification.token_jti,
        day=day,
        at=now,
    )
    with session.begin_nested():
        session.add(redemption)
        try:
            session.flush()
        except IntegrityError:
            raise AlreadyRedeemed("this code was already used for this benefit") from None
        if periods:  # created inside the savepoint: a refusal leaves no trace
            insert_ignore(
                session,
                counter,
                [
                    {holder_key: holder, "scenario_id": scenario.id, "period": p, "used": 0}
                    for p, _, _ in periods
                ],
            )
        for period, quota, message in periods:
            granted = session.execute(
                update(counter)
                .where(
                    holder_column == holder,
                    counter.scenario_id == scenario.id,
                    counter.period == period,
                    counter.used < quota,
                )
                .values(used=counter.used + 1)
                .returning(counter.used)
            ).scalar_one_or_none()
            if granted is None:
                raise QuotaExhausted(message.format(quota))
        total = update(Scenario).where(Scenario.id == scenario.id)
        if version.quota_total is not None:
            total = total.where(Scenario.redeemed_total < version.quota_total)
        counted = session.execute(
            total.values(redeemed_total=Scenario.redeemed_total + 1).returning(Scenario.id)
        ).scalar_one_or_none()
        if counted is None:
            raise QuotaExhausted(f"all {version.quota_total} of this benefit are given out")
    audit(
        session,
        actor=client.client_id,
        action="benefit.redeem",
        citizen_id=citizen_id,
        visitor=visitor_id,
        scenario=scenario.code,
        version=version.number,
        redemption=redemption.public_id,
    )
    return RedemptionResult(redemption, result)
