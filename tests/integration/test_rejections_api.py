"""Refused rows back to the source's system (issue 13 §2): the court's system reads what was refused
and why, sends it again corrected, and sees it resolved; the tax office's system never sees the
court's rows; no ID number travels, not even a wrong one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import CitizenApp, citizen_app
from tests.integration.test_objections_api import source_token
from tests.integration.test_pipeline import bearer
from tests.rule_cases import ITEMISED

PROBLEM = "application/problem+json"


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        with built.session() as session:
            factories.published(session, ITEMISED)
            factories.source(session, "court")
            factories.source(session, "tax")
        yield built


def row(source: str, ref: str, number: str, **changes: str) -> dict[str, Any]:
    return {
        "source": source,
        "source_record_id": ref,
        "id_number": number,
        "item_code": "FINE",
        "document_no": "罚〔2026〕1号",
        "occurred_on": "2026-06-01",
        "reported_on": "2026-06-02",
        **changes,
    }


def test_a_source_reads_its_refused_rows_resends_them_and_sees_them_resolved(
    city: CitizenApp,
) -> None:
    court = source_token(city, "court", ["records:write"])
    tax = source_token(city, "tax", ["records:write"])
    client = city.client()
    good = factories.id_number()
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    sent = client.post(
        "/api/v1/records",
        json={"records": [row("court", "c-1", wrong), row("court", "c-2", good, item_code="NOPE")]},
        headers=bearer(court),
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert sent.get_json()["rejected"] == 2
    assert {e["code"] for e in sent.get_json()["errors"]} == {"id_number", "uncatalogued"}

    listed = client.get("/api/v1/records/rejections", headers=bearer(court))
    assert listed.status_code == 200
    refused = listed.get_json()
    assert [(r["source_record_id"], r["reason"]) for r in refused] == [
        ("c-1", "id_number"),
        ("c-2", "uncatalogued"),
    ]
    assert refused[0]["problems"][0]["field"] == "id_number"
    assert wrong not in listed.get_data(as_text=True) and good not in listed.get_data(as_text=True)
    # The tax office's system sees none of the court's rows, and cannot close one.
    assert client.get("/api/v1/records/rejections", headers=bearer(tax)).get_json() == []
    stolen = client.post(
        f"/api/v1/records/rejections/{refused[1]['id']}/dismiss",
        json={"reason": "not ours"},
        headers=bearer(tax),
    )
    assert stolen.status_code == 404 and stolen.content_type == PROBLEM

    resent = client.post(
        "/api/v1/records", json={"records": [row("court", "c-1", good)]}, headers=bearer(court)
    )
    assert resent.get_json()["inserted"] == 1
    still_open = client.get("/api/v1/records/rejections", headers=bearer(court)).get_json()
    assert [r["source_record_id"] for r in still_open] == ["c-2"]
    resolved = client.get(
        "/api/v1/records/rejections?status=resolved", headers=bearer(court)
    ).get_json()
    assert [(r["source_record_id"], r["resolution"]) for r in resolved] == [("c-1", "resent")]
    assert resolved[0]["resolved_by_batch_id"] == resent.get_json()["batch_id"]

    closed = client.post(
        f"/api/v1/records/rejections/{still_open[0]['id']}/dismiss",
        json={"reason": "sent by mistake"},
        headers=bearer(court),
    )
    assert closed.status_code == 200 and closed.get_json()["resolution"] == "dismissed"
    again = client.post(
        f"/api/v1/records/rejections/{still_open[0]['id']}/dismiss",
        json={"reason": "twice"},
        headers=bearer(court),
    )
    assert again.status_code == 409 and again.get_json()["type"].endswith("rejection-resolved")
    assert client.get("/api/v1/records/rejections", headers=bearer(court)).get_json() == []


def test_bad_queries_are_precise_problems(city: CitizenApp) -> None:
    court = source_token(city, "court", ["records:write"])
    client = city.client()
    for query in ("status=closed", "limit=0", "limit=100000", "after=-1", "after=1e99"):
        answer = client.get(f"/api/v1/records/rejections?{query}", headers=bearer(court))
        assert answer.status_code == 422, query
        assert answer.content_type == PROBLEM
    huge = client.post(
        f"/api/v1/records/rejections/{2**70}/dismiss",
        json={"reason": "x"},
        headers=bearer(court),
    )
    assert huge.status_code == 404
    empty = client.post(
        "/api/v1/records/rejections/1/dismiss", json={"reason": ""}, headers=bearer(court)
    )
    assert empty.status_code == 422
    assert client.get("/api/v1/records/rejections").status_code == 401
