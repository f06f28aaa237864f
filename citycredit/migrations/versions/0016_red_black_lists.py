"""red and black lists: entries (masked names, decisions, publication periods) and their history

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = citycredit.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "list_entry",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("list_code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", BIG, nullable=False),
        sa.Column("record_id", BIG, nullable=False),
        sa.Column("masked_name", sa.String(length=64), nullable=False),
        sa.Column("decision_no", sa.String(length=200), nullable=False),
        sa.Column("legal_basis", sa.String(length=500), nullable=False),
        sa.Column("start_on", sa.Date(), nullable=False),
        sa.Column("publish_until", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("lifted_on", sa.Date(), nullable=True),
        sa.Column("lift_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.CheckConstraint("kind IN ('red', 'black')", name=op.f("ck_list_entry_kind")),
        sa.CheckConstraint("status IN ('listed', 'lifted')", name=op.f("ck_list_entry_status")),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizen.id"], name=op.f("fk_list_entry_citizen_id_citizen")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["record.id"], name=op.f("fk_list_entry_record_id_record")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["data_source.id"], name=op.f("fk_list_entry_source_id_data_source")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_entry")),
        sa.UniqueConstraint("public_id", name=op.f("uq_list_entry_public_id")),
        sa.UniqueConstraint(
            "list_code",
            "source_id",
            "decision_no",
            name=op.f("uq_list_entry_list_code"),
        ),
    )
    with op.batch_alter_table("list_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_list_entry_citizen_id"), ["citizen_id"], unique=False)
        batch_op.create_index("ix_list_entry_public", ["status", "publish_until"], unique=False)
    op.create_table(
        "list_change",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("entry_id", BIG, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.CheckConstraint("change IN ('listed', 'lifted')", name=op.f("ck_list_change_change")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["list_entry.id"], name=op.f("fk_list_change_entry_id_list_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_change")),
    )
    with op.batch_alter_table("list_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_list_change_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_list_change_entry_id"), ["entry_id"], unique=False)


def downgrade() -> None:
    op.drop_table("list_change")
    op.drop_table("list_entry")
