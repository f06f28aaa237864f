"""Admin pages for objections (异议, issue 11 §1).

- ``/admin/objections``: the queue of pending cases, nearest deadline first, flagged when near (three
  working days or fewer) or overdue; a second tab lists decided and withdrawn cases.
- ``/admin/objections/<case>``: the record, the citizen's reason, each step, and the step that is due:
  forward to the data source, record the source's answer, decide (upheld: the record is revoked;
  rejected: the suspension ends) with a reason.

The objection reviewer (and the platform admin) works every case; a data source's clerk sees the cases
against their own source's records and answers them; the auditor reads. Every step is the domain's
(``citizen.operations``), audited there under ``admin:<username>``; opening a case is audited here as
a read of the citizen's personal data.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from citizen import operations as objections
from citizen import queries
from citizen.models import OBJECTION_STATUS_NAMES, OBJECTION_STEP_NAMES
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
from citycredit.web.context import db_session, platform_of

PERMISSIONS["objections.view"] = frozenset({"platform_admin", "reviewer", "clerk", "auditor"})
PERMISSIONS["objections.review"] = frozenset({"platform_admin", "reviewer"})
PERMISSIONS["objections.answer"] = frozenset({"platform_admin", "reviewer", "clerk"})

NAV.insert(
    1, NavItem("admin.objections_list", "异议处理", "Objections", PERMISSIONS["objections.view"])
)

ANSWER_LIMIT = 2000
REASON_LIMIT = 1000


def _terms() -> objections.ObjectionTerms:
    return objections.ObjectionTerms.from_settings(platform_of(current_app).settings)


def _actor() -> Actor:
    return source_actor("objections.answer")


def _names() -> dict[str, Any]:
    return {
        "objection_status": lambda code: t(*OBJECTION_STATUS_NAMES[code]),
        "objection_step": lambda code: t(*OBJECTION_STEP_NAMES[code]),
    }


@admin_bp.get("/objections")
@require_permission("objections.view")
def objections_list() -> Any:
    decided = request.args.get("view") == "decided"
    cases = queries.objection_cases(
        db_session(),
        today=today(),
        calendar=_terms().calendar,
        pending=not decided,
        source_id=source_scope(),
    )
    return render_template(
        "admin/objections/list.html",
        cases=cases,
        decided=decided,
        overdue=sum(c.overdue for c in cases),
        near=sum(c.near for c in cases),
        days=_terms().days,
        **_names(),
    )


def _case_or_404(public_id: str) -> queries.ObjectionCase:
    found = queries.objection_cases(
        db_session(),
        today=today(),
        calendar=_terms().calendar,
        public_id=public_id,
        source_id=source_scope(),
        with_steps=True,
    )
    if not found:
        abort(404)  # another source's case does not exist for its clerk
    return found[0]


@admin_bp.get("/objections/<public_id>")
@require_permission("objections.view")
def objection_case(public_id: str) -> Any:
    case = _case_or_404(public_id)
    admin_audit(
        "objection.view", citizen_id=case.objection.citizen_id, objection=case.objection.public_id
    )
    actor = _actor()
    return render_template(
        "admin/objections/case.html",
        case=case,
        may_review=can("objections.review") and actor.may_work_objections(),
        may_answer=can("objections.answer") and actor.may_answer_for(case.record.source_id),
        answer_limit=ANSWER_LIMIT,
        reason_limit=REASON_LIMIT,
        **_names(),
    )


def _back(public_id: str) -> Any:
    return redirect(url_for("admin.objection_case", public_id=public_id))


def _step(public_id: str, work: Any, done_zh: str, done_en: str) -> Any:
    """Run one step of the case; a step that no longer applies (someone else took it, the citizen
    withdrew) says so and changes nothing."""
    case = _case_or_404(public_id)
    try:
        work(case)
    except objections.ObjectionStateError as exc:
        flash(
            t(
                f"此异议当前状态为“{OBJECTION_STATUS_NAMES[exc.status][0]}”，不能执行该操作。",
                f"This case is now “{OBJECTION_STATUS_NAMES[exc.status][1]}”: that step no "
                "longer applies.",
            ),
            "error",
        )
        g.admin_audited = True  # nothing changed
        return _back(public_id)
    except NotPermitted:
        abort(403)
    g.admin_audited = True  # the domain audited the step under the user's name
    flash(t(done_zh, done_en), "success")
    return _back(public_id)


def _text_or_back(field: str, limit: int, public_id: str) -> str | None:
    value = (request.form.get(field) or "").strip()
    if not value or len(value) > limit:
        flash(
            t(f"请填写内容（不超过 {limit} 字）。", f"Fill it in ({limit} characters at most)."),
            "error",
        )
        g.admin_audited = True
        return None
    return value


@admin_bp.post("/objections/<public_id>/forward")
@require_permission("objections.review")
def objection_forward(public_id: str) -> Any:
    return _step(
        public_id,
        lambda case: objections.forward(db_session(), case.objection, _actor(), now()),
        "已转数据来源单位核实。",
        "Sent to the data source.",
    )


@admin_bp.post("/objections/<public_id>/answer")
@require_permission("objections.answer")
def objection_answer(public_id: str) -> Any:
    answer = _text_or_back("answer", ANSWER_LIMIT, public_id)
    if answer is None:
        return _back(public_id)
    return _step(
        public_id,
        lambda case: objections.record_source_answer(
            db_session(), case.objection, _actor(), answer, now()
        ),
        "来源单位的答复已记录。",
        "The source's answer is recorded.",
    )


@admin_bp.post("/objections/<public_id>/decide")
@require_permission("objections.review")
def objection_decide(public_id: str) -> Any:
    outcome = request.form.get("outcome")
    if outcome not in ("upheld", "rejected"):
        flash(
            t("请选择决定：异议成立或不成立。", "Choose the decision: upheld or rejected."), "error"
        )
        g.admin_audited = True
        return _back(public_id)
    reason = _text_or_back("reason", REASON_LIMIT, public_id)
    if reason is None:
        return _back(public_id)
    upheld = outcome == "upheld"
    return _step(
        public_id,
        lambda case: objections.decide(
            db_session(),
            case.objection,
            _actor(),
            upheld,
            reason,
            "revoke" if upheld else None,
            now=now(),
            today=today(),
        ),
        "已决定：异议成立，记录已撤销并重新评分。"
        if upheld
        else "已决定：异议不成立，记录恢复计分。",
        "Decided: upheld; the record is revoked and the citizen rescored."
        if upheld
        else "Decided: rejected; the record counts again.",
    )
