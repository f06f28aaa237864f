"""Admin pages for red and black lists (红黑名单, issue 11 §3): the entries with their publication
period and state, a department's CSV import with per-row errors, and lifting (移出) with a reason.

The platform admin acts for any department; a clerk limited to a source imports and lifts only that
source's entries; reviewers and the auditor read. The rules are ``governance.lists``'s."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    current_user,
    now,
    require_permission,
    source_scope,
    t,
    today,
)
from citycredit.web.admin.web import bp as admin_bp
from citycredit.web.context import db_session, platform_of
from governance import lists
from governance.models import ListEntry
from points_engine.models import DataSource
from points_engine.operations import NoPublishedModel

PERMISSIONS["lists.view"] = frozenset({"platform_admin", "reviewer", "clerk", "auditor"})
PERMISSIONS["lists.manage"] = frozenset({"platform_admin", "clerk"})

NAV.append(NavItem("admin.lists_page", "红黑名单", "Red & black lists", PERMISSIONS["lists.view"]))

MAX_UPLOAD = 2 * 1024 * 1024


def _actor() -> str:
    user = current_user()
    assert user is not None
    return f"admin:{user.username}"


def _sources() -> list[DataSource]:
    query = select(DataSource).order_by(DataSource.code)
    if source_scope() is not None:
        query = query.where(DataSource.id == source_scope())
    return list(db_session().scalars(query))


def _page(errors: list[tuple[int, str, str]] | None = None, status: int = 200) -> Any:
    query = select(ListEntry, DataSource).join(DataSource, DataSource.id == ListEntry.source_id)
    if source_scope() is not None:
        query = query.where(ListEntry.source_id == source_scope())
    rows = db_session().execute(
        query.order_by(ListEntry.created_at.desc(), ListEntry.id.desc()).limit(300)
    )
    return render_template(
        "admin/lists.html",
        rows=list(rows),
        sources=_sources(),
        types=lists.LIST_TYPES,
        errors=errors or [],
        today=today(),
    ), status


@admin_bp.get("/lists")
@require_permission("lists.view")
def lists_page() -> Any:
    return _page()


@admin_bp.post("/lists/import")
@require_permission("lists.manage")
def lists_import() -> Any:
    g.admin_audited = True  # the domain audits each listing
    source = next((s for s in _sources() if s.code == request.form.get("source")), None)
    upload = request.files.get("file")
    if source is None or upload is None or not upload.filename:
        flash(t("请选择认定部门和 CSV 文件。", "Choose the department and a CSV file."), "error")
        return redirect(url_for("admin.lists_page"))
    data = upload.read(MAX_UPLOAD + 1)
    rows = None
    if len(data) <= MAX_UPLOAD:
        try:
            rows = list(enumerate(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))), start=2))
        except (UnicodeDecodeError, csv.Error):
            rows = None
    if rows is None:
        flash(
            t("文件须为 2 MB 以内的 UTF-8 CSV。", "The file must be UTF-8 CSV of at most 2 MB."),
            "error",
        )
        return redirect(url_for("admin.lists_page"))
    try:
        result = lists.import_entries(
            db_session(),
            rows,
            source=source,
            key=platform_of(current_app).settings.id_hash_key,
            today=today(),
            now=now(),
            actor=_actor(),
        )
    except NoPublishedModel:
        flash(t("尚无评分模型，无法导入。", "No scoring model is published."), "error")
        return redirect(url_for("admin.lists_page"))
    flash(
        t(
            f"已列入 {len(result.listed)} 条，未变化 {result.unchanged} 条，拒收 {len({r for r, _, _ in result.errors})} 行。",
            f"{len(result.listed)} listed, {result.unchanged} unchanged, "
            f"{len({r for r, _, _ in result.errors})} rows refused.",
        ),
        "success" if not result.errors else "error",
    )
    if result.errors:
        return _page(result.errors, 422)
    return redirect(url_for("admin.lists_page"))


@admin_bp.post("/lists/<public_id>/lift")
@require_permission("lists.manage")
def lists_lift(public_id: str) -> Any:
    g.admin_audited = True
    entry = db_session().scalar(select(ListEntry).where(ListEntry.public_id == public_id))
    if entry is None or (source_scope() is not None and entry.source_id != source_scope()):
        abort(404)
    reason = request.form.get("reason", "")
    try:
        lists.lift(db_session(), entry, actor=_actor(), reason=reason, today=today(), now=now())
    except ValueError:
        flash(
            t(
                "请填写移出理由（500 字以内）；已移出的不能再次移出。",
                "Give the reason (at most 500 characters); an entry is lifted once.",
            ),
            "error",
        )
        return redirect(url_for("admin.lists_page"))
    flash(
        t(
            f"{entry.masked_name} 已移出名单，信用分已重新计算。",
            f"{entry.masked_name} is off the list; the score is recomputed.",
        ),
        "success",
    )
    return redirect(url_for("admin.lists_page"))
