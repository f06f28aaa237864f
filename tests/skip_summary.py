"""One line per reason a test was skipped, with the count, instead of a line per test.

Without a PostgreSQL server or a browser, pytest's own ``-rs`` would list some 140 identical lines; the
reasons are what a developer can act on (start the server, install Chromium), so they are told once.
Loaded by ``tests/conftest.py``; ``pyproject.toml`` leaves ``s`` out of pytest's ``-r`` for this.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest


def _reason(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reports = terminalreporter.stats.get("skipped", [])
    reasons = Counter(_reason(r) for r in reports if getattr(r, "longrepr", None) is not None)
    if not reasons:
        return
    terminalreporter.write_sep("=", f"{sum(reasons.values())} skipped, by reason")
    for reason, count in reasons.most_common():
        test = "test" if count == 1 else "tests"
        terminalreporter.write_line(f"SKIPPED {count} {test}: {reason}")
