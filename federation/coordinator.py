"""The coordinator: registers members (four eyes), reads their signed entries, signs the trust list.

Any deployment can play it (``CITYCREDIT_FEDERATION_COORDINATOR=1`` and an anchor key); the others
pin the anchor's fingerprint. Membership changes — join, suspend, resume, leave, re-key — are
proposed by one platform admin and carried out only when another approves them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor
from citycredit.core.audit import audit
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from federation import jws
from federation import keys as fed_keys
from federation.models import CHANGE_ACTIONS, Member, MemberChange, PublishedTrustList
from federation.operations import (
    Fetch,
    accept_list,
    common_scale,
    http_get_json,
    own_entry,
)
from federation.trustlist import canonical
from scenarios.models import CATEGORIES

log = logging.getLogger(__name__)


class CoordinatorError(Exception):
    """A membership change or a list that cannot be made; the message says why."""


def _require_coordinator(settings: Settings) -> None:
    if not settings.federation_coordinator:
        raise CoordinatorError(
            "this deployment is not the federation's coordinator (CITYCREDIT_FEDERATION_COORDINATOR=1)"
        )


def fetch_entry(base_url: str, fetch: Fetch = http_get_json) -> tuple[str, dict[str, Any]]:
    """A would-be member's entry and federation key, as its deployment publishes them."""
    body = fetch(base_url.rstrip("/") + "/api/v1/federation/entry")
    entry, jwk = body.get("entry"), body.get("federation_key")
    if not isinstance(entry, str) or not isinstance(jwk, dict):
        raise CoordinatorError(f"{base_url} publishes no federation entry")
    return entry, jwk


# The member's standing each change starts from; a city that left comes back only by joining
# again, its key checked anew against the fingerprint its credit office gives.
STANDING_FOR = {
    "suspend": ("active",),
    "resume": ("suspended",),
    "leave": ("active", "suspended"),
    "rekey": ("active", "suspended"),
}


def _require_standing(issuer: str, action: str, member: Member | None) -> None:
    if action == "join":
        if member is not None and member.status != "left":
            raise CoordinatorError(f"{issuer} is already a member ({member.status})")
        return
    if member is None:
        raise CoordinatorError(f"{issuer} is not a member")
    if member.status not in STANDING_FOR[action]:
        why = (
            "has left the federation (it may join again)"
            if member.status == "left"
            else f"is {member.status}"
        )
        raise CoordinatorError(f"{issuer} {why}: it cannot be asked to {action}")


def propose(
    session: Session,
    settings: Settings,
    actor: Actor,
    issuer: str,
    action: str,
    *,
    base_url: str | None = None,
    fingerprint: str | None = None,
    fetch: Fetch = http_get_json,
) -> MemberChange:
    """Propose a change. Joining and re-keying read the member's key from its own deployment and
    hold it to the fingerprint its credit office gave out of band (a phone call, a letter)."""
    _require_coordinator(settings)
    if action not in CHANGE_ACTIONS:
        raise CoordinatorError(f"unknown action {action!r}: one of {', '.join(CHANGE_ACTIONS)}")
    member = session.scalar(select(Member).where(Member.issuer == issuer))
    detail: dict[str, Any] = {}
    _require_standing(issuer, action, member)
    if action in ("join", "rekey"):
        url = base_url or (member.base_url if member else None)
        if not url or not fingerprint:
            raise CoordinatorError("joining and re-keying need the member's URL and fingerprint")
        entry, jwk = fetch_entry(url, fetch)
        if jws.thumbprint(jwk) != fingerprint:
            raise CoordinatorError(
                f"the key {url} publishes has fingerprint {jws.thumbprint(jwk)}, not {fingerprint}: "
                "do not proceed until the member's credit office confirms it"
            )
        payload = jws.verify(entry, jws.public_key_from_jwk(jwk), typ=jws.TYP_ENTRY)
        if payload.get("iss") != issuer:
            raise CoordinatorError(f"{url} is {payload.get('iss')!r}, not {issuer!r}")
        try:
            check_entry_shape(payload)
        except jws.BadDocument as exc:
            raise CoordinatorError(f"the entry {url} publishes is malformed: {exc}") from None
        # The entry read at proposal, signed by that key: listed as soon as the change is approved.
        detail = {"base_url": url.rstrip("/"), "federation_key": jwk, "entry": entry}
    change = MemberChange(
        issuer=issuer, action=action, detail=detail, proposed_by=actor.name, proposed_at=utcnow()
    )
    session.add(change)
    session.flush()
    audit(
        session,
        actor=actor.name,
        action=f"federation.propose_{action}",
        issuer=issuer,
        change=change.id,
    )
    return change


def decide(
    session: Session,
    settings: Settings,
    actor: Actor,
    change_id: int,
    *,
    approve: bool,
    now: dt.datetime | None = None,
) -> MemberChange:
    """Approve (carry out) or reject a proposed change; never by the one who proposed it."""
    _require_coordinator(settings)
    change = session.get(MemberChange, change_id)
    if change is None or change.state != "pending":
        raise CoordinatorError(f"no pending change #{change_id}")
    if actor.name == change.proposed_by:
        raise CoordinatorError(
            "four eyes: a membership change is approved by someone other than who proposed it"
        )
    if approve:
        # Another change may have been carried out since this one was proposed.
        member = session.scalar(select(Member).where(Member.issuer == change.issuer))
        _require_standing(change.issuer, change.action, member)
    change.state = "approved" if approve else "rejected"
    change.decided_by = actor.name
    now = now or utcnow()
    change.decided_at = now
    if approve:
        _apply(session, change)
    audit(
        session,
        actor=actor.name,
        action=f"federation.{'approve' if approve else 'reject'}_{change.action}",
        issuer=change.issuer,
        change=change.id,
    )
    session.flush()
    if approve:
        # The change takes effect with the next signed list: sign it now (the entry read at
        # proposal, or the stored ones, suffice), so partners see it at their next sync.
        try:
            compile_list(session, settings, now=now)
        except fed_keys.NoFederationKey:
            log.warning("approved #%s; no anchor key yet, so no list was signed", change.id)
    return change


def _apply(session: Session, change: MemberChange) -> None:
    now = utcnow()
    member = session.scalar(select(Member).where(Member.issuer == change.issuer))
    if change.action == "join":
        if member is None:
            member = Member(issuer=change.issuer, joined_at=now)
            session.add(member)
        member.base_url = change.detail["base_url"]
        member.federation_jwk = change.detail["federation_key"]
        member.status = "active"
        member.status_changed_at = now
        member.entry = change.detail.get("entry")
        member.entry_fetched_at = change.proposed_at if member.entry else None
        return
    assert member is not None
    if change.action == "rekey":
        member.federation_jwk = change.detail["federation_key"]
        member.base_url = change.detail["base_url"]
        # The old entry was signed by the old key; the one read with the new key replaces it, so
        # the member stays listed even if it cannot be reached at the next refresh.
        member.entry = change.detail.get("entry")
        member.entry_fetched_at = change.proposed_at if member.entry else None
    else:
        member.status = {"suspend": "suspended", "resume": "active", "leave": "left"}[change.action]
        member.status_changed_at = now


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_entry_shape(payload: dict[str, Any]) -> None:
    """An entry is listed only in the documented shape (docs/FEDERATION.md): every verifier, the
    desks' SDK included, may then read it strictly, and one member's odd entry never makes a list
    that others refuse (it keeps its last good entry instead). Raises ``jws.BadDocument``."""
    names = payload.get("names")
    if not (
        isinstance(names, dict)
        and isinstance(names.get("zh"), str)
        and isinstance(names.get("en"), str)
    ):
        raise jws.BadDocument("names must be {zh, en} strings")
    for field in ("base_url", "level"):
        if not isinstance(payload.get(field), str):
            raise jws.BadDocument(f"{field} must be a string")
    if not _is_int(payload.get("iat")):
        raise jws.BadDocument("iat must be an integer")
    keys = payload.get("signing_keys")
    if not isinstance(keys, list) or len(keys) > 50:
        raise jws.BadDocument("signing_keys must be a list (at most 50)")
    for key in keys:
        if not (
            isinstance(key, dict)
            and all(isinstance(key.get(f), str) for f in ("kty", "crv", "x", "kid"))
            and _is_int(key.get("nbf"))
            and (key.get("exp") is None or _is_int(key.get("exp")))
        ):
            raise jws.BadDocument("a signing key needs kty, crv, x, kid and integer nbf/exp")
        jws.public_key_from_jwk(key)
    mappings = payload.get("mappings")
    if not isinstance(mappings, list) or len(mappings) > 10:
        raise jws.BadDocument("mappings must be a list (at most 10)")
    for mapping in mappings:
        tiers = mapping.get("tiers") if isinstance(mapping, dict) else None
        if not (isinstance(mapping, dict) and _is_int(mapping.get("version"))) or not isinstance(
            tiers, list
        ):
            raise jws.BadDocument("a mapping needs an integer version and a list of tiers")
        for tier in tiers:
            if not (
                isinstance(tier, dict)
                and all(isinstance(tier.get(f), str) for f in ("code", "name_zh", "name_en"))
                and _is_int(tier.get("common_level"))
                and 1 <= tier["common_level"] <= 5
            ):
                raise jws.BadDocument("a tier needs code, names and a common level from 1 to 5")
    current = payload.get("current_mapping")
    if current is not None and not _is_int(current):
        raise jws.BadDocument("current_mapping must be an integer or null")


def refresh_entries(
    session: Session, settings: Settings, *, fetch: Fetch = http_get_json
) -> dict[str, str | None]:
    """Read every member's current entry; keep each that verifies with its registered key.

    A member that cannot be reached keeps its last good entry (and the error is shown)."""
    _require_coordinator(settings)
    outcome: dict[str, str | None] = {}
    for member in session.scalars(select(Member).where(Member.status != "left")):
        try:
            if member.issuer == settings.city_code:
                entry = own_entry(session, settings)
            else:
                entry, _ = fetch_entry(member.base_url, fetch)
            payload = jws.verify(
                entry, jws.public_key_from_jwk(member.federation_jwk), typ=jws.TYP_ENTRY
            )
            if payload.get("iss") != member.issuer:
                raise jws.BadDocument(f"the entry is {payload.get('iss')!r}'s")
            check_entry_shape(payload)
        except Exception as exc:
            member.entry_error = str(exc)[:500]
            outcome[member.issuer] = member.entry_error
            log.warning("entry of %s not refreshed: %s", member.issuer, exc)
            continue
        if member.entry is None or _content(member.entry) != _content(entry):
            member.entry = entry  # an unchanged entry keeps its signature, so the list stays put
        member.entry_fetched_at = utcnow()
        member.entry_error = None
        outcome[member.issuer] = None
    session.flush()
    return outcome


def shared_categories() -> list[dict[str, str]]:
    """The scenario categories every member files its benefits under (信易+ brands)."""
    return [
        {"code": code, "brand_zh": brand, "name_zh": zh, "name_en": en}
        for code, (brand, zh, en) in CATEGORIES.items()
    ]


def _content(entry: str) -> dict[str, Any]:
    payload = jws.unverified_payload(entry)
    payload.pop("iat", None)
    return payload


def compile_list(
    session: Session,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    force: bool = False,
    categories: list[dict[str, str]] | None = None,
) -> PublishedTrustList | None:
    """Sign a new list if membership or an entry changed, or the last is a quarter of its age old."""
    _require_coordinator(settings)
    now = now or utcnow()
    members = []
    for member in session.scalars(select(Member).order_by(Member.issuer)):
        if member.entry is None:
            continue  # a member is listed once its own signed entry is in hand
        members.append(
            {
                "issuer": member.issuer,
                "status": member.status,
                "federation_key": member.federation_jwk,
                "status_changed_at": int(member.status_changed_at.timestamp()),
                "entry": member.entry,
            }
        )
    body = {
        "members": members,
        "value_sets": {
            "common_levels": common_scale(),
            "categories": categories if categories is not None else shared_categories(),
        },
    }
    digest = hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()
    last = session.scalar(
        select(PublishedTrustList).order_by(PublishedTrustList.seq.desc()).limit(1)
    )
    refresh_after = dt.timedelta(seconds=settings.trust_list_max_age / 4)
    if (
        not force
        and last is not None
        and last.digest == digest
        and now - last.issued_at < refresh_after
    ):
        return None
    seq = (last.seq if last else 0) + 1
    payload = {
        "format": 1,
        "seq": seq,
        "iat": int(now.timestamp()),
        "coordinator": settings.city_code,
        **body,
    }
    _, anchor = fed_keys.private_key(session, settings.key_secret, "anchor", fresh=True)
    document = jws.sign(payload, anchor, typ=jws.TYP_TRUST_LIST, with_key=True)
    published = PublishedTrustList(
        seq=seq, issued_at=now.replace(microsecond=0), digest=digest, document=document
    )
    session.add(published)
    audit(session, actor="system:coordinator", action="federation.trust_list_signed", seq=seq)
    session.flush()
    # The coordinator's own city holds what it signed, like every other member.
    if settings.trust_anchor:
        accept_list(session, settings, document, now=now, actor="system:coordinator")
    return published


def latest_published(session: Session) -> PublishedTrustList | None:
    return session.scalar(
        select(PublishedTrustList).order_by(PublishedTrustList.seq.desc()).limit(1)
    )
