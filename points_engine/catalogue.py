"""The public credit information catalogue (公共信用信息目录): what the city may collect.

A catalogue is a numbered version of entries. Each entry names its kind (the seven kinds of
administrative records, and the judicial, public-service and social records the city also collects),
the fields it carries, its legal basis, the sources that may report it, its reporting deadline in
working days and whether it is public (双公示, with its publication deadline). Scoring items score the
records of the entry with the same code; an entry need not score (a licence granted, an inspection
passed).

The workflow is the scenarios' and the models' one, with four eyes::

    draft ──submit──▶ in_review ──publish──▶ published ──(next published)──▶ superseded
                          └──reject──▶ rejected

Ingest accepts a record only when the published catalogue has its entry (and, when the entry names
its reporters, the record's source is one of them); the row error names the catalogue version. A city
with no catalogue yet (an instance from before issue 13) accepts the scoring items of its published
model, as before. Every version is kept: the history is the list of versions, each one diffable
against the one it replaced.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from citycredit.core.actors import Actor, NotPermitted, require_four_eyes
from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from citycredit.core.workdays import current_calendar
from points_engine.models import (
    CatalogueEntry,
    CatalogueStatus,
    CatalogueVersion,
    DataSource,
    ModelStatus,
    ScoringModelVersion,
)
from points_engine.operations import EngineError, model_of

# The seven kinds of administrative records (seed 002, item 一), then the other kinds the catalogue
# holds. The monthly report counts collection by these.
ADMINISTRATIVE_KINDS: dict[str, tuple[str, str]] = {
    "licensing": ("行政许可", "Administrative licensing"),
    "penalty": ("行政处罚", "Administrative penalty"),
    "inspection": ("行政监督检查", "Administrative inspection"),
    "enforcement": ("行政强制", "Administrative enforcement"),
    "ruling": ("行政裁决", "Administrative ruling"),
    "confirmation": ("行政确认", "Administrative confirmation"),
    "award": ("行政奖励", "Administrative award"),
}
KINDS: dict[str, tuple[str, str]] = {
    **ADMINISTRATIVE_KINDS,
    "judicial": ("司法信息", "Judicial"),
    "public_service": ("公共事业信息", "Public services and utilities"),
    "social": ("社会信用信息", "Social (volunteering, donations)"),
}
# Fields a record carries (points_engine.ingest.FIELDS); an entry lists the ones it uses.
RECORD_FIELDS = (
    "source_record_id",
    "id_number",
    "item_code",
    "document_no",
    "occurred_on",
    "reported_on",
    "status",
)
# Defaults from the seeds: records reported within 3 working days (003), published within 7 (002).
DEFAULT_DEADLINE_DAYS = 3
DEFAULT_PUBLISH_DAYS = 7
REFERENCE = Path(__file__).parent / "models" / "reference" / "catalogue.csv"
COLUMNS = (
    "code",
    "kind",
    "name_zh",
    "name_en",
    "legal_basis",
    "fields",
    "reporters",
    "deadline_days",
    "public",
    "publish_days",
)
_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,63}")
_SOURCE_CODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MAX_ENTRIES = 5000


class CatalogueError(EngineError):
    """A catalogue operation that cannot be done (the message says why, for a person)."""


class CatalogueInvalid(CatalogueError):
    """A catalogue file with problems, each as (line, column, reason)."""

    def __init__(self, problems: list[tuple[int, str, str]]):
        self.problems = problems
        shown = "; ".join(
            f"line {line}, {column}: {reason}" for line, column, reason in problems[:5]
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"the catalogue has {len(problems)} problem(s): {shown}{more}")


@dataclass(frozen=True)
class Entry:
    """A catalogue entry as plain data (parsed from a file, or read from a version)."""

    code: str
    kind: str
    name_zh: str
    name_en: str
    legal_basis: str
    fields: tuple[str, ...]
    reporters: tuple[str, ...] | None
    deadline_days: int
    public: bool
    publish_days: int | None

    @property
    def kind_names(self) -> tuple[str, str]:
        return KINDS[self.kind]

    def due_on(self, occurred_on: dt.date) -> dt.date:
        """The last day to report a record that occurred on ``occurred_on`` (working days, official
        calendar; a year without its published schedule counts provisionally)."""
        return _due_on(occurred_on, self.deadline_days)

    def row(self) -> dict[str, str]:
        return {
            "code": self.code,
            "kind": self.kind,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "legal_basis": self.legal_basis,
            "fields": " ".join(self.fields),
            "reporters": " ".join(self.reporters) if self.reporters is not None else "",
            "deadline_days": str(self.deadline_days),
            "public": "yes" if self.public else "no",
            "publish_days": "" if self.publish_days is None else str(self.publish_days),
        }


@lru_cache(maxsize=8192)
def _due_on(occurred_on: dt.date, days: int) -> dt.date:
    return current_calendar().add_working_days(occurred_on, days, provisional=True)


@dataclass(frozen=True)
class Catalogue:
    """The published catalogue, as ingest and the pages read it."""

    version: int
    entries: dict[str, Entry]

    def refusal(self, code: str, source: str) -> str | None:
        """Why a record of entry ``code`` from ``source`` is refused, or None."""
        entry = self.entries.get(code)
        if entry is None:
            return f"not in the public credit information catalogue (version {self.version})"
        if entry.reporters is not None and source not in entry.reporters:
            return (
                f"source {source!r} is not a reporter of {code!r} in the catalogue "
                f"(version {self.version})"
            )
        return None


# --- reading files --------------------------------------------------------------------------------


def parse_csv(text: str) -> list[Entry]:
    """Entries from a catalogue CSV (the columns of :data:`COLUMNS`); every problem by line and column."""
    text = text.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise CatalogueInvalid([(1, "(file)", "empty file: expected a header line")])
    missing = [c for c in COLUMNS if c not in reader.fieldnames]
    if missing:
        raise CatalogueInvalid([(1, ", ".join(missing), "missing column(s) in the header")])
    problems: list[tuple[int, str, str]] = []
    entries: list[Entry] = []
    seen: set[str] = set()
    for raw in reader:
        line = reader.line_num
        if None in raw:
            problems.append((line, "(row)", "more values than header columns"))
            continue
        if len(entries) >= MAX_ENTRIES:
            problems.append((line, "(row)", f"more than {MAX_ENTRIES} entries"))
            break
        entry = _entry(line, {k: _uncell((v or "").strip()) for k, v in raw.items()}, problems)
        if entry is None:
            continue
        if entry.code in seen:
            problems.append((line, "code", f"{entry.code!r} appears twice"))
            continue
        seen.add(entry.code)
        entries.append(entry)
    if not entries and not problems:
        problems.append((2, "(file)", "no entries"))
    if problems:
        raise CatalogueInvalid(problems)
    return entries


# The admin's export writes a cell that a spreadsheet would run as a formula with a leading
# apostrophe (CSV injection); the file reads back as it was.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def _entry(line: int, raw: dict[str, str], problems: list[tuple[int, str, str]]) -> Entry | None:
    before = len(problems)

    def bad(column: str, reason: str) -> None:
        problems.append((line, column, reason))

    for column, value in raw.items():
        if not value.isprintable():
            bad(column, "contains a control character")
            raw[column] = ""
    code = raw["code"]
    if not _CODE.fullmatch(code):
        bad("code", "must be 2-64 capital letters, digits or _ and start with a letter")
    if raw["kind"] not in KINDS:
        bad("kind", f"must be one of {', '.join(KINDS)}")
    for column, limit in (("name_zh", 200), ("name_en", 200), ("legal_basis", 500)):
        if not raw[column]:
            bad(column, "missing")
        elif len(raw[column]) > limit:
            bad(column, f"longer than {limit} characters")
    fields = tuple(raw["fields"].split()) or RECORD_FIELDS
    unknown = [f for f in fields if f not in RECORD_FIELDS]
    if unknown:
        bad("fields", f"unknown field(s) {', '.join(unknown)}; known: {', '.join(RECORD_FIELDS)}")
    reporters = tuple(sorted(set(raw["reporters"].split()))) or None
    if reporters is not None and not all(_SOURCE_CODE.fullmatch(r) for r in reporters):
        bad("reporters", "source codes separated by spaces (lower-case letters, digits, _ . -)")
    deadline = _days(raw["deadline_days"], str(DEFAULT_DEADLINE_DAYS), "deadline_days", bad)
    public_text = raw["public"].lower() or "no"
    if public_text not in ("yes", "no", "true", "false", "1", "0", "是", "否"):
        bad("public", "yes or no")
    public = public_text in ("yes", "true", "1", "是")
    publish_days = None
    if public:
        publish_days = _days(raw["publish_days"], str(DEFAULT_PUBLISH_DAYS), "publish_days", bad)
    elif raw["publish_days"]:
        bad("publish_days", "only a public entry has a publication deadline")
    if len(problems) > before:
        return None
    return Entry(
        code=code,
        kind=raw["kind"],
        name_zh=raw["name_zh"],
        name_en=raw["name_en"],
        legal_basis=raw["legal_basis"],
        fields=fields,
        reporters=reporters,
        deadline_days=deadline or 0,
        public=public,
        publish_days=publish_days,
    )


def _days(text: str, default: str, column: str, bad: Any) -> int | None:
    try:
        value = int(text or default)
    except ValueError:
        bad(column, f"a whole number of working days, not {text[:20]!r}")
        return None
    if not 0 <= value <= 365:
        bad(column, "between 0 and 365 working days")
        return None
    return value


def to_csv(entries: Iterable[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(entry.row())
    return buffer.getvalue()


def reference_text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


# --- versions -------------------------------------------------------------------------------------


def entries_of(version: CatalogueVersion) -> list[Entry]:
    return [_plain(e) for e in version.entries]


# Entry's fields are CatalogueEntry's columns; only the lists are tuples in the plain form.
_COLUMNS = tuple(f.name for f in dataclasses.fields(Entry))


def _plain(e: CatalogueEntry) -> Entry:
    values = {name: getattr(e, name) for name in _COLUMNS}
    values["fields"] = tuple(e.fields)
    values["reporters"] = tuple(e.reporters) if e.reporters is not None else None
    return Entry(**values)


def _stored(e: Entry) -> CatalogueEntry:
    values = {name: getattr(e, name) for name in _COLUMNS}
    values["fields"] = list(e.fields)
    values["reporters"] = list(e.reporters) if e.reporters is not None else None
    return CatalogueEntry(**values)


def published_version(session: Session) -> CatalogueVersion | None:
    return session.scalar(
        select(CatalogueVersion).where(CatalogueVersion.status == CatalogueStatus.PUBLISHED)
    )


def find_version(session: Session, number: int) -> CatalogueVersion:
    if not 0 < number < 2**31:  # an integer column: a larger number names no version
        raise CatalogueError(f"no catalogue version {number}")
    version = session.scalar(select(CatalogueVersion).where(CatalogueVersion.number == number))
    if version is None:
        raise CatalogueError(f"no catalogue version {number}")
    return version


def versions(session: Session) -> list[CatalogueVersion]:
    """Every version, newest first, with its entries (the list counts them: one query, not one
    per version)."""
    query = select(CatalogueVersion).options(selectinload(CatalogueVersion.entries))
    return list(session.scalars(query.order_by(CatalogueVersion.number.desc())))


def create_draft(session: Session, text: str, *, actor: Actor, note: str = "") -> CatalogueVersion:
    """A new draft version from a catalogue CSV (every problem at once, by line and column)."""
    _require_office(actor)
    entries = parse_csv(text)
    number = (session.scalar(select(func.max(CatalogueVersion.number))) or 0) + 1
    version = CatalogueVersion(
        number=number,
        status=CatalogueStatus.DRAFT,
        note=note[:500],
        sha256=hashlib.sha256(to_csv(entries).encode()).hexdigest(),
        created_by=actor.name,
        entries=[_stored(e) for e in entries],
    )
    session.add(version)
    session.flush()
    audit(session, actor=actor.name, action="catalogue.draft", version=number, entries=len(entries))
    return version


def submit(session: Session, version: CatalogueVersion, *, actor: Actor) -> None:
    _require_office(actor)
    if version.status != CatalogueStatus.DRAFT:
        raise CatalogueError(f"version {version.number} is {version.status}, not a draft")
    version.status = CatalogueStatus.IN_REVIEW
    version.submitted_by = actor.name
    version.submitted_at = utcnow()
    session.flush()
    audit(session, actor=actor.name, action="catalogue.submit", version=version.number)


def reject(session: Session, version: CatalogueVersion, *, actor: Actor, reason: str) -> None:
    _require_reviewer(actor)
    if version.status != CatalogueStatus.IN_REVIEW:
        raise CatalogueError(f"version {version.number} is {version.status}, not in review")
    if not reason.strip():
        raise CatalogueError("a rejection says why")
    require_four_eyes(actor, (version.created_by, version.submitted_by))
    version.status = CatalogueStatus.REJECTED
    version.decided_by = actor.name
    version.decided_at = utcnow()
    version.decision_reason = reason.strip()[:500]
    session.flush()
    audit(session, actor=actor.name, action="catalogue.reject", version=version.number)


def publish(session: Session, version: CatalogueVersion, *, actor: Actor) -> None:
    """Make ``version`` the catalogue in effect; the one before it is superseded (four eyes).

    Refused when the published scoring model scores an item the version has no entry for: its
    records could no longer arrive, and the model would silently stop scoring them.
    """
    _require_reviewer(actor)
    if version.status != CatalogueStatus.IN_REVIEW:
        raise CatalogueError(
            f"version {version.number} is {version.status}; only a version in review is published"
        )
    require_four_eyes(actor, (version.created_by, version.submitted_by))
    missing = sorted(scored_items(session) - {e.code for e in version.entries})
    if missing:
        raise CatalogueError(
            f"the published scoring model scores {', '.join(missing)}, which version "
            f"{version.number} does not catalogue; add the entries or publish a model without them"
        )
    now = utcnow()
    session.execute(
        update(CatalogueVersion)
        .where(CatalogueVersion.status == CatalogueStatus.PUBLISHED)
        .values(status=CatalogueStatus.SUPERSEDED, superseded_at=now)
    )
    session.flush()
    version.status = CatalogueStatus.PUBLISHED
    version.decided_by = actor.name
    version.decided_at = now
    version.published_at = now
    session.flush()
    audit(session, actor=actor.name, action="catalogue.publish", version=version.number)


def adopt_reference(session: Session, *, actor: Actor) -> CatalogueVersion:
    """Load, submit and publish the reference catalogue in one step (the demo and a new city's start;
    the system actor only, as four eyes exempts it)."""
    if not actor.is_system():
        raise NotPermitted("only the system adopts the reference catalogue in one step")
    version = create_draft(session, reference_text(), actor=actor, note="reference catalogue")
    submit(session, version, actor=actor)
    publish(session, version, actor=actor)
    return version


def scored_items(session: Session) -> set[str]:
    """The item codes of the published scoring model (none without one)."""
    published = session.scalar(
        select(ScoringModelVersion).where(ScoringModelVersion.status == ModelStatus.PUBLISHED)
    )
    return set(model_of(published).items) if published is not None else set()


def uncatalogued_items(session: Session, item_codes: Iterable[str]) -> list[str]:
    """Which of a model's items the published catalogue lacks (none when there is no catalogue)."""
    current = published_version(session)
    if current is None:
        return []
    codes = {e.code for e in current.entries}
    return sorted(set(item_codes) - codes)


@dataclass(frozen=True)
class Change:
    code: str
    what: str  # "added", "removed", "changed"
    fields: tuple[str, ...] = ()


def diff(old: Iterable[Entry], new: Iterable[Entry]) -> list[Change]:
    """What a version changes against another, entry by entry (the history's reading)."""
    before = {e.code: e for e in old}
    after = {e.code: e for e in new}
    changes: list[Change] = []
    for code in sorted(before.keys() | after.keys()):
        if code not in before:
            changes.append(Change(code, "added"))
        elif code not in after:
            changes.append(Change(code, "removed"))
        else:
            a, b = before[code].row(), after[code].row()
            changed = tuple(c for c in COLUMNS if a[c] != b[c])
            if changed:
                changes.append(Change(code, "changed", changed))
    return changes


def previous_published(session: Session, version: CatalogueVersion) -> CatalogueVersion | None:
    """The version ``version`` replaced or would replace: the latest published before it."""
    return session.scalar(
        select(CatalogueVersion)
        .where(
            CatalogueVersion.number < version.number,
            CatalogueVersion.status.in_((CatalogueStatus.PUBLISHED, CatalogueStatus.SUPERSEDED)),
        )
        .order_by(CatalogueVersion.number.desc())
        .limit(1)
    )


# --- what ingest reads ----------------------------------------------------------------------------


def current_catalogue(session: Session) -> Catalogue | None:
    """The published catalogue (None when the city has none yet), cached by version."""
    row = session.execute(
        select(CatalogueVersion.id, CatalogueVersion.number, CatalogueVersion.sha256).where(
            CatalogueVersion.status == CatalogueStatus.PUBLISHED
        )
    ).first()
    if row is None:
        return None
    # By id and content: SQLite may give a rolled-back version's id to the next one.
    key = (row.id, row.sha256)
    cached = _cache.get(key)
    if cached is None:
        version = session.get(CatalogueVersion, row.id)
        assert version is not None
        cached = Catalogue(version.number, {e.code: _plain(e) for e in version.entries})
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = cached
    return cached


# A published version's entries never change (a change is a new version): safe to keep.
_cache: dict[tuple[int, str], Catalogue] = {}


def entry_names(session: Session) -> dict[str, tuple[str, str]]:
    """Names of the published catalogue's entries by code (for records no item scores)."""
    current = current_catalogue(session)
    if current is None:
        return {}
    return {code: (e.name_zh, e.name_en) for code, e in current.entries.items()}


def source_codes(session: Session) -> set[str]:
    return set(session.scalars(select(DataSource.code)))


def _require_office(actor: Actor) -> None:
    if actor.read_only or actor.partner or actor.source_clerk or actor.operator_id is not None:
        raise NotPermitted("the catalogue is the credit office's")


def _require_reviewer(actor: Actor) -> None:
    _require_office(actor)
    if not actor.may_review():
        raise NotPermitted("publishing the catalogue needs the credit office's review right")
