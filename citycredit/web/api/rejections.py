"""Refused rows back to the data source (issue 13 §2): its system reads what was refused and why,
corrects it and sends the row again, and the platform tracks each refused row until then.

A client with scope ``records:write`` bound to a data source sees that source's refused rows only
(another source's row does not exist for it: 404). A client bound to no source (a city-wide exchange)
sees every source's. Refused rows hold no ID number: the problems are the masked ones of the upload's
answer.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from citycredit.core.actors import Actor
from citycredit.core.clients import ApiClient
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session
from points_engine import quality
from points_engine.ingest import REASONS
from points_engine.models import DataSource, RejectedRow

SCOPE = "records:write"
MAX_LIMIT = 1000
# Row ids are positive 63-bit integers (BigInteger); anything else names no row (404, not a 500).
_ROW_ID = {"type": "string", "pattern": "^[1-9][0-9]{0,18}$", "example": "42"}

blueprint = Blueprint(
    "rejections",
    __name__,
    url_prefix="/api/v1/records/rejections",
    description="Refused rows, tracked until the source sends them again corrected",
)


class RejectionQuery(Schema):
    status = fields.String(
        load_default="open",
        validate=validate.OneOf(["open", "resolved"]),
        metadata={"description": "`open` (default): not yet landed; `resolved`: re-sent or closed"},
    )
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**63 - 1),
        metadata={"description": "only rows with a larger `id` (paging, oldest first)"},
    )
    limit = fields.Integer(
        load_default=200,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"at most this many rows (1 to {MAX_LIMIT:,})"},
    )


class ProblemOut(Schema):
    field = fields.String(required=True)
    reason = fields.String(required=True)
    code = fields.String(required=True, metadata={"description": f"one of {', '.join(REASONS)}"})


class RejectionOut(Schema):
    id = fields.Integer(required=True)
    source = fields.String(required=True, metadata={"example": "court"})
    batch_id = fields.Integer(required=True)
    row = fields.Integer(required=True, metadata={"description": "the row's number in its batch"})
    source_record_id = fields.String(required=True)
    received_on = fields.Date(required=True, metadata={"description": "the city day it came"})
    reason = fields.String(
        required=True, metadata={"description": "the first problem's code", "example": "id_number"}
    )
    problems = fields.List(fields.Nested(ProblemOut), required=True)
    resolution = fields.String(
        allow_none=True,
        metadata={"description": "`resent` (landed in `resolved_by_batch_id`) or `dismissed`"},
    )
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by_batch_id = fields.Integer(allow_none=True)


class DismissIn(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=180),
        metadata={"description": "why the row will not be sent again (1 to 180 characters)"},
    )


def _out(row: RejectedRow, codes: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": codes.get(row.source_id, ""),
        "batch_id": row.batch_id,
        "row": row.row,
        "source_record_id": row.source_record_id,
        "received_on": row.received_on,
        "reason": row.reason,
        "problems": row.errors,
        "resolution": row.resolution,
        "resolved_at": row.resolved_at,
        "resolved_by_batch_id": row.resolved_by_batch_id,
    }


def _codes() -> dict[int, str]:
    return {i: c for i, c in db_session().execute(select(DataSource.id, DataSource.code))}


def _actor(client: ApiClient) -> Actor:
    return Actor.for_source(f"client:{client.client_id}", source_id=client.source_id)


@blueprint.route("", methods=["GET"])
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 422, 429)
@blueprint.alt_response(
    414, description="A query string longer than the server takes (refused before it is read)"
)
@blueprint.arguments(RejectionQuery, location="query")
@blueprint.response(200, RejectionOut(many=True))
@require_scope(SCOPE)
def rejections(query: dict[str, Any]) -> Any:
    """This source's refused rows, oldest first: by default those not yet landed."""
    client = caller().client
    statement = select(RejectedRow).where(RejectedRow.id > query["after"])
    if client.source_id is not None:
        statement = statement.where(RejectedRow.source_id == client.source_id)
    if query["status"] == "open":
        statement = statement.where(RejectedRow.resolved_at.is_(None))
    else:
        statement = statement.where(RejectedRow.resolved_at.is_not(None))
    rows = db_session().scalars(statement.order_by(RejectedRow.id).limit(query["limit"]))
    codes = _codes()
    return [_out(r, codes) for r in rows]


@blueprint.route(
    "/<row_id>/dismiss",
    methods=["POST"],
    parameters=[{"in": "path", "name": "row_id", "schema": _ROW_ID}],
)
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 404, 409, 422, 429)
@blueprint.arguments(DismissIn)
@blueprint.response(200, RejectionOut)
@require_scope(SCOPE)
def dismiss(body: dict[str, Any], row_id: str) -> Any:
    """Close a refused row that will not be sent again (sent by mistake), saying why."""
    client = caller().client
    number = int(row_id) if row_id.isascii() and row_id.isdigit() and len(row_id) < 19 else 0
    if number < 1:
        raise Problem("not-found", "no such refused row")
    try:
        row = quality.dismiss_rejection(
            db_session(), number, actor=_actor(client), reason=body["reason"]
        )
    except LookupError:
        raise Problem("not-found", f"no refused row {number} of this source") from None
    except ValueError as exc:
        raise Problem("rejection-resolved", str(exc)) from None
    return _out(row, _codes())
