"""the public credit information catalogue (versions, entries) and data quality per source
(tallies, rejected rows tracked to resolution, targets; a record's received and due days)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 01:17:59.406364
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import citycredit.core.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalogue_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column("submitted_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=True),
        sa.Column("published_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'in_review', 'published', 'superseded', 'rejected')",
            name=op.f("ck_catalogue_version_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_version")),
        sa.UniqueConstraint("number", name=op.f("uq_catalogue_version_number")),
    )
    with op.batch_alter_table("catalogue_version", schema=None) as batch_op:
        batch_op.create_index(
            "uq_catalogue_version_published",
            ["status"],
            unique=True,
            sqlite_where=sa.text("status = 'published'"),
            postgresql_where=sa.text("status = 'published'"),
        )

    op.create_table(
        "quality_target",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_quality_target")),
    )
    op.create_table(
        "catalogue_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("legal_basis", sa.String(length=500), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "reporters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("deadline_days", sa.Integer(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("publish_days", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["catalogue_version.id"],
            name=op.f("fk_catalogue_entry_version_id_catalogue_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_entry")),
        sa.UniqueConstraint("version_id", "code", name=op.f("uq_catalogue_entry_version_id")),
    )
    op.create_table(
        "ingest_tally",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["ingest_batch.id"], name=op.f("fk_ingest_tally_batch_id_ingest_batch")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["data_source.id"], name=op.f("fk_ingest_tally_source_id_data_source")
        ),
        sa.PrimaryKeyConstraint("batch_id", "source_id", "day", name=op.f("pk_ingest_tally")),
    )
    with op.batch_alter_table("ingest_tally", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_tally_day_source", ["day", "source_id"], unique=False)

    op.create_table(
        "rejected_row",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("source_record_id", sa.String(length=128), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("id_number_error", sa.Boolean(), nullable=False),
        sa.Column(
            "errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("resolved_at", citycredit.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("resolved_by_batch_id", sa.Integer(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["ingest_batch.id"], name=op.f("fk_rejected_row_batch_id_ingest_batch")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_batch_id"],
            ["ingest_batch.id"],
            name=op.f("fk_rejected_row_resolved_by_batch_id_ingest_batch"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["data_source.id"], name=op.f("fk_rejected_row_source_id_data_source")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_row")),
    )
    with op.batch_alter_table("rejected_row", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_row_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_rejected_row_day_source", ["received_on", "source_id"], unique=False
        )
        batch_op.create_index(
            "ix_rejected_row_open", ["source_id", "source_record_id", "resolved_at"], unique=False
        )

    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("received_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("due_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("catalogue_version", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_record_received_on_source", ["received_on", "source_id", "due_on"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_index("ix_record_received_on_source")
        batch_op.drop_column("catalogue_version")
        batch_op.drop_column("due_on")
        batch_op.drop_column("received_on")

    with op.batch_alter_table("rejected_row", schema=None) as batch_op:
        batch_op.drop_index("ix_rejected_row_open")
        batch_op.drop_index("ix_rejected_row_day_source")
        batch_op.drop_index(batch_op.f("ix_rejected_row_batch_id"))

    op.drop_table("rejected_row")
    with op.batch_alter_table("ingest_tally", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_tally_day_source")

    op.drop_table("ingest_tally")
    op.drop_table("catalogue_entry")
    op.drop_table("quality_target")
    with op.batch_alter_table("catalogue_version", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_catalogue_version_published",
            sqlite_where=sa.text("status = 'published'"),
            postgresql_where=sa.text("status = 'published'"),
        )

    op.drop_table("catalogue_version")
