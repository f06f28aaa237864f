"""Database models of the points engine.

This package also holds the reference scoring-model files (``reference/*.yaml``): "models" are both the
tables below and the scoring models the city publishes; the issue asked for the files here.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from citycredit.core.db import Base, BigIntPK, JSONDoc, utcnow

BigFK = BigInteger().with_variant(Integer(), "sqlite")


class RecordStatus(enum.StrEnum):
    ACTIVE = "active"
    UNDER_OBJECTION = "under_objection"
    REPAIRED = "repaired"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ModelStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class DataSource(Base):
    """A department that reports records: a court, the tax bureau, the water company, a volunteer federation."""

    __tablename__ = "data_source"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    # The scoring items this department may report (a volunteer federation cannot file a court
    # listing); None while an operator has not restricted it.
    items: Mapped[list[str] | None] = mapped_column(JSONDoc)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Citizen(Base):
    """A person known to the platform by a keyed hash of the ID number; the number itself is never stored."""

    __tablename__ = "citizen"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Kept because scenario rules need age (≥ 18); derived from the ID number, nothing else of it is kept.
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    consent_given: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    consent_changed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="citizen", order_by="ConsentEvent.id"
    )


class ConsentEvent(Base):
    """Every consent given or withdrawn, kept so the citizen can see the history."""

    __tablename__ = "consent_event"
    __table_args__ = (CheckConstraint("action IN ('given', 'withdrawn')", name="action"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    citizen: Mapped[Citizen] = relationship(back_populates="consent_events")


class ScoringModelVersion(Base):
    """One loaded scoring-model file; exactly one version is published at a time."""

    __tablename__ = "scoring_model_version"
    __table_args__ = (
        CheckConstraint(_in("status", ModelStatus), name="status"),
        CheckConstraint("kind IN ('itemised', 'weighted')", name="kind"),
        UniqueConstraint("name", "version"),
        Index(
            "uq_scoring_model_version_one_published",
            "status",
            unique=True,
            sqlite_where=text("status = 'published'"),
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ModelStatus.DRAFT)
    source_text: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"


class ScoringItem(Base):
    """An item of a model version, flattened so that set-based SQL can join records to their rules."""

    __tablename__ = "scoring_item"
    __table_args__ = (UniqueConstraint("model_version_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("scoring_model_version.id"))
    code: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[str] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(Integer)
    repaired_points: Mapped[int] = mapped_column(Integer)
    # Validity: calendar months, then days (citycredit.core.db.add_period).
    validity_days: Mapped[int] = mapped_column(Integer)
    validity_months: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # How long a repaired record counts from its repair date; NULL: its own validity, from occurred_on.
    repaired_validity_months: Mapped[int | None] = mapped_column(Integer)
    repaired_validity_days: Mapped[int | None] = mapped_column(Integer)
    yearly_cap: Mapped[int | None] = mapped_column(Integer)
    direct_tier_rank: Mapped[int | None] = mapped_column(Integer)
    overlap_group: Mapped[str | None] = mapped_column(String(64))
    repeat_multiplier: Mapped[int | None] = mapped_column(Integer)
    needs_ordering: Mapped[bool] = mapped_column(Boolean)


class BatchStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    # Stopped with a chance to say so (an error, a bad file).
    FAILED = "failed"
    # Stopped without one (killed, the host went down, Ctrl-C): found by its silent heartbeat.
    INTERRUPTED = "interrupted"


class IngestBatch(Base):
    """One ingestion run (a file from the CLI, an upload to the records API) and its report."""

    __tablename__ = "ingest_batch"
    __table_args__ = (CheckConstraint(_in("status", BatchStatus), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The file's absolute path, or ``api:<client id>``: a rerun of the same origin finds its batches.
    origin: Mapped[str] = mapped_column(String(500), index=True)
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.RUNNING)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    # Heartbeat: renewed with every committed chunk; a running batch silent for long was interrupted.
    progress_at: Mapped[dt.datetime | None]
    # "host:pid" of the process writing it: on the same host, a vanished process is seen at once.
    runner: Mapped[str | None] = mapped_column(String(300))
    # The interrupted or failed run of the same origin that this one completes (reruns are idempotent).
    completes_batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("ingest_batch.id"), index=True
    )
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    # The first rejected rows (row, field, reason); the full list goes to the report file.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    report_path: Mapped[str | None] = mapped_column(String(1000))


class Record(Base):
    """A lawful public credit record about a citizen, as reported by a source. Never deleted by the engine."""

    __tablename__ = "record"
    __table_args__ = (
        UniqueConstraint("source_id", "source_record_id"),
        CheckConstraint(_in("status", RecordStatus), name="status"),
        CheckConstraint("source_status IN ('active', 'repaired', 'revoked')", name="source_status"),
        CheckConstraint("workflow IN ('none', 'under_objection')", name="workflow"),
        CheckConstraint("outcome IN ('none', 'revoked', 'repaired')", name="outcome"),
        CheckConstraint("reported_on >= occurred_on", name="reported_after_occurred"),
        Index("ix_record_status_expires_on", "status", "expires_on"),
        # The monthly quality figures read a month of records by the day they arrived (index only).
        Index("ix_record_received_on_source", "received_on", "source_id", "due_on"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("data_source.id"))
    source_record_id: Mapped[str] = mapped_column(String(128))
    citizen_id: Mapped[int] = mapped_column(BigFK, ForeignKey("citizen.id"), index=True)
    item_code: Mapped[str] = mapped_column(String(64))
    document_no: Mapped[str] = mapped_column(String(200))
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    reported_on: Mapped[dt.date] = mapped_column(Date)
    # State (points_engine.record_state owns every write): what the source asserts, the platform's
    # workflow, and ``status`` derived from the two for pages and rules. Time is never a status.
    source_status: Mapped[str] = mapped_column(
        String(16), default="active", server_default=text("'active'")
    )
    workflow: Mapped[str] = mapped_column(String(16), default="none", server_default=text("'none'"))
    # What the platform's procedures decided (an objection upheld: revoked; a repair approved:
    # repaired); a source re-sending the row does not undo it.
    outcome: Mapped[str] = mapped_column(String(16), default="none", server_default=text("'none'"))
    # The day the record was repaired (by the source, or by an approved application): a repaired
    # record counts its item's repaired value, for the item's repaired validity from this day.
    repaired_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=RecordStatus.ACTIVE)
    # The expiry job has rescored the citizen since this record crossed ``expires_on``.
    expiry_rescored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Computed from the published model's validity rules; recomputed when another model is published.
    expires_on: Mapped[dt.date | None] = mapped_column(Date)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batch.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Data quality (issue 13): the city day the platform first received the record, the last day its
    # catalogue entry allowed (occurred_on + the entry's deadline in working days), and the catalogue
    # version it was accepted under. None for records that came before the catalogue.
    received_on: Mapped[dt.date | None] = mapped_column(Date)
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    catalogue_version: Mapped[int | None] = mapped_column(Integer)

    source: Mapped[DataSource] = relationship()


class RecordRevision(Base):
    """The previous content of a record each time a source sends a changed version of it."""

    __tablename__ = "record_revision"
    __table_args__ = (UniqueConstraint("record_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    record_id: Mapped[int] = mapped_column(BigFK, ForeignKey("record.id"))
    revision: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    replaced_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    replaced_by_batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batch.id"))


class ScoreSnapshot(Base):
    """A computed score; a new snapshot is written only when the result changes, so history stays small."""

    __tablename__ = "score_snapshot"
    __table_args__ = (
        Index(
            "uq_score_snapshot_current",
            "citizen_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_score_snapshot_citizen_id", "citizen_id", "computed_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # No foreign keys: one function writes snapshots (``scoring.apply_work``), from work rows selected
    # from ``citizen`` in the same transaction, for the published model version; neither citizens
    # nor model versions are ever deleted. The two checks were two thirds of a first run's writes.
    citizen_id: Mapped[int] = mapped_column(BigFK)
    model_version_id: Mapped[int] = mapped_column(Integer)
    score: Mapped[int] = mapped_column(Integer)
    tier_code: Mapped[str] = mapped_column(String(64))
    tier_rank: Mapped[int] = mapped_column(Integer)
    common_tier: Mapped[int] = mapped_column(Integer)
    direct_tier: Mapped[bool] = mapped_column(Boolean)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)


class ScoreWork(Base):
    """Scratch rows of one scoring run (recompute or what-if), deleted when the run ends."""

    __tablename__ = "score_work"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(BigFK, primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    tier_rank: Mapped[int] = mapped_column(Integer)
    direct_tier: Mapped[bool] = mapped_column(Boolean)
    breakdown: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class RecordContribution(Base):
    """What one record adds under the published model, its ordered rules (overlap, repeat) applied.

    Independent of the day: the full recompute only sums the rows that have not expired, applies the
    caps and writes the snapshots that changed. Kept current for every citizen not in ``score_dirty``
    (whoever changes a record marks its citizen dirty; scoring a citizen rebuilds their rows). Only
    records that count are kept. Derived data, never shown: a score needs the citizen's consent.
    """

    __tablename__ = "record_contribution"

    citizen_id: Mapped[int] = mapped_column(BigFK, primary_key=True)
    record_id: Mapped[int] = mapped_column(BigFK, primary_key=True)
    # The scoring item of the model version it was computed for (so also the dimension and caps).
    item_id: Mapped[int] = mapped_column(Integer)
    year: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    direct_rank: Mapped[int | None] = mapped_column(Integer)


class ScoreDirty(Base):
    """Citizens whose records changed and whose score must be recomputed (drained at once, or by the job)."""

    __tablename__ = "score_dirty"

    # No foreign key: marks are written by the thousand (an import, a model change) for citizens
    # just read or written, and citizens are never deleted; the check locked each citizen's row.
    citizen_id: Mapped[int] = mapped_column(BigFK, primary_key=True)


# --- the public credit information catalogue (目录) -------------------------------------------------


class CatalogueStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


class CatalogueVersion(Base):
    """One numbered version of what the city may collect; one is published at a time (four eyes)."""

    __tablename__ = "catalogue_version"
    __table_args__ = (
        CheckConstraint(_in("status", CatalogueStatus), name="status"),
        # At most one published version at a time.
        Index(
            "uq_catalogue_version_published",
            "status",
            unique=True,
            sqlite_where=text("status = 'published'"),
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16), default=CatalogueStatus.DRAFT)
    note: Mapped[str] = mapped_column(String(500), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    published_at: Mapped[dt.datetime | None]
    superseded_at: Mapped[dt.datetime | None]

    entries: Mapped[list[CatalogueEntry]] = relationship(
        order_by="CatalogueEntry.code", cascade="all, delete-orphan"
    )


class CatalogueEntry(Base):
    """What may be collected: a kind of record, its legal basis, who reports it and by when.

    A scoring item scores the records of the entry with the same code; an entry need not score.
    """

    __tablename__ = "catalogue_entry"
    __table_args__ = (UniqueConstraint("version_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("catalogue_version.id"))
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(500))
    # The record fields the entry carries, by name (docs/CATALOGUE.md).
    fields: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    # Source codes that may report it; None: any source.
    reporters: Mapped[list[str] | None] = mapped_column(JSONDoc)
    deadline_days: Mapped[int] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    publish_days: Mapped[int | None] = mapped_column(Integer)


# --- data quality per source --------------------------------------------------------------------


class IngestTally(Base):
    """What one batch received from one source on one city day: the figures unchanged rows leave."""

    __tablename__ = "ingest_tally"
    __table_args__ = (Index("ix_ingest_tally_day_source", "day", "source_id"),)

    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batch.id"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("data_source.id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    received: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class RejectedRow(Base):
    """A row refused to a known source, kept until the source sends it again and it lands (跟踪).

    Never the ID number: the errors are the masked ones of the ingest report.
    """

    __tablename__ = "rejected_row"
    __table_args__ = (
        Index("ix_rejected_row_day_source", "received_on", "source_id"),
        Index("ix_rejected_row_open", "source_id", "source_record_id", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("data_source.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batch.id"), index=True)
    row: Mapped[int] = mapped_column(Integer)
    source_record_id: Mapped[str] = mapped_column(String(128))
    received_on: Mapped[dt.date] = mapped_column(Date)
    # The first problem's code (points_engine.ingest.REASONS) and every problem of the row.
    reason: Mapped[str] = mapped_column(String(32))
    id_number_error: Mapped[bool] = mapped_column(Boolean, default=False)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    resolved_at: Mapped[dt.datetime | None]
    # "resent" (a later row with the same source record id landed) or "dismissed" (by a person).
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_by_batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batch.id"))
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class QualityTarget(Base):
    """A target the city sets for its sources (defaults: points_engine.quality.DEFAULT_TARGETS)."""

    __tablename__ = "quality_target"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
