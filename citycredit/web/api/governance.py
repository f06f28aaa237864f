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

from citycredit.core.db import utcnow
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from citycredit.web.pipeline import text_checked_by_view
from federation import keys as fed_keys
from governance import bulletins, lists
from points_engine.models import DataSource
from points_engine.operations import NoPublishedModel

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


lists_blueprint = Blueprint(
    "lists",
    __name__,
    url_prefix="/api/v1/lists",
    description="Red and black lists (红黑名单): a department files its list decisions",
)
LISTS_SCOPE = "lists:write"


class ListRowErrorOut(Schema):
    row = fields.Integer(required=True, metadata={"description": "1-based index in `entries`"})
    field = fields.String(required=True)
    reason = fields.String(required=True)


class ListedOut(Schema):
    entry = fields.String(required=True, metadata={"example": "lst_0f1e2d3c4b5a6978"})
    list = fields.String(required=True)
    masked_name = fields.String(required=True)
    decision_no = fields.String(required=True)
    publish_until = fields.Date(required=True)


class ListUpload(Schema):
    entries = fields.List(
        fields.Dict(
            metadata={
                "description": "list, id_number, name, decision_no, start_on (YYYY-MM-DD), "
                "publish_months; a row that breaks a rule is reported in `errors`"
            }
        ),
        required=True,
        validate=validate.Length(min=1, max=1000),
    )


class ListResult(Schema):
    listed = fields.List(fields.Nested(ListedOut), required=True)
    unchanged = fields.Integer(required=True)
    errors = fields.List(fields.Nested(ListRowErrorOut), required=True)


@lists_blueprint.route("", methods=["POST"])
@lists_blueprint.doc(security=[{"oauth2": [LISTS_SCOPE]}])
@problems(lists_blueprint, 401, 403, 409, 413, 422, 429)
@lists_blueprint.arguments(ListUpload)
@lists_blueprint.response(200, ListResult)
@require_scope(LISTS_SCOPE)
@text_checked_by_view("entries")  # a bad row is a row error; the other rows land
def file_list_entries(body: dict[str, Any]) -> Any:
    """File up to 1,000 list decisions of the client's department; sending one again changes nothing."""
    session = db_session()
    client = caller().client
    platform = platform_of(current_app)
    source = session.get(DataSource, client.source_id) if client.source_id else None
    if source is None:
        raise Problem(
            "not-permitted", "a list is filed by its department: this client is bound to no source"
        )
    try:
        result = lists.import_entries(
            session,
            list(enumerate(body["entries"], start=1)),
            source=source,
            key=platform.settings.id_hash_key,
            today=platform.today(),
            now=utcnow(),
            actor=f"client:{client.client_id}",
        )
    except NoPublishedModel as exc:
        raise Problem("no-published-model", str(exc)) from None
    return {
        "listed": [
            {
                "entry": e.public_id,
                "list": e.list_code,
                "masked_name": e.masked_name,
                "decision_no": e.decision_no,
                "publish_until": e.publish_until,
            }
            for e in result.listed
        ],
        "unchanged": result.unchanged,
        "errors": [{"row": r, "field": f, "reason": why} for r, f, why in result.errors],
    }
