"""The public credit information catalogue for data sources' systems (issue 13 §1).

``GET /api/v1/catalogue``: the published version, every entry with its kind, names, legal basis,
fields, reporters, reporting deadline and publication (双公示), so that a source's system checks its
rows against the same catalogue ingest does. Any authenticated client may read it: it is public.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from citycredit.web.api.auth import require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session
from points_engine import catalogue

blueprint = Blueprint(
    "catalogue",
    __name__,
    url_prefix="/api/v1",
    description="The public credit information catalogue (公共信用信息目录)",
)


class CatalogueEntrySchema(Schema):
    """What may be collected: one entry of the catalogue."""

    code = fields.String(
        required=True,
        metadata={
            "description": "the `item_code` a record of this entry carries",
            "example": "LICENCE_GRANTED",
        },
    )
    kind = fields.String(
        required=True,
        metadata={
            "description": "one of: " + ", ".join(catalogue.KINDS),
            "example": "licensing",
        },
    )
    kind_name_zh = fields.String(required=True, metadata={"example": "行政许可"})
    kind_name_en = fields.String(required=True, metadata={"example": "Administrative licensing"})
    name_zh = fields.String(required=True)
    name_en = fields.String(required=True)
    legal_basis = fields.String(required=True)
    fields_ = fields.List(
        fields.String(),
        required=True,
        data_key="fields",
        metadata={"description": "the record fields the entry carries"},
    )
    reporters = fields.List(
        fields.String(),
        required=True,
        allow_none=True,
        metadata={"description": "the data sources (by code) that may report it; null: any source"},
    )
    deadline_days = fields.Integer(
        required=True,
        metadata={"description": "working days after the record occurred to report it"},
    )
    public = fields.Boolean(
        required=True, metadata={"description": "published (双公示) by the city"}
    )
    publish_days = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "working days to publish a public entry's record; null if not public"
        },
    )


class CatalogueSchema(Schema):
    version = fields.Integer(
        required=True,
        metadata={"description": "the version number a refused row's error names"},
    )
    published_at = fields.DateTime(required=True)
    entries = fields.List(fields.Nested(CatalogueEntrySchema), required=True)


@blueprint.route("/catalogue", methods=["GET"])
@blueprint.doc(security=[{"oauth2": []}])
@problems(blueprint, 401, 404, 429)
@blueprint.response(200, CatalogueSchema)
@require_scope(None)
def published_catalogue() -> Any:
    """The published catalogue: what sources may report, by whom and by when; a row outside it is refused."""
    session = db_session()
    version = catalogue.published_version(session)
    if version is None:
        raise Problem(
            "not-found",
            "no catalogue is published yet; ingest accepts the published scoring model's items",
        )
    return {
        "version": version.number,
        "published_at": version.published_at,
        "entries": [
            {
                "code": e.code,
                "kind": e.kind,
                "kind_name_zh": e.kind_names[0],
                "kind_name_en": e.kind_names[1],
                "name_zh": e.name_zh,
                "name_en": e.name_en,
                "legal_basis": e.legal_basis,
                "fields_": list(e.fields),
                "reporters": list(e.reporters) if e.reporters is not None else None,
                "deadline_days": e.deadline_days,
                "public": e.public,
                "publish_days": e.publish_days,
            }
            for e in catalogue.entries_of(version)
        ],
    }
