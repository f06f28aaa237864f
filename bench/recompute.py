"""Benchmark ingest and full recompute on PostgreSQL, each against a plain-SQL baseline in the same run.

Targets (from the issue): ingesting records takes at most 3x a plain load of the same rows, and a full
recompute takes at most 3x a plain ``SELECT citizen_id, SUM(points) … GROUP BY citizen_id`` over the
same records. Everything runs in a dedicated schema that is dropped and recreated at the start.

    .venv/bin/python bench/recompute.py                      # 100,000 citizens, ~2,000,000 records
    .venv/bin/python bench/recompute.py --large              # 1,000,000 citizens, ~20,000,000 records
    .venv/bin/python bench/recompute.py --citizens 2000 --records-per-citizen 5   # a quick run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import resource

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ratios import Ratio, print_ratios
from schemas import fresh_schema
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from citycredit.cli import demo
from citycredit.core.db import make_engine, make_session_factory
from points_engine import batches, operations
from points_engine import ingest as ingestion
from points_engine.models import Citizen, Record, ScoreSnapshot
from points_engine.synthetic import FIELDNAMES, CityPlan, generate_rows, write_csv

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OUT = Path(__file__).parent / "out"
# A fixed key: pseudonyms need not be secret here, only stable between runs.
KEY = bytes.fromhex("be7c" * 16)
TARGET = 3.0
UNCHANGED_TARGET = 2.0  # a recompute that changes nothing
# Warm runs of each baseline statement after the cold one; their median is the figure (short, noisy).
WARM_RUNS = 3

BARE_RECORD = """
CREATE TABLE bare_record (
    source text, source_record_id text, id_number text, item_code text, document_no text,
    occurred_on date, reported_on date, status text
)"""
BARE_INSERT = "INSERT INTO bare_record VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
BARE_POINTS = """
CREATE TABLE bare_points AS
SELECT r.citizen_id::int AS citizen_id, i.points AS points
FROM record r JOIN scoring_item i ON i.model_version_id = :version AND i.code = r.item_code"""
GROUP_BY = "SELECT citizen_id, SUM(points) FROM bare_points GROUP BY citizen_id"
# Not a target: the least any recompute must do (read the real records, join their items, write one
# row per citizen), to tell what the schema costs from what the scoring rules cost.
FLOOR = """
INSERT INTO floor_totals
SELECT r.citizen_id, SUM(i.points)
FROM record r JOIN scoring_item i ON i.model_version_id = :version AND i.code = r.item_code
GROUP BY r.citizen_id"""


@dataclass
class Figures:
    """Everything the run measured; written as JSON next to the CSV."""

    command: str
    started_at: str
    postgresql: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    cpu_count: int = 0
    citizens_planned: int = 0
    csv_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def timed(figures: Figures, name: str) -> Iterator[None]:
    """Record the wall-clock seconds of the block under ``name``."""
    log(f"{name} …")
    start = time.perf_counter()
    yield
    figures.seconds[name] = time.perf_counter() - start
    log(f"{name}: {figures.seconds[name]:.2f} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--schema", default="bench_recompute")
    parser.add_argument(
        "--large", action="store_true", help="1,000,000 citizens / ~20,000,000 records"
    )
    parser.add_argument("--citizens", type=int, default=100_000)
    parser.add_argument("--records-per-citizen", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--ingest-chunk-size", type=int, default=5000, help="as the CLI's default")
    parser.add_argument("--recompute-chunk-size", type=int, default=50_000, help="as the CLI's")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure only the recompute, on the city a previous run left in --schema",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="ranges scored at once, as the CLI's --workers"
    )
    args = parser.parse_args(argv)
    if args.large:
        args.citizens, args.records_per_citizen = 1_000_000, 20.0
    return args


def records_csv(plan: CityPlan) -> tuple[Path, int]:
    """The synthetic city as CSV, generated once per plan and reused by later runs."""
    path = OUT / f"records-{plan.citizens}-{plan.records_per_citizen:g}-{plan.seed}.csv"
    if not path.exists():
        log(f"generating {path} …")
        partial = path.with_suffix(".partial")
        write_csv(partial, generate_rows(plan))
        partial.rename(path)
    with path.open("rb") as handle:
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1
    return path, rows


def ingest_like_cli(
    sessions: sessionmaker[Session],
    path: Path,
    today: dt.date,
    chunk_size: int,
    figures: Figures,
    workers: int,
) -> ingestion.IngestReport:
    """The use case ``citycredit ingest`` runs (a commit per chunk), minus the progress bar."""
    session = sessions()
    try:
        result = batches.ingest_file(
            session,
            path,
            key=KEY,
            today=today,
            chunk_size=chunk_size,
            commit_chunks=True,
            report_path=path.with_name(path.name + ".report.csv"),
            workers=workers,
        )
    finally:
        session.close()
    figures.seconds["ingest_rows"] = result.rows_seconds
    figures.seconds["ingest_drain_dirty"] = result.scores_seconds
    log(
        f"ingest_rows: {result.rows_seconds:.2f} s, ingest_drain_dirty: {result.scores_seconds:.2f} s"
    )
    return result.report


def _date(raw: str) -> dt.date | None:
    """A CSV date for the bare table; the few deliberately invalid ones load as NULL."""
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        return None


def bare_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    """The CSV's rows as the bare table's tuples (read and parsed inside each timed baseline)."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        assert tuple(header) == FIELDNAMES, header
        for source, ref, number, item, doc, occurred, reported, status in reader:
            yield source, ref, number, item, doc, _date(occurred), _date(reported), status


def baseline_loads(engine: Engine, path: Path, chunk_size: int, figures: Figures) -> None:
    """Load the same CSV into a constraint-free table: with COPY, then with executemany per chunk."""
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        conn.autocommit = False
        conn.execute(BARE_RECORD)
        conn.commit()
        with timed(figures, "baseline_copy"), conn.cursor() as cur:
            with cur.copy(
                "COPY bare_record (source, source_record_id, id_number, item_code, document_no, "
                "occurred_on, reported_on, status) FROM STDIN"
            ) as copy:
                for row in bare_rows(path):
                    copy.write_row(row)
            conn.commit()
        figures.counts["bare_record_rows"] = conn.execute(
            "SELECT count(*) FROM bare_record"
        ).fetchone()[0]
        conn.execute("TRUNCATE bare_record")
        conn.commit()
        # Same transaction size as our ingest: one commit per chunk of rows.
        with timed(figures, "baseline_executemany"), conn.cursor() as cur:
            chunk: list[tuple[Any, ...]] = []
            for row in bare_rows(path):
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    cur.executemany(BARE_INSERT, chunk)
                    conn.commit()
                    chunk.clear()
            if chunk:
                cur.executemany(BARE_INSERT, chunk)
            conn.commit()
        record_floor(conn, figures)
    finally:
        raw.close()


def record_floor(conn: Any, figures: Figures) -> None:
    """Not a target: the landed records copied, inside the server, into an empty table with
    ``record``'s own indexes, checks and foreign keys — what storing them costs before any parsing,
    validation or lookup, to tell the schema's share of the ingest from ours."""
    conn.execute("CREATE TABLE floor_record (LIKE record INCLUDING ALL)")
    keys = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'record'::regclass AND contype = 'f'"
    ).fetchall()
    for (definition,) in keys:
        conn.execute(f"ALTER TABLE floor_record ADD {definition}")
    conn.commit()
    with timed(figures, "reference_record_floor"):
        conn.execute("INSERT INTO floor_record SELECT * FROM record")
        conn.commit()
    conn.execute("DROP TABLE floor_record")
    conn.commit()


def vacuum_analyze(engine: Engine, *tables: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in tables:
            connection.execute(text(f"VACUUM ANALYZE {table}"))


def baseline_aggregate(engine: Engine, version_id: int, figures: Figures) -> None:
    """Time the plain GROUP BY: a cold run, then the median of warm runs, fetched and as CTAS."""
    with engine.begin() as connection:
        connection.execute(text(BARE_POINTS), {"version": version_id})
    # score_snapshot too, while empty: the first run's plans must not depend on fresh statistics.
    vacuum_analyze(
        engine,
        "bare_points",
        "record",
        "citizen",
        "scoring_item",
        "record_contribution",
        "score_snapshot",
    )
    with engine.connect() as connection:
        figures.counts["bare_points_rows"] = connection.execute(
            text("SELECT count(*) FROM bare_points")
        ).scalar_one()

        plan = connection.execute(text(f"EXPLAIN (FORMAT JSON) {GROUP_BY}")).scalar_one()
        figures.counts["baseline_group_by_workers"] = _workers_planned(plan)

        def fetch() -> None:
            figures.counts["baseline_group_by_rows"] = len(
                connection.execute(text(GROUP_BY)).fetchall()
            )

        def ctas() -> None:
            connection.execute(text("DROP TABLE IF EXISTS bare_totals"))
            connection.execute(text(f"CREATE TEMP TABLE bare_totals AS {GROUP_BY}"))

        def floor() -> None:
            connection.execute(text("DROP TABLE IF EXISTS floor_totals"))
            connection.execute(
                text("CREATE TEMP TABLE floor_totals (citizen_id bigint, total bigint)")
            )
            connection.execute(text(FLOOR), {"version": version_id})

        for name, run in (("fetch", fetch), ("ctas", ctas), ("floor", floor)):
            timings = []
            for _ in range(1 + WARM_RUNS):
                start = time.perf_counter()
                run()
                timings.append(time.perf_counter() - start)
            figures.samples[f"baseline_group_by_{name}"] = timings
            figures.seconds[f"baseline_group_by_{name}_cold"] = timings[0]
            figures.seconds[f"baseline_group_by_{name}_warm"] = statistics.median(timings[1:])
            log(f"baseline ({name}): " + ", ".join(f"{t:.3f}" for t in timings) + " s")
        connection.rollback()


def _workers_planned(plan: Any) -> int:
    """The parallel workers an EXPLAIN (FORMAT JSON) plan uses (0 for a serial plan)."""
    if isinstance(plan, dict):
        return int(plan.get("Workers Planned", 0)) + sum(_workers_planned(v) for v in plan.values())
    if isinstance(plan, list):
        return sum(_workers_planned(v) for v in plan)
    return 0


def server_settings(engine: Engine) -> dict[str, str]:
    """The PostgreSQL settings that bear on these figures."""
    names = (
        "autovacuum",
        "jit",
        "max_parallel_workers_per_gather",
        "shared_buffers",
        "synchronous_commit",
        "work_mem",
    )
    with engine.connect() as connection:
        return {name: connection.execute(text(f"SHOW {name}")).scalar_one() for name in names}


def recompute_all(
    sessions: sessionmaker[Session], as_of: dt.date, chunk_size: int, workers: int
) -> tuple[int, int]:
    """One full recompute as the CLI runs it (a commit per citizen-id range); (citizens, changed)."""
    session = sessions()
    try:
        summary = operations.recompute_all(
            session, as_of=as_of, chunk_size=chunk_size, commit=session.commit, workers=workers
        )
        session.commit()
        return summary.citizens, summary.changed
    finally:
        session.close()


def count(sessions: sessionmaker[Session], query: Any) -> int:
    with sessions() as session:
        return int(session.execute(query).scalar_one())


def report(figures: Figures) -> str:
    """The closing table of figures and ratios."""
    s, c, r, q = figures.seconds, figures.counts, figures.rates, figures.ratios

    def line(label: str, value: str, extra: str = "") -> str:
        return f"  {label:<46} {value:>14}  {extra}"

    out = [
        "",
        f"PostgreSQL: {figures.postgresql}",
        f"CPUs: {figures.cpu_count}",
        "settings: " + ", ".join(f"{k}={v}" for k, v in figures.settings.items()),
        f"command: {figures.command}",
        "",
        "counts",
        *(line(name, f"{value:,}") for name, value in c.items()),
        "",
        "ingest",
        line(
            "ours: rows, one commit per chunk",
            f"{s['ingest_rows']:.2f} s",
            f"{r['ingest_rows_per_s']:,.0f} rows/s",
        ),
        line("ours: drain dirty after the file", f"{s['ingest_drain_dirty']:.2f} s"),
        line(
            "ours: total (as `citycredit ingest`)",
            f"{s['ingest_total']:.2f} s",
            f"{r['ingest_total_rows_per_s']:,.0f} rows/s",
        ),
        line(
            "baseline: executemany, commit per chunk",
            f"{s['baseline_executemany']:.2f} s",
            f"{r['baseline_executemany_rows_per_s']:,.0f} rows/s",
        ),
        line(
            "baseline: COPY FROM STDIN",
            f"{s['baseline_copy']:.2f} s",
            f"{r['baseline_copy_rows_per_s']:,.0f} rows/s",
        ),
        line(
            "reference: records into a copy of `record`",
            f"{s['reference_record_floor']:.2f} s",
            f"{q['record_floor_vs_copy']:.1f}x the COPY (indexes, checks, foreign keys)",
        ),
        line(
            "ratio ours total / executemany  (target <= 3)",
            f"{q['ingest_vs_executemany']:.2f}x",
            verdict(q["ingest_vs_executemany"]),
        ),
        line(
            "ratio ours total / COPY  (target <= 3, issue 14)",
            f"{q['ingest_vs_copy']:.2f}x",
            verdict(q["ingest_vs_copy"]),
        ),
        "",
        "recompute",
        line(
            "full recompute, first run (writes all)",
            f"{s['recompute_first']:.2f} s",
            f"{r['recompute_first_citizens_per_s']:,.0f} citizens/s",
        ),
        line("full recompute, second run (no change)", f"{s['recompute_unchanged']:.2f} s"),
        line(
            "baseline: GROUP BY, warm median, rows fetched",
            f"{s['baseline_group_by_fetch_warm']:.3f} s",
        ),
        line(
            "baseline: GROUP BY, warm median, CTAS",
            f"{s['baseline_group_by_ctas_warm']:.3f} s",
        ),
        line(
            "reference: INSERT sum over record join item",
            f"{s['baseline_group_by_floor_warm']:.3f} s",
            f"{q['floor_vs_group_by_fetch']:.1f}x the GROUP BY fetched",
        ),
        line(
            "ratio first run / GROUP BY fetched  (target <= 3)",
            f"{q['recompute_vs_group_by_fetch']:.1f}x",
            verdict(q["recompute_vs_group_by_fetch"]),
        ),
        line(
            "ratio second run / GROUP BY fetched  (target <= 2)",
            f"{q['recompute_unchanged_vs_group_by_fetch']:.1f}x",
            verdict(q["recompute_unchanged_vs_group_by_fetch"], UNCHANGED_TARGET),
        ),
        line(
            "ratio first run / GROUP BY as CTAS",
            f"{q['recompute_vs_group_by_ctas']:.1f}x",
            verdict(q["recompute_vs_group_by_ctas"]),
        ),
        "",
        *(f"note: {note}" for note in figures.notes.values()),
    ]
    return "\n".join(out)


def verdict(ratio: float, target: float = TARGET) -> str:
    return "met" if ratio <= target else "NOT met"


def load_city(
    args: argparse.Namespace, path: Path, today: dt.date, figures: Figures
) -> tuple[Engine, sessionmaker[Session]]:
    """A fresh schema, the city ingested as the CLI does, then the ingest baselines."""
    engine = fresh_schema(args.database_url, args.schema)
    sessions = make_session_factory(engine)
    with sessions() as session:
        demo.ensure_sources(session)
        demo.ensure_reference_models(session, actor="bench")
        session.commit()
    summary = ingest_like_cli(sessions, path, today, args.ingest_chunk_size, figures, args.workers)
    figures.seconds["ingest_total"] = (
        figures.seconds["ingest_rows"] + figures.seconds["ingest_drain_dirty"]
    )
    figures.counts.update(
        rows_read=summary.rows,
        records_inserted=summary.inserted,
        rows_rejected=summary.rejected,
    )
    baseline_loads(engine, path, args.ingest_chunk_size, figures)
    return engine, sessions


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = Figures(
        command="python bench/recompute.py " + " ".join(sys.argv[1:] if argv is None else argv),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        cpu_count=os.cpu_count() or 0,
        citizens_planned=args.citizens,
    )
    plan = CityPlan(
        citizens=args.citizens, records_per_citizen=args.records_per_citizen, seed=args.seed
    )
    today = plan.today
    path, figures.csv_rows = records_csv(plan)
    log(f"{path}: {figures.csv_rows:,} rows")

    if args.reuse:
        # The city a previous run of the same size left in the schema: only the recompute is measured
        # (the scale runs, issue 14); every snapshot is deleted so the first run writes them all.
        engine = make_engine(args.database_url, schema=args.schema)
        sessions = make_session_factory(engine)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM score_snapshot"))
            connection.execute(text("DROP TABLE IF EXISTS bare_points"))
        for key in ("ingest_rows", "ingest_drain_dirty", "ingest_total", "baseline_copy"):
            figures.seconds[key] = math.nan
        for key in ("baseline_executemany", "reference_record_floor"):
            figures.seconds[key] = math.nan
        figures.counts.update(rows_read=0, records_inserted=0, rows_rejected=0)
        log(f"reusing the city in schema {args.schema}: ingest not measured")
    else:
        engine, sessions = load_city(args, path, today, figures)
    with engine.connect() as connection:
        figures.postgresql = connection.execute(text("SELECT version()")).scalar_one()
    figures.settings = server_settings(engine)

    with sessions() as session:
        operations.give_consent_bulk(
            session, select(Citizen.id).where(Citizen.id % 10 != 0), channel="bench"
        )
        session.commit()
        version, _model = operations.published_model(session)
        version_id = version.id
    figures.counts.update(
        citizens=count(sessions, select(func.count()).select_from(Citizen)),
        citizens_consenting=count(
            sessions, select(func.count()).where(Citizen.consent_given.is_(True))
        ),
        records=count(sessions, select(func.count()).select_from(Record)),
    )
    # The baseline table and fresh statistics for every table both runs read (as autovacuum would).
    baseline_aggregate(engine, version_id, figures)

    with timed(figures, "recompute_first"):
        scored, changed = recompute_all(sessions, today, args.recompute_chunk_size, args.workers)
    figures.counts.update(recompute_first_scored=scored, recompute_first_changed=changed)
    with timed(figures, "recompute_unchanged"):
        scored, changed = recompute_all(sessions, today, args.recompute_chunk_size, args.workers)
    figures.counts.update(recompute_unchanged_scored=scored, recompute_unchanged_changed=changed)
    figures.counts["snapshots"] = count(sessions, select(func.count()).select_from(ScoreSnapshot))
    engine.dispose()

    rates(figures)
    figures.notes.update(
        ingest="ingest ratio uses our total (rows + drain) against executemany of the same CSV rows "
        "into a constraint-free table, both reading and parsing the CSV and committing per chunk",
        recompute="recompute ratios use the GROUP BY over bare_points (citizen_id int, points "
        f"int; one row per record), median of {WARM_RUNS} warm runs, with all "
        f"{figures.counts['baseline_group_by_rows']:,} result rows fetched to the client (planned "
        f"with {figures.counts['baseline_group_by_workers']} parallel workers); the same as "
        "CREATE TEMP TABLE AS is shown too",
        chunks=f"recompute chunk size {args.recompute_chunk_size:,} citizens, ingest chunk size "
        f"{args.ingest_chunk_size:,} rows",
    )
    print(report(figures))
    OUT.mkdir(parents=True, exist_ok=True)
    json_path = OUT / f"recompute-{args.citizens}.json"
    json_path.write_text(json.dumps(asdict(figures), indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {json_path}")
    print(f"peak memory of this process (ingest, recompute, baselines): {peak_rss_mb():.0f} MB")
    q = figures.ratios
    ratios = [
        Ratio("recompute_first_over_group_by", q["recompute_vs_group_by_fetch"], "<=", TARGET),
        Ratio(
            "recompute_unchanged_over_group_by",
            q["recompute_unchanged_vs_group_by_fetch"],
            "<=",
            UNCHANGED_TARGET,
        ),
    ]
    if not math.isnan(q["ingest_vs_copy"]):
        ratios[:0] = [
            Ratio("ingest_over_copy", q["ingest_vs_copy"], "<=", TARGET),
            Ratio("ingest_over_executemany", q["ingest_vs_executemany"], "<=", TARGET),
        ]
    print_ratios(ratios)
    return 0


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def rates(figures: Figures) -> None:
    """Derive rows/s and the ratios from the timings."""
    s, c = figures.seconds, figures.counts
    rows = c["rows_read"]
    figures.rates.update(
        ingest_rows_per_s=per_s(rows, s["ingest_rows"]),
        ingest_total_rows_per_s=per_s(rows, s["ingest_total"]),
        baseline_copy_rows_per_s=per_s(rows, s["baseline_copy"]),
        baseline_executemany_rows_per_s=per_s(rows, s["baseline_executemany"]),
        recompute_first_citizens_per_s=per_s(c["recompute_first_scored"], s["recompute_first"]),
    )
    figures.ratios.update(
        ingest_vs_executemany=s["ingest_total"] / s["baseline_executemany"],
        ingest_vs_copy=s["ingest_total"] / s["baseline_copy"],
        record_floor_vs_copy=s["reference_record_floor"] / s["baseline_copy"],
        recompute_vs_group_by_fetch=s["recompute_first"] / s["baseline_group_by_fetch_warm"],
        recompute_unchanged_vs_group_by_fetch=s["recompute_unchanged"]
        / s["baseline_group_by_fetch_warm"],
        recompute_vs_group_by_ctas=s["recompute_first"] / s["baseline_group_by_ctas_warm"],
        floor_vs_group_by_fetch=s["baseline_group_by_floor_warm"]
        / s["baseline_group_by_fetch_warm"],
    )


if __name__ == "__main__":
    sys.exit(main())
