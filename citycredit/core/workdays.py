"""Working days on China's official calendar (法定工作日), with its swapped working weekends (调休).

The year tables come from the maintained ``chinesecalendar`` library. The State Council publishes each
year's arrangement in the autumn before, often ahead of a library release, so a deployment can add or
correct years without a release: a JSON file named by ``CITYCREDIT_WORKDAYS_FILE``::

    {"holidays": ["2027-01-01", ...], "workdays": ["2027-02-07", ...]}

For every year the file names (in either list), the file's table replaces the library's for that year.
A date in no table (beyond the library's years and the file's) raises :class:`CalendarUnknown` naming the
year: a deadline is never guessed from weekends alone. Ground layer: no domain imports.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import chinese_calendar

# Statutory holidays on fixed solar dates (国务院《全国年节及纪念日放假办法》).
FIXED_HOLIDAYS = frozenset({(1, 1), (5, 1), (10, 1), (10, 2), (10, 3)})


class CalendarUnknown(LookupError):
    """No official calendar is known for this year (neither the library nor the override file)."""

    def __init__(self, year: int, source: str):
        super().__init__(
            f"no official working-day calendar for {year} ({source}); add the year's holidays and "
            f"swapped working days to the file named by CITYCREDIT_WORKDAYS_FILE or upgrade "
            f"chinesecalendar"
        )
        self.year = year


@dataclass(frozen=True)
class WorkCalendar:
    """Official holidays and swapped working days, and the years they cover."""

    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]
    years: frozenset[int]
    source: str = "chinesecalendar"

    def is_working_day(self, day: dt.date, *, provisional: bool = False) -> bool:
        """``provisional``: a year with no official table counts Monday to Friday less the fixed-date
        statutory holidays (until the State Council's schedule is loaded) instead of raising
        :class:`CalendarUnknown`."""
        if day.year not in self.years:
            if provisional:
                # Monday to Friday, less the statutory holidays on fixed solar dates (New Year's
                # Day, Labour Day, National Day's first three days); the lunar ones and the swapped
                # days come with the year's official schedule.
                return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS
            raise CalendarUnknown(day.year, self.source)
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: dt.date, n: int, *, provisional: bool = False) -> dt.date:
        """The ``n``-th working day after ``start`` (``start`` itself is not counted; n=0 is start)."""
        if n < 0:
            raise ValueError("n must not be negative")
        day = start
        while n:
            day += dt.timedelta(days=1)
            if self.is_working_day(day, provisional=provisional):
                n -= 1
        return day

    def working_days_between(
        self, start: dt.date, end: dt.date, *, provisional: bool = False
    ) -> int:
        """Working days after ``start`` up to and including ``end`` (negative when end < start)."""
        if end < start:
            return -self.working_days_between(end, start, provisional=provisional)
        count, day = 0, start
        while day < end:
            day += dt.timedelta(days=1)
            count += self.is_working_day(day, provisional=provisional)
        return count

    def covers(self, start: dt.date, end: dt.date) -> bool:
        """Whether every year from ``start`` to ``end`` has its official table."""
        return all(year in self.years for year in range(start.year, end.year + 1))


def _library() -> WorkCalendar:
    holidays = frozenset(chinese_calendar.constants.holidays)
    workdays = frozenset(chinese_calendar.constants.workdays)
    years = frozenset(range(min(d.year for d in holidays), max(d.year for d in holidays) + 1))
    return WorkCalendar(holidays, workdays, years)


LIBRARY = _library()


def _dates(raw: object, key: str, path: Path) -> frozenset[dt.date]:
    if not isinstance(raw, list):
        raise ValueError(f"{path}: '{key}' must be a list of dates (YYYY-MM-DD)")
    try:
        return frozenset(dt.date.fromisoformat(str(item)) for item in raw)
    except ValueError as exc:
        raise ValueError(f"{path}: '{key}': {exc}") from None


def with_overrides(
    base: WorkCalendar, holidays: frozenset[dt.date], workdays: frozenset[dt.date], source: str
) -> WorkCalendar:
    """``base`` with the years named in ``holidays``/``workdays`` replaced by those tables."""
    both = holidays & workdays
    if both:
        raise ValueError(f"{source}: a date cannot be both a holiday and a workday: {min(both)}")
    years = {d.year for d in holidays | workdays}
    return WorkCalendar(
        frozenset(d for d in base.holidays if d.year not in years) | holidays,
        frozenset(d for d in base.workdays if d.year not in years) | workdays,
        base.years | years,
        f"{base.source} + {source}",
    )


@lru_cache(maxsize=8)
def _from_file(path: Path, mtime_ns: int) -> WorkCalendar:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object with 'holidays' and 'workdays'")
    return with_overrides(
        LIBRARY,
        _dates(data.get("holidays", []), "holidays", path),
        _dates(data.get("workdays", []), "workdays", path),
        str(path),
    )


def load_calendar(path: str | Path | None = None) -> WorkCalendar:
    """The library's calendar with the override file's years (re-read when the file changes)."""
    if not path:
        return LIBRARY
    file = Path(path)
    return _from_file(file, file.stat().st_mtime_ns)


def current_calendar() -> WorkCalendar:
    """The calendar of this process: the library's, overridden by ``CITYCREDIT_WORKDAYS_FILE``."""
    return load_calendar(os.environ.get("CITYCREDIT_WORKDAYS_FILE") or None)


def is_working_day(day: dt.date, calendar: WorkCalendar | None = None) -> bool:
    return (calendar or current_calendar()).is_working_day(day)


def add_working_days(start: dt.date, n: int, calendar: WorkCalendar | None = None) -> dt.date:
    return (calendar or current_calendar()).add_working_days(start, n)
