"""The objections API for data sources: the court's system reads the cases forwarded to it and answers
them; the tax office's system never sees the court's; no ID number travels; every read is audited."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from citizen import operations as citizen_ops
from citizen.models import Objection
from citycredit.core.actors import Actor
from citycredit.core.audit import AuditEvent
from citycredit.core.clients import register_client
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import CitizenApp, citizen_app
from tests.integration.test_pipeline import bearer
from tests.rule_cases import ITEMISED

REVIEWER = Actor("admin:rev")
REASON = "处罚对象有误，当天我不在本市。"
FILED = dt.date(2026, 6, 29)
NOW = dt.datetime(2026, 6, 29, 2, tzinfo=dt.UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def source_token(city: CitizenApp, source: str | None, scopes: list[str]) -> str:
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        bound = factories.source(session, source).id if source else None
        issued = register_client(
            session,
            name=f"{source} system",
            kind="source",
            scopes=scopes,
            source_id=bound,
            key_secret=settings.key_secret,
        )
    assert issued.secret is not None
    answer = city.client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(issued.client.client_id, issued.secret),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return str(answer.get_json()["access_token"])


def file_and_forward(city: CitizenApp) -> tuple[str, str, str]:
    """A forwarded case against a court record, an open one against a court record, and a
    forwarded one against a tax record; returns their case ids."""
    ids = []
    with city.session() as session:
        factories.published(session, ITEMISED)
        court, tax = factories.source(session, "court"), factories.source(session, "tax")
        for src, forward in ((court, True), (court, False), (tax, True)):
            person = factories.citizen(session)
            fine = factories.record(session, person, "BIG_FINE", "2026-05-01", src=src)
            case = citizen_ops.file_objection(session, person, fine, REASON, today=FILED, now=NOW)
            if forward:
                citizen_ops.forward(session, case, REVIEWER, NOW)
            ids.append(case.public_id)
    return ids[0], ids[1], ids[2]


def test_a_source_reads_its_forwarded_cases_and_answers_them(city: CitizenApp) -> None:
    forwarded, still_open, taxes = file_and_forward(city)
    court = source_token(city, "court", ["objections:answer"])
    client = city.client()
    listed = client.get("/api/v1/objections", headers=bearer(court))
    assert listed.status_code == 200, listed.get_data(as_text=True)
    cases = listed.get_json()
    assert [c["case_id"] for c in cases] == [forwarded]
    case = cases[0]
    assert case["status"] == "forwarded" and case["source"] == "court"
    assert case["reason"] == REASON and case["item_code"] == "BIG_FINE"
    assert case["deadline"] == "2026-07-27" and isinstance(case["working_days_left"], int)
    assert case["source_record_id"].startswith("r-")
    body = json.dumps(cases)
    assert "id_number" not in body and "citizen" not in body  # no one's identity travels
    pending = client.get("/api/v1/objections?status=pending", headers=bearer(court)).get_json()
    assert {c["case_id"] for c in pending} == {forwarded, still_open}

    # Another source's case does not exist for the court.
    other = client.get(f"/api/v1/objections/{taxes}", headers=bearer(court))
    assert other.status_code == 404 and other.mimetype == PROBLEM
    refused = client.post(
        f"/api/v1/objections/{taxes}/answer", json={"answer": "不是我们的"}, headers=bearer(court)
    )
    assert refused.status_code == 404

    # The answer: blank is a validation error; the real one moves the case on; a second is a conflict.
    blank = client.post(
        f"/api/v1/objections/{forwarded}/answer", json={"answer": "   "}, headers=bearer(court)
    )
    assert blank.status_code == 422 and blank.get_json()["errors"] == {
        "answer": ["must not be blank"]
    }
    answered = client.post(
        f"/api/v1/objections/{forwarded}/answer",
        json={"answer": "经核实，处罚对象登记错误。"},
        headers=bearer(court),
    )
    assert answered.status_code == 200, answered.get_data(as_text=True)
    assert answered.get_json()["status"] == "answered"
    again = client.post(
        f"/api/v1/objections/{forwarded}/answer", json={"answer": "再答一次"}, headers=bearer(court)
    )
    assert again.status_code == 409 and again.get_json()["type"] == "/problems/objection-conflict"
    early = client.post(
        f"/api/v1/objections/{still_open}/answer", json={"answer": "抢答"}, headers=bearer(court)
    )
    assert early.status_code == 409  # not forwarded yet
    with city.session() as session:
        objection = session.scalar(select(Objection).where(Objection.public_id == forwarded))
        assert objection is not None
        assert (objection.status, objection.source_answer) == (
            "answered",
            "经核实，处罚对象登记错误。",
        )
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(("objection.view", "objection.answer")))
        ).all()
        actors = {(e.actor.split(":")[0], e.action) for e in events}
        assert actors == {("client", "objection.view"), ("client", "objection.answer")}
        assert all(e.citizen_id is not None for e in events)


def test_the_scope_is_needed_and_a_city_wide_client_sees_every_source(city: CitizenApp) -> None:
    forwarded, _, taxes = file_and_forward(city)
    records_only = source_token(city, "court", ["records:write"])
    client = city.client()
    refused = client.get("/api/v1/objections", headers=bearer(records_only))
    assert refused.status_code == 403 and refused.get_json()["type"].endswith("insufficient-scope")
    assert client.get("/api/v1/objections").status_code == 401
    everywhere = source_token(city, None, ["objections:answer"])
    cases = client.get("/api/v1/objections", headers=bearer(everywhere)).get_json()
    assert {c["case_id"] for c in cases} == {forwarded, taxes}
    bad = client.get("/api/v1/objections?status=everything", headers=bearer(everywhere))
    assert bad.status_code == 422
