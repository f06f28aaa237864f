"""interrupted ingestion batches

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('running', 'completed', 'failed')"
NEW_STATUSES = "status IN ('running', 'completed', 'failed', 'interrupted')"


def upgrade() -> None:
    # A killed run could not say it stopped: a heartbeat and its runner let the next run tell, and a
    # rerun records the batch it completes.
    with op.batch_alter_table("ingest_batch", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("progress_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("runner", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("completes_batch_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ingest_batch_completes_batch_id_ingest_batch"),
            "ingest_batch",
            ["completes_batch_id"],
            ["id"],
        )
        batch_op.create_index(batch_op.f("ix_ingest_batch_origin"), ["origin"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ingest_batch_completes_batch_id"), ["completes_batch_id"], unique=False
        )
        batch_op.drop_constraint(batch_op.f("ck_ingest_batch_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_ingest_batch_status"), NEW_STATUSES)


def downgrade() -> None:
    op.execute("UPDATE ingest_batch SET status = 'failed' WHERE status = 'interrupted'")
    with op.batch_alter_table("ingest_batch", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_ingest_batch_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_ingest_batch_status"), OLD_STATUSES)
        batch_op.drop_index(batch_op.f("ix_ingest_batch_completes_batch_id"))
        batch_op.drop_index(batch_op.f("ix_ingest_batch_origin"))
        batch_op.drop_constraint(
            batch_op.f("fk_ingest_batch_completes_batch_id_ingest_batch"), type_="foreignkey"
        )
        batch_op.drop_column("completes_batch_id")
        batch_op.drop_column("runner")
        batch_op.drop_column("progress_at")
