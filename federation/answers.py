"""The issuing city answers partners: a visitor's code (introspection) and tier requests.

The answer is the **pairwise pseudonym** (stable for this citizen and that asking city, unlinkable
across cities), the common level and how long it holds — never a score, record, name or ID number.
Every question is recorded, refused or not: the row is its audit record and what the citizen sees in
"who checked me".
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from citycredit.core.config import Settings
from citycredit.core.idnumber import InvalidIdNumber, parse_id_number
from citycredit.core.text import control_character, lone_surrogate
from credit_codes import consent, tokens
from credit_codes.operations import open_presentation
from federation import s2s
from federation.models import PartnerQuestion
from points_engine.ingest import holds_id_number
from points_engine.models import Citizen
from points_engine.queries import current_snapshot, find_citizen

PURPOSES = ("verification", "redemption")
# A level from a tier request holds until the next daily recompute could change it.
TIER_VALIDITY = dt.timedelta(hours=24)
NO_CITIZEN = 0  # no row has it: looked up for an unknown person, as a citizen's id would be


class NoCrossCityConsent(s2s.FederationRefusal):
    type = "no-cross-city-consent"
    status = 403
    title = "The citizen does not share their tier with this partner city"


class NotShared(s2s.FederationRefusal):
    type = "not-shared"
    status = 403
    title = "No tier can be shared for this person with this partner city"


def pairwise_pseudonym(settings: Settings, citizen: Citizen, asker: str) -> str:
    """HMAC of the citizen and the asking city under this city's secret: the same every time that
    city asks about this citizen, and unrelated to what any other city is told."""
    return _pseudonym(settings, citizen.id_hash, asker)


def _pseudonym(settings: Settings, id_hash: str, asker: str) -> str:
    mac = hmac.new(
        settings.id_hash_key, f"pairwise|v1|{asker}|{id_hash}".encode(), hashlib.sha256
    ).digest()
    return "pw_" + base64.urlsafe_b64encode(mac[:18]).decode("ascii")


_CITIZEN = Citizen.__table__.c
_QUESTION = cast(Table, PartnerQuestion.__table__)


def _id_hash_and_consent(session: Session, citizen_id: int, asker: str) -> tuple[str, bool]:
    """The citizen's keyed hash (for the pseudonym) and whether they share with ``asker``: one
    statement (Core: the ORM's loading of a whole citizen was a third of an answer's CPU)."""
    session.flush()  # a Core statement does not autoflush
    row = (
        session.connection()
        .execute(
            select(_CITIZEN.id_hash, consent.sharing(_CITIZEN.id, asker)).where(
                _CITIZEN.id == citizen_id
            )
        )
        .one_or_none()
    )
    assert row is not None  # the code opened with our key: it names a citizen of ours
    return str(row[0]), bool(row[1])


def _record(
    session: Session,
    *,
    citizen_id: int | None,
    asker: str,
    purpose: str,
    payload: dict[str, Any],
    refusal: str | None,
    now: dt.datetime,
) -> None:
    # One INSERT now (Core), not an ORM object flushed at commit: the same row, less CPU.
    session.connection().execute(
        insert(_QUESTION),
        {
            "citizen_id": citizen_id,
            "asker": asker,
            "purpose": purpose,
            "scenario": str(payload.get("scenario", ""))[:64] or None,
            "category": str(payload.get("category", ""))[:32] or None,
            "reason": str(payload.get("reason", ""))[:200] or None,
            "answered": refusal is None,
            "refusal": refusal,
            "at": now,
        },
    )
    # The question row is the audit record of this read (who asked about whom, when, why, and
    # whether it was answered): insert-only, like a venue's verification row, and what the
    # citizen's "who checked me" shows. A second audit event would say the same thing again.


# What a partner writes in free text is stored and shown to the citizen ("who checked me").
FREE_TEXT = ("reason", "scenario", "category")


def _check_free_text(payload: dict[str, Any], *, now: dt.datetime) -> None:
    """Free text is text: a string, without control characters (a reason may span lines) or lone
    surrogates (which no database stores), and never an ID number."""
    for name in FREE_TEXT:
        value = payload.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            fault = "is not a string"
        elif found := (
            control_character(value, multiline=name == "reason") or lone_surrogate(value)
        ):
            fault = f"holds a control character or lone surrogate ({found})"
        elif holds_id_number(value, now.date()):
            fault = "holds an ID number; it is stored and shown to the citizen, so it must not"
        else:
            continue
        raise s2s.FederationRefusal(f"{name} {fault}", type_="validation-error", status=422)


def answer_introspection(
    session: Session, settings: Settings, request: str, *, now: dt.datetime
) -> str:
    """A partner city's venue holds one of our codes: answer for that visitor, with consent."""
    asker, payload = s2s.check_request(session, settings, request, now=now)
    purpose = str(payload.get("purpose", ""))
    if purpose not in PURPOSES:
        raise s2s.FederationRefusal(
            f"purpose must be one of {', '.join(PURPOSES)}", type_="validation-error", status=422
        )
    _check_free_text(payload, now=now)
    try:
        presented = open_presentation(session, settings, str(payload.get("code", "")), now=now)
    except tokens.TokenRejected as exc:
        raise s2s.FederationRefusal(exc.detail, type_=exc.type, status=422) from None
    citizen_id = presented.citizen_id
    id_hash, shares = _id_hash_and_consent(session, citizen_id, asker.issuer)
    if not shares:
        _record(
            session,
            citizen_id=citizen_id,
            asker=asker.issuer,
            purpose=purpose,
            payload=payload,
            refusal=NoCrossCityConsent.type,
            now=now,
        )
        raise NoCrossCityConsent(f"the citizen does not share their tier with {asker.issuer}")
    _record(
        session,
        citizen_id=citizen_id,
        asker=asker.issuer,
        purpose=purpose,
        payload=payload,
        refusal=None,
        now=now,
    )
    # The level the code vouches for, for the code's life (as for local venues).
    return s2s.sign_answer(
        session,
        settings,
        asker.issuer,
        str(payload["jti"]),
        {
            "sub": _pseudonym(settings, id_hash, asker.issuer),
            "level": presented.common_tier,
            "valid_until": presented.expires_at.isoformat(),
        },
        now=now,
    )


def answer_tier_request(
    session: Session, settings: Settings, request: str, *, now: dt.datetime
) -> str:
    """A citizen of ours presents themselves at a partner city, which asks for their common level.

    Unknown person, no consent for that city, or no score: one answer (``not-shared``), so the
    asker learns nothing beyond what the citizen let it learn. The ID number is hashed at once."""
    asker, payload = s2s.check_request(session, settings, request, now=now)
    _check_free_text(payload, now=now)
    reason = str(payload.get("reason") or "").strip()
    if not 2 <= len(reason) <= 200:
        raise s2s.FederationRefusal(
            "say why the tier is asked for (reason, 2 to 200 characters)",
            type_="validation-error",
            status=422,
        )
    citizen: Citizen | None = None
    try:
        citizen_number = parse_id_number(str(payload.get("id_number", "")))
        citizen = find_citizen(session, settings.id_hash_key, citizen_number)
    except InvalidIdNumber:
        citizen = None
    # The same statements whoever the number names (no one, or a citizen who shares nothing with
    # the asker): the time of a refusal must not tell a citizen of this city from a stranger.
    looked_up = citizen.id if citizen is not None else NO_CITIZEN
    snapshot = current_snapshot(session, looked_up)
    shares = consent.shares_with(session, looked_up, asker.issuer)
    if citizen is None or not citizen.consent_given:
        snapshot = None
    if citizen is None or snapshot is None or not shares:
        _record(
            session,
            citizen_id=citizen.id if citizen is not None else None,
            asker=asker.issuer,
            purpose="tier-request",
            payload=payload,
            refusal=NotShared.type,
            now=now,
        )
        raise NotShared(f"no tier is shared with {asker.issuer} for this person")
    _record(
        session,
        citizen_id=citizen.id,
        asker=asker.issuer,
        purpose="tier-request",
        payload=payload,
        refusal=None,
        now=now,
    )
    return s2s.sign_answer(
        session,
        settings,
        asker.issuer,
        str(payload["jti"]),
        {
            "sub": pairwise_pseudonym(settings, citizen, asker.issuer),
            "level": snapshot.common_tier,
            "valid_until": (now + TIER_VALIDITY).replace(microsecond=0).isoformat(),
        },
        now=now,
    )
