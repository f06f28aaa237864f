"""`make test`: say plainly which suites run and which are skipped (and why), then run pytest."""

from __future__ import annotations

import os
import sys

import pytest

from tests.databases import PG_URL, postgresql_unavailable


def main() -> int:
    reason = postgresql_unavailable()
    required = os.environ.get("CITYCREDIT_REQUIRE_POSTGRESQL") == "1"
    print("=" * 78)
    print("suites: unit (no database), integration on SQLite", end="")
    if reason is None:
        print(f", integration on PostgreSQL ({PG_URL})")
    elif required:
        print(f"\nPostgreSQL is required here (CITYCREDIT_REQUIRE_POSTGRESQL=1) but {reason}")
        return 1
    else:
        print(f"\nSKIPPED: every PostgreSQL suite, because {reason}.")
        print("  Start PostgreSQL or set CITYCREDIT_TEST_PG_URL to run them.")
    from tests.browser.conftest import browser_unavailable

    browser = browser_unavailable()
    if browser is None:
        print("browser suites: Chromium driven by Playwright")
    elif os.environ.get("CITYCREDIT_REQUIRE_BROWSER") == "1":
        print(f"A browser is required here (CITYCREDIT_REQUIRE_BROWSER=1) but {browser}")
        return 1
    else:
        print(f"SKIPPED: the browser suites, because {browser}.")
    # The slow suites (real servers, a browser, the fuzz run) mostly wait on other processes: two
    # pytest workers per core keep CI's two cores busy. CITYCREDIT_TEST_WORKERS=0 runs in-process.
    workers = os.environ.get("CITYCREDIT_TEST_WORKERS", str(2 * (os.cpu_count() or 1)))
    print(f"workers: {workers} (CITYCREDIT_TEST_WORKERS)")
    print("=" * 78, flush=True)
    parallel = ["-n", workers, "--dist", "loadfile"] if workers != "0" else []
    return int(pytest.main([*parallel, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
