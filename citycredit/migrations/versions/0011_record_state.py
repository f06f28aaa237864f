"""a record's state in three parts: the source's word, the platform's workflow, and time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:00:00.000000

``record.status`` mixed the three and lost data (issue 11 §0). Existing rows are converted so:

- ``source_status``: the status itself when it is active, repaired or revoked; for an
  ``under_objection`` row, the status its open objection kept (``record_status_before``); for an
  ``expired`` row the source's word was overwritten by the old expiry job and is not stored anywhere:
  it becomes what an open objection kept if there is one, else ``active``. Such a row is past its
  date under the published model, so no score changes now; the next time its source sends the row
  (a repaired one arrives as repaired), the ingest restores the source's word.
- ``workflow``: ``under_objection`` when the record has an open objection, else ``none``.
- ``status``: derived from the two (never ``expired`` again).
- ``expiry_rescored``: true for rows already past ``expires_on`` (their citizens were rescored).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source_status", sa.String(length=16), nullable=False, server_default="active"
            )
        )
        batch_op.add_column(
            sa.Column("workflow", sa.String(length=16), nullable=False, server_default="none")
        )
        batch_op.add_column(
            sa.Column("expiry_rescored", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    kept = (
        "(SELECT o.record_status_before FROM objection o"
        " WHERE o.record_id = record.id AND o.status = 'open'"
        " AND o.record_status_before IN ('active', 'repaired', 'revoked'))"
    )
    has_open = (
        "EXISTS (SELECT 1 FROM objection o WHERE o.record_id = record.id AND o.status = 'open')"
    )
    op.execute(
        "UPDATE record SET source_status = CASE"
        " WHEN status IN ('active', 'repaired', 'revoked') THEN status"
        f" ELSE COALESCE({kept}, 'active') END"
    )
    op.execute(
        f"UPDATE record SET workflow = CASE WHEN {has_open} THEN 'under_objection' ELSE 'none' END"
    )
    op.execute(
        "UPDATE record SET status = CASE"
        " WHEN source_status = 'revoked' THEN 'revoked'"
        " WHEN workflow = 'under_objection' THEN 'under_objection'"
        " ELSE source_status END,"
        " expiry_rescored = CASE WHEN expires_on IS NOT NULL"
        " AND expires_on <= CURRENT_DATE THEN TRUE ELSE FALSE END"
    )
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_record_source_status"), "source_status IN ('active', 'repaired', 'revoked')"
        )
        batch_op.create_check_constraint(
            op.f("ck_record_workflow"), "workflow IN ('none', 'under_objection')"
        )


def downgrade() -> None:
    # Time was a status before: rows past their date go back to ``expired``.
    op.execute(
        "UPDATE record SET status = 'expired'"
        " WHERE expires_on IS NOT NULL AND expires_on <= CURRENT_DATE AND status <> 'revoked'"
    )
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_record_workflow"), type_="check")
        batch_op.drop_constraint(op.f("ck_record_source_status"), type_="check")
        batch_op.drop_column("expiry_rescored")
        batch_op.drop_column("workflow")
        batch_op.drop_column("source_status")
