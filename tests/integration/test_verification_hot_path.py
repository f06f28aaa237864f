"""Verification's hot path (issue 14): what a process remembers between verifications — the scenario,
the API client, verified access tokens — never outlives a change for longer than documented, and every
verification is still one row."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from citycredit.core import clients
from citycredit.core.actors import Actor
from citycredit.core.clients import ApiClient, AuthError, authenticate_bearer, register_client
from citycredit.core.config import Settings, load_settings
from citycredit.core.db import make_session_factory
from citycredit.web.app import create_app
from citycredit.web.floor import PATH as FLOOR_PATH
from credit_codes import operations
from credit_codes.models import Verification
from points_engine.models import Citizen
from points_engine.operations import give_consent
from scenarios import operations as scenarios
from scenarios.demo import ensure_demo_scenarios
from scenarios.models import Scenario, ScenarioVenue, Venue
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import citizen_app
from tests.rule_cases import ITEMISED

LIBRARY = "library-deposit-free"
CITY = Actor("credit-office", can_publish=True)


def _city(session: Session, tmp_path: Path) -> tuple[Settings, Citizen, ApiClient]:
    settings = load_settings(
        env={"CITYCREDIT_INSTANCE_DIR": str(tmp_path)}, environment="development"
    )
    factories.source(session)
    factories.published(session, ITEMISED)
    ensure_demo_scenarios(session)
    person = factories.citizen(session, consent=False)
    factories.record(session, person, "AWARD", "2026-06-01")
    give_consent(session, person, channel="app", as_of=dt.datetime.now(settings.tz).date())
    desk = register_client(
        session, name="desk", kind="venue", scopes=["verify"], key_secret=settings.key_secret
    ).client
    return settings, person, desk


def _verify(session: Session, settings: Settings, person: Citizen, desk: ApiClient) -> bool:
    now = dt.datetime.now(dt.UTC)
    token = operations.issue_credit_code(session, settings, person, now=now, actor="app").token
    result = operations.verify_presentation(
        session, settings, desk, token, LIBRARY, now=now, remembered=True
    )
    return result.eligible


def _rows(session: Session, person: Citizen) -> int:
    return session.scalar(
        select(func.count()).select_from(Verification).where(Verification.citizen_id == person.id)
    )


def test_a_remembered_scenario_records_one_row_and_a_suspension_stops_it_at_once(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, person, desk = _city(session, tmp_path)
    assert _verify(session, settings, person, desk)
    with monkeypatch.context() as patched:  # from the process's memory, no second look
        patched.setattr(operations, "scenario_for_use", None)
        patched.setattr(operations, "forget_in_use", None)
        assert _verify(session, settings, person, desk)
    assert _rows(session, person) == 2
    library = session.scalar(select(Scenario).where(Scenario.code == LIBRARY))
    assert library is not None
    scenarios.suspend(session, CITY, library)
    with pytest.raises(scenarios.ScenarioUnavailable):
        _verify(session, settings, person, desk)
    assert _rows(session, person) == 2
    scenarios.resume(session, CITY, library)
    assert _verify(session, settings, person, desk)
    assert _rows(session, person) == 3


def test_a_client_revoked_by_another_process_verifies_nothing_more(
    session: Session, tmp_path: Path
) -> None:
    settings, person, desk = _city(session, tmp_path)
    assert _verify(session, settings, person, desk)
    # Another process revokes it: this process's memory is not told.
    session.execute(
        update(ApiClient)
        .where(ApiClient.id == desk.id)
        .values(status="revoked", credential_version=ApiClient.credential_version + 1)
    )
    with pytest.raises(AuthError):
        _verify(session, settings, person, desk)
    assert _rows(session, person) == 1


def test_a_bearer_token_is_refused_within_the_documented_bound_of_a_revocation_elsewhere(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _, desk = _city(session, tmp_path)
    token, _ = clients.issue_access_token(
        session, settings, desk, None, now=dt.datetime.now(dt.UTC)
    )
    assert authenticate_bearer(session, settings, token).client.id == desk.id
    session.execute(
        update(ApiClient)
        .where(ApiClient.id == desk.id)
        .values(status="revoked", credential_version=ApiClient.credential_version + 1)
    )
    # Within the bound the process may still accept it (the verification itself would not) …
    assert authenticate_bearer(session, settings, token).client.id == desk.id
    # … and past it never.
    later = clients.time.monotonic() + clients.CLIENT_CACHE_SECONDS
    monkeypatch.setattr(clients.time, "monotonic", lambda: later)
    with pytest.raises(AuthError, match="revoked"):
        authenticate_bearer(session, settings, token)


def test_a_revocation_in_this_process_takes_effect_at_once(
    session: Session, tmp_path: Path
) -> None:
    settings, _, desk = _city(session, tmp_path)
    token, _ = clients.issue_access_token(
        session, settings, desk, None, now=dt.datetime.now(dt.UTC)
    )
    assert authenticate_bearer(session, settings, token).scopes == {"verify"}
    clients.revoke_client(session, desk)
    with pytest.raises(AuthError):
        authenticate_bearer(session, settings, token)


def test_the_floor_endpoint_exists_only_when_a_benchmark_asks_and_records_one_row(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with citizen_app(fresh_database, tmp_path) as city:
        assert city.client().post(FLOOR_PATH, json={}).status_code == 404
        assert FLOOR_PATH not in city.client().get("/api/openapi.json").get_data(as_text=True)
    app = create_app(
        {
            "database_url": fresh_database.url,
            "id_hash_key": factories.KEY,
            "instance_dir": tmp_path,
            "environment": "development",
            "bench_floor": True,
        }
    )
    settings = app.extensions["citycredit"].settings
    with make_session_factory(fresh_database.engine)() as session:
        _, person, desk = _city(session, tmp_path)
        now = dt.datetime.now(dt.UTC)
        token = operations.issue_credit_code(session, settings, person, now=now, actor="app").token
        library = session.scalar(select(Scenario).where(Scenario.code == LIBRARY))
        assert library is not None
        version = scenarios.live_version(session, library.id)
        assert version is not None
        ids = {"client": desk.id, "scenario": library.id, "version": version.id}
        session.commit()
        person_id = person.id
    client = app.test_client()
    try:
        answer = client.post(FLOOR_PATH, json={"token": token, **ids})
        tampered = client.post(FLOOR_PATH, json={"token": token[:-4] + "AAAA", **ids})
    finally:
        app.extensions["citycredit"].engine.dispose()
    assert answer.status_code == 200 and answer.get_json()["eligible"] is True
    assert tampered.status_code == 422 and tampered.mimetype == "application/problem+json"
    with make_session_factory(fresh_database.engine)() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(Verification)
            .where(Verification.citizen_id == person_id)
        )
    assert rows == 1


def test_a_venue_desk_verifies_only_where_its_venue_still_honours_the_scenario(
    session: Session, tmp_path: Path
) -> None:
    settings, person, _ = _city(session, tmp_path)
    library = session.scalar(select(Scenario).where(Scenario.code == LIBRARY))
    assert library is not None
    venue = Venue(
        code="library-east",
        operator_id=library.operator_id,
        category=library.category,
        name_zh="东区图书馆",
        name_en="East library",
    )
    session.add(venue)
    session.flush()
    venue_id = venue.id
    assert _verify(session, settings, person, desk_without_venue := _city_desk(session, settings))
    # Another process lets the venue honour the scenario (this process remembers it without).
    session.add(ScenarioVenue(scenario_id=library.id, venue_id=venue_id))
    session.flush()
    desk = register_client(
        session,
        name="venue desk",
        kind="venue",
        scopes=["verify"],
        venue_id=venue_id,
        key_secret=settings.key_secret,
    ).client
    assert _verify(session, settings, person, desk)
    assert _verify(session, settings, person, desk)
    # Another process takes the venue off the scenario, without touching updated_at.
    session.execute(
        delete(ScenarioVenue).where(
            ScenarioVenue.scenario_id == library.id, ScenarioVenue.venue_id == venue_id
        )
    )
    with pytest.raises(scenarios.ScenarioUnavailable, match="venue"):
        _verify(session, settings, person, desk)
    assert _rows(session, person) == 3
    assert desk_without_venue.venue_id is None


def _city_desk(session: Session, settings: Settings) -> ApiClient:
    return register_client(
        session, name="city desk", kind="venue", scopes=["verify"], key_secret=settings.key_secret
    ).client
