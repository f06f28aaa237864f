"""Writes of the admin: accounts, passwords, sign-in. No Flask here (the CLI uses it too).

Passwords are hashed with scrypt in werkzeug's format (:mod:`citycredit.core.passwords`). A sign-in
costs one hash check whatever happens (unknown name, disabled account), so the time taken does not tell
whether a username exists. Accounts are never locked: repeated guesses are throttled by name and by
address in front of this module (``citycredit.web.security``), so a stranger can neither learn which
names exist nor lock a real user out.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from admin.models import ROLES, AdminUser
from citycredit.core.audit import audit
from citycredit.core.passwords import check_password, hash_password
from points_engine.models import DataSource
from scenarios.models import Operator

MIN_PASSWORD_LENGTH = 12
# Long enough for any passphrase; bounded so a megabyte "password" cannot be used to burn CPU.
MAX_PASSWORD_LENGTH = 256
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@functools.cache
def _dummy_hash() -> str:
    """Checked when no account matches, so an unknown name costs the same scrypt work as a wrong
    password. Made on first need: at import it cost every CLI command and worker ~0.1 s."""
    return hash_password(secrets.token_urlsafe(24))


class AdminInputError(ValueError):
    """Input the admin refuses, with the reason in both languages (``str()`` is the English one)."""

    def __init__(self, zh: str, en: str, field: str | None = None):
        super().__init__(en)
        self.zh = zh
        self.en = en
        self.field = field  # the form field at fault, when there is one (the admin marks it)


def actor_of(username: str) -> str:
    return f"admin:{username}"


def check_password_policy(password: str, *, username: str = "") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminInputError(
            f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符",
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AdminInputError(
            f"密码不能超过 {MAX_PASSWORD_LENGTH} 个字符",
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )
    if username and password.strip().lower() == username.lower():
        raise AdminInputError(
            "密码不能与用户名相同", "the password must not be the username", field="password"
        )


def normalise_username(raw: str) -> str:
    return raw.strip().lower()


def find_user(session: Session, username: str) -> AdminUser | None:
    return session.scalar(select(AdminUser).where(AdminUser.username == username))


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    actor: str,
    display_name: str = "",
    operator_code: str | None = None,
    source_code: str | None = None,
    now: dt.datetime,
) -> AdminUser:
    """Create an active account; an operator account names its operator, a clerk may name a source."""
    username = normalise_username(username)
    if not USERNAME_PATTERN.match(username):
        raise AdminInputError(
            "用户名须为 2–64 个小写字母、数字或 . _ -，并以字母或数字开头",
            "the username must be 2-64 lowercase letters, digits or . _ -, starting with a letter or digit",
            field="username",
        )
    if role not in ROLES:
        raise AdminInputError(
            f"未知角色 {role!r}，可选：{', '.join(ROLES)}",
            f"unknown role {role!r}; choose one of: {', '.join(ROLES)}",
            field="role",
        )
    operator_id = source_id = None
    if role == "operator":
        if not operator_code:
            raise AdminInputError(
                "场景运营方账户必须指定所属运营方",
                "an operator account needs its operator",
                field="operator",
            )
        operator = session.scalar(select(Operator).where(Operator.code == operator_code))
        if operator is None:
            raise AdminInputError(
                f"没有代码为 {operator_code!r} 的运营方",
                f"no operator with code {operator_code!r}",
                field="operator",
            )
        operator_id = operator.id
    elif operator_code:
        raise AdminInputError(
            "只有场景运营方账户可以指定运营方",
            "only operator accounts belong to an operator",
            field="operator",
        )
    if source_code:
        if role != "clerk":
            raise AdminInputError(
                "只有数据源专员账户可以限定数据来源",
                "only clerk accounts are limited to a source",
                field="source",
            )
        source = session.scalar(select(DataSource).where(DataSource.code == source_code))
        if source is None:
            raise AdminInputError(
                f"没有代码为 {source_code!r} 的数据来源",
                f"no data source with code {source_code!r}",
                field="source",
            )
        source_id = source.id
    check_password_policy(password, username=username)
    if find_user(session, username) is not None:
        raise AdminInputError(
            f"用户名 {username!r} 已被使用", f"username {username!r} is taken", field="username"
        )
    user = AdminUser(
        username=username,
        display_name=display_name.strip()[:200] or username,
        password_hash=hash_password(password),
        role=role,
        operator_id=operator_id,
        source_id=source_id,
        status="active",
        session_version=1,
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    audit(
        session,
        actor=actor,
        action="admin.user_create",
        username=username,
        role=role,
        operator=operator_code,
        source=source_code,
    )
    return user


def set_password(
    session: Session, user: AdminUser, password: str, *, actor: str, now: dt.datetime
) -> None:
    """Replace the password; every session of the account ends (the caller may re-issue its own)."""
    check_password_policy(password, username=user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    user.session_version += 1
    session.flush()
    action = "admin.password_change" if actor == actor_of(user.username) else "admin.password_reset"
    audit(session, actor=actor, action=action, username=user.username)


def set_status(session: Session, user: AdminUser, status: str, *, actor: str) -> None:
    """Disable (ending every session at once) or re-enable an account."""
    if status not in ("active", "disabled"):
        raise AdminInputError(f"未知状态 {status!r}", f"unknown status {status!r}")
    if status == "disabled" and user.role == "platform_admin" and user.status == "active":
        others = session.scalar(
            select(func.count())
            .select_from(AdminUser)
            .where(
                AdminUser.role == "platform_admin",
                AdminUser.status == "active",
                AdminUser.id != user.id,
            )
        )
        if not others:
            raise AdminInputError(
                "不能停用最后一个平台管理员账户",
                "the last active platform admin cannot be disabled",
            )
    user.status = status
    user.session_version += 1
    session.flush()
    action = "admin.user_disable" if status == "disabled" else "admin.user_enable"
    audit(session, actor=actor, action=action, username=user.username)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: ``user`` is set only when it succeeded."""

    user: AdminUser | None


def unknown_actor(username: str, secret: str | bytes) -> str:
    """The audit actor for a sign-in under a name no account has: a keyed tag, never the typed text.

    What was typed may be a password typed into the wrong field; the tag still lets an auditor see
    that repeated failures came with the same name, without being able to read the name back.
    """
    if not username:
        return actor_of("-")
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, username.encode(), hashlib.sha256).hexdigest()
    return actor_of(f"?{digest[:8]}")


def authenticate(
    session: Session, username: str, password: str, *, now: dt.datetime, secret: str | bytes
) -> SignIn:
    """Check a username and password; audited whatever the outcome.

    An unknown name, a disabled account and a wrong password get the same answer after the same
    work (one scrypt check). ``secret`` keys the tag audited in place of a name no account has
    (:func:`unknown_actor`).
    """
    username = normalise_username(username)[:64]
    user = find_user(session, username)
    if user is None or user.status != "active":
        # The same work as any other attempt; a disabled account's password is not even looked at.
        check_password(_dummy_hash(), password)
        actor = actor_of(username) if user is not None else unknown_actor(username, secret)
        audit(session, actor=actor, action="admin.login_failed", reason="unknown or disabled")
        return SignIn(None)
    actor = actor_of(username)
    if not check_password(user.password_hash, password):
        audit(session, actor=actor, action="admin.login_failed", reason="wrong password")
        return SignIn(None)
    user.last_login_at = now
    session.flush()
    audit(session, actor=actor, action="admin.login")
    return SignIn(user)


def check_current_password(user: AdminUser, password: str) -> bool:
    return check_password(user.password_hash, password)


def end_sessions(session: Session, user: AdminUser) -> None:
    """Void every session of the account (signing out ends them all: a copied cookie is refused)."""
    session.execute(
        update(AdminUser)
        .where(AdminUser.id == user.id)
        .values(session_version=AdminUser.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["session_version"])
