"""Admin pages for the monthly report (通报, issue 13 §3): the months, a month's city report, a
department's report, their CSV and XLSX, and generating a month on demand.

The page, the CSV and the XLSX render the same sections (``governance.reports.tables``) of the same
figures: the stored copy when the month has one (with whether it still equals a fresh computation),
else a fresh computation. A data source's clerk sees only their own department's report; the auditor
and the reviewers read; the platform admin generates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from citizen.operations import ObjectionTerms
from citycredit.core.actors import Actor
from citycredit.core.config import Settings
from citycredit.core.periods import add_months, parse_month
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    current_user,
    lang,
    local_time,
    now,
    require_permission,
    source_scope,
    t,
    today,
)
from citycredit.web.admin.web import bp as admin_bp
from citycredit.web.context import db_session, platform_of
from governance import reports
from governance.models import MonthlyReport
from points_engine.models import DataSource

PERMISSIONS["reports.view"] = frozenset({"platform_admin", "reviewer", "auditor", "clerk"})
PERMISSIONS["reports.generate"] = frozenset({"platform_admin"})

NAV.append(NavItem("admin.reports_list", "通报", "Monthly reports", PERMISSIONS["reports.view"]))

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _settings() -> Settings:
    return platform_of(current_app).settings


def _terms() -> ObjectionTerms:
    return ObjectionTerms.from_settings(_settings())


def _month_or_404(text: str) -> dt.date:
    try:
        month = parse_month(text)
    except ValueError:
        abort(404)
    if add_months(month, 1) > today() + dt.timedelta(days=31):
        abort(404)
    return month


def _clerk_code() -> str | None:
    """The department a clerk is limited to (its code); None for everyone else. A clerk with no
    source named sees every department but not the city's report."""
    user = current_user()
    if user is None or user.role != "clerk":
        return None
    scope = source_scope()
    if scope is None:
        return ""
    source = db_session().get(DataSource, scope)
    return source.code if source is not None else ""


def _may_see(department: str | None) -> bool:
    clerk = _clerk_code()
    if clerk is None:
        return True
    if department is None:
        return False
    return clerk in ("", department)


def _figures(month: dt.date) -> tuple[reports.Report, MonthlyReport | None]:
    session = db_session()
    row = reports.stored(session, month)
    if row is not None:
        return reports.from_dict(row.figures), row
    return reports.build(session, month, tz=_settings().tz, terms=_terms()), None


def _generated(row: MonthlyReport | None) -> str:
    if row is None:
        return t(
            f"尚未生成，以下为 {local_time(now())} 即时计算的数字。",
            f"Not generated yet: the figures as computed at {local_time(now())}.",
        )
    who = row.generated_by
    return t(
        f"生成于 {local_time(row.generated_at)}（{who}），数字摘要 sha256 {row.sha256}",
        f"Generated {local_time(row.generated_at)} by {who}; figures sha256 {row.sha256}",
    )


@admin_bp.get("/reports")
@require_permission("reports.view")
def reports_list() -> Any:
    session = db_session()
    stored = {r.month: r for r in reports.stored_months(session)}
    last = reports.previous_month(today())
    months = sorted({*stored, *(add_months(last, -i) for i in range(12))}, reverse=True)
    clerk = _clerk_code()
    own = clerk or None
    return render_template(
        "admin/reports/list.html",
        months=[(m, stored.get(m)) for m in months],
        own=own,
        clerk=clerk is not None,
        default_month=last,
    )


def _render(month: dt.date, department: str | None) -> Any:
    if not _may_see(department):
        clerk = _clerk_code()
        if department is None and clerk:
            return redirect(url_for("admin.reports_department", month=f"{month:%Y-%m}", code=clerk))
        abort(404 if department is not None else 403)
    report, row = _figures(month)
    if department is not None and report.department(department) is None:
        abort(404)
    checked = None
    if row is not None:
        checked = reports.check(
            db_session(), row, tz=_settings().tz, terms=_terms(), department=department
        )
    return render_template(
        "admin/reports/report.html",
        report=report,
        row=row,
        checked=checked,
        department=report.department(department) if department else None,
        code=department,
        heading=reports.title(report, lang=lang(), department=department),
        tables=reports.tables(report, lang=lang(), department=department),
        generated=_generated(row),
        fmt=reports.format_cell,
        month_text=f"{month:%Y-%m}",
        ended=add_months(month, 1) <= today(),
        clerk=_clerk_code() is not None,
    )


@admin_bp.get("/reports/<month>")
@require_permission("reports.view")
def reports_city(month: str) -> Any:
    return _render(_month_or_404(month), None)


@admin_bp.get("/reports/<month>/<code>")
@require_permission("reports.view")
def reports_department(month: str, code: str) -> Any:
    return _render(_month_or_404(month), code)


def _export(month: dt.date, department: str | None, fmt: str) -> Any:
    if fmt not in MEDIA:
        abort(404)
    if not _may_see(department):
        abort(404 if department is not None else 403)
    report, row = _figures(month)
    if department is not None and report.department(department) is None:
        abort(404)
    render = reports.to_csv if fmt == "csv" else reports.to_xlsx
    body = render(report, lang=lang(), department=department, generated=_generated(row))
    name = reports.file_name(report, department=department, ext=fmt)
    return Response(
        body,
        mimetype=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@admin_bp.get("/reports/<month>/export.<fmt>")
@require_permission("reports.view")
def reports_city_export(month: str, fmt: str) -> Any:
    return _export(_month_or_404(month), None, fmt)


@admin_bp.get("/reports/<month>/<code>/export.<fmt>")
@require_permission("reports.view")
def reports_department_export(month: str, code: str, fmt: str) -> Any:
    return _export(_month_or_404(month), code, fmt)


@admin_bp.post("/reports/generate")
@require_permission("reports.generate")
def reports_generate() -> Any:
    text = (request.form.get("month") or "").strip()
    try:
        month = parse_month(text)
        user = current_user()
        assert user is not None
        row = reports.generate(
            db_session(),
            month,
            tz=_settings().tz,
            terms=_terms(),
            actor=Actor(f"admin:{user.username}"),
            today=today(),
            now=now(),
        )
    except ValueError:
        flash(
            t(
                f"无法生成“{text}”：请填写已结束的月份（YYYY-MM）。",
                f"Cannot generate “{text}”: give a month that has ended (YYYY-MM).",
            ),
            "error",
        )
        return redirect(url_for("admin.reports_list"))
    g.admin_audited = True
    flash(
        t(f"{month:%Y-%m} 通报已生成。", f"The report for {month:%Y-%m} is generated."),
        "success",
    )
    return redirect(url_for("admin.reports_city", month=f"{row.month:%Y-%m}"))
