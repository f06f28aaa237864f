"""Links: a citizen's authorisation for one operator's systems to receive their common level.

The one owner of a link's state: :func:`create_link` and :func:`revoke_link` (every entry point — the
phone page, consent withdrawal, the admin — calls them). A revocation cancels the ``tier.changed``
deliveries not yet sent for that pseudonym (the citizen said stop: nothing more about them leaves)
and emits ``link.revoked`` to the operator in the same transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from citycredit.core.db import utcnow
from points_engine.models import Citizen, ScoreSnapshot
from push import delivery
from push.models import Link
from push.outbox import Outgoing, emit
from scenarios.models import Operator

SHARES = ("common_level", "scenarios")
# A level told to an operator holds this long without news; the operator pulls again before then
# (an endpoint that stopped receiving events must not hold a stale level for ever).
LEVEL_VALIDITY = dt.timedelta(days=7)


class LinkError(Exception):
    """A link cannot be made or changed as asked; the message is meant for the person acting."""


def link_pseudonym(id_hash_key: bytes, citizen: Citizen, operator: Operator) -> str:
    """HMAC of the citizen and the operator under the city's ID-hash key: the same every time for
    this pair, unrelated to what any other operator (or partner city) is told."""
    mac = hmac.new(
        id_hash_key, f"link|v1|{operator.code}|{citizen.id_hash}".encode(), hashlib.sha256
    ).digest()
    return "lk_" + base64.urlsafe_b64encode(mac[:18]).decode("ascii")


def valid_until(now: dt.datetime) -> str:
    return (now + LEVEL_VALIDITY).replace(microsecond=0).isoformat()


def current_level(session: Session, citizen_id: int) -> int | None:
    """The citizen's common level now (None: no current score)."""
    level: int | None = session.scalar(
        select(ScoreSnapshot.common_tier).where(
            ScoreSnapshot.citizen_id == citizen_id, ScoreSnapshot.is_current.is_(True)
        )
    )
    return level


def live_link(session: Session, citizen_id: int, operator_id: int) -> Link | None:
    return session.scalar(
        select(Link).where(
            Link.citizen_id == citizen_id,
            Link.operator_id == operator_id,
            Link.revoked_at.is_(None),
        )
    )


def create_link(
    session: Session,
    *,
    id_hash_key: bytes,
    citizen: Citizen,
    client: ApiClient,
    actor: str,
) -> Link:
    """Link the citizen with the client's operator (an existing live link is kept and returned).

    Only a citizen who consents to be scored can link: without a score there is no level to share."""
    if client.operator_id is None or client.status != "active":
        raise LinkError("only an active operator's system can be linked")
    # The citizen's row locked first: a second tap on 同意 waits and finds the link made, and a
    # consent withdrawn meanwhile is seen (it revokes links in the same order).
    session.flush()
    session.refresh(citizen, with_for_update=True)
    if not citizen.consent_given:
        raise LinkError("the citizen does not consent to be scored: there is no level to share")
    existing = live_link(session, citizen.id, client.operator_id)
    if existing is not None:
        return existing
    operator = session.get(Operator, client.operator_id)
    assert operator is not None
    link = Link(
        citizen_id=citizen.id,
        operator_id=operator.id,
        client_id=client.id,
        pseudonym=link_pseudonym(id_hash_key, citizen, operator),
        shares=list(SHARES),
        sent_level=current_level(session, citizen.id),
        created_at=utcnow(),
    )
    session.add(link)
    session.flush()
    audit(
        session,
        actor=actor,
        action="link.create",
        citizen_id=citizen.id,
        operator=operator.code,
        client=client.client_id,
    )
    return link


def revoke_link(session: Session, link: Link, *, by: str, actor: str) -> bool:
    """Revoke a live link (False when it already was): pending ``tier.changed`` deliveries for its
    pseudonym are cancelled and ``link.revoked`` is emitted, all in the caller's transaction."""
    if link.revoked_at is not None:
        return False
    now = utcnow()
    link.revoked_at = now
    link.revoked_by = by
    delivery.cancel_level_changes(
        session, operator_id=link.operator_id, pseudonym=link.pseudonym, now=now
    )
    emit(
        session,
        [
            Outgoing(
                "link.revoked",
                link.pseudonym,
                {"pseudonym": link.pseudonym, "revoked_at": now.replace(microsecond=0).isoformat()},
                operator_id=link.operator_id,
            )
        ],
        now=now,
    )
    session.flush()
    audit(
        session,
        actor=actor,
        action="link.revoke",
        citizen_id=link.citizen_id,
        link=link.id,
        by=by,
    )
    return True


def revoke_all(session: Session, citizen_id: int, *, by: str, actor: str) -> int:
    """Revoke every live link of a citizen (consent to be scored withdrawn); returns how many."""
    links = session.scalars(
        select(Link).where(Link.citizen_id == citizen_id, Link.revoked_at.is_(None))
    ).all()
    return sum(revoke_link(session, link, by=by, actor=actor) for link in links)
