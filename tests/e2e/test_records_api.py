"""The records API against a real server: rows it must refuse are row errors, the other rows land."""

from __future__ import annotations

import json

import httpx

from tests import factories
from tests.e2e.conftest import LiveCity


def token(city: LiveCity) -> str:
    response = httpx.post(
        city.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(city.source.client_id, city.source.client_secret),
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def record(ref: str, number: str, document: str = "罚1") -> dict[str, str]:
    return {
        "source": "court",
        "source_record_id": ref,
        "id_number": number,
        "item_code": "FINE",
        "document_no": document,
        "occurred_on": "2026-05-01",
        "reported_on": "2026-05-02",
    }


def test_control_characters_and_id_numbers_in_text_are_row_errors_not_a_failed_upload(
    city: LiveCity,
) -> None:
    number, other = factories.id_number(), factories.id_number()
    rows = [
        record("u1", number),
        record("u2", number, "罚\x00二"),
        record(other, number),
        record("u4", number, f"当事人{other}"),
        record("u5", number, "罚\ud800"),
        record("u6\x1b[2J", number),
        record("u7", number),
    ]
    # Escaped JSON, as any client library sends it: NUL as \u0000, the lone surrogate as \ud800.
    body = json.dumps({"records": rows}, ensure_ascii=True).encode("ascii")
    response = httpx.post(
        city.url + "/api/v1/records",
        content=body,
        headers={"Authorization": f"Bearer {token(city)}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["rows"], answer["inserted"], answer["rejected"]) == (7, 2, 5)
    assert [(e["row"], e["field"], e["reason"]) for e in answer["errors"]] == [
        (2, "document_no", "contains a control character U+0000 at character 2"),
        (
            3,
            "source_record_id",
            "holds a citizen ID number; it belongs in id_number only and is never stored in "
            "other fields",
        ),
        (
            4,
            "document_no",
            "holds a citizen ID number; it belongs in id_number only and is never stored in "
            "other fields",
        ),
        (
            5,
            "document_no",
            "contains an unpaired surrogate (not valid Unicode text) U+D800 at character 2",
        ),
        (6, "source_record_id", "contains a control character U+001B at character 3"),
    ]
    assert answer["errors"][4]["source_record_id"] == "u6\\x1b[2J"
    assert other not in response.text and other[6:14] not in response.text
    # Nothing of the refused rows reached the database; the two good ones did.
    again = httpx.post(
        city.url + "/api/v1/records",
        json={"records": [rows[0], rows[6]]},
        headers={"Authorization": f"Bearer {token(city)}"},
    )
    assert again.status_code == 200 and again.json()["unchanged"] == 2
