"""Daily bulletins: what partners must know each day, signed and numbered by the city that says it.

Revoked or retired code-signing keys (also in the trust list at once), the agreement's statistics —
visitors' verifications and redemptions per partner city and category — and the catalogue of
benefits open to visitors. One per city-local day, for the day before; a city that was down
publishes every missed day in order (up to :data:`CATCH_UP_DAYS`). Publishing twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.keys import SigningKey
from citycredit.core.text import control_character, lone_surrogate
from federation import jws
from federation import keys as fed_keys
from federation.models import Bulletin, PartnerBulletin
from federation.operations import Fetch, held_list, http_get_json, note_sync
from federation.queries import visitors_by_category
from federation.trustlist import MemberView
from scenarios.benefits import visitor_catalogue

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 31
PAGE = 31


def _day_bounds(settings: Settings, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), settings.tz).astimezone(dt.UTC)
    return start, start + dt.timedelta(days=1)


def visitor_figures(session: Session, settings: Settings, day: dt.date) -> list[dict[str, Any]]:
    """Visitors' verifications and redemptions here on ``day``, per partner city and category."""
    start, end = _day_bounds(settings, day)
    return [
        {"partner": partner, "category": category, "verifications": v, "redemptions": r}
        for partner, category, v, r in visitors_by_category(session, since=start, until=end)
    ]


def publish_due(
    session: Session, settings: Settings, *, today: dt.date | None = None
) -> list[Bulletin]:
    """Publish the bulletin of every day up to yesterday that has none yet (oldest first)."""
    today = today or dt.datetime.now(settings.tz).date()
    last = session.scalar(select(Bulletin).order_by(Bulletin.seq.desc()).limit(1))
    first_day = max(
        last.day + dt.timedelta(days=1) if last else today - dt.timedelta(days=1),
        today - dt.timedelta(days=CATCH_UP_DAYS),
    )
    if fed_keys.current(session, "city") is None:
        return []
    _, private = fed_keys.private_key(session, settings.key_secret, "city", fresh=True)
    seq = last.seq if last else 0
    published = []
    day = first_day
    while day < today:
        start, end = _day_bounds(settings, day)
        revoked = session.scalars(
            select(SigningKey.kid).where(
                SigningKey.retired_at >= start, SigningKey.retired_at < end
            )
        ).all()
        seq += 1
        payload = {
            "iss": settings.city_code,
            "seq": seq,
            "date": day.isoformat(),
            "iat": int(utcnow().timestamp()),
            "revoked_keys": sorted(revoked),
            "visitors": visitor_figures(session, settings, day),
            "catalogue": visitor_catalogue(session, today=day + dt.timedelta(days=1)),
        }
        bulletin = Bulletin(
            seq=seq, day=day, document=jws.sign(payload, private, typ=jws.TYP_BULLETIN)
        )
        session.add(bulletin)
        published.append(bulletin)
        day += dt.timedelta(days=1)
    session.flush()
    return published


def bulletins_after(session: Session, after: int) -> list[str]:
    return list(
        session.scalars(
            select(Bulletin.document).where(Bulletin.seq > after).order_by(Bulletin.seq).limit(PAGE)
        )
    )


def sync_bulletins(
    session: Session,
    settings: Settings,
    *,
    fetch: Fetch = http_get_json,
    now: dt.datetime | None = None,
) -> dict[str, int | str]:
    """Fetch each active partner's new bulletins, verify them with its federation key, keep them.

    Returns, per partner, how many were kept or the error; one partner's trouble stops no other."""
    now = now or utcnow()
    trust_list = held_list(session, settings)
    outcome: dict[str, int | str] = {}
    if trust_list is None:
        return outcome
    for member in trust_list.members.values():
        if member.issuer == settings.city_code or member.status != "active":
            continue
        what = f"bulletins:{member.issuer}"
        held = session.scalar(
            select(func.max(PartnerBulletin.seq)).where(PartnerBulletin.issuer == member.issuer)
        )
        try:
            kept = _sync_partner(session, member, held, fetch=fetch, now=now)
        except (
            httpx.HTTPError,
            ValueError,
            KeyError,
            TypeError,
            OverflowError,
            jws.BadDocument,
            sa_exc.DataError,
        ) as exc:
            note_sync(session, what, now=now, error=str(exc))
            outcome[member.issuer] = f"error: {exc}"
            log.warning("bulletins of %s not synced: %s", member.issuer, exc)
            continue
        note_sync(session, what, now=now, error=None)
        outcome[member.issuer] = kept
    return outcome


def _unreadable_text(payload: Any) -> str | None:
    """The first control character (line breaks and tabs allowed) or lone surrogate in any string
    of ``payload``, which partners' pages would show and no database stores; None when clean."""
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = control_character(item, multiline=True) or lone_surrogate(item)
            if found:
                return found
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _sync_partner(
    session: Session, member: MemberView, held: int | None, *, fetch: Fetch, now: dt.datetime
) -> int:
    """Keep ``member``'s bulletins after ``held``, in order, up to the first one refused."""
    kept = 0
    for _ in range(CATCH_UP_DAYS):  # pages, bounded
        body = fetch(f"{member.base_url}/api/v1/federation/bulletins?after={held or 0}")
        documents = body.get("bulletins")
        if not isinstance(documents, list) or not documents:
            break
        for document in documents:
            payload = jws.verify(str(document), member.federation_key, typ=jws.TYP_BULLETIN)
            seq = payload.get("seq")
            # One a day, numbered without gaps: a skipped number is a bulletin withheld
            # (its revoked keys unheard), so nothing after it is kept until it arrives.
            if (
                payload.get("iss") != member.issuer
                or type(seq) is not int
                or seq != (held or 0) + 1
            ):
                raise jws.BadDocument(
                    f"bulletin {str(seq)[:12]} of "
                    f"{str(payload.get('iss'))[:32]!r} is out of sequence or from another "
                    f"city (expected {member.issuer}'s {(held or 0) + 1})"
                )
            found = _unreadable_text(payload)
            if found:
                raise jws.BadDocument(f"bulletin {seq} of {member.issuer} holds {found}")
            # Each in a savepoint: one the database refuses leaves those before it kept.
            with session.begin_nested():
                session.add(
                    PartnerBulletin(
                        issuer=member.issuer,
                        seq=seq,
                        day=dt.date.fromisoformat(str(payload["date"])),
                        payload=payload,
                        received_at=now,
                    )
                )
            held = seq
            kept += 1
        if len(documents) < PAGE:
            break
    return kept
