"""Linking with consent: the OAuth 2.0 authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636,
S256 only).

Why this standard rather than a one-time code shown on the phone: the operator's web system can
redirect, so the citizen consents on the city's own page, where they are already signed in, and the
operator receives the code without anyone typing it; it is the flow every OAuth client library
speaks; and PKCE binds the code to the system that started the flow, so an intercepted code is
useless. The three steps, each a use case every entry point calls:

1. :func:`validate_request` checks what the operator's system sent (client, exact redirect URI,
   ``response_type=code``, an S256 ``code_challenge``), before anything is shown to the citizen;
2. :func:`approve`, when the signed-in citizen says yes: the link is made (``push.links``) and a
   one-time code (random, stored only as its SHA-256, 10 minutes at most) is bound to the client,
   the redirect URI and the challenge;
3. :func:`exchange`, at the token endpoint: the authenticated client, the same redirect URI and the
   verifier whose S256 is the challenge, once. A code presented twice is refused and, per RFC 6749
   §10.5, the link made from it is revoked: someone else may hold it.

What the operator then reads of a link (:func:`link_view`): the pairwise pseudonym, the common level,
how long that level holds, and the codes of its own scenarios the citizen qualifies for now. Never
the score, a record, a name or an ID number.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from points_engine.models import Citizen
from push import links
from push.apps import LINK_SCOPE, app_of
from push.models import Link, LinkGrant
from scenarios.benefits import qualifying_codes
from scenarios.models import Operator

CODE_LIFETIME = dt.timedelta(minutes=10)
# RFC 7636 §4.1: 43 to 128 unreserved characters (a S256 challenge is 43 of base64url).
_PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
MAX_STATE = 500


class AuthorizeError(Exception):
    """An authorization request or a code exchange refused, with its OAuth 2 ``error`` code.

    ``redirect``: whether the answer may go back to the redirect URI (RFC 6749 §4.1.2.1); it may not
    when the client or the redirect URI itself is in doubt: then the citizen is shown a page."""

    def __init__(self, error: str, description: str, *, redirect: bool = True):
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked request: who asks (client and operator), where the answer goes, and the PKCE
    challenge the code will be bound to."""

    client: ApiClient
    operator: Operator
    redirect_uri: str
    code_challenge: str
    state: str | None


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def redirect_to(redirect_uri: str, **params: str | None) -> str:
    """``redirect_uri`` with ``params`` added to its query (RFC 6749 §3.1.2: its own query kept)."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def validate_request(session: Session, params: Mapping[str, str]) -> AuthorizationRequest:
    """Check an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3) before the citizen sees it.

    Refusals about the client or the redirect URI are never redirected (``redirect=False``); the
    others go back to the registered redirect URI with ``error`` and ``state``."""
    client_id = params.get("client_id") or ""
    found = app_of(session, client_id) if client_id else None
    if found is None:
        raise AuthorizeError(
            "invalid_client", "unknown client_id, or not allowed to link", redirect=False
        )
    client, app = found
    redirect_uri = params.get("redirect_uri") or ""
    if redirect_uri not in app.redirect_uris:
        raise AuthorizeError(
            "invalid_request",
            "redirect_uri is missing or not registered for this client",
            redirect=False,
        )
    operator = session.get(Operator, client.operator_id)
    assert operator is not None
    state = params.get("state")
    if state is not None and (len(state) > MAX_STATE or not state.isprintable()):
        raise AuthorizeError(
            "invalid_request", f"state is at most {MAX_STATE} printable characters"
        )
    if params.get("response_type") != "code":
        raise AuthorizeError("unsupported_response_type", "response_type must be code")
    method = params.get("code_challenge_method")
    challenge = params.get("code_challenge") or ""
    if not challenge:
        raise AuthorizeError("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        raise AuthorizeError("invalid_request", "code_challenge_method must be S256")
    if not _PKCE.fullmatch(challenge):
        raise AuthorizeError("invalid_request", "code_challenge must be 43 to 128 characters")
    scope = params.get("scope")
    if scope is not None and set(scope.split()) - {LINK_SCOPE}:
        raise AuthorizeError("invalid_scope", f"the only scope to ask here is {LINK_SCOPE}")
    return AuthorizationRequest(client, operator, redirect_uri, challenge, state)


def approve(
    session: Session,
    request: AuthorizationRequest,
    citizen: Citizen,
    *,
    id_hash_key: bytes,
    now: dt.datetime,
    actor: str,
) -> str:
    """The signed-in citizen said yes: make the link and return a one-time code for the client.

    Raises :class:`push.links.LinkError` when the citizen cannot link (no consent to be scored)."""
    link = links.create_link(
        session, id_hash_key=id_hash_key, citizen=citizen, client=request.client, actor=actor
    )
    code = secrets.token_urlsafe(32)
    session.add(
        LinkGrant(
            code_hash=hash_code(code),
            client_id=request.client.id,
            citizen_id=citizen.id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            expires_at=now + CODE_LIFETIME,
        )
    )
    session.flush()
    audit(
        session,
        actor=actor,
        action="link.authorize",
        citizen_id=citizen.id,
        client=request.client.client_id,
        link=link.id,
    )
    return code


def exchange(
    session: Session,
    client: ApiClient,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    now: dt.datetime,
) -> Link:
    """Exchange a code for the link it made (RFC 6749 §4.1.3, RFC 7636 §4.6); ``client`` is already
    authenticated. Every refusal is ``invalid_grant`` but a missing parameter (``invalid_request``)."""
    if not code or not redirect_uri or not code_verifier:
        raise AuthorizeError("invalid_request", "send code, redirect_uri and code_verifier")
    grant = session.get(LinkGrant, hash_code(code)) if len(code) <= 200 else None
    if grant is None or grant.client_id != client.id:
        raise AuthorizeError("invalid_grant", "unknown authorization code")
    if grant.used_at is not None:
        # RFC 6749 §10.5: a code used twice may have been stolen; what it granted is withdrawn.
        made = links.live_link(session, grant.citizen_id, client.operator_id or 0)
        if made is not None:
            links.revoke_link(session, made, by="city", actor=f"client:{client.client_id}")
        audit(
            session,
            actor=f"client:{client.client_id}",
            action="link.code_reused",
            citizen_id=grant.citizen_id,
            link=made.id if made is not None else None,
        )
        raise AuthorizeError(
            "invalid_grant", "this authorization code was already used; the link is revoked"
        )
    if _aware(grant.expires_at) <= now:
        raise AuthorizeError("invalid_grant", "the authorization code has expired")
    if grant.redirect_uri != redirect_uri:
        raise AuthorizeError("invalid_grant", "redirect_uri differs from the authorization request")
    if not _PKCE.fullmatch(code_verifier) or not hmac.compare_digest(
        s256(code_verifier), grant.code_challenge
    ):
        raise AuthorizeError("invalid_grant", "code_verifier does not match the code_challenge")
    spent = session.execute(
        update(LinkGrant)
        .where(LinkGrant.code_hash == grant.code_hash, LinkGrant.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise AuthorizeError("invalid_grant", "this authorization code was already used")
    link = links.live_link(session, grant.citizen_id, client.operator_id or 0)
    if link is None:
        raise AuthorizeError("invalid_grant", "the citizen revoked this link")
    return link


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def live_link_of_operator(session: Session, operator_id: int, pseudonym: str) -> Link | None:
    """A live link of this operator by its pseudonym (None for another operator's or a revoked one)."""
    return session.scalar(
        select(Link).where(
            Link.operator_id == operator_id,
            Link.pseudonym == pseudonym,
            Link.revoked_at.is_(None),
        )
    )


def link_view(
    session: Session,
    link: Link,
    *,
    now: dt.datetime,
    today: dt.date,
    actor: str,
) -> dict[str, Any]:
    """What the operator reads of a live link, audited: pseudonym, common level (1–5, None while
    the citizen has no score), how long that holds, and its scenarios the citizen qualifies for now.
    The level told is remembered (``sent_level``), so ``tier.changed`` says only what is news."""
    citizen = session.get(Citizen, link.citizen_id)
    operator = session.get(Operator, link.operator_id)
    assert citizen is not None and operator is not None
    level = links.current_level(session, citizen.id)
    scenarios = qualifying_codes(
        session, citizen, operator_code=operator.code, today=today, actor=actor
    )
    link.sent_level = level
    audit(
        session,
        actor=actor,
        action="link.read",
        citizen_id=citizen.id,
        link=link.id,
        operator=operator.code,
    )
    return {
        "pseudonym": link.pseudonym,
        "common_level": level,
        "valid_until": links.valid_until(now),
        "scenarios": scenarios,
    }


@dataclass(frozen=True)
class LinkLine:
    """One of a citizen's links as their page shows it."""

    link: Link
    operator_zh: str
    operator_en: str
    system: str


def links_of_citizen(session: Session, citizen: Citizen) -> list[LinkLine]:
    """Every link the citizen made, live ones first, newest first (their own data: not audited)."""
    rows = session.execute(
        select(Link, Operator, ApiClient)
        .join(Operator, Operator.id == Link.operator_id)
        .join(ApiClient, ApiClient.id == Link.client_id)
        .where(Link.citizen_id == citizen.id)
        .order_by(Link.revoked_at.is_not(None), Link.created_at.desc(), Link.id.desc())
    ).all()
    return [LinkLine(link, op.name_zh, op.name_en, client.name) for link, op, client in rows]


def own_link(session: Session, citizen: Citizen, link_id: int) -> Link | None:
    link = session.get(Link, link_id)
    return link if link is not None and link.citizen_id == citizen.id else None
