"""One record's standing and the order records are listed in: what the records page and the printable
report share, so they cannot say different things about the same record."""

from __future__ import annotations

import datetime as dt

import pytest

from citizen.queries import STANDING_NAMES, Standing, record_groups, standing
from points_engine.queries import ExplainedRecord


@pytest.mark.parametrize(
    ("status", "counted", "expected", "zh"),
    [
        ("active", True, Standing.COUNTING, "计分中"),
        ("repaired", True, Standing.COUNTING, "计分中"),
        ("active", False, Standing.NOT_COUNTING, "不计分"),  # past its validity, not yet expired
        ("expired", False, Standing.NOT_COUNTING, "不计分"),
        ("revoked", False, Standing.NOT_COUNTING, "不计分"),
        ("under_objection", False, Standing.UNDER_OBJECTION, "异议处理中"),  # deduction suspended
        (
            "under_objection",
            True,
            Standing.UNDER_OBJECTION,
            "异议处理中",
        ),  # an award keeps counting
        ("active", None, Standing.NOT_SCORED, "未评分"),  # no consent to scoring
        ("under_objection", None, Standing.UNDER_OBJECTION, "异议处理中"),
    ],
)
def test_a_records_standing(status: str, counted: bool | None, expected: Standing, zh: str) -> None:
    assert standing(status, counted) is expected
    assert STANDING_NAMES[expected][0] == zh


def record(record_id: int, occurred_on: str, *, counted: bool) -> ExplainedRecord:
    return ExplainedRecord(
        record_id=record_id,
        source_code="court",
        source_name_zh="法院",
        source_name_en="Court",
        item_code="FINE",
        item_name_zh="罚",
        item_name_en="Fine",
        dimension="bad",
        catalogue_category=None,
        legal_basis=None,
        document_no="1",
        occurred_on=dt.date.fromisoformat(occurred_on),
        expires_on=None,
        status="active",
        base_points=-5,
        points=-5 if counted else 0,
        counted=counted,
        reasons=[] if counted else ["expired"],
        direct_tier=None,
    )


def test_records_that_count_come_first_then_the_others_each_newest_first() -> None:
    records = [
        record(1, "2025-01-05", counted=False),
        record(2, "2026-03-01", counted=True),
        record(3, "2024-11-30", counted=False),
        record(4, "2026-06-10", counted=True),
        record(5, "2026-03-01", counted=True),  # the same day as record 2: by id
        record(6, "2025-12-31", counted=False),
    ]
    groups = record_groups(records)
    assert [(counts, [r.record_id for r in group]) for counts, group in groups] == [
        (True, [4, 2, 5]),
        (False, [6, 1, 3]),
    ]


def test_an_empty_group_is_left_out() -> None:
    assert [counts for counts, _ in record_groups([record(1, "2026-01-01", counted=True)])] == [
        True
    ]
    assert record_groups([]) == []
