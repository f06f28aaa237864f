"""The set-based SQL scoring gives exactly what the reference rules give, case by case and city-wide."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citycredit.cli.demo import ensure_reference_models, ensure_sources
from points_engine import operations, scoring
from points_engine.ingest import ingest_rows, start_batch
from points_engine.models import Citizen, Record, ScoreSnapshot
from points_engine.queries import current_snapshot
from points_engine.rules import RecordFact, evaluate
from points_engine.synthetic import CityPlan, generate_rows
from tests import factories
from tests.conftest import KEY
from tests.rule_cases import AS_OF, CASES, MODELS, Case


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_case_in_sql(session: Session, case: Case) -> None:
    version = factories.published(session, MODELS[case.model])
    person = factories.citizen(session)
    for rec in case.records:
        factories.record(session, person, rec.item, rec.occurred_on, status=rec.status)
    _, model = operations.published_model(session)
    scoring.recompute(session, model, version, as_of=AS_OF, scope=scoring.citizen_ids([person.id]))
    snap = current_snapshot(session, person.id)
    assert snap is not None
    assert (snap.score, snap.tier_code, snap.direct_tier) == (case.score, case.tier, case.direct)


def _city(session: Session, citizens: int) -> None:
    ensure_sources(session)
    ensure_reference_models(session, actor="test")
    plan = CityPlan(citizens=citizens, records_per_citizen=8, seed=7, today=AS_OF)
    rows = ({k: v for k, v in row.items()} for row in generate_rows(plan))
    batch = start_batch(session, "synthetic", "csv")
    numbered = ((n, row) for n, row in enumerate(rows, start=2))
    for _ in ingest_rows(session, numbered, key=KEY, batch=batch, today=AS_OF, chunk_size=700):
        session.commit()
    operations.give_consent_bulk(
        session, select(Citizen.id).where(Citizen.id % 7 != 0), channel="test"
    )


def _assert_sql_equals_rules(session: Session) -> int:
    _, model = operations.published_model(session)
    facts: dict[int, list[RecordFact]] = {}
    for r in session.scalars(select(Record)):
        facts.setdefault(r.citizen_id, []).append(
            RecordFact(r.id, r.item_code, r.status, r.occurred_on)
        )
    snapshots = session.scalars(
        select(ScoreSnapshot).where(ScoreSnapshot.is_current.is_(True))
    ).all()
    mismatches = []
    for snap in snapshots:
        expected = evaluate(model, facts.get(snap.citizen_id, []), AS_OF)
        got = (snap.score, snap.tier_rank, snap.direct_tier, snap.breakdown)
        want = (expected.score, expected.tier.rank, expected.direct_tier, expected.dimensions)
        if got != want:
            mismatches.append((snap.citizen_id, got, want))
    assert mismatches == []
    return len(snapshots)


def test_whole_city_sql_equals_rules_for_both_reference_models(session: Session) -> None:
    _city(session, 400)
    summary = operations.recompute_all(session, as_of=AS_OF, chunk_size=150)
    consenting = session.scalar(select(func.count()).where(Citizen.consent_given.is_(True)))
    assert summary.citizens == consenting == _assert_sql_equals_rules(session)
    tiers = set(session.scalars(select(ScoreSnapshot.tier_code).where(ScoreSnapshot.is_current)))
    assert len(tiers) >= 4, "the synthetic city should spread over the tiers"

    operations.publish_model_version(
        session, operations.find_version(session, "weighted-dimensions"), actor="test"
    )
    operations.recompute_all(session, as_of=AS_OF, chunk_size=1000)
    assert _assert_sql_equals_rules(session) == consenting


def test_recomputing_an_unchanged_city_writes_no_new_history(session: Session) -> None:
    _city(session, 120)
    first = operations.recompute_all(session, as_of=AS_OF)
    snapshots = session.scalar(select(func.count()).select_from(ScoreSnapshot))
    second = operations.recompute_all(session, as_of=AS_OF)
    assert first.changed == first.citizens > 0
    assert second.changed == 0
    assert session.scalar(select(func.count()).select_from(ScoreSnapshot)) == snapshots


def test_citizens_without_consent_have_no_score(session: Session) -> None:
    _city(session, 120)
    operations.recompute_all(session, as_of=AS_OF)
    unscored = session.scalars(select(Citizen.id).where(Citizen.consent_given.is_(False))).all()
    assert unscored
    assert (
        session.scalar(
            select(func.count())
            .select_from(ScoreSnapshot)
            .where(ScoreSnapshot.citizen_id.in_(unscored))
        )
        == 0
    )
