"""The operator's CLI as a real process: ingest with bad rows, then a re-ingest that changes nothing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from citycredit.cli.demo import reference_model_text
from citycredit.core.db import Base
from citycredit.core.registry import load_models
from points_engine.ingest import FIELDS
from tests import factories
from tests.databases import ScratchDatabase

CLI = [sys.executable, "-m", "citycredit.cli"]


def run(db: ScratchDatabase, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_ID_HASH_KEY": "ab" * 32,
        "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
    }
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def counts(db: ScratchDatabase) -> tuple[int, int, int]:
    with db.engine.connect() as c:
        return tuple(  # type: ignore[return-value]
            c.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("record", "citizen", "record_revision")
        )


def test_ingest_reports_bad_rows_and_a_reingest_changes_nothing(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    model = tmp_path / "model.yaml"
    model.write_text(reference_model_text("itemised-base1000.yaml"), encoding="utf-8")
    assert run(db, tmp_path, "sources", "add", "court", "市中级人民法院", "Court").returncode == 0
    loaded = run(db, tmp_path, "model", "load", str(model))
    assert "itemised-base1000@v1" in loaded.stdout, loaded.stderr
    assert run(db, tmp_path, "model", "publish", "itemised-base1000@v1").returncode == 0

    good = [factories.id_number() for _ in range(3)]
    rows = [
        [
            "court",
            "x1",
            good[0],
            "COURT_DISHONEST",
            "（2026）鄂02执1号",
            "2026-01-05",
            "2026-01-06",
            "active",
        ],
        ["court", "x2", good[1], "ADMIN_PENALTY", "罚字2号", "2026-02-01", "2026-02-03", "active"],
        [
            "court",
            "x3",
            good[2][:17] + ("1" if good[2][17] != "1" else "2"),
            "ADMIN_PENALTY",
            "罚3",
            "2026-02-01",
            "2026-02-03",
            "active",
        ],
        ["court", "x4", good[2], "ADMIN_PENALTY", "罚4", "2026-13-01", "2026-02-03", "active"],
    ]
    data = tmp_path / "records.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerows(rows)

    first = run(db, tmp_path, "ingest", str(data))
    assert first.returncode == 3, first.stderr  # rows rejected, the rest landed
    assert "4 rows: 2 new, 0 updated, 0 unchanged, 2 rejected" in first.stdout
    assert "row 4: id_number: invalid ID number: check digit does not match" in first.stderr
    assert "row 5: occurred_on: not a real date" in first.stderr
    report_text = (tmp_path / "records.csv.report.csv").read_text("utf-8")
    report = list(csv.DictReader(report_text.splitlines()))
    assert [(r["row"], r["field"]) for r in report] == [("4", "id_number"), ("5", "occurred_on")]
    # The ID number is never echoed: not on screen, not in the report.
    everything = first.stdout + first.stderr + report_text
    assert all(number not in everything for number in good)
    before = counts(db)

    again = run(db, tmp_path, "ingest", str(data))
    assert "4 rows: 0 new, 0 updated, 2 unchanged, 2 rejected" in again.stdout
    assert counts(db) == before == (2, 2, 0)

    explained = run(db, tmp_path, "consent", "give", good[0])
    assert explained.returncode == 0, explained.stderr
    out = run(db, tmp_path, "explain", good[0], "--lang", "en").stdout
    assert (
        "City tier D (needs improvement) · common level Needs improvement "
        "(set directly by a severe record)"
    ) in out
    assert "Score: 900" in out


def test_bad_model_file_gets_line_precise_errors(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    model = tmp_path / "bad.yaml"
    model.write_text(
        reference_model_text("itemised-base1000.yaml").replace(
            "    points: -50\n", "    points: lots\n"
        ),
        encoding="utf-8",
    )
    result = run(fresh_database, tmp_path, "model", "load", str(model))
    assert result.returncode == 1
    assert "items.7.points: Not a valid integer." in result.stderr
    assert f"{model}:line " in result.stderr


def test_migrations_match_the_models(fresh_database: ScratchDatabase) -> None:
    load_models()  # every installed domain's tables, as Alembic's env.py sees them
    with fresh_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_id_numbers_stay_out_of_the_logs_even_with_sql_echo(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    model = tmp_path / "model.yaml"
    model.write_text(reference_model_text("itemised-base1000.yaml"), encoding="utf-8")
    run(fresh_database, tmp_path, "sources", "add", "tax", "税务局", "Tax")
    run(fresh_database, tmp_path, "model", "load", str(model))
    run(fresh_database, tmp_path, "model", "publish", "itemised-base1000@v1")
    number = factories.id_number()
    data = tmp_path / "r.jsonl"
    row = {
        "source": "tax",
        "source_record_id": "t1",
        "id_number": number,
        "item_code": "TAX_ARREARS",
        "document_no": "黄税强1号",
        "occurred_on": "2026-01-01",
        "reported_on": "2026-01-02",
    }
    data.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    env_echo = {"CITYCREDIT_SQL_ECHO": "1"}
    os.environ.update(env_echo)
    try:
        result = run(fresh_database, tmp_path, "-v", "ingest", str(data))
        consent = run(fresh_database, tmp_path, "-v", "consent", "give", number)
    finally:
        for key in env_echo:
            os.environ.pop(key)
    assert result.returncode == 0 and consent.returncode == 0, result.stderr + consent.stderr
    logged = result.stdout + result.stderr + consent.stdout + consent.stderr
    # The SQL really was logged (on PostgreSQL new records go in by COPY, logged as such).
    assert "INSERT INTO record" in logged or "COPY record" in logged
    assert number not in logged and number[6:14] + number[14:17] not in logged


def test_bulletins_are_published_by_hand_and_missed_days_caught_up(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    """What the scheduler does after midnight, from the command line: yesterday's bulletin, then,
    after a gap, every missed day in order; nothing twice."""
    db = fresh_database
    first = run(db, tmp_path, "bulletins", "publish", "--today", "2026-06-30")
    assert first.returncode == 0, first.stderr
    assert "#1 2026-06-29: 0 objections, 0 repairs, 0 list changes (pull_only)" in first.stdout
    again = run(db, tmp_path, "bulletins", "publish", "--today", "2026-06-30")
    assert "nothing to publish" in again.stdout
    later = run(db, tmp_path, "bulletins", "publish", "--today", "2026-07-03")
    assert [line.split(":")[0] for line in later.stdout.splitlines()] == [
        "#2 2026-06-30",
        "#3 2026-07-01",
        "#4 2026-07-02",
    ]
    listed = run(db, tmp_path, "bulletins", "list")
    assert listed.stdout.splitlines()[0].startswith("#4 2026-07-02 pull_only")
    refused = run(db, tmp_path, "bulletins", "deliver")
    assert refused.returncode == 1 and "CITYCREDIT_BULLETIN_PUSH_URL" in refused.stderr


def test_a_department_imports_its_black_list_and_lifts_an_entry(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    model = tmp_path / "model.yaml"
    model.write_text(reference_model_text("itemised-base1000.yaml"), encoding="utf-8")
    assert run(db, tmp_path, "sources", "add", "court", "市中级人民法院", "Court").returncode == 0
    assert run(db, tmp_path, "model", "load", str(model)).returncode == 0
    assert run(db, tmp_path, "model", "publish", "itemised-base1000@v1").returncode == 0
    listed, wrong = factories.id_number(), factories.id_number()
    decisions = tmp_path / "court-lists.csv"
    with decisions.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["list", "id_number", "name", "decision_no", "start_on", "publish_months"])
        out.writerow(["dishonest_debtor", listed, "王五", "（2026）鄂02执7号", "2026-01-05", "24"])
        out.writerow(["dishonest_debtor", wrong, "赵六", "（2026）鄂02执8号", "2026-01-05", "6"])
    imported = run(db, tmp_path, "lists", "import", str(decisions), "--source", "court")
    assert imported.returncode == 3, imported.stderr
    assert "1 listed, 0 unchanged, 1 rejected" in imported.stdout
    assert (
        f"{decisions}:3: publish_months:" in imported.stderr
        and "24 to 60 months" in imported.stderr
    )
    entry = imported.stdout.split()[1]
    assert entry.startswith("lst_") and "王*" in imported.stdout
    shown = run(db, tmp_path, "lists", "show")
    assert "失信被执行人名单 王* （2026）鄂02执7号" in shown.stdout and listed not in shown.stdout
    lifted = run(db, tmp_path, "lists", "lift", entry, "--reason", "已履行")
    assert lifted.returncode == 0 and f"lifted {entry}" in lifted.stdout
    assert "王*" not in run(db, tmp_path, "lists", "show").stdout
    again = run(db, tmp_path, "lists", "lift", entry, "--reason", "再次")
    assert again.returncode == 1 and "already lifted" in again.stderr
