"""The credit office's monthly report (通报), per department (data source) and for the city.

:func:`build` computes a month's figures from the data, as plain dataclasses; :func:`tables` lays them
out as the sections the page, the CSV and the XLSX all render, so the three show the same numbers.
:func:`generate` stores a copy (``monthly_report``: the figures as JSON with their SHA-256, when and
by whom) and :func:`check` compares a stored copy with a fresh computation, naming what changed (a late
correction, a source re-sending last month's rows). docs/REPORTS.md says what every figure means.

Months are the city's calendar months (``Settings.tz``); an objection or repair counts in the month the
city's clock showed when it was decided.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from citizen.models import Objection, RepairApplication
from citizen.operations import ObjectionTerms
from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.audit import audit
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.periods import add_months, parse_month
from credit_codes.models import Redemption, Verification
from governance.models import MonthlyReport
from points_engine import quality
from points_engine.catalogue import KINDS
from points_engine.ingest import REASONS
from points_engine.models import CatalogueEntry, CatalogueVersion, Record
from scenarios.models import CATEGORIES, Scenario, ScenarioVersion

# Collection volume is counted by these kinds: the seven administrative ones first (seed 002), then
# the others, then records accepted before the city had a catalogue (no kind).
UNCLASSIFIED = "unclassified"
KIND_ORDER: tuple[str, ...] = (*KINDS, UNCLASSIFIED)
KIND_NAMES: dict[str, tuple[str, str]] = {
    **KINDS,
    UNCLASSIFIED: ("未分类（目录前）", "Unclassified"),
}
OBJECTION_DECIDED = ("upheld", "rejected")
OBJECTION_PENDING = ("open", "forwarded", "answered")
REPAIR_DECIDED = ("approved", "refused")
REPAIR_PENDING = ("submitted", "proposed")
FORMAT_VERSION = 1


def previous_month(today: dt.date) -> dt.date:
    return add_months(today.replace(day=1), -1)


# --- the figures ----------------------------------------------------------------------------------


@dataclass
class Cases:
    """Objections or repair applications of a month: decided in it (on time or late), and those still
    open at the month's end after their deadline."""

    decided: int = 0
    on_time: int = 0
    overdue_open: int = 0

    @property
    def late(self) -> int:
        return self.decided - self.on_time

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.decided if self.decided else None

    def add(self, other: Cases) -> None:
        self.decided += other.decided
        self.on_time += other.on_time
        self.overdue_open += other.overdue_open


@dataclass
class Department:
    """One department's (data source's) month, or the city's (``source_id`` None)."""

    source_id: int | None
    code: str
    name_zh: str
    name_en: str
    volume: dict[str, int]
    quality: quality.Figures
    objections: Cases = field(default_factory=Cases)
    repairs: Cases = field(default_factory=Cases)

    @property
    def volume_total(self) -> int:
        return sum(self.volume.values())

    @property
    def score(self) -> float | None:
        return self.quality.score

    @property
    def grade(self) -> str | None:
        return self.quality.grade


@dataclass
class Usage:
    """Verifications and redemptions of one scenario (or one category) in the month."""

    key: str
    name_zh: str
    name_en: str
    category: str
    verifications: int = 0
    eligible: int = 0
    redemptions: int = 0


@dataclass
class Report:
    month: dt.date
    targets: dict[str, float]
    objection_days: int
    departments: list[Department]
    city: Department
    scenarios: list[Usage]
    categories: list[Usage]

    def department(self, code: str) -> Department | None:
        return next((d for d in self.departments if d.code == code), None)


def _utc_bounds(month: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(month, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(add_months(month, 1), dt.time(), tz).astimezone(dt.UTC)
    return start, end


def _city_day(moment: dt.datetime, tz: dt.tzinfo) -> dt.date:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).date()


def build(
    session: Session, month: dt.date, *, tz: dt.tzinfo, terms: ObjectionTerms | None = None
) -> Report:
    """The month's figures, computed from the data (nothing cached, nothing stored)."""
    month = month.replace(day=1)
    terms = terms or ObjectionTerms()
    first, last = quality.month_bounds(month)
    per_source = quality.month_figures(session, month)
    goals = quality.targets(session)
    departments = {
        f.source_id: Department(
            f.source_id, f.code, f.name_zh, f.name_en, dict.fromkeys(KIND_ORDER, 0), f
        )
        for f in per_source
    }
    # Collection volume: new records first received in the month, by the kind of the catalogue
    # entry they were accepted under.
    kind = func.coalesce(CatalogueEntry.kind, UNCLASSIFIED)
    for source_id, kind_code, n in session.execute(
        select(Record.source_id, kind, func.count())
        .select_from(Record)
        .outerjoin(CatalogueVersion, CatalogueVersion.number == Record.catalogue_version)
        .outerjoin(
            CatalogueEntry,
            and_(
                CatalogueEntry.version_id == CatalogueVersion.id,
                CatalogueEntry.code == Record.item_code,
            ),
        )
        .where(Record.received_on.between(first, last))
        .group_by(Record.source_id, kind)
    ):
        d = departments.get(source_id)
        if d is not None:
            code = kind_code if kind_code in KIND_NAMES else UNCLASSIFIED
            d.volume[code] += int(n)
    start, end = _utc_bounds(month, tz)
    _objections(session, departments, start, end, last, tz)
    _repairs(session, departments, start, end, last, tz, terms)
    city = Department(
        None,
        "",
        "全市",
        "City",
        dict.fromkeys(KIND_ORDER, 0),
        quality.city_total(per_source, goals),
    )
    for d in departments.values():
        for k, n in d.volume.items():
            city.volume[k] += n
        city.objections.add(d.objections)
        city.repairs.add(d.repairs)
    scenarios, categories = _usage(session, month, start, end)
    return Report(
        month=month,
        targets=goals,
        objection_days=terms.days,
        departments=list(departments.values()),
        city=city,
        scenarios=scenarios,
        categories=categories,
    )


def _objections(
    session: Session,
    departments: dict[int | None, Department],
    start: dt.datetime,
    end: dt.datetime,
    last: dt.date,
    tz: dt.tzinfo,
) -> None:
    rows = session.execute(
        select(Objection.status, Objection.decided_at, Objection.deadline, Record.source_id)
        .join(Record, Record.id == Objection.record_id)
        .where(
            or_(
                and_(
                    Objection.status.in_(OBJECTION_DECIDED),
                    Objection.decided_at >= start,
                    Objection.decided_at < end,
                ),
                # Open at the month's end: filed before it, not decided (or decided after it).
                and_(
                    Objection.created_at < end,
                    or_(Objection.decided_at.is_(None), Objection.decided_at >= end),
                ),
            )
        )
    )
    for status, decided_at, deadline, source_id in rows:
        d = departments.get(source_id)
        if d is None:
            continue
        if decided_at is not None and start <= _aware(decided_at) < end:
            if status in OBJECTION_DECIDED:
                d.objections.decided += 1
                if deadline is None or _city_day(decided_at, tz) <= deadline:
                    d.objections.on_time += 1
        elif deadline is not None and deadline <= last:
            d.objections.overdue_open += 1


def repair_deadline(created_at: dt.datetime, tz: dt.tzinfo, terms: ObjectionTerms) -> dt.date:
    """A repair application has no deadline of its own: the report holds it to the objections'
    term (``CITYCREDIT_OBJECTION_DAYS`` working days on the same calendar) from the day it was made."""
    return terms.calendar.add_working_days(_city_day(created_at, tz), terms.days, provisional=True)


def _repairs(
    session: Session,
    departments: dict[int | None, Department],
    start: dt.datetime,
    end: dt.datetime,
    last: dt.date,
    tz: dt.tzinfo,
    terms: ObjectionTerms,
) -> None:
    rows = session.execute(
        select(
            RepairApplication.status,
            RepairApplication.created_at,
            RepairApplication.decided_at,
            Record.source_id,
        )
        .join(Record, Record.id == RepairApplication.record_id)
        .where(
            or_(
                and_(
                    RepairApplication.status.in_(REPAIR_DECIDED),
                    RepairApplication.decided_at >= start,
                    RepairApplication.decided_at < end,
                ),
                and_(
                    RepairApplication.created_at < end,
                    or_(
                        RepairApplication.decided_at.is_(None),
                        RepairApplication.decided_at >= end,
                    ),
                ),
            )
        )
    )
    for status, created_at, decided_at, source_id in rows:
        d = departments.get(source_id)
        if d is None:
            continue
        deadline = repair_deadline(created_at, tz, terms)
        if decided_at is not None and start <= _aware(decided_at) < end:
            if status in REPAIR_DECIDED:
                d.repairs.decided += 1
                if _city_day(decided_at, tz) <= deadline:
                    d.repairs.on_time += 1
        elif deadline <= last:
            d.repairs.overdue_open += 1


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _usage(
    session: Session, month: dt.date, start: dt.datetime, end: dt.datetime
) -> tuple[list[Usage], list[Usage]]:
    first, last = quality.month_bounds(month)
    checks: dict[int, tuple[int, int]] = {
        sid: (int(n), int(ok or 0))
        for sid, n, ok in session.execute(
            select(
                Verification.scenario_id,
                func.count(),
                func.sum(case((Verification.eligible, 1), else_=0)),
            )
            .where(Verification.at >= start, Verification.at < end)
            .group_by(Verification.scenario_id)
        )
    }
    used: dict[int, int] = {
        sid: int(n)
        for sid, n in session.execute(
            select(Redemption.scenario_id, func.count())
            .where(Redemption.day.between(first, last))
            .group_by(Redemption.scenario_id)
        )
    }
    ids = sorted(set(checks) | set(used))
    if not ids:
        return [], []
    names: dict[int, tuple[str, str]] = {}
    for sid, zh, en in session.execute(
        select(ScenarioVersion.scenario_id, ScenarioVersion.name_zh, ScenarioVersion.name_en)
        .where(ScenarioVersion.scenario_id.in_(ids))
        .order_by(ScenarioVersion.scenario_id, ScenarioVersion.id)
    ):
        names[sid] = (zh, en)  # the latest version's name wins
    scenarios = []
    by_category: dict[str, Usage] = {}
    for sid, code, category in session.execute(
        select(Scenario.id, Scenario.code, Scenario.category)
        .where(Scenario.id.in_(ids))
        .order_by(Scenario.code)
    ):
        n, ok = checks.get(sid, (0, 0))
        zh, en = names.get(sid, (code, code))
        row = Usage(code, zh, en, category, n, ok, used.get(sid, 0))
        scenarios.append(row)
        cat = by_category.get(category)
        if cat is None:
            _, cat_zh, cat_en = CATEGORIES.get(category, ("", category, category))
            cat = by_category[category] = Usage(category, cat_zh, cat_en, category)
        cat.verifications += row.verifications
        cat.eligible += row.eligible
        cat.redemptions += row.redemptions
    categories = [by_category[c] for c in sorted(by_category)]
    return scenarios, categories


# --- the stored copy --------------------------------------------------------------------------------


def _department_dict(d: Department) -> dict[str, Any]:
    q = d.quality
    return {
        "code": d.code,
        "source_id": d.source_id,
        "name_zh": d.name_zh,
        "name_en": d.name_en,
        "volume": dict(d.volume),
        "quality": {
            **{name: getattr(q, name) for name in quality.COUNTS},
            "rejected_by_reason": dict(sorted(q.rejected_by_reason.items())),
        },
        "score": d.score,
        "grade": d.grade,
        "objections": _cases_dict(d.objections),
        "repairs": _cases_dict(d.repairs),
    }


def _cases_dict(c: Cases) -> dict[str, int]:
    return {"decided": c.decided, "on_time": c.on_time, "overdue_open": c.overdue_open}


def _usage_dict(u: Usage) -> dict[str, Any]:
    return {
        "key": u.key,
        "name_zh": u.name_zh,
        "name_en": u.name_en,
        "category": u.category,
        "verifications": u.verifications,
        "eligible": u.eligible,
        "redemptions": u.redemptions,
    }


def to_dict(report: Report) -> dict[str, Any]:
    """The figures as JSON-able data: what is stored, hashed and compared."""
    return {
        "format": FORMAT_VERSION,
        "month": report.month.strftime("%Y-%m"),
        "targets": dict(sorted(report.targets.items())),
        "objection_days": report.objection_days,
        "city": _department_dict(report.city),
        "departments": [_department_dict(d) for d in report.departments],
        "scenarios": [_usage_dict(u) for u in report.scenarios],
        "categories": [_usage_dict(u) for u in report.categories],
    }


def _department_of(data: dict[str, Any], goals: dict[str, float]) -> Department:
    q = data["quality"]
    figures = quality.Figures(
        data["source_id"],
        data["code"],
        data["name_zh"],
        data["name_en"],
        **{name: int(q[name]) for name in quality.COUNTS},
        rejected_by_reason={k: int(v) for k, v in q["rejected_by_reason"].items()},
        targets=dict(goals),
    )
    volume = dict.fromkeys(KIND_ORDER, 0)
    volume.update({k: int(v) for k, v in data["volume"].items()})
    return Department(
        data["source_id"],
        data["code"],
        data["name_zh"],
        data["name_en"],
        volume,
        figures,
        Cases(**{k: int(v) for k, v in data["objections"].items()}),
        Cases(**{k: int(v) for k, v in data["repairs"].items()}),
    )


def from_dict(data: dict[str, Any]) -> Report:
    goals = {k: float(v) for k, v in data["targets"].items()}
    return Report(
        month=parse_month(data["month"]),
        targets=goals,
        objection_days=int(data["objection_days"]),
        departments=[_department_of(d, goals) for d in data["departments"]],
        city=_department_of(data["city"], goals),
        scenarios=[Usage(**u) for u in data["scenarios"]],
        categories=[Usage(**u) for u in data["categories"]],
    )


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(data).encode("utf-8")).hexdigest()


def stored(session: Session, month: dt.date) -> MonthlyReport | None:
    return session.scalar(select(MonthlyReport).where(MonthlyReport.month == month.replace(day=1)))


def stored_months(session: Session) -> list[MonthlyReport]:
    return list(session.scalars(select(MonthlyReport).order_by(MonthlyReport.month.desc())))


def _require_generator(actor: Actor) -> None:
    if actor.read_only or actor.partner or actor.source_clerk:
        raise NotPermitted("reports are generated by the platform")


def generate(
    session: Session,
    month: dt.date,
    *,
    tz: dt.tzinfo,
    terms: ObjectionTerms | None = None,
    actor: Actor,
    today: dt.date,
    now: dt.datetime | None = None,
) -> MonthlyReport:
    """Compute the month's figures and store them (one stored copy per month: generating again
    replaces it, the audit log keeping both hashes). Only a month that has ended."""
    _require_generator(actor)
    month = month.replace(day=1)
    if add_months(month, 1) > today:
        raise ValueError(f"{month:%Y-%m} has not ended yet (today is {today})")
    data = to_dict(build(session, month, tz=tz, terms=terms))
    sha = digest(data)
    row = stored(session, month)
    before = row.sha256 if row is not None else None
    if row is None:
        row = MonthlyReport(month=month)
        session.add(row)
    row.generated_at = now or utcnow()
    row.generated_by = actor.name[:200]
    row.figures = data
    row.sha256 = sha
    session.flush()
    audit(
        session,
        actor=actor.name,
        action="report.generate",
        month=f"{month:%Y-%m}",
        sha256=sha,
        replaced=before,
    )
    return row


def ensure(
    session: Session,
    month: dt.date,
    *,
    tz: dt.tzinfo,
    terms: ObjectionTerms | None = None,
    actor: Actor,
    today: dt.date,
    now: dt.datetime | None = None,
) -> MonthlyReport | None:
    """The scheduler's step: generate the month's report unless it is stored already (None then)."""
    if stored(session, month) is not None:
        return None
    return generate(session, month, tz=tz, terms=terms, actor=actor, today=today, now=now)


def generate_due(
    session: Session, settings: Settings, *, today: dt.date, now: dt.datetime | None = None
) -> MonthlyReport | None:
    """The previous month's report, if not generated yet (the job on the 1st)."""
    return ensure(
        session,
        previous_month(today),
        tz=settings.tz,
        terms=ObjectionTerms.from_settings(settings),
        actor=Actor("scheduler"),
        today=today,
        now=now,
    )


@dataclass(frozen=True)
class Change:
    path: str
    stored: Any
    fresh: Any


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            key = v.get("code") or v.get("key") if isinstance(v, dict) else None
            _flatten(v, f"{path}[{key if key else i}]", out)
    else:
        out[path] = value


def differences(stored_data: dict[str, Any], fresh_data: dict[str, Any]) -> list[Change]:
    """What differs between two figure sets, path by path (``departments[court].volume.penalty``)."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(stored_data, "", a)
    _flatten(fresh_data, "", b)
    changes = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            changes.append(Change(path, a.get(path), b.get(path)))
    return changes


@dataclass(frozen=True)
class Check:
    same: bool
    changes: list[Change]
    fresh_sha256: str


def check(
    session: Session,
    row: MonthlyReport,
    *,
    tz: dt.tzinfo,
    terms: ObjectionTerms | None = None,
    department: str | None = None,
) -> Check:
    """Whether the stored figures still equal a fresh computation; ``department`` limits the
    comparison to that department's figures (a clerk's view)."""
    fresh = to_dict(build(session, row.month, tz=tz, terms=terms))
    old = row.figures
    if department is not None:
        old = _only(old, department)
        fresh = _only(fresh, department)
    changes = differences(old, fresh)
    return Check(not changes, changes, digest(fresh))


def _only(data: dict[str, Any], code: str) -> dict[str, Any]:
    return {
        "departments": [d for d in data.get("departments", []) if d.get("code") == code],
    }


# --- the sections every rendering shares -----------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    kind: str = "int"  # text | int | rate | score

    def title(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True)
class Table:
    key: str
    zh: str
    en: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    note_zh: str = ""
    note_en: str = ""

    def title(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def note(self, lang: str) -> str:
        return self.note_en if lang == "en" else self.note_zh


def _name(d: Department, lang: str) -> str:
    return d.name_en if lang == "en" else d.name_zh


def tables(report: Report, *, lang: str = "zh", department: str | None = None) -> list[Table]:
    """The report's sections in order. ``department``: that department's report (its own rows only,
    no application cases); None: the city's (every department, then the city's total)."""
    if department is not None:
        d = report.department(department)
        if d is None:
            raise LookupError(f"no department {department!r} in the report")
        rows = [d]
    else:
        rows = [*report.departments, report.city]
    unit = Column("department", "单位", "Department", "text")
    out = [
        Table(
            "volume",
            "信息归集量（按类别）",
            "Collection volume by kind",
            (
                unit,
                *(Column(k, *KIND_NAMES[k]) for k in KIND_ORDER),
                Column("total", "合计", "Total"),
            ),
            tuple(
                (_name(d, lang), *(d.volume[k] for k in KIND_ORDER), d.volume_total) for d in rows
            ),
            "本月首次接收的记录，按其入库时所依目录条目的类别统计。",
            "Records first received in the month, by the kind of the catalogue entry they were accepted under.",
        ),
        Table(
            "quality",
            "数据质量与及时性",
            "Quality and timeliness",
            (
                unit,
                Column("received", "接收条数", "Rows received"),
                Column("accepted", "入库条数", "Accepted"),
                Column("qualified_rate", "数据合格率", "Qualified rate", "rate"),
                Column("timed", "应计时新记录", "New records timed"),
                Column("on_time", "按时报送", "On time"),
                Column("on_time_rate", "报送及时率", "On-time rate", "rate"),
                Column("id_number_errors", "身份证号码错误", "ID-number errors"),
                Column("id_error_rate", "身份证号码错误率", "ID-number error rate", "rate4"),
                Column("corrections", "更正", "Corrections"),
                Column("duplicates", "重复", "Duplicates"),
                Column("rejected", "退回条数", "Rejected"),
                Column("open_rejections", "未整改退回", "Rejections still open"),
            ),
            tuple(
                (
                    _name(d, lang),
                    d.quality.received,
                    d.quality.accepted,
                    d.quality.qualified_rate,
                    d.quality.timed,
                    d.quality.on_time,
                    d.quality.on_time_rate,
                    d.quality.id_number_errors,
                    d.quality.id_error_rate,
                    d.quality.corrections,
                    d.quality.duplicates,
                    d.quality.rejected,
                    d.quality.open_rejections,
                )
                for d in rows
            ),
        ),
        Table(
            "rejections",
            "退回原因",
            "Rejected by reason",
            (unit, *(Column(k, *REASONS[k]) for k in REASONS)),
            tuple(
                (_name(d, lang), *(d.quality.rejected_by_reason.get(k, 0) for k in REASONS))
                for d in rows
            ),
        ),
        Table(
            "cases",
            "异议与信用修复办理",
            "Objections and repairs",
            (
                unit,
                Column("objections_decided", "异议办结", "Objections decided"),
                Column("objections_on_time", "按期办结", "Decided on time"),
                Column("objections_late", "超期办结", "Decided late"),
                Column("objections_rate", "异议按期率", "Objections on time", "rate"),
                Column("objections_overdue", "超期未结", "Overdue, still open"),
                Column("repairs_decided", "修复办结", "Repairs decided"),
                Column("repairs_on_time", "按期办结", "Decided on time"),
                Column("repairs_late", "超期办结", "Decided late"),
                Column("repairs_rate", "修复按期率", "Repairs on time", "rate"),
                Column("repairs_overdue", "超期未结", "Overdue, still open"),
            ),
            tuple(
                (
                    _name(d, lang),
                    d.objections.decided,
                    d.objections.on_time,
                    d.objections.late,
                    d.objections.on_time_rate,
                    d.objections.overdue_open,
                    d.repairs.decided,
                    d.repairs.on_time,
                    d.repairs.late,
                    d.repairs.on_time_rate,
                    d.repairs.overdue_open,
                )
                for d in rows
            ),
            f"期限：受理后 {report.objection_days} 个工作日（法定节假日日历）；超期未结为月末仍未办结且已过期限的件数。",
            f"Deadline: {report.objection_days} working days from filing (official calendar); overdue "
            "and still open: undecided at the month's end with the deadline passed.",
        ),
    ]
    if department is None:
        out += [
            Table(
                "scenarios",
                "应用案例（按场景）",
                "Application cases by scenario",
                (
                    Column("scenario", "场景编码", "Scenario", "text"),
                    Column("name", "场景名称", "Name", "text"),
                    Column("category", "类别", "Category", "text"),
                    Column("verifications", "核验次数", "Verifications"),
                    Column("eligible", "符合条件", "Eligible"),
                    Column("redemptions", "兑现次数", "Redemptions"),
                ),
                tuple(
                    (
                        u.key,
                        u.name_en if lang == "en" else u.name_zh,
                        _category(u.category, lang),
                        u.verifications,
                        u.eligible,
                        u.redemptions,
                    )
                    for u in report.scenarios
                ),
            ),
            Table(
                "categories",
                "应用案例（按类别）",
                "Application cases by category",
                (
                    Column("category", "类别", "Category", "text"),
                    Column("verifications", "核验次数", "Verifications"),
                    Column("eligible", "符合条件", "Eligible"),
                    Column("redemptions", "兑现次数", "Redemptions"),
                ),
                tuple(
                    (_category(u.key, lang), u.verifications, u.eligible, u.redemptions)
                    for u in report.categories
                ),
            ),
        ]
    out.append(
        Table(
            "grades",
            "数据质量评级",
            "Data-quality grade",
            (
                unit,
                Column("score", "得分", "Score", "score"),
                Column("grade", "等级", "Grade", "text"),
            ),
            tuple((_name(d, lang), d.score, d.grade or "—") for d in rows),
            "得分 = 50 × 合格率 + 50 × 及时率，身份证号码错误率超过目标扣 10 分；A ≥ 90，B 80–90，C < 80。",
            "Score = 50 × qualified rate + 50 × on-time rate, less 10 when the ID-number error rate is "
            "above target; A ≥ 90, B 80–90, C < 80.",
        )
    )
    return out


def _category(code: str, lang: str) -> str:
    names = CATEGORIES.get(code)
    if names is None:
        return code
    return names[2] if lang == "en" else names[1]


def title(report: Report, *, lang: str = "zh", department: str | None = None) -> str:
    d = report.department(department) if department else None
    if lang == "en":
        who = d.name_en if d else "City"
        return f"Monthly report {report.month:%Y-%m}: {who}"
    who = d.name_zh if d else "全市"
    return f"{report.month.year} 年 {report.month.month} 月信用信息归集与应用情况通报（{who}）"


# --- CSV and XLSX ------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """A cell a spreadsheet would read as a formula is written as text (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def format_rate(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{4 if kind == 'rate4' else 2}f}%"


def format_cell(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind in ("rate", "rate4"):
        return format_rate(value, kind)
    if kind == "score":
        return f"{value:.2f}"
    return str(value)


def to_csv(
    report: Report,
    *,
    lang: str = "zh",
    department: str | None = None,
    generated: str = "",
) -> bytes:
    """One report as CSV: UTF-8 with BOM (Excel), each section under a 【title】 line, a blank line
    between sections; rates as percentages ("95.24%", which Excel reads as a number)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_text(title(report, lang=lang, department=department))])
    if generated:
        writer.writerow([safe_text(generated)])
    for table in tables(report, lang=lang, department=department):
        writer.writerow([])
        writer.writerow([f"【{table.title(lang)}】"])
        writer.writerow([safe_text(c.title(lang)) for c in table.columns])
        for row in table.rows:
            writer.writerow(
                [
                    safe_text(format_cell(v, c.kind))
                    if isinstance(v, str) or c.kind != "int"
                    else v
                    for v, c in zip(row, table.columns, strict=True)
                ]
            )
        note = table.note(lang)
        if note:
            writer.writerow([safe_text(note)])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def to_xlsx(
    report: Report,
    *,
    lang: str = "zh",
    department: str | None = None,
    generated: str = "",
) -> bytes:
    """One report as an XLSX workbook: a sheet per section, the header row bold, counts as numbers
    and rates as numbers formatted as percentages."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    bold = Font(bold=True)
    book = Workbook()
    info = book.active
    assert info is not None
    info.title = "概要" if lang != "en" else "Report"
    info.append([safe_text(title(report, lang=lang, department=department))])
    info["A1"].font = bold
    if generated:
        info.append([safe_text(generated)])
    for table in tables(report, lang=lang, department=department):
        sheet = book.create_sheet(_sheet_name(table.title(lang)))
        sheet.append([safe_text(c.title(lang)) for c in table.columns])
        for cell in sheet[1]:
            cell.font = bold
        for row in table.rows:
            values = [safe_text(v) if isinstance(v, str) else v for v in row]
            sheet.append(values)
            for cell, c in zip(sheet[sheet.max_row], table.columns, strict=True):
                if c.kind == "rate" and cell.value is not None:
                    cell.number_format = "0.00%"
                elif c.kind == "rate4" and cell.value is not None:
                    cell.number_format = "0.0000%"
                elif c.kind == "score" and cell.value is not None:
                    cell.number_format = "0.00"
        note = table.note(lang)
        if note:
            sheet.append([])
            sheet.append([safe_text(note)])
        for i, c in enumerate(table.columns):
            sheet.column_dimensions[_letter(i)].width = max(10, min(40, len(c.title(lang)) * 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_name(text: str) -> str:
    cleaned = "".join(ch for ch in text if ch not in "[]:*?/\\")
    return cleaned[:31]


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def file_name(report: Report, *, department: str | None = None, ext: str) -> str:
    who = department or "city"
    return f"report-{report.month:%Y-%m}-{who}.{ext}"


def source_codes(report: Report) -> Iterable[str]:
    return [d.code for d in report.departments]
