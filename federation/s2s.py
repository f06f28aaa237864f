"""Server-to-server questions between member cities, signed both ways with the federation keys.

A request is a JWS by the asking city (``typ: citycredit-s2s+jwt``) naming the answering city as
``aud``, living at most 60 s, with a ``jti`` the answerer refuses to see twice. The answer is a JWS by
the answering city naming the request's ``jti`` (``in_reply_to``), so neither can be replayed or
swapped. The asker's key comes from the trust list the answerer holds; an asker that is not an active
member is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.text import control_character, lone_surrogate
from federation import jws, poster
from federation import keys as fed_keys
from federation.models import SeenRequest
from federation.operations import held_list, partner_client
from federation.trustlist import MemberView, TrustList

REQUEST_LIFETIME = 60
ASK_TIMEOUT = 5.0


class FederationRefusal(Exception):
    """A refusal with a documented problem type (and the HTTP status it is answered with)."""

    type = "federation-request-refused"
    # 403, not 401: the asker is identified by its signature in the body, not by an HTTP challenge.
    status = 403
    title = "The partner city's request is not signed by an active member"

    def __init__(self, detail: str, *, type_: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if type_:
            self.type = type_
        if status:
            self.status = status


class RequestReplayed(FederationRefusal):
    type = "request-replayed"
    status = 409
    title = "This server-to-server request was already answered"


class IssuerUnavailable(FederationRefusal):
    type = "issuer-unavailable"
    status = 503
    title = "The city that issued the code cannot be reached; verify offline or try again"


def _check_list(session: Session, settings: Settings, now: dt.datetime) -> TrustList:
    trust_list = held_list(session, settings)
    if trust_list is None:
        raise FederationRefusal(
            "this city holds no trust list", type_="issuer-not-member", status=422
        )
    if trust_list.too_old(now, settings.trust_list_max_age):
        raise FederationRefusal(
            f"the trust list held here (seq {trust_list.seq}) is older than its maximum age",
            type_="trust-list-too-old",
            status=503,
        )
    return trust_list


PURGE_EVERY = 60.0
_last_purge = 0.0

# The replay guard's INSERT … ON CONFLICT DO NOTHING RETURNING, built once per dialect (by "is it
# PostgreSQL") and sent as Core: every question runs it, and the ORM's path for it cost more than
# the statement.
_SEEN = SeenRequest.__table__
_REMEMBER_REQUEST = {
    is_postgresql: dialect.insert(_SEEN)
    .values(issuer=bindparam("issuer"), jti=bindparam("jti"), expires_at=bindparam("expires_at"))
    .on_conflict_do_nothing()
    .returning(_SEEN.c.id)
    for is_postgresql, dialect in ((True, postgresql), (False, sqlite))
}


def purge_seen_requests(session: Session, *, now: dt.datetime) -> int:
    """Forget request ids past their expiry (a replay of one is refused as expired anyway)."""
    result = session.execute(
        delete(SeenRequest).where(SeenRequest.expires_at < now - dt.timedelta(minutes=5))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def sign_request(
    session: Session, settings: Settings, aud: str, body: dict[str, Any], *, now: dt.datetime
) -> tuple[str, str]:
    """A signed request to ``aud`` and its jti."""
    fingerprint, private = fed_keys.private_key(session, settings.key_secret, "city")
    jti = secrets.token_urlsafe(12)
    payload = {
        "iss": settings.city_code,
        "aud": aud,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + REQUEST_LIFETIME,
        "jti": jti,
        **body,
    }
    return jws.sign(payload, private, typ=jws.TYP_REQUEST, kid=fingerprint), jti


def _numeric_date(value: Any) -> int | None:
    """A JWT NumericDate (RFC 7519 §2) as whole seconds; None for anything else (a string, a
    boolean, NaN or Infinity from a city that writes them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def check_request(
    session: Session, settings: Settings, token: str, *, now: dt.datetime
) -> tuple[MemberView, dict[str, Any]]:
    """Who asks and what, if an active member signed it for us, recently, once."""
    asker, payload = check_signed_request(session, settings, token, now=now)
    remember_request(session, asker.issuer, payload, now=now)
    return asker, payload


def check_signed_request(
    session: Session, settings: Settings, token: str, *, now: dt.datetime
) -> tuple[MemberView, dict[str, Any]]:
    """:func:`check_request` but for the replay guard: who asks and what, if an active member
    signed it for us recently. The caller must then :func:`remember_request` before it answers
    (or write the guard's row itself in the same statement as its own, see ``answers``)."""
    try:
        claimed = jws.unverified_payload(token)
    except jws.BadDocument as exc:
        raise FederationRefusal(f"the request is not a signed document: {exc}") from None
    asker_code = str(claimed.get("iss", ""))[:32]
    trust_list = _check_list(session, settings, now)
    asker = trust_list.members.get(asker_code)
    if asker is None or asker.status not in ("active", "suspended"):
        raise FederationRefusal(f"{asker_code!r} is not a member of the federation")
    if asker.status == "suspended":
        raise FederationRefusal(
            f"{asker_code!r} is suspended from the federation", type_="member-suspended", status=403
        )
    try:
        payload = jws.verify(token, asker.federation_key, typ=jws.TYP_REQUEST)
    except jws.BadDocument as exc:
        raise FederationRefusal(f"the request is not signed by {asker_code!r}: {exc}") from None
    if payload.get("aud") != settings.city_code:
        raise FederationRefusal(f"the request is addressed to {str(payload.get('aud'))[:32]!r}")
    issued, expires, jti = (
        _numeric_date(payload.get("iat")),
        _numeric_date(payload.get("exp")),
        payload.get("jti"),
    )
    if issued is None or expires is None or not isinstance(jti, str):
        raise FederationRefusal("the request lacks iat or exp (NumericDate) or jti (a string)")
    moment = now.timestamp()
    if expires - issued > REQUEST_LIFETIME or expires + 5 < moment or issued - 30 > moment:
        raise FederationRefusal("the request is expired or not yet valid", type_="request-expired")
    if not 8 <= len(jti) <= 64 or control_character(jti) or lone_surrogate(jti):
        raise FederationRefusal("the request's jti must have 8 to 64 printable characters")
    return asker, payload


def seen_row(asker: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The replay guard's row for a request :func:`check_signed_request` accepted from ``asker``."""
    return {
        "issuer": asker,
        "jti": str(payload["jti"]),
        "expires_at": dt.datetime.fromtimestamp(int(payload["exp"]), dt.UTC),
    }


def purge_now_and_then(session: Session, *, now: dt.datetime) -> None:
    # Expired request ids are forgotten now and then (not on every question: it was a statement of
    # each answer); the unique key refuses a replay in any case.
    global _last_purge
    if time.monotonic() - _last_purge > PURGE_EVERY:
        _last_purge = time.monotonic()
        purge_seen_requests(session, now=now)


def replayed(asker: str, payload: dict[str, Any]) -> RequestReplayed:
    return RequestReplayed(f"request {payload['jti']} from {asker} was already answered")


def remember_request(
    session: Session, asker: str, payload: dict[str, Any], *, now: dt.datetime
) -> None:
    """The replay guard: refuse a request seen before (raises :class:`RequestReplayed`)."""
    purge_now_and_then(session, now=now)
    # One statement: the row is new, or the request was seen (a concurrent replay waits on the key).
    connection = session.connection()
    fresh = connection.execute(
        _REMEMBER_REQUEST[connection.dialect.name == "postgresql"], seen_row(asker, payload)
    ).scalar_one_or_none()
    if fresh is None:
        raise replayed(asker, payload)


def sign_answer(
    session: Session,
    settings: Settings,
    asker: str,
    in_reply_to: str,
    body: dict[str, Any],
    *,
    now: dt.datetime,
) -> str:
    fingerprint, private = fed_keys.private_key(session, settings.key_secret, "city")
    payload = {
        "iss": settings.city_code,
        "aud": asker,
        "iat": int(now.timestamp()),
        "in_reply_to": in_reply_to,
        **body,
    }
    return jws.sign(payload, private, typ=jws.TYP_ANSWER, kid=fingerprint)


@dataclass(frozen=True)
class Answer:
    pseudonym: str
    level: int
    valid_until: str


def ask(
    session: Session,
    settings: Settings,
    member: MemberView,
    path: str,
    body: dict[str, Any],
    *,
    now: dt.datetime | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Answer:
    """Ask ``member`` (``path`` under its base URL) and check its signed answer.

    Raises :class:`FederationRefusal` with the partner's own problem type when it refuses, and
    :class:`IssuerUnavailable` when it cannot be reached or answers nonsense."""
    now = now or utcnow()
    token, jti = sign_request(session, settings, member.issuer, body, now=now)
    url = member.base_url + path
    try:
        if transport is not None:
            with httpx.Client(timeout=ASK_TIMEOUT, transport=transport) as http:
                response = http.post(url, json={"request": token})
            status, content = response.status_code, response.content
        elif poster.usable():
            status, content = poster.post_json(url, {"request": token}, timeout=ASK_TIMEOUT)
        else:
            response = partner_client().post(url, json={"request": token}, timeout=ASK_TIMEOUT)
            status, content = response.status_code, response.content
    except (httpx.HTTPError, poster.Unreachable) as exc:
        raise IssuerUnavailable(
            f"{member.name_en} ({member.issuer}) cannot be reached: {exc}"
        ) from None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # "[[[[…" thousands deep from the partner is no answer
        data = None
    if not isinstance(data, dict):
        raise IssuerUnavailable(f"{member.issuer} answered {status} without JSON")
    if status != 200:
        problem_type = (
            str(data.get("type", "")).rsplit("/", 1)[-1][:64] or "federation-request-refused"
        )
        if status >= 500:
            raise IssuerUnavailable(f"{member.issuer} answered {status}: {data.get('detail', '')}")
        raise FederationRefusal(
            f"{member.issuer} refused: {str(data.get('detail', ''))[:300]}",
            type_=problem_type,
            status=status if status in (403, 409, 422) else 422,
        )
    try:
        payload = jws.verify(str(data.get("answer", "")), member.federation_key, typ=jws.TYP_ANSWER)
        if (
            payload.get("iss") != member.issuer
            or payload.get("aud") != settings.city_code
            or payload.get("in_reply_to") != jti
        ):
            raise jws.BadDocument("the answer is not to this request")
        answer = Answer(str(payload["sub"]), int(payload["level"]), str(payload["valid_until"]))
    except (jws.BadDocument, KeyError, TypeError, ValueError) as exc:
        raise IssuerUnavailable(f"{member.issuer}'s answer does not verify: {exc}") from None
    if not 1 <= answer.level <= 5:
        raise IssuerUnavailable(f"{member.issuer} answered a level outside the common scale")
    return answer
