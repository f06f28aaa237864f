"""Records API for data sources: batch upload with per-row errors and idempotent retries."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.idempotent import HEADER_DOC, idempotent
from citycredit.web.api.openapi import ID_NUMBER, documented, problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from citycredit.web.pipeline import text_checked_by_view
from points_engine import batches, operations
from points_engine.models import DataSource

blueprint = Blueprint(
    "records", __name__, url_prefix="/api/v1", description="Records from data sources"
)
MAX_ROWS = 10_000


@documented("RecordRow")
class RecordRow(Schema):
    """One record; a row that breaks a rule is reported in the answer's `errors`, the others land."""

    source = fields.String(
        required=True,
        metadata={"description": "a data source registered with the city", "example": "court"},
    )
    source_record_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata={
            "description": "the source's own id of the record; the same id updates the record"
        },
    )
    id_number = fields.String(required=True, metadata=ID_NUMBER)
    item_code = fields.String(
        required=True,
        metadata={
            "description": "an entry of the published catalogue (GET /api/v1/catalogue); a city "
            "without one takes the published scoring model's items",
            "example": "LICENCE_GRANTED",
        },
    )
    document_no = fields.String(required=True, validate=validate.Length(min=1, max=200))
    occurred_on = fields.Date(
        required=True, metadata={"description": "not in the future", "example": "2026-05-01"}
    )
    reported_on = fields.Date(
        required=True,
        metadata={
            "description": "not before occurred_on, not in the future",
            "example": "2026-05-03",
        },
    )
    status = fields.String(
        load_default="active", validate=validate.OneOf(["active", "repaired", "revoked"])
    )


class RecordsUpload(Schema):
    # Any object is taken as a row and checked by the ingestion rules, so that one bad row rejects
    # only itself: the document names RecordRow's rules without refusing the batch for them.
    records = fields.List(
        fields.Dict(
            metadata={
                "description": "a record (schema RecordRow); a row that breaks its rules is "
                "reported in `errors`, the other rows land"
            }
        ),
        required=True,
        validate=validate.Length(min=1, max=MAX_ROWS),
        metadata={"description": f"1 to {MAX_ROWS:,} rows"},
    )


class RowErrorSchema(Schema):
    row = fields.Integer(required=True, metadata={"description": "1-based index in `records`"})
    field = fields.String(required=True)
    reason = fields.String(required=True)
    source_record_id = fields.String(required=True)
    code = fields.String(
        required=True,
        metadata={
            "description": "the reason's code, as the data-quality figures count it "
            "(docs/DATA_QUALITY.md)",
            "example": "id_number",
        },
    )


class UploadResult(Schema):
    batch_id = fields.Integer(required=True)
    rows = fields.Integer(required=True)
    inserted = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    errors = fields.List(fields.Nested(RowErrorSchema), required=True)


@blueprint.route("/records", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["records:write"]}], parameters=[HEADER_DOC])
@problems(blueprint, 401, 403, 409, 413, 422, 429)
@blueprint.arguments(RecordsUpload)
@blueprint.response(200, UploadResult)
@require_scope("records:write")
@idempotent(200)
@text_checked_by_view("records")  # a bad row is a row error; the other rows land
def upload_records(body: dict[str, Any]) -> Any:
    """Upload up to 10,000 records; good rows land, each bad row is reported. Re-sending changes nothing."""

    session = db_session()
    client = caller().client
    platform = platform_of(current_app)
    bound = session.get(DataSource, client.source_id) if client.source_id else None
    rows = (
        (number, {k: None if v is None else str(v) for k, v in row.items()})
        for number, row in enumerate(body["records"], start=1)
    )
    try:
        # One unit of work: the request commits it whole, or nothing of it (not even the batch) stays.
        outcome = batches.ingest(
            session,
            rows,
            origin=f"api:{client.client_id}",
            fmt="json",
            key=platform.settings.id_hash_key,
            today=platform.today(),
            only_source=bound.code if bound else None,
        )
    except operations.NoPublishedModel as exc:
        raise Problem("no-published-model", str(exc)) from None
    report = outcome.report
    result = {
        "batch_id": report.batch_id,
        "rows": report.rows,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "errors": [{**e.__dict__, "code": e.reason_code} for e in report.errors],
    }
    return result
