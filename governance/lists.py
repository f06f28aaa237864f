"""Red and black lists (红黑名单, issue 11 §3).

A department imports its list decisions (file or API rows): the list, the person's ID number and name,
the decision document, the start date and the publication period. Each entry's effect on scores is an
ordinary record of the list type's scoring item, filed through the points engine's own ingest (the
same validation, state owner and rescoring as any record); the entry keeps what the public list shows
— the masked name, never the ID number — and its history. Lifting (移出) revokes the record at once.

Publication honours NDRC order 58: each list type has a minimum and a maximum publication period; an
entry is shown until ``publish_until`` and no longer once lifted or once its record is repaired
(early termination after repair).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.idnumber import InvalidIdNumber, parse_id_number
from citycredit.core.periods import Period
from governance.models import ListChange, ListEntry
from points_engine import batches
from points_engine.models import DataSource, Record, RecordStatus
from points_engine.operations import published_model
from points_engine.record_state import SourceStatus, change_record_state


@dataclass(frozen=True)
class ListType:
    code: str
    kind: str  # "red" or "black"
    name_zh: str
    name_en: str
    item_code: str  # the scoring item a listing files
    legal_basis: str
    publish_min: Period
    publish_max: Period


# The city's list types (the reference model's items). A city adds its own here.
LIST_TYPES: dict[str, ListType] = {
    t.code: t
    for t in (
        ListType(
            "dishonest_debtor",
            "black",
            "失信被执行人名单",
            "Dishonest judgment debtors",
            "COURT_DISHONEST",
            "《最高人民法院关于公布失信被执行人名单信息的若干规定》",
            Period(months=24),
            Period(months=60),
        ),
        ListType(
            "major_tax_violation",
            "black",
            "重大税收违法失信主体名单",
            "Major tax violators",
            "TAX_ARREARS",
            "《重大税收违法失信主体信息公布管理办法》",
            Period(months=12),
            Period(months=36),
        ),
        ListType(
            "honesty_model",
            "red",
            "诚信典型红名单",
            "Honesty role models",
            "ADMIN_AWARD_CITY",
            "《湖北省社会信用信息管理条例》",
            Period(months=12),
            Period(months=36),
        ),
    )
}
FIELDS = ("list", "id_number", "name", "decision_no", "start_on", "publish_months")


def mask_name(name: str) -> str:
    """As the national site shows names: the first character and, for three or more, the last, the
    rest replaced (张三 → 张*, 张三丰 → 张*丰, 欧阳娜娜 → 欧**娜)."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


@dataclass
class ListImport:
    listed: list[ListEntry] = field(default_factory=list)
    unchanged: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (row, field, reason)


def _source_record_id(list_code: str, decision_no: str) -> str:
    return f"list:{list_code}:{decision_no}"[:128]


def import_entries(
    session: Session,
    rows: list[tuple[int, dict[str, Any]]],
    *,
    source: DataSource,
    key: bytes,
    today: dt.date,
    now: dt.datetime,
    actor: str,
) -> ListImport:
    """Import one department's list decisions; a bad row is reported and the others land. The same
    decision sent again changes nothing."""
    out = ListImport()
    good: list[tuple[int, dict[str, Any], ListType, dt.date, dt.date, str]] = []
    for number, raw in rows:
        row = {k: ("" if raw.get(k) is None else str(raw.get(k)).strip()) for k in FIELDS}

        def err(name: str, reason: str, number: int = number) -> None:
            out.errors.append((number, name, reason))

        kind = LIST_TYPES.get(row["list"])
        if kind is None:
            err("list", f"unknown list; one of {', '.join(LIST_TYPES)}")
            continue
        try:
            parse_id_number(row["id_number"])
        except InvalidIdNumber as exc:
            err("id_number", str(exc))
            continue
        if not 1 <= len(row["name"]) <= 50:
            err("name", "1 to 50 characters")
            continue
        if not 1 <= len(row["decision_no"]) <= 200:
            err("decision_no", "1 to 200 characters")
            continue
        try:
            start = dt.date.fromisoformat(row["start_on"])
        except ValueError:
            err("start_on", "a date, YYYY-MM-DD")
            continue
        if start > today:
            err("start_on", "must not be in the future")
            continue
        try:
            months = int(row["publish_months"])
        except ValueError:
            err("publish_months", "a whole number of months")
            continue
        if not kind.publish_min.months <= months <= kind.publish_max.months:
            err(
                "publish_months",
                f"{kind.name_en}: {kind.publish_min.months} to {kind.publish_max.months} months "
                "(NDRC order 58)",
            )
            continue
        until = Period(months=months).after(start) - dt.timedelta(days=1)
        good.append(
            (number, row, kind, start, until, _source_record_id(kind.code, row["decision_no"]))
        )
    if not good:
        return out
    _, model = published_model(session)
    missing = sorted({k.item_code for _, _, k, *_ in good if k.item_code not in model.items})
    if missing:
        for number, _, kind, *_ in good:
            if kind.item_code in missing:
                out.errors.append((number, "list", f"item {kind.item_code} is not in the model"))
        good = [g for g in good if g[2].item_code not in missing]
    # The records go through the points engine's ingest: its checks, the state owner, rescoring.
    records = [
        (
            number,
            {
                "source": source.code,
                "source_record_id": ref,
                "id_number": row["id_number"],
                "item_code": kind.item_code,
                "document_no": row["decision_no"],
                "occurred_on": start.isoformat(),
                "reported_on": today.isoformat(),
                "status": "active",
            },
        )
        for number, row, kind, start, _, ref in good
    ]
    result = batches.ingest(
        session,
        records,
        origin=f"lists:{source.code}",
        fmt="json",
        key=key,
        today=today,
        only_source=source.code,
    )
    refused = {e.row for e in result.report.errors}
    out.errors.extend((e.row, e.field, e.reason) for e in result.report.errors)
    refs = [ref for number, *_, ref in good if number not in refused]
    stored = {
        r.source_record_id: r
        for r in session.scalars(
            select(Record).where(Record.source_id == source.id, Record.source_record_id.in_(refs))
        )
    }
    known = {
        e.record_id
        for e in session.scalars(
            select(ListEntry).where(ListEntry.record_id.in_([r.id for r in stored.values()]))
        )
    }
    for number, row, kind, start, until, ref in good:
        record = stored.get(ref)
        if number in refused or record is None:
            continue
        if record.id in known:
            out.unchanged += 1
            continue
        entry = ListEntry(
            public_id="lst_" + secrets.token_hex(8),
            list_code=kind.code,
            kind=kind.kind,
            source_id=source.id,
            citizen_id=record.citizen_id,
            record_id=record.id,
            masked_name=mask_name(row["name"]),
            decision_no=row["decision_no"],
            legal_basis=kind.legal_basis,
            start_on=start,
            publish_until=until,
            created_at=now,
        )
        session.add(entry)
        session.flush()
        session.add(ListChange(entry_id=entry.id, change="listed", actor=actor, at=now))
        audit(
            session,
            actor=actor,
            action="list.entry.listed",
            citizen_id=record.citizen_id,
            entry=entry.public_id,
            list=kind.code,
        )
        out.listed.append(entry)
    session.flush()
    return out


def lift(
    session: Session,
    entry: ListEntry,
    *,
    actor: str,
    reason: str,
    today: dt.date,
    now: dt.datetime,
) -> None:
    """Take the entry off its list (移出): off the public list and out of the score at once."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValueError("give the reason for lifting, at most 500 characters")
    if entry.status != "listed":
        raise ValueError(f"entry {entry.public_id} is already lifted")
    entry.status = "lifted"
    entry.lifted_on = today
    entry.lift_reason = reason
    session.add(ListChange(entry_id=entry.id, change="lifted", actor=actor, note=reason, at=now))
    audit(
        session,
        actor=actor,
        action="list.entry.lifted",
        citizen_id=entry.citizen_id,
        entry=entry.public_id,
        list=entry.list_code,
    )
    record = session.get(Record, entry.record_id)
    assert record is not None
    # The department takes back its listing: the source's word, which rescores at once.
    change_record_state(session, record, source_status=SourceStatus.REVOKED, as_of=today, now=now)


@dataclass(frozen=True)
class PublicEntry:
    list_code: str
    kind: str
    list_name_zh: str
    list_name_en: str
    masked_name: str
    department_zh: str
    department_en: str
    decision_no: str
    legal_basis: str
    start_on: dt.date
    publish_until: dt.date


def public_entries(
    session: Session, *, today: dt.date, kind: str | None = None
) -> list[PublicEntry]:
    """What may lawfully be shown today: listed, within its publication period, and its record not
    repaired or revoked (early termination after repair). Never an ID number or a full name."""
    query = (
        select(ListEntry, DataSource, Record.status)
        .join(DataSource, DataSource.id == ListEntry.source_id)
        .join(Record, Record.id == ListEntry.record_id)
        .where(
            ListEntry.status == "listed",
            ListEntry.start_on <= today,
            ListEntry.publish_until >= today,
            Record.status.in_([RecordStatus.ACTIVE.value, RecordStatus.UNDER_OBJECTION.value]),
        )
        .order_by(ListEntry.kind, ListEntry.start_on.desc(), ListEntry.id)
    )
    if kind is not None:
        query = query.where(ListEntry.kind == kind)
    out = []
    for entry, source, _ in session.execute(query):
        t = LIST_TYPES.get(entry.list_code)
        out.append(
            PublicEntry(
                entry.list_code,
                entry.kind,
                t.name_zh if t else entry.list_code,
                t.name_en if t else entry.list_code,
                entry.masked_name,
                source.name_zh,
                source.name_en,
                entry.decision_no,
                entry.legal_basis,
                entry.start_on,
                entry.publish_until,
            )
        )
    return out


def changes_between(session: Session, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """List changes in [start, end), for the daily bulletin: by entry and decision, never a person."""
    rows = session.execute(
        select(ListChange, ListEntry, DataSource)
        .join(ListEntry, ListEntry.id == ListChange.entry_id)
        .join(DataSource, DataSource.id == ListEntry.source_id)
        .where(ListChange.at >= start, ListChange.at < end)
        .order_by(ListChange.at, ListChange.id)
    )
    return [
        {
            "entry": entry.public_id,
            "list": entry.list_code,
            "kind": entry.kind,
            "source": source.code,
            "decision_no": entry.decision_no,
            "change": change.change,
            "start_on": entry.start_on.isoformat(),
            "publish_until": entry.publish_until.isoformat(),
            "at": change.at.astimezone(dt.UTC).isoformat(),
        }
        for change, entry, source in rows
    ]
