"""Ingestion of records from sources (CSV or JSON Lines), row by row validated, in bulk written.

Good rows land; every bad row is reported with its row number, field and reason; the same rows sent
twice change nothing (a record is identified by its source and the source's own id); a changed row is an
update whose previous content is kept as a revision. Work happens in chunks, each one transaction that
the caller commits, so a crash leaves whole chunks behind and a rerun resumes idempotently.

The ID number of a row is validated, hashed, and forgotten: it appears in no error, report or log, and
a row carrying one in a free-text field (``source_record_id``, ``document_no``) is refused, never stored.
Control characters (NUL and the rest) in any field are a row error naming the field: PostgreSQL refuses
NUL in text, and no record field has a use for tabs or line breaks.

:mod:`points_engine.batches` runs a whole ingest (batch, chunks, report, scores) for every entry point.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import socket
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from citycredit.core.db import utcnow
from citycredit.core.idnumber import InvalidIdNumber, id_hash, mask, parse_id_number
from points_engine import quality
from points_engine.catalogue import Entry, current_catalogue
from points_engine.models import (
    BatchStatus,
    Citizen,
    DataSource,
    IngestBatch,
    Record,
    RecordRevision,
    RecordStatus,
    RejectedRow,
)
from points_engine.operations import mark_dirty, mark_dirty_where, published_model
from points_engine.record_state import new_record_state, source_restatement
from points_engine.scoring_model import ScoringModel

FIELDS = (
    "source",
    "source_record_id",
    "id_number",
    "item_code",
    "document_no",
    "occurred_on",
    "reported_on",
    "status",
)
REQUIRED = FIELDS[:-1]
# Sources report these; objections and expiry are the platform's own workflows.
SOURCE_STATUSES = (RecordStatus.ACTIVE, RecordStatus.REPAIRED, RecordStatus.REVOKED)
# Text a source writes freely (codes are checked against known lists): never the home of an ID number.
FREE_TEXT = ("source_record_id", "document_no")
# ``source_status`` is the source's word only: the platform's workflow and time are kept apart from
# it (points_engine.record_state), so a re-sent row can neither undo an objection nor hide a repair.
COMPARED = (
    "citizen_id",
    "item_code",
    "document_no",
    "occurred_on",
    "reported_on",
    "source_status",
)
KEPT_ERRORS = 200


# Why a row was refused, as the data-quality figures count it (docs/DATA_QUALITY.md).
REASONS: dict[str, tuple[str, str]] = {
    "format": ("格式错误", "malformed line or header"),
    "missing": ("必填项缺失", "a required field is missing"),
    "source": ("来源不明", "unknown or wrong source"),
    "uncatalogued": ("不在目录内", "not in the catalogue"),
    "not_reporter": ("非本单位报送事项", "not this source's to report"),
    "id_number": ("身份证号码错误", "invalid ID number"),
    "id_in_text": ("其他字段含身份证号", "an ID number in another field"),
    "date": ("日期错误", "invalid or impossible date"),
    "status": ("状态错误", "unknown status"),
    "too_long": ("超长", "too long"),
    "unstorable": ("含控制字符", "control characters"),
}
_FIELD_REASON = {
    "id_number": "id_number",
    "occurred_on": "date",
    "reported_on": "date",
    "status": "status",
    "source": "source",
    "item_code": "uncatalogued",
}


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    reason: str
    source_record_id: str = ""
    # The row's source when it names a known one: lets a source's clerk read its own rejected rows.
    source: str = ""
    # One of REASONS (the figures' reason); by the field when the check did not say.
    code: str = ""

    @property
    def reason_code(self) -> str:
        return self.code or _FIELD_REASON.get(self.field, "format")


@dataclass
class IngestReport:
    batch_id: int
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Per source id: received, inserted, updated, unchanged, rejected (the data-quality tallies).
    tallies: dict[int, list[int]] = field(default_factory=dict)

    def tally(self, source_id: int, what: int, n: int = 1) -> None:
        counts = self.tallies.get(source_id)
        if counts is None:
            counts = self.tallies[source_id] = [0, 0, 0, 0, 0]
        counts[what] += n

    @property
    def rejected(self) -> int:
        return len({e.row for e in self.errors})


# Indexes into IngestReport.tallies' counts.
RECEIVED, INSERTED, UPDATED, UNCHANGED, REJECTED = range(5)


class _CleanRow(NamedTuple):
    """A validated row (a named tuple: one is built per input row, and cheaply)."""

    row: int
    source_id: int
    source_record_id: str
    id_hash: str
    birth_date: dt.date
    item_code: str
    document_no: str
    occurred_on: dt.date
    reported_on: dt.date
    status: str
    # The last day the catalogue allowed for reporting it (None without a catalogue).
    due_on: dt.date | None

    @property
    def key(self) -> tuple[int, str]:
        return (self.source_id, self.source_record_id)


# --- reading --------------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"{path.name}: unknown format (expected .csv, .jsonl or .ndjson)")


def read_rows(stream: Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Yield (row number, fields) or (row number, error). CSV rows count from 2, after the header."""
    if fmt == "csv":
        # csv.DictReader's rules (blank lines skipped, a short row's missing cells None), without
        # its cost per row.
        lines = csv.reader(stream)
        header = next(lines, None)
        if header is None:
            return  # an empty file: no rows, rather than one row with a bad header
        missing = [f for f in REQUIRED if f not in header]
        if missing:
            yield 1, RowError(1, ",".join(missing), "missing column(s) in the header")
            return
        width = len(header)
        number = 1
        for cells in lines:
            if not cells:
                continue
            number += 1
            if len(cells) == width:  # (checked: zip's own check would cost a fifth of the read)
                yield number, dict(zip(header, cells, strict=False))
            elif len(cells) > width:
                yield number, RowError(number, "(row)", "more values than header columns")
            else:
                row: dict[str, Any] = dict(zip(header, cells, strict=False))
                row.update(dict.fromkeys(header[len(cells) :]))
                yield number, row
        return
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield (
                number,
                RowError(number, "(line)", f"not valid JSON: {exc.msg} at column {exc.colno}"),
            )
            continue
        if not isinstance(value, dict):
            yield number, RowError(number, "(line)", "each line must be a JSON object")
            continue
        yield number, {k: v if v is None else str(v) for k, v in value.items()}


# --- validation -----------------------------------------------------------------------------------


_ID_LIKE = re.compile(r"[0-9]{17}[0-9Xx]")
# Standing alone: a longer run of digits (a serial number) is not read as an ID number inside it.
_ID_ALONE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
# C0 controls, DEL and C1 controls, and lone surrogates (a JSON "\ud800" decodes to one; no database
# can store it).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# A run of digits cut at the end of an echoed value may be the first part of an ID number (its region
# and birth date): masked too.
_DIGITS_AT_CUT = re.compile(r"[0-9]{6,}$")


def _scrub(text: str) -> str:
    """Mask anything shaped like an ID number before it can reach a report, a response or a log.

    Full-width digits (１１０…) are read as the digits they are, as ``holds_id_number`` reads them.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _ID_LIKE.sub(lambda m: mask(m.group(0).upper()), text)


def _echo(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters for a report, masked before the cut and at it."""
    shown = _scrub(value)[:limit]
    if len(value) > limit:
        shown = _DIGITS_AT_CUT.sub(lambda m: "*" * len(m.group(0)), shown)
    return shown


def _printable(text: str) -> str:
    """Escape control characters (as ``\\x00``) so an echoed value stays one line and storable."""
    return _UNSTORABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def _unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored (a control character, where), or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group(0)
    what = (
        "an unpaired surrogate (not valid Unicode text)"
        if char >= "\ud800"
        else "a control character"
    )
    return f"contains {what} U+{ord(char):04X} at character {found.start() + 1}"


def holds_id_number(text: str, today: dt.date) -> bool:
    """Whether ``text`` holds a valid citizen ID number (checksum and birth date), e.g. in a note."""
    if len(text) < 18:
        return False
    if not text.isascii():
        # Full-width digits (１２３) are digits too: the form a number typed in a Chinese IME takes.
        text = unicodedata.normalize("NFKC", text)
    for candidate in _ID_ALONE.findall(text):
        try:
            parse_id_number(candidate, today=today)
        except InvalidIdNumber:
            continue
        return True
    return False


def _parse_date(raw: str) -> dt.date:
    return dt.date.fromisoformat(raw)


# Entries a validator's cache holds before it starts again (each a few hundred bytes).
_CACHED = 100_000


class _Validator:
    def __init__(
        self,
        session: Session,
        key: bytes,
        model: ScoringModel,
        today: dt.date,
        only_source: str | None = None,
    ):
        self.key = key
        self.model = model
        self.today = today
        self.only_source = only_source
        sources = list(session.scalars(select(DataSource)))
        self.sources = {s.code: s.id for s in sources}
        self.source_items = {s.code: frozenset(s.items) if s.items else None for s in sources}
        self.catalogue = current_catalogue(session)
        # Work a city's rows repeat, done once: an ID number's check and keyed hash (a citizen has
        # many records), an item's verdict for a source, an entry's due day for a day. Bounded: a
        # cache is emptied when full rather than grow with a city-sized file.
        self._citizens: dict[str, tuple[str, dt.date] | str] = {}
        self._items: dict[
            tuple[str, str], tuple[Entry | None, tuple[tuple[str, str, str], ...]]
        ] = {}
        self._due: dict[tuple[str, dt.date], dt.date] = {}

    def check(self, number: int, raw: dict[str, Any]) -> _CleanRow | list[RowError]:
        errors: list[RowError] = []

        def err(field_name: str, reason: str, code: str = "") -> None:
            # Worked out for a refused row only (most rows are not).
            ref = _echo(str(raw.get("source_record_id") or ""), 128)
            if not ref.isprintable():
                ref = _printable(ref)
            named = str(raw.get("source") or "").strip()
            source = named if named in self.sources and named == (self.only_source or named) else ""
            # A row with a missing cell shifts the ID number into another field: never echo one.
            errors.append(RowError(number, field_name, _scrub(reason), _scrub(ref), source, code))

        # Every cell of the row, before stripping (a stripped tab was still sent); one scan per row
        # (isprintable is the fast path: few rows hold anything unprintable).
        try:
            joined = "".join(raw.values())
        except TypeError:  # a JSON null, a missing CSV cell
            joined = "".join(v for v in raw.values() if isinstance(v, str))
        unstorable = set()
        if not joined.isprintable() and _UNSTORABLE.search(joined):
            for name, value in raw.items():
                if isinstance(value, str) and (why := _unstorable(value)) is not None:
                    err(_printable(str(name))[:64], why, "unstorable")
                    unstorable.add(name)
        values = {f: (str(raw.get(f) or "")).strip() for f in FIELDS}
        if unstorable:
            # A field found unstorable is checked no further (one precise error, not a cascade).
            values.update(dict.fromkeys(unstorable.intersection(FIELDS), ""))
        if self.only_source is not None and values["source"] != self.only_source:
            if "source" not in unstorable:
                err(
                    "source",
                    f"this client writes only records of source {self.only_source!r}",
                    "source",
                )
            return errors
        for name in REQUIRED:
            if not values[name] and name not in unstorable:
                err(name, "missing", "missing")
        for name in FREE_TEXT:
            if len(values[name]) >= 18 and holds_id_number(values[name], self.today):
                err(
                    name,
                    "holds a citizen ID number; it belongs in id_number only and is never stored "
                    "in other fields",
                    "id_in_text",
                )
        source_id = self.sources.get(values["source"])
        if values["source"] and source_id is None:
            err("source", f"unknown source {_echo(values['source'], 64)!r}")
        if len(values["source_record_id"]) > 128:
            err("source_record_id", "longer than 128 characters", "too_long")
        if len(values["document_no"]) > 200:
            err("document_no", "longer than 200 characters", "too_long")
        verdict = self._items.get((values["item_code"], values["source"]))
        if verdict is None:
            verdict = self._item_verdict(values["item_code"], values["source"], source_id)
            if len(self._items) >= _CACHED:
                self._items.clear()
            self._items[values["item_code"], values["source"]] = verdict
        entry, item_errors = verdict
        for item_error in item_errors:
            err(*item_error)
        citizen = None
        if values["id_number"]:
            citizen = self._citizens.get(values["id_number"])
            if citizen is None:
                try:
                    parsed = parse_id_number(values["id_number"], today=self.today)
                    citizen = (id_hash(self.key, parsed), parsed.birth_date)
                except InvalidIdNumber as exc:
                    citizen = f"invalid ID number: {exc}"
                if len(self._citizens) >= _CACHED:
                    self._citizens.clear()
                self._citizens[values["id_number"]] = citizen
            if isinstance(citizen, str):
                err("id_number", citizen)
        dates: dict[str, dt.date] = {}
        for name in ("occurred_on", "reported_on"):
            if not values[name]:
                continue
            try:
                dates[name] = _parse_date(values[name])
            except ValueError:
                err(name, f"not a real date in YYYY-MM-DD form: {values[name][:32]!r}")
                continue
            if dates[name] > self.today:
                err(name, f"in the future ({dates[name]} is after {self.today})")
        if len(dates) == 2 and dates["reported_on"] < dates["occurred_on"]:
            err("reported_on", "before occurred_on")
        status = values["status"] or RecordStatus.ACTIVE.value
        if status not in SOURCE_STATUSES:
            err("status", f"must be one of {', '.join(SOURCE_STATUSES)}")
        if errors:
            return errors
        assert isinstance(citizen, tuple) and source_id is not None
        due_on = None
        if entry is not None:
            due_on = self._due.get((entry.code, dates["occurred_on"]))
            if due_on is None:
                if len(self._due) >= _CACHED:
                    self._due.clear()
                due_on = self._due[entry.code, dates["occurred_on"]] = entry.due_on(
                    dates["occurred_on"]
                )
        return _CleanRow(
            row=number,
            source_id=source_id,
            source_record_id=values["source_record_id"],
            id_hash=citizen[0],
            birth_date=citizen[1],
            item_code=values["item_code"],
            document_no=values["document_no"],
            occurred_on=dates["occurred_on"],
            reported_on=dates["reported_on"],
            status=status,
            due_on=due_on,
        )

    def _item_verdict(
        self, item_code: str, source: str, source_id: int | None
    ) -> tuple[Entry | None, tuple[tuple[str, str, str], ...]]:
        """The catalogue entry of ``item_code`` and the errors (field, reason, code) of reporting it
        from ``source`` (whose id is ``source_id`` when it is a known source)."""
        errors: list[tuple[str, str, str]] = []
        entry = None
        item_ok = bool(item_code)
        if not item_ok:
            pass
        elif self.catalogue is None:
            if item_code not in self.model.items:
                item_ok = False
                errors.append(("item_code", f"unknown scoring item {_echo(item_code, 64)!r}", ""))
        else:
            entry = self.catalogue.entries.get(item_code)
            refusal = self.catalogue.refusal(item_code, source)
            if refusal is not None:
                item_ok = False
                errors.append(
                    (
                        "item_code",
                        f"{_echo(item_code, 64)!r} {refusal}" if entry is None else refusal,
                        "uncatalogued" if entry is None else "not_reporter",
                    )
                )
        if source_id is not None and item_ok:
            allowed = self.source_items[source]
            if allowed is not None and item_code not in allowed:
                errors.append(
                    (
                        "item_code",
                        f"source {source!r} does not report {_echo(item_code, 64)!r}",
                        "not_reporter",
                    )
                )
        return entry, tuple(errors)


# --- writing --------------------------------------------------------------------------------------


def runner_id() -> str:
    """This process, as a batch records who writes it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def start_batch(
    session: Session, origin: str, fmt: str, *, completes: IngestBatch | None = None
) -> IngestBatch:
    now = utcnow()
    batch = IngestBatch(
        origin=origin,
        format=fmt,
        status=BatchStatus.RUNNING,
        errors=[],
        started_at=now,
        progress_at=now,
        runner=runner_id()[:300],
        completes_batch_id=completes.id if completes is not None else None,
    )
    session.add(batch)
    session.flush()
    return batch


def ingest_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, Any] | RowError]],
    *,
    key: bytes,
    batch: IngestBatch,
    today: dt.date,
    chunk_size: int = 5000,
    only_source: str | None = None,
    backfill: bool = False,
) -> Iterator[IngestReport]:
    """Validate and write rows chunk by chunk; yields the running report after each chunk.

    The caller may commit after each yield. Citizens whose records changed are marked dirty; the caller
    drains them (recomputes their scores) when the input ends. With ``only_source``, rows of any other
    source are refused (an API client bound to one department). ``backfill``: historic records loaded
    in bulk (存量), which no reporting deadline applies to: they get no due day, so they count in no
    on-time rate (docs/DATA_QUALITY.md).
    """
    _, model = published_model(session)
    validator = _Validator(session, key, model, today, only_source)
    report = IngestReport(batch_id=batch.id)
    chunk: list[_CleanRow] = []
    keys: set[tuple[int, str]] = set()
    rejected: list[RejectedRow] = []
    version = validator.catalogue.version if validator.catalogue is not None else None
    stamp = _Stamp(today, version, backfill)

    def flush_chunk() -> IngestReport:
        # Also resolves the rows refused earlier that this chunk's records re-send.
        _write_chunk(session, chunk, model, batch, report, stamp)
        session.add_all(rejected)
        quality.save_tallies(session, batch.id, today, report.tallies)
        chunk.clear()
        keys.clear()
        rejected.clear()
        _save_progress(batch, report)
        session.flush()
        return report

    def refuse(number: int, errors: list[RowError]) -> None:
        report.errors.extend(errors)
        source_id = validator.sources.get(errors[0].source or only_source or "")
        if source_id is None:
            return  # not a known source's row: the batch's report is all that can hold it
        report.tally(source_id, RECEIVED)
        report.tally(source_id, REJECTED)
        rejected.append(
            RejectedRow(
                source_id=source_id,
                batch_id=batch.id,
                row=number,
                source_record_id=errors[0].source_record_id[:128],
                received_on=today,
                reason=errors[0].reason_code,
                id_number_error=any(e.reason_code == "id_number" for e in errors),
                errors=[
                    {"field": e.field, "reason": e.reason, "code": e.reason_code}
                    for e in errors[:20]
                ],
            )
        )

    for number, raw in rows:
        report.rows += 1
        if isinstance(raw, RowError):
            refuse(number, [raw])
            continue
        checked = validator.check(number, raw)
        if isinstance(checked, list):
            refuse(number, checked)
            continue
        report.tally(checked.source_id, RECEIVED)
        if checked.key in keys:
            # The same record twice in one chunk: write what came first, then the later version.
            yield flush_chunk()
        chunk.append(checked)
        keys.add(checked.key)
        if len(chunk) >= chunk_size:
            yield flush_chunk()
    yield flush_chunk()


def finish_batch(batch: IngestBatch, report: IngestReport, report_path: str | None) -> None:
    _save_progress(batch, report)
    batch.status = BatchStatus.COMPLETED
    batch.finished_at = utcnow()
    batch.report_path = report_path


def _save_progress(batch: IngestBatch, report: IngestReport) -> None:
    batch.progress_at = utcnow()
    batch.rows_total = report.rows
    batch.inserted = report.inserted
    batch.updated = report.updated
    batch.unchanged = report.unchanged
    batch.rejected = report.rejected
    batch.errors = [e.__dict__ for e in report.errors[:KEPT_ERRORS]]


class _Stamp(NamedTuple):
    """What ingest writes on a new record besides the row: the day and the catalogue version."""

    received_on: dt.date
    catalogue_version: int | None
    backfill: bool = False


# The staging table a chunk is loaded into before it is merged (one per connection, TEMPORARY: it
# writes no WAL, no other session sees it, and it disappears with a crashed process). Its rows are
# validated rows plus what ingest derives for a new record; ``citizen_id`` and ``record_id`` are
# filled in the database.
_STAGE = Table(
    "ingest_stage",
    MetaData(),
    Column("row_no", Integer),
    Column("source_id", Integer),
    Column("source_record_id", String),
    Column("id_hash", String),
    Column("birth_date", Date),
    Column("item_code", String),
    Column("document_no", String),
    Column("occurred_on", Date),
    Column("reported_on", Date),
    Column("source_status", String),
    Column("repaired_on", Date),
    Column("expires_on", Date),
    Column("due_on", Date),
    Column("citizen_id", BigInteger),
    Column("record_id", BigInteger),
    # True when the row repeats its known record exactly.
    Column("same", Boolean),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
# The columns ingest fills (the rest are the database's to fill), and their binary COPY types.
_LOADED = tuple(column.name for column in _STAGE.c)[:-3]
_LOADED_TYPES = [
    "int4",
    "int4",
    "varchar",
    "varchar",
    "date",
    "varchar",
    "varchar",
    "date",
    "date",
    "varchar",
    "date",
    "date",
    "date",
]


def _write_chunk(
    session: Session,
    chunk: list[_CleanRow],
    model: ScoringModel,
    batch: IngestBatch,
    report: IngestReport,
    stamp: _Stamp,
) -> None:
    """Write a chunk through the staging table: citizens, new records, corrections, tallies, marks.

    The chunk is loaded into ``ingest_stage`` (a binary ``COPY`` on PostgreSQL) and merged with a
    fixed number of statements whatever its size. Corrections — a known record sent with changed
    content, the rare case — are read back and restated row by row by
    :func:`points_engine.record_state.source_restatement`.
    """
    if not chunk:
        return
    now = utcnow()
    expiry = _expiry(model)
    staged = []
    for row in chunk:
        # A new record filed as repaired was repaired, as far as the platform knows, when reported
        # (record_state.new_record_state, whose other state columns are constants here).
        repaired_on = row.reported_on if row.status == _REPAIRED else None
        staged.append(
            (
                row.row,
                row.source_id,
                row.source_record_id,
                row.id_hash,
                row.birth_date,
                row.item_code,
                row.document_no,
                row.occurred_on,
                row.reported_on,
                row.status,
                repaired_on,
                expiry(row.item_code, row.occurred_on, repaired_on),
                None if stamp.backfill else row.due_on,
            )
        )
    _load_stage(session, staged)
    stage = _STAGE.c
    _insert_citizens(session, now)
    # Every row's citizen and known record: one index probe each, whatever the statistics say (a
    # join could pick a scan of every record when the statistics are behind a big first load).
    session.execute(
        update(_STAGE).values(
            citizen_id=select(Citizen.id).where(Citizen.id_hash == stage.id_hash).scalar_subquery(),
            record_id=select(Record.id)
            .where(
                Record.source_id == stage.source_id,
                Record.source_record_id == stage.source_record_id,
            )
            .scalar_subquery(),
        )
    )
    # Counted and read before the new records land (they would look unchanged after).
    known = session.execute(
        select(stage.source_id, func.count(), func.count(stage.record_id)).group_by(stage.source_id)
    ).all()
    changed: Sequence[Any] = ()
    if any(found for _, _, found in known):
        # A known record is unchanged when the row repeats what it holds: a probe of its primary
        # key per row (a scalar subquery, never a join the planner could turn into a scan).
        same = (
            select(literal(True))
            .where(
                Record.id == stage.record_id,
                *(getattr(Record, name) == stage[name] for name in COMPARED),
            )
            .scalar_subquery()
        )
        session.execute(update(_STAGE).where(stage.record_id.is_not(None)).values(same=same))
        corrected_ids = select(stage.record_id).where(
            stage.record_id.is_not(None), stage.same.is_(None)
        )
        corrections = session.scalars(corrected_ids).all()
        if corrections:
            # By primary key: one array parameter on PostgreSQL (probes, whatever the statistics),
            # the staging table on SQLite (whose bound parameters are limited in number).
            by_id = (
                Record.id == any_(bindparam("ids", corrections, type_=ARRAY(BigInteger)))
                if session.get_bind().dialect.name == "postgresql"
                else Record.id.in_(corrected_ids)
            )
            changed = session.execute(
                select(
                    Record.id,
                    Record.revision,
                    Record.workflow,
                    Record.outcome,
                    Record.repaired_on,
                    Record.due_on,
                    *(getattr(Record, name).label(f"old_{name}") for name in COMPARED),
                    stage.source_id,
                    stage.due_on.label("new_due_on"),
                    *(stage[name] for name in COMPARED),
                )
                .join(Record, Record.id == stage.record_id)
                .where(by_id)
                .order_by(stage.row_no)
            ).all()
    corrected = Counter(row.source_id for row in changed)
    inserted = 0
    for source_id, rows, found in known:
        if rows > found:
            report.tally(source_id, INSERTED, rows - found)
            inserted += rows - found
        if found > corrected[source_id]:
            report.tally(source_id, UNCHANGED, found - corrected[source_id])
            report.unchanged += found - corrected[source_id]
    report.inserted += inserted
    if inserted:
        _insert_records(session, batch, stamp, now)
        mark_dirty_where(
            session, select(stage.citizen_id).where(stage.record_id.is_(None)).distinct()
        )
    _write_corrections(session, changed, model, batch, report, now)
    # Rows refused earlier whose records have now landed are resolved by the re-send.
    quality.resolve_rejections(session, _STAGE, batch_id=batch.id)


def _write_corrections(
    session: Session,
    changed: Sequence[Any],
    model: ScoringModel,
    batch: IngestBatch,
    report: IngestReport,
    now: dt.datetime,
) -> None:
    """Known records sent with changed content: an update, the previous content kept as a revision."""
    if not changed:
        return
    updates: list[dict[str, Any]] = []
    revisions: list[dict[str, Any]] = []
    dirty: set[int] = set()
    for row in changed:
        report.tally(row.source_id, UPDATED)
        revisions.append(
            {
                "record_id": row.id,
                "revision": row.revision,
                "content": {name: _jsonable(getattr(row, f"old_{name}")) for name in COMPARED},
                "replaced_at": now,
                "replaced_by_batch_id": batch.id,
            }
        )
        state = source_restatement(
            row.source_status,
            row.reported_on,
            workflow=row.workflow,
            outcome=row.outcome,
            was=row.old_source_status,
            repaired_on=row.repaired_on,
        )
        # An entry no item scores never expires (nothing of it counts).
        item = model.items.get(row.item_code)
        updates.append(
            {
                **{name: getattr(row, name) for name in COMPARED},
                **state,
                "id": row.id,
                "expires_on": (
                    item.expires_on(row.occurred_on, state["repaired_on"]) if item else None
                ),
                "due_on": row.due_on if row.new_due_on is None else row.new_due_on,
                "revision": row.revision + 1,
                "batch_id": batch.id,
                "updated_at": now,
            }
        )
        dirty.update((row.old_citizen_id, row.citizen_id))
    session.execute(insert(RecordRevision), revisions)
    session.execute(update(Record), updates)
    mark_dirty(session, dirty)
    report.updated += len(updates)


_REPAIRED = RecordStatus.REPAIRED.value


def _expiry(model: ScoringModel) -> Callable[[str, dt.date, dt.date | None], dt.date | None]:
    """``item.expires_on`` by item code, remembered: a city's records share few (item, day) pairs."""
    items = model.items
    known: dict[tuple[str, dt.date, dt.date | None], dt.date | None] = {}

    def expires_on(code: str, occurred_on: dt.date, repaired_on: dt.date | None) -> dt.date | None:
        key = (code, occurred_on, repaired_on)
        found = known.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            item = items.get(code)
            found = known[key] = item.expires_on(occurred_on, repaired_on) if item else None
        return found  # type: ignore[return-value]  # _UNKNOWN never returned

    return expires_on


_UNKNOWN = object()


def _load_stage(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Empty the staging table (made on first use) and load ``rows``: on PostgreSQL a binary COPY."""
    connection = session.connection()
    create = CreateTable(_STAGE, if_not_exists=True)
    if connection.dialect.name != "postgresql":
        connection.execute(create)
        connection.execute(delete(_STAGE))
        connection.execute(insert(_STAGE), [dict(zip(_LOADED, row, strict=True)) for row in rows])
        return
    # COPY runs on the session's own connection, so it belongs to the chunk's transaction. Binary
    # COPY costs a fraction of text COPY, which costs a fraction of an INSERT per row. TRUNCATE, not
    # DELETE: a temporary table is never vacuumed, so deleted rows would pile up chunk after chunk.
    driver = connection.connection.driver_connection
    assert driver is not None
    prepare = f"{create.compile(dialect=connection.dialect)}; TRUNCATE {_STAGE.name}"
    statement = f"COPY {_STAGE.name} ({', '.join(_LOADED)}) FROM STDIN (FORMAT BINARY)"
    # The driver's statements bypass SQLAlchemy: log them as SQL echo logs every other statement.
    connection.engine.logger.info("%s", prepare)
    connection.engine.logger.info("%s [%d rows]", statement, len(rows))
    with driver.cursor() as cursor:
        cursor.execute(prepare)
        with cursor.copy(statement) as copy:
            copy.set_types(_LOADED_TYPES)
            for row in rows:
                copy.write_row(row)


def _insert_citizens(session: Session, now: dt.datetime) -> None:
    """Create the staged citizens not known yet, in the order the rows name them."""
    stage = _STAGE.c
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    unknown = ~select(Citizen.id).where(Citizen.id_hash == stage.id_hash).exists()
    session.execute(
        module.insert(Citizen)
        .from_select(
            ["id_hash", "birth_date", "consent_given", "created_at"],
            select(
                stage.id_hash,
                func.min(stage.birth_date),
                literal(False),
                literal(now, type_=Citizen.created_at.type),
            )
            .where(unknown)
            .group_by(stage.id_hash)
            .order_by(func.min(stage.row_no)),
        )
        # Another process may create the same citizen meanwhile.
        .on_conflict_do_nothing()
    )


def _insert_records(session: Session, batch: IngestBatch, stamp: _Stamp, now: dt.datetime) -> None:
    """The staged rows that name no known record, as new records (in the order of the input)."""
    stage = _STAGE.c
    state = new_record_state(RecordStatus.ACTIVE, dt.date.min)
    columns = {
        "source_id": stage.source_id,
        "source_record_id": stage.source_record_id,
        "citizen_id": stage.citizen_id,
        "item_code": stage.item_code,
        "document_no": stage.document_no,
        "occurred_on": stage.occurred_on,
        "reported_on": stage.reported_on,
        "source_status": stage.source_status,
        "workflow": literal(state["workflow"]),
        "outcome": literal(state["outcome"]),
        "repaired_on": stage.repaired_on,
        # record_state.derived_status of a new record (no workflow, no outcome): the source's word.
        "status": stage.source_status,
        "expiry_rescored": literal(False),
        "expires_on": stage.expires_on,
        "revision": literal(1),
        "batch_id": literal(batch.id),
        "created_at": literal(now, type_=Record.created_at.type),
        "updated_at": literal(now, type_=Record.updated_at.type),
        "received_on": literal(stamp.received_on, type_=Date),
        "due_on": stage.due_on,
        "catalogue_version": literal(stamp.catalogue_version, type_=Integer),
    }
    session.execute(
        insert(Record).from_select(
            list(columns),
            select(*columns.values()).where(stage.record_id.is_(None)).order_by(stage.row_no),
        )
    )


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def write_report_file(path: Path, errors: list[RowError]) -> None:
    """The per-row error report: row, field, reason and the source's record id (never the ID number)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "field", "reason", "source_record_id"])
    for e in errors:
        writer.writerow([e.row, e.field, e.reason, e.source_record_id])
    path.write_text(buffer.getvalue(), encoding="utf-8")
