"""The scenario catalogue for partners, and operators' own scenarios for their systems.

Any client reads the published catalogue (a venue's desk: only what its venue honours). A client of an
operator (scope ``scenarios:write``) also sees that operator's drafts and may create, edit, submit,
suspend and resume them; another operator's scenarios do not exist for it (404). Publishing is the
city's review step and happens in the admin, never through this API.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core import actors
from citycredit.core.clients import ApiClient
from citycredit.web.api.auth import caller, require_scope
from citycredit.web.api.openapi import CATEGORY_NAMES, SCENARIO_CODE, Eligibility, problems
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session
from scenarios import operations as registry
from scenarios.models import (
    SCENARIO_STATUSES,
    VERSION_STATES,
    Operator,
    Scenario,
    ScenarioVersion,
)

_VENUE_CODE = {**SCENARIO_CODE, "description": "a venue's code", "example": "lib-central"}
# The path's scenario code: one that does not follow the pattern cannot exist (404).
_CODE_PARAM = [{"in": "path", "name": "code", "schema": SCENARIO_CODE}]

blueprint = Blueprint(
    "scenarios",
    __name__,
    url_prefix="/api/v1/scenarios",
    description="Benefit scenarios (信易+): the catalogue, and operators' own scenarios",
)


_VISITORS = (
    "whether visitors from partner cities (codes of another member of the federation) may use it; "
    "they qualify only through the common tier: residence, age, the local score and local records "
    "never hold for them"
)


class StrictBoolean(fields.Boolean):
    """JSON true or false only (marshmallow would also take "yes", 1 or "on")."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Bilingual(Schema):
    zh = fields.String(required=True)
    en = fields.String(required=True)


class VersionOut(Schema):
    number = fields.Integer(required=True, metadata={"minimum": 1})
    state = fields.String(required=True, metadata={"enum": list(VERSION_STATES)})
    name = fields.Nested(Bilingual, required=True)
    benefit = fields.Nested(Bilingual, required=True)
    requirement = fields.Nested(
        Bilingual, required=True, metadata={"description": "the rule in words"}
    )
    eligibility = Eligibility(required=True, metadata={"description": "the rule as data"})
    quota_per_day = fields.Integer(allow_none=True, required=True)
    quota_per_month = fields.Integer(allow_none=True, required=True)
    quota_total = fields.Integer(allow_none=True, required=True)
    valid_from = fields.Date(allow_none=True, required=True)
    valid_until = fields.Date(allow_none=True, required=True)
    open_to_visitors = fields.Boolean(required=True, metadata={"description": _VISITORS})
    review_note = fields.String(
        allow_none=True, required=True, metadata={"description": "the operator's own clients only"}
    )


class ScenarioOut(Schema):
    code = fields.String(required=True, metadata=SCENARIO_CODE)
    operator = fields.String(required=True)
    category = fields.String(required=True, metadata={"enum": CATEGORY_NAMES})
    status = fields.String(required=True, metadata={"enum": list(SCENARIO_STATUSES)})
    live = fields.Nested(VersionOut, allow_none=True, required=True)
    pending = fields.Nested(
        VersionOut,
        allow_none=True,
        required=True,
        metadata={"description": "the operator's own clients only"},
    )
    venues = fields.List(fields.String(metadata=_VENUE_CODE), required=True)


class CatalogueQuery(Schema):
    category = fields.String(validate=validate.OneOf(CATEGORY_NAMES))
    status = fields.String(validate=validate.OneOf(SCENARIO_STATUSES))


def _as_registry(name: str, **more: Any) -> dict[str, Any]:
    """The registry's bounds of a content field, for the document."""
    # Not enforced at the edge: the registry checks them, so every bad field is reported at once.
    bounds: dict[str, Any] = {}
    for rule in registry.ContentSchema._declared_fields[name].validators:
        if isinstance(rule, validate.Range):
            bounds.update(minimum=rule.min, maximum=rule.max)
        elif isinstance(rule, validate.Length):
            bounds.update(minLength=rule.min, maxLength=rule.max)
    return {k: v for k, v in bounds.items() if v is not None} | more


class ContentIn(Schema):
    """A version's content, checked by the registry (after trimming spaces) with the cross-field rules:
    ``quota_per_month`` not below ``quota_per_day``, ``valid_until`` not before ``valid_from``."""

    name_zh = fields.String(required=True, metadata=_as_registry("name_zh"))
    name_en = fields.String(required=True, metadata=_as_registry("name_en"))
    benefit_zh = fields.String(required=True, metadata=_as_registry("benefit_zh"))
    benefit_en = fields.String(required=True, metadata=_as_registry("benefit_en"))
    eligibility = Eligibility(required=True)
    quota_per_day = fields.Integer(
        allow_none=True,
        load_default=None,
        metadata=_as_registry(
            "quota_per_day", description="per citizen per day (city time); null: no limit"
        ),
    )
    quota_per_month = fields.Integer(
        allow_none=True,
        load_default=None,
        metadata=_as_registry(
            "quota_per_month", description="per citizen per month; null: no limit"
        ),
    )
    quota_total = fields.Integer(
        allow_none=True,
        load_default=None,
        metadata=_as_registry("quota_total", description="for everyone together; null: no limit"),
    )
    valid_from = fields.Date(allow_none=True, load_default=None)
    valid_until = fields.Date(allow_none=True, load_default=None)
    open_to_visitors = StrictBoolean(
        metadata={
            "description": _VISITORS
            + ". Absent: false for a new scenario; an edit keeps what the version it edits says."
        }
    )


class ScenarioIn(ContentIn):
    # Checked by the registry, whose messages say what is allowed.
    code = fields.String(required=True, metadata=SCENARIO_CODE)
    category = fields.String(required=True, metadata={"enum": CATEGORY_NAMES})
    venues = fields.List(
        fields.String(metadata=_VENUE_CODE),
        load_default=list,
        metadata={"description": "the operator's venues that honour it"},
    )


class ReasonIn(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=500))


def _session() -> Session:

    return db_session()


def _actor(client: ApiClient) -> actors.Actor:
    """An operator's client acts within its operator; any other client only reads the catalogue."""
    name = f"client:{client.client_id}"
    if "scenarios:write" in client.scope_set and client.operator_id is not None:
        return actors.Actor(name, operator_id=client.operator_id, venue_id=client.venue_id)
    return actors.Actor.for_partner(name, venue_id=client.venue_id)


def _version(version: ScenarioVersion | None, *, owned: bool = False) -> dict[str, Any] | None:
    if version is None:
        return None
    rule = registry.rule_of(version)
    return {
        "number": version.number,
        "state": version.state,
        "name": {"zh": version.name_zh, "en": version.name_en},
        "benefit": {"zh": version.benefit_zh, "en": version.benefit_en},
        "requirement": {"zh": rule.describe("zh"), "en": rule.describe("en")},
        "eligibility": version.eligibility,
        "quota_per_day": version.quota_per_day,
        "quota_per_month": version.quota_per_month,
        "quota_total": version.quota_total,
        "valid_from": version.valid_from,
        "valid_until": version.valid_until,
        "open_to_visitors": version.open_to_visitors,
        # The city's review notes are for the operator, not for every partner.
        "review_note": version.review_note if owned else None,
    }


def _owns(client: ApiClient, scenario: Scenario) -> bool:
    return _actor(client).may_see(scenario.operator_id)


def _outs(session: Session, client: ApiClient, scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """The scenarios this client may see, rendered with three set-based queries in all."""
    if not scenarios:
        return []
    versions = registry.current_versions(session, [s.id for s in scenarios])
    operators = {i: code for i, code in session.execute(select(Operator.id, Operator.code))}
    actor = _actor(client)
    out = []
    for scenario in scenarios:
        owned = _owns(client, scenario)
        where = versions.venues.get(scenario.id, [])
        honoured_at = [v.id for v in where]
        if not registry.sees_scenario(
            actor, scenario, with_catalogue=True, honoured_at=honoured_at
        ):
            continue
        out.append(
            {
                "code": scenario.code,
                "operator": operators[scenario.operator_id],
                "category": scenario.category,
                "status": scenario.status,
                "live": _version(versions.live.get(scenario.id), owned=owned),
                "pending": _version(versions.pending.get(scenario.id), owned=True)
                if owned
                else None,
                "venues": [v.code for v in where],
            }
        )
    return out


def _find(session: Session, client: ApiClient, code: str) -> tuple[Scenario, dict[str, Any]]:
    scenario = session.scalar(select(Scenario).where(Scenario.code == code))
    shown = _outs(session, client, [scenario]) if scenario is not None else []
    if scenario is None or not shown:
        raise Problem("unknown-scenario", f"no scenario {code!r} visible to this client")
    return scenario, shown[0]


def _refusal(exc: registry.RegistryError) -> Problem:
    if isinstance(exc, registry.InvalidScenario):
        return Problem("validation-error", "see errors", errors=exc.errors)
    if isinstance(exc, registry.UnknownScenario):
        return Problem("unknown-scenario", str(exc))
    if isinstance(exc, registry.NotPermitted):
        return Problem("not-permitted", str(exc))
    return Problem("workflow-conflict", str(exc))


@blueprint.route("", methods=["GET"])
@blueprint.doc(security=[{"oauth2": []}])
@problems(blueprint, 401, 422, 429)
@blueprint.arguments(CatalogueQuery, location="query")
@blueprint.response(200, ScenarioOut(many=True))
@require_scope(None)
def catalogue(query: dict[str, Any]) -> Any:
    """The scenarios this client may see: published ones (a venue's desk: those its venue honours), and
    an operator's own in every state."""
    session = _session()
    client = caller().client
    statement = (
        select(Scenario)
        .where(registry.visible_scenarios(_actor(client), with_catalogue=True))
        .order_by(Scenario.code)
    )
    if "category" in query:
        statement = statement.where(Scenario.category == query["category"])
    if "status" in query:
        statement = statement.where(Scenario.status == query["status"])
    return _outs(session, client, list(session.scalars(statement)))


@blueprint.route("/<code>", methods=["GET"], parameters=_CODE_PARAM)
@blueprint.doc(security=[{"oauth2": []}])
@problems(blueprint, 401, 404, 429)
@blueprint.response(200, ScenarioOut)
@require_scope(None)
def show(code: str) -> Any:
    """One scenario, if this client may see it."""
    session = _session()
    client = caller().client
    return _find(session, client, code)[1]


@blueprint.route("", methods=["POST"])
@blueprint.doc(security=[{"oauth2": ["scenarios:write"]}])
@problems(blueprint, 401, 403, 409, 413, 422, 429)
@blueprint.arguments(ScenarioIn)
@blueprint.response(201, ScenarioOut)
@require_scope("scenarios:write")
def create(body: dict[str, Any]) -> Any:
    """Create a draft scenario for this client's operator (then submit it for the city's review)."""
    session = _session()
    client = caller().client
    operator = session.get(Operator, client.operator_id)
    if operator is None:
        raise Problem("not-permitted", "this client belongs to no operator")
    content = {k: v for k, v in body.items() if k not in ("code", "category", "venues")}
    try:
        scenario = registry.create_scenario(
            session,
            _actor(client),
            code=body["code"],
            operator=operator,
            category=body["category"],
            content=content,
            venue_codes=body["venues"],
        )
    except registry.RegistryError as exc:
        raise _refusal(exc) from None
    return _outs(session, client, [scenario])[0]


@blueprint.route("/<code>/draft", methods=["PUT"], parameters=_CODE_PARAM)
@blueprint.doc(security=[{"oauth2": ["scenarios:write"]}])
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429)
@blueprint.arguments(ContentIn)
@blueprint.response(200, ScenarioOut)
@require_scope("scenarios:write")
def edit(body: dict[str, Any], code: str) -> Any:
    """Edit the draft; for a published scenario this opens a new version (the live one keeps serving)."""
    session = _session()
    client = caller().client
    scenario, _ = _find(session, client, code)
    try:
        registry.edit_scenario(session, _actor(client), scenario, body)
    except registry.RegistryError as exc:
        raise _refusal(exc) from None
    return _outs(session, client, [scenario])[0]


def _step(code: str, step: str, reason: str = "") -> Any:
    session = _session()
    client = caller().client
    scenario, _ = _find(session, client, code)
    actor = _actor(client)
    try:
        if step == "submit":
            registry.submit(session, actor, scenario)
        else:
            getattr(registry, step)(session, actor, scenario, reason)
    except registry.RegistryError as exc:
        raise _refusal(exc) from None
    return _outs(session, client, [scenario])[0]


@blueprint.route("/<code>/submit", methods=["POST"], parameters=_CODE_PARAM)
@blueprint.doc(security=[{"oauth2": ["scenarios:write"]}])
@problems(blueprint, 401, 403, 404, 409, 429)
@blueprint.response(200, ScenarioOut)
@require_scope("scenarios:write")
def submit(code: str) -> Any:
    """Send the draft for the city's review; it cannot be edited while under review."""
    return _step(code, "submit")


@blueprint.route("/<code>/suspend", methods=["POST"], parameters=_CODE_PARAM)
@blueprint.doc(security=[{"oauth2": ["scenarios:write"]}])
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429)
@blueprint.arguments(ReasonIn)
@blueprint.response(200, ScenarioOut)
@require_scope("scenarios:write")
def suspend(body: dict[str, Any], code: str) -> Any:
    """Stop verifications and redemptions at once."""
    return _step(code, "suspend", body["reason"])


@blueprint.route("/<code>/resume", methods=["POST"], parameters=_CODE_PARAM)
@blueprint.doc(security=[{"oauth2": ["scenarios:write"]}])
@problems(blueprint, 401, 403, 404, 409, 413, 422, 429)
@blueprint.arguments(ReasonIn)
@blueprint.response(200, ScenarioOut)
@require_scope("scenarios:write")
def resume(body: dict[str, Any], code: str) -> Any:
    """Serve the scenario again after the operator's own suspension."""
    return _step(code, "resume", body["reason"])
