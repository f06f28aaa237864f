"""monthly reports (通报): the stored copy of each month's figures with their SHA-256

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import citycredit.core.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monthly_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("generated_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("generated_by", sa.String(length=200), nullable=False),
        sa.Column(
            "figures",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_report")),
        sa.UniqueConstraint("month", name=op.f("uq_monthly_report_month")),
    )


def downgrade() -> None:
    op.drop_table("monthly_report")
