"""Objections for data sources: a source's system reads the cases forwarded to it and answers them.

A client with scope ``objections:answer`` bound to a data source (``source_id``) sees the objections
against that source's records only; another source's case does not exist for it (404). A client bound
to no source answers for every source (a city-wide exchange). It reads what it needs to find its own
record and answer — its own record id, the document number, the citizen's reason, the deadline —
never an ID number. Every read is audited as a read of the citizen's personal data.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from citizen import operations as objections
from citizen import queries
from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from citycredit.core.db import utcnow
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of

SCOPE = "objections:answer"
CASE_ID = {"type": "string", "pattern": "^obj_[0-9a-f]{16}$", "example": "obj_0f1e2d3c4b5a6978"}
_CASE_PARAM = [{"in": "path", "name": "case_id", "schema": CASE_ID}]

blueprint = Blueprint(
    "objections",
    __name__,
    url_prefix="/api/v1/objections",
    description="Objections to records (异议), for the data source's system to answer",
)


class CaseQuery(Schema):
    status = fields.String(
        load_default="forwarded",
        validate=validate.OneOf(["forwarded", "pending", "closed"]),
        metadata={
            "description": "`forwarded` (default): waiting for this source's answer; `pending`: "
            "every case not yet decided; `closed`: decided or withdrawn (the latest 500)"
        },
    )


class CaseOut(Schema):
    case_id = fields.String(required=True, metadata={"example": CASE_ID["example"]})
    status = fields.String(
        required=True,
        metadata={
            "description": "open, forwarded, answered, upheld, rejected or withdrawn",
            "example": "forwarded",
        },
    )
    source = fields.String(required=True, metadata={"example": "court"})
    source_record_id = fields.String(
        required=True, metadata={"description": "the source's own id of the record"}
    )
    item_code = fields.String(required=True, metadata={"example": "COURT_DISHONEST"})
    document_no = fields.String(required=True)
    occurred_on = fields.Date(required=True)
    reason = fields.String(required=True, metadata={"description": "the citizen's reason"})
    filed_at = fields.DateTime(required=True)
    deadline = fields.Date(
        allow_none=True,
        metadata={"description": "the last working day for the credit office's decision"},
    )
    working_days_left = fields.Integer(
        allow_none=True, metadata={"description": "negative once overdue; null once closed"}
    )
    answer = fields.String(allow_none=True, metadata={"description": "the source's answer"})
    decision = fields.String(
        allow_none=True, metadata={"description": "the credit office's reason, once decided"}
    )


class AnswerIn(Schema):
    answer = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "what the source found, 1 to 2,000 characters"},
    )


def _actor(client: ApiClient) -> Actor:
    return Actor.for_source(f"client:{client.client_id}", source_id=client.source_id)


def _terms() -> objections.ObjectionTerms:
    return objections.ObjectionTerms.from_settings(platform_of(current_app).settings)


def _out(case: queries.ObjectionCase) -> dict[str, Any]:
    o, record = case.objection, case.record
    return {
        "case_id": o.public_id,
        "status": o.status,
        "source": case.source.code,
        "source_record_id": record.source_record_id,
        "item_code": record.item_code,
        "document_no": record.document_no,
        "occurred_on": record.occurred_on,
        "reason": o.reason,
        "filed_at": o.created_at,
        "deadline": o.deadline,
        "working_days_left": case.working_days_left,
        "answer": o.source_answer,
        "decision": o.decision_note,
    }


def _cases(client: ApiClient, **filters: Any) -> list[queries.ObjectionCase]:
    return queries.objection_cases(
        db_session(),
        today=platform_of(current_app).today(),
        calendar=_terms().calendar,
        source_id=client.source_id,
        **filters,
    )


def _read(client: ApiClient, cases: list[queries.ObjectionCase]) -> None:
    for case in cases:
        audit(
            db_session(),
            actor=f"client:{client.client_id}",
            action="objection.view",
            citizen_id=case.objection.citizen_id,
            objection=case.objection.public_id,
        )


@blueprint.route("", methods=["GET"])
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 422, 429)
@blueprint.arguments(CaseQuery, location="query")
@blueprint.response(200, CaseOut(many=True))
@require_scope(SCOPE)
def cases(query: dict[str, Any]) -> Any:
    """The objections against this source's records: by default those waiting for its answer,
    nearest deadline first."""
    client = caller().client
    status = query["status"]
    if status == "closed":
        found = _cases(client, pending=False)
    else:
        found = _cases(client, pending=True)
        if status == "forwarded":
            found = [c for c in found if c.objection.status == "forwarded"]
    _read(client, found)
    return [_out(c) for c in found]


def _one(client: ApiClient, case_id: str) -> queries.ObjectionCase:
    found = _cases(client, public_id=case_id)
    if not found:
        raise Problem("not-found", f"no objection {case_id!r} against this source's records")
    return found[0]


@blueprint.route("/<case_id>", methods=["GET"], parameters=_CASE_PARAM)
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 404, 429)
@blueprint.response(200, CaseOut)
@require_scope(SCOPE)
def case(case_id: str) -> Any:
    """One objection against this source's records."""
    client = caller().client
    found = _one(client, case_id)
    _read(client, [found])
    return _out(found)


@blueprint.route("/<case_id>/answer", methods=["POST"], parameters=_CASE_PARAM)
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429)
@blueprint.arguments(AnswerIn)
@blueprint.response(200, CaseOut)
@require_scope(SCOPE)
def answer(body: dict[str, Any], case_id: str) -> Any:
    """Answer a case the credit office forwarded to this source; the reviewer then decides it.
    Answering a case that is not waiting for an answer is `objection-conflict` and changes nothing."""
    client = caller().client
    found = _one(client, case_id)
    text = body["answer"].strip()
    if not text:
        raise Problem("validation-error", errors={"answer": ["must not be blank"]})
    try:
        objections.record_source_answer(
            db_session(), found.objection, _actor(client), text, utcnow()
        )
    except objections.ObjectionStateError as exc:
        raise Problem("objection-conflict", str(exc)) from None
    except NotPermitted as exc:  # not reachable through _one's filter; kept as the domain's word
        raise Problem("not-found", str(exc)) from None
    return _out(_one(client, case_id))
