"""the objection workflow: a deadline in working days, the source's answer, and each step's history

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 22:15:00.000000

Objections already filed get their deadline from the filing date (in the city's timezone) and the
configured number of working days (CITYCREDIT_OBJECTION_DAYS, default 20) on the official calendar,
and a ``filed`` step; a filing date beyond the known calendar leaves the deadline empty.
"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import citycredit.core.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PENDING = "status IN ('open', 'forwarded', 'answered')"
STATUSES = "status IN ('open', 'forwarded', 'answered', 'upheld', 'rejected', 'withdrawn')"
OLD_STATUSES = "status IN ('open', 'upheld', 'rejected', 'withdrawn')"


def upgrade() -> None:
    op.create_table(
        "objection_step",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "objection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("at", citycredit.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "step IN ('filed', 'forwarded', 'answered', 'upheld', 'rejected', 'withdrawn')",
            name=op.f("ck_objection_step_step"),
        ),
        sa.ForeignKeyConstraint(
            ["objection_id"],
            ["objection.id"],
            name=op.f("fk_objection_step_objection_id_objection"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objection_step")),
    )
    with op.batch_alter_table("objection_step", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_objection_step_objection_id"), ["objection_id"], unique=False
        )

    with op.batch_alter_table("objection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("source_answer", sa.String(length=2000), nullable=True))
        batch_op.drop_constraint(batch_op.f("ck_objection_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_objection_status"), sa.text(STATUSES))
        batch_op.drop_index(
            "uq_objection_open_record",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.create_index(
            "uq_objection_open_record",
            ["record_id"],
            unique=True,
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
        batch_op.create_index("ix_objection_status_deadline", ["status", "deadline"], unique=False)

    _backfill()


def _backfill() -> None:
    from citycredit.core.workdays import CalendarUnknown, load_calendar

    connection = op.get_bind()
    calendar = load_calendar(os.environ.get("CITYCREDIT_WORKDAYS_FILE") or None)
    days = int(os.environ.get("CITYCREDIT_OBJECTION_DAYS", "20"))
    zone = ZoneInfo(os.environ.get("CITYCREDIT_TIMEZONE", "Asia/Shanghai"))
    objection = sa.table(
        "objection",
        sa.column("id", sa.Integer()),
        sa.column("citizen_id", sa.Integer()),
        sa.column("created_at", citycredit.core.db.UTCDateTime(timezone=True)),
        sa.column("deadline", sa.Date()),
    )
    step = sa.table(
        "objection_step",
        sa.column("objection_id", sa.Integer()),
        sa.column("step", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("at", citycredit.core.db.UTCDateTime(timezone=True)),
    )
    rows = connection.execute(
        sa.select(objection.c.id, objection.c.citizen_id, objection.c.created_at)
    ).all()
    for row in rows:
        try:
            deadline = calendar.add_working_days(row.created_at.astimezone(zone).date(), days)
        except CalendarUnknown:
            deadline = None
        connection.execute(
            sa.update(objection).where(objection.c.id == row.id).values(deadline=deadline)
        )
        connection.execute(
            sa.insert(step).values(
                objection_id=row.id,
                step="filed",
                actor=f"citizen:{row.citizen_id}",
                at=row.created_at,
            )
        )


def downgrade() -> None:
    op.execute("UPDATE objection SET status = 'open' WHERE status IN ('forwarded', 'answered')")
    with op.batch_alter_table("objection", schema=None) as batch_op:
        batch_op.drop_index("ix_objection_status_deadline")
        batch_op.drop_index(
            "uq_objection_open_record",
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
        batch_op.create_index(
            "uq_objection_open_record",
            ["record_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_constraint(batch_op.f("ck_objection_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_objection_status"), sa.text(OLD_STATUSES))
        batch_op.drop_column("source_answer")
        batch_op.drop_column("deadline")
    with op.batch_alter_table("objection_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_objection_step_objection_id"))
    op.drop_table("objection_step")
