"""The pull endpoint of links (issue 15): an operator's system reads what a citizen who linked it
shares — pairwise pseudonym, common level, how long that holds, its scenarios the citizen qualifies
for now. Only the caller's operator's live links exist for it: another operator's pseudonym, a
revoked link or one that never was all answer 404 alike, so nothing leaks."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from citycredit.core.clients import ApiClient
from citycredit.core.db import utcnow
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from push import authorize
from push.apps import LINK_SCOPE

SCOPE = LINK_SCOPE
_PSEUDONYM = {"type": "string", "pattern": "^lk_[A-Za-z0-9_-]{1,60}$", "example": "lk_q3…"}

blueprint = Blueprint(
    "links",
    __name__,
    url_prefix="/api/v1/links",
    description="Links citizens made with this operator's system (OAuth 2 code with PKCE)",
)


class LinkOut(Schema):
    pseudonym = fields.String(
        required=True,
        metadata={
            "description": "pairwise: stable for this citizen and this operator, unrelated to "
            "what any other operator is told",
            "example": "lk_3q2-7wQxY0mZbW1aR0ZkQx9s",
        },
    )
    common_level = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"minimum": 1, "maximum": 5, "description": "5 best … 1; null: no score now"},
    )
    valid_until = fields.String(
        required=True,
        metadata={
            "format": "date-time",
            "description": "pull again before then: the level holds until then without news",
        },
    )
    scenarios = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "codes of this operator's scenarios the citizen qualifies for now"
        },
    )


def link_out(link: Any, client: ApiClient) -> dict[str, Any]:
    """The link's view for the client's operator (audited as the client's read)."""
    settings = platform_of(current_app).settings
    now = utcnow()
    return authorize.link_view(
        db_session(),
        link,
        now=now,
        today=now.astimezone(settings.tz).date(),
        actor=f"client:{client.client_id}",
    )


@blueprint.route(
    "/<pseudonym>",
    methods=["GET"],
    parameters=[{"in": "path", "name": "pseudonym", "schema": _PSEUDONYM}],
)
@blueprint.doc(security=[{"oauth2": [SCOPE]}])
@problems(blueprint, 401, 403, 404, 429)
@blueprint.response(200, LinkOut)
@require_scope(SCOPE)
def read_link(pseudonym: str) -> Any:
    """A live link of this operator's: the citizen's common level and qualifying scenarios now."""
    client = caller().client
    link = None
    if client.operator_id is not None and pseudonym.startswith("lk_") and len(pseudonym) <= 64:
        link = authorize.live_link_of_operator(db_session(), client.operator_id, pseudonym)
    if link is None:
        raise Problem("not-found", "no live link of this operator with that pseudonym")
    return link_out(link, client), 200, {"Cache-Control": "no-store"}
