"""What the citizen's page reads: the home summary, the trend, how to improve, and everything held.

Every function here reads one citizen's personal data and is audited as the citizen's own read.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen.models import PENDING_STATUSES, Objection, ObjectionStep
from citycredit.core.audit import audit
from citycredit.core.config import Settings
from citycredit.core.workdays import WorkCalendar
from credit_codes import consent as cross_city
from credit_codes.queries import checks_of_citizen
from federation.queries import partner_checks_of_citizen, partner_offers
from points_engine.catalogue import entry_names as catalogue_entry_names
from points_engine.models import (
    Citizen,
    ConsentEvent,
    DataSource,
    Record,
    RecordStatus,
    ScoreSnapshot,
)
from points_engine.operations import NoPublishedModel, published_model
from points_engine.queries import ExplainedRecord, Explanation, current_snapshot, explain
from points_engine.rules import RecordFact, evaluate
from points_engine.tiers import COMMON_LEVELS


def actor_of(citizen: Citizen) -> str:
    return f"citizen:{citizen.id}"


@dataclass(frozen=True)
class TrendPoint:
    month: str  # "2026-06"
    score: int


@dataclass
class Home:
    explanation: Explanation
    trend: list[TrendPoint]
    change_since_last_month: int | None


def month_ends(today: dt.date, months: int = 12) -> list[dt.date]:
    """The last day of each of the previous ``months - 1`` months, then today."""
    ends = []
    first = today.replace(day=1)
    for _ in range(months - 1):
        last = first - dt.timedelta(days=1)
        ends.append(last)
        first = last.replace(day=1)
    return [*reversed(ends), today]


def home(session: Session, citizen: Citizen, *, today: dt.date) -> Home:
    """The score and tier with their explanation, the change since a month ago, and a 12-month trend.

    The trend scores the citizen's records as of each month's end under the model in force today, so
    that the line shows what the records did, not changes of rules; the page says so.
    """
    explanation = explain_for_page(session, citizen, today=today)
    if not explanation.consent_given or explanation.score is None:
        return Home(explanation, [], None)
    _, model = published_model(session)
    # The explanation already holds every record of the citizen: no second read.
    records = [
        RecordFact(r.record_id, r.item_code, r.status, r.occurred_on, r.repaired_on)
        for r in explanation.records
    ]
    trend = []
    for end in month_ends(today):
        facts = [r for r in records if r.occurred_on <= end]
        trend.append(TrendPoint(end.strftime("%Y-%m"), evaluate(model, facts, end).score))
    month_ago = today - dt.timedelta(days=30)
    facts = [r for r in records if r.occurred_on <= month_ago]
    change = explanation.score - evaluate(model, facts, month_ago).score
    return Home(explanation, trend, change)


def explain_for_page(session: Session, citizen: Citizen, *, today: dt.date) -> Explanation:
    """The engine's explanation of every record, read by the citizen (audited by ``explain``)."""
    return explain(session, citizen, as_of=today, actor=actor_of(citizen), purpose="citizen page")


class Standing(enum.StrEnum):
    """How a record stands for the citizen's score, as the records page and the report both say it."""

    COUNTING = "counting"
    UNDER_OBJECTION = "under_objection"
    NOT_COUNTING = "not_counting"
    NOT_SCORED = "not_scored"  # no consent to scoring: nothing is scored at all


STANDING_NAMES: dict[Standing, tuple[str, str]] = {
    Standing.COUNTING: ("计分中", "counting"),
    Standing.UNDER_OBJECTION: ("异议处理中", "under objection"),
    Standing.NOT_COUNTING: ("不计分", "not counting"),
    Standing.NOT_SCORED: ("未评分", "not scored"),
}


def standing(status: str, counted: bool | None) -> Standing:
    """A record's standing from its state and whether the engine counted it (None: not scored).

    A record under objection says so whatever it counts (an award keeps counting, a deduction is
    suspended); the engine's reasons say which."""
    if status == RecordStatus.UNDER_OBJECTION:
        return Standing.UNDER_OBJECTION
    if counted is None:
        return Standing.NOT_SCORED
    return Standing.COUNTING if counted else Standing.NOT_COUNTING


def record_groups(
    records: list[ExplainedRecord],
) -> list[tuple[bool, list[ExplainedRecord]]]:
    """(counts, records): those that count, then those that do not, each newest first; empty
    groups left out. The records page and the printable report list records in this order."""
    ordered = sorted(records, key=lambda r: (-r.occurred_on.toordinal(), r.record_id))
    groups = [
        (True, [r for r in ordered if r.counted]),
        (False, [r for r in ordered if not r.counted]),
    ]
    return [(counts, group) for counts, group in groups if group]


@dataclass(frozen=True)
class Improvement:
    item_code: str
    name_zh: str
    name_en: str
    points: int
    dimension: str | None


def improvements(session: Session) -> list[Improvement]:
    """The positive items of the published model: what adds to a score (volunteering, awards…)."""
    try:
        _, model = published_model(session)
    except NoPublishedModel:
        return []
    found = [
        Improvement(code, item.name_zh, item.name_en, item.points, item.dimension)
        for code, item in model.items.items()
        if item.points > 0
    ]
    return sorted(found, key=lambda i: -i.points)


def consent_history(session: Session, citizen: Citizen) -> list[ConsentEvent]:
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.citizen_id == citizen.id)
            .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
        )
    )


def objections_of(session: Session, citizen: Citizen) -> list[Objection]:
    return list(
        session.scalars(
            select(Objection)
            .where(Objection.citizen_id == citizen.id)
            .order_by(Objection.created_at.desc(), Objection.id.desc())
        )
    )


# --- objection cases (the citizen's page, the reviewer's and the clerk's queues) --------------------

# A case this many working days (or fewer) before its deadline is flagged as near.
NEAR_WORKING_DAYS = 3


def item_names(session: Session) -> dict[str, tuple[str, str]]:
    """Item code → (name_zh, name_en): the published model's items, then the published catalogue's
    entries no item scores (a licence granted reads by its name, not its code)."""
    names = dict(catalogue_entry_names(session))
    try:
        _, model = published_model(session)
    except NoPublishedModel:
        return names
    names.update((code, (item.name_zh, item.name_en)) for code, item in model.items.items())
    return names


def steps_of(session: Session, objection: Objection) -> list[ObjectionStep]:
    """The objection's history, oldest first."""
    return list(
        session.scalars(
            select(ObjectionStep)
            .where(ObjectionStep.objection_id == objection.id)
            .order_by(ObjectionStep.at, ObjectionStep.id)
        )
    )


@dataclass(frozen=True)
class ObjectionCase:
    """One objection as every page shows it: the record by name, its source, the deadline in working
    days with its flags, and (for the case page) the steps."""

    objection: Objection
    record: Record
    source: DataSource
    item_name_zh: str
    item_name_en: str
    # Working days from today to the deadline (0: due today; negative: overdue); None once decided.
    working_days_left: int | None
    near: bool
    overdue: bool
    # The deadline counts Monday to Friday in a year whose official schedule is not loaded.
    provisional: bool
    steps: tuple[ObjectionStep, ...] = ()

    @property
    def pending(self) -> bool:
        return self.objection.status in PENDING_STATUSES


def objection_cases(
    session: Session,
    *,
    today: dt.date,
    calendar: WorkCalendar,
    citizen: Citizen | None = None,
    public_id: str | None = None,
    pending: bool | None = None,
    source_id: int | None = None,
    with_steps: bool = False,
    limit: int = 500,
) -> list[ObjectionCase]:
    """Objections with their records: pending ones nearest deadline first, others latest first.

    Filters: one ``citizen``'s; one case by ``public_id``; ``pending`` or decided only; against one
    data source's records (a clerk's view)."""
    query = (
        select(Objection, Record, DataSource)
        .join(Record, Record.id == Objection.record_id)
        .join(DataSource, DataSource.id == Record.source_id)
    )
    if citizen is not None:
        query = query.where(Objection.citizen_id == citizen.id)
    if public_id is not None:
        query = query.where(Objection.public_id == public_id)
    if pending is not None:
        pending_now = Objection.status.in_(PENDING_STATUSES)
        query = query.where(pending_now if pending else ~pending_now)
    if source_id is not None:
        query = query.where(Record.source_id == source_id)
    if pending:
        query = query.order_by(
            Objection.deadline.is_(None), Objection.deadline, Objection.created_at, Objection.id
        )
    else:
        query = query.order_by(Objection.created_at.desc(), Objection.id.desc())
    names = item_names(session)
    cases = []
    for objection, record, source in session.execute(query.limit(limit)):
        left, near, overdue = None, False, False
        if objection.status in PENDING_STATUSES and objection.deadline is not None:
            left = calendar.working_days_between(today, objection.deadline, provisional=True)
            overdue = objection.deadline < today
            near = not overdue and left <= NEAR_WORKING_DAYS
        provisional = objection.deadline is not None and not calendar.covers(
            objection.deadline, objection.deadline
        )
        zh, en = names.get(record.item_code, (record.item_code, record.item_code))
        steps = tuple(steps_of(session, objection)) if with_steps else ()
        cases.append(
            ObjectionCase(
                objection, record, source, zh, en, left, near, overdue, provisional, steps
            )
        )
    return cases


def everything_held(
    session: Session,
    citizen: Citizen,
    *,
    today: dt.date,
    now: dt.datetime,
    settings: Settings,
) -> dict[str, Any]:
    """All the platform holds about the citizen (PIPL art. 45), as JSON-ready data. Audited.

    Partner cities' questions about the citizen are named as the held trust list names them."""
    actor = actor_of(citizen)
    audit(session, actor=actor, action="citizen.export", citizen_id=citizen.id)
    records = session.execute(
        select(Record, DataSource.code, DataSource.name_zh, DataSource.name_en)
        .join(DataSource, DataSource.id == Record.source_id)
        .where(Record.citizen_id == citizen.id)
        .order_by(Record.occurred_on, Record.id)
    ).all()
    snapshots = session.scalars(
        select(ScoreSnapshot)
        .where(ScoreSnapshot.citizen_id == citizen.id)
        .order_by(ScoreSnapshot.computed_at, ScoreSnapshot.id)
    ).all()
    return {
        "exported_at": now.isoformat(),
        "citizen": {
            "birth_date": citizen.birth_date.isoformat() if citizen.birth_date else None,
            "consent_given": citizen.consent_given,
            "registered_at": citizen.created_at.isoformat(),
            "note": "Your ID number is not stored; only a keyed pseudonym of it is.",
        },
        "consents": [
            {"action": e.action, "channel": e.channel, "at": e.at.isoformat()}
            for e in consent_history(session, citizen)
        ],
        "records": [
            {
                "id": r.id,
                "source": code,
                "source_name_zh": name_zh,
                "source_name_en": name_en,
                "source_record_id": r.source_record_id,
                "item_code": r.item_code,
                "document_no": r.document_no,
                "occurred_on": r.occurred_on.isoformat(),
                "reported_on": r.reported_on.isoformat() if r.reported_on else None,
                "status": r.status,
                "expires_on": r.expires_on.isoformat() if r.expires_on else None,
            }
            for r, code, name_zh, name_en in records
        ],
        "scores": [
            {
                "score": s.score,
                "tier": s.tier_code,
                "common_tier": s.common_tier,
                "direct_tier": s.direct_tier,
                "breakdown": s.breakdown,
                "computed_at": s.computed_at.isoformat(),
                "current": s.is_current,
            }
            for s in snapshots
        ],
        "objections": [
            {
                "id": o.public_id,
                "record_id": o.record_id,
                "reason": o.reason,
                "status": o.status,
                "filed_at": o.created_at.isoformat(),
                "decided_at": o.decided_at.isoformat() if o.decided_at else None,
            }
            for o in objections_of(session, citizen)
        ],
        "verifications": [
            {
                "at": c.at.isoformat(),
                "venue": c.checker,
                "scenario_zh": c.scenario_zh,
                "scenario_en": c.scenario_en,
                "eligible": c.eligible,
                "redeemed": c.redeemed,
            }
            for c in checks_of_citizen(session, citizen, actor=actor, limit=100_000)
        ],
        "cross_city_consents": [
            {
                "partner": c.partner,
                "channel": c.channel,
                "given_at": c.given_at.isoformat(),
                "withdrawn_at": c.withdrawn_at.isoformat() if c.withdrawn_at else None,
            }
            for c in cross_city.history(session, citizen, actor=actor)
        ],
        "partner_checks": [
            {
                "at": q.at.isoformat(),
                "partner": q.partner,
                "partner_zh": q.partner_zh,
                "partner_en": q.partner_en,
                "purpose": q.purpose,
                "scenario": q.scenario,
                "category": q.category,
                "reason": q.reason,
                "answered": q.answered,
            }
            for q in partner_checks_of_citizen(
                session, settings, citizen, actor=actor, limit=100_000
            )
        ],
    }


# --- partner cities ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerBenefit:
    """A benefit a partner city's latest bulletin opens to visitors, against the citizen's level."""

    code: str
    name_zh: str
    name_en: str
    benefit_zh: str
    benefit_en: str
    min_level: int  # on the common scale, 1–5
    usable: bool


@dataclass
class CategoryOffers:
    category: str
    usable: list[PartnerBenefit]
    not_yet: list[PartnerBenefit]  # lowest level needed first


@dataclass
class PartnerRecognition:
    partner: str
    partner_zh: str
    partner_en: str
    shared: bool
    offered: int  # how many benefits the partner opens to visitors
    categories: list[CategoryOffers]  # empty unless the citizen shares with this partner


@dataclass
class Recognition:
    level: int | None  # the citizen's common level (None: no score)
    partners: list[PartnerRecognition]


def _benefit(raw: Any, level: int | None) -> tuple[str, PartnerBenefit] | None:
    """One catalogue item of a partner's (verified) bulletin; an item that lacks a field is skipped."""
    if not isinstance(raw, dict):
        return None
    try:
        min_level = int(raw["min_level"])
        category, code = str(raw["category"]), str(raw["code"])
        name_zh, name_en = str(raw["name_zh"]), str(raw["name_en"])
        benefit_zh, benefit_en = str(raw["benefit_zh"]), str(raw["benefit_en"])
    except (KeyError, TypeError, ValueError):
        return None
    if min_level not in COMMON_LEVELS:
        return None
    usable = level is not None and level >= min_level
    return category, PartnerBenefit(
        code, name_zh, name_en, benefit_zh, benefit_en, min_level=min_level, usable=usable
    )


def recognition(
    session: Session, settings: Settings, citizen: Citizen, *, actor: str
) -> Recognition:
    """Where the citizen's tier is recognised: per partner city and category, the benefits it opens
    to visitors, those the citizen's common level reaches first. Worked out only for the partner
    cities the citizen shares with. Reads the citizen's level, so it is audited."""
    audit(session, actor=actor, action="citizen.partner_recognition", citizen_id=citizen.id)
    snapshot = current_snapshot(session, citizen.id) if citizen.consent_given else None
    level = snapshot.common_tier if snapshot is not None else None
    out = []
    for offer in partner_offers(session, settings):
        shared = cross_city.shares_with(session, citizen.id, offer.partner)
        grouped: dict[str, CategoryOffers] = {}
        if shared:
            for raw in offer.benefits:
                found = _benefit(raw, level)
                if found is None:
                    continue
                category, benefit = found
                group = grouped.setdefault(category, CategoryOffers(category, [], []))
                (group.usable if benefit.usable else group.not_yet).append(benefit)
            for group in grouped.values():
                group.not_yet.sort(key=lambda b: (b.min_level, b.code))
        out.append(
            PartnerRecognition(
                offer.partner,
                offer.partner_zh,
                offer.partner_en,
                shared,
                len(offer.benefits),
                # Categories with something usable first, then by name.
                sorted(grouped.values(), key=lambda g: (not g.usable, g.category)),
            )
        )
    return Recognition(level, out)
