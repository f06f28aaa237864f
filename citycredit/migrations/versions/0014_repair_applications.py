"""citizens' credit repair applications (信用修复), their steps and attachments

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PENDING = "status IN ('submitted', 'proposed')"
WHEN = citycredit.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "repair_application",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("citizen_id", BIG, nullable=False),
        sa.Column("record_id", BIG, nullable=False),
        sa.Column("statement", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("proposal", sa.String(length=8), nullable=True),
        sa.Column("proposed_by", sa.String(length=200), nullable=True),
        sa.Column("proposal_note", sa.String(length=1000), nullable=True),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decision_note", sa.String(length=1000), nullable=True),
        sa.Column("repaired_on", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "status IN ('submitted', 'proposed', 'approved', 'refused', 'withdrawn')",
            name=op.f("ck_repair_application_status"),
        ),
        sa.CheckConstraint(
            "proposal IS NULL OR proposal IN ('approve', 'refuse')",
            name=op.f("ck_repair_application_proposal"),
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizen.id"], name=op.f("fk_repair_application_citizen_id_citizen")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["record.id"], name=op.f("fk_repair_application_record_id_record")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repair_application")),
        sa.UniqueConstraint("public_id", name=op.f("uq_repair_application_public_id")),
    )
    with op.batch_alter_table("repair_application", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repair_application_citizen_id"), ["citizen_id"], unique=False
        )
        batch_op.create_index(
            "ix_repair_application_status", ["status", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_repair_pending_record",
            ["record_id"],
            unique=True,
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
    op.create_table(
        "repair_step",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("application_id", BIG, nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.CheckConstraint(
            "step IN ('submitted', 'proposed', 'returned', 'approved', 'refused', 'withdrawn')",
            name=op.f("ck_repair_step_step"),
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["repair_application.id"],
            name=op.f("fk_repair_step_application_id_repair_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repair_step")),
    )
    with op.batch_alter_table("repair_step", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repair_step_application_id"), ["application_id"], unique=False
        )
    op.create_table(
        "repair_attachment",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("application_id", BIG, nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["repair_application.id"],
            name=op.f("fk_repair_attachment_application_id_repair_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repair_attachment")),
    )
    with op.batch_alter_table("repair_attachment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repair_attachment_application_id"), ["application_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("repair_attachment")
    op.drop_table("repair_step")
    with op.batch_alter_table("repair_application", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_repair_pending_record",
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
        batch_op.drop_index("ix_repair_application_status")
        batch_op.drop_index(batch_op.f("ix_repair_application_citizen_id"))
    op.drop_table("repair_application")
