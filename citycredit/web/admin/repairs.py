"""Admin pages for credit repair applications (信用修复, issue 11 §2).

- ``/admin/repairs``: pending applications, first come first served; a second tab lists closed ones.
- ``/admin/repairs/<application>``: the record, the citizen's statement and documents, each step, and
  the step that is due: the first review (approve or refuse, with a reason) by the credit office or the
  record's source's clerk; the second review by another person of the credit office (four eyes), which
  repairs the record from that day — or sends it back to a first review.

The rules are the domain's (``citizen.repairs``), which audits each step under ``admin:<username>``;
opening an application and reading a document are audited here as reads of personal data.
"""

from __future__ import annotations

import io
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, send_file, url_for

from citizen import repairs
from citizen.models import REPAIR_STATUS_NAMES, REPAIR_STEP_NAMES
from citycredit.core.actors import Actor, NotPermitted
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    admin_audit,
    can,
    now,
    require_permission,
    source_actor,
    source_scope,
    t,
    today,
)
from citycredit.web.admin.web import bp as admin_bp
from citycredit.web.context import db_session

PERMISSIONS["repairs.view"] = frozenset({"platform_admin", "reviewer", "clerk", "auditor"})
PERMISSIONS["repairs.review"] = frozenset({"platform_admin", "reviewer", "clerk"})
PERMISSIONS["repairs.confirm"] = frozenset({"platform_admin", "reviewer"})

NAV.insert(
    2, NavItem("admin.repairs_list", "信用修复", "Credit repair", PERMISSIONS["repairs.view"])
)


def _actor() -> Actor:
    return source_actor("repairs.review")


def _names() -> dict[str, Any]:
    return {
        "repair_status": lambda code: t(*REPAIR_STATUS_NAMES[code]),
        "repair_step": lambda code: t(*REPAIR_STEP_NAMES[code]),
    }


@admin_bp.get("/repairs")
@require_permission("repairs.view")
def repairs_list() -> Any:
    closed = request.args.get("view") == "closed"
    cases = repairs.repair_cases(db_session(), pending=not closed, source_id=source_scope())
    return render_template("admin/repairs/list.html", cases=cases, closed=closed, **_names())


def _case_or_404(public_id: str) -> repairs.RepairCase:
    found = repairs.repair_cases(
        db_session(), public_id=public_id, source_id=source_scope(), with_details=True
    )
    if not found:
        abort(404)  # another source's application does not exist for its clerk
    return found[0]


@admin_bp.get("/repairs/<public_id>")
@require_permission("repairs.view")
def repair_case(public_id: str) -> Any:
    case = _case_or_404(public_id)
    a = case.application
    admin_audit("repair.view", citizen_id=a.citizen_id, application=a.public_id)
    actor = _actor()
    return render_template(
        "admin/repairs/case.html",
        case=case,
        may_propose=can("repairs.review") and a.status == "submitted",
        may_confirm=can("repairs.confirm")
        and a.status == "proposed"
        and not actor.source_clerk
        and a.proposed_by != actor.name,
        first_reviewer=a.status == "proposed" and a.proposed_by == actor.name,
        **_names(),
    )


@admin_bp.get("/repairs/<public_id>/attachments/<int:attachment_id>")
@require_permission("repairs.view")
def repair_attachment_admin(public_id: str, attachment_id: int) -> Any:
    case = _case_or_404(public_id)
    found = next((f for f in case.attachments if f.id == attachment_id), None)
    if found is None:
        abort(404)
    admin_audit(
        "repair.attachment.read",
        citizen_id=case.application.citizen_id,
        application=public_id,
        attachment=found.id,
    )
    return send_file(
        io.BytesIO(found.data),
        mimetype=found.content_type,
        as_attachment=True,
        download_name=found.filename,
        max_age=0,
    )


def _back(public_id: str) -> Any:
    return redirect(url_for("admin.repair_case", public_id=public_id))


def _run(public_id: str, work: Any, done_zh: str, done_en: str) -> Any:
    case = _case_or_404(public_id)
    try:
        work(case)
    except repairs.RepairStateError as exc:
        g.admin_audited = True  # nothing changed
        zh, en = REPAIR_STATUS_NAMES[exc.status]
        flash(
            t(f"此申请当前状态为“{zh}”，不能执行该操作。", f"This application is now “{en}”."),
            "error",
        )
        return _back(public_id)
    except repairs.RepairRefused as exc:
        g.admin_audited = True
        flash(t(exc.zh, exc.en), "error")
        return _back(public_id)
    except NotPermitted as exc:
        if "four eyes" in str(exc):
            g.admin_audited = True
            flash(
                t(
                    "四眼原则：复核须由初审以外的另一人进行。",
                    "Four eyes: the second review is by someone other than the first reviewer.",
                ),
                "error",
            )
            return _back(public_id)
        abort(403)
    g.admin_audited = True  # the domain audited the step under the user's name
    flash(t(done_zh, done_en), "success")
    return _back(public_id)


@admin_bp.post("/repairs/<public_id>/propose")
@require_permission("repairs.review")
def repair_propose(public_id: str) -> Any:
    choice = request.form.get("proposal")
    if choice not in ("approve", "refuse"):
        g.admin_audited = True
        flash(t("请选择初审意见。", "Choose approve or refuse."), "error")
        return _back(public_id)
    note = request.form.get("note", "")
    return _run(
        public_id,
        lambda case: repairs.propose(
            db_session(), case.application, _actor(), choice == "approve", note, now=now()
        ),
        "初审意见已提交，等待复核。",
        "First review recorded; awaiting the second review.",
    )


@admin_bp.post("/repairs/<public_id>/confirm")
@require_permission("repairs.confirm")
def repair_confirm(public_id: str) -> Any:
    choice = request.form.get("agree")
    if choice not in ("yes", "no"):
        g.admin_audited = True
        flash(t("请选择复核意见。", "Choose agree or send back."), "error")
        return _back(public_id)
    note = request.form.get("note", "")
    return _run(
        public_id,
        lambda case: repairs.confirm(
            db_session(),
            case.application,
            _actor(),
            choice == "yes",
            note,
            now=now(),
            today=today(),
        ),
        "复核完成。",
        "Second review recorded.",
    )
