"""Admin pages for scenarios: list with search and filters, create, edit, submit, review, publish,
suspend, resume, retire, and CSV import/export.

An operator account works through an :class:`~scenarios.operations.Actor` limited to its operator,
so the registry itself refuses another operator's scenario (it reads as unknown: a 404 here).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select

from citycredit.core import actors
from citycredit.web.admin import messages
from citycredit.web.admin.messages import FIELD_LABELS
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    admin_audit,
    bp,
    can,
    current_user,
    operator_scope,
    require_permission,
    t,
    today,
)
from citycredit.web.context import db_session
from credit_codes.models import Redemption, Verification
from points_engine.operations import NoPublishedModel, published_model
from points_engine.tiers import TIER_RELATION, common_level_words, condition_words
from scenarios import csvio
from scenarios import operations as registry
from scenarios.eligibility import COMMON_LEVELS, RuleError, lowest_visitor_level, parse_rule
from scenarios.models import (
    CATEGORIES,
    PENDING_STATES,
    SCENARIO_STATUSES,
    Operator,
    Scenario,
    ScenarioVersion,
    Venue,
)

NAV.insert(1, NavItem("admin.scenarios", "场景管理", "Scenarios", PERMISSIONS["scenarios.view"]))

PAGE_SIZE = 50
STATUS_NAMES = {
    "draft": ("草稿", "draft"),
    "in_review": ("待审核", "in review"),
    "published": ("已发布", "published"),
    "suspended": ("已暂停", "suspended"),
    "retired": ("已下线", "retired"),
    "superseded": ("已被替代", "superseded"),
    "withdrawn": ("已撤回", "withdrawn"),
}


def status_name(status: str) -> str:
    zh, en = STATUS_NAMES.get(status, (status, status))
    return t(zh, en)


def category_name(code: str) -> str:
    brand, zh, en = CATEGORIES.get(code, ("", code, code))
    return t(f"{brand}·{zh}" if brand else zh, en)


def operator_labels(operators: list[Operator]) -> dict[int, str]:
    """Each operator's name as a choice shows it: two operators of one name (two registrations of
    one body, say) would read as one operator listed twice, so those carry their code as well."""
    names = {o.id: t(o.name_zh, o.name_en) for o in operators}
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    return {
        o.id: f"{names[o.id]} ({o.code})" if names[o.id] in shared else names[o.id]
        for o in operators
    }


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "status_name": status_name,
        "category_name": category_name,
        "operator_labels": operator_labels,
        "tier_relation": TIER_RELATION,
        "field_label": field_label,
        "message": message,
    }


VISITORS_LABEL = ("向合作城市来访者开放", "Open to visitors from partner cities")
# This page's own fields and messages, beside the registry's shared ones (``messages``).
MORE_LABELS = {"open_to_visitors": VISITORS_LABEL}
MORE_ZH = {"must be true or false": "须为 true 或 false"}


def field_label(name: str) -> str:
    zh, en = FIELD_LABELS.get(name) or MORE_LABELS.get(name) or (name, name)
    return t(zh, en)


def message(text: str) -> str:
    """A registry message in the page's language."""
    return t(MORE_ZH.get(text) or messages.zh(text), text)


bp.add_app_template_filter(message, "message")


def actor() -> actors.Actor:
    user = current_user()
    assert user is not None
    return actors.Actor(
        f"admin:{user.username}",
        operator_id=operator_scope(),
        can_publish=can("scenarios.review"),
        read_only=not can("scenarios.manage"),
    )


def _done() -> None:
    """The registry audited this action under the user's name; the blueprint's safety net need not."""
    g.admin_audited = True


def _visible_operators() -> list[Operator]:
    query = select(Operator).order_by(Operator.code)
    scope = operator_scope()
    if scope is not None:
        query = query.where(Operator.id == scope)
    return list(db_session().scalars(query))


def _scenario_or_404(code: str) -> Scenario:
    try:
        return registry.find_scenario(db_session(), code, actor())
    except registry.UnknownScenario:
        abort(404)


# --- list -------------------------------------------------------------------------------------------


@bp.get("/scenarios")
@require_permission("scenarios.view")
def scenarios() -> Any:
    session = db_session()
    args = request.args
    q = args.get("q", "").strip()
    status = args.get("status", "")
    category = args.get("category", "")
    operator = args.get("operator", "")
    pending = args.get("pending", "")
    # Clamped: a huge page number would overflow the OFFSET.
    page = min(max(1, args.get("page", 1, type=int) or 1), 10_000)

    shown = (
        select(ScenarioVersion.scenario_id, func.max(ScenarioVersion.number).label("number"))
        .where(ScenarioVersion.state.in_(("published", *PENDING_STATES)))
        .group_by(ScenarioVersion.scenario_id)
        .subquery()
    )
    query = (
        select(Scenario, ScenarioVersion, Operator)
        .join(Operator, Operator.id == Scenario.operator_id)
        .outerjoin(shown, shown.c.scenario_id == Scenario.id)
        .outerjoin(
            ScenarioVersion,
            (ScenarioVersion.scenario_id == Scenario.id)
            & (ScenarioVersion.number == shown.c.number),
        )
    )
    query = query.where(registry.visible_scenarios(actor()))
    if q:
        like = f"%{q}%"
        query = query.where(
            or_(
                Scenario.code.ilike(like),
                ScenarioVersion.name_zh.ilike(like),
                ScenarioVersion.name_en.ilike(like),
            )
        )
    if status in SCENARIO_STATUSES:
        query = query.where(Scenario.status == status)
    if category in CATEGORIES:
        query = query.where(Scenario.category == category)
    if operator:
        query = query.where(Operator.code == operator)
    if pending == "review":
        query = query.where(ScenarioVersion.state == "in_review")
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Scenario.updated_at.desc(), Scenario.code)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    return render_template(
        "admin/scenarios/list.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        filters={
            "q": q,
            "status": status,
            "category": category,
            "operator": operator,
            "pending": pending,
        },
        statuses=SCENARIO_STATUSES,
        categories=CATEGORIES,
        operators=_visible_operators(),
    )


# --- create and edit --------------------------------------------------------------------------------


def rule_from_form(form: Any) -> Any:
    """The eligibility rule from the form: the advanced JSON if given, else the simple fields."""
    advanced = form.get("eligibility_json", "").strip()
    if advanced:
        return advanced
    conditions: list[dict[str, Any]] = []

    def number(raw: str) -> Any:
        # Not a plain number: passed on as typed, for the registry to report on ``eligibility``.
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else raw

    tier = form.get("min_common_tier", "").strip()
    if tier:
        conditions.append({"min_common_tier": number(tier)})
    score = form.get("min_local_score", "").strip()
    if score:
        conditions.append({"min_local_score": number(score)})
    if form.get("adults_only"):
        conditions.append({"min_age": 18})
    if form.get("residents_only"):
        conditions.append({"resident": True})
    if form.get("no_direct_tier_record"):
        conditions.append({"no_direct_tier_record": True})
    if not conditions:
        return ""
    return conditions[0] if len(conditions) == 1 else {"all": conditions}


def simple_fields(rule: Any) -> dict[str, Any] | None:
    """The simple form's fields for a rule, or None when only the JSON editor can show it."""
    try:
        parsed = parse_rule(rule).to_data()
    except RuleError:
        return None
    parts = parsed.get("all", [parsed])
    out: dict[str, Any] = {}
    for part in parts:
        ((kind, value),) = part.items()
        if kind == "min_common_tier" and "min_common_tier" not in out:
            out["min_common_tier"] = str(value)
        elif kind == "min_local_score" and "min_local_score" not in out:
            out["min_local_score"] = str(value)
        elif kind == "min_age" and value == 18:
            out["adults_only"] = True
        elif kind == "resident":
            out["residents_only"] = True
        elif kind == "no_direct_tier_record":
            out["no_direct_tier_record"] = True
        else:
            return None
    return out


def _content_from_form(form: Any) -> dict[str, Any]:
    return {
        "name_zh": form.get("name_zh", ""),
        "name_en": form.get("name_en", ""),
        "benefit_zh": form.get("benefit_zh", ""),
        "benefit_en": form.get("benefit_en", ""),
        "eligibility": rule_from_form(form),
        "quota_per_day": form.get("quota_per_day", ""),
        "quota_per_month": form.get("quota_per_month", ""),
        "quota_total": form.get("quota_total", ""),
        "valid_from": form.get("valid_from", ""),
        "valid_until": form.get("valid_until", ""),
        # An unticked box is not sent at all: absent here means no.
        "open_to_visitors": bool(form.get("open_to_visitors")),
    }


def _form_of(scenario: Scenario | None, version: ScenarioVersion | None) -> dict[str, Any]:
    if version is None:
        return {"min_common_tier": "3", "quota_per_day": "1"}
    form: dict[str, Any] = {
        "name_zh": version.name_zh,
        "name_en": version.name_en,
        "benefit_zh": version.benefit_zh,
        "benefit_en": version.benefit_en,
        "quota_per_day": version.quota_per_day or "",
        "quota_per_month": version.quota_per_month or "",
        "quota_total": version.quota_total or "",
        "valid_from": version.valid_from.isoformat() if version.valid_from else "",
        "valid_until": version.valid_until.isoformat() if version.valid_until else "",
        "open_to_visitors": version.open_to_visitors,
    }
    simple = simple_fields(version.eligibility)
    if simple is None:
        form["eligibility_json"] = json.dumps(version.eligibility, ensure_ascii=False, indent=1)
    else:
        form.update(simple)
    if scenario is not None:
        form["code"] = scenario.code
        form["category"] = scenario.category
    return form


def _render_form(
    *,
    scenario: Scenario | None,
    form: dict[str, Any],
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Any:
    session = db_session()
    operators = _visible_operators()
    if scenario is not None:
        venue_query = select(Venue).where(Venue.operator_id == scenario.operator_id)
        chosen = {v.code for v in registry.venues_of(session, scenario.id)}
    else:
        ids = [o.id for o in operators]
        venue_query = select(Venue).where(Venue.operator_id.in_(ids))
        chosen = set(request.form.getlist("venues")) if request.method == "POST" else set()
    if request.method == "POST":
        chosen = set(request.form.getlist("venues"))
    venues = list(session.scalars(venue_query.where(Venue.status == "active").order_by(Venue.code)))
    try:
        local_tiers = published_model(session)[1].tiers
    except NoPublishedModel:
        local_tiers = ()
    # Each choice in the tier words every surface uses, with the city tiers it covers today.
    level_choices = [
        (
            level,
            t(condition_words(level, local_tiers, "zh"), condition_words(level, local_tiers, "en")),
        )
        for level in sorted(COMMON_LEVELS, reverse=True)
    ]
    return (
        render_template(
            "admin/scenarios/form.html",
            scenario=scenario,
            form=form,
            errors=errors or {},
            operators=operators,
            categories=CATEGORIES,
            level_choices=level_choices,
            venues=venues,
            chosen=chosen,
        ),
        status,
    )


@bp.get("/scenarios/new")
@require_permission("scenarios.manage")
def new_scenario() -> Any:
    return _render_form(scenario=None, form=_form_of(None, None))


@bp.post("/scenarios")
@require_permission("scenarios.manage")
def create_scenario() -> Any:
    session = db_session()
    form = request.form
    operator_code = form.get("operator", "")
    operator = next((o for o in _visible_operators() if o.code == operator_code), None)
    if operator is None:
        return _render_form(
            scenario=None,
            form=dict(form),
            errors={"operator": [t("请选择运营方", "choose an operator")]},
            status=422,
        )
    try:
        scenario = registry.create_scenario(
            session,
            actor(),
            code=form.get("code", "").strip(),
            operator=operator,
            category=form.get("category", ""),
            content=_content_from_form(form),
            venue_codes=form.getlist("venues"),
        )
    except registry.InvalidScenario as exc:
        return _render_form(scenario=None, form=dict(form), errors=exc.errors, status=422)
    _done()
    flash(t(f"已创建草稿 {scenario.code}", f"Draft {scenario.code} created"), "success")
    return redirect(url_for("admin.scenario_detail", code=scenario.code))


@bp.get("/scenarios/<code>/edit")
@require_permission("scenarios.manage")
def edit_scenario(code: str) -> Any:
    session = db_session()
    scenario = _scenario_or_404(code)
    version = registry.pending_version(session, scenario.id) or registry.live_version(
        session, scenario.id
    )
    return _render_form(scenario=scenario, form=_form_of(scenario, version))


@bp.post("/scenarios/<code>/edit")
@require_permission("scenarios.manage")
def save_scenario(code: str) -> Any:
    session = db_session()
    scenario = _scenario_or_404(code)
    form = request.form
    try:
        with session.begin_nested():
            version = registry.edit_scenario(session, actor(), scenario, _content_from_form(form))
            registry.set_venues(session, actor(), scenario, form.getlist("venues"))
    except registry.InvalidScenario as exc:
        return _render_form(scenario=scenario, form=dict(form), errors=exc.errors, status=422)
    except registry.RegistryError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.scenario_detail", code=code))
    _done()
    flash(
        t(f"已保存为第 {version.number} 版草稿", f"Saved as draft version {version.number}"),
        "success",
    )
    return redirect(url_for("admin.scenario_detail", code=code))


# --- detail and workflow ----------------------------------------------------------------------------

DIFF_FIELDS = (
    ("name_zh", "名称（中文）", "Name (Chinese)"),
    ("name_en", "名称（英文）", "Name (English)"),
    ("benefit_zh", "权益（中文）", "Benefit (Chinese)"),
    ("benefit_en", "权益（英文）", "Benefit (English)"),
    ("eligibility", "准入条件", "Eligibility"),
    ("quota_per_day", "每人每日限次", "Per citizen per day"),
    ("quota_per_month", "每人每月限次", "Per citizen per month"),
    ("quota_total", "总量", "In total"),
    ("valid_from", "生效日期", "Valid from"),
    ("valid_until", "截止日期", "Valid until"),
    ("open_to_visitors", *VISITORS_LABEL),
)


def describe(version: ScenarioVersion) -> dict[str, str]:
    rule = registry.rule_of(version)
    return {"zh": rule.describe("zh"), "en": rule.describe("en")}


def visitors(version: ScenarioVersion) -> str:
    """Whether the version serves visitors from partner cities, and from which common level."""
    if not version.open_to_visitors:
        return t("否，仅限本市持码人", "No: for this city's own codes only")
    level = lowest_visitor_level(registry.rule_of(version))
    if level is None:
        return t(
            "已开放，但准入条件要求本市居民、年龄、本市分数或本市记录，来访者无法满足",
            "Open, but the rule asks for residence, age, the local score or local records, "
            "which no visitor can meet",
        )
    return t(
        f"是：{common_level_words(level, 'zh', or_above=True)}的来访者",
        f"Yes: visitors of {common_level_words(level, 'en', or_above=True)}",
    )


@bp.get("/scenarios/<code>")
@require_permission("scenarios.view")
def scenario_detail(code: str) -> Any:
    session = db_session()
    scenario = _scenario_or_404(code)
    live = registry.live_version(session, scenario.id)
    pending = registry.pending_version(session, scenario.id)
    changed = (
        {name for name, _, _ in DIFF_FIELDS if getattr(live, name) != getattr(pending, name)}
        if live is not None and pending is not None
        else set()
    )
    since = today() - dt.timedelta(days=29)
    usage = {
        "verifications": session.scalar(
            select(func.count())
            .select_from(Verification)
            .where(Verification.scenario_id == scenario.id)
        )
        or 0,
        "redemptions_30d": session.scalar(
            select(func.count())
            .select_from(Redemption)
            .where(Redemption.scenario_id == scenario.id, Redemption.day >= since)
        )
        or 0,
    }
    operator = session.get(Operator, scenario.operator_id)
    me = current_user()
    return render_template(
        "admin/scenarios/detail.html",
        scenario=scenario,
        operator=operator,
        live=live,
        pending=pending,
        changed=changed,
        diff_fields=DIFF_FIELDS,
        versions=registry.versions_of(session, scenario.id),
        venues=registry.venues_of(session, scenario.id),
        usage=usage,
        describe=describe,
        visitors=visitors,
        may_manage=actor().may_manage(scenario.operator_id),
        may_review=can("scenarios.review"),
        own_submission=pending is not None
        and me is not None
        and pending.submitted_by == f"admin:{me.username}",
    )


STEPS = {
    "submit": ("已提交审核", "Submitted for review"),
    "publish": ("已发布", "Published"),
    "reject": ("已退回修改", "Sent back for changes"),
    "suspend": ("已暂停", "Suspended"),
    "resume": ("已恢复", "Resumed"),
    "retire": ("已下线", "Retired"),
}


@bp.post("/scenarios/<code>/<step>")
@require_permission("scenarios.view")
def scenario_step(code: str, step: str) -> Any:
    if step not in STEPS:
        abort(404)
    if step in ("publish", "reject") and not can("scenarios.review"):
        abort(403)
    if step not in ("publish", "reject") and not can("scenarios.manage"):
        abort(403)
    session = db_session()
    scenario = _scenario_or_404(code)
    text = request.form.get("note", "").strip()
    who = actor()
    try:
        if step == "submit":
            registry.submit(session, who, scenario)
        elif step == "publish":
            registry.publish(session, who, scenario, text)
        elif step == "reject":
            registry.reject(session, who, scenario, text)
        else:
            getattr(registry, step)(session, who, scenario, text)
    except registry.NotPermitted as exc:
        if "four eyes" in str(exc):
            flash(
                t(
                    "四眼原则：提交人不能发布自己提交的版本，请由另一位管理员审核。",
                    "Four eyes: a version is published by someone other than its submitter.",
                ),
                "error",
            )
            return redirect(url_for("admin.scenario_detail", code=code))
        abort(403)
    except registry.InvalidScenario:
        flash(t("退回时请写明需要修改的内容。", "Say what needs to change."), "error")
        return redirect(url_for("admin.scenario_detail", code=code))
    except registry.RegistryError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.scenario_detail", code=code))
    _done()
    zh, en = STEPS[step]
    flash(t(f"{code}：{zh}", f"{code}: {en}"), "success")
    return redirect(url_for("admin.scenario_detail", code=code))


# --- CSV --------------------------------------------------------------------------------------------


@bp.get("/scenarios/export.csv")
@require_permission("scenarios.view")
def export_scenarios() -> Any:
    out = io.StringIO()
    count = csvio.write_csv(db_session(), actor(), out)
    admin_audit("scenario.export", count=count)
    return Response(
        "\ufeff" + out.getvalue(),  # Excel opens UTF-8 CSV correctly only with a BOM
        mimetype="text/csv",
        headers={
            "Content-Disposition": f"attachment; filename=scenarios-{today().isoformat()}.csv"
        },
    )


@bp.get("/scenarios/import")
@require_permission("scenarios.manage")
def import_form() -> Any:
    return render_template("admin/scenarios/import.html", report=None, columns=csvio.COLUMNS)


@bp.post("/scenarios/import")
@require_permission("scenarios.manage")
def import_scenarios() -> Any:
    session = db_session()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(t("请选择一个 CSV 文件。", "Choose a CSV file."), "error")
        return redirect(url_for("admin.import_form"))
    try:
        report = csvio.import_csv(
            session,
            actor(),
            upload.read(),
            submit_for_review=bool(request.form.get("submit_for_review")),
        )
    except csvio.CsvFileError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.import_form"))
    admin_audit(
        "scenario.import",
        file=upload.filename[:200],
        created=len(report.created),
        updated=len(report.updated),
        unchanged=len(report.unchanged),
        rejected=report.rejected_rows,
    )
    return (
        render_template("admin/scenarios/import.html", report=report, columns=csvio.COLUMNS),
        422 if report.errors else 200,
    )
