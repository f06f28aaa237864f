"""drop the admin lockout's columns (rate limits by name and address replaced it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A lock per account let anyone lock a real user out and told strangers which names exist; the
    # rate limits (citycredit.web.security) count by name with address and keep nothing here.
    with op.batch_alter_table("admin_user", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")


def downgrade() -> None:
    with op.batch_alter_table("admin_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("locked_until", citycredit.core.db.UTCDateTime(timezone=True), nullable=True)
        )
