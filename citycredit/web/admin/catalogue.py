"""Admin pages for the public credit information catalogue (目录管理, issue 13 §1).

The versions, each version's entries by kind with the scoring items that score them and the diff
against the version it replaces, a CSV upload that stores a draft (every problem listed by line and
column, nothing stored when there is one), submit, publish and reject with four eyes, and a CSV export.
The credit office (``catalogue.manage``) changes the catalogue; reviewers, clerks and the auditor read
it. The workflow itself is :mod:`points_engine.catalogue`'s, which audits every step.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from flask import Response, abort, flash, g, redirect, render_template, request, url_for

from citycredit.core.actors import Actor, NotPermitted
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    admin_audit,
    bp,
    can,
    current_user,
    lang,
    require_permission,
    t,
)
from citycredit.web.context import db_session
from points_engine import catalogue
from points_engine.models import CatalogueStatus, CatalogueVersion
from points_engine.operations import NoPublishedModel, published_model

PERMISSIONS["catalogue.view"] = frozenset({"platform_admin", "reviewer", "clerk", "auditor"})
PERMISSIONS["catalogue.manage"] = frozenset({"platform_admin"})

NAV.insert(
    3, NavItem("admin.catalogue_versions", "目录管理", "Catalogue", PERMISSIONS["catalogue.view"])
)

MAX_UPLOAD_BYTES = 2 * 1024 * 1024

STATUS_NAMES = {
    CatalogueStatus.DRAFT: ("草稿", "draft"),
    CatalogueStatus.IN_REVIEW: ("待审核", "in review"),
    CatalogueStatus.PUBLISHED: ("已发布（现行）", "published (in effect)"),
    CatalogueStatus.SUPERSEDED: ("已被替代", "superseded"),
    CatalogueStatus.REJECTED: ("已退回", "rejected"),
}
# The badge classes the admin's stylesheet has, by status.
BADGES = {
    CatalogueStatus.DRAFT: "draft",
    CatalogueStatus.IN_REVIEW: "running",
    CatalogueStatus.PUBLISHED: "published",
    CatalogueStatus.SUPERSEDED: "retired",
    CatalogueStatus.REJECTED: "failed",
}
COLUMN_NAMES = {
    "code": ("编码", "Code"),
    "kind": ("类别", "Kind"),
    "name_zh": ("中文名称", "Chinese name"),
    "name_en": ("英文名称", "English name"),
    "legal_basis": ("法律依据", "Legal basis"),
    "fields": ("字段", "Fields"),
    "reporters": ("报送单位", "Reporters"),
    "deadline_days": ("报送时限", "Reporting deadline"),
    "public": ("双公示", "Public"),
    "publish_days": ("公示时限", "Publication deadline"),
    "(file)": ("文件", "File"),
    "(row)": ("整行", "Row"),
}
CHANGE_NAMES = {
    "added": ("新增", "added"),
    "removed": ("删除", "removed"),
    "changed": ("修改", "changed"),
}
STEPS = {
    "submit": ("已提交审核", "submitted for review"),
    "publish": ("已发布，数据接入即按此版本校验", "published; ingest checks rows against it now"),
    "reject": ("已退回", "rejected"),
}


# The catalogue's problems (points_engine.catalogue.parse_csv) in Chinese: (pattern, template); the
# groups fill the template. The English page shows the domain's own words.
PROBLEMS_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), zh)
    for pattern, zh in (
        (r"empty file: expected a header line", "空文件：首行应为列名"),
        (r"missing column\(s\) in the header", "首行缺少这些列"),
        (r"more values than header columns", "本行的值多于列名"),
        (r"more than (\d+) entries", "条目超过 {0} 个"),
        (r"(.+) appears twice", "{0} 出现了两次"),
        (r"no entries", "文件中没有条目"),
        (r"contains a control character", "含有控制字符"),
        (r"must be 2-64 capital letters.*", "须为 2–64 位大写字母、数字或下划线，并以字母开头"),
        (r"must be one of (.+)", "须为以下之一：{0}"),
        (r"missing", "缺少"),
        (r"longer than (\d+) characters", "超过 {0} 个字符"),
        (r"unknown field\(s\) ([^;]+); known: (.+)", "未知字段 {0}；可用字段：{1}"),
        (
            r"source codes separated by spaces.*",
            "数据来源编码，以空格分隔（小写字母、数字、_ . -）",
        ),
        (r"yes or no", "填 yes 或 no"),
        (r"only a public entry has a publication deadline", "只有双公示条目填写公示时限"),
        (r"a whole number of working days, not (.+)", "须为整数个工作日，而不是 {0}"),
        (r"between 0 and 365 working days", "须在 0 到 365 个工作日之间"),
    )
)


def problem_text(reason: str) -> str:
    """A problem of an uploaded file in the page's language."""
    if lang() == "en":
        return reason
    for pattern, zh in PROBLEMS_ZH:
        found = pattern.fullmatch(reason)
        if found:
            return zh.format(*found.groups())
    return reason


def status_name(status: str) -> str:
    zh, en = STATUS_NAMES.get(status, (status, status))  # type: ignore[call-overload]
    return t(zh, en)


def column_name(column: str) -> str:
    names = [COLUMN_NAMES.get(c.strip(), (c, c)) for c in column.split(",")]
    return "、".join(t(zh, en) for zh, en in names)


@bp.context_processor
def _catalogue_helpers() -> dict[str, Any]:
    return {
        "catalogue_status": status_name,
        "catalogue_badge": lambda status: BADGES.get(status, "draft"),
        "catalogue_column": column_name,
        "catalogue_kind": lambda kind: t(*catalogue.KINDS.get(kind, (kind, kind))),
        "catalogue_change": lambda what: t(*CHANGE_NAMES.get(what, (what, what))),
        "kinds": lambda: catalogue.KINDS,
        "catalogue_problem": problem_text,
    }


def actor() -> Actor:
    """The signed-in user for the catalogue's workflow: the office changes it, others only read."""
    user = current_user()
    assert user is not None
    manages = can("catalogue.manage")
    return Actor(f"admin:{user.username}", can_publish=manages, read_only=not manages)


def _version_or_404(number: int) -> CatalogueVersion:
    try:
        return catalogue.find_version(db_session(), number)
    except catalogue.CatalogueError:
        abort(404)


# --- list and version pages -----------------------------------------------------------------------


@bp.get("/catalogue")
@require_permission("catalogue.view")
def catalogue_versions() -> Any:
    session = db_session()
    return render_template(
        "admin/catalogue/list.html",
        versions=catalogue.versions(session),
        may_manage=can("catalogue.manage"),
    )


def _scoring_items() -> dict[str, Any]:
    """The published model's items by code (none without a published model)."""
    try:
        _, model = published_model(db_session())
    except NoPublishedModel:
        return {}
    return dict(model.items)


@bp.get("/catalogue/<int:number>")
@require_permission("catalogue.view")
def catalogue_version(number: int) -> Any:
    session = db_session()
    version = _version_or_404(number)
    entries = catalogue.entries_of(version)
    by_kind = [
        (kind, [e for e in entries if e.kind == kind])
        for kind in catalogue.KINDS
        if any(e.kind == kind for e in entries)
    ]
    previous = catalogue.previous_published(session, version)
    changes = (
        catalogue.diff(catalogue.entries_of(previous), entries) if previous is not None else None
    )
    me = current_user()
    name = f"admin:{me.username}" if me is not None else ""
    return render_template(
        "admin/catalogue/version.html",
        version=version,
        by_kind=by_kind,
        entry_count=len(entries),
        items=_scoring_items(),
        previous=previous,
        changes=changes,
        may_manage=can("catalogue.manage"),
        own_work=name in (version.created_by, version.submitted_by),
    )


# --- upload, steps, export ------------------------------------------------------------------------


@bp.get("/catalogue/new")
@require_permission("catalogue.manage")
def catalogue_upload_form() -> Any:
    return render_template(
        "admin/catalogue/upload.html", problems=None, columns=catalogue.COLUMNS, note=""
    )


@bp.post("/catalogue/new")
@require_permission("catalogue.manage")
def catalogue_upload() -> Any:
    session = db_session()
    note = request.form.get("note", "").strip()[:500]
    upload = request.files.get("file")
    error = None
    text = ""
    if upload is None or not upload.filename:
        error = t("请选择一个 CSV 文件。", "Choose a CSV file.")
    else:
        data = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            error = t("文件超过 2 MB。", "The file is larger than 2 MB.")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                error = t(
                    "文件不是 UTF-8 编码，请在表格软件中另存为“CSV UTF-8”。",
                    "The file is not UTF-8: save it as “CSV UTF-8” in the spreadsheet.",
                )
    if error is not None:
        return _upload_refused(note, [], error)
    try:
        version = catalogue.create_draft(session, text, actor=actor(), note=note)
    except catalogue.CatalogueInvalid as exc:
        return _upload_refused(
            note, exc.problems, None, filename=upload.filename or "" if upload else ""
        )
    except NotPermitted:
        abort(403)
    g.admin_audited = True
    flash(
        t(
            f"已保存第 {version.number} 版草稿（{len(version.entries)} 个条目）。核对后请提交审核。",
            f"Draft version {version.number} stored ({len(version.entries)} entries). "
            "Check it, then submit it for review.",
        ),
        "success",
    )
    return redirect(url_for("admin.catalogue_version", number=version.number))


def _upload_refused(
    note: str, problems: list[tuple[int, str, str]], error: str | None, *, filename: str = ""
) -> Any:
    admin_audit(
        "catalogue.upload_refused",
        file=(filename or "")[:200],
        problems=len(problems) if problems else 1,
    )
    return (
        render_template(
            "admin/catalogue/upload.html",
            problems=problems,
            error=error,
            columns=catalogue.COLUMNS,
            note=note,
        ),
        422,
    )


@bp.post("/catalogue/<int:number>/<step>")
@require_permission("catalogue.manage")
def catalogue_step(number: int, step: str) -> Any:
    if step not in STEPS:
        abort(404)
    session = db_session()
    version = _version_or_404(number)
    back = redirect(url_for("admin.catalogue_version", number=number))
    try:
        if step == "submit":
            catalogue.submit(session, version, actor=actor())
        elif step == "publish":
            catalogue.publish(session, version, actor=actor())
        else:
            reason = request.form.get("reason", "").strip()
            if not reason:
                flash(t("退回时请写明原因。", "Say why the version is rejected."), "error")
                return back
            catalogue.reject(session, version, actor=actor(), reason=reason)
    except NotPermitted as exc:
        if "four eyes" not in str(exc):
            abort(403)
        session.rollback()
        admin_audit("catalogue.four_eyes_refused", version=number, step=step)
        flash(
            t(
                "四眼原则：起草或提交此版本的人不能发布或退回它，请由另一位管理员审核。",
                "Four eyes: whoever drafted or submitted this version cannot publish or reject it; "
                "another admin reviews it.",
            ),
            "error",
        )
        return back
    except catalogue.CatalogueError as exc:
        session.rollback()
        admin_audit("catalogue.step_refused", version=number, step=step, reason=str(exc)[:300])
        flash(_refusal(exc), "error")
        return back
    g.admin_audited = True
    zh, en = STEPS[step]
    flash(t(f"第 {number} 版{zh}。", f"Version {number} {en}."), "success")
    return back


def _refusal(exc: Exception) -> str:
    text = str(exc)
    if "does not catalogue" in text:
        codes = text.split("scores ", 1)[1].split(", which", 1)[0]
        return t(
            f"不能发布：现行评分模型对 {codes} 计分，而此版本没有这些条目（其记录将无法报送）。"
            "请补充条目，或先发布不含这些计分项的模型。",
            f"Not published: {text}.",
        )
    return text


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); such cells go
# out with a leading apostrophe, which spreadsheets hide and the upload strips again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


@bp.get("/catalogue/<int:number>/export.csv")
@require_permission("catalogue.view")
def catalogue_export(number: int) -> Any:
    version = _version_or_404(number)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=catalogue.COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for entry in catalogue.entries_of(version):
        writer.writerow({k: _cell(v) for k, v in entry.row().items()})
    admin_audit("catalogue.export", version=number, entries=len(version.entries))
    return Response(
        "\ufeff" + out.getvalue(),  # Excel opens UTF-8 CSV correctly only with a BOM
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=catalogue-v{number}.csv"},
    )
