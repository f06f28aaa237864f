"""Writes of the points engine: sources, citizens and consent, model versions, scoring runs, expiry.

Functions here flush but never commit; the caller owns the unit of work.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from citycredit.core import events
from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from citycredit.core.idnumber import CitizenId, id_hash
from points_engine import record_state, scoring
from points_engine.models import (
    Citizen,
    ConsentEvent,
    DataSource,
    ModelStatus,
    Record,
    ScoreDirty,
    ScoreSnapshot,
    ScoringItem,
    ScoringModelVersion,
)
from points_engine.scoring_model import ScoringModel, parse_model


class EngineError(Exception):
    """An operation that cannot be done as asked; the message is meant for the operator."""


class NoPublishedModel(EngineError):
    def __init__(self) -> None:
        super().__init__(
            "no scoring model is published yet: load one with `citycredit model load FILE` "
            "and publish it with `citycredit model publish NAME@vN`"
        )


def insert_ignore(session: Session, table: type, rows: list[dict[str, object]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, for rows that another process may have inserted first."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    session.execute(module.insert(table).on_conflict_do_nothing(), rows)


# --- sources --------------------------------------------------------------------------------------


def add_source(
    session: Session, code: str, name_zh: str, name_en: str, *, items: list[str] | None = None
) -> DataSource:
    if session.scalar(select(DataSource).where(DataSource.code == code)) is not None:
        raise EngineError(f"data source {code!r} already exists")
    source = DataSource(
        code=code, name_zh=name_zh, name_en=name_en, items=sorted(set(items)) if items else None
    )
    session.add(source)
    session.flush()
    return source


# --- citizens and consent -------------------------------------------------------------------------


def get_or_create_citizen(session: Session, key: bytes, citizen_id: CitizenId) -> Citizen:
    digest = id_hash(key, citizen_id)
    insert_ignore(
        session,
        Citizen,
        [{"id_hash": digest, "birth_date": citizen_id.birth_date, "created_at": utcnow()}],
    )
    citizen = session.scalar(select(Citizen).where(Citizen.id_hash == digest))
    assert citizen is not None
    return citizen


def give_consent(
    session: Session, citizen: Citizen, *, channel: str, as_of: dt.date, actor: str | None = None
) -> scoring.RunResult | None:
    """Record consent and score the citizen at once. Giving consent twice changes nothing."""
    if citizen.consent_given:
        return None
    citizen.consent_given = True
    citizen.consent_changed_at = utcnow()
    session.add(ConsentEvent(citizen=citizen, action="given", channel=channel))
    audit(session, actor=actor or channel, action="consent.given", citizen_id=citizen.id)
    session.flush()
    version, model = published_model(session)
    return scoring.recompute(
        session, model, version, as_of=as_of, scope=scoring.citizen_ids([citizen.id])
    )


def withdraw_consent(
    session: Session, citizen: Citizen, *, channel: str, actor: str | None = None
) -> None:
    """Withdraw consent: the citizen is no longer scored and every score computed for them is erased.

    Records stay: they are lawful public records held by their sources, not products of consent.
    """
    if not citizen.consent_given:
        return
    citizen.consent_given = False
    citizen.consent_changed_at = utcnow()
    session.add(ConsentEvent(citizen=citizen, action="withdrawn", channel=channel))
    audit(session, actor=actor or channel, action="consent.withdrawn", citizen_id=citizen.id)
    # A dirty mark stays: the citizen's stored contributions (not a score) are still rebuilt.
    session.execute(delete(ScoreSnapshot).where(ScoreSnapshot.citizen_id == citizen.id))
    session.flush()
    events.announce(session, "consent.withdrawn", citizen_id=citizen.id)


# --- model versions -------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _parse_cached(source_text: str, sha256: str) -> ScoringModel:
    return parse_model(source_text, sha256)


def model_of(version: ScoringModelVersion) -> ScoringModel:
    """The parsed model of a stored version (cached: versions are immutable)."""
    return _parse_cached(version.source_text, version.source_sha256)


def published_model(session: Session) -> tuple[ScoringModelVersion, ScoringModel]:
    version = session.scalar(
        select(ScoringModelVersion).where(ScoringModelVersion.status == ModelStatus.PUBLISHED)
    )
    if version is None:
        raise NoPublishedModel()
    return version, model_of(version)


def find_version(session: Session, label: str) -> ScoringModelVersion:
    """Look up ``NAME@vN`` (or ``NAME`` for its latest version)."""
    name, _, number = label.partition("@v")
    query = select(ScoringModelVersion).where(ScoringModelVersion.name == name)
    if number:
        if not number.isdigit():
            raise EngineError(f"bad version label {label!r}: expected NAME@vN")
        query = query.where(ScoringModelVersion.version == int(number))
    version = session.scalar(query.order_by(ScoringModelVersion.version.desc()).limit(1))
    if version is None:
        raise EngineError(f"no scoring model version {label!r}")
    return version


def load_model_version(session: Session, text: str, filename: str) -> ScoringModelVersion:
    """Validate a model file and store it as the next draft version of its name."""
    model = parse_model(text, filename)
    latest = session.scalar(
        select(func.max(ScoringModelVersion.version)).where(ScoringModelVersion.name == model.name)
    )
    version = ScoringModelVersion(
        name=model.name,
        version=(latest or 0) + 1,
        kind=model.kind,
        status=ModelStatus.DRAFT,
        source_text=text,
        source_sha256=model.source_sha256,
        definition=model.definition,
    )
    session.add(version)
    session.flush()
    session.add_all(
        ScoringItem(
            model_version_id=version.id,
            code=item.code,
            dimension=item.dimension,
            points=item.points,
            repaired_points=item.repaired_points,
            validity_days=item.validity_days,
            validity_months=item.validity_months,
            repaired_validity_months=(
                item.repaired_validity.months if item.repaired_validity else None
            ),
            repaired_validity_days=item.repaired_validity.days if item.repaired_validity else None,
            yearly_cap=item.yearly_cap,
            direct_tier_rank=model.tier(item.direct_tier).rank if item.direct_tier else None,
            overlap_group=item.overlap_group,
            repeat_multiplier=item.repeat_multiplier,
            needs_ordering=item.needs_ordering,
        )
        for item in model.items.values()
    )
    session.flush()
    return version


def publish_model_version(
    session: Session, version: ScoringModelVersion, *, actor: str, today: dt.date | None = None
) -> None:
    """Make ``version`` the one used for scoring and re-derive every record's expiry date from it.

    Scores are not recomputed here: the caller runs :func:`recompute_all` (with progress) next.
    """
    if version.status == ModelStatus.PUBLISHED:
        raise EngineError(f"{version.label} is already published")
    from points_engine.catalogue import published_version, uncatalogued_items

    missing = uncatalogued_items(session, model_of(version).items)
    if missing:
        catalogue = published_version(session)
        raise EngineError(
            f"{version.label} scores {', '.join(missing)}, which the public credit information "
            f"catalogue (version {catalogue.number if catalogue else '?'}) does not hold: only "
            "catalogued information may be scored"
        )
    session.execute(
        update(ScoringModelVersion)
        .where(ScoringModelVersion.status == ModelStatus.PUBLISHED)
        .values(status=ModelStatus.RETIRED)
    )
    session.flush()
    version.status = ModelStatus.PUBLISHED
    version.published_at = utcnow()
    session.flush()
    # Only dates change: the source's word and the workflow are not the model's (issue 11 §0).
    record_state.rederive_expiry(session, version, today=today)
    # Every stored contribution was the old model's: each citizen with records is rescored.
    mark_dirty_where(
        session, select(Record.citizen_id).where(Record.citizen_id.is_not(None)).distinct()
    )
    audit(session, actor=actor, action="model.publish", model=version.label)


# --- scoring runs ---------------------------------------------------------------------------------

Progress = Callable[[int], None]


def mark_dirty(session: Session, citizen_ids: Iterable[int]) -> None:
    ids = sorted(set(citizen_ids))
    if ids and session.get_bind().dialect.name == "postgresql":
        # One statement with the ids as an array, not one per citizen (a chunk has thousands).
        ids_array = bindparam("citizen_ids", ids, type_=postgresql.ARRAY(BigInteger))
        mark_dirty_where(session, select(func.unnest(ids_array)))
        return
    insert_ignore(session, ScoreDirty, [{"citizen_id": cid} for cid in ids])


def mark_dirty_where(session: Session, citizen_select: Select[Any]) -> None:
    """Mark the citizens a query returns (set-based; the query must have a WHERE clause for SQLite)."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        module.insert(ScoreDirty)
        .from_select(["citizen_id"], citizen_select)
        .on_conflict_do_nothing()
    )


DRAIN_BY_RANGES_ABOVE = 50_000
"""More marks than this, with the caller's commit, and a drain goes range by range (see drain_dirty)."""


def drain_dirty(
    session: Session,
    *,
    as_of: dt.date,
    slice_size: int = 5000,
    commit: Callable[[], None] | None = None,
    workers: int = 1,
    chunk_size: int = 50_000,
) -> scoring.RunResult:
    """Recompute every citizen marked dirty, clearing each mark as it is taken (same transaction).

    Marks are taken a slice at a time (lowest ids first), so memory stays bounded whatever an import
    touched; a mark another transaction commits meanwhile is either taken by a later slice or stays
    for the next drain, never deleted unscored. Stops after as many slices as there were marks at the
    start, so a steady stream of new marks cannot keep it running.

    City-wide marks (more than :data:`DRAIN_BY_RANGES_ABOVE`, e.g. after a city's first import) with
    ``commit`` given go as :func:`recompute_all` goes: citizen-id ranges of ``chunk_size``, each its
    own transaction, on ``workers`` connections (PostgreSQL), contributions rebuilt for a whole range
    at once. Slices of ids in one transaction took over 30 minutes for a million citizens.
    """
    version, model = published_model(session)
    pending = session.execute(select(func.count()).select_from(ScoreDirty)).scalar_one()
    if commit is not None and pending > DRAIN_BY_RANGES_ABOVE:
        low, high = session.execute(
            select(func.min(ScoreDirty.citizen_id), func.max(ScoreDirty.citizen_id))
        ).one()
        spans = [(start, start + chunk_size - 1) for start in range(low, high + 1, chunk_size)]
        # Read before the ranges start: after the first commit ``version`` is expired, and reading
        # it from the range threads would load it through this session from several at once.
        version_id = version.id
        summary = _run_ranges(
            session,
            spans,
            lambda own, span: _recompute_range(
                own, model, version_id, span, as_of, chunk_size, only_dirty=True
            ),
            commit=commit,
            workers=workers,
        )
        return scoring.RunResult("", summary.citizens, summary.changed)
    citizens = changed = 0
    for _ in range(-(-pending // slice_size)):
        first = select(ScoreDirty.citizen_id).order_by(ScoreDirty.citizen_id).limit(slice_size)
        taken = list(
            session.scalars(
                delete(ScoreDirty)
                .where(ScoreDirty.citizen_id.in_(first))
                .returning(ScoreDirty.citizen_id)
            )
        )
        if not taken:
            break
        scope = scoring.citizen_ids(taken)
        part = scoring.recompute(session, model, version, as_of=as_of, scope=scope)
        citizens += part.citizens
        changed += part.changed
    return scoring.RunResult("", citizens, changed)


@dataclass
class RecomputeSummary:
    citizens: int = 0
    changed: int = 0


def recompute_all(
    session: Session,
    *,
    as_of: dt.date,
    chunk_size: int = 50_000,
    progress: Progress | None = None,
    commit: Callable[[], None] | None = None,
    workers: int = 1,
) -> RecomputeSummary:
    """Recompute every consenting citizen with the published model, one citizen-id range at a time.

    ``commit`` (given by the CLI) ends each range's transaction so a city-scale run holds no long locks
    and survives interruption: a rerun recomputes only what it has to. With ``commit``, ``workers``
    > 1 scores ranges on that many connections at once (PostgreSQL; each range its own transaction),
    for a database with the cores; the caller's session must hold no uncommitted work.
    """
    version, model = published_model(session)
    version_id = version.id
    return _run_ranges(
        session,
        list(scoring.citizen_id_ranges(session, chunk_size)),
        lambda own, span: _recompute_range(own, model, version_id, span, as_of, chunk_size),
        commit=commit,
        workers=workers,
        progress=progress,
    )


RangeRun = Callable[[Session, tuple[int, int]], scoring.RunResult]


def _run_ranges(
    session: Session,
    ranges: list[tuple[int, int]],
    run: RangeRun,
    *,
    commit: Callable[[], None] | None,
    workers: int,
    progress: Progress | None = None,
) -> RecomputeSummary:
    """``run`` each range, a transaction each when ``commit`` is given, on ``workers`` connections
    where the session's own engine can lend them (PostgreSQL; not inside an outer transaction on
    one connection, whose uncommitted rows others could not see)."""
    summary = RecomputeSummary()
    bind = session.get_bind()
    parallel = (
        workers > 1
        and commit is not None
        and len(ranges) > 1
        and isinstance(bind, Engine)
        and bind.dialect.name == "postgresql"
    )
    if not parallel:
        for span in ranges:
            result = run(session, span)
            summary.citizens += result.citizens
            summary.changed += result.changed
            if commit is not None:
                commit()
            if progress is not None:
                progress(span[1] - span[0] + 1)
        return summary

    assert commit is not None and isinstance(bind, Engine)
    commit()
    engine = bind
    lock = threading.Lock()
    pending = iter(ranges)
    failures: list[BaseException] = []

    def work() -> None:
        with Session(bind=engine) as own:
            while not failures:
                with lock:
                    span = next(pending, None)
                if span is None:
                    return
                try:
                    result = run(own, span)
                    own.commit()
                except BaseException as exc:  # re-raised in the caller's thread
                    own.rollback()
                    with lock:
                        failures.append(exc)
                    return
                with lock:
                    summary.citizens += result.citizens
                    summary.changed += result.changed
                    if progress is not None:
                        progress(span[1] - span[0] + 1)

    threads = [threading.Thread(target=work, name=f"recompute-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return summary


def _recompute_range(
    session: Session,
    model: ScoringModel,
    version_id: int,
    span: tuple[int, int],
    as_of: dt.date,
    chunk_size: int,
    *,
    only_dirty: bool = False,
) -> scoring.RunResult:
    """Score a citizen-id range; ``only_dirty``: only its dirty citizens (all of the range when many
    are: one set-based pass costs less than a long id list)."""
    low, high = span
    scope = scoring.id_range(low, high)
    if session.get_bind().dialect.name == "postgresql":
        # Each statement here runs once per range: compiling its expressions (JIT) costs more than
        # it saves (about 0.3 s a statement on the bench's machine).
        session.execute(text("SET LOCAL jit = off"))
    # Stored contributions are current but for the dirty citizens: rebuild theirs (the whole range at
    # once when many are, e.g. after a model is published), then sum.
    stale = list(
        session.scalars(
            delete(ScoreDirty)
            .where(ScoreDirty.citizen_id.between(low, high))
            .returning(ScoreDirty.citizen_id)
        )
    )
    many = len(stale) > chunk_size // 10
    if many:
        scoring.refresh_contributions(session, version_id, scope)
    elif stale:
        scoring.refresh_contributions(session, version_id, scoring.citizen_ids(stale))
    if only_dirty and not many:
        if not stale:
            return scoring.RunResult("", 0, 0)
        scope = scoring.citizen_ids(stale)
    return scoring.score_stored(session, model, version_id, as_of=as_of, scope=scope)


def expire_records(session: Session, *, today: dt.date) -> tuple[int, scoring.RunResult | None]:
    """Daily job: rescore the citizens whose records crossed their expiry date (no status is written:
    the rules leave a record out by its date). Returns how many records crossed, and the run."""
    return record_state.rescore_expired(session, today=today)


def give_consent_bulk(session: Session, citizen_select: Select[Any], *, channel: str) -> int:
    """Record consent for many citizens at once (consents migrated from the city app); set-based.

    Scores are not computed here: the caller recomputes (``recompute_all``) afterwards.
    """
    now = utcnow()
    target = select(Citizen.id).where(
        Citizen.id.in_(citizen_select), Citizen.consent_given.is_(False)
    )
    session.execute(
        insert(ConsentEvent).from_select(
            ["citizen_id", "action", "channel", "at"],
            select(
                target.subquery().c.id,
                literal("given"),
                literal(channel),
                literal(now, type_=ConsentEvent.at.type),
            ),
        )
    )
    changed = session.execute(  # type: ignore[attr-defined]  # DML results carry rowcount
        update(Citizen)
        .where(Citizen.id.in_(citizen_select), Citizen.consent_given.is_(False))
        .values(consent_given=True, consent_changed_at=now)
    ).rowcount
    return changed or 0
