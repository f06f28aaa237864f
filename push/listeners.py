"""What the push domain does when lower domains announce a fact (``citycredit.core.events``): the
events it stores go out through the outbox in the announcer's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from points_engine.models import ScoreSnapshot
from push import links
from push.models import Link
from push.outbox import Outgoing, emit

# Citizen ids per statement (SQLite allows 32,766 parameters; PostgreSQL takes them as one array).
SLICE = 5000

_STATUS_EVENTS = {
    "published": "scenario.published",
    "suspended": "scenario.suspended",
    "retired": "scenario.retired",
}


def scores_written(session: Session, *, citizen_ids: Sequence[int]) -> None:
    """``tier.changed`` for each live link whose operator was last told another level than the
    citizen's current snapshot holds. A citizen nobody linked costs one index probe, and no event."""
    now = utcnow()
    out: list[Outgoing] = []
    for start in range(0, len(citizen_ids), SLICE):
        ids = citizen_ids[start : start + SLICE]
        changed = session.execute(
            select(Link.id, Link.operator_id, Link.pseudonym, ScoreSnapshot.common_tier)
            .join(
                ScoreSnapshot,
                (ScoreSnapshot.citizen_id == Link.citizen_id) & ScoreSnapshot.is_current.is_(True),
            )
            .where(
                Link.citizen_id.in_(ids),
                Link.revoked_at.is_(None),
                (Link.sent_level.is_(None)) | (Link.sent_level != ScoreSnapshot.common_tier),
            )
        ).all()
        for link_id, operator_id, pseudonym, level in changed:
            session.execute(
                update(Link).where(Link.id == link_id).values(sent_level=level),
                execution_options={"synchronize_session": False},
            )
            out.append(
                Outgoing(
                    "tier.changed",
                    pseudonym,
                    {
                        "pseudonym": pseudonym,
                        "common_level": level,
                        "valid_until": links.valid_until(now),
                    },
                    operator_id=operator_id,
                )
            )
    emit(session, out, now=now)


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
    emit(session, [Outgoing(event, code, {"scenario": code, "status": status})])


def keys_rotated(session: Session, *, kid: str) -> None:
    """``keys.rotated``: the city signs with a new key; partners refresh the JWKS (the old key
    stays published while codes it signed can still be valid)."""
    emit(
        session, [Outgoing("keys.rotated", "keys", {"kid": kid, "jwks": "/.well-known/jwks.json"})]
    )
