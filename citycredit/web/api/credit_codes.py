"""Credit codes for venues: verify (eligible or not, and the tier), redeem (核销), and issue (city app)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from citycredit.core.clients import AuthError
from citycredit.core.db import utcnow
from citycredit.core.idnumber import InvalidIdNumber, parse_id_number
from citycredit.web.api.auth import caller, require_scope, token_refused
from citycredit.web.api.idempotent import HEADER_DOC, idempotent
from citycredit.web.api.openapi import ID_NUMBER, ID_NUMBER_PATTERN, SCENARIO_CODE, problems
from citycredit.web.api.problems import PROBLEM_TYPES, Problem
from citycredit.web.context import db_session, platform_of
from citycredit.web.security import limit_verifications
from credit_codes import operations, qr, tokens
from federation import s2s, visitors
from points_engine.queries import find_citizen
from scenarios.operations import CODE, ScenarioUnavailable, UnknownScenario

blueprint = Blueprint(
    "credit_codes", __name__, url_prefix="/api/v1", description="Citizens' QR credit codes (信用码)"
)


class Presented(Schema):
    token = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "the scanned text of the citizen's QR code (a compact JWS)"},
    )
    scenario = fields.String(
        required=True,
        validate=validate.Regexp(CODE, error="3–64 characters: lower-case letters, digits and '-'"),
        metadata=SCENARIO_CODE,
    )


class TierSchema(Schema):
    level = fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=5),
        metadata={"description": "common scale, 5 best … 1"},
    )
    name_zh = fields.String(required=True, metadata={"example": "良好"})
    name_en = fields.String(required=True, metadata={"example": "Good"})


class IssuerSchema(Schema):
    code = fields.String(required=True, metadata={"example": "420200"})
    name_zh = fields.String(required=True, metadata={"example": "黄石市"})
    name_en = fields.String(required=True, metadata={"example": "Huangshi"})


class BenefitSchema(Schema):
    zh = fields.String(required=True)
    en = fields.String(required=True)


class VerificationSchema(Schema):
    verification_id = fields.String(required=True, metadata={"example": "ver_5f0c2a9e13b4d7a6"})
    eligible = fields.Boolean(required=True)
    tier = fields.Nested(TierSchema, required=True)
    scenario = fields.String(required=True)
    scenario_version = fields.Integer(
        required=True, metadata={"description": "the rules the answer was given under"}
    )
    benefit = fields.Nested(BenefitSchema, required=True)
    verified_at = fields.String(required=True, metadata={"format": "date-time"})
    visitor = fields.Boolean(
        required=True,
        metadata={"description": "the code was issued by a partner city (docs/FEDERATION.md)"},
    )
    issuer = fields.Nested(IssuerSchema, required=True)


class RedemptionSchema(Schema):
    redemption_id = fields.String(required=True, metadata={"example": "red_0a1b2c3d4e5f6071"})
    verification_id = fields.String(required=True)
    scenario = fields.String(required=True)
    scenario_version = fields.Integer(required=True)
    benefit = fields.Nested(BenefitSchema, required=True)
    redeemed_at = fields.String(required=True, metadata={"format": "date-time"})


class IssueRequest(Schema):
    id_number = fields.String(
        required=True,
        validate=validate.Regexp(
            ID_NUMBER_PATTERN, error="must be 18 characters: 17 digits and a digit or X"
        ),
        metadata=ID_NUMBER,
    )


class IssuedCode(Schema):
    token = fields.String(required=True, metadata={"description": "the text to show as a QR code"})
    expires_at = fields.String(required=True, metadata={"format": "date-time"})


_CODE_HEADERS = {
    "Credit-Code-Expires": {
        "description": "when the code expires (ISO 8601)",
        "schema": {"type": "string", "format": "date-time"},
        "required": True,
    },
    "Cache-Control": {"schema": {"type": "string", "example": "no-store"}, "required": True},
}


def _refusal(exc: Exception) -> Problem:
    if isinstance(exc, tokens.TokenRejected):
        return Problem(exc.type, exc.detail)
    if isinstance(exc, UnknownScenario):
        return Problem("unknown-scenario", str(exc))
    if isinstance(exc, ScenarioUnavailable):
        return Problem("scenario-unavailable", str(exc))
    if isinstance(exc, operations.RedemptionRefused):
        return Problem(exc.type, exc.detail)
    if isinstance(exc, s2s.FederationRefusal):
        # The issuing city's refusal of a visitor (its consent, its code) reaches the venue as is;
        # trouble between the cities is the venue's "try again or verify offline".
        if (
            exc.type in PROBLEM_TYPES
            and exc.status < 500
            and exc.type != "federation-request-refused"
        ):
            return Problem(exc.type, exc.detail)
        if exc.type == "trust-list-too-old":
            return Problem(exc.type, exc.detail)
        return Problem("issuer-unavailable", exc.detail, headers={"Retry-After": "5"})
    raise exc


@blueprint.route("/verifications", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["verify"]}])
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429, 503)
@blueprint.arguments(Presented)
@blueprint.response(200, VerificationSchema)
@require_scope("verify")
def verify(body: dict[str, Any]) -> Any:
    """Verify a scanned code for a scenario: eligible or not, and the tier. Nothing else is revealed."""

    limit_verifications()  # per client: after the token is checked, never before
    try:
        result = visitors.verify_code(
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
        s2s.FederationRefusal,
    ) as exc:
        raise _refusal(exc) from None
    except AuthError as exc:  # revoked since this process last read the client
        raise token_refused(exc, "verify") from None
    return result.as_dict()


@blueprint.route("/redemptions", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["redeem"]}], parameters=[HEADER_DOC])
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429, 503)
@blueprint.arguments(Presented)
@blueprint.response(201, RedemptionSchema)
@require_scope("redeem")
@idempotent(201)
def redeem(body: dict[str, Any]) -> Any:
    """Redeem the benefit: once per code, within the scenario's quotas (per citizen per day and month, and in total), exactly under concurrency."""

    # A redemption verifies the code again: it counts as a verification, or refusals would be an
    # unmetered way to probe eligibility.
    limit_verifications()
    try:
        result = visitors.redeem_code(
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
        s2s.FederationRefusal,
    ) as exc:
        raise _refusal(exc) from None
    except AuthError as exc:  # revoked since this process last read the client
        raise token_refused(exc, "redeem") from None
    return result.as_dict()


@blueprint.route("/credit-codes", methods=["POST"])
@blueprint.doc(
    security=[{"oauth2": ["codes:issue"]}],
    responses={
        "201": {
            "description": "The code: JSON by default, or its QR image as the Accept header asks",
            "headers": _CODE_HEADERS,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/IssuedCode"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/svg+xml": {"schema": {"type": "string"}},
            },
        }
    },
)
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429)
@blueprint.arguments(IssueRequest)
@blueprint.response(201, IssuedCode)
@require_scope("codes:issue")
def issue(body: dict[str, Any]) -> Any:
    """Issue a fresh code for a consenting citizen (the city's app). Accept image/png or image/svg+xml for the QR."""

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
