"""Benchmark the audit log's sealing job against the least it must do: read the same events.

Sealing N events (``citycredit.core.audit_chain.seal``: read them, hash each into the chain, insert N
seal rows, sign one checkpoint, commit) is compared with a plain ``SELECT`` of the same N rows (read
and commit). Both run on the same scratch database, alternating, after a warm-up; the seals of each
round are dropped again (through a connection that goes around the insert-only trigger, as only a
benchmark may) so every round seals the same rows. A second figure puts the chain check
(``verify_chain``, which reads events and seals side by side) against the same SELECT.

    .venv/bin/python bench/audit_seal.py                  # a fresh SQLite file, 20 000 events
    .venv/bin/python bench/audit_seal.py --postgresql     # a fresh schema on the test server
    .venv/bin/python bench/audit_seal.py --events 5000    # a quick run

The output ends with one line per target: ``RATIO <name> <value> target <= <target> <met|MISSED>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os

os.environ.setdefault("CITYCREDIT_ENV", "development")
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from ratios import Ratio, print_ratios

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from citycredit.core import audit_chain
from citycredit.core.audit import AuditEvent
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from tests.databases import ScratchDatabase, postgresql_unavailable

SECRET = b"bench-audit-seal"
# Sealing reads the rows, hashes each, and writes as many rows as it read: a few SELECTs' worth.
# The check reads twice the rows (events and seals) and hashes each event. Targets set after a first
# run on the 2-core development machine (SQLite 4.4 / 3.6, PostgreSQL 3.9 / 5.8 at 20 000 events).
TARGETS = {"audit_seal_over_select": 6.0, "audit_verify_over_select": 8.0}


def _drop_seals(db: ScratchDatabase) -> None:
    with db.engine.begin() as connection:
        if db.kind == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            connection.execute(sa.text("DELETE FROM audit_checkpoint"))
            connection.execute(sa.text("DELETE FROM audit_seal"))
        else:
            for table in ("audit_seal", "audit_checkpoint"):
                connection.execute(sa.text(f"DROP TRIGGER {table}_no_delete"))
                connection.execute(sa.text(f"DELETE FROM {table}"))
                connection.execute(
                    sa.text(
                        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'the audit log is insert-only'); END"
                    )
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kind = "postgresql" if args.postgresql else "sqlite"
    if kind == "postgresql" and (reason := postgresql_unavailable()):
        sys.exit(reason)
    with tempfile.TemporaryDirectory() as tmp:
        db = ScratchDatabase(kind, Path(tmp))
        try:
            sessions = make_session_factory(db.engine)
            past = utcnow() - dt.timedelta(hours=1)
            with db.engine.begin() as connection:
                connection.execute(
                    sa.insert(AuditEvent),
                    [
                        {
                            "at": past + dt.timedelta(milliseconds=i),
                            "actor": f"api:desk{i % 50}",
                            "action": "code.verify",
                            "citizen_id": 1000 + i % 997,
                            "detail": {"scenario": "bus-80", "result": "ok", "n": i},
                        }
                        for i in range(args.events)
                    ],
                )
            grace = dt.timedelta(minutes=5)

            def select_all() -> float:
                started = time.perf_counter()
                with unit_of_work(sessions) as session:
                    rows = session.execute(
                        sa.select(AuditEvent.__table__).order_by(AuditEvent.id)
                    ).all()
                assert len(rows) == args.events
                return time.perf_counter() - started

            def seal() -> float:
                started = time.perf_counter()
                with unit_of_work(sessions) as session:
                    run = audit_chain.seal(session, SECRET, grace=grace)
                elapsed = time.perf_counter() - started
                assert run.sealed == args.events
                _drop_seals(db)
                return elapsed

            def verify() -> float:
                started = time.perf_counter()
                with unit_of_work(sessions) as session:
                    found = audit_chain.verify_chain(session)
                assert found.ok and found.sealed == args.events
                return time.perf_counter() - started

            select_all(), seal()  # warm-up: caches, the signing key made and decrypted
            selects, seals = [], []
            for _ in range(args.rounds):
                selects.append(select_all())
                seals.append(seal())
            with unit_of_work(sessions) as session:
                audit_chain.seal(session, SECRET, grace=grace)
            verify()
            verifies = [verify() for _ in range(args.rounds)]
            base = statistics.median(selects)
            figures = {
                "audit_seal_over_select": statistics.median(seals) / base,
                "audit_verify_over_select": statistics.median(verifies) / base,
            }
            print(
                f"{kind}, {args.events} events: SELECT {base * 1000:.0f} ms, "
                f"seal {statistics.median(seals) * 1000:.0f} ms, "
                f"verify {statistics.median(verifies) * 1000:.0f} ms (medians of {args.rounds})"
            )
            print_ratios(Ratio(name, value, "<=", TARGETS[name]) for name, value in figures.items())
        finally:
            db.drop()


if __name__ == "__main__":
    main()
