"""Benchmark a month's data-quality figures against a plain GROUP BY of the same rows (issue 13 §2).

A city of 50 sources sends 2,000,000 records in a month (and 1% of rows refused); the figures are
``points_engine.quality.month_figures``: per source, the received/inserted/updated/duplicate counts
(from the ingest tallies), the refused rows by reason with ID-number errors and open ones, and the
new records on time against their due day. The baseline is the plainest question over the same
records: ``SELECT source_id, count(*) FROM record WHERE received_on BETWEEN … GROUP BY source_id``.
Both run interleaved, warm, in the same process; the medians are compared:

    RATIO quality_month_over_group_by <value> target <= 2 <met|MISSED>

The data is made in SQL (generate_series) in a schema of its own, dropped at the start and the end;
it is the shape ingest writes (tests/integration/test_quality.py checks the figures' exactness).

    .venv/bin/python bench/quality.py                         # 50 sources, 2,000,000 records
    .venv/bin/python bench/quality.py --records 200000        # a quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("CITYCREDIT_ENV", "development")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ratios import Ratio, print_ratios  # noqa: E402  # bench/ratios.py
from recompute import fresh_schema  # noqa: E402  (bench/ is first on the path)
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from citycredit.core.db import make_engine  # noqa: E402
from points_engine import quality  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MONTH = dt.date(2026, 6, 1)
TARGET = 2.0
BASELINE = text(
    "SELECT source_id, count(*) FROM record WHERE received_on BETWEEN :a AND :b GROUP BY source_id"
)


def build(engine: Engine, sources: int, records: int, citizens: int) -> None:
    """Sources, citizens, a batch per source per day, the month's records, tallies, refused rows."""
    days = 30
    rejected = records // 100
    statements = [
        f"""INSERT INTO data_source (id, code, name_zh, name_en, created_at)
            SELECT s, 'src' || s, '来源' || s, 'Source ' || s, now()
            FROM generate_series(1, {sources}) s""",
        f"""INSERT INTO citizen (id, id_hash, birth_date, consent_given, created_at)
            SELECT c, md5(c::text) || md5((c + 1)::text), date '1980-01-01', false, now()
            FROM generate_series(1, {citizens}) c""",
        f"""INSERT INTO ingest_batch (id, origin, format, status, started_at, rows_total, inserted,
                updated, unchanged, rejected, errors)
            SELECT d * {sources} + s, 'src' || s || '/' || d, 'csv', 'completed', now(),
                0, 0, 0, 0, 0, '[]'::jsonb
            FROM generate_series(0, {days - 1}) d, generate_series(1, {sources}) s""",
        # Record i: source 1 + i % sources, received on day i % days; due four days after it
        # occurred, which is 0-6 days before it arrived (so about a quarter arrive late).
        f"""INSERT INTO record (source_id, source_record_id, citizen_id, item_code, document_no,
                occurred_on, reported_on, source_status, workflow, outcome, status,
                expiry_rescored, revision, batch_id, created_at, updated_at, received_on, due_on,
                catalogue_version)
            SELECT 1 + i % {sources}, 'r' || i, 1 + i % {citizens}, 'TRAFFIC_PENALTY', 'doc',
                r.day - (i % 7), r.day - (i % 7), 'active', 'none', 'none', 'active', false, 1,
                (i % {days}) * {sources} + 1 + i % {sources}, now(), now(), r.day,
                r.day - (i % 7) + 4, 1
            FROM generate_series(1, {records}) i,
                LATERAL (SELECT date '{MONTH}' + (i % {days}) AS day) r""",
        f"""INSERT INTO rejected_row (source_id, batch_id, row, source_record_id, received_on,
                reason, id_number_error, errors, resolved_at)
            SELECT 1 + i % {sources}, (i % {days}) * {sources} + 1 + i % {sources}, i, 'x' || i,
                date '{MONTH}' + (i % {days}),
                (ARRAY['id_number', 'missing', 'uncatalogued', 'date'])[1 + i % 4],
                i % 4 = 0, '[]'::jsonb, CASE WHEN i % 3 = 0 THEN now() END
            FROM generate_series(1, {rejected}) i""",
        """INSERT INTO ingest_tally (batch_id, source_id, day, received, inserted, updated,
                unchanged, rejected)
            SELECT b.batch_id, b.source_id, b.day, b.n + coalesce(x.n, 0), b.n, 0, 0,
                coalesce(x.n, 0)
            FROM (SELECT batch_id, source_id, received_on AS day, count(*) AS n FROM record
                  GROUP BY batch_id, source_id, received_on) b
            LEFT JOIN (SELECT batch_id, count(*) AS n FROM rejected_row GROUP BY batch_id) x
                ON x.batch_id = b.batch_id""",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--schema", default="bench_quality")
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--citizens", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    engine = fresh_schema(args.database_url, args.schema)
    try:
        build(engine, args.sources, args.records, args.citizens)
        print(
            f"built {args.sources} sources, {args.records:,} records of {MONTH:%Y-%m} in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        first, last = quality.month_bounds(MONTH)
        ours: list[float] = []
        plain: list[float] = []
        with Session(engine) as session:
            # Warm both once (plans, caches), then interleave.
            figures = quality.month_figures(session, MONTH)
            session.execute(BASELINE, {"a": first, "b": last}).all()
            for _ in range(args.rounds):
                t = time.perf_counter()
                session.execute(BASELINE, {"a": first, "b": last}).all()
                plain.append(time.perf_counter() - t)
                t = time.perf_counter()
                figures = quality.month_figures(session, MONTH)
                ours.append(time.perf_counter() - t)
        received = sum(f.received for f in figures)
        timed = sum(f.timed for f in figures)
        assert timed == args.records, (timed, args.records)
        grades = {g: sum(f.grade == g for f in figures) for g in ("A", "B", "C")}
        print(
            f"month figures: {len(figures)} sources, {received:,} rows received, {timed:,} new "
            f"records timed, grades {grades}"
        )
        a, b = statistics.median(ours), statistics.median(plain)
        print(f"month_figures median {a * 1000:.1f} ms; plain GROUP BY median {b * 1000:.1f} ms")
        print_ratios([Ratio("quality_month_over_group_by", a / b, "<=", TARGET)])
    finally:
        admin = make_engine(args.database_url)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
