"""Admin pages for data quality per source (数据质量, issue 13 §2).

- ``/admin/quality``: a month's figures per source against the city's targets, missed targets flagged
  in words (not by colour alone), and the city's total.
- ``/admin/quality/sources/<code>``: a source's month, its daily charts, its figures by reason, and its
  rejected rows (open first) with a CSV of the open ones and a dismissal with a reason.
- ``/admin/quality/targets``: the credit office sets the three targets.

A clerk bound to a source sees that source only: another source's page does not exist for them (404),
as another operator's scenario does not. Reading rejected rows is audited (a department's data, though
no ID number: ingest keeps only the masked errors). The figures are ``points_engine.quality``'s.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from citycredit.core.actors import Actor, NotPermitted
from citycredit.core.periods import parse_month
from citycredit.web.admin import charts
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    admin_audit,
    bp,
    can,
    current_user,
    require_permission,
    source_actor,
    source_scope,
    t,
    today,
)
from citycredit.web.context import db_session
from points_engine import quality
from points_engine.ingest import REASONS
from points_engine.models import DataSource, RejectedRow

PERMISSIONS["quality.view"] = frozenset({"platform_admin", "clerk", "reviewer", "auditor"})
PERMISSIONS["quality.dismiss"] = frozenset({"platform_admin", "clerk"})
PERMISSIONS["quality.targets"] = frozenset({"platform_admin"})

NAV.insert(2, NavItem("admin.quality", "数据质量", "Data quality", PERMISSIONS["quality.view"]))

OPEN_LIMIT = 200
RESOLVED_LIMIT = 100
REASON_LIMIT = 500
# Rates shown as percentages; the ID-number error rate needs more digits (its target is 0.01%).
DIGITS = {"qualified_rate": 1, "on_time_rate": 1, "id_error_rate": 3}
# The CSV's columns, in order (one line per open rejected row).
CSV_COLUMNS = (
    "source",
    "source_record_id",
    "batch",
    "row",
    "received_on",
    "reason",
    "problems",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- words ----------------------------------------------------------------------------------------


def reason_name(code: str) -> str:
    zh, en = REASONS.get(code, (code, code))
    return t(zh, en)


def target_name(code: str) -> str:
    zh, en = quality.TARGET_NAMES[code]
    return t(zh, en)


def heading(text: str) -> str:
    """A name at the start of a heading or label: "qualified rate" -> "Qualified rate"."""
    return text[:1].upper() + text[1:]


def percent(value: float | None, code: str = "qualified_rate") -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{DIGITS.get(code, 1)}f}%"


def target_words(code: str, value: float) -> str:
    """The target as the page says it: "≥ 100.0%" for a floor, "≤ 0.010%" for a ceiling."""
    sign = "≤" if code in quality.CEILINGS else "≥"
    return f"{sign} {percent(value, code)}"


# --- month and source -----------------------------------------------------------------------------


def _month(errors: dict[str, str]) -> dt.date:
    raw = request.args.get("month", "").strip()
    if raw:
        try:
            return parse_month(raw)
        except ValueError:
            errors["month"] = t(
                f"月份“{raw[:20]}”无效（格式：2026-01），已显示本月。",
                f"bad month “{raw[:20]}” (use 2026-01); showing this month.",
            )
    return today().replace(day=1)


def _source(code: str) -> DataSource:
    """The source by code; another source than a clerk's own reads as unknown (404)."""
    found = db_session().scalar(select(DataSource).where(DataSource.code == code))
    only = source_scope()
    if found is None or (only is not None and found.id != only):
        abort(404)
    return found


def _actor() -> Actor:
    return source_actor("quality.dismiss")


@dataclass(frozen=True)
class Rate:
    code: str
    value: float | None
    target: float
    missed: bool

    @property
    def shown(self) -> str:
        return percent(self.value, self.code)


def rates(f: quality.Figures) -> list[Rate]:
    missed = set(f.missed())
    return [
        Rate(code, f.rate(code), f.targets[code], code in missed)
        for code in quality.DEFAULT_TARGETS
    ]


def missed_this_month(session: Any, *, source_ids: list[int] | None) -> list[quality.Figures]:
    """The sources whose figures this month miss a target (the dashboard's flag)."""
    rows = quality.month_figures(session, today(), source_ids=source_ids)
    return [f for f in rows if f.missed()]


# --- pages ----------------------------------------------------------------------------------------


@bp.get("/quality", endpoint="quality")
@require_permission("quality.view")
def quality_overview() -> Any:
    session = db_session()
    errors: dict[str, str] = {}
    month = _month(errors)
    only = source_scope()
    rows = quality.month_figures(session, month, source_ids=[only] if only is not None else None)
    goals = quality.targets(session)
    total = quality.city_total(rows, goals) if only is None else None
    reasons = sorted({r for f in rows for r in f.rejected_by_reason})
    return render_template(
        "admin/quality/overview.html",
        month=month,
        errors=errors,
        rows=rows,
        total=total,
        goals=goals,
        reasons=reasons,
        rates=rates,
        missed=[f for f in rows if f.missed()],
        **_words(),
    )


@bp.get("/quality/sources/<code>")
@require_permission("quality.view")
def quality_source(code: str) -> Any:
    session = db_session()
    source = _source(code)
    errors: dict[str, str] = {}
    month = _month(errors)
    first, last = quality.month_bounds(month)
    found = quality.month_figures(session, month, source_ids=[source.id])
    figures = found[0]
    days = quality.daily(session, first, last, source_ids=[source.id])
    open_rows = list(
        session.scalars(
            select(RejectedRow)
            .where(RejectedRow.source_id == source.id, RejectedRow.resolved_at.is_(None))
            .order_by(RejectedRow.id)
            .limit(OPEN_LIMIT)
        )
    )
    resolved_rows = list(
        session.scalars(
            select(RejectedRow)
            .where(
                RejectedRow.source_id == source.id,
                RejectedRow.resolved_at.is_not(None),
                RejectedRow.received_on.between(first, last),
            )
            .order_by(RejectedRow.resolved_at.desc(), RejectedRow.id.desc())
            .limit(RESOLVED_LIMIT)
        )
    )
    # The rejected rows are the department's data (record ids, what was wrong): reading is recorded.
    admin_audit(
        "admin.quality_rejected_view",
        source=source.code,
        month=f"{month:%Y-%m}",
        open=[r.id for r in open_rows],
        resolved=[r.id for r in resolved_rows],
    )
    labels = [d.day.strftime("%m-%d") for d in days]
    name = t(source.name_zh, source.name_en)
    volume_chart = charts.stacked_bar_chart(
        labels,
        [
            charts.Series(
                t("接收并入库", "Accepted"),
                charts.PALETTE[0],
                [d.received - d.rejected for d in days],
            ),
            charts.Series(t("拒收", "Rejected"), charts.PALETTE[1], [d.rejected for d in days]),
        ],
        title=t(
            f"{name}：{month:%Y-%m} 每日接收与拒收行数",
            f"{name}: rows received and rejected per day, {month:%Y-%m}",
        ),
        desc=t(
            f"{first} 至 {last} 每天接收的行数，分为入库与拒收两段堆叠；两段之和为当天接收的行数。",
            f"Rows received each day from {first} to {last}, stacked as accepted and rejected; "
            "together they are the rows received that day.",
        ),
        y_label=t("行数", "Rows"),
        empty=t("本月尚未接收数据", "Nothing received this month"),
    )
    on_time_chart = charts.percent_line_chart(
        labels,
        [d.on_time / d.timed if d.timed else None for d in days],
        title=t(
            f"{name}：{month:%Y-%m} 每日报送及时率", f"{name}: on-time rate per day, {month:%Y-%m}"
        ),
        desc=t(
            f"{first} 至 {last} 每天新入库记录中按期限报送的比例；没有新记录的日子不画点。虚线为目标。",
            f"The share of each day's new records reported by their deadline, {first} to {last}; "
            "days without new records have no point. The dashed line is the target.",
        ),
        y_label=t("及时率", "On-time rate"),
        target=figures.targets["on_time_rate"],
        target_label=t(
            f"目标 {target_words('on_time_rate', figures.targets['on_time_rate'])}",
            f"target {target_words('on_time_rate', figures.targets['on_time_rate'])}",
        ),
        empty=t("本月没有需计时的新记录", "No new records with a deadline this month"),
    )
    return render_template(
        "admin/quality/source.html",
        source=source,
        month=month,
        errors=errors,
        f=figures,
        rates=rates(figures),
        days=days,
        volume_chart=volume_chart,
        on_time_chart=on_time_chart,
        open_rows=open_rows,
        resolved_rows=resolved_rows,
        open_more=len(open_rows) == OPEN_LIMIT,
        may_dismiss=can("quality.dismiss"),
        resolution=resolution,
        problems=problems,
        **_words(),
    )


def _words() -> dict[str, Any]:
    return {
        "reason_name": reason_name,
        "target_name": target_name,
        "heading": heading,
        "percent": percent,
        "target_words": target_words,
        "reason_codes": list(REASONS),
    }


def problems(row: RejectedRow) -> list[tuple[str, str, str]]:
    """(field, the reason's name, the check's own words) of each of the row's problems."""
    return [
        (
            str(e.get("field", "")),
            reason_name(str(e.get("code", row.reason))),
            str(e.get("reason", "")),
        )
        for e in (row.errors or [])
    ]


def resolution(row: RejectedRow) -> Markup:
    """How a rejected row was resolved, in words (a link to the batch that re-sent it)."""
    if row.resolution == "resent" and row.resolved_by_batch_id is not None:
        link = Markup('<a href="{}">#{}</a>').format(
            url_for("admin.batch", batch_id=row.resolved_by_batch_id), row.resolved_by_batch_id
        )
        return Markup(t("已在批次 {} 重新报送", "re-sent in batch {}")).format(link)
    if row.resolution == "dismissed":
        who, _, why = (row.resolved_by or "").partition(": ")
        return Markup(t("由 {} 关闭，原因：{}", "dismissed by {}: {}")).format(who, why or "—")
    return Markup(t("已解决", "resolved"))


@bp.get("/quality/sources/<code>/rejected.csv")
@require_permission("quality.view")
def quality_rejected_csv(code: str) -> Any:
    session = db_session()
    source = _source(code)
    rows = list(
        session.scalars(
            select(RejectedRow)
            .where(RejectedRow.source_id == source.id, RejectedRow.resolved_at.is_(None))
            .order_by(RejectedRow.id)
        )
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            _cell(value)
            for value in (
                source.code,
                row.source_record_id,
                row.batch_id,
                row.row,
                row.received_on.isoformat(),
                row.reason,
                "; ".join(
                    f"{e.get('field', '')}: {e.get('reason', '')}" for e in (row.errors or [])
                ),
            )
        )
    admin_audit("admin.quality_rejected_export", source=source.code, rows=[r.id for r in rows])
    return Response(
        "\ufeff" + out.getvalue(),  # Excel opens UTF-8 CSV correctly only with a BOM
        mimetype="text/csv",
        headers={
            "Content-Disposition": (
                f"attachment; filename=rejected-{source.code}-{today().isoformat()}.csv"
            )
        },
    )


def _cell(value: Any) -> str:
    # A spreadsheet runs a cell starting with these as a formula (CSV injection): quote it.
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


@bp.post("/quality/rejected/<int:row_id>/dismiss")
@require_permission("quality.dismiss")
def quality_dismiss(row_id: int) -> Any:
    session = db_session()
    found = session.get(RejectedRow, row_id)
    only = source_scope()
    if found is None or (only is not None and found.source_id != only):
        abort(404)
    source = session.get(DataSource, found.source_id)
    assert source is not None  # a foreign key
    code = source.code
    reason = request.form.get("reason", "").strip()[:180]
    back = url_for("admin.quality_source", code=code, month=request.form.get("month") or None)
    try:
        quality.dismiss_rejection(session, row_id, actor=_actor(), reason=reason)
    except LookupError:
        abort(404)
    except NotPermitted:
        abort(403)
    except ValueError:
        flash(
            t(
                f"第 {found.row} 行（批次 #{found.batch_id}）未关闭：请说明不再重新报送的原因。"
                if found.resolved_at is None
                else f"第 {found.row} 行（批次 #{found.batch_id}）已解决。",
                f"Row {found.row} of batch #{found.batch_id} not closed: say why it will not be re-sent."
                if found.resolved_at is None
                else f"Row {found.row} of batch #{found.batch_id} is already resolved.",
            ),
            "error",
        )
        return redirect(back + f"#rejected-{row_id}")
    g.admin_audited = True  # the domain audits the dismissal (quality.dismiss)
    flash(
        t(
            f"已关闭批次 #{found.batch_id} 第 {found.row} 行（{found.source_record_id or '—'}）。",
            f"Closed row {found.row} of batch #{found.batch_id} ({found.source_record_id or '—'}).",
        ),
        "success",
    )
    return redirect(back)


# --- targets --------------------------------------------------------------------------------------


@bp.route("/quality/targets", methods=["GET", "POST"])
@require_permission("quality.view")
def quality_targets() -> Any:
    session = db_session()
    goals = quality.targets(session)
    errors: dict[str, str] = {}
    values = {code: _percent_input(value) for code, value in goals.items()}
    if request.method == "POST":
        if not can("quality.targets"):
            abort(403)
        parsed: dict[str, float] = {}
        for code in quality.DEFAULT_TARGETS:
            raw = request.form.get(code, "").strip()
            values[code] = raw[:20]
            parsed_value = _parse_percent(raw)
            if parsed_value is None:
                errors[code] = t(
                    f"{target_name(code)}须为 0 至 100 之间的百分数，例如 99.5。",
                    f"The {target_name(code)} must be a percentage from 0 to 100, e.g. 99.5.",
                )
            else:
                parsed[code] = parsed_value
        if not errors:
            user = current_user()
            assert user is not None
            actor = Actor(f"admin:{user.username}", can_publish=True)
            changed = []
            for code, value in parsed.items():
                if abs(value - goals[code]) > 1e-12:
                    quality.set_target(session, code, value, actor=actor)
                    changed.append(code)
            admin_audit("admin.quality_targets", changed={c: parsed[c] for c in changed})
            flash(
                t("已保存质量目标。", "Quality targets saved.")
                if changed
                else t("质量目标没有变化。", "The targets are unchanged."),
                "success",
            )
            return redirect(url_for("admin.quality_targets"))
    return render_template(
        "admin/quality/targets.html",
        goals=goals,
        values=values,
        errors=errors,
        may_edit=can("quality.targets"),
        defaults=quality.DEFAULT_TARGETS,
        **_words(),
    ), (422 if errors else 200)


def _percent_input(value: float) -> str:
    """A rate as the form shows it (percent, no trailing zeros): 1.0 -> "100", 0.0001 -> "0.01"."""
    return f"{value * 100:.6f}".rstrip("0").rstrip(".")


def _parse_percent(raw: str) -> float | None:
    text = raw.removesuffix("%").strip()
    if not text or len(text) > 20:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or not 0.0 <= number <= 100.0:  # NaN, out of range
        return None
    return round(number / 100.0, 8)
