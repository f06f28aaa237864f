"""The stored contributions stay true: after any sequence of changes, what the incremental path left
equals a full recompute from the records, and both equal the reference rules."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from citycredit.cli.demo import ensure_reference_models, ensure_sources
from points_engine import operations, record_state, scoring
from points_engine.ingest import ingest_rows, start_batch
from points_engine.models import (
    Citizen,
    Record,
    RecordContribution,
    RecordStatus,
    ScoreDirty,
    ScoreSnapshot,
    ScoreWork,
)
from points_engine.rules import RecordFact, evaluate
from points_engine.synthetic import CityPlan, generate_rows
from tests.conftest import KEY
from tests.databases import ScratchDatabase

START = dt.date(2026, 3, 2)


def _ingest(session: Session, rows: list[dict[str, str]], today: dt.date) -> None:
    """As ``citycredit ingest`` does: the rows, then the citizens they touched are rescored."""
    batch = start_batch(session, "synthetic", "csv")
    numbered = ((n, dict(row)) for n, row in enumerate(rows, start=2))
    for _ in ingest_rows(session, numbered, key=KEY, batch=batch, today=today, chunk_size=40):
        pass
    operations.drain_dirty(session, as_of=today)


def _current(session: Session) -> dict[int, tuple[Any, ...]]:
    return {
        s.citizen_id: (s.score, s.tier_code, s.direct_tier, s.breakdown, s.model_version_id)
        for s in session.scalars(select(ScoreSnapshot).where(ScoreSnapshot.is_current.is_(True)))
    }


def _from_records(session: Session, today: dt.date) -> dict[int, tuple[Any, ...]]:
    """Every consenting citizen scored straight from the records (no stored contribution read)."""
    version, model = operations.published_model(session)
    run_id = scoring.compute_into_work(session, model, version.id, as_of=today)
    tiers = {t.rank: t.code for t in model.tiers}
    rows = session.scalars(select(ScoreWork).where(ScoreWork.run_id == run_id)).all()
    got = {
        w.citizen_id: (w.score, tiers[w.tier_rank], w.direct_tier, w.breakdown, version.id)
        for w in rows
    }
    session.execute(delete(ScoreWork).where(ScoreWork.run_id == run_id))
    return got


def _from_rules(session: Session, today: dt.date) -> dict[int, tuple[Any, ...]]:
    version, model = operations.published_model(session)
    facts: dict[int, list[RecordFact]] = {}
    for r in session.scalars(select(Record)):
        facts.setdefault(r.citizen_id, []).append(
            RecordFact(r.id, r.item_code, r.status, r.occurred_on, r.repaired_on)
        )
    out = {}
    for cid in session.scalars(select(Citizen.id).where(Citizen.consent_given.is_(True))):
        e = evaluate(model, facts.get(cid, []), today)
        out[cid] = (e.score, e.tier.code, e.direct_tier, e.dimensions, version.id)
    return out


def test_incremental_changes_leave_what_a_full_recompute_from_the_records_gives(
    session: Session,
) -> None:
    rng = random.Random(20261207)
    ensure_sources(session)
    ensure_reference_models(session, actor="test")
    plan = CityPlan(citizens=60, records_per_citizen=6, seed=11, today=START)
    rows = list(generate_rows(plan))
    rng.shuffle(rows)
    held_back, first = rows[: len(rows) // 4], rows[len(rows) // 4 :]
    today = START
    _ingest(session, first, today)
    operations.give_consent_bulk(
        session, select(Citizen.id).where(Citizen.id % 5 != 0), channel="test"
    )
    operations.recompute_all(session, as_of=today)
    assert session.execute(select(func.count()).select_from(Record)).scalar_one() > 0.9 * len(first)
    assert session.execute(select(func.count()).select_from(ScoreSnapshot)).scalar_one() > 30
    sent = list(first)
    steps: list[str] = []
    kinds = ["ingest", "correct", "objection", "decide", "repair", "consent", "days"]
    for n in range(40):
        # A model change rebuilds everything: the last twenty steps are incremental only.
        step = rng.choice([*kinds, "model"] if n < 20 else kinds)
        steps.append(step)
        records = session.scalars(select(Record).order_by(Record.id)).all()
        if step == "ingest" and held_back:
            part, held_back = held_back[:12], held_back[12:]
            _ingest(session, part, today)
            sent.extend(part)
        elif step == "correct":
            row = dict(rng.choice(sent))
            day = dt.date.fromisoformat(row["occurred_on"]) - dt.timedelta(days=rng.randint(1, 400))
            row["occurred_on"] = row["reported_on"] = day.isoformat()
            _ingest(session, [row], today)
        elif step == "objection":
            record = rng.choice(records)
            if record.status in (RecordStatus.ACTIVE, RecordStatus.REPAIRED):
                record_state.change_record_state(
                    session, record, as_of=today, workflow=record_state.Workflow.UNDER_OBJECTION
                )
        elif step == "decide":
            open_ = [r for r in records if r.status == RecordStatus.UNDER_OBJECTION]
            if open_:
                outcome = rng.choice([record_state.Outcome.REVOKED, record_state.Outcome.NONE])
                record_state.change_record_state(
                    session,
                    rng.choice(open_),
                    as_of=today,
                    workflow=record_state.Workflow.NONE,
                    outcome=outcome,
                )
        elif step == "repair":
            negative = [r for r in records if r.status == RecordStatus.ACTIVE and r.expires_on]
            if negative:
                record_state.change_record_state(
                    session,
                    rng.choice(negative),
                    as_of=today,
                    outcome=record_state.Outcome.REPAIRED,
                    repaired_on=today,
                )
        elif step == "consent":
            person = session.get(Citizen, rng.choice(records).citizen_id)
            assert person is not None
            if person.consent_given:
                operations.withdraw_consent(session, person, channel="test")
            else:
                operations.give_consent(session, person, channel="test", as_of=today)
        elif step == "days":
            today += dt.timedelta(days=rng.choice([1, 30, 200]))
            record_state.rescore_expired(session, today=today)
        elif step == "model":
            published, _ = operations.published_model(session)
            itemised = published.label.startswith("itemised-base1000")
            other = "weighted-dimensions" if itemised else "itemised-base1000"
            version = operations.find_version(session, other)
            operations.publish_model_version(session, version, actor="test", today=today)
            operations.recompute_all(session, as_of=today)
        session.commit()
    assert {"ingest", "objection", "days", "model"} <= set(steps), steps

    incremental = _current(session)
    assert incremental == _from_records(session, today)
    assert incremental == _from_rules(session, today)
    # A full recompute that rebuilds every stored contribution changes nothing either.
    operations.mark_dirty_where(session, select(Record.citizen_id).where(Record.id > 0))
    summary = operations.recompute_all(session, as_of=today)
    assert summary.changed == 0
    assert _current(session) == incremental
    assert session.execute(select(func.count()).select_from(RecordContribution)).scalar_one() > 0


def test_a_published_model_leaves_no_contribution_of_the_old_one_in_use(session: Session) -> None:
    ensure_sources(session)
    ensure_reference_models(session, actor="test")
    rows = list(generate_rows(CityPlan(citizens=30, records_per_citizen=6, seed=3, today=START)))
    _ingest(session, rows, START)
    operations.give_consent_bulk(session, select(Citizen.id).where(Citizen.id > 0), channel="t")
    operations.recompute_all(session, as_of=START)
    weighted = operations.find_version(session, "weighted-dimensions")
    operations.publish_model_version(session, weighted, actor="test", today=START)
    summary = operations.recompute_all(session, as_of=START)
    assert summary.changed == summary.citizens > 0
    assert _current(session) == _from_rules(session, START)


def test_ranges_scored_on_several_connections_give_what_one_connection_gives(
    fresh_database: ScratchDatabase,
) -> None:
    engine = fresh_database.engine
    with Session(engine) as session:
        ensure_sources(session)
        ensure_reference_models(session, actor="test")
        rows = generate_rows(CityPlan(citizens=90, records_per_citizen=5, seed=5, today=START))
        _ingest(session, list(rows), START)
        operations.give_consent_bulk(session, select(Citizen.id).where(Citizen.id > 0), channel="t")
        session.commit()
        one = operations.recompute_all(session, as_of=START, chunk_size=10, commit=session.commit)
        alone = _current(session)
        # Everyone's contributions rebuilt and every snapshot written again, four ranges at a time.
        session.execute(delete(ScoreSnapshot))
        operations.mark_dirty_where(session, select(Record.citizen_id).where(Record.id > 0))
        session.commit()
        many = operations.recompute_all(
            session, as_of=START, chunk_size=10, commit=session.commit, workers=4
        )
        session.commit()
        assert (many.citizens, many.changed) == (one.citizens, one.changed) == (len(alone),) * 2
        assert _current(session) == alone
        assert session.scalar(select(func.count()).select_from(ScoreDirty)) == 0


def test_a_city_wide_drain_goes_by_ranges_and_scores_only_the_dirty(
    fresh_database: ScratchDatabase, monkeypatch: Any
) -> None:
    """After a city's first import every citizen is dirty: the drain goes range by range (each its
    own transaction, several connections on PostgreSQL) and leaves what the rules give; a range with
    few marks scores only those citizens."""
    monkeypatch.setattr(operations, "DRAIN_BY_RANGES_ABOVE", 20)
    ranges: list[tuple[int, int]] = []
    by_range = operations._recompute_range

    def spy(session: Session, *args: Any, **kwargs: Any) -> scoring.RunResult:
        ranges.append(args[2])
        return by_range(session, *args, **kwargs)

    monkeypatch.setattr(operations, "_recompute_range", spy)
    engine = fresh_database.engine
    with Session(engine) as session:
        ensure_sources(session)
        ensure_reference_models(session, actor="test")
        session.execute(delete(ScoreDirty))
        rows = generate_rows(CityPlan(citizens=90, records_per_citizen=5, seed=8, today=START))
        batch = start_batch(session, "synthetic", "csv")
        numbered = ((n, dict(row)) for n, row in enumerate(rows, start=2))
        for _ in ingest_rows(session, numbered, key=KEY, batch=batch, today=START, chunk_size=40):
            pass
        operations.give_consent_bulk(session, select(Citizen.id).where(Citizen.id > 0), channel="t")
        session.commit()
        marked = session.scalar(select(func.count()).select_from(ScoreDirty))
        assert marked is not None and marked > 20
        wide = operations.drain_dirty(
            session, as_of=START, chunk_size=40, commit=session.commit, workers=3
        )
        session.commit()
        assert session.scalar(select(func.count()).select_from(ScoreDirty)) == 0
        assert _current(session) == _from_rules(session, START)
        assert wide.changed == len(_current(session))
        assert len(ranges) >= 2  # ranges 40 wide

        # Three citizens in different ranges lose their snapshots and are marked: only they are
        # scored (3 marks in a 40-wide range are fewer than a tenth of it).
        ids = sorted(_current(session))
        few = [ids[0], ids[len(ids) // 2], ids[-1]]
        session.execute(
            delete(ScoreSnapshot).where(
                ScoreSnapshot.citizen_id.in_(few), ScoreSnapshot.is_current.is_(True)
            )
        )
        operations.mark_dirty(session, few)
        monkeypatch.setattr(operations, "DRAIN_BY_RANGES_ABOVE", 2)
        session.commit()
        sparse = operations.drain_dirty(
            session, as_of=START, chunk_size=40, commit=session.commit, workers=3
        )
        session.commit()
        assert (sparse.citizens, sparse.changed) == (3, 3)
        assert _current(session) == _from_rules(session, START)
