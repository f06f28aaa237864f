"""Admin accounts (platform admins manage them; auditors may read the list)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from admin import operations, queries
from admin.models import ROLES, AdminUser
from citycredit.web.admin.web import (
    admin_audit,
    bp,
    current_user,
    now,
    refresh_session_version,
    require_permission,
    t,
)
from citycredit.web.context import db_session
from points_engine.models import DataSource
from scenarios.models import Operator


def _choices() -> dict[str, Any]:
    session = db_session()
    return {
        "roles": list(ROLES),
        "operators": list(session.scalars(select(Operator).order_by(Operator.code))),
        "sources": list(session.scalars(select(DataSource).order_by(DataSource.code))),
    }


def _user(user_id: int) -> AdminUser:
    user = db_session().get(AdminUser, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/users")
@require_permission("users.view")
def users() -> Any:
    rows = queries.admin_users(db_session())
    # Staff names and roles are personal data too.
    admin_audit("admin.users_view")
    return render_template("admin/users.html", rows=rows, moment=now())


@bp.get("/users/new")
@require_permission("users.manage")
def new_user() -> Any:
    return render_template("admin/user_new.html", form={}, errors={}, **_choices())


@bp.post("/users/new")
@require_permission("users.manage")
def create_user() -> Any:
    form = request.form
    errors: dict[str, str] = {}  # field -> message, shown beside its input
    if form.get("password", "") != form.get("password_again", ""):
        errors["password_again"] = t("两次输入的密码不一致。", "The two passwords differ.")
    else:
        role = form.get("role", "")
        try:
            user = operations.create_user(
                db_session(),
                username=form.get("username", ""),
                password=form.get("password", ""),
                role=role,
                display_name=form.get("display_name", ""),
                operator_code=(form.get("operator") or None) if role == "operator" else None,
                source_code=(form.get("source") or None) if role == "clerk" else None,
                actor=f"admin:{current_user().username}",  # type: ignore[union-attr]
                now=now(),
            )
        except operations.AdminInputError as exc:
            errors[exc.field or "username"] = t(exc.zh, exc.en)
        else:
            g.admin_audited = True  # create_user audits admin.user_create
            flash(t(f"已创建用户 {user.username}。", f"User {user.username} created."), "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    admin_audit("admin.user_create_refused", username=form.get("username", "")[:64])
    shown = {k: v for k, v in form.items() if "password" not in k and k != "csrf_token"}
    return render_template("admin/user_new.html", form=shown, errors=errors, **_choices()), 400


@bp.get("/users/<int:user_id>")
@require_permission("users.view")
def user_detail(user_id: int) -> Any:
    user = _user(user_id)
    admin_audit("admin.user_view", username=user.username)
    session = db_session()
    operator = session.get(Operator, user.operator_id) if user.operator_id else None
    source = session.get(DataSource, user.source_id) if user.source_id else None
    return render_template(
        "admin/user_detail.html",
        user=user,
        operator=operator,
        source=source,
        errors={},
        moment=now(),
    )


@bp.post("/users/<int:user_id>/status")
@require_permission("users.manage")
def set_user_status(user_id: int) -> Any:
    user = _user(user_id)
    status = request.form.get("status", "")
    me = current_user()
    assert me is not None
    if user.id == me.id and status == "disabled":
        admin_audit("admin.user_disable_refused", username=user.username, reason="self")
        flash(t("不能停用自己的账户。", "You cannot disable your own account."), "error")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    try:
        operations.set_status(db_session(), user, status, actor=f"admin:{me.username}")
    except operations.AdminInputError as exc:
        admin_audit("admin.user_status_refused", username=user.username, reason=exc.en)
        flash(t(exc.zh, exc.en), "error")
    else:
        g.admin_audited = True
        flash(
            t(
                f"已停用 {user.username}，其登录已全部失效。",
                f"{user.username} disabled; their sessions have ended.",
            )
            if status == "disabled"
            else t(f"已启用 {user.username}。", f"{user.username} enabled."),
            "success",
        )
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.post("/users/<int:user_id>/password")
@require_permission("users.manage")
def reset_password(user_id: int) -> Any:
    user = _user(user_id)
    me = current_user()
    assert me is not None
    form = request.form
    errors: dict[str, str] = {}  # field -> message, shown beside its input
    if form.get("password", "") != form.get("password_again", ""):
        errors["password_again"] = t("两次输入的密码不一致。", "The two passwords differ.")
    else:
        try:
            operations.set_password(
                db_session(),
                user,
                form.get("password", ""),
                actor=f"admin:{me.username}",
                now=now(),
            )
        except operations.AdminInputError as exc:
            errors[exc.field or "password"] = t(exc.zh, exc.en)
    if errors:
        admin_audit("admin.password_reset_refused", username=user.username)
        session = db_session()
        return render_template(
            "admin/user_detail.html",
            user=user,
            operator=session.get(Operator, user.operator_id) if user.operator_id else None,
            source=session.get(DataSource, user.source_id) if user.source_id else None,
            errors=errors,
            moment=now(),
        ), 400
    g.admin_audited = True
    if user.id == me.id:
        refresh_session_version(user)
    flash(
        t(
            f"已重置 {user.username} 的密码，其原有登录已全部失效。",
            f"Password of {user.username} reset; their existing sessions have ended.",
        ),
        "success",
    )
    return redirect(url_for("admin.user_detail", user_id=user.id))
