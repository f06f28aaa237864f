"""Calendar periods agree in Python, SQLite and PostgreSQL, month ends and leap days included."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import Date, Integer, literal, select
from sqlalchemy.orm import Session

from citycredit.core.db import add_period
from citycredit.core.periods import Period, add_months


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert Period.of({"years": 5}).after(dt.date(2026, 1, 10)) == dt.date(2031, 1, 10)
    assert add_months(dt.date(2024, 2, 29), 12) == dt.date(2025, 2, 28)
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert Period(months=1, days=1).after(dt.date(2026, 1, 31)) == dt.date(2026, 3, 1)
    assert Period.of({"years": 1, "months": 6}).words() == ("1年6个月", "1 year 6 months")
    with pytest.raises(ValueError):
        Period()


def test_the_database_adds_periods_exactly_as_python_does(session: Session) -> None:
    rng = random.Random(5)
    cases = [
        (dt.date(2024, 2, 29), 12, 0),
        (dt.date(2026, 1, 31), 1, 0),
        (dt.date(2026, 12, 31), 2, 3),
        (dt.date(2026, 3, 31), 0, 1825),
    ] + [
        (
            dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(12000)),
            rng.randrange(0, 130),
            rng.choice((0, 0, 1, 30, 365)),
        )
        for _ in range(300)
    ]
    cases = [c for c in cases if c[1] or c[2]]
    columns = [
        add_period(literal(day, Date), literal(months, Integer), literal(days, Integer))
        for day, months, days in cases
    ]
    # Several hundred columns in one statement would pass SQLite's limits; chunk them.
    got: list[dt.date] = []
    for start in range(0, len(columns), 50):
        got.extend(session.execute(select(*columns[start : start + 50])).one())
    expected = [Period(months, days).after(day) for day, months, days in cases]
    assert [g if isinstance(g, dt.date) else dt.date.fromisoformat(g) for g in got] == expected
