"""A venue checks a code: this city's own (``credit_codes``) or a visitor's from a partner city.

:func:`verify_code` and :func:`redeem_code` are the use cases every entry point calls. For a
visitor's code they check it against the trust list (docs/FEDERATION.md, "Credit codes across
cities"), ask the issuing city for the visitor's pairwise pseudonym (server to server), decide on
the common level only, and count quotas by that pseudonym. The venue learns eligible or not, the
common level and which city issued the code — nothing else.
"""

from __future__ import annotations

import datetime as dt
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from citycredit.core.config import Settings
from credit_codes import operations as codes
from credit_codes import tokens
from credit_codes.models import Visitor
from federation import s2s
from federation.operations import held_list
from federation.trustlist import MemberView
from points_engine.operations import insert_ignore
from scenarios.eligibility import CitizenFacts
from scenarios.operations import rule_of, scenario_for_use


class IssuerNotMember(tokens.TokenRejected):
    type = "issuer-not-member"
    title = "The credit code was issued by a city that is not a member of the federation"


class MemberSuspended(tokens.TokenRejected):
    type = "member-suspended"
    title = "The credit code's city is suspended from the federation"


class MappingUnknown(tokens.TokenRejected):
    type = "mapping-unknown"
    title = "The credit code names a tier mapping its city has not published"


class TrustListTooOld(tokens.TokenRejected):
    type = "trust-list-too-old"
    title = "The trust list held here is older than its maximum age; visitors cannot be checked"


class NoCrossCityConsent(tokens.TokenRejected):
    type = "no-cross-city-consent"
    title = "The citizen has not consented to recognition of their code in this city"


VISITOR_REFUSALS: tuple[type[tokens.TokenRejected], ...] = (
    IssuerNotMember,
    MemberSuspended,
    MappingUnknown,
    TrustListTooOld,
    NoCrossCityConsent,
)


@dataclass(frozen=True)
class VisitorCode:
    member: MemberView
    jti: str
    common_tier: int
    expires_at: dt.datetime


def issuer_of(token: str) -> str:
    """The claimed issuer (unverified: it only chooses which checks to run)."""
    return _claimed_issuer(token)[0]


def _claimed_issuer(token: str) -> tuple[str, tokens.ParsedCode]:
    """The claimed issuer and the code read once (:func:`tokens.parse_code`: its header checked)."""
    parsed = tokens.parse_code(token)
    return str(parsed.claims.get("iss", ""))[:32], parsed


def open_visitor_code(
    session: Session,
    settings: Settings,
    token: str,
    issuer: str,
    *,
    now: dt.datetime,
    header: dict[str, Any] | None = None,
) -> VisitorCode:
    """Every check of a partner city's code, in the documented order; raises a ``TokenRejected``.
    ``header``: the token's header as :func:`tokens.read_header` returned it, if already read."""
    if header is None:
        header = tokens.read_header(token)
    trust_list = held_list(session, settings)
    if trust_list is None:
        raise tokens.WrongIssuer(
            f"issued by {issuer!r}; this city ({settings.city_code}) holds no trust list of partner cities"
        )
    member = trust_list.members.get(issuer)
    # Only "active" and "suspended" are members; "left", or a status this city does not know, is not.
    if member is None or member.status not in ("active", "suspended"):
        raise IssuerNotMember(f"{issuer!r} is not a member of the federation this city belongs to")
    if member.status == "suspended":
        raise MemberSuspended(f"{member.name_en} ({issuer}) is suspended from the federation")
    if trust_list.too_old(now, settings.trust_list_max_age):
        raise TrustListTooOld(
            f"the trust list held here (seq {trust_list.seq}) was signed "
            f"{int(trust_list.age(now).total_seconds())} s ago, more than {settings.trust_list_max_age} s"
        )
    window = member.signing_keys.get(str(header["kid"]))
    if window is None or not window.valid_at(now.timestamp()):
        raise tokens.UnknownKey(
            f"key {str(header['kid'])[:32]!r} is not a current key of {member.name_en} ({issuer})"
        )
    claims = tokens.verify_code(token, public_key=window.public, issuer=issuer, now=now)
    version = claims.get("mv")
    # An int, not just equal to one: True == 1 and 1.0 == 1 would pick mapping 1; a list would fail.
    mapping = member.mappings.get(version) if type(version) is int else None
    if mapping is None:
        raise MappingUnknown(f"{issuer} has published no tier mapping {claims.get('mv')!r}")
    local = mapping.get(str(claims.get("lt", "")))
    if local is None or local[0] != claims["ct"]:
        raise tokens.TokenRejected("the code's common level does not follow its city's mapping")
    shared = claims.get("xc")
    if not (shared == "*" or (isinstance(shared, list) and settings.city_code in shared)):
        raise NoCrossCityConsent(
            f"the citizen has not consented to recognition of their code in {settings.city_code}"
        )
    return VisitorCode(
        member,
        str(claims["jti"]),
        int(claims["ct"]),
        dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
    )


# Visitors' row ids by (issuer, pseudonym), per database (weakly, by engine): a visitor's row never
# changes or goes away, so a process that has seen one skips the two statements that find it.
_visitor_ids: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], int]] = (
    weakref.WeakKeyDictionary()
)
VISITOR_CACHE_SIZE = 50_000


def _visitor_id(session: Session, issuer: str, pseudonym: str) -> int:
    known = _visitor_ids.setdefault(session.get_bind().engine, {})
    found = known.get((issuer, pseudonym))
    if found is not None:
        return found
    query = select(Visitor.id).where(Visitor.issuer == issuer, Visitor.pseudonym == pseudonym)
    found = session.scalar(query)
    if found is not None:
        # Found before this unit of work wrote anything: a committed row, safe to remember.
        if len(known) >= VISITOR_CACHE_SIZE:
            known.clear()
        known[(issuer, pseudonym)] = found
        return found
    # A first visit: not remembered until it is committed (a rolled-back row must not be reused).
    insert_ignore(session, Visitor, [{"issuer": issuer, "pseudonym": pseudonym}])
    found = session.scalar(query)
    assert found is not None
    return found


def verify_visitor(
    session: Session,
    settings: Settings,
    client: ApiClient,
    token: str,
    scenario_code: str,
    *,
    issuer: str,
    now: dt.datetime,
    purpose: str = "verification",
    header: dict[str, Any] | None = None,
) -> codes.VerificationResult:
    today = now.astimezone(settings.tz).date()
    scenario, version = scenario_for_use(
        session, scenario_code, venue_id=client.venue_id, today=today, visitor=True
    )
    try:
        presented = open_visitor_code(session, settings, token, issuer, now=now, header=header)
    except tokens.TokenRejected as exc:
        audit(
            session,
            actor=client.client_id,
            action="code.rejected",
            reason=exc.type,
            scenario=scenario_code,
            issuer=issuer,
        )
        raise
    # The issuing city vouches for the visitor and gives the pseudonym quotas count by.
    answer = s2s.ask(
        session,
        settings,
        presented.member,
        "/api/v1/federation/introspections",
        {
            "code": token,
            "purpose": purpose,
            "scenario": scenario.code,
            "category": scenario.category,
        },
        now=now,
    )
    level = min(answer.level, presented.common_tier)
    visitor_id = _visitor_id(session, issuer, answer.pseudonym)
    facts = CitizenFacts(
        common_tier=level,
        local_score=None,
        age=None,
        resident=False,
        has_direct_tier_record=False,
        visitor=True,
    )
    eligible = rule_of(version).evaluate(facts).eligible
    verification = codes.record_verification(
        session,
        client,
        scenario,
        version,
        jti=presented.jti,
        eligible=eligible,
        level=level,
        now=now,
        visitor_id=visitor_id,
    )
    member = presented.member
    return codes.VerificationResult(
        verification,
        scenario,
        version,
        eligible,
        level,
        codes.Issuer(member.issuer, member.name_zh, member.name_en),
        visitor=True,
    )


def verify_code(
    session: Session,
    settings: Settings,
    client: ApiClient,
    token: str,
    scenario_code: str,
    *,
    now: dt.datetime,
) -> codes.VerificationResult:
    """Eligible or not, the common level and the issuing city: a local code or a visitor's."""
    issuer, parsed = _issuer_or_audit(session, client, token, scenario_code)
    if issuer == settings.city_code:
        return codes.verify_presentation(
            session, settings, client, token, scenario_code, now=now, parsed=parsed, remembered=True
        )
    # A verification is never recorded on a process's seconds-old copy of a revoked client.
    codes.require_current_client(session, client)
    return verify_visitor(
        session,
        settings,
        client,
        token,
        scenario_code,
        issuer=issuer,
        now=now,
        header=parsed.header,
    )


def redeem_code(
    session: Session,
    settings: Settings,
    client: ApiClient,
    token: str,
    scenario_code: str,
    *,
    now: dt.datetime,
) -> codes.RedemptionResult:
    """Grant the benefit once per code, within quotas per person (a visitor's by pseudonym)."""
    issuer, parsed = _issuer_or_audit(session, client, token, scenario_code)
    if issuer == settings.city_code:
        return codes.redeem(session, settings, client, token, scenario_code, now=now, parsed=parsed)
    result = verify_visitor(
        session,
        settings,
        client,
        token,
        scenario_code,
        issuer=issuer,
        now=now,
        purpose="redemption",
        header=parsed.header,
    )
    return codes.grant(session, settings, client, result, now=now)


def _issuer_or_audit(
    session: Session, client: ApiClient, token: str, scenario_code: str
) -> tuple[str, tokens.ParsedCode]:
    """The code's claimed issuer (and the code as read once); a code that cannot even name one names
    no citizen, so its rejection goes to the audit log (the rest are verification rows)."""
    try:
        return _claimed_issuer(token)
    except tokens.TokenRejected as exc:
        audit(
            session,
            actor=client.client_id,
            action="code.rejected",
            reason=exc.type,
            scenario=scenario_code,
        )
        raise


def describe(result: codes.VerificationResult) -> dict[str, Any]:
    return result.as_dict()
