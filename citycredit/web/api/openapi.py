"""What the OpenAPI document says beyond the endpoints' own schemas: the problem responses (media type,
schema, headers), the eligibility rule's grammar, and the constraints the domain enforces.

Every error answer is an RFC 9457 problem in ``application/problem+json``; :func:`problems` lists on an
endpoint the statuses it can answer, each a shared component response.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any, TypeVar

from apispec import APISpec
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields

from citycredit.web.api import problems as problem_types
from scenarios.eligibility import CONDITIONS, MAX_DEPTH
from scenarios.models import CATEGORIES
from scenarios.operations import CODE, RESERVED_CODES

F = TypeVar("F", bound=Callable[..., Any])

# The registry's own rules, in JSON Schema's words (``pattern`` is ECMA 262: no ``\Z``).
SCENARIO_CODE = {
    "type": "string",
    "pattern": CODE.pattern,
    "minLength": 3,
    "maxLength": 64,
    "description": "lower-case letters, digits and '-' ("
    + ", ".join(sorted(RESERVED_CODES))
    + " are reserved)",
    "example": "library-deposit-free",
}
ID_NUMBER_PATTERN = "^[0-9]{17}[0-9Xx]$"
ID_NUMBER = {
    "type": "string",
    "minLength": 18,
    "maxLength": 18,
    "pattern": ID_NUMBER_PATTERN,
    "description": "a citizen ID number (GB 11643): 17 digits and a check character whose value, "
    "like the birth date inside, is checked too. Never echoed, logged or stored.",
    "example": "11010519491231002X",
}
CATEGORY_NAMES = sorted(CATEGORIES)

_RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
    "required": True,
}
# status -> (when it is answered, headers it always carries)
PROBLEM_STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "The request cannot be read: malformed JSON, JSON nested too deeply, or an OAuth parameter "
        "the token endpoint refuses (`invalid-scope`, `unsupported-grant-type`).",
        {},
    ),
    401: (
        "No valid credentials: `invalid-token` (missing, expired or voided access token; checked "
        "before the body is read) or `invalid-client` at the token endpoint.",
        {
            "WWW-Authenticate": {
                "description": "the scheme to use (Bearer, or Basic at the token endpoint)",
                "schema": {"type": "string"},
                "required": True,
            }
        },
    ),
    403: (
        "`insufficient-scope` (the token lacks the endpoint's scope), `not-eligible` (a redemption "
        "the rule does not allow) or `not-permitted` (another operator's scenario).",
        {},
    ),
    404: ("`unknown-scenario`, `unknown-citizen` or `not-found`.", {}),
    405: (
        "`method-not-allowed`.",
        {
            "Allow": {
                "description": "the methods this path answers",
                "schema": {"type": "string"},
                "required": True,
            }
        },
    ),
    406: ("`not-acceptable`.", {}),
    409: (
        "The request is understood but the state forbids it: `already-redeemed`, "
        "`quota-exhausted`, `scenario-unavailable`, `workflow-conflict`, `objection-conflict`, `not-scored`, "
        "`subscription-limit`.",
        {},
    ),
    413: ("`payload-too-large`: the body is over the limit.", {}),
    422: (
        "`validation-error`: a field is missing, of the wrong type or out of range, or a control "
        "character is in the path, the query, a form field or the JSON (`errors` names the field); "
        "a refused credit code (`token-expired`, `bad-signature`, …); `idempotency-key-reused`.",
        {},
    ),
    429: (
        "`too-many-requests`: a rate limit was reached (the token endpoint per client and per "
        "address; verifications per client).",
        {"Retry-After": _RETRY_AFTER},
    ),
    500: ("`internal-error`: logged; nothing of the request was kept.", {}),
    503: (
        "`service-unavailable`: the database cannot be reached; nothing of the request was kept.",
        {"Retry-After": _RETRY_AFTER},
    ),
}
# Any endpoint may answer these: unreadable input, a control character anywhere, failures.
EVERYWHERE = (400, 422, 500, 503)


# Schemas the document shows without the endpoint loading them (records are checked row by row).
DOCUMENTED: dict[str, type[Schema]] = {}
S = TypeVar("S", bound=type[Schema])


def documented(name: str) -> Callable[[S], S]:
    """Add a schema to the document's components under ``name``."""

    def register(schema: S) -> S:
        DOCUMENTED[name] = schema
        return schema

    return register


# Named so that the document's component is "Problem".
class Problem(problem_types.ProblemSchema):
    """RFC 9457 problem details; problems may carry extension members (OAuth 2's ``error``…)."""

    class Meta:
        unknown = INCLUDE

    error = fields.String(
        metadata={
            "description": "token endpoint only: the OAuth 2 error code",
            "example": "invalid_client",
        }
    )
    error_description = fields.String(metadata={"description": "token endpoint only"})


def register_problem_responses(spec: APISpec, schema: Any) -> None:
    """Register a component response per HTTP status (named as flask-smorest names them) in problem+json."""
    for status in http.HTTPStatus:
        response: dict[str, Any] = {"description": status.phrase}
        if status >= 400:
            when, headers = PROBLEM_STATUSES.get(status, ("", {}))
            if when:
                response["description"] = f"{status.phrase}: {when}"
            response["content"] = {problem_types.MEDIA_TYPE: {"schema": schema}}
            if headers:
                response["headers"] = headers
        # 405 belongs to no operation (it answers the methods a path has none for): shown anyway.
        spec.components.response(status.name, response, lazy=status != 405)
    spec.components.response(
        "DEFAULT_ERROR",
        {
            "description": "Any other error, as an RFC 9457 problem",
            "content": {problem_types.MEDIA_TYPE: {"schema": schema}},
        },
        lazy=True,
    )


def problems(blueprint: Blueprint, *statuses: int) -> Callable[[F], F]:
    """Document the problem statuses an endpoint can answer (and :data:`EVERYWHERE`)."""
    # No catch-all "default" response: a status not listed is a mismatch the fuzz run reports.
    every = sorted({*statuses, *EVERYWHERE})

    def decorate(view: F) -> F:
        for status in every:
            view = blueprint.alt_response(status, response=http.HTTPStatus(status).name)(view)
        return view

    return decorate


def eligibility_schema() -> dict[str, Any]:
    """The eligibility rule's grammar: one condition kind per object, ``all``/``any`` combining them."""
    leaf = {
        "min_common_tier": {
            "type": "integer",
            "minimum": 1,
            "maximum": 5,
            "description": "tier on the common scale, 5 best … 1; a citizen without a score fails it",
        },
        "min_local_score": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10_000,
            "description": "the city's own score (from the code's sealed score)",
        },
        "min_age": {"type": "integer", "minimum": 0, "maximum": 120, "description": "age in years"},
        "resident": {
            "type": "boolean",
            "enum": [True],
            "description": "residents of the city only (there is no negated form)",
        },
        "no_direct_tier_record": {
            "type": "boolean",
            "enum": [True],
            "description": "no severe record currently sets the citizen's tier directly",
        },
    }
    combined = {
        kind: {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/components/schemas/EligibilityRule"},
            "description": f"{'every' if kind == 'all' else 'at least one'} condition is met",
        }
        for kind in ("all", "any")
    }
    kinds = {**leaf, **combined}
    missing = set(CONDITIONS) - set(kinds)
    if missing:  # a new condition kind must be documented here before it can be served
        raise RuntimeError(f"eligibility kinds not documented in the OpenAPI: {sorted(missing)}")
    return {
        "description": (
            "Who qualifies: an object with exactly one key, its condition kind ("
            + ", ".join(f"`{k}`" for k in kinds)
            + f"). `all` and `any` combine conditions, at most {MAX_DEPTH} levels deep. "
            "There is no negation: a scenario only grants."
        ),
        "oneOf": [
            {
                "type": "object",
                "title": kind,
                "properties": {kind: spec},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind, spec in kinds.items()
        ],
        "example": {"all": [{"min_common_tier": 3}, {"min_age": 18}, {"resident": True}]},
    }


class Eligibility(fields.Dict):
    """An eligibility rule as data; documented as the ``EligibilityRule`` component."""

    def __init__(self, **kwargs: Any):
        metadata = {"allOf": [{"$ref": "#/components/schemas/EligibilityRule"}]}
        metadata.update(kwargs.pop("metadata", {}))
        super().__init__(metadata=metadata, **kwargs)
