"""`citycredit explain` as a real process, in both languages: the tier said as the pair every surface
uses (city tier, then common level) with the sentence relating them, and departments by their names in
the language asked for."""

from __future__ import annotations

import csv
from pathlib import Path

from citycredit.cli.demo import reference_model_text
from points_engine.ingest import FIELDS
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.test_cli import run


def test_explain_speaks_one_tier_vocabulary_in_english_and_chinese(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    model = tmp_path / "model.yaml"
    model.write_text(reference_model_text("itemised-base1000.yaml"), encoding="utf-8")
    added = run(
        db, tmp_path, "sources", "add", "court", "市中级人民法院", "Intermediate People's Court"
    )
    assert added.returncode == 0, added.stderr
    assert run(db, tmp_path, "model", "load", str(model)).returncode == 0
    assert run(db, tmp_path, "model", "publish", "itemised-base1000@v1").returncode == 0
    person = factories.id_number()
    data = tmp_path / "records.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerow(
            [
                "court",
                "p1",
                person,
                "ADMIN_PENALTY",
                "罚字1号",
                "2026-02-01",
                "2026-02-03",
                "active",
            ]
        )
    assert run(db, tmp_path, "ingest", str(data)).returncode == 0
    assert run(db, tmp_path, "consent", "give", person).returncode == 0

    english = run(db, tmp_path, "explain", person, "--lang", "en")
    assert english.returncode == 0, english.stderr
    out = english.stdout
    # 1000 − 30 for the penalty: city tier A (960 and above), which maps to the common level Good;
    # the tier's code is said once (it was "Tier: A (trustworthy) (A)").
    assert out.splitlines()[0] == "Score: 970    City tier A (trustworthy) · common level Good"
    assert "the common level is the five-step scale that partner cities recognise" in out
    assert "[Intermediate People's Court]" in out
    # Nothing Chinese is left in the English explanation but the record's own document number and
    # legal basis (the source's words, quoted as filed).
    for line in out.splitlines():
        if "document:" in line:
            continue
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in line), line

    chinese = run(db, tmp_path, "explain", person).stdout
    assert chinese.splitlines()[0] == "信用分: 970    本市等级 A级（诚信） · 通用等级 良好"
    assert "通用等级是合作城市共同认可的五级标准" in chinese
    assert "[市中级人民法院]" in chinese
