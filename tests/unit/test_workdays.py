"""Working days on China's official calendar (issue 11 §1): holidays skipped, swapped working
weekends counted, an override file for years the library does not know, and no guessing beyond."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from citycredit.core import workdays
from citycredit.core.config import ConfigError, load_settings
from citycredit.core.workdays import LIBRARY, CalendarUnknown, add_working_days, load_calendar

D = dt.date


def test_national_day_2025_and_its_swapped_sunday() -> None:
    # 2025-09-28 (Sunday) and 2025-10-11 (Saturday) are working days; 10-01 to 10-08 are holidays.
    assert workdays.is_working_day(D(2025, 9, 28))
    assert workdays.is_working_day(D(2025, 10, 11))
    assert not workdays.is_working_day(D(2025, 10, 1))
    assert not workdays.is_working_day(D(2025, 10, 8))
    assert not workdays.is_working_day(D(2025, 9, 27))  # an ordinary Saturday
    # Friday 09-26 + 1 → the swapped Sunday 09-28; Tuesday 09-30 + 1 → Thursday 10-09.
    assert add_working_days(D(2025, 9, 26), 1) == D(2025, 9, 28)
    assert add_working_days(D(2025, 9, 30), 1) == D(2025, 10, 9)
    # 09-26 + 5: 09-28, 09-29, 09-30, 10-09, 10-10.
    assert add_working_days(D(2025, 9, 26), 5) == D(2025, 10, 10)
    assert add_working_days(D(2025, 9, 26), 6) == D(2025, 10, 11)  # the swapped Saturday
    assert add_working_days(D(2025, 9, 26), 0) == D(2025, 9, 26)


def test_spring_festival_2026() -> None:
    # 2026-02-15 to 02-23 off; Saturdays 02-14 and 02-28 are working days.
    assert workdays.is_working_day(D(2026, 2, 14))
    assert not workdays.is_working_day(D(2026, 2, 16))
    assert add_working_days(D(2026, 2, 13), 1) == D(2026, 2, 14)
    assert add_working_days(D(2026, 2, 14), 1) == D(2026, 2, 24)
    assert LIBRARY.working_days_between(D(2026, 2, 13), D(2026, 2, 24)) == 2
    assert LIBRARY.working_days_between(D(2026, 2, 24), D(2026, 2, 13)) == -2


def test_beyond_the_calendar_is_an_error_naming_the_year() -> None:
    with pytest.raises(CalendarUnknown, match="2027"):
        workdays.is_working_day(D(2027, 1, 4))
    # A count that runs into an unknown year stops there too, never guesses.
    with pytest.raises(CalendarUnknown, match="2027"):
        add_working_days(D(2026, 12, 20), 20)
    with pytest.raises(ValueError):
        add_working_days(D(2026, 6, 1), -1)


def test_override_file_adds_a_year_and_takes_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "workdays.json"
    file.write_text(
        json.dumps(
            {
                # 2027 as a deployment might add it before the library knows it (illustrative).
                "holidays": ["2027-01-01", "2026-10-09"],
                "workdays": ["2027-01-02", "2026-10-10"],
            }
        )
    )
    calendar = load_calendar(file)
    assert not calendar.is_working_day(D(2027, 1, 1))
    assert calendar.is_working_day(D(2027, 1, 2))  # a Saturday made a working day
    assert calendar.is_working_day(D(2027, 1, 4))
    # The file replaces the library's 2026 table: 10-01 is no longer listed, 10-09 now is.
    assert calendar.is_working_day(D(2026, 10, 1))
    assert not calendar.is_working_day(D(2026, 10, 9))
    assert calendar.add_working_days(D(2026, 12, 31), 1) == D(2027, 1, 2)
    with pytest.raises(CalendarUnknown, match="2028"):
        calendar.is_working_day(D(2028, 1, 3))
    # The process's calendar follows CITYCREDIT_WORKDAYS_FILE, and re-reads an edited file.
    monkeypatch.setenv("CITYCREDIT_WORKDAYS_FILE", str(file))
    assert workdays.is_working_day(D(2027, 1, 2))
    file.write_text(json.dumps({"holidays": ["2027-01-01", "2027-01-04"], "workdays": []}))
    import os

    os.utime(file, ns=(1, 2))  # a different mtime, whatever the clock's resolution
    assert not workdays.is_working_day(D(2027, 1, 4))
    assert not workdays.is_working_day(D(2027, 1, 2))


def test_override_file_refuses_nonsense(tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"holidays": ["2027-01-01"], "workdays": ["2027-01-01"]}))
    with pytest.raises(ValueError, match="both"):
        load_calendar(file)
    file.write_text(json.dumps({"holidays": ["2027-13-01"]}))
    with pytest.raises(ValueError, match="holidays"):
        load_calendar(file)


def test_settings(tmp_path: Path) -> None:
    env = {"CITYCREDIT_ENV": "development", "CITYCREDIT_INSTANCE_DIR": str(tmp_path)}
    assert load_settings(env).objection_days == 20
    assert load_settings(env).workdays_file == ""
    settings = load_settings(
        {**env, "CITYCREDIT_OBJECTION_DAYS": "15", "CITYCREDIT_WORKDAYS_FILE": "/etc/wd.json"}
    )
    assert (settings.objection_days, settings.workdays_file) == (15, "/etc/wd.json")
    with pytest.raises(ConfigError, match="CITYCREDIT_OBJECTION_DAYS"):
        load_settings({**env, "CITYCREDIT_OBJECTION_DAYS": "0"})
