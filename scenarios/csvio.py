"""Bulk import and export of scenarios as CSV (UTF-8, Excel's BOM accepted), with row-precise errors.

One row per scenario. Import creates drafts for new codes and new draft versions for changed ones
(published versions are never edited), leaves identical rows alone, and reports every bad row with its
line and field; good rows are imported even when others are bad, each in its own savepoint.
An export imports back as "unchanged". ``open_to_visitors`` is ``true`` or ``false`` (blank: false); a
file without that column (one written before it existed) creates scenarios closed to visitors and
leaves existing ones as they are, like any other absent column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor
from citycredit.core.text import escape_controls
from scenarios.models import Operator, Scenario, ScenarioVersion
from scenarios.operations import (
    InvalidScenario,
    RegistryError,
    _check_identity,
    clean_content,
    clean_text_error,
    create_scenario,
    current_versions,
    edit_scenario,
    live_version,
    pending_version,
    set_venues,
    submit,
    venues_of,
)

COLUMNS = (
    "code",
    "operator",
    "category",
    "name_zh",
    "name_en",
    "benefit_zh",
    "benefit_en",
    "eligibility",
    "quota_per_day",
    "quota_per_month",
    "quota_total",
    "valid_from",
    "valid_until",
    "open_to_visitors",
    "venues",
)
EXPORT_ONLY = ("status", "version", "version_state")
REQUIRED = ("code", "operator", "category", "name_zh", "name_en", "benefit_zh", "benefit_en")
# Cells that may hold tab and line breaks: the text areas, and the rule (JSON, to which they are
# whitespace), as the admin form allows. Every other cell is one line.
MULTILINE_COLUMNS = frozenset({"benefit_zh", "benefit_en", "eligibility"})


@dataclass(frozen=True)
class RowError:
    line: int  # the line in the file; the header is line 1
    code: str
    field: str
    message: str


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({e.line for e in self.errors})


class CsvFileError(RegistryError):
    """The file as a whole cannot be read (encoding, header)."""


def _content_of(version: ScenarioVersion) -> dict[str, Any]:
    return {
        "name_zh": version.name_zh,
        "name_en": version.name_en,
        "benefit_zh": version.benefit_zh,
        "benefit_en": version.benefit_en,
        "eligibility": version.eligibility,
        "quota_per_day": version.quota_per_day,
        "quota_per_month": version.quota_per_month,
        "quota_total": version.quota_total,
        "valid_from": version.valid_from,
        "valid_until": version.valid_until,
        "open_to_visitors": version.open_to_visitors,
    }


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); such cells are
# exported with a leading apostrophe, which spreadsheets hide and the import strips again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def export_rows(session: Session, actor: Actor) -> Iterable[dict[str, str]]:
    """Each scenario the actor may see, as its current definition (the pending version if any)."""
    operators = {o.id: o.code for o in session.scalars(select(Operator))}
    scenarios = [
        s
        for s in session.scalars(select(Scenario).order_by(Scenario.code))
        if actor.may_see(s.operator_id)
    ]
    versions = current_versions(session, [s.id for s in scenarios])
    for scenario in scenarios:
        version = versions.current(scenario.id)
        if version is None:  # retired before anything was published
            continue
        row = {
            "code": scenario.code,
            "operator": operators[scenario.operator_id],
            "category": scenario.category,
            **{k: _cell(v) for k, v in _content_of(version).items()},
            "venues": " ".join(v.code for v in versions.venues.get(scenario.id, [])),
            "status": scenario.status,
            "version": str(version.number),
            "version_state": version.state,
        }
        yield row


def write_csv(session: Session, actor: Actor, out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, *EXPORT_ONLY], lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in export_rows(session, actor):
        writer.writerow(row)
        count += 1
    return count


def read_csv(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Decode and parse; raise :class:`CsvFileError` for a file that cannot be read at all."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFileError(
            f"the file is not UTF-8 (byte {exc.start}); save it as 'CSV UTF-8' and try again"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFileError(f"line 1: missing column(s): {', '.join(missing)}")
    unknown = [h for h in header if h not in COLUMNS and h not in EXPORT_ONLY]
    if unknown:
        shown = ", ".join(escape_controls(h) for h in unknown)
        raise CsvFileError(f"line 1: unknown column(s): {shown} (known: {', '.join(COLUMNS)})")
    reader.fieldnames = header
    rows = []
    first_line = reader.line_num + 1  # a quoted cell may span lines: report a row by its first
    try:
        for row in reader:
            if None in row:
                rows.append((first_line, {"__extra__": "more cells than columns"}))
            else:
                rows.append((first_line, {k: _uncell((v or "").strip()) for k, v in row.items()}))
            first_line = reader.line_num + 1
    except csv.Error as exc:
        raise CsvFileError(f"line {reader.line_num}: {exc}") from None
    return header, rows


def import_csv(
    session: Session, actor: Actor, data: bytes, *, submit_for_review: bool = False
) -> ImportReport:
    """Import scenarios; raise :class:`CsvFileError` only when the file as a whole is unusable."""
    _, rows = read_csv(data)
    report = ImportReport()
    operators = {o.code: o for o in session.scalars(select(Operator))}
    seen: dict[str, int] = {}
    for line, row in rows:
        # Shown to people and terminals: a control character in the code is reported, not replayed.
        code = escape_controls(row.get("code", ""))
        if "__extra__" in row:
            report.errors.append(RowError(line, code, "(row)", row["__extra__"]))
            continue
        unstorable = _unstorable_cells(row)
        if unstorable:
            # Nothing of this row reaches the database: PostgreSQL refuses NUL even in a lookup.
            report.errors.extend(RowError(line, code, f, m) for f, m in unstorable)
            continue
        if code in seen:
            report.errors.append(
                RowError(line, code, "code", f"appears again (first on line {seen[code]})")
            )
            continue
        seen[code] = line
        errors = _import_row(session, actor, row, operators, report, submit_for_review)
        report.errors.extend(RowError(line, code, f, m) for f, m in errors)
    return report


def _unstorable_cells(row: dict[str, str]) -> list[tuple[str, str]]:
    """Each cell holding a control character (or a lone surrogate), with why, in column order."""
    problems = []
    for name, value in row.items():
        error = clean_text_error(value, multiline=name in MULTILINE_COLUMNS)
        if error is not None:
            problems.append((name, error))
    return problems


def _import_row(
    session: Session,
    actor: Actor,
    row: dict[str, str],
    operators: dict[str, Operator],
    report: ImportReport,
    submit_for_review: bool,
) -> list[tuple[str, str]]:
    code = row["code"]
    problems: list[tuple[str, str]] = []
    operator = operators.get(row.get("operator", ""))
    if operator is None or not actor.may_see(operator.id):
        problems.append(("operator", f"unknown operator {row.get('operator', '')!r}"))
    elif not actor.may_manage(operator.id):
        problems.append(("operator", "you may not manage this operator's scenarios"))
    try:
        _check_identity(code, row.get("category", ""))
    except InvalidScenario as exc:
        problems += [(f, m) for f, msgs in exc.errors.items() for m in msgs]
    existing = session.scalar(select(Scenario).where(Scenario.code == code))
    # A column the file does not have leaves that field as it is; only an empty cell means "none".
    content = {k: row[k] for k in COLUMNS if k in row and k not in ("code", "operator", "venues")}
    if existing is not None and actor.may_see(existing.operator_id):
        current = pending_version(session, existing.id) or live_version(session, existing.id)
        if current is not None:
            for name, value in _content_of(current).items():
                content.setdefault(name, value)
    content.setdefault("eligibility", "")
    try:
        cleaned = clean_content(content)
    except InvalidScenario as exc:
        problems += [(f, m) for f, msgs in exc.errors.items() for m in msgs]
    if problems:
        return problems
    assert operator is not None
    venues_given = "venues" in row
    venue_codes = row.get("venues", "").replace(";", " ").replace(",", " ").split()
    try:
        with session.begin_nested():
            if existing is None:
                scenario = create_scenario(
                    session,
                    actor,
                    code=code,
                    operator=operator,
                    category=row["category"],
                    content=cleaned,
                    venue_codes=venue_codes,
                )
                if submit_for_review:
                    submit(session, actor, scenario)
                report.created.append(code)
                return []
            if not actor.may_see(existing.operator_id):
                return [("code", f"scenario {code!r} exists already")]
            if existing.operator_id != operator.id or existing.category != row["category"]:
                return [("operator", "a scenario's operator and category cannot change")]
            current = pending_version(session, existing.id) or live_version(session, existing.id)
            changed = current is None or _content_of(current) != cleaned
            venues_changed = venues_given and sorted(
                v.code for v in venues_of(session, existing.id)
            ) != sorted(set(venue_codes))
            if not changed and not venues_changed:
                report.unchanged.append(code)
                return []
            if changed:
                edit_scenario(session, actor, existing, cleaned)
                if submit_for_review:
                    submit(session, actor, existing)
            if venues_changed:
                set_venues(session, actor, existing, venue_codes)
            report.updated.append(code)
            return []
    except InvalidScenario as exc:
        return [(f, m) for f, msgs in exc.errors.items() for m in msgs]
    except RegistryError as exc:
        return [("(row)", str(exc))]
