"""the tamper-evident audit log: per-event seals, signed checkpoints, and insert-only triggers

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = citycredit.core.db.UTCDateTime(timezone=True)
# The audit log's tables refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) to every role: an
# application bug or a stolen application login cannot rewrite history. A superuser can still go
# around a trigger; the seals and the signed checkpoints are what detect that (docs/AUDIT.md).
INSERT_ONLY = ("audit_event", "audit_seal", "audit_checkpoint")


def upgrade() -> None:
    op.create_table(
        "audit_seal",
        sa.Column("event_id", BIG, autoincrement=False, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_seal")),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("up_to_event_id", BIG, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("count", BIG, nullable=False),
        sa.Column("signed_at", WHEN, nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
        sa.UniqueConstraint("up_to_event_id", name=op.f("uq_audit_checkpoint_up_to_event_id")),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the audit log is insert-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        for table in INSERT_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_insert_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_insert_only()"
            )
    else:  # SQLite has no TRUNCATE (a DELETE without WHERE fires the trigger too)
        for table in INSERT_ONLY:
            for change in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{change.lower()} BEFORE {change} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the audit log is insert-only: {change} on "
                    f"{table} refused'); END"
                )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in INSERT_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_insert_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_insert_only()")
    else:
        for table in INSERT_ONLY:
            for change in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{change}")
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_seal")
