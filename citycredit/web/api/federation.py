"""The federation's endpoints (docs/FEDERATION.md): what this city publishes about itself, the trust
list it holds, its bulletins, and its answers to partner cities' signed questions; and, for the
city's own systems, asking a partner city for its citizen's common level (OAuth ``tiers:exchange``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from citycredit.core.idnumber import InvalidIdNumber, parse_id_number
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import ID_NUMBER, ID_NUMBER_PATTERN, problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from federation import answers, bulletins, coordinator, s2s
from federation import keys as fed_keys
from federation.models import HeldTrustList
from federation.operations import held_list, own_entry
from points_engine.ingest import holds_id_number

blueprint = Blueprint(
    "federation",
    __name__,
    url_prefix="/api/v1",
    description="Partner cities (十城互认): trust list, entries, bulletins, server-to-server questions",
)

JWS = validate.Length(min=20, max=20_000)


class EntrySchema(Schema):
    entry = fields.String(
        required=True, metadata={"description": "compact JWS (typ citycredit-entry+jwt)"}
    )
    federation_key = fields.Dict(
        required=True, metadata={"description": "this city's federation key (Ed25519 JWK)"}
    )
    fingerprint = fields.String(required=True, metadata={"description": "RFC 7638 thumbprint"})


class TrustListSchema(Schema):
    trust_list = fields.String(
        required=True, metadata={"description": "compact JWS (typ citycredit-trust-list+jwt)"}
    )
    seq = fields.Integer(required=True)


class BulletinQuery(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))


class BulletinsSchema(Schema):
    bulletins = fields.List(fields.String(), required=True)


class SignedRequest(Schema):
    request = fields.String(
        required=True,
        validate=JWS,
        metadata={"description": "compact JWS by the asking city (typ citycredit-s2s+jwt)"},
    )


class SignedAnswer(Schema):
    answer = fields.String(
        required=True, metadata={"description": "compact JWS (typ citycredit-s2s-answer+jwt)"}
    )


class PartnerTierRequest(Schema):
    issuer = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "the partner city's issuer code", "example": "460200"},
    )
    id_number = fields.String(
        required=True,
        validate=validate.Regexp(
            ID_NUMBER_PATTERN, error="must be 18 characters: 17 digits and a digit or X"
        ),
        metadata=ID_NUMBER,
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=2, max=200),
        metadata={"description": "why the level is asked for; the citizen sees it"},
    )


class PartnerTier(Schema):
    issuer = fields.String(required=True)
    pseudonym = fields.String(
        required=True,
        metadata={"description": "stable for this citizen and this city; unlinkable elsewhere"},
    )
    level = fields.Integer(required=True, validate=validate.Range(min=1, max=5))
    valid_until = fields.String(required=True, metadata={"format": "date-time"})


def _refused(exc: s2s.FederationRefusal) -> Problem:
    return Problem(exc.type, exc.detail, status=exc.status)


@blueprint.route("/federation/entry", methods=["GET"])
@problems(blueprint, 409, 429)
@blueprint.response(200, EntrySchema)
def entry() -> Any:
    """This city's entry (issuer, names, code-signing keys, tier mappings), signed by its federation key."""
    session = db_session()
    settings = platform_of(current_app).settings
    try:
        document = own_entry(session, settings)
    except fed_keys.NoFederationKey as exc:
        raise Problem("not-federated", str(exc)) from None
    key = fed_keys.current(session, "city")
    assert key is not None
    response = jsonify(entry=document, federation_key=key.public_jwk, fingerprint=key.fingerprint)
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.route("/federation/trust-list", methods=["GET"])
@problems(blueprint, 409, 429)
@blueprint.response(200, TrustListSchema)
def trust_list() -> Any:
    """The trust list: the coordinator serves the one it signs, every member the one it holds."""
    session = db_session()
    settings = platform_of(current_app).settings
    document: str | None = None
    seq: int | None = None
    if settings.federation_coordinator:
        published = coordinator.latest_published(session)
        if published is not None:
            document, seq = published.document, published.seq
    if document is None:
        held = session.scalar(select(HeldTrustList).order_by(HeldTrustList.seq.desc()).limit(1))
        if held is not None:
            document, seq = held.document, held.seq
    if document is None:
        raise Problem("not-federated", "this city holds no trust list")
    response = jsonify(trust_list=document, seq=seq)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@blueprint.route("/federation/bulletins", methods=["GET"])
@problems(blueprint, 429)
@blueprint.arguments(BulletinQuery, location="query")
@blueprint.response(200, BulletinsSchema)
def bulletin_list(query: dict[str, Any]) -> Any:
    """This city's daily bulletins after sequence ``after`` (at most 31), each signed by it."""
    return {"bulletins": bulletins.bulletins_after(db_session(), query["after"])}


@blueprint.route("/federation/introspections", methods=["POST"])
@problems(blueprint, 403, 409, 413, 429)
@blueprint.arguments(SignedRequest)
@blueprint.response(200, SignedAnswer)
def introspection(body: dict[str, Any]) -> Any:
    """A partner city's venue holds one of our codes: the visitor's pairwise pseudonym and level."""
    session = db_session()
    settings = platform_of(current_app).settings
    try:
        answer = answers.answer_introspection(session, settings, body["request"], now=utcnow())
    except s2s.FederationRefusal as exc:
        _commit_refusal_record(session)
        raise _refused(exc) from None
    return {"answer": answer}


@blueprint.route("/federation/tier-requests", methods=["POST"])
@problems(blueprint, 403, 409, 413, 429)
@blueprint.arguments(SignedRequest)
@blueprint.response(200, SignedAnswer)
def tier_request(body: dict[str, Any]) -> Any:
    """A partner city asks for the common level of our citizen who presents themselves there."""
    session = db_session()
    settings = platform_of(current_app).settings
    try:
        answer = answers.answer_tier_request(session, settings, body["request"], now=utcnow())
    except s2s.FederationRefusal as exc:
        _commit_refusal_record(session)
        raise _refused(exc) from None
    return {"answer": answer}


def _commit_refusal_record(session: Any) -> None:
    # A refused question is still a question about the citizen: its record and audit event stay.
    session.commit()


@blueprint.route("/partner-tiers", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["tiers:exchange"]}])
@problems(blueprint, 401, 403, 404, 409, 413, 429)
@blueprint.arguments(PartnerTierRequest)
@blueprint.response(200, PartnerTier)
@require_scope("tiers:exchange")
def partner_tier(body: dict[str, Any]) -> Any:
    """Ask a partner city for the common level of its citizen who presents themselves here."""
    session = db_session()
    settings = platform_of(current_app).settings
    try:
        parse_id_number(body["id_number"])
    except InvalidIdNumber as exc:
        raise Problem(
            "validation-error", f"invalid ID number: {exc}", errors={"id_number": [str(exc)]}
        ) from None
    if holds_id_number(body["reason"], utcnow().date()):
        raise Problem(
            "validation-error",
            "the reason is shown to the citizen and kept: it must not hold an ID number",
            errors={"reason": ["must not hold an ID number"]},
        )
    trust_list = held_list(session, settings)
    member = trust_list.members.get(body["issuer"]) if trust_list else None
    if member is None or member.status != "active" or member.issuer == settings.city_code:
        raise Problem("issuer-not-member", f"{body['issuer'][:32]!r} is not an active partner city")
    try:
        answer = s2s.ask(
            session,
            settings,
            member,
            "/api/v1/federation/tier-requests",
            {"id_number": body["id_number"], "reason": body["reason"]},
        )
    except s2s.IssuerUnavailable as exc:
        raise Problem("issuer-unavailable", exc.detail, headers={"Retry-After": "5"}) from None
    except s2s.FederationRefusal as exc:
        raise Problem(
            exc.type if exc.type in ("not-shared", "member-suspended") else "issuer-unavailable",
            exc.detail,
        ) from None
    audit(
        session,
        actor=caller().client.client_id,
        action="federation.partner_tier",
        partner=member.issuer,
        reason=body["reason"],
    )
    return {
        "issuer": member.issuer,
        "pseudonym": answer.pseudonym,
        "level": answer.level,
        "valid_until": answer.valid_until,
    }
