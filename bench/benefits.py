"""Benchmark "my benefits" with 300 published scenarios, against loading the citizen's snapshot alone.

The citizen page lists every scenario in effect today and whether the citizen qualifies
(``scenarios.benefits.my_benefits``). The baseline, measured in the same process on the same citizens, is
the least any such page must do: read the citizen's current snapshot
(``points_engine.queries.current_snapshot``). Target (issue 14): at most 3x, means compared; the run
ends with

    RATIO my_benefits_over_snapshot <value> target <= 3 <met|MISSED>

    .venv/bin/python bench/benefits.py                  # a fresh SQLite file
    .venv/bin/python bench/benefits.py --postgresql     # a fresh schema on the test server
    .venv/bin/python bench/benefits.py --citizens 500 --calls 200    # a quick run

The scratch database (a SQLite file in a temporary directory, or a PostgreSQL schema of its own on
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, as ``tests/databases.py`` makes them) is migrated,
seeded and dropped at the end: both reference models (the itemised one published), a synthetic city
ingested the real way, nine citizens in ten consenting, a full recompute, the demo catalogue (210
scenarios) and extra published scenarios with varied rules up to ``--scenarios``.

Each measured call is one unit of work as a page request makes it: a fresh session, the citizen row read
(not timed), then the call and the commit (timed; ``my_benefits`` writes its audit row). Ours and the
baseline alternate citizen by citizen, in rotating order, after a warm-up. Two more figures explain
the ratio: the catalogue's freshness query alone (``live_catalogue``, served from memory), and the
floor: the snapshot read plus the audit row ``my_benefits`` must write, and that row's commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from citycredit.core.actors import SYSTEM

ROOT = Path(__file__).resolve().parent.parent
# `python bench/benefits.py` puts bench/, not the repo root, on the path: `tests` must be importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ratios import Ratio, exit_code, print_ratios  # noqa: E402  # bench/ratios.py
from sqlalchemy import event, func, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from citycredit.cli import demo  # noqa: E402
from citycredit.core.audit import audit  # noqa: E402
from citycredit.core.db import make_session_factory  # noqa: E402
from points_engine import batches, operations  # noqa: E402
from points_engine.models import Citizen, ScoreSnapshot  # noqa: E402
from points_engine.queries import current_snapshot  # noqa: E402
from points_engine.synthetic import CityPlan, generate_rows  # noqa: E402
from scenarios import benefits  # noqa: E402
from scenarios.demo import SEEDER, load_catalogue  # noqa: E402
from scenarios.models import CATEGORIES, Scenario  # noqa: E402
from scenarios.operations import (  # noqa: E402
    add_venue,
    create_scenario,
    ensure_operator,
    publish_directly,
)
from tests.databases import PG_URL, ScratchDatabase, postgresql_unavailable  # noqa: E402

OUT = Path(__file__).parent / "out"
KEY = bytes.fromhex("be7c" * 16)  # pseudonyms need not be secret here
ACTOR = "bench"
TARGET = 3.0  # issue 14: my_benefits at most 3x the snapshot read (means)
# The tables the measured calls read (PostgreSQL statistics, as autovacuum would leave them).
ANALYZED = (
    "citizen",
    "score_snapshot",
    "scenario",
    "scenario_version",
    "scenario_venue",
    "venue",
    "operator",
    "audit_event",
)


@dataclass
class Figures:
    command: str
    started_at: str
    database: str = ""
    python: str = platform.python_version()
    cpu_count: int = os.cpu_count() or 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, dict[str, float]] = field(default_factory=dict)
    statements: dict[str, int] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def timed(figures: Figures, name: str) -> Iterator[None]:
    log(f"{name} …")
    start = time.perf_counter()
    yield
    figures.seconds[name] = round(time.perf_counter() - start, 3)
    log(f"{name}: {figures.seconds[name]:.2f} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--postgresql", action="store_true", help=f"a fresh schema on {PG_URL} instead of SQLite"
    )
    parser.add_argument("--citizens", type=int, default=3000, help="synthetic citizens (3,000)")
    parser.add_argument("--scenarios", type=int, default=300, help="published scenarios (300)")
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per kind (2,000)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls per kind first")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.citizens < 10 or args.calls < 10 or args.warmup < 0:
        parser.error("at least 10 citizens and 10 calls")
    if not 210 <= args.scenarios <= 5000:
        parser.error("--scenarios: from 210 (the demo catalogue) to 5,000")
    return args


# --- seeding ------------------------------------------------------------------------------------


def seed_city(sessions: sessionmaker[Session], plan: CityPlan, figures: Figures) -> None:
    """Sources, models, the synthetic city ingested chunk by chunk, consent, a full recompute."""
    with sessions() as session:
        demo.ensure_sources(session)
        demo.ensure_reference_models(session, actor=ACTOR)
        session.commit()
    with timed(figures, "seed_ingest"), sessions() as session:
        result = batches.ingest(
            session,
            ((n, row) for n, row in enumerate(generate_rows(plan), start=2)),
            origin="bench/benefits.py",
            fmt="csv",
            key=KEY,
            today=plan.today,
            chunk_size=5000,
            commit_chunks=True,
        )
        figures.counts["records"] = result.report.inserted
    with timed(figures, "seed_consent_and_recompute"), sessions() as session:
        figures.counts["citizens_consenting"] = demo.consent_most(session)
        session.commit()
        operations.recompute_all(session, as_of=plan.today, commit=session.commit)
        session.commit()


def extra_rule(n: int) -> dict[str, Any]:
    """Varied rules, so that every kind of fact is asked for somewhere."""
    tier = 1 + n % 5
    shapes: list[dict[str, Any]] = [
        {"min_common_tier": tier},
        {"all": [{"min_common_tier": tier}, {"min_age": 18}, {"resident": True}]},
        {"any": [{"min_common_tier": tier}, {"min_local_score": 1050}]},
        {"all": [{"min_local_score": 950 + 10 * (n % 7)}, {"no_direct_tier_record": True}]},
        {"all": [{"min_common_tier": tier}, {"any": [{"min_age": 60}, {"min_local_score": 1020}]}]},
    ]
    return shapes[n % len(shapes)]


def seed_scenarios(sessions: sessionmaker[Session], wanted: int, figures: Figures) -> None:
    """The demo catalogue, then published scenarios of a bench operator up to ``wanted``."""
    with timed(figures, "seed_scenarios"), sessions() as session:
        figures.counts["catalogue_scenarios"] = load_catalogue(session)
        operator = ensure_operator(session, "bench-operator", "压测运营方", "Bench operator")
        categories = list(CATEGORIES)
        venues = [
            add_venue(
                session,
                SEEDER,
                operator=operator,
                code=f"bench-{category}",
                category=category,
                name_zh=f"压测{CATEGORIES[category][1]}服务点",
                name_en=f"Bench {CATEGORIES[category][2]} point",
            )
            for category in categories
        ]
        have = session.scalar(select(func.count()).select_from(Scenario)) or 0
        for n in range(max(0, wanted - have)):
            venue = venues[n % len(venues)]
            scenario = create_scenario(
                session,
                SEEDER,
                code=f"bench-{n:04d}",
                operator=operator,
                category=venue.category,
                content={
                    "name_zh": f"压测权益{n}",
                    "name_en": f"Bench benefit {n}",
                    "benefit_zh": "免押金、优先办理",
                    "benefit_en": "No deposit, served first",
                    "eligibility": extra_rule(n),
                    "quota_per_day": 1 + n % 3,
                    "valid_until": "2030-12-31" if n % 4 == 0 else None,
                },
                venue_codes=[venue.code],
            )
            publish_directly(session, scenario, submitter=SEEDER, publisher=SYSTEM)
        session.commit()
        figures.counts["scenarios_published"] = (
            session.scalar(select(func.count()).where(Scenario.status == "published")) or 0
        )


# --- measuring ----------------------------------------------------------------------------------

Call = Callable[[Session, Citizen], object]


def one_call(sessions: sessionmaker[Session], citizen_id: int, call: Call) -> float:
    """Seconds for the call and its commit, in a fresh session whose citizen row is read first."""
    session = sessions()
    try:
        citizen = session.get(Citizen, citizen_id)
        assert citizen is not None
        start = time.perf_counter()
        call(session, citizen)
        session.commit()
        return time.perf_counter() - start
    finally:
        session.close()


def summary_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    mean = statistics.fmean(ordered)
    return {
        "calls": len(ordered),
        "mean_ms": 1000 * mean,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "calls_per_s": 1 / mean if mean else 0.0,
    }


def count_statements(sessions: sessionmaker[Session], citizen_id: int, call: Call) -> int:
    seen = 0

    def count(*_: Any) -> None:
        nonlocal seen
        seen += 1

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        one_call(sessions, citizen_id, call)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen


def measure(
    sessions: sessionmaker[Session], today: dt.date, args: argparse.Namespace, figures: Figures
) -> None:
    with sessions() as session:
        ids = list(session.scalars(select(Citizen.id).order_by(Citizen.id)))
        scored = set(
            session.scalars(select(ScoreSnapshot.citizen_id).where(ScoreSnapshot.is_current))
        )
    # The catalogue as a cache would hold it: built once, its rows kept in memory (the session is
    # closed at once; SQLite transactions here take the write lock, so none may stay open).
    with sessions() as session:
        catalogue = benefits._live(session, today)
    rng = random.Random(args.seed)
    sample = [rng.choice(ids) for _ in range(args.warmup + args.calls)]
    figures.counts["citizens_in_sample"] = len(set(sample))
    figures.counts["sample_without_score"] = sum(1 for c in sample if c not in scored)
    figures.counts["scenarios_listed"] = len(catalogue.entries)
    figures.counts["distinct_rules"] = len(catalogue.rules)

    def ours(session: Session, citizen: Citizen) -> object:
        return benefits.my_benefits(session, citizen, today=today, actor=ACTOR)

    def baseline(session: Session, citizen: Citizen) -> object:
        return current_snapshot(session, citizen.id)

    def catalogue_only(session: Session, _citizen: Citizen) -> object:
        return benefits.live_catalogue(session, today=today)

    def floor(session: Session, citizen: Citizen) -> object:
        # The least "my benefits" can do while it records the read: the snapshot and the audit row.
        snapshot = current_snapshot(session, citizen.id)
        audit(session, actor=ACTOR, action="benefits.view", citizen_id=citizen.id)
        return snapshot

    kinds: dict[str, Call] = {
        "my_benefits": ours,
        "baseline_current_snapshot": baseline,
        "live_catalogue_only": catalogue_only,
        "floor_snapshot_and_audit_row": floor,
    }
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    eligible = 0
    names = list(kinds)
    with timed(figures, "measure"):
        for i, citizen_id in enumerate(sample):
            rotated = names[i % len(names) :] + names[: i % len(names)]
            for name in rotated:
                seconds = one_call(sessions, citizen_id, kinds[name])
                if i >= args.warmup:
                    samples[name].append(seconds)
        for citizen_id in sample[-50:]:
            with sessions() as session:
                citizen = session.get(Citizen, citizen_id)
                assert citizen is not None
                views = benefits.my_benefits(session, citizen, today=today, actor=ACTOR)
                eligible += sum(1 for v in views if v.eligible)
                session.rollback()
    figures.counts["mean_eligible_of_last_50"] = eligible // 50
    figures.calls = {name: summary_ms(values) for name, values in samples.items()}
    figures.statements = {
        name: count_statements(sessions, sample[-1], call) for name, call in kinds.items()
    }
    c = figures.calls
    base = c["baseline_current_snapshot"]
    figures.ratios = {
        "my_benefits_over_snapshot": c["my_benefits"]["mean_ms"] / base["mean_ms"],
        "my_benefits_over_snapshot_p50": c["my_benefits"]["p50_ms"] / base["p50_ms"],
        "catalogue_share_of_my_benefits": c["live_catalogue_only"]["mean_ms"]
        / c["my_benefits"]["mean_ms"],
        "floor_over_snapshot": c["floor_snapshot_and_audit_row"]["mean_ms"] / base["mean_ms"],
        "my_benefits_over_floor": c["my_benefits"]["mean_ms"]
        / c["floor_snapshot_and_audit_row"]["mean_ms"],
    }


def report(figures: Figures) -> str:
    labels = {
        "my_benefits": "my_benefits (ours)",
        "baseline_current_snapshot": "baseline: current_snapshot",
        "live_catalogue_only": "live_catalogue alone (its fingerprint)",
        "floor_snapshot_and_audit_row": "floor: snapshot + audit row",
    }
    out = [
        "",
        f"database: {figures.database}",
        f"python {figures.python}, {figures.cpu_count} CPUs",
        f"command: {figures.command}",
        "counts: " + ", ".join(f"{k}={v:,}" for k, v in figures.counts.items()),
        "",
        f"  {'per call (fresh session, call + commit)':<40} {'mean ms':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'calls/s':>9} {'SQL':>4}",
        "  (SQL: statements per call, counting the untimed read of the citizen and, on SQLite, BEGIN)",
    ]
    for name, label in labels.items():
        s = figures.calls[name]
        out.append(
            f"  {label:<40} {s['mean_ms']:>8.2f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} "
            f"{s['calls_per_s']:>9,.0f} {figures.statements[name]:>4}"
        )
    r = figures.ratios
    out += [
        "",
        f"  my_benefits / snapshot (mean; p50)        {r['my_benefits_over_snapshot']:.2f}x; "
        f"{r['my_benefits_over_snapshot_p50']:.2f}x",
        f"  catalogue fingerprint's share             {100 * r['catalogue_share_of_my_benefits']:.0f}%",
        f"  floor (snapshot + audit row) / snapshot   {r['floor_over_snapshot']:.2f}x",
        f"  my_benefits / floor                       {r['my_benefits_over_floor']:.2f}x",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kind = "postgresql" if args.postgresql else "sqlite"
    if kind == "postgresql" and (reason := postgresql_unavailable()) is not None:
        print(reason, file=sys.stderr)
        return 2
    figures = Figures(
        command="python bench/benefits.py " + " ".join(sys.argv[1:] if argv is None else argv),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    plan = CityPlan(citizens=args.citizens, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-benefits-") as tmp:
        db = ScratchDatabase(kind, Path(tmp))
        try:
            with db.engine.connect() as connection:
                figures.database = (
                    connection.execute(text("SELECT version()")).scalar_one()
                    if kind == "postgresql"
                    else "SQLite "
                    + connection.execute(text("SELECT sqlite_version()")).scalar_one()
                )
            sessions = make_session_factory(db.engine)
            seed_city(sessions, plan, figures)
            seed_scenarios(sessions, args.scenarios, figures)
            with sessions() as session:
                figures.counts["citizens"] = (
                    session.scalar(select(func.count()).select_from(Citizen)) or 0
                )
            if kind == "postgresql":
                with db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                ) as connection:
                    for table in ANALYZED:
                        connection.execute(text(f"ANALYZE {table}"))
            measure(sessions, plan.today, args, figures)
        finally:
            db.drop()
    print(report(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"benefits-{kind}.json"
    path.write_text(json.dumps(asdict(figures), indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {path}")
    ratios = [
        Ratio(
            "my_benefits_over_snapshot", figures.ratios["my_benefits_over_snapshot"], "<=", TARGET
        )
    ]
    print_ratios(ratios)
    return exit_code(ratios)


if __name__ == "__main__":
    sys.exit(main())
