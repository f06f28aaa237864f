"""`make test` without PostgreSQL or a browser ends with one line per skip reason, not one per test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_skips_are_summed_up_once_per_reason(tmp_path: Path) -> None:
    suite = tmp_path / "test_sample.py"
    suite.write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('n', range(5))\n"
        "def test_needs_a_server(n):\n"
        "    pytest.skip('no server answers')\n"
        "@pytest.mark.parametrize('n', range(2))\n"
        "def test_needs_a_browser(n):\n"
        "    pytest.skip('no browser')\n"
        "def test_runs():\n"
        "    pass\n",
        encoding="utf-8",
    )
    # The project's own pytest configuration (its -r options) and the plugin tests/conftest.py loads.
    config = ["-c", str(ROOT / "pyproject.toml"), "-p", "tests.skip_summary"]
    quiet = ["-p", "no:cacheprovider", "-p", "no:xdist"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *config, *quiet, str(suite)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    skipped = [line for line in run.stdout.splitlines() if "SKIPPED" in line]
    assert skipped == ["SKIPPED 5 tests: no server answers", "SKIPPED 2 tests: no browser"]
    assert "7 skipped, by reason" in run.stdout and "1 passed, 7 skipped" in run.stdout
