"""record contributions: each counting record's points under the published model, kept current

Every citizen with records is marked dirty so the scoring job (or the next full recompute) builds
their rows. The snapshots and the dirty marks lose their foreign
keys (see the models). On PostgreSQL the scratch table ``score_work`` becomes UNLOGGED: its rows live for one
scoring run and need no write-ahead log.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "record_contribution",
        sa.Column("citizen_id", BIG, nullable=False),
        sa.Column("record_id", BIG, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("direct_rank", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("citizen_id", "record_id", name=op.f("pk_record_contribution")),
    )
    op.execute(
        "INSERT INTO score_dirty (citizen_id) SELECT DISTINCT citizen_id FROM record"
        " WHERE citizen_id NOT IN (SELECT citizen_id FROM score_dirty)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE score_work SET UNLOGGED")
    # Snapshots are written by one function from citizen rows it has just read; the foreign-key
    # checks (a row lock on each citizen) were two thirds of a first run's snapshot writes.
    with op.batch_alter_table("score_dirty") as batch_op:
        batch_op.drop_constraint("fk_score_dirty_citizen_id_citizen", type_="foreignkey")
    with op.batch_alter_table("score_snapshot") as batch_op:
        batch_op.drop_constraint("fk_score_snapshot_citizen_id_citizen", type_="foreignkey")
        batch_op.drop_constraint(
            "fk_score_snapshot_model_version_id_scoring_model_version", type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("score_dirty") as batch_op:
        batch_op.create_foreign_key(
            "fk_score_dirty_citizen_id_citizen", "citizen", ["citizen_id"], ["id"]
        )
    with op.batch_alter_table("score_snapshot") as batch_op:
        batch_op.create_foreign_key(
            "fk_score_snapshot_citizen_id_citizen", "citizen", ["citizen_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_score_snapshot_model_version_id_scoring_model_version",
            "scoring_model_version",
            ["model_version_id"],
            ["id"],
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE score_work SET LOGGED")
    op.drop_table("record_contribution")
