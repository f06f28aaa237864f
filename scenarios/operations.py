"""The scenario registry's writes and lookups: operators, venues, scenarios and their review workflow.

Every write takes an :class:`Actor` (who, and within which operator) and is audited. The workflow::

    draft ──submit──▶ in_review ──publish──▶ published ◀──resume── suspended
      ▲                  │                      │  └──suspend──▶──┘
      └─────reject───────┘                      └──────retire──────▶ retired

Editing a published scenario opens a new pending version (draft → in review → published) while the
live version keeps serving; publishing it supersedes the old one. A version is frozen once submitted.
Whoever submitted a version cannot also publish it (four eyes).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import ColumnElement, delete, false, or_, select, true
from sqlalchemy.orm import Session, object_session

from citycredit.core import actors, events
from citycredit.core.actors import Actor, require_four_eyes
from citycredit.core.audit import audit
from citycredit.core.db import database_name, utcnow
from citycredit.core.text import control_character, lone_surrogate
from scenarios.eligibility import Condition, RuleError, parse_rule
from scenarios.models import (
    CATEGORIES,
    PENDING_STATES,
    Operator,
    Scenario,
    ScenarioVenue,
    ScenarioVersion,
    Venue,
)

CODE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
# Path segments of the admin's own pages (/admin/scenarios/new, …/import).
RESERVED_CODES = frozenset({"new", "import", "export"})
OPTIONAL_FIELDS = ("quota_per_day", "quota_per_month", "quota_total", "valid_from", "valid_until")
CONTENT_FIELDS = (
    "name_zh",
    "name_en",
    "benefit_zh",
    "benefit_en",
    "eligibility",
    "quota_per_day",
    "quota_per_month",
    "quota_total",
    "valid_from",
    "valid_until",
    "open_to_visitors",
)


# --- errors -------------------------------------------------------------------------------------


class RegistryError(Exception):
    """A registry request that cannot be carried out; ``str()`` is a sentence fit for a user."""


class UnknownScenario(RegistryError, LookupError):
    def __init__(self, code: str):
        super().__init__(f"no published scenario {code!r}")
        self.code = code


class ScenarioUnavailable(RegistryError):
    """The scenario exists but cannot be used here and now (suspended, outside its dates, other venue)."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"scenario {code!r} {reason}")
        self.code = code
        self.reason = reason


class InvalidScenario(RegistryError, ValueError):
    """Field errors: ``errors`` maps each field to its messages (``eligibility`` names the rule path)."""

    def __init__(self, errors: Mapping[str, Sequence[str]]):
        self.errors = {name: list(messages) for name, messages in errors.items()}
        super().__init__(
            "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.errors.items())
        )


class WorkflowError(RegistryError):
    """A transition the workflow does not allow from the scenario's current state."""


class NotPermitted(RegistryError, actors.NotPermitted):
    """The actor may not do this to this scenario (another operator's, or a step for another role)."""


# --- who acts -------------------------------------------------------------------------------------


def _require_manage(actor: Actor, scenario: Scenario) -> None:
    if not actor.may_see(scenario.operator_id):
        # Another operator's scenario does not exist as far as this actor can tell.
        raise UnknownScenario(scenario.code)
    if not actor.may_manage(scenario.operator_id):
        raise NotPermitted(f"{actor.name} may not change scenario {scenario.code!r}")
    _lock(scenario)


def _lock(scenario: Scenario) -> None:
    """Take the scenario's row lock: workflow steps on one scenario happen one after another (two
    edits cannot both open "version 3"; an edit cannot slip into a version being published)."""
    session = object_session(scenario)
    if session is not None:
        session.execute(select(Scenario.id).where(Scenario.id == scenario.id).with_for_update())
        session.refresh(scenario)


# --- field validation -----------------------------------------------------------------------------


class _Date(fields.Date):
    """A date from ISO text, or a date as is (the registry's own values round-trip)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dt.date):
            return value
        return super()._deserialize(value, attr, data, **kwargs)


class _Rule(fields.Field):
    """An eligibility rule as JSON data (or JSON text, from a form or CSV), parsed by the registry."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value in ("", None):
            raise ValidationError('required: a rule such as {"min_common_tier": 3}')
        if isinstance(value, str):
            if len(value) > 20_000:
                raise ValidationError("too long (at most 20,000 characters)")
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
            except RecursionError:
                raise ValidationError("nested too deeply") from None
        try:
            return parse_rule(value).to_data()
        except RuleError as exc:
            raise ValidationError(str(exc)) from None


def clean_text_error(text: str, *, multiline: bool = False) -> str | None:
    """Why ``text`` cannot be stored (a control character, a lone surrogate), or None when it can."""
    found = lone_surrogate(text)
    if found is not None:
        return f"contains a lone surrogate ({found})"
    found = control_character(text, multiline=multiline)
    if found is not None:
        allowed = " (only tab and line breaks are allowed)" if multiline else ""
        return f"contains a control character ({found}){allowed}"
    return None


class _Flag(fields.Field):
    """Yes or no: a boolean, or the text ``true``/``false`` in any case (a CSV cell)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValidationError("must be true or false")


class _NoControls(validate.Validator):
    """Refuse what PostgreSQL cannot store (NUL) and what partners must not be served (ESC, BEL…)."""

    def __init__(self, *, multiline: bool) -> None:
        self.multiline = multiline

    def __call__(self, value: str) -> str:
        error = clean_text_error(value, multiline=self.multiline)
        if error is not None:
            raise ValidationError(error)
        return value


def _text(limit: int, *, multiline: bool = False) -> fields.String:
    return fields.String(
        required=True,
        validate=[validate.Length(min=1, max=limit), _NoControls(multiline=multiline)],
        metadata={"strip": True},
    )


class ContentSchema(Schema):
    """What a version holds. Quotas: per citizen per day and per month, and in total; blank is none."""

    name_zh = _text(200)
    name_en = _text(200)
    benefit_zh = _text(500, multiline=True)
    benefit_en = _text(500, multiline=True)
    eligibility = _Rule(required=True)
    quota_per_day = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=10_000)
    )
    quota_per_month = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=100_000)
    )
    quota_total = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=1_000_000_000)
    )
    valid_from = _Date(allow_none=True, load_default=None)
    valid_until = _Date(allow_none=True, load_default=None)
    # Absent: a new scenario is closed to visitors, an edit keeps what the version it edits says.
    open_to_visitors = _Flag(error_messages={"null": "must be true or false"})


def _cross_field(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Checks between fields, on whatever fields were valid on their own (so all are reported)."""
    errors: dict[str, list[str]] = {}
    start, end = data.get("valid_from"), data.get("valid_until")
    if start and end and end < start:
        errors["valid_until"] = ["must not be before valid_from"]
    day, month = data.get("quota_per_day"), data.get("quota_per_month")
    if day and month and month < day:
        errors["quota_per_month"] = ["must allow at least the daily quota"]
    return errors


def clean_content(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a version's fields; raise :class:`InvalidScenario` with every field's problems."""
    stripped = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
    # A blank optional cell or form field means "none".
    for name in OPTIONAL_FIELDS:
        if stripped.get(name) == "":
            stripped[name] = None
    if stripped.get("open_to_visitors") == "":
        stripped["open_to_visitors"] = False
    errors: dict[str, list[str]] = {}
    try:
        loaded: dict[str, Any] = ContentSchema().load(
            {k: v for k, v in stripped.items() if k in CONTENT_FIELDS}
        )
    except ValidationError as exc:
        errors = _messages(exc)
        loaded = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    for name, messages in _cross_field(loaded).items():
        errors.setdefault(name, []).extend(messages)
    if errors:
        raise InvalidScenario(errors)
    return loaded


def _messages(exc: ValidationError) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    raw = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    for name, messages in raw.items():
        out[str(name)] = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
    return out


def _check_identity(code: str, category: str) -> None:
    errors: dict[str, list[str]] = {}
    # fullmatch: CODE's "$" would also match before a trailing line break.
    if not CODE.fullmatch(code or ""):
        errors["code"] = ["3–64 characters: lower-case letters, digits and '-'"]
    elif code in RESERVED_CODES:
        errors["code"] = [f"{code!r} is reserved; choose another code"]
    if category not in CATEGORIES:
        errors["category"] = [f"unknown category (known: {', '.join(CATEGORIES)})"]
    if errors:
        raise InvalidScenario(errors)


# --- operators and venues --------------------------------------------------------------------------


def ensure_operator(session: Session, code: str, name_zh: str, name_en: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.code == code))
    if operator is None:
        operator = Operator(code=code, name_zh=name_zh, name_en=name_en)
        session.add(operator)
        session.flush()
    return operator


def find_operator(session: Session, code: str) -> Operator | None:
    return session.scalar(select(Operator).where(Operator.code == code))


def add_venue(
    session: Session,
    actor: Actor,
    *,
    operator: Operator,
    code: str,
    category: str,
    name_zh: str,
    name_en: str,
    address_zh: str = "",
) -> Venue:
    if not actor.may_manage(operator.id):
        raise NotPermitted(f"{actor.name} may not add venues for {operator.code!r}")
    _check_identity(code, category)
    if session.scalar(select(Venue.id).where(Venue.code == code)) is not None:
        raise InvalidScenario({"code": [f"venue {code!r} exists already"]})
    venue = Venue(
        operator_id=operator.id,
        code=code,
        category=category,
        name_zh=name_zh.strip(),
        name_en=name_en.strip(),
        address_zh=address_zh.strip(),
    )
    session.add(venue)
    session.flush()
    audit(session, actor=actor.name, action="venue.add", venue=code, operator=operator.code)
    return venue


# --- reading ----------------------------------------------------------------------------------------


# What partners may read of other operators' scenarios: the live catalogue, suspensions included
# (a desk must be able to tell a suspended benefit from an unknown one).
CATALOGUE_STATUSES = ("published", "suspended")


def visible_scenarios(actor: Actor, *, with_catalogue: bool = False) -> ColumnElement[bool]:
    """The one rule of which scenarios an actor sees, as a filter (the admin, the API, the registry).

    Its own operator's in every state (a city-wide actor: every operator's; a partner: none);
    ``with_catalogue`` adds everyone's published and suspended ones, as the partner API shows them.
    A venue desk's further limit (what its venue honours) is :func:`sees_scenario`'s.
    """
    own: ColumnElement[bool]
    if actor.is_city_wide():
        own = true()
    elif actor.partner:
        own = false()
    else:
        own = Scenario.operator_id == actor.operator_id
    if with_catalogue:
        return or_(own, Scenario.status.in_(CATALOGUE_STATUSES))
    return own


def sees_scenario(
    actor: Actor,
    scenario: Scenario,
    *,
    with_catalogue: bool = False,
    honoured_at: Iterable[int] = (),
) -> bool:
    """:func:`visible_scenarios` for one loaded scenario, plus a desk's limit: only what its venue
    honours (``honoured_at``: the venue ids of the scenario's current version)."""
    if actor.may_see(scenario.operator_id):
        return True
    if not with_catalogue or scenario.status not in CATALOGUE_STATUSES:
        return False
    return actor.venue_id is None or actor.venue_id in set(honoured_at)


def find_scenario(session: Session, code: str, actor: Actor | None = None) -> Scenario:
    """The scenario with this code, if the actor may see it (another operator's reads as unknown)."""
    scenario = session.scalar(select(Scenario).where(Scenario.code == code))
    if scenario is None or (actor is not None and not sees_scenario(actor, scenario)):
        raise UnknownScenario(code)
    return scenario


def live_version(session: Session, scenario_id: int) -> ScenarioVersion | None:
    return session.scalar(
        select(ScenarioVersion).where(
            ScenarioVersion.scenario_id == scenario_id, ScenarioVersion.state == "published"
        )
    )


def pending_version(
    session: Session, scenario_id: int, *, lock: bool = False
) -> ScenarioVersion | None:
    """The draft or in-review version. ``lock`` takes its row lock (and re-reads it), so that an
    edit, a submit and a publish of one version happen one after another, never interleaved."""
    query = select(ScenarioVersion).where(
        ScenarioVersion.scenario_id == scenario_id,
        ScenarioVersion.state.in_(PENDING_STATES),
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def versions_of(session: Session, scenario_id: int) -> list[ScenarioVersion]:
    return list(
        session.scalars(
            select(ScenarioVersion)
            .where(ScenarioVersion.scenario_id == scenario_id)
            .order_by(ScenarioVersion.number.desc())
        )
    )


def venues_of(session: Session, scenario_id: int) -> list[Venue]:
    return list(
        session.scalars(
            select(Venue)
            .join(ScenarioVenue, ScenarioVenue.venue_id == Venue.id)
            .where(ScenarioVenue.scenario_id == scenario_id)
            .order_by(Venue.code)
        )
    )


@dataclass(frozen=True)
class CurrentVersions:
    """For many scenarios at once: the live and the pending version of each, and its venues."""

    live: dict[int, ScenarioVersion]
    pending: dict[int, ScenarioVersion]
    venues: dict[int, list[Venue]]

    def current(self, scenario_id: int) -> ScenarioVersion | None:
        """The scenario's current definition: the pending version if any, else the live one."""
        return self.pending.get(scenario_id) or self.live.get(scenario_id)


def current_versions(session: Session, scenario_ids: Sequence[int]) -> CurrentVersions:
    """Versions and venues of a list of scenarios in two queries (listings, exports, the API)."""
    live: dict[int, ScenarioVersion] = {}
    pending: dict[int, ScenarioVersion] = {}
    venues: dict[int, list[Venue]] = {}
    if not scenario_ids:
        return CurrentVersions(live, pending, venues)
    for version in session.scalars(
        select(ScenarioVersion).where(
            ScenarioVersion.scenario_id.in_(scenario_ids),
            ScenarioVersion.state.in_(("published", *PENDING_STATES)),
        )
    ):
        (live if version.state == "published" else pending)[version.scenario_id] = version
    for scenario_id, venue in session.execute(
        select(ScenarioVenue.scenario_id, Venue)
        .join(Venue, Venue.id == ScenarioVenue.venue_id)
        .where(ScenarioVenue.scenario_id.in_(scenario_ids))
        .order_by(Venue.code)
    ):
        venues.setdefault(scenario_id, []).append(venue)
    return CurrentVersions(live, pending, venues)


_RULES: dict[str, Condition] = {}


def rule_of(version: ScenarioVersion) -> Condition:
    """The parsed rule of a version, cached by the rule's own canonical text (so a cached rule can
    never be lent to another version, database or edit: equal text is an equal rule)."""
    key = json.dumps(version.eligibility, sort_keys=True, separators=(",", ":"))
    rule = _RULES.get(key)
    if rule is None:
        if len(_RULES) > 10_000:
            _RULES.clear()
        rule = _RULES[key] = parse_rule(version.eligibility)
    return rule


def scenario_for_use(
    session: Session, code: str, *, venue_id: int | None, today: dt.date, visitor: bool = False
) -> tuple[Scenario, ScenarioVersion]:
    """The live version a venue may verify and redeem against today, or the precise reason why not.

    ``visitor``: the code was issued by a partner city; only a live version open to visitors serves.
    """
    row = session.execute(
        select(Scenario, ScenarioVersion)
        .join(
            ScenarioVersion,
            (ScenarioVersion.scenario_id == Scenario.id) & (ScenarioVersion.state == "published"),
        )
        .where(Scenario.code == code)
    ).first()
    if row is None or row[0].status == "retired":
        raise UnknownScenario(code)
    scenario, version = row
    if scenario.status == "suspended":
        raise ScenarioUnavailable(code, "is suspended by its operator or the city")
    if version.valid_from is not None and today < version.valid_from:
        raise ScenarioUnavailable(code, f"starts on {version.valid_from.isoformat()}")
    if version.valid_until is not None and today > version.valid_until:
        raise ScenarioUnavailable(code, f"ended on {version.valid_until.isoformat()}")
    if venue_id is not None:
        offered = session.scalar(
            select(ScenarioVenue.venue_id).where(
                ScenarioVenue.scenario_id == scenario.id, ScenarioVenue.venue_id == venue_id
            )
        )
        if offered is None:
            raise ScenarioUnavailable(code, "is not offered at this venue")
    if visitor and not version.open_to_visitors:
        raise ScenarioUnavailable(code, "is not offered to visitors from partner cities")
    return scenario, version


@dataclass(frozen=True)
class InUse:
    """A scenario and its live version as a process remembers them (:func:`scenario_in_use`):
    detached copies shared between requests, so read, never changed.

    A copy is still current while the scenario's ``status`` and ``updated_at`` are unchanged, the
    version is still the published one and (for a venue's desk) the venue still honours it: every
    change of status, venues or live version sets ``updated_at`` (``_transition``, ``set_venues``,
    ``publish``), and the version's state and the venue are checked as they are."""

    scenario: Scenario
    version: ScenarioVersion
    rule: Condition
    venues: frozenset[int]


# (database, scenario code) → what the process last read. Never trusted alone: the statement that relies
# on it checks in the database that it is still current, and falls back to scenario_for_use if not.
_IN_USE: dict[tuple[str, str], InUse] = {}


def _detached(row: Any) -> Any:
    copy = type(row)()
    for attribute in row.__mapper__.column_attrs:
        setattr(copy, attribute.key, getattr(row, attribute.key))
    return copy


def scenario_in_use(
    session: Session, code: str, *, venue_id: int | None, today: dt.date
) -> InUse | None:
    """A local venue's :func:`scenario_for_use` from the process's memory, read once per change:
    None when it may not serve (then :func:`scenario_for_use` gives the precise reason). The caller
    must make the statement that records its use conditional on the copy being still current
    (:class:`InUse`)."""
    key = (database_name(session), code)
    found = _IN_USE.get(key)
    if found is not None and venue_id is not None and venue_id not in found.venues:
        found = None  # perhaps a venue added since: look again before saying no
    if found is None:
        try:
            scenario, version = scenario_for_use(session, code, venue_id=None, today=today)
        except (UnknownScenario, ScenarioUnavailable):
            _IN_USE.pop(key, None)
            return None
        venues = session.scalars(
            select(ScenarioVenue.venue_id).where(ScenarioVenue.scenario_id == scenario.id)
        ).all()
        if len(_IN_USE) > 10_000:
            _IN_USE.clear()
        found = _IN_USE[key] = InUse(
            _detached(scenario), _detached(version), rule_of(version), frozenset(venues)
        )
    version = found.version
    if (
        (version.valid_from is not None and today < version.valid_from)
        or (version.valid_until is not None and today > version.valid_until)
        or (venue_id is not None and venue_id not in found.venues)
    ):
        return None
    return found


def forget_in_use(session: Session, code: str) -> None:
    """Drop the process's copy of a scenario (its use was refused as no longer current)."""
    _IN_USE.pop((database_name(session), code), None)


# --- writing ----------------------------------------------------------------------------------------


def create_scenario(
    session: Session,
    actor: Actor,
    *,
    code: str,
    operator: Operator,
    category: str,
    content: Mapping[str, Any],
    venue_codes: Iterable[str] = (),
) -> Scenario:
    """A new scenario as a draft (version 1). Raises :class:`InvalidScenario` listing every problem."""
    if not actor.may_manage(operator.id):
        raise NotPermitted(f"{actor.name} may not create scenarios for {operator.code!r}")
    errors: dict[str, list[str]] = {}
    try:
        _check_identity(code, category)
    except InvalidScenario as exc:
        errors.update(exc.errors)
    try:
        cleaned = clean_content(content)
    except InvalidScenario as exc:
        errors.update(exc.errors)
    if not errors and session.scalar(select(Scenario.id).where(Scenario.code == code)):
        errors["code"] = [f"scenario {code!r} exists already"]
    venues: list[Venue] = []
    if not errors:
        try:
            venues = _venues(session, operator, venue_codes)
        except InvalidScenario as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidScenario(errors)
    cleaned.setdefault("open_to_visitors", False)
    now = utcnow()
    scenario = Scenario(
        code=code,
        operator_id=operator.id,
        category=category,
        status="draft",
        redeemed_total=0,
        created_at=now,
        updated_at=now,
    )
    session.add(scenario)
    session.flush()
    session.add(
        ScenarioVersion(
            scenario_id=scenario.id, number=1, state="draft", created_by=actor.name, **cleaned
        )
    )
    for venue in venues:
        session.add(ScenarioVenue(scenario_id=scenario.id, venue_id=venue.id))
    session.flush()
    audit(session, actor=actor.name, action="scenario.create", scenario=code, version=1)
    return scenario


def _venues(session: Session, operator: Operator, codes: Iterable[str]) -> list[Venue]:
    wanted = sorted({c.strip() for c in codes if c.strip()})
    if not wanted:
        return []
    found = {v.code: v for v in session.scalars(select(Venue).where(Venue.code.in_(wanted)))}
    problems = [f"unknown venue {c!r}" for c in wanted if c not in found]
    problems += [
        f"venue {c!r} belongs to another operator"
        for c, v in found.items()
        if v.operator_id != operator.id
    ]
    if problems:
        raise InvalidScenario({"venues": problems})
    return [found[c] for c in wanted]


def edit_scenario(
    session: Session, actor: Actor, scenario: Scenario, content: Mapping[str, Any]
) -> ScenarioVersion:
    """Change what a scenario grants. A draft is edited in place; a published scenario gets a new draft
    version (the live one keeps serving until the new one is published). A field ``content`` leaves
    out that only some callers know (``open_to_visitors``) keeps the value of the version edited."""
    _require_manage(actor, scenario)
    if scenario.status == "retired":
        raise WorkflowError("a retired scenario cannot be edited")
    cleaned = clean_content(content)
    pending = pending_version(session, scenario.id, lock=True)
    if pending is not None and pending.state == "in_review":
        raise WorkflowError("version under review: wait for the review, or ask for it back")
    if pending is None:
        numbers = session.scalars(
            select(ScenarioVersion.number).where(ScenarioVersion.scenario_id == scenario.id)
        ).all()
        live = live_version(session, scenario.id)
        pending = ScenarioVersion(
            scenario_id=scenario.id,
            number=max(numbers, default=0) + 1,
            state="draft",
            created_by=actor.name,
            open_to_visitors=live.open_to_visitors if live is not None else False,
        )
        session.add(pending)
    for name, value in cleaned.items():
        setattr(pending, name, value)
    pending.edited_by = actor.name
    scenario.updated_at = utcnow()
    session.flush()
    audit(
        session,
        actor=actor.name,
        action="scenario.edit",
        scenario=scenario.code,
        version=pending.number,
    )
    return pending


def set_venues(
    session: Session, actor: Actor, scenario: Scenario, venue_codes: Iterable[str]
) -> list[Venue]:
    """Which venues honour the scenario (takes effect at once; a venue only ever adds a place)."""
    _require_manage(actor, scenario)
    operator = session.get(Operator, scenario.operator_id)
    assert operator is not None
    venues = _venues(session, operator, venue_codes)
    session.execute(delete(ScenarioVenue).where(ScenarioVenue.scenario_id == scenario.id))
    for venue in venues:
        session.add(ScenarioVenue(scenario_id=scenario.id, venue_id=venue.id))
    scenario.updated_at = utcnow()
    session.flush()
    audit(
        session,
        actor=actor.name,
        action="scenario.venues",
        scenario=scenario.code,
        venues=[v.code for v in venues],
    )
    return venues


def submit(session: Session, actor: Actor, scenario: Scenario) -> ScenarioVersion:
    """Send the pending draft for review; it is frozen from now on."""
    _require_manage(actor, scenario)
    pending = pending_version(session, scenario.id, lock=True)
    if pending is None or pending.state != "draft":
        raise WorkflowError("there is no draft to submit")
    if scenario.status == "retired":
        raise WorkflowError("a retired scenario cannot be submitted")
    pending.state = "in_review"
    pending.submitted_by = actor.name
    pending.submitted_at = utcnow()
    if scenario.status == "draft":
        scenario.status = "in_review"
    scenario.updated_at = utcnow()
    session.flush()
    audit(
        session,
        actor=actor.name,
        action="scenario.submit",
        scenario=scenario.code,
        version=pending.number,
    )
    return pending


def _require_review(session: Session, actor: Actor, scenario: Scenario) -> ScenarioVersion:
    if not actor.may_see(scenario.operator_id):
        raise UnknownScenario(scenario.code)
    if not actor.may_review():
        raise NotPermitted(f"{actor.name} may not review scenarios")
    _lock(scenario)
    pending = pending_version(session, scenario.id, lock=True)
    if pending is None or pending.state != "in_review":
        raise WorkflowError("there is no version waiting for review")
    return pending


def reject(session: Session, actor: Actor, scenario: Scenario, note: str) -> ScenarioVersion:
    """Send the version under review back to its author as a draft, with the reviewer's note."""
    pending = _require_review(session, actor, scenario)
    if not note.strip():
        raise InvalidScenario({"review_note": ["say what needs to change"]})
    pending.state = "draft"
    pending.reviewed_by = actor.name
    pending.reviewed_at = utcnow()
    pending.review_note = note.strip()[:500]
    if scenario.status == "in_review":
        scenario.status = "draft"
    scenario.updated_at = utcnow()
    session.flush()
    audit(
        session,
        actor=actor.name,
        action="scenario.reject",
        scenario=scenario.code,
        version=pending.number,
        note=pending.review_note,
    )
    return pending


def publish(session: Session, actor: Actor, scenario: Scenario, note: str = "") -> ScenarioVersion:
    """Make the version under review live; the previous live version is superseded (not deleted)."""
    pending = _require_review(session, actor, scenario)
    require_four_eyes(
        actor, (pending.created_by, pending.edited_by, pending.submitted_by), error=NotPermitted
    )
    now = utcnow()
    live = live_version(session, scenario.id)
    if live is not None:
        live.state = "superseded"
        session.flush()  # the partial unique index allows one live version at a time
    pending.state = "published"
    pending.reviewed_by = actor.name
    pending.reviewed_at = now
    pending.review_note = note.strip()[:500] or None
    pending.published_at = now
    before = scenario.status
    if scenario.status in ("draft", "in_review"):
        scenario.status = "published"
    scenario.updated_at = now
    session.flush()
    if scenario.status == "published":  # a new version of a suspended scenario waits for resume
        _announce(session, scenario, before)
    audit(
        session,
        actor=actor.name,
        action="scenario.publish",
        scenario=scenario.code,
        version=pending.number,
    )
    return pending


def _transition(
    session: Session,
    actor: Actor,
    scenario: Scenario,
    action: str,
    allowed: tuple[str, ...],
    to: str,
    reason: str,
) -> Scenario:
    _require_manage(actor, scenario)
    if scenario.status not in allowed:
        raise WorkflowError(f"cannot {action} a scenario that is {scenario.status}")
    if action == "resume" and scenario.suspended_by_city and actor.operator_id is not None:
        raise NotPermitted("the city suspended this scenario: only the city can resume it")
    before = scenario.status
    scenario.status = to
    if action == "suspend":
        scenario.suspended_by_city = actor.operator_id is None
    elif action == "resume":
        scenario.suspended_by_city = False
    scenario.updated_at = utcnow()
    if to == "retired":
        for version in session.scalars(
            select(ScenarioVersion).where(
                ScenarioVersion.scenario_id == scenario.id,
                ScenarioVersion.state.in_(PENDING_STATES),
            )
        ):
            version.state = "withdrawn"
    session.flush()
    _announce(session, scenario, before)
    audit(
        session,
        actor=actor.name,
        action=f"scenario.{action}",
        scenario=scenario.code,
        before=before,
        reason=reason.strip()[:500],
    )
    return scenario


def _announce(session: Session, scenario: Scenario, before: str) -> None:
    """Tell the domains above (webhooks to partners) that a scenario's status changed."""
    events.announce(
        session,
        "scenario.status",
        scenario_id=scenario.id,
        code=scenario.code,
        operator_id=scenario.operator_id,
        status=scenario.status,
        before=before,
    )


def suspend(session: Session, actor: Actor, scenario: Scenario, reason: str = "") -> Scenario:
    """Stop verifications and redemptions at once (the operator's or the city's emergency brake)."""
    return _transition(session, actor, scenario, "suspend", ("published",), "suspended", reason)


def resume(session: Session, actor: Actor, scenario: Scenario, reason: str = "") -> Scenario:
    return _transition(session, actor, scenario, "resume", ("suspended",), "published", reason)


def retire(session: Session, actor: Actor, scenario: Scenario, reason: str = "") -> Scenario:
    """End a scenario for good; its history (versions, verifications, redemptions) stays."""
    allowed = ("draft", "in_review", "published", "suspended")
    return _transition(session, actor, scenario, "retire", allowed, "retired", reason)


def publish_directly(
    session: Session,
    scenario: Scenario,
    *,
    submitter: Actor,
    publisher: Actor,
) -> ScenarioVersion:
    """Submit and publish in one go with two distinct actors (seeding a demo or a migration)."""
    submit(session, submitter, scenario)
    return publish(session, publisher, scenario)
