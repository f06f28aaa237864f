"""the daily governance bulletin (objection and repair outcomes, list changes) and its delivery

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

WHEN = citycredit.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "governance_bulletin",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("objections", sa.Integer(), nullable=False),
        sa.Column("repairs", sa.Integer(), nullable=False),
        sa.Column("list_changes", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=True),
        sa.Column("last_attempt_at", WHEN, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.CheckConstraint(
            "delivery IN ('pending', 'delivered', 'failed', 'pull_only')",
            name=op.f("ck_governance_bulletin_delivery"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_bulletin")),
        sa.UniqueConstraint("batch_id", name=op.f("uq_governance_bulletin_batch_id")),
        sa.UniqueConstraint("day", name=op.f("uq_governance_bulletin_day")),
        sa.UniqueConstraint("seq", name=op.f("uq_governance_bulletin_seq")),
    )


def downgrade() -> None:
    op.drop_table("governance_bulletin")
