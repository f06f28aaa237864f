"""Credit codes for venues: verify (eligible or not, and the tier), redeem (核销), and issue (city app)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from citycredit.core.db import utcnow
from citycredit.core.idnumber import InvalidIdNumber, parse_id_number
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.idempotent import HEADER_DOC, idempotent
from citycredit.web.api.problems import Problem
from citycredit.web.security import limit_verifications
from credit_codes import operations, qr, tokens
from points_engine.queries import find_citizen
from scenarios.operations import ScenarioUnavailable, UnknownScenario

blueprint = Blueprint(
    "credit_codes", __name__, url_prefix="/api/v1", description="Citizens' QR credit codes (信用码)"
)


class Presented(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    scenario = fields.String(required=True, validate=validate.Length(min=1, max=64))


class TierSchema(Schema):
    level = fields.Integer(metadata={"description": "common scale, 5 best … 1"})
    name_zh = fields.String()
    name_en = fields.String()


class BenefitSchema(Schema):
    zh = fields.String()
    en = fields.String()


class VerificationSchema(Schema):
    verification_id = fields.String()
    eligible = fields.Boolean()
    tier = fields.Nested(TierSchema)
    scenario = fields.String()
    scenario_version = fields.Integer(
        metadata={"description": "the rules the answer was given under"}
    )
    benefit = fields.Nested(BenefitSchema)
    verified_at = fields.String()


class RedemptionSchema(Schema):
    redemption_id = fields.String()
    verification_id = fields.String()
    scenario = fields.String()
    scenario_version = fields.Integer()
    benefit = fields.Nested(BenefitSchema)
    redeemed_at = fields.String()


class IssueRequest(Schema):
    id_number = fields.String(
        required=True, metadata={"description": "never echoed, logged or stored"}
    )


class IssuedCode(Schema):
    token = fields.String()
    expires_at = fields.String()


def _refusal(exc: Exception) -> Problem:
    if isinstance(exc, tokens.TokenRejected):
        return Problem(exc.type, exc.detail)
    if isinstance(exc, UnknownScenario):
        return Problem("unknown-scenario", str(exc))
    if isinstance(exc, ScenarioUnavailable):
        return Problem("scenario-unavailable", str(exc))
    if isinstance(exc, operations.RedemptionRefused):
        return Problem(exc.type, exc.detail)
    raise exc


@blueprint.route("/verifications", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["verify"]}])
@blueprint.arguments(Presented)
@blueprint.response(200, VerificationSchema)
@require_scope("verify")
def verify(body: dict[str, Any]) -> Any:
    """Verify a scanned code for a scenario: eligible or not, and the tier. Nothing else is revealed."""
    from citycredit.web.app import db_session, platform_of

    limit_verifications()  # per client: after the token is checked, never before
    try:
        result = operations.verify_presentation(
            db_session(),
            platform_of(current_app).settings,
            caller().client,
            body["token"],
            body["scenario"],
            now=utcnow(),
        )
    except (tokens.TokenRejected, UnknownScenario, ScenarioUnavailable) as exc:
        raise _refusal(exc) from None
    return result.as_dict()


@blueprint.route("/redemptions", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["redeem"]}], parameters=[HEADER_DOC])
@blueprint.arguments(Presented)
@blueprint.response(201, RedemptionSchema)
@require_scope("redeem")
@idempotent(201)
def redeem(body: dict[str, Any]) -> Any:
    """Redeem the benefit: once per code, within the scenario's quotas (per citizen per day and month, and in total), exactly under concurrency."""
    from citycredit.web.app import db_session, platform_of

    try:
        result = operations.redeem(
            db_session(),
            platform_of(current_app).settings,
            caller().client,
            body["token"],
            body["scenario"],
            now=utcnow(),
        )
    except (
        tokens.TokenRejected,
        UnknownScenario,
        ScenarioUnavailable,
        operations.RedemptionRefused,
    ) as exc:
        raise _refusal(exc) from None
    return result.as_dict()


@blueprint.route("/credit-codes", methods=["POST"])
@blueprint.doc(
    security=[{"oauth2": ["codes:issue"]}],
    responses={"201": {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
@blueprint.arguments(IssueRequest)
@blueprint.response(201, IssuedCode)
@require_scope("codes:issue")
def issue(body: dict[str, Any]) -> Any:
    """Issue a fresh code for a consenting citizen (the city's app). Accept image/png or image/svg+xml for the QR."""
    from citycredit.web.app import db_session, platform_of

    session = db_session()
    settings = platform_of(current_app).settings
    try:
        citizen_id = parse_id_number(body["id_number"])
    except InvalidIdNumber as exc:
        raise Problem(
            "validation-error", f"invalid ID number: {exc}", errors={"id_number": [str(exc)]}
        ) from None
    citizen = find_citizen(session, settings.id_hash_key, citizen_id)
    if citizen is None:
        raise Problem("unknown-citizen")
    try:
        code = operations.issue_credit_code(
            session, settings, citizen, now=utcnow(), actor=caller().client.client_id
        )
    except operations.NotScored as exc:
        raise Problem("not-scored", str(exc)) from None
    best = request.accept_mimetypes.best_match(["application/json", "image/png", "image/svg+xml"])
    headers = {"Cache-Control": "no-store", "Credit-Code-Expires": code.expires_at.isoformat()}
    if best == "image/png":
        return Response(
            qr.render_png(code.token), status=201, mimetype="image/png", headers=headers
        )
    if best == "image/svg+xml":
        return Response(
            qr.render_svg(code.token), status=201, mimetype="image/svg+xml", headers=headers
        )
    return (
        {
            "token": code.token,
            "expires_at": code.expires_at.isoformat(),
        },
        201,
        headers,
    )
