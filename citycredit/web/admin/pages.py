"""The admin's pages: dashboard, audit log, data sources and ingestion batches, scoring models."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from admin import queries
from citycredit.core import audit_chain
from citycredit.web.admin import charts
from citycredit.web.admin.web import (
    admin_audit,
    bp,
    can,
    current_user,
    operator_scope,
    require_permission,
    source_scope,
    t,
    today,
)
from citycredit.web.context import db_session, platform_of
from points_engine import operations
from points_engine import queries as engine_queries
from points_engine.models import IngestBatch, ScoringModelVersion
from points_engine.scoring_model import ScoringModel
from points_engine.tiers import COMMON_TIERS, common_level_name, common_level_words, tier_pair
from scenarios.models import CATEGORIES

DASHBOARD_DAYS = 30
AUDIT_FILTERS = ("actor", "action", "from", "to", "citizen")
# The chain page checks at least the last this many sealed events, from the signed checkpoint before
# them (~10 s on PostgreSQL, bench/audit_seal.py); `citycredit audit verify` checks the whole log.
AUDIT_CHAIN_WINDOW = 100_000


# --- dashboard ------------------------------------------------------------------------------------


@bp.get("/")
@require_permission("dashboard.view")
def dashboard() -> Any:
    session = db_session()
    tz = platform_of(current_app).settings.tz
    last = today()
    first = last - dt.timedelta(days=DASHBOARD_DAYS - 1)
    # An operator sees its own scenarios' usage only; the tier distribution and the citizen counts
    # are city-wide aggregates. Usage per scenario is shown only to roles that need it.
    scope = operator_scope()
    usage = can("dashboard.scenario_usage")
    figures = queries.headline(session, today=last, tz=tz, operator_id=scope)
    try:
        tiers = engine_queries.tier_distribution(session)
    except operations.NoPublishedModel:
        tiers = []
    days = [first + dt.timedelta(days=i) for i in range(DASHBOARD_DAYS)]
    per_day = queries.redemptions_by_day_and_category(
        session, first=first, last=last, operator_id=scope
    )
    top = queries.top_scenarios(session, first=first, last=last, operator_id=scope) if usage else []
    present = [code for code in CATEGORIES if any(per_day.get((d, code)) for d in days)]
    series = [
        charts.Series(
            t(CATEGORIES[code][1], CATEGORIES[code][2]),
            charts.PALETTE[list(CATEGORIES).index(code) % len(charts.PALETTE)],
            [per_day.get((d, code), 0) for d in days],
        )
        for code in present
    ]
    none_yet = t("暂无数据", "No data yet")
    tier_chart = charts.bar_chart(
        [charts.Bar(tc.tier_code, tc.citizens, f"{tier_words(tc)}: {tc.citizens}") for tc in tiers],
        title=t("当前等级分布（本市等级）", "Current distribution by city tier"),
        desc=t(
            "已授权评分市民按当前本市等级的人数；每个本市等级对应一个通用等级。",
            "Consenting citizens by their current city tier; each city tier maps to a common level.",
        ),
        y_label=t("人数", "Citizens"),
        empty=t("尚未发布评分模型", "No scoring model published yet"),
    )
    redemption_chart = charts.stacked_bar_chart(
        [d.strftime("%m-%d") for d in days],
        series,
        title=t(
            f"近 {DASHBOARD_DAYS} 天每日核销（按场景类别）",
            f"Redemptions per day by scenario category, last {DASHBOARD_DAYS} days",
        ),
        desc=t(
            f"{first} 至 {last} 每天的权益核销次数，按场景类别分段堆叠。",
            f"Benefits redeemed each day from {first} to {last}, stacked by scenario category.",
        ),
        y_label=t("核销次数", "Redemptions"),
        empty=none_yet,
    )
    top_chart = None
    if usage:
        top_chart = _top_chart(top, first=first, last=last, empty=none_yet)
    return render_template(
        "admin/dashboard.html",
        figures=figures,
        tiers=tiers,
        series=series,
        days=days,
        top=top,
        tier_chart=tier_chart,
        tier_legend=tier_legend(tiers),
        common_level_name=lambda level: t(
            common_level_name(level, "zh"), common_level_name(level, "en")
        ),
        redemption_chart=redemption_chart,
        top_chart=top_chart,
        own_operator=scope is not None,
        quality_missed=_quality_missed(),
    )


def _quality_missed() -> list[Any]:
    """The sources missing a quality target this month, for those who may see data quality (a
    clerk their own source only); empty when the quality pages are not installed."""
    if "admin.quality" not in current_app.view_functions or not can("quality.view"):
        return []
    # Imported here: the pages are mounted by the domain that names them, not by this module.
    from citycredit.web.admin import quality as quality_pages

    only = source_scope()
    return quality_pages.missed_this_month(
        db_session(), source_ids=[only] if only is not None else None
    )


def tier_words(tc: engine_queries.TierCount) -> str:
    """A tier of the distribution in the words every surface uses (city tier · common level)."""
    return t(
        tier_pair(tc.tier_code, tc.name_zh, tc.name_en, tc.common_tier, "zh"),
        tier_pair(tc.tier_code, tc.name_zh, tc.name_en, tc.common_tier, "en"),
    )


def tier_legend(tiers: list[engine_queries.TierCount]) -> list[tuple[str, list[str]]]:
    """Under the chart: each common level and the city tiers (the bars' labels) mapped to it."""
    legend: dict[int, list[str]] = {}
    for tc in tiers:
        legend.setdefault(tc.common_tier, []).append(tc.tier_code)
    return [
        (t(common_level_words(level, "zh"), common_level_words(level, "en")), codes)
        for level, codes in legend.items()
    ]


def _top_chart(
    top: list[queries.ScenarioCount], *, first: dt.date, last: dt.date, empty: str
) -> Markup:
    return charts.horizontal_bar_chart(
        [
            charts.Bar(
                t(s.name_zh, s.name_en),
                s.redemptions,
                f"{t(s.name_zh, s.name_en)}: {s.redemptions}",
            )
            for s in top
        ],
        title=t(
            f"近 {DASHBOARD_DAYS} 天核销最多的 10 个场景",
            f"Top 10 scenarios by redemptions, last {DASHBOARD_DAYS} days",
        ),
        desc=t(
            f"{first} 至 {last} 核销次数最多的场景及其次数。",
            f"The scenarios most redeemed from {first} to {last}, with their counts.",
        ),
        empty=empty,
    )


# --- audit log ------------------------------------------------------------------------------------


def _date_arg(name: str, errors: dict[str, str]) -> dt.date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors[name] = t(
            f"日期“{raw}”无效（格式：2026-01-31）", f"bad date “{raw}” (use 2026-01-31)"
        )
        return None


def _int_arg(name: str, errors: dict[str, str], label: tuple[str, str]) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        errors[name] = t(f"{label[0]}“{raw}”无效", f"bad {label[1]} “{raw}”")
        return None
    return int(raw)


@bp.get("/audit")
@require_permission("audit.view")
def audit_log() -> Any:
    errors: dict[str, str] = {}  # the filter field -> its message, shown beside the field
    filters = queries.AuditFilters(
        actor=request.args.get("actor", "").strip()[:200],
        action=request.args.get("action", "").strip()[:64],
        first=_date_arg("from", errors),
        last=_date_arg("to", errors),
        citizen_id=_int_arg("citizen", errors, ("市民编号", "citizen id")),
    )
    before = _int_arg("before", errors, ("翻页位置", "page cursor"))
    after = _int_arg("after", errors, ("翻页位置", "page cursor"))
    session = db_session()
    page = queries.audit_page(
        session, filters, tz=platform_of(current_app).settings.tz, before=before, after=after
    )
    # The log names citizens and staff: reading it is itself recorded.
    cursor: dict[str, Any] = {
        k: v for k, v in (("before", before), ("after", after)) if v is not None
    }
    admin_audit("admin.audit_log_view", filters=filters.as_detail(), **cursor)
    keep: dict[str, Any] = {k: v for k in AUDIT_FILTERS if (v := request.args.get(k))}
    return render_template(
        "admin/audit.html",
        page=page,
        details={
            e.id: json.dumps(e.detail, ensure_ascii=False, sort_keys=True, default=str)
            if e.detail
            else ""
            for e in page.events
        },
        filters=filters,
        errors=errors,
        args=request.args,
        older_url=url_for("admin.audit_log", **keep, before=page.older) if page.older else None,
        newer_url=url_for("admin.audit_log", **keep, after=page.newer) if page.newer else None,
        first_url=url_for("admin.audit_log", **keep) if (before or after) else None,
    )


@bp.get("/audit/chain")
@require_permission("audit.view")
def audit_chain_check() -> Any:
    """Check the whole log against its seals and signed checkpoints (docs/AUDIT.md); the check reads
    every event, so it is recorded like a view of the log."""
    user = current_user()
    found = audit_chain.verify_and_record(
        db_session(),
        actor=f"admin:{user.username}" if user is not None else "admin:-",
        window=AUDIT_CHAIN_WINDOW,
    )
    return render_template(
        "admin/audit_chain.html",
        report=found,
        grace_minutes=platform_of(current_app).settings.audit_seal_grace_seconds // 60,
    )


# --- data sources and ingestion -------------------------------------------------------------------


def _published() -> tuple[ScoringModelVersion, ScoringModel] | None:
    try:
        return operations.published_model(db_session())
    except operations.NoPublishedModel:
        return None


@bp.get("/sources")
@require_permission("sources.view")
def sources() -> Any:
    session = db_session()
    only = source_scope()
    published = _published()
    model = published[1] if published else None
    views = queries.sources_overview(session, only_source=only)
    return render_template(
        "admin/sources.html",
        views=views,
        model=model,
        unattributed=queries.unattributed_batches(session) if only is None else [],
    )


@bp.get("/sources/batches/<int:batch_id>")
@require_permission("batches.view")
def batch(batch_id: int) -> Any:
    session = db_session()
    found = session.get(IngestBatch, batch_id)
    if found is None:
        abort(404)
    linked = queries.batch_sources(session, batch_id)
    only = source_scope()
    if only is not None and only not in {s.id for s in linked}:
        abort(403)
    # A batch may mix sources: a clerk limited to one reads only the rejected rows of that source.
    errors = list(found.errors or [])
    if only is not None:
        errors = queries.source_errors(session, only).of(found)
    # Row errors name the sources' record ids: reading them is recorded.
    admin_audit("admin.batch_view", batch=batch_id)
    completed_by = session.scalar(
        select(IngestBatch.id).where(IngestBatch.completes_batch_id == batch_id).limit(1)
    )
    return render_template(
        "admin/batch.html",
        batch=found,
        sources=linked,
        errors=errors,
        withheld=len(found.errors or []) - len(errors),
        completed_by=completed_by,
    )


# --- scoring models -------------------------------------------------------------------------------


@bp.get("/models")
@require_permission("models.view")
def models() -> Any:
    versions = list(
        db_session().scalars(
            select(ScoringModelVersion).order_by(
                ScoringModelVersion.name, ScoringModelVersion.version.desc()
            )
        )
    )
    return render_template("admin/models.html", versions=versions)


def _version(version_id: int) -> ScoringModelVersion:
    version = db_session().get(ScoringModelVersion, version_id)
    if version is None:
        abort(404)
    return version


# A POST from the models page's form (with its CSRF token), not a link: the what-if scores every
# consenting citizen into scratch rows, work no other site may set off with a link or an image.
@bp.post("/models/<int:version_id>/whatif")
@require_permission("models.view")
def what_if(version_id: int) -> Any:
    session = db_session()
    draft = _version(version_id)
    published = _published()
    if published is None or published[0].id == draft.id:
        flash(
            t(
                "只能将未发布的版本与当前已发布的版本比较。",
                "Only a version that is not published can be compared with the published one.",
            ),
            "error",
        )
        return redirect(url_for("admin.models"))
    user = current_user()
    assert user is not None
    report = engine_queries.what_if(
        session, draft, as_of=today(), actor=f"admin:{user.username}", movers=20
    )
    admin_audit(
        "admin.what_if_view",
        draft=draft.label,
        movers=[m.citizen_id for m in report.biggest_movers],
    )
    new_model = operations.model_of(draft)
    old_model = published[1]
    rows: list[tuple[Any, str]]
    if report.basis == "tier":
        rows = [(tier.code, t(tier.name_zh, tier.name_en)) for tier in old_model.tiers]
        columns = [(tier.code, t(tier.name_zh, tier.name_en)) for tier in new_model.tiers]
        cells: dict[Any, int] = dict(report.transitions)
    else:
        rows = [(c.level, t(c.name_zh, c.name_en)) for c in COMMON_TIERS]
        columns = rows.copy()
        cells = dict(report.common_transitions)
    rows.append((None, t("（此前未评分）", "(not scored before)")))
    return render_template(
        "admin/whatif.html",
        draft=draft,
        report=report,
        rows=rows,
        columns=columns,
        cells=cells,
    )


@bp.post("/models/<int:version_id>/publish")
@require_permission("models.publish")
def publish(version_id: int) -> Any:
    session = db_session()
    version = _version(version_id)
    user = current_user()
    assert user is not None
    try:
        operations.publish_model_version(
            session, version, actor=f"admin:{user.username}", today=today()
        )
    except operations.EngineError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.models"))
    # As `citycredit model publish` does: every score now comes from the new version. One unit of
    # work, so a failure leaves the previous version published and every score as it was.
    summary = operations.recompute_all(session, as_of=today())
    admin_audit(
        "admin.model_publish",
        model=version.label,
        citizens=summary.citizens,
        changed=summary.changed,
    )
    flash(
        t(
            f"已发布 {version.label}，已重新计算 {summary.citizens} 位市民的积分（{summary.changed} 位有变化）。",
            f"Published {version.label}; {summary.citizens} citizens rescored, {summary.changed} changed.",
        ),
        "success",
    )
    return redirect(url_for("admin.models"))
