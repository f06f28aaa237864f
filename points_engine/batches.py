"""One ingest, written once: batch, rows, chunks, report, scores. Every entry point calls :func:`ingest`.

The CLI and the benchmarks commit chunk by chunk (``commit_chunks=True``): a city-scale file holds no
long transaction, and a crash keeps whole chunks that a rerun recognises. The records API makes the
whole upload one unit of work that its request commits (``commit_chunks=False``): nothing of a failed
upload remains, not even its batch.

A batch committed as ``running`` renews a heartbeat (``progress_at``) with every chunk and names its
runner (``host:pid``). A run that stops with a chance to say so marks its batch ``failed`` (or
``interrupted`` on Ctrl-C); a run killed without one is found ``interrupted`` by the next run of the same
origin (at once when the runner was on the same host and is gone, else once the heartbeat is
:data:`STALE_AFTER` old) or by the scheduler's :func:`mark_interrupted`. The next run of that origin
records the batch it completes.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.db import utcnow
from points_engine import quality
from points_engine.ingest import (
    IngestReport,
    RowError,
    detect_format,
    finish_batch,
    ingest_rows,
    read_rows,
    start_batch,
    write_report_file,
)
from points_engine.models import BatchStatus, IngestBatch
from points_engine.operations import drain_dirty, published_model

# Longer than any chunk can take (5,000 rows take about a second; the CLI allows bigger chunks), so
# a slow run on another host is never taken for a dead one.
STALE_AFTER = dt.timedelta(minutes=15)
UNFINISHED = (BatchStatus.FAILED, BatchStatus.INTERRUPTED)

Rows = Iterable[tuple[int, dict[str, Any] | RowError]]


@dataclass(frozen=True)
class Completion:
    """The earlier, unfinished run of the same origin that this run completes."""

    batch_id: int
    status: str
    rows: int

    def __str__(self) -> str:
        return f"completes batch #{self.batch_id} ({self.status} after {self.rows} rows)"


@dataclass
class IngestResult:
    report: IngestReport
    completes: Completion | None
    # Citizens whose scores were recomputed once the rows were in, and how many of them changed.
    rescored: int
    changed: int
    rows_seconds: float
    scores_seconds: float


def ingest(
    session: Session,
    rows: Rows,
    *,
    origin: str,
    fmt: str,
    key: bytes,
    today: dt.date,
    chunk_size: int = 5000,
    commit_chunks: bool = False,
    only_source: str | None = None,
    backfill: bool = False,
    progress: Callable[[IngestReport], None] | None = None,
    report_path: Path | None = None,
    workers: int = 1,
) -> IngestResult:
    """Ingest numbered rows as one batch, then rescore the citizens they touched.

    ``commit_chunks``: this function owns the session's transactions (a commit per chunk; on failure a
    rollback, the batch marked ``failed``, and the error raised again). Without it, it only flushes and
    the caller commits once, or rolls everything back. ``progress`` gets the running report after each
    chunk; ``report_path`` receives the per-row error report (CSV) when a row is rejected, and is
    removed otherwise (a report left from an earlier run would contradict this one).
    Raises :class:`~points_engine.operations.NoPublishedModel` before any batch exists.
    """
    published_model(session)
    completes = _take_over(session, origin) if commit_chunks else None
    batch = start_batch(session, origin, fmt, completes=completes)
    completion = (
        Completion(completes.id, completes.status, completes.rows_total) if completes else None
    )
    if commit_chunks:
        session.commit()
    started = time.perf_counter()
    try:
        report = None
        for report in ingest_rows(
            session,
            rows,
            key=key,
            batch=batch,
            today=today,
            chunk_size=chunk_size,
            only_source=only_source,
            backfill=backfill,
        ):
            if commit_chunks:
                session.commit()  # one chunk, one transaction: a crash keeps whole chunks only
            if progress is not None:
                progress(report)
        assert report is not None  # ingest_rows yields at least once
        if completes is not None:
            quality.absorb_interrupted(session, completes.id, batch.id)
        if report_path is not None and report.errors:
            write_report_file(report_path, report.errors)
        elif report_path is not None:
            report_path.unlink(missing_ok=True)
        finish_batch(batch, report, str(report_path) if report_path and report.errors else None)
        if commit_chunks:
            session.commit()
    except BaseException as exc:
        if commit_chunks:
            _give_up(session, batch, exc)
        raise
    rows_seconds = time.perf_counter() - started
    # Scores in a transaction of their own: the batch is complete either way, and scores an
    # interrupted drain leaves behind are caught up by the scheduler (dirty marks survive).
    started = time.perf_counter()
    try:
        scored = drain_dirty(
            session,
            as_of=today,
            commit=session.commit if commit_chunks else None,
            workers=workers,
        )
        if commit_chunks:
            session.commit()
    except BaseException:
        if commit_chunks:
            session.rollback()
        raise
    return IngestResult(
        report=report,
        completes=completion,
        rescored=scored.citizens,
        changed=scored.changed,
        rows_seconds=rows_seconds,
        scores_seconds=time.perf_counter() - started,
    )


def ingest_file(
    session: Session, path: Path, *, fmt: str | None = None, **options: Any
) -> IngestResult:
    """:func:`ingest` of a CSV or JSON Lines file (UTF-8, with or without BOM), its origin the full path.

    Raises UnicodeDecodeError or csv.Error for a file that cannot be read (whole chunks before the
    problem are kept); ``options`` are :func:`ingest`'s.
    """
    fmt = fmt or detect_format(path)
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return ingest(
            session, read_rows(stream, fmt), origin=str(path.resolve()), fmt=fmt, **options
        )


# --- interrupted runs -----------------------------------------------------------------------------


def is_abandoned(
    batch: IngestBatch, *, now: dt.datetime | None = None, stale_after: dt.timedelta = STALE_AFTER
) -> bool:
    """Whether a ``running`` batch's runner is gone: vanished from this host, or silent too long."""
    if batch.status != BatchStatus.RUNNING:
        return False
    beat = batch.progress_at or batch.started_at
    if beat < (now or utcnow()) - stale_after:
        return True
    host, _, pid = (batch.runner or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def mark_interrupted(
    session: Session, *, now: dt.datetime | None = None, stale_after: dt.timedelta = STALE_AFTER
) -> list[int]:
    """Mark every abandoned running batch ``interrupted``; their ids (the scheduler runs this)."""
    found = []
    for batch in session.scalars(
        select(IngestBatch)
        .where(IngestBatch.status == BatchStatus.RUNNING)
        .order_by(IngestBatch.id)
    ):
        if is_abandoned(batch, now=now, stale_after=stale_after):
            batch.status = BatchStatus.INTERRUPTED
            found.append(batch.id)
    session.flush()
    return found


def _take_over(session: Session, origin: str) -> IngestBatch | None:
    """The last batch of ``origin`` when it did not finish (marked interrupted if it was abandoned)."""
    last = session.scalar(
        select(IngestBatch)
        .where(IngestBatch.origin == origin)
        .order_by(IngestBatch.id.desc())
        .limit(1)
    )
    if last is None:
        return None
    if is_abandoned(last):
        last.status = BatchStatus.INTERRUPTED
    return last if last.status in UNFINISHED else None


def _give_up(session: Session, batch: IngestBatch, exc: BaseException) -> None:
    """After a failure: keep the committed chunks, and say the batch stopped and how."""
    session.rollback()
    stopped = isinstance(exc, KeyboardInterrupt | SystemExit)
    try:
        batch.status = BatchStatus.INTERRUPTED if stopped else BatchStatus.FAILED
        batch.finished_at = utcnow()
        session.commit()
    except Exception:
        # The database itself may be what failed: the heartbeat rule marks the batch later.
        session.rollback()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself hold spaces or parentheses.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
