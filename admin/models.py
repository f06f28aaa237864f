"""Admin accounts: hashed passwords, one role each."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citycredit.core.db import Base, utcnow

# role -> (Chinese, English)
ROLES: dict[str, tuple[str, str]] = {
    "platform_admin": ("平台管理员", "Platform admin"),
    "operator": ("场景运营方", "Scenario operator"),
    "clerk": ("数据源专员", "Data-source clerk"),
    "reviewer": ("异议审核员", "Objection reviewer"),
    "auditor": ("审计员", "Auditor"),
}


class AdminUser(Base):
    """One person's admin account. An operator account belongs to exactly one operator."""

    __tablename__ = "admin_user"
    __table_args__ = (
        CheckConstraint(
            "role IN ('platform_admin', 'operator', 'clerk', 'reviewer', 'auditor')", name="role"
        ),
        CheckConstraint("role <> 'operator' OR operator_id IS NOT NULL", name="operator_account"),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(32))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operator.id"))
    # A clerk may be limited to one data source; None means every source.
    source_id: Mapped[int | None] = mapped_column(ForeignKey("data_source.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Unused since issue 9 (sign-ins are throttled by name and address, accounts never locked); kept
    # until a migration drops them.
    # Bumped on password change or disable: every session issued before is void at once.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    password_changed_at: Mapped[dt.datetime | None]
