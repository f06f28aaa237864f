"""Periods in calendar months and days: a record's validity, a repair's minimum disclosure period, how
long a repaired record counts.

"Five years from 2026-01-10" ends on 2031-01-10, not 1,825 days later: months are added on the
calendar, and a day the target month lacks becomes its last day (2024-02-29 plus one year is
2025-02-28), as PostgreSQL's ``date + interval`` does. The SQL form is ``citycredit.core.db.add_period``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, clamped to the end of a shorter month."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    if day.day <= 28:  # every month has the day (the common case, without a calendar lookup)
        return day.replace(year=year, month=month)
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


# Months a figure can be about: the calendar's edges (year 1, year 9999) overflow a month's bounds
# in city time, and no record is dated there.
MONTH_YEARS = range(1900, 9000)


def parse_month(text: str) -> dt.date:
    """``2026-06`` → 2026-06-01; ValueError otherwise (also a year outside :data:`MONTH_YEARS`)."""
    try:
        month = dt.datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise ValueError(f"not a month (YYYY-MM): {text[:40]!r}") from None
    if month.year not in MONTH_YEARS:
        raise ValueError(f"not a month figures can be about: {text[:40]!r}")
    return month


@dataclass(frozen=True)
class Period:
    """``months`` calendar months, then ``days`` days."""

    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0 or not (self.months or self.days):
            raise ValueError("a period is a positive number of months and/or days")

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Period:
        """From a model file's ``{years: 5}``, ``{months: 6}``, ``{days: 30}`` (or a mix)."""
        return cls(
            12 * int(spec.get("years") or 0) + int(spec.get("months") or 0),
            int(spec.get("days") or 0),
        )

    def after(self, start: dt.date) -> dt.date:
        """The day the period ends: ``start`` plus the period (the first day no longer inside it)."""
        return add_months(start, self.months) + dt.timedelta(days=self.days)

    @property
    def longest_days(self) -> int:
        """An upper bound in days (31 per month), for filters that only need to be generous."""
        return 31 * self.months + self.days

    def words(self) -> tuple[str, str]:
        """(Chinese, English), e.g. ("5年", "5 years"), ("1年6个月", "1 year 6 months")."""
        years, months = divmod(self.months, 12)
        zh, en = [], []
        if years:
            zh.append(f"{years}年")
            en.append(f"{years} year{'s' if years > 1 else ''}")
        if months:
            zh.append(f"{months}个月")
            en.append(f"{months} month{'s' if months > 1 else ''}")
        if self.days:
            zh.append(f"{self.days}天")
            en.append(f"{self.days} day{'s' if self.days > 1 else ''}")
        return "".join(zh), " ".join(en)
