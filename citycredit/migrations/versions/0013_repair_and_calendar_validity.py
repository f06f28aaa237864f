"""validity in calendar months, repair dates, and the platform's outcomes kept apart from the source's word

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 20:00:00.000000

- ``scoring_item.validity_months`` (validity is months then days; existing items are days only),
  ``repaired_validity_months`` / ``_days`` (how long a repaired record counts from its repair date;
  NULL keeps the record's own validity).
- ``record.outcome``: what the platform's procedures decided (``revoked`` by an upheld objection,
  ``repaired`` by an approved repair), so that a source re-sending a row cannot undo it. A record
  whose objection was upheld before this revision had its ``source_status`` overwritten with
  ``revoked``: it gets ``outcome = 'revoked'`` and its source's word back from the objection.
- ``record.repaired_on``: for records their source marked repaired, the day it reported them (the
  best date held); the items in use so far count a repaired record from its occurrence anyway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPHELD = "EXISTS (SELECT 1 FROM objection o WHERE o.record_id = record.id AND o.status = 'upheld')"
BEFORE = (
    "(SELECT o.record_status_before FROM objection o WHERE o.record_id = record.id"
    " AND o.status = 'upheld' AND o.record_status_before IN ('active', 'repaired')"
    " ORDER BY o.id DESC LIMIT 1)"
)


def upgrade() -> None:
    with op.batch_alter_table("scoring_item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("validity_months", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("repaired_validity_months", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("repaired_validity_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outcome", sa.String(length=16), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("repaired_on", sa.Date(), nullable=True))
    op.execute(
        f"UPDATE record SET outcome = 'revoked', source_status = COALESCE({BEFORE}, 'active')"
        f" WHERE {UPHELD}"
    )
    op.execute("UPDATE record SET repaired_on = reported_on WHERE source_status = 'repaired'")
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_record_outcome"), "outcome IN ('none', 'revoked', 'repaired')"
        )


def downgrade() -> None:
    op.execute("UPDATE record SET source_status = 'revoked' WHERE outcome = 'revoked'")
    op.execute(
        "UPDATE record SET source_status = 'repaired' WHERE outcome = 'repaired'"
        " AND source_status = 'active'"
    )
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_record_outcome"), type_="check")
        batch_op.drop_column("repaired_on")
        batch_op.drop_column("outcome")
    with op.batch_alter_table("scoring_item", schema=None) as batch_op:
        batch_op.drop_column("repaired_validity_days")
        batch_op.drop_column("repaired_validity_months")
        batch_op.drop_column("validity_months")
