"""Writes of the admin: accounts, passwords, sign-in with lockout. No Flask here (the CLI uses it too).

Passwords are hashed with scrypt (werkzeug). A sign-in costs one hash check whatever happens (unknown
name, disabled or locked account), so the time taken does not tell whether a username exists. Each
check of an account's password is reserved (counted and committed) before it is made, so no more than
five are made per lockout window, however many are sent at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import case, func, literal, null, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash, generate_password_hash

from admin.models import ROLES, AdminUser
from citycredit.core.audit import audit
from points_engine.models import DataSource
from scenarios.models import Operator

LOCK_AFTER_FAILURES = 5
LOCK_DURATION = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
# Long enough for any passphrase; bounded so a megabyte "password" cannot be used to burn CPU.
MAX_PASSWORD_LENGTH = 256
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
# Checked when no account matches, so an unknown name costs the same scrypt work as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(24), method="scrypt")


class AdminInputError(ValueError):
    """Input the admin refuses, with the reason in both languages (``str()`` is the English one)."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en


def actor_of(username: str) -> str:
    return f"admin:{username}"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def check_password_policy(password: str, *, username: str = "") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminInputError(
            f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符",
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AdminInputError(
            f"密码不能超过 {MAX_PASSWORD_LENGTH} 个字符",
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters",
        )
    if username and password.strip().lower() == username.lower():
        raise AdminInputError("密码不能与用户名相同", "the password must not be the username")


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
        )
    if role not in ROLES:
        raise AdminInputError(
            f"未知角色 {role!r}，可选：{', '.join(ROLES)}",
            f"unknown role {role!r}; choose one of: {', '.join(ROLES)}",
        )
    operator_id = source_id = None
    if role == "operator":
        if not operator_code:
            raise AdminInputError(
                "场景运营方账户必须指定所属运营方", "an operator account needs its operator"
            )
        operator = session.scalar(select(Operator).where(Operator.code == operator_code))
        if operator is None:
            raise AdminInputError(
                f"没有代码为 {operator_code!r} 的运营方", f"no operator with code {operator_code!r}"
            )
        operator_id = operator.id
    elif operator_code:
        raise AdminInputError(
            "只有场景运营方账户可以指定运营方", "only operator accounts belong to an operator"
        )
    if source_code:
        if role != "clerk":
            raise AdminInputError(
                "只有数据源专员账户可以限定数据来源", "only clerk accounts are limited to a source"
            )
        source = session.scalar(select(DataSource).where(DataSource.code == source_code))
        if source is None:
            raise AdminInputError(
                f"没有代码为 {source_code!r} 的数据来源",
                f"no data source with code {source_code!r}",
            )
        source_id = source.id
    check_password_policy(password, username=username)
    if find_user(session, username) is not None:
        raise AdminInputError(f"用户名 {username!r} 已被使用", f"username {username!r} is taken")
    user = AdminUser(
        username=username,
        display_name=display_name.strip()[:200] or username,
        password_hash=hash_password(password),
        role=role,
        operator_id=operator_id,
        source_id=source_id,
        status="active",
        failed_logins=0,
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
    user.failed_logins = 0
    user.locked_until = None
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
    if status == "active":
        user.failed_logins = 0
        user.locked_until = None
    session.flush()
    action = "admin.user_disable" if status == "disabled" else "admin.user_enable"
    audit(session, actor=actor, action=action, username=user.username)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: ``user`` is set only when it succeeded."""

    user: AdminUser | None
    locked_until: dt.datetime | None = None


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
    """Check a username and password, counting failures; audited whatever the outcome.

    Each attempt on an account is reserved and committed (:func:`reserve_attempt`) before its password
    is checked, so a burst of parallel guesses gets no more than ``LOCK_AFTER_FAILURES`` checks.
    ``secret`` keys the tag audited in place of a name no account has (:func:`unknown_actor`).
    """
    username = normalise_username(username)[:64]
    user = find_user(session, username)
    if user is None or user.status != "active":
        # The same work as any other attempt; a disabled account's password is not even looked at.
        check_password_hash(_DUMMY_HASH, password)
        actor = actor_of(username) if user is not None else unknown_actor(username, secret)
        audit(session, actor=actor, action="admin.login_failed", reason="unknown or disabled")
        return SignIn(None)
    actor = actor_of(username)
    attempt = reserve_attempt(session, user, now=now)
    if attempt is None:
        # Same work as any other attempt; the password is not even looked at while locked.
        check_password_hash(_DUMMY_HASH, password)
        session.refresh(user, ["failed_logins", "locked_until"])
        audit(session, actor=actor, action="admin.login_refused_locked")
        return SignIn(None, user.locked_until)
    if not check_password_hash(user.password_hash, password):
        audit(session, actor=actor, action="admin.login_failed", reason="wrong password")
        record_failure(session, attempt, actor=actor)
        return SignIn(None, attempt.locked_until)
    clear_failures(session, user, attempt)
    user.last_login_at = now
    session.flush()
    audit(session, actor=actor, action="admin.login")
    return SignIn(user)


def check_current_password(user: AdminUser, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


@dataclass(frozen=True)
class Attempt:
    """A reserved password check: the failures counted so far (this one included) and, when this
    attempt was the last one allowed, the end of the lock it set."""

    failures: int
    locked_until: dt.datetime | None


def reserve_attempt(session: Session, user: AdminUser, *, now: dt.datetime) -> Attempt | None:
    """Count a password check before it is made; None when the account is locked (check nothing).

    One conditional UPDATE, committed at once: parallel attempts each get their own count, and the
    one that reaches ``LOCK_AFTER_FAILURES`` locks the account, so every attempt after it, however
    many were sent at the same moment, finds the account locked. A lock that has run out starts the
    count again. The commit ends the session's transaction: call this before the unit of work writes
    anything else. A correct password then clears the count (:func:`clear_failures`).
    """
    # Past the WHERE below, a lock that is still set is one that has run out.
    expired = AdminUser.locked_until.is_not(None)
    failures = case((expired, literal(1)), else_=AdminUser.failed_logins + 1)
    until = now + LOCK_DURATION
    row = session.execute(
        update(AdminUser)
        .where(
            AdminUser.id == user.id,
            or_(AdminUser.locked_until.is_(None), AdminUser.locked_until <= now),
        )
        .values(
            failed_logins=failures,
            locked_until=case(
                (failures >= LOCK_AFTER_FAILURES, literal(until, AdminUser.locked_until.type)),
                else_=null(),
            ),
        )
        .returning(AdminUser.failed_logins, AdminUser.locked_until)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    session.commit()
    # Nothing more is read here: the password check that follows runs outside any transaction
    # (on SQLite a transaction holds the database's write lock).
    if row is None:
        return None
    set_committed_value(user, "failed_logins", row.failed_logins)
    set_committed_value(user, "locked_until", row.locked_until)
    return Attempt(row.failed_logins, row.locked_until)


def record_failure(session: Session, attempt: Attempt, *, actor: str) -> None:
    """The reserved check found a wrong password: audit the lock if this attempt set it."""
    if attempt.locked_until is not None:
        audit(session, actor=actor, action="admin.lockout", until=attempt.locked_until.isoformat())


def clear_failures(session: Session, user: AdminUser, attempt: Attempt) -> None:
    """A correct password: the failure count starts again, and the lock is lifted if this attempt
    set it (it was the fifth). A lock set by a parallel wrong guess that used the fifth check stays."""
    user.failed_logins = 0
    if attempt.locked_until is not None:
        user.locked_until = None
    session.flush()


def end_sessions(session: Session, user: AdminUser) -> None:
    """Void every session of the account (signing out ends them all: a copied cookie is refused)."""
    session.execute(
        update(AdminUser)
        .where(AdminUser.id == user.id)
        .values(session_version=AdminUser.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["session_version"])
