"""What the operator's CLI prints, as a real process: what-if movers, empty files, the scheduler."""

from __future__ import annotations

import re
from pathlib import Path

from citycredit.core.db import make_session_factory, unit_of_work
from points_engine import operations
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.test_cli import run
from tests.rule_cases import AS_OF, ITEMISED


def test_whatif_names_its_movers_as_explain_takes_them(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    numbers = [factories.id_number() for _ in range(2)]
    with unit_of_work(make_session_factory(db.engine)) as session:
        factories.source(session)
        factories.published(session, ITEMISED)
        fined, awarded = (factories.citizen(session, number=n) for n in numbers)
        factories.record(session, fined, "PENALTY", "2026-03-01")
        factories.record(session, awarded, "AWARD", "2026-03-01")
        operations.recompute_all(session, as_of=AS_OF)
        awarded_id = awarded.id
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        ITEMISED.replace("name: test-itemised", "name: test-draft")
        .replace("points: -30, repeat_multiplier: 3", "points: -45, repeat_multiplier: 3")
        .replace("points: 10, yearly_cap: 15", "points: 5, yearly_cap: 15"),
        encoding="utf-8",
    )
    assert run(db, tmp_path, "model", "load", str(draft)).returncode == 0
    whatif = run(db, tmp_path, "model", "whatif", "test-draft@v1")
    assert whatif.returncode == 0, whatif.stderr
    movers = re.findall(r"^  (C\d+) .*$", whatif.stdout, flags=re.MULTILINE)
    # The one who drops a tier (AA -> A, 5 points) before the one who loses 15 points within B.
    assert movers[0] == f"C{awarded_id}"
    first = next(line for line in whatif.stdout.splitlines() if line.startswith(f"  {movers[0]} "))
    assert re.search(r"1010 AA ->\s+1005 A\s+-1\s+-0\.4%", first), first
    assert "#" not in whatif.stdout and not any(n in whatif.stdout for n in numbers)
    explained = run(db, tmp_path, "explain", movers[0], "--lang", "en")
    assert explained.returncode == 0, explained.stderr
    assert "1010" in explained.stdout and "Award" in explained.stdout
    unknown = run(db, tmp_path, "explain", "C999999")
    assert unknown.returncode == 1 and "no citizen C999999" in unknown.stderr
    assert "Traceback" not in unknown.stderr
