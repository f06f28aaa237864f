"""scenario versions say whether they honour visitors from partner cities

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Part of the frozen version, like its rule: every existing version, live or pending, stays
    # closed to visitors until an operator opens it through the review.
    with op.batch_alter_table("scenario_version", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("open_to_visitors", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("scenario_version", schema=None) as batch_op:
        batch_op.drop_column("open_to_visitors")
