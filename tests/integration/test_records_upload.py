"""The records API before the city has a scoring model: a precise problem, and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from points_engine.models import IngestBatch, Record, ScoringModelVersion
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import CitizenApp, citizen_app
from tests.integration.test_pipeline import bearer, client_token


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def test_an_upload_without_a_published_model_is_no_published_model_and_stores_nothing(
    city: CitizenApp,
) -> None:
    token = client_token(city, "source", ["records:write"])
    with city.session() as session:
        batches = session.scalar(select(func.count()).select_from(IngestBatch))
        records = session.scalar(select(func.count()).select_from(Record))
        session.execute(update(ScoringModelVersion).values(status="retired"))
    row = {
        "source": "court",
        "source_record_id": "R-1",
        "id_number": "110101199003070011",
        "item_code": "VOLUNTEER_HOURS",
        "document_no": "D-1",
        "occurred_on": "2026-01-05",
        "reported_on": "2026-01-06",
    }
    answer = city.client().post("/api/v1/records", json={"records": [row]}, headers=bearer(token))
    assert answer.status_code == 409
    assert answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["type"].endswith("/problems/no-published-model")
    assert "model" in problem["detail"]
    with city.session() as session:
        assert session.scalar(select(func.count()).select_from(IngestBatch)) == batches
        assert session.scalar(select(func.count()).select_from(Record)) == records
