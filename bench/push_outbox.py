"""What the webhook outbox adds to a recompute that changes 10% of the city's tiers (issue 15).

    .venv/bin/python bench/push_outbox.py                    # 50,000 citizens, ~10 records each
    .venv/bin/python bench/push_outbox.py --citizens 5000    # a quick run

A synthetic city is ingested and scored in a scratch PostgreSQL schema. Every citizen is linked to one
operator, whose system subscribes to ``tier.changed``. Every tenth citizen's current snapshot is then
set one level off what the records give (and their link told that level, as if the operator had been
told it), committed. Each trial times a full recompute (``recompute_all``, ranges of 50,000) in a
transaction rolled back after it: it rewrites those 10% of snapshots, and with links present the
listener stores one ``tier.changed`` event and one delivery per changed link in the same transaction.

Baseline: the same trial with the links and the subscription deleted inside the trial's transaction
(before the clock starts), so the recompute does the same scoring work and the outbox finds nobody.
Trials alternate baseline / outbox; medians are compared. Target: the outbox adds ≤ 10%.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable

from ratios import Ratio, exit_code, print_ratios
from schemas import drop_schema, fresh_schema
from sqlalchemy import delete, func, insert, literal, null, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from citycredit.cli import demo
from citycredit.core.clients import register_client
from citycredit.core.db import utcnow
from points_engine import batches, operations
from points_engine.models import Citizen
from points_engine.synthetic import CityPlan, generate_rows
from push.models import Delivery, Event, Link, Subscription
from push.subscriptions import create_subscription
from scenarios.models import Operator

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY = bytes.fromhex("be7c" * 16)
SECRET = b"s" * 32
TRIALS = 5


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def build_city(engine: Engine, plan: CityPlan) -> None:
    """Ingest, consent, score; link every citizen to one operator subscribed to tier.changed."""
    with Session(engine) as session:
        demo.ensure_sources(session)
        demo.ensure_reference_models(session, actor="bench")
        session.commit()
        rows = ((n, dict(row)) for n, row in enumerate(generate_rows(plan), start=2))
        batches.ingest(
            session,
            rows,
            origin="bench",
            fmt="csv",
            key=KEY,
            today=plan.today,
            commit_chunks=True,
            workers=2,
        )
        operations.give_consent_bulk(session, select(Citizen.id).where(Citizen.id > 0), channel="b")
        session.commit()
        operations.recompute_all(session, as_of=plan.today, commit=session.commit, workers=2)
        operator = Operator(code="library", name_zh="图书馆", name_en="Library")
        session.add(operator)
        session.flush()
        client = register_client(
            session,
            name="lending system",
            kind="operator",
            scopes=["links:read"],
            operator_id=operator.id,
            key_secret=SECRET,
        ).client
        create_subscription(
            session,
            client,
            url="https://lending.example/hook",
            event_types=["tier.changed"],
            key_secret=SECRET,
            actor="bench",
        )
        now = utcnow()
        session.execute(
            insert(Link).from_select(
                [
                    "citizen_id",
                    "operator_id",
                    "client_id",
                    "pseudonym",
                    "shares",
                    "sent_level",
                    "created_at",
                ],
                select(
                    Citizen.id,
                    literal(operator.id),
                    literal(client.id),
                    func.concat("lk_", Citizen.id),
                    literal(["common_level"], type_=Link.shares.type),
                    null(),
                    literal(now, type_=Link.created_at.type),
                ).where(Citizen.consent_given.is_(True)),
            )
        )
        session.commit()


def set_off_by_one(engine: Engine) -> None:
    """Every tenth citizen's current snapshot one level off what the records give, and their link
    told that level (as if the operator had been told it): committed once, so each trial's
    recompute finds those 10% changed, and the trial's rollback leaves them so for the next."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE score_snapshot SET score = score - 1,"
                " common_tier = CASE WHEN common_tier = 1 THEN 2 ELSE common_tier - 1 END"
                " WHERE is_current AND citizen_id % 10 = 0"
            )
        )
        connection.execute(
            text(
                "UPDATE link SET sent_level = s.common_tier FROM score_snapshot s"
                " WHERE s.citizen_id = link.citizen_id AND s.is_current"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE link"))
        connection.execute(text("VACUUM ANALYZE score_snapshot"))


def trial(engine: Engine, today: dt.date, *, outbox: bool) -> tuple[float, int]:
    """One recompute that rewrites the 10% of snapshots set off, rolled back after; (seconds,
    deliveries stored)."""
    with Session(engine) as session:
        if not outbox:
            session.execute(delete(Link))
            session.execute(delete(Subscription))
        started = time.perf_counter()
        summary = operations.recompute_all(session, as_of=today)
        seconds = time.perf_counter() - started
        stored = session.scalar(select(func.count()).select_from(Delivery)) or 0
        events = session.scalar(select(func.count()).select_from(Event)) or 0
        session.rollback()
    log(
        f"{'outbox' if outbox else 'baseline'}: {seconds:.2f} s, {summary.changed:,} snapshots "
        f"written, {events:,} events, {stored:,} deliveries"
    )
    return seconds, stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--schema", default="bench_push_outbox")
    parser.add_argument("--citizens", type=int, default=50_000)
    parser.add_argument("--records-per-citizen", type=float, default=10.0)
    args = parser.parse_args(argv)
    plan = CityPlan(citizens=args.citizens, records_per_citizen=args.records_per_citizen, seed=15)
    engine = fresh_schema(args.database_url, args.schema)
    try:
        log(f"building a city of {args.citizens:,} citizens …")
        build_city(engine, plan)
        set_off_by_one(engine)
        runs: dict[bool, list[float]] = {False: [], True: []}
        deliveries = 0
        run: Callable[[bool], tuple[float, int]] = lambda on: trial(engine, plan.today, outbox=on)  # noqa: E731
        run(True)  # warm caches and plans once, unmeasured
        for _ in range(TRIALS):
            for on in (False, True):
                seconds, stored = run(on)
                runs[on].append(seconds)
                if on:
                    deliveries = stored
        base, with_outbox = statistics.median(runs[False]), statistics.median(runs[True])
    finally:
        engine.dispose()
        drop_schema(args.database_url, args.schema)
    print(f"citizens: {args.citizens:,}; tier.changed deliveries per recompute: {deliveries:,}")
    print(f"recompute, nobody linked (median of {TRIALS}): {base:.2f} s")
    print(f"recompute, everyone linked, 10% of levels changed: {with_outbox:.2f} s")
    ratios = [Ratio("outbox_overhead_on_recompute", with_outbox / base - 1, "<=", 0.10)]
    print_ratios(ratios)
    return exit_code(ratios)


if __name__ == "__main__":
    sys.exit(main())
