"""What the push domain does when lower domains announce a fact (``citycredit.core.events``): the
events it stores go out through the outbox in the announcer's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import String, func, literal, update
from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from points_engine.models import ScoreSnapshot
from push import links, outbox
from push.models import Link

# Citizen ids per statement (SQLite allows 32,766 parameters; PostgreSQL takes them as one array).
SLICE = 5000

_STATUS_EVENTS = {
    "published": "scenario.published",
    "suspended": "scenario.suspended",
    "retired": "scenario.retired",
}


def scores_written(session: Session, *, citizen_ids: Sequence[int]) -> None:
    """``tier.changed`` for each live link whose operator was last told another level than the
    citizen's current snapshot holds. Per slice of citizens, one UPDATE of the links that changed
    (on PostgreSQL the events and deliveries are inserted by the same statement); a citizen nobody
    linked costs an index probe and no event."""
    now = utcnow()
    until = links.valid_until(now)
    snapshot = ScoreSnapshot.__table__.c
    targets = outbox.subscribed_operators(session, "tier.changed")
    set_based = session.get_bind().dialect.name == "postgresql"
    out: list[outbox.Outgoing] = []
    for start in range(0, len(citizen_ids), SLICE):
        ids = citizen_ids[start : start + SLICE]
        changed = (
            update(Link)
            .where(
                Link.citizen_id.in_(ids),
                Link.revoked_at.is_(None),
                snapshot.citizen_id == Link.citizen_id,
                snapshot.is_current.is_(True),
                Link.sent_level.is_distinct_from(snapshot.common_tier),
            )
            .values(sent_level=snapshot.common_tier)
        )
        if not targets:  # nobody listens: only remember what the operators would now be told
            session.execute(changed, execution_options={"synchronize_session": False})
            continue
        returning = changed.returning(
            Link.operator_id, Link.pseudonym.label("ordering_key"), Link.sent_level
        )
        if set_based:
            rows = returning.cte("changed")
            data = func.jsonb_build_object(
                "pseudonym",
                rows.c.ordering_key,
                "common_level",
                rows.c.sent_level,
                "valid_until",
                literal(until, type_=String),
            )
            outbox.emit_personal_rows(session, "tier.changed", rows, data, targets=targets, now=now)
            continue
        found = session.execute(returning, execution_options={"synchronize_session": False})
        out.extend(
            outbox.Outgoing(
                "tier.changed",
                pseudonym,
                {"pseudonym": pseudonym, "common_level": level, "valid_until": until},
                operator_id=operator_id,
            )
            for operator_id, pseudonym, level in found
        )
    outbox.emit(session, out, now=now)


def consent_withdrawn(session: Session, *, citizen_id: int) -> None:
    """Withdrawing consent to be scored revokes every link (there is no level left to share)."""
    links.revoke_all(session, citizen_id, by="consent-withdrawn", actor="system")


def scenario_status(
    session: Session, *, scenario_id: int, code: str, operator_id: int, status: str, before: str
) -> None:
    """``scenario.published`` / ``suspended`` / ``retired`` for a scenario partners could see (a
    draft retired before it was ever published was never public: nothing is said)."""
    event = _STATUS_EVENTS.get(status)
    if event is None or (status == "retired" and before not in ("published", "suspended")):
        return
    outbox.emit(session, [outbox.Outgoing(event, code, {"scenario": code, "status": status})])


def keys_rotated(session: Session, *, kid: str) -> None:
    """``keys.rotated``: the city signs with a new key; partners refresh the JWKS (the old key
    stays published while codes it signed can still be valid)."""
    rotated = outbox.Outgoing(
        "keys.rotated", "keys", {"kid": kid, "jwks": "/.well-known/jwks.json"}
    )
    outbox.emit(session, [rotated])
