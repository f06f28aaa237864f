"""One error shape for the whole API: RFC 9457 problem details (``application/problem+json``).

Every error type the API can answer is listed in :data:`PROBLEM_TYPES`, served as documentation at
``/problems/<type>``, and referenced by ``type`` in the response. Tracebacks never reach a client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from citycredit.web.context import roll_back_request

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str


_TYPES = [
    ProblemType(
        "validation-error",
        422,
        "The request is not valid",
        "A field is missing, of the wrong type or out of range; `errors` maps each field to its messages.",
    ),
    ProblemType(
        "invalid-client",
        401,
        "Client authentication failed",
        "Unknown client, wrong secret, an assertion that does not verify, or a revoked client.",
    ),
    ProblemType(
        "invalid-token",
        401,
        "The access token is missing, expired or void",
        "Fetch a new token at /oauth/token. Tokens end when the client is revoked or its secret rotated.",
    ),
    ProblemType(
        "insufficient-scope",
        403,
        "The access token lacks the scope this endpoint needs",
        "Ask the city for a client with that scope.",
    ),
    ProblemType(
        "invalid-scope",
        400,
        "The client asked for a scope it does not have",
        "Request only scopes registered for the client.",
    ),
    ProblemType(
        "invalid-request",
        400,
        "The token request is missing a required parameter",
        "RFC 6749 §5.2 invalid_request: send grant_type=client_credentials with the client's credentials.",
    ),
    ProblemType(
        "unsupported-grant-type",
        400,
        "The grant type is not supported",
        "Send grant_type=client_credentials, or authorization_code to finish a citizen's link.",
    ),
    ProblemType(
        "invalid-grant",
        400,
        "The authorization code is invalid, expired, used or not this client's",
        "RFC 6749 §5.2 invalid_grant: also a redirect_uri differing from the authorization request "
        "or a code_verifier that does not match its code_challenge (RFC 7636 §4.6). A code used "
        "twice revokes the link made from it (RFC 6749 §10.5): ask the citizen to link again.",
    ),
    ProblemType(
        "token-malformed",
        422,
        "The credit code is not a well-formed signed token",
        "The scanned text is not a compact JWS of this platform.",
    ),
    ProblemType(
        "token-unsigned",
        422,
        "The credit code is not signed (alg 'none')",
        "Unsigned codes are never accepted.",
    ),
    ProblemType(
        "algorithm-not-allowed",
        422,
        "The credit code uses an algorithm the city does not use",
        "Codes are EdDSA (Ed25519) only; HS256 and others are refused.",
    ),
    ProblemType(
        "unknown-key",
        422,
        "The credit code names a key the city has not published",
        "Refresh the JWKS; a code signed by an unknown key is refused.",
    ),
    ProblemType(
        "bad-signature",
        422,
        "The credit code's signature does not match its content",
        "The code was altered after signing.",
    ),
    ProblemType(
        "token-expired",
        422,
        "The credit code has expired",
        "Codes live 120 seconds; ask the citizen to show a fresh one.",
    ),
    ProblemType(
        "wrong-issuer",
        422,
        "The credit code was issued by another city",
        "This city holds no trust list of partner cities, so only its own codes are accepted (docs/FEDERATION.md).",
    ),
    ProblemType(
        "issuer-not-member",
        422,
        "The credit code was issued by a city that is not a member of the federation",
        "The issuer is not in the trust list this city holds, or has left the federation.",
    ),
    ProblemType(
        "member-suspended",
        422,
        "The credit code's city is suspended from the federation",
        "The coordinator suspended that member; its codes are refused until it is resumed.",
    ),
    ProblemType(
        "mapping-unknown",
        422,
        "The credit code names a tier mapping its city has not published",
        "The code's `mv` is not among the mappings of its city's entry in the trust list.",
    ),
    ProblemType(
        "trust-list-too-old",
        503,
        "The trust list held here is older than its maximum age",
        "Visitors' codes cannot be checked until the city syncs a fresh list from the coordinator; local codes are unaffected.",
    ),
    ProblemType(
        "no-cross-city-consent",
        403,
        "The citizen has not consented to recognition of their code in this city",
        "Cross-city recognition is a consent of its own, given per partner city on the phone page.",
    ),
    ProblemType(
        "issuer-unavailable",
        503,
        "The city that issued the code cannot be reached",
        "Online visitor checks ask the issuing city; verify offline, or try again shortly.",
    ),
    ProblemType(
        "not-shared",
        403,
        "No tier can be shared for this person with this partner city",
        "One answer for an unknown person, a person without consent for the asking city, or one without a score.",
    ),
    ProblemType(
        "federation-request-refused",
        403,
        "The server-to-server request is not signed by an active member",
        "Unknown asker, bad signature, wrong audience, or a member that left.",
    ),
    ProblemType(
        "request-expired",
        403,
        "The server-to-server request is expired or not yet valid",
        "Requests live at most 60 seconds; check the asking server's clock.",
    ),
    ProblemType(
        "request-replayed",
        409,
        "This server-to-server request was already answered",
        "Each request carries a fresh jti.",
    ),
    ProblemType(
        "not-federated",
        409,
        "This city is not part of a federation",
        "Set CITYCREDIT_FEDERATION_COORDINATOR_URL and CITYCREDIT_TRUST_ANCHOR, then sync the trust list.",
    ),
    ProblemType(
        "unknown-scenario",
        404,
        "No published scenario has this code",
        "Check the scenario code with the city.",
    ),
    ProblemType(
        "scenario-unavailable",
        409,
        "The scenario cannot be used here or now",
        "It is suspended, outside its validity dates, or not honoured at the venue this client belongs to; `detail` says which.",
    ),
    ProblemType(
        "no-published-model",
        409,
        "The city has no published scoring model yet",
        "Records are checked against the published model's items; publish one (`citycredit model publish`) before uploading. Nothing was stored.",
    ),
    ProblemType(
        "workflow-conflict",
        409,
        "The scenario's workflow does not allow this step now",
        "For example: editing a version under review, submitting without a draft, resuming a scenario that is not suspended. `detail` says which.",
    ),
    ProblemType(
        "objection-conflict",
        409,
        "The objection is not waiting for this step",
        "A data source answers a case only while it is forwarded to it; a case already answered, "
        "decided or withdrawn changes no more. `detail` says the case's status.",
    ),
    ProblemType(
        "rejection-resolved",
        409,
        "The refused row is already resolved",
        "A refused row is closed once: when a row with the same source record id lands, or when "
        "it is dismissed with a reason. `detail` says which.",
    ),
    ProblemType(
        "subscription-limit",
        409,
        "This client has as many webhook subscriptions as it may",
        "Each client may hold at most 10 subscriptions (disabled ones count; deleted ones do not): "
        "every event is sent once per subscription, so one receiver subscribed many times would "
        "multiply the city's outgoing requests. Delete one, or subscribe one URL to more event types.",
    ),
    ProblemType(
        "not-permitted",
        403,
        "This client may not do this",
        "Operators manage only their own scenarios; publishing is the city's review step, done in the admin. "
        "A list is filed only by a client bound to its department (source).",
    ),
    ProblemType(
        "not-eligible",
        403,
        "The citizen does not qualify for this benefit",
        "The live version's eligibility rule is not met. Nothing is redeemed, and the venue is not told which condition failed.",
    ),
    ProblemType(
        "already-redeemed",
        409,
        "This credit code was already redeemed for this benefit",
        "Each code redeems a benefit once.",
    ),
    ProblemType(
        "quota-exhausted",
        409,
        "The benefit's quota is used up",
        "A scenario may limit redemptions per citizen per day and per month (in the city's timezone) and in total; `detail` says which limit was reached.",
    ),
    ProblemType(
        "not-scored",
        409,
        "The citizen has no score",
        "Scoring needs the citizen's consent; no code can be issued without a score.",
    ),
    ProblemType(
        "unknown-citizen",
        404,
        "No citizen with this ID number has any record here",
        "Nothing about the person is revealed beyond this.",
    ),
    ProblemType(
        "idempotency-key-reused",
        422,
        "This Idempotency-Key was used for a different request",
        "Use a new key for a new request; repeat a key only to retry the same request.",
    ),
    ProblemType("not-found", 404, "No such resource", ""),
    ProblemType("method-not-allowed", 405, "The method is not allowed on this resource", ""),
    ProblemType(
        "payload-too-large",
        413,
        "The request body is too large",
        "Records uploads take at most 10,000 rows.",
    ),
    ProblemType("not-acceptable", 406, "No representation matches the Accept header", ""),
    ProblemType(
        "too-many-requests",
        429,
        "Too many requests",
        "A rate limit was reached (per client, per address); wait the seconds `Retry-After` gives.",
    ),
    ProblemType(
        "internal-error",
        500,
        "Internal error",
        "The error was logged; nothing of the request was kept.",
    ),
    ProblemType(
        "service-unavailable",
        503,
        "The service is briefly unavailable",
        "The database could not be reached; nothing of the request was kept. Retry after the seconds in the `Retry-After` header (a POST with an `Idempotency-Key` is safe to retry with the same key).",
    ),
]
PROBLEM_TYPES = {t.slug: t for t in _TYPES}
_BY_STATUS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    406: "not-acceptable",
    429: "too-many-requests",
}


class ProblemSchema(Schema):
    """RFC 9457 problem details: the shape of every error this API answers."""

    type = fields.String(metadata={"example": "/problems/token-expired"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    errors = fields.Dict(metadata={"description": "validation problems only: field -> messages"})


class Problem(Exception):
    """Raise to answer with a documented problem type."""

    def __init__(
        self,
        slug: str,
        detail: str = "",
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.type = PROBLEM_TYPES[slug]
        self.detail = detail
        self.status = status or self.type.status
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    slug: str,
    detail: str = "",
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    kind = PROBLEM_TYPES[slug]
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": kind.title,
        "status": status or kind.status,
        **({"detail": detail} if detail else {}),
        "instance": request.path,
        **extra,
    }
    response = jsonify(body)
    response.status_code = body["status"]
    response.mimetype = MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_problems(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(error: Problem) -> Response:
        return problem_response(
            error.type.slug, error.detail, status=error.status, headers=error.headers, **error.extra
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        data = getattr(error, "data", None) or {}
        code = error.code or 500
        if code == 422 and "messages" in data:
            # webargs/marshmallow validation: {location: {field: [messages]}}; flatten the location.
            errors: dict[str, Any] = {}
            for fields in data["messages"].values():
                errors.update(fields)
            return problem_response("validation-error", "see errors", errors=errors)
        slug = _BY_STATUS.get(code)
        if slug is None:
            slug = "validation-error" if code in (400, 422) else "internal-error"
        # RFC 9110 §15.5.6: a 405 names the methods the resource answers.
        allowed = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if code == 405 and allowed else None
        return problem_response(slug, error.description or "", status=code, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:

        roll_back_request()  # the error was unexpected: keep nothing of the request
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response("internal-error")

    @app.get("/problems/<slug>")
    def _problem_doc(slug: str) -> Any:
        kind = PROBLEM_TYPES.get(slug)
        if kind is None:
            raise Problem("not-found", f"no problem type {slug!r}")
        return jsonify(
            type=f"/problems/{slug}",
            status=kind.status,
            title=kind.title,
            description=kind.description,
        )

    @app.get("/problems/")
    def _problem_index() -> Any:
        return jsonify(
            [{"type": f"/problems/{t.slug}", "status": t.status, "title": t.title} for t in _TYPES]
        )
