"""OAuth 2 client-credentials token endpoint (RFC 6749 §4.4, RFC 7523 assertions) and the JWKS."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

from flask import current_app, jsonify, request
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields

from citycredit.core.clients import (
    ASSERTION_TYPE,
    ApiClient,
    AuthError,
    authenticate_assertion,
    authenticate_secret,
    issue_access_token,
)
from citycredit.core.db import utcnow
from citycredit.core.keys import jwks
from citycredit.web.api.links import LinkOut, link_out
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from push import authorize
from push.apps import LINK_SCOPE
from push.models import Link

GRANTS = ("client_credentials", "authorization_code")
LINK_SCOPES = [LINK_SCOPE]

blueprint = Blueprint("oauth", __name__, description="OAuth 2 tokens and the city's public keys")


class TokenRequest(Schema):
    # A missing grant is 400 invalid-request and another grant 400 unsupported-grant-type (RFC 6749
    # §5.2, what OAuth libraries expect), hence neither `required` nor a validator here.
    grant_type = fields.String(
        load_default=None,
        metadata={
            "enum": list(GRANTS),
            "description": "required: client_credentials, or authorization_code to finish a "
            "citizen's link (RFC 6749 §4.1.3 with PKCE, RFC 7636)",
        },
    )
    scope = fields.String(
        metadata={"description": "space-separated; default: all the client's scopes"}
    )
    client_id = fields.String(
        metadata={"description": "with client_secret, when not sent as HTTP Basic"}
    )
    client_secret = fields.String()
    client_assertion_type = fields.String(metadata={"enum": [ASSERTION_TYPE]})
    client_assertion = fields.String(
        metadata={"description": "RFC 7523: a JWT signed with the client's registered key"}
    )
    code = fields.String(metadata={"description": "authorization_code: the code the redirect got"})
    redirect_uri = fields.String(
        metadata={"description": "authorization_code: exactly as in the authorization request"}
    )
    code_verifier = fields.String(
        metadata={"description": "authorization_code: the PKCE verifier (RFC 7636 §4.5)"}
    )


class TokenResponse(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = fields.Integer(required=True, metadata={"example": 300})
    scope = fields.String(required=True, metadata={"example": "verify redeem"})
    link = fields.Nested(
        LinkOut,
        metadata={"description": "authorization_code only: the link the citizen just made"},
    )


class JwkSchema(Schema):
    kty = fields.String(required=True, metadata={"example": "OKP"})
    crv = fields.String(metadata={"example": "Ed25519"})
    x = fields.String()
    kid = fields.String(required=True)
    alg = fields.String(metadata={"example": "EdDSA"})
    use = fields.String(metadata={"example": "sig"})

    class Meta:
        unknown = INCLUDE


class JwksSchema(Schema):
    keys = fields.List(fields.Nested(JwkSchema), required=True)


class ConfigurationSchema(Schema):
    issuer = fields.String(required=True, metadata={"example": "huangshi"})
    city_name = fields.String(required=True)
    token_endpoint = fields.String(required=True, metadata={"format": "uri"})
    jwks_uri = fields.String(required=True, metadata={"format": "uri"})
    api_base = fields.String(required=True, metadata={"format": "uri"})
    credit_code_algorithms = fields.List(fields.String(), required=True)
    credit_code_lifetime_seconds = fields.Integer(required=True)
    trust_anchor = fields.String(
        allow_none=True,
        metadata={
            "description": "RFC 7638 fingerprint of the federation's trust anchor this city pins "
            "(null when it is not federated); desks should pin it themselves at setup"
        },
    )
    trust_list_uri = fields.String(metadata={"format": "uri"})


def _oauth_problem(exc: AuthError) -> Problem:
    slug = {"invalid_client": "invalid-client", "invalid_scope": "invalid-scope"}.get(
        exc.error, "invalid-client"
    )
    headers = {"WWW-Authenticate": 'Basic realm="citycredit"'} if exc.status == 401 else {}
    # error / error_description keep standard OAuth 2 clients working alongside the problem shape.
    return Problem(
        slug,
        exc.detail,
        status=exc.status,
        headers=headers,
        error=exc.error,
        error_description=exc.detail,
    )


@blueprint.route("/oauth/token", methods=["POST"])
@problems(blueprint, 401, 413, 429)
@blueprint.arguments(TokenRequest, location="form", unknown="exclude", as_kwargs=True)
@blueprint.response(200, TokenResponse)
def token(**form: Any) -> Any:
    """Exchange client credentials for a short-lived access token."""

    grant = form.get("grant_type")
    if not grant:
        raise Problem(
            "invalid-request",
            "grant_type is required (grant_type=client_credentials)",
            error="invalid_request",
            error_description="grant_type is required (grant_type=client_credentials)",
        )
    if grant not in GRANTS:
        raise Problem(
            "unsupported-grant-type",
            "grant_type must be client_credentials or authorization_code",
            error="unsupported_grant_type",
            error_description="grant_type must be client_credentials or authorization_code",
        )
    session = db_session()
    settings = platform_of(current_app).settings
    try:
        if form.get("client_assertion_type") == ASSERTION_TYPE and form.get("client_assertion"):
            client = authenticate_assertion(
                session, form["client_assertion"], token_url=settings.public_url + "/oauth/token"
            )
        else:
            client_id, secret = _basic_credentials() or (
                form.get("client_id"),
                form.get("client_secret"),
            )
            if not client_id or not secret:
                raise AuthError(
                    "invalid_client",
                    "send client credentials (HTTP Basic, form fields or an assertion)",
                )
            client = authenticate_secret(session, client_id, secret, key_secret=settings.key_secret)
        requested = (form.get("scope") or "").split() or None
        link = None
        if grant == "authorization_code":
            link = _exchange(client, form)
            requested = LINK_SCOPES  # what the citizen consented to, whatever was asked
        access_token, granted = issue_access_token(
            session, settings, client, requested, now=utcnow()
        )
    except AuthError as exc:
        raise _oauth_problem(exc) from None
    response: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": " ".join(granted),
    }
    if link is not None:
        response["link"] = link_out(link, client)
    return response, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _exchange(client: ApiClient, form: dict[str, Any]) -> Link:
    """The link the code made (RFC 6749 §4.1.3, RFC 7636 §4.6), for the authenticated client."""
    try:
        link = authorize.exchange(
            db_session(),
            client,
            code=form.get("code") or "",
            redirect_uri=form.get("redirect_uri") or "",
            code_verifier=form.get("code_verifier") or "",
            now=utcnow(),
        )
    except authorize.AuthorizeError as exc:
        slug = "invalid-grant" if exc.error == "invalid_grant" else "invalid-request"
        # A refusal is committed like any answer: a reused code's revoked link stays revoked.
        raise Problem(
            slug, exc.description, error=exc.error, error_description=exc.description
        ) from None
    return link


def _basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
    except ValueError:
        raise Problem(
            "invalid-client", "malformed HTTP Basic credentials", error="invalid_client"
        ) from None
    return unquote(client_id), unquote(secret)


@blueprint.route("/.well-known/jwks.json", methods=["GET"])
@problems(blueprint, 429)
@blueprint.response(200, JwksSchema)
def jwks_document() -> Any:
    """The city's public signing keys (current and recently retired), for offline verification."""

    response = jsonify(jwks(db_session()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.route("/.well-known/citycredit-configuration", methods=["GET"])
@problems(blueprint, 429)
@blueprint.response(200, ConfigurationSchema)
def configuration() -> Any:
    """Where partners find the city: its issuer code, token endpoint and keys (like OIDC discovery)."""

    settings = platform_of(current_app).settings
    # The configured address; else the one this request reached (behind trusted proxies, as they
    # forwarded it), so a city served on another port never sends partners to port 5000.
    base = settings.public_url if settings.public_url_configured else request.host_url.rstrip("/")
    response = jsonify(
        issuer=settings.city_code,
        city_name=settings.city_name,
        token_endpoint=base + "/oauth/token",
        jwks_uri=base + "/.well-known/jwks.json",
        api_base=base + "/api/v1",
        credit_code_algorithms=["EdDSA"],
        credit_code_lifetime_seconds=120,
        trust_anchor=settings.trust_anchor or None,
        trust_list_uri=base + "/api/v1/federation/trust-list",
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
