"""Reads of the admin: dashboard figures, the audit log, data sources and their ingestion batches.

Set-based throughout: each view is a few GROUP BY or window queries, never a query per row.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, literal, select, union
from sqlalchemy.orm import Session

from admin.models import AdminUser
from citycredit.core.audit import AuditEvent
from citycredit.core.clients import ApiClient
from credit_codes.models import Redemption, Verification
from points_engine.models import (
    Citizen,
    DataSource,
    IngestBatch,
    Record,
    RecordRevision,
    ScoreSnapshot,
)
from scenarios.models import Operator, Scenario, ScenarioVersion


def day_bounds(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[start of ``first``, start of the day after ``last``) in the city's time, as UTC instants."""
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    return start, end


# --- dashboard ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    citizens: int
    scored: int
    published_scenarios: int
    verifications_today: int


def headline(
    session: Session, *, today: dt.date, tz: ZoneInfo, operator_id: int | None = None
) -> Headline:
    """The dashboard's counts; those on scenarios (published, verified today) cover only
    ``operator_id``'s scenarios when given. Citizens and scores are city-wide aggregates."""
    start, end = day_bounds(today, today, tz)

    def count(query: Select[Any]) -> int:
        return session.scalar(query) or 0

    published = select(func.count()).select_from(Scenario).where(Scenario.status == "published")
    verified = (
        select(func.count())
        .select_from(Verification)
        .where(Verification.at >= start, Verification.at < end)
    )
    if operator_id is not None:
        published = published.where(Scenario.operator_id == operator_id)
        verified = verified.join(Scenario, Scenario.id == Verification.scenario_id).where(
            Scenario.operator_id == operator_id
        )
    return Headline(
        citizens=count(select(func.count()).select_from(Citizen)),
        scored=count(
            select(func.count())
            .select_from(ScoreSnapshot)
            .where(ScoreSnapshot.is_current.is_(True))
        ),
        published_scenarios=count(published),
        verifications_today=count(verified),
    )


def redemptions_by_day_and_category(
    session: Session, *, first: dt.date, last: dt.date, operator_id: int | None = None
) -> dict[tuple[dt.date, str], int]:
    """Redemptions per city-local day and scenario category, ``first`` to ``last`` inclusive
    (of ``operator_id``'s scenarios only, when given)."""
    query = (
        select(Redemption.day, Scenario.category, func.count())
        .join(Scenario, Scenario.id == Redemption.scenario_id)
        .where(Redemption.day >= first, Redemption.day <= last)
        .group_by(Redemption.day, Scenario.category)
    )
    if operator_id is not None:
        query = query.where(Scenario.operator_id == operator_id)
    rows = session.execute(query).all()
    return {(day, category): count for day, category, count in rows}


@dataclass(frozen=True)
class ScenarioCount:
    code: str
    name_zh: str
    name_en: str
    redemptions: int


def top_scenarios(
    session: Session,
    *,
    first: dt.date,
    last: dt.date,
    limit: int = 10,
    operator_id: int | None = None,
) -> list[ScenarioCount]:
    """The scenarios most redeemed in the period, named from their live (published) version
    (``operator_id``'s scenarios only, when given)."""
    counts = (
        select(Redemption.scenario_id, func.count().label("redemptions"))
        .where(Redemption.day >= first, Redemption.day <= last)
        .group_by(Redemption.scenario_id)
        .subquery()
    )
    live = ScenarioVersion
    query = (
        select(Scenario.code, live.name_zh, live.name_en, counts.c.redemptions)
        .join(counts, counts.c.scenario_id == Scenario.id)
        .outerjoin(live, and_(live.scenario_id == Scenario.id, live.state == "published"))
        .order_by(counts.c.redemptions.desc(), Scenario.code)
        .limit(limit)
    )
    if operator_id is not None:
        query = query.where(Scenario.operator_id == operator_id)
    rows = session.execute(query).all()
    # A scenario suspended since has no live version; its code stands in for the name.
    return [ScenarioCount(code, zh or code, en or code, n) for code, zh, en, n in rows]


# --- audit log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    first: dt.date | None = None
    last: dt.date | None = None
    citizen_id: int | None = None

    def as_detail(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, dt.date) else v)
            for k, v in self.__dict__.items()
            if v not in (None, "")
        }


@dataclass
class AuditPage:
    events: list[AuditEvent]
    # Keyset cursors: the ids to pass as ``before`` (older page) and ``after`` (newer page).
    older: int | None = None
    newer: int | None = None


def audit_page(
    session: Session,
    filters: AuditFilters,
    *,
    tz: ZoneInfo,
    before: int | None = None,
    after: int | None = None,
    size: int = 50,
) -> AuditPage:
    """One page of the audit log, newest first, paged by id (keyset: no OFFSET scans)."""
    e = AuditEvent
    conditions = []
    if filters.actor:
        conditions.append(e.actor.contains(filters.actor, autoescape=True))
    if filters.action:
        conditions.append(e.action.startswith(filters.action, autoescape=True))
    if filters.first is not None:
        conditions.append(e.at >= day_bounds(filters.first, filters.first, tz)[0])
    if filters.last is not None:
        conditions.append(e.at < day_bounds(filters.last, filters.last, tz)[1])
    if filters.citizen_id is not None:
        conditions.append(e.citizen_id == filters.citizen_id)
    query = select(e).where(*conditions)
    if after is not None:
        rows = list(session.scalars(query.where(e.id > after).order_by(e.id.asc()).limit(size + 1)))
        more_newer = len(rows) > size
        events = list(reversed(rows[:size]))
        page = AuditPage(events)
        if events:
            page.newer = events[0].id if more_newer else None
            page.older = events[-1].id
        return page
    if before is not None:
        query = query.where(e.id < before)
    rows = list(session.scalars(query.order_by(e.id.desc()).limit(size + 1)))
    events = rows[:size]
    page = AuditPage(events)
    if events:
        page.older = events[-1].id if len(rows) > size else None
        page.newer = events[0].id if before is not None else None
    return page


# --- data sources and ingestion -------------------------------------------------------------------

# How far back (in batches) the source pages look: a record row names only the latest batch that
# wrote it, so the link from a batch to its sources is found through records and revisions.
RECENT_BATCHES = 500


def _batch_links(session: Session) -> Any:
    """(source_id, batch_id) for the recent batches: through the records and revisions they wrote,
    and through the API client (bound to one source) that uploaded them."""
    floor = (
        session.scalar(
            select(IngestBatch.id)
            .order_by(IngestBatch.id.desc())
            .offset(RECENT_BATCHES - 1)
            .limit(1)
        )
        or 0
    )
    by_records = select(Record.source_id, Record.batch_id.label("batch_id")).where(
        Record.batch_id >= floor
    )
    by_revisions = (
        select(Record.source_id, RecordRevision.replaced_by_batch_id.label("batch_id"))
        .join(Record, Record.id == RecordRevision.record_id)
        .where(RecordRevision.replaced_by_batch_id >= floor)
    )
    by_client = (
        select(ApiClient.source_id, IngestBatch.id.label("batch_id"))
        .join(ApiClient, IngestBatch.origin == literal("api:") + ApiClient.client_id)
        .where(ApiClient.source_id.is_not(None), IngestBatch.id >= floor)
    )
    return union(by_records, by_revisions, by_client).subquery("links")


@dataclass
class BatchView:
    batch: IngestBatch
    # field -> rejected rows, from the stored first errors (the full list is in the report file)
    error_fields: list[tuple[str, int]]


def _view(batch: IngestBatch, errors: list[dict[str, Any]] | None = None) -> BatchView:
    fields = Counter(
        str(e.get("field", "?")) for e in (batch.errors or [] if errors is None else errors)
    )
    return BatchView(batch, fields.most_common())


@dataclass(frozen=True)
class SourceErrors:
    """Which of a batch's stored row errors a reader limited to one source may see."""

    source_code: str
    # client_ids of the API clients bound to the source: every row they upload is the source's.
    clients: frozenset[str]

    def of(self, batch: IngestBatch) -> list[dict[str, Any]]:
        """The errors attributable to the source. A rejected row wrote no record, so only what the
        error says ties it to a source: the ``source`` it names, or the batch's uploader when that
        is one of the source's clients. Any other rejected row may be another source's: withheld."""
        from_own_client = batch.origin.startswith("api:") and batch.origin[4:] in self.clients
        return [
            e
            for e in batch.errors or []
            if e.get("source") == self.source_code or ("source" not in e and from_own_client)
        ]


def source_errors(session: Session, source_id: int) -> SourceErrors:
    code = session.scalar(select(DataSource.code).where(DataSource.id == source_id)) or ""
    clients = session.scalars(select(ApiClient.client_id).where(ApiClient.source_id == source_id))
    return SourceErrors(code, frozenset(clients))


@dataclass
class SourceView:
    source: DataSource
    batches: list[BatchView] = field(default_factory=list)


def sources_overview(
    session: Session, *, only_source: int | None, per_source: int = 5
) -> list[SourceView]:
    """Each data source (or just ``only_source``) with its latest ingestion batches."""
    query = select(DataSource).order_by(DataSource.code)
    if only_source is not None:
        query = query.where(DataSource.id == only_source)
    views = {s.id: SourceView(s) for s in session.scalars(query)}
    if not views:
        return []
    links = _batch_links(session)
    ranked = (
        select(
            links.c.source_id,
            links.c.batch_id,
            func.row_number()
            .over(partition_by=links.c.source_id, order_by=links.c.batch_id.desc())
            .label("rank"),
        )
        .where(links.c.source_id.in_(list(views)))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.source_id, IngestBatch)
        .join(IngestBatch, IngestBatch.id == ranked.c.batch_id)
        .where(ranked.c.rank <= per_source)
        .order_by(ranked.c.source_id, IngestBatch.id.desc())
    ).all()
    limited = source_errors(session, only_source) if only_source is not None else None
    for source_id, batch in rows:
        views[source_id].batches.append(
            _view(batch, limited.of(batch) if limited is not None else None)
        )
    return list(views.values())


def unattributed_batches(session: Session, *, limit: int = 10) -> list[BatchView]:
    """Recent batches that wrote nothing traceable to a source (every row rejected, or failed early)."""
    links = _batch_links(session)
    batches = session.scalars(
        select(IngestBatch)
        .where(IngestBatch.id.not_in(select(links.c.batch_id).where(links.c.batch_id.is_not(None))))
        .order_by(IngestBatch.id.desc())
        .limit(limit)
    )
    return [_view(b) for b in batches]


def batch_sources(session: Session, batch_id: int) -> list[DataSource]:
    links = _batch_links(session)
    return list(
        session.scalars(
            select(DataSource)
            .where(DataSource.id.in_(select(links.c.source_id).where(links.c.batch_id == batch_id)))
            .order_by(DataSource.code)
        )
    )


# --- users ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    user: AdminUser
    operator_code: str | None
    source_code: str | None


def admin_users(session: Session) -> list[UserRow]:
    rows = session.execute(
        select(AdminUser, Operator.code, DataSource.code)
        .outerjoin(Operator, Operator.id == AdminUser.operator_id)
        .outerjoin(DataSource, DataSource.id == AdminUser.source_id)
        .order_by(AdminUser.username)
    ).all()
    return [UserRow(user, op, src) for user, op, src in rows]
