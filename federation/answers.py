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

from sqlalchemy import Select, String, Table, bindparam, case, exists, insert, null, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from citycredit.core.config import Settings
from citycredit.core.idnumber import InvalidIdNumber, parse_id_number
from citycredit.core.text import control_character, lone_surrogate
from credit_codes import consent, tokens
from credit_codes.operations import open_presentation
from federation import s2s
from federation.models import PartnerQuestion, SeenRequest
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
_SEEN = cast(Table, SeenRequest.__table__)


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


def _question_text(payload: dict[str, Any]) -> dict[str, str | None]:
    return {
        "scenario": str(payload.get("scenario", ""))[:64] or None,
        "category": str(payload.get("category", ""))[:32] or None,
        "reason": str(payload.get("reason", ""))[:200] or None,
    }


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
            **_question_text(payload),
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
    """A partner city's venue holds one of our codes: answer for that visitor, with consent.

    The question is checked (purpose, free text, the code) before the replay guard's row is
    written, so that on PostgreSQL that row, the citizen's hash and consent and the question's row
    are one statement; a refused question is still remembered, and a replay is still refused as
    such whatever else is wrong with it, as when the guard's row came first."""
    asker, payload = s2s.check_signed_request(session, settings, request, now=now)
    try:
        purpose = str(payload.get("purpose", ""))
        if purpose not in PURPOSES:
            raise s2s.FederationRefusal(
                f"purpose must be one of {', '.join(PURPOSES)}",
                type_="validation-error",
                status=422,
            )
        _check_free_text(payload, now=now)
        try:
            presented = open_presentation(session, settings, str(payload.get("code", "")), now=now)
        except tokens.TokenRejected as exc:
            raise s2s.FederationRefusal(exc.detail, type_=exc.type, status=422) from None
    except s2s.FederationRefusal:
        s2s.remember_request(session, asker.issuer, payload, now=now)  # a replay: RequestReplayed
        raise
    citizen_id = presented.citizen_id
    if session.get_bind().dialect.name == "postgresql":
        id_hash, shares = _remember_and_record(
            session, citizen_id, asker.issuer, purpose, payload, now=now
        )
    else:
        s2s.remember_request(session, asker.issuer, payload, now=now)
        id_hash, shares = _id_hash_and_consent(session, citizen_id, asker.issuer)
        _record(
            session,
            citizen_id=citizen_id,
            asker=asker.issuer,
            purpose=purpose,
            payload=payload,
            refusal=None if shares else NoCrossCityConsent.type,
            now=now,
        )
    if not shares:
        raise NoCrossCityConsent(f"the citizen does not share their tier with {asker.issuer}")
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


def _remember_and_record_statement() -> Select[Any]:
    """PostgreSQL: the replay guard's row, the question's row (answered, or refused for want of
    consent) and the citizen's hash in one statement. A replay writes no question row (the guard's
    CTE returns nothing) and reads back no guard id."""
    seen = (
        postgresql.insert(_SEEN)
        .values(issuer=bindparam("asker"), jti=bindparam("jti"), expires_at=bindparam("expires_at"))
        .on_conflict_do_nothing()
        .returning(_SEEN.c.id)
        .cte("seen")
    )
    shares = consent.sharing(_CITIZEN.id, bindparam("asker", type_=String))
    columns = ("citizen_id", "asker", "purpose", "scenario", "category", "reason", "answered")
    question = (
        insert(_QUESTION)
        .from_select(
            [*columns, "refusal", "at"],
            select(
                _CITIZEN.id,
                *(bindparam(name, type_=String) for name in columns[1:-1]),
                shares,
                case((shares, null()), else_=bindparam("refused", type_=String)),
                bindparam("at", type_=_QUESTION.c.at.type),
            ).where(_CITIZEN.id == bindparam("citizen_id"), exists(select(seen.c.id))),
        )
        .returning(_QUESTION.c.answered)
        .cte("question")
    )
    return select(
        select(seen.c.id).scalar_subquery(),
        _CITIZEN.id_hash,
        select(question.c.answered).scalar_subquery(),
    ).where(_CITIZEN.id == bindparam("citizen_id"))


_REMEMBER_AND_RECORD = _remember_and_record_statement()


def _remember_and_record(
    session: Session,
    citizen_id: int,
    asker: str,
    purpose: str,
    payload: dict[str, Any],
    *,
    now: dt.datetime,
) -> tuple[str, bool]:
    """What :func:`s2s.remember_request`, :func:`_id_hash_and_consent` and :func:`_record` do, in
    one round trip (PostgreSQL); raises :class:`s2s.RequestReplayed` for a replay."""
    s2s.purge_now_and_then(session, now=now)
    session.flush()  # a Core statement does not autoflush
    row = (
        session.connection()
        .execute(
            _REMEMBER_AND_RECORD,
            {
                "asker": asker,  # the guard's issuer and the question's asker
                "jti": str(payload["jti"]),
                "expires_at": s2s.seen_row(asker, payload)["expires_at"],
                "citizen_id": citizen_id,
                **_question_text(payload),
                "purpose": purpose,
                "refused": NoCrossCityConsent.type,
                "at": now,
            },
        )
        .one_or_none()
    )
    assert row is not None  # the code opened with our key: it names a citizen of ours
    if row[0] is None:
        raise s2s.replayed(asker, payload)
    return str(row[1]), bool(row[2])


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
