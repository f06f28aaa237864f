"""The daily governance bulletins for the provincial or national credit platform to pull.

A client with scope ``governance:read`` reads the bulletins after the last sequence number it holds,
oldest first, a page at a time, with the city's federation key to verify them (its fingerprint is
what the platform pinned). Format: docs/GOVERNANCE.md.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from citycredit.web.api.auth import require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.context import db_session, platform_of
from federation import keys as fed_keys
from governance import bulletins

SCOPE = "governance:read"

blueprint = Blueprint(
    "governance",
    __name__,
    url_prefix="/api/v1/governance",
    description="Next-day publication of objection and repair outcomes and list changes",
)


class AfterQuery(Schema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**31 - 1),
        metadata={"description": "the last sequence number held; 0 for the first page"},
    )


class BulletinOut(Schema):
    seq = fields.Integer(required=True)
    day = fields.Date(required=True, metadata={"description": "the city day it covers"})
    batch_id = fields.String(required=True, metadata={"description": "stable per day: apply once"})
    document = fields.String(
        required=True, metadata={"description": "compact JWS (EdDSA) signed by the city's key"}
    )


class KeyOut(Schema):
    fingerprint = fields.String(required=True, metadata={"description": "RFC 7638 thumbprint"})
    jwk = fields.Dict(required=True)


class BulletinPage(Schema):
    issuer = fields.String(required=True)
    key = fields.Nested(KeyOut, required=True)
    bulletins = fields.List(fields.Nested(BulletinOut), required=True)


@blueprint.route("/bulletins", methods=["GET"])
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 422, 429)
@blueprint.arguments(AfterQuery, location="query")
@blueprint.response(200, BulletinPage)
@require_scope(SCOPE)
def bulletins_after(query: dict[str, Any]) -> Any:
    """The bulletins after ``after``, oldest first, up to 100; ask again with the last ``seq``."""
    session = db_session()
    settings = platform_of(current_app).settings
    key = fed_keys.ensure(session, settings.key_secret, "city")
    found = bulletins.bulletins_after(session, query["after"])
    return {
        "issuer": settings.city_code,
        "key": {"fingerprint": key.fingerprint, "jwk": key.public_jwk},
        "bulletins": [
            {"seq": b.seq, "day": b.day, "batch_id": b.batch_id, "document": b.document}
            for b in found
        ],
    }
