"""Signing in and out, and a user's own account page (changing one's password)."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, redirect, render_template, request, session, url_for

from admin import operations
from citycredit.web import security
from citycredit.web.admin.web import (
    SESSION_ENDED,
    admin_audit,
    bp,
    current_user,
    end_session,
    now,
    refresh_session_version,
    require_role,
    safe_next,
    start_session,
    t,
)
from citycredit.web.context import db_session

_ENDED = {
    "idle": (
        "您已超过 30 分钟未操作，请重新登录。",
        "You were idle for 30 minutes; please sign in again.",
    ),
    "expired": (
        "登录已满 12 小时，请重新登录。",
        "Your session reached 12 hours; please sign in again.",
    ),
    "revoked": (
        "您的登录已失效（已退出登录、密码已更改或账户已停用），请重新登录。",
        "Your session was ended (signed out, password changed or account disabled); please sign in "
        "again.",
    ),
}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = safe_next(request.values.get("next"))
    ended = session.pop(SESSION_ENDED, None)
    if ended in _ENDED:
        flash(t(*_ENDED[ended]), "info")
    if request.method == "GET":
        if current_user() is not None:
            return redirect(target or url_for("admin.dashboard"))
        return render_template("admin/login.html", next=target, username="")
    username = request.form.get("username", "")
    outcome = operations.authenticate(
        db_session(),
        username,
        request.form.get("password", ""),
        now=now(),
        secret=current_app.secret_key or "",
    )
    g.admin_audited = True
    if outcome.user is None:
        security.mark_failed()  # counts against the name's and the address's limits
        message = t("用户名或密码不正确。", "Wrong username or password.")
        # 200, not 401: a browser form, and the same status and words whatever went wrong.
        return render_template(
            "admin/login.html", next=target, username=username[:64], error=message
        )
    start_session(outcome.user)
    return redirect(target or url_for("admin.dashboard"))


@bp.post("/logout")
def logout() -> Any:
    user = current_user()
    assert user is not None  # the guard sends a signed-out visitor to the login page
    admin_audit("admin.logout")
    # Clearing this browser's cookie is not enough: a copy taken before would still be valid. Every
    # session of the account ends, on other devices too.
    operations.end_sessions(db_session(), user)
    end_session()
    flash(
        t(
            "您已退出登录；此账户在所有设备上的登录均已失效。",
            "You have signed out; this account's sessions on every device have ended.",
        ),
        "success",
    )
    return redirect(url_for("admin.login"))


@bp.get("/account")
@require_role()
def account() -> Any:
    return render_template("admin/account.html", errors={})


@bp.post("/account/password")
@require_role()
def change_own_password() -> Any:
    user = current_user()
    assert user is not None
    db = db_session()
    form = request.form
    actor = operations.actor_of(user.username)
    # field -> message: each message is shown beside (and tied to) its input.
    errors: dict[str, str] = {}
    # Wrong current passwords are throttled like sign-ins (citycredit.web.security), never locked.
    if not operations.check_current_password(user, form.get("current_password", "")):
        security.mark_failed()
        admin_audit("admin.password_change_refused", reason="wrong current password")
        errors["current_password"] = t("当前密码不正确。", "The current password is wrong.")
    elif form.get("new_password", "") != form.get("new_password_again", ""):
        errors["new_password_again"] = t(
            "两次输入的新密码不一致。", "The two new passwords differ."
        )
    else:
        try:
            operations.set_password(db, user, form["new_password"], actor=actor, now=now())
        except operations.AdminInputError as exc:
            errors["new_password"] = t(exc.zh, exc.en)
    if errors:
        g.admin_audited = True
        return render_template("admin/account.html", errors=errors), 400
    g.admin_audited = True
    refresh_session_version(user)
    flash(
        t(
            "密码已更改；您在其他设备上的登录均已失效。",
            "Password changed; your sessions elsewhere have ended.",
        ),
        "success",
    )
    return redirect(url_for("admin.account"))
