"""Benchmark the federation: a visitor's code offline and online, and syncing a ten-member trust list.

A federation runs on loopback: a coordinator, Sanya (460200) and Huangshi (420200), each its own
gunicorn process and database (``citycredit.cli.cluster``), and eight more member cities made in
this process by the server's own code (each its own SQLite database, code-signing key, federation
key and published model; no server, since nobody asks them anything during the run). All ten join
with four eyes; the coordinator reads every entry, signs the ten-member list, and Sanya and Huangshi
sync it. Sanya and Huangshi are on PostgreSQL (fresh schemas, dropped at the end; ``--sqlite`` puts
them on SQLite files); every city publishes the itemised test model (a six-tier mapping each).
Each figure comes with a baseline measured in the same run:

1. **Offline**, ``PartnerClient.verify_offline`` at a Sanya desk: a Huangshi visitor's code, checked
   against the signature-checked ten-member trust list the desk holds, against a Sanya code checked
   against Sanya's JWKS. Rounds interleaved, timed in this process's CPU time (the machine is shared
   with the servers); no request while timed. Target visitor / local ≥ 0.9.
2. **Online**, ``POST /api/v1/verifications`` at Sanya under gunicorn: a Huangshi visitor's code (Sanya
   checks it against its trust list and asks Huangshi server to server, both ways signed), against a
   Sanya code. Same venue client, same scenario (``library-deposit-free``, open to visitors), same
   load (client threads, each its own keep-alive connection); phases interleaved round by round.
   Every answer is checked (200, eligible, and for visitors ``visitor`` and Huangshi as issuer).
   Target visitor / local throughput ≥ 0.5; p50 and p99 of each. With a missed target (or
   ``--profile``) both paths are measured and profiled in this process (CPU per call, SQL statements,
   cProfile on CPU time): Sanya's app through Flask's test client while Huangshi's gunicorn answers
   over loopback, and Huangshi's app answering introspections signed with Sanya's federation key.
3. **Trust-list sync** of ten members at a city that does not hold the list yet (a fresh database,
   each sync rolled back): fetch from the coordinator over HTTP, verify (anchor signature, ten entry
   signatures) and accept (stored, audited), as ``federation.operations.sync_trust_list`` does it;
   its parts (medians, interleaved); the list's size raw and gzipped. No target: the baseline is
   reading the same bytes with no check (``json.loads`` of the answer, then of the list's payload).

    .venv/bin/python bench/federation.py                 # Sanya and Huangshi on PostgreSQL
    .venv/bin/python bench/federation.py --sqlite        # every city on SQLite
    .venv/bin/python bench/federation.py --duration 4 --rounds 1   # a quick run

Every process it starts (three gunicorns) stops at the end, also after a failure; only 127.0.0.1.
About 100 s on 2 vCPUs. JSON, profiles and the two servers' logs go to bench/out/.
The output ends with one line per target: ``RATIO <name> <value> target <op> <target> <met|MISSED>``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import gzip
import json
import os

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")
import cProfile
import io
import pstats
import re
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/partner_cities.py` puts bench/, not the repo root, on the path: `tests` must be importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import jwt  # noqa: E402
import jwt.api_jws  # noqa: E402
import jwt.utils  # noqa: E402
from ratios import Ratio, print_ratios  # noqa: E402  # bench/ratios.py
from sqlalchemy import event, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from verify import (  # noqa: E402
    CodePool,
    CountingTransport,
    LoadResult,
    Part,
    RateResult,
    _cpu_between,
    _process_cpu,
    access_token,
    background_load,
    combine,
    git_state,
    log,
    postgresql_version,
    run_load,
    verify_check,
)

from citycredit.cli.cluster import CitySpec, Cluster, Deployment, free_port  # noqa: E402
from citycredit.core.actors import Actor  # noqa: E402
from citycredit.core.clients import register_client  # noqa: E402
from citycredit.core.config import Settings, load_settings  # noqa: E402
from citycredit.core.db import make_engine, make_session_factory, unit_of_work  # noqa: E402
from citycredit.core.idnumber import parse_id_number  # noqa: E402
from citycredit.core.keys import current_signing_key  # noqa: E402
from citycredit.migrate import upgrade  # noqa: E402
from citycredit.web.app import create_app  # noqa: E402
from citycredit_partner import PartnerClient  # noqa: E402
from citycredit_partner._trustlist import verify_trust_list  # noqa: E402
from credit_codes import consent  # noqa: E402
from federation import coordinator, s2s  # noqa: E402
from federation import keys as fed_keys  # noqa: E402
from federation import operations as federation_ops  # noqa: E402
from federation.trustlist import verify_list  # noqa: E402
from points_engine import operations as engine  # noqa: E402
from scenarios.demo import ensure_demo_scenarios  # noqa: E402
from scenarios.models import Scenario, ScenarioVersion  # noqa: E402
from tests import factories  # noqa: E402
from tests.databases import ScratchDatabase, postgresql_unavailable  # noqa: E402
from tests.e2e.conftest import Credentials  # noqa: E402
from tests.rule_cases import ITEMISED  # noqa: E402

OUT = Path(__file__).parent / "out"
SCENARIO = "library-deposit-free"  # common level ≥ 3; the bench's citizens are AA (level 4)
SANYA, HUANGSHI = "460200", "420200"
# Ten members: the venue's city, the visitor's, and eight more (each its own gunicorn and database).
MEMBERS = [
    (SANYA, "三亚市", "Sanya"),
    (HUANGSHI, "黄石市", "Huangshi"),
    ("460100", "海口市", "Haikou"),
    ("420100", "武汉市", "Wuhan"),
    ("420500", "宜昌市", "Yichang"),
    ("420600", "襄阳市", "Xiangyang"),
    ("420700", "鄂州市", "Ezhou"),
    ("420800", "荆门市", "Jingmen"),
    ("420900", "孝感市", "Xiaogan"),
    ("421000", "荆州市", "Jingzhou"),
]
OFFLINE_TARGET = 0.9
ONLINE_TARGET = 0.5
# High enough that no phase is refused: the limiter still counts every verification.
UNREFUSED = "10000000 per minute"
ACTOR = "bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="Sanya and Huangshi on SQLite too")
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers of Sanya and Huangshi"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--clients", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load phase")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds per kind first"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument(
        "--cpu-seconds", type=float, default=4.0, help="seconds per kind of offline verification"
    )
    parser.add_argument("--syncs", type=int, default=30, help="timed trust-list syncs (default 30)")
    parser.add_argument(
        "--pool", type=int, default=100, help="codes per city, re-issued as they age"
    )
    parser.add_argument("--profile", action="store_true", help="profile even when targets are met")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 30 or args.rounds < 1 or args.clients < 1 or args.syncs < 3:
        parser.error("--duration in (0, 30], --rounds and --clients at least 1, --syncs at least 3")
    return args


# --- the federation -----------------------------------------------------------------------------


def seeder(people: int) -> Callable[[Session, Settings], dict[str, Any]]:
    """A city as the e2e tests seed one: the itemised model published (its tier table is the city's
    mapping), and with ``people``: the demo scenarios (the library opened to visitors), citizens
    rated AA (common level 4) who consent to be scored and to be recognised by every partner, a
    venue client and the city app's client."""

    def seed(session: Session, settings: Settings) -> dict[str, Any]:
        factories.source(session, "court")
        factories.published(session, ITEMISED)
        if not people:
            return {}
        ensure_demo_scenarios(session)
        scenario_id = session.scalar(select(Scenario.id).where(Scenario.code == SCENARIO))
        for version in session.scalars(
            select(ScenarioVersion).where(ScenarioVersion.scenario_id == scenario_id)
        ):
            version.open_to_visitors = True
        today = dt.datetime.now(settings.tz).date()
        numbers = []
        for _ in range(people):
            number = factories.id_number()
            citizen = engine.get_or_create_citizen(
                session, settings.id_hash_key, parse_id_number(number)
            )
            factories.record(session, citizen, "AWARD", "2026-06-01")
            engine.give_consent(session, citizen, channel=ACTOR, as_of=today)
            consent.give(session, citizen, "*", channel=ACTOR, actor=ACTOR)
            numbers.append(number)
        clients = {}
        for role, kind, scopes in (
            ("venue", "venue", ["verify", "redeem"]),
            ("app", "app", ["codes:issue"]),
        ):
            issued = register_client(
                session, name=role, kind=kind, scopes=scopes, key_secret=settings.key_secret
            )
            assert issued.secret is not None
            clients[role] = Credentials(issued.client.client_id, issued.secret)
        return {"people": numbers, **clients}

    return seed


def _drop(db: ScratchDatabase) -> None:
    started = time.perf_counter()
    db.drop()
    log(f"dropped {db.schema} in {time.perf_counter() - started:.1f} s")


def _template_database(tmp: Path) -> Path:
    """One SQLite database migrated once, copied for every city on SQLite (Cluster's own migration
    of each then finds nothing to do): ~2 s per city saved."""
    path = tmp / "template.sqlite3"
    engine_ = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine_)
    finally:
        engine_.dispose()
    return path


@dataclass
class QuietMember:
    """A member city nobody asks anything during the run: its own database, code-signing key,
    federation key and published model, made by the server's own code, but no gunicorn. Its entry
    is what its ``GET /api/v1/federation/entry`` would answer (``federation.operations.own_entry``)."""

    code: str
    settings: Settings
    body: dict[str, Any]  # the entry endpoint's answer


def quiet_member(
    code: str, name_zh: str, name_en: str, directory: Path, template: Path
) -> QuietMember:
    directory.mkdir(parents=True)
    shutil.copyfile(template, directory / "city.sqlite3")
    # As Cluster prepares a city; the port is free, and nothing listens on it.
    env = {
        **os.environ,
        "CITYCREDIT_ENV": "development",
        "CITYCREDIT_ID_HASH_KEY": secrets.token_hex(32),
        "CITYCREDIT_KEY_SECRET": secrets.token_hex(32),
        "CITYCREDIT_TOKEN_KEY": secrets.token_hex(32),
        "CITYCREDIT_SECRET_KEY": secrets.token_hex(32),
        "CITYCREDIT_CITY_CODE": code,
        "CITYCREDIT_CITY_NAME": name_zh,
        "CITYCREDIT_CITY_NAME_EN": name_en,
        "CITYCREDIT_DATABASE_URL": f"sqlite:///{directory / 'city.sqlite3'}",
        "CITYCREDIT_INSTANCE_DIR": str(directory / "instance"),
        "CITYCREDIT_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
    }
    settings = load_settings(env=env)
    engine_ = make_engine(settings.database_url)
    try:
        with unit_of_work(make_session_factory(engine_)) as session:
            current_signing_key(session, settings.key_secret)
            key = fed_keys.ensure(session, settings.key_secret, "city")
            seeder(0)(session, settings)
            session.flush()
            entry = federation_ops.own_entry(session, settings)
            body = {
                "entry": entry,
                "federation_key": key.public_jwk,
                "fingerprint": key.fingerprint,
            }
    finally:
        engine_.dispose()
    return QuietMember(code, settings, body)


def join_quiet_members(cluster: Cluster, quiet: list[QuietMember]) -> None:
    """Join them at the coordinator with four eyes, as ``Cluster.join`` does, reading their entries
    in process; then publish (every member's entry re-read) and have the served members sync."""
    entries = {member.settings.public_url: member.body for member in quiet}

    def fetch(url: str) -> dict[str, Any]:
        for base, body in entries.items():
            if url.startswith(base + "/"):
                return body
        return federation_ops.http_get_json(url)

    coord = cluster.coordinator
    with coord.session() as session:
        for index, member in enumerate(quiet):
            change = coordinator.propose(
                session,
                coord.settings,
                Actor(f"admin-c{index}"),
                member.code,
                "join",
                base_url=member.settings.public_url,
                fingerprint=member.body["fingerprint"],
                fetch=fetch,
            )
            coordinator.decide(
                session, coord.settings, Actor(f"admin-d{index}"), change.id, approve=True
            )
        coordinator.refresh_entries(session, coord.settings, fetch=fetch)
        coordinator.compile_list(session, coord.settings, force=True)
    cluster.sync_all()


class _Cluster(Cluster):
    def stop(self) -> None:
        # Every gunicorn is asked to stop at once; Cluster.stop then waits for each in turn (and
        # kills a straggler after its timeout).
        for deployment in self.deployments.values():
            if deployment.process is not None and deployment.process.poll() is None:
                deployment.process.terminate()
        started = time.perf_counter()
        super().stop()
        log(f"gunicorns stopped in {time.perf_counter() - started:.1f} s")


@contextmanager
def federation(args: argparse.Namespace, tmp: Path) -> Iterator[Cluster]:
    """The coordinator, Sanya and Huangshi served by gunicorn (``--workers`` × ``--threads``), eight
    quiet members; all ten in the list, which Sanya and Huangshi hold."""
    with ExitStack() as stack:
        started = time.perf_counter()
        template = _template_database(tmp)
        base = tmp / "federation"
        databases: dict[str, str] = {}
        if not args.sqlite:
            for code in (SANYA, HUANGSHI):
                db = ScratchDatabase("postgresql", tmp)
                stack.callback(_drop, db)
                databases[code] = db.url
        for code in ("coord", SANYA, HUANGSHI):
            if code not in databases:
                (base / code).mkdir(parents=True)
                shutil.copyfile(template, base / code / "city.sqlite3")
        specs = [
            CitySpec(code, name_zh, name_en, database_url=databases.get(code, ""), seed=seeder(2))
            for code, name_zh, name_en in MEMBERS[:2]
        ]
        cluster = _Cluster(
            base,
            specs,
            coordinator_code="coord",
            max_age=3600,
            workers=args.workers,
            threads=args.threads,
            extra_env={"CITYCREDIT_RATE_LIMIT_VERIFY": UNREFUSED},
        )
        log("starting the coordinator, Sanya and Huangshi (gunicorn each) …")
        stack.enter_context(cluster)
        log(f"making {len(MEMBERS) - 2} more member cities (database and keys each) …")
        quiet = [
            quiet_member(code, name_zh, name_en, tmp / "quiet" / code, template)
            for code, name_zh, name_en in MEMBERS[2:]
        ]
        join_quiet_members(cluster, quiet)
        log(f"federation up in {time.perf_counter() - started:.1f} s (anchor {cluster.anchor})")
        yield cluster
        log("stopping every city …")
    log("all cities stopped")


def cpu_rate(
    name: str, items: list[Any], operation: Callable[[Any], object], seconds: float
) -> RateResult:
    """Like ``verify.rate``, timed in this process's CPU time: on a machine shared with other work
    (three gunicorns here, and whatever else runs) wall time would measure the scheduler."""
    count = 0
    start = time.process_time()
    while True:
        for item in items:
            operation(item)
        count += len(items)
        if time.process_time() - start >= seconds:
            break
    elapsed = time.process_time() - start
    return RateResult(name, count, elapsed, count / elapsed, elapsed / count * 1e6)


def profile_cpu(
    run: Callable[[], object], *, calls: int, parts: list[Part], limit: int = 25
) -> tuple[str, dict[str, float]]:
    """``verify.profile_text`` with cProfile timing CPU (``time.process_time``), not the wall clock:
    where the CPU goes, which bounds throughput on a busy machine; waits count for nothing."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    run()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = max(row[3] for row in table.values())
    breakdown: dict[str, float] = {}
    for label, path_end, function in parts:
        seconds = sum(
            row[3]
            for (path, _line, name), row in table.items()
            if name == function and path.endswith(path_end)
        )
        breakdown[label] = round(1000 * seconds / calls, 3)
    header = [f"Where the CPU goes, ms per call under cProfile (total {1000 * total / calls:.3f}):"]
    header += [f"  {ms:8.3f}  {label}" for label, ms in breakdown.items()]
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return "\n".join(header) + "\n\n" + text.getvalue(), breakdown


# --- 1. offline ---------------------------------------------------------------------------------


def measure_offline(
    cluster: Cluster,
    local: CodePool,
    visitor: CodePool,
    args: argparse.Namespace,
    out: dict[str, Any],
) -> Ratio:
    sanya = cluster.city(SANYA)
    venue: Credentials = sanya.seeded["venue"]
    transport = CountingTransport()
    budget = 2 * args.cpu_seconds + 10
    local_codes, visitor_codes = local.ensure(budget), visitor.ensure(budget)
    with PartnerClient(
        venue.client_id,
        venue.client_secret,
        sanya.url,
        transport=transport,
        trust_anchor=cluster.anchor,
        max_retries=0,
    ) as desk:
        # Discovery, the JWKS and the trust list are fetched here, once; then every code must pass.
        for token in local_codes:
            result = desk.verify_offline(token)
            assert not result.visitor and result.issuer == SANYA and result.tier_level == 4
        for token in visitor_codes:
            result = desk.verify_offline(token)
            assert result.visitor and result.issuer == HUANGSHI and result.tier_level == 4
        held = desk.trust_list.held
        assert held is not None
        members = sorted(held.members)
        if len(members) != len(MEMBERS):
            raise RuntimeError(f"the desk's trust list has {len(members)} members, not 10")
        warm = dict(transport.requests)
        rounds = 8
        local_runs: list[RateResult] = []
        visitor_runs: list[RateResult] = []
        for n in range(rounds):  # interleaved, the order swapped each round
            order = [("local", local_codes), ("visitor", visitor_codes)]
            for kind, codes in order if n % 2 == 0 else reversed(order):
                runs = local_runs if kind == "local" else visitor_runs
                runs.append(cpu_rate(kind, codes, desk.verify_offline, args.cpu_seconds / rounds))
        during = sum(transport.requests.values()) - sum(warm.values())
        local_rate = combine("verify_offline, a Sanya code (JWKS)", local_runs)
        visitor_rate = combine(
            "verify_offline, a Huangshi visitor's code (trust list)", visitor_runs
        )
        ratio = visitor_rate.per_second / local_rate.per_second
        out["offline"] = {
            "local": asdict(local_rate),
            "visitor": asdict(visitor_rate),
            "members_in_list": members,
            "list_seq": held.seq,
            "requests_before_timing": warm,
            "requests_while_timed": during,
        }
        log(
            f"offline: local {local_rate.per_second:,.0f}/s, visitor "
            f"{visitor_rate.per_second:,.0f}/s, ratio {ratio:.3f}"
        )
        if ratio < OFFLINE_TARGET or args.profile:
            for kind, codes in (("local", local_codes), ("visitor", visitor_codes)):
                sample = (codes * 20)[:2000]

                def check_all(sample: list[str] = sample) -> None:
                    for token in sample:
                        desk.verify_offline(token)

                report, parts = profile_cpu(
                    check_all,
                    calls=len(sample),
                    parts=OFFLINE_PARTS,
                )
                out["profiles"][f"offline_{kind}"] = report
                out["offline"][f"profile_{kind}_ms_per_call"] = parts
    return Ratio("offline_visitor_over_local", ratio, ">=", OFFLINE_TARGET)


OFFLINE_PARTS: list[Part] = [
    ("PartnerClient.verify_offline, all of it", "_client.py", "verify_offline"),
    ("  a local code's checks (_verify_own)", "_offline.py", "_verify_own"),
    ("  a visitor's checks (_verify_visitor)", "_offline.py", "_verify_visitor"),
    ("  KeyCache.key (lock, lookup)", "_offline.py", "key"),
    ("  TrustListCache.get (lock, due?)", "_trustlist.py", "get"),
    ("  dataclasses.replace (the city's name on a local result)", "dataclasses.py", "replace"),
    ("PyJWT decode (unverified + verified)", "jwt/api_jwt.py", "decode"),
    (
        "Ed25519 signature check (cryptography)",
        "",
        "<method 'verify' of 'cryptography.hazmat.bindings._rust.openssl.ed25519.Ed25519PublicKey' objects>",
    ),
]


# --- 2. online ----------------------------------------------------------------------------------


def visitor_check(response: httpx.Response) -> str | None:
    problem = verify_check(response)
    if problem is not None:
        return problem
    body = response.json()
    if body.get("visitor") is not True or (body.get("issuer") or {}).get("code") != HUANGSHI:
        return "not-a-visitor-answer"
    return None


def local_check(response: httpx.Response) -> str | None:
    problem = verify_check(response)
    if problem is None and response.json().get("visitor"):
        return "unexpected-visitor"
    return problem


def sender(tokens: list[str]) -> Callable[[httpx.Client, int], httpx.Response]:
    def send(client: httpx.Client, n: int) -> httpx.Response:
        return client.post(
            "/api/v1/verifications", json={"token": tokens[n % len(tokens)], "scenario": SCENARIO}
        )

    return send


def _phase(
    name: str,
    cluster: Cluster,
    tokens: list[str],
    check: Callable[[httpx.Response], str | None],
    auth: dict[str, str],
    args: argparse.Namespace,
    duration: float,
) -> tuple[LoadResult, float]:
    """One load phase at Sanya; also the CPU Huangshi's gunicorn used meanwhile."""
    sanya, huangshi = cluster.city(SANYA), cluster.city(HUANGSHI)
    assert sanya.process is not None and huangshi.process is not None
    server = SimpleNamespace(url=sanya.url, process=sanya.process)
    before = _process_cpu(huangshi.process.pid)
    result = run_load(
        name,
        server,  # type: ignore[arg-type]  # run_load reads .url and .process only
        sender(tokens),
        check,
        clients=args.clients,
        duration=duration,
        requests=0,
        headers=auth,
    )
    after = _process_cpu(huangshi.process.pid)
    return result, _cpu_between(before, after, "gunicorn")


def measure_online(
    cluster: Cluster,
    local: CodePool,
    visitor: CodePool,
    args: argparse.Namespace,
    out: dict[str, Any],
) -> Ratio:
    sanya = cluster.city(SANYA)
    venue: Credentials = sanya.seeded["venue"]
    pools = {"local": (local, local_check), "visitor": (visitor, visitor_check)}
    auth = {"Authorization": f"Bearer {access_token(sanya.url, venue)}"}
    if args.warmup > 0:
        log(f"warm-up: {args.warmup:g} s per kind …")
        for kind, (pool, check) in pools.items():
            _phase(
                f"warmup-{kind}", cluster, pool.ensure(args.warmup), check, auth, args, args.warmup
            )
    phases: list[dict[str, Any]] = []
    totals = {kind: {"ok": 0, "seconds": 0.0, "errors": 0} for kind in pools}
    for round_no in range(args.rounds):
        # A fresh access token each round: it lives 300 s.
        auth = {"Authorization": f"Bearer {access_token(sanya.url, venue)}"}
        for kind in list(pools) if round_no % 2 == 0 else list(reversed(pools)):
            pool, check = pools[kind]
            tokens = pool.ensure(args.duration)
            result, huangshi_cpu = _phase(kind, cluster, tokens, check, auth, args, args.duration)
            cpu = dict(result.cpu_seconds)
            cpu["huangshi_gunicorn"] = round(huangshi_cpu, 2)
            # run_load counts Huangshi as "other processes": take it out of them.
            cpu["other_processes"] = round(max(0.0, cpu["other_processes"] - huangshi_cpu), 2)
            answered = max(1, result.requests)
            phases.append(
                {
                    "round": round_no + 1,
                    "kind": kind,
                    **asdict(result),
                    "cpu_seconds": cpu,
                    "cpu_ms_per_request": {
                        key: round(1000 * value / answered, 3) for key, value in cpu.items()
                    },
                }
            )
            totals[kind]["ok"] += result.ok
            totals[kind]["seconds"] += result.seconds
            totals[kind]["errors"] += result.requests - result.ok
            log(
                f"round {round_no + 1} {kind}: {result.throughput:,.1f} verifications/s, p50 "
                f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors {result.errors or 0}"
            )
    summary: dict[str, dict[str, Any]] = {}
    for kind, total in totals.items():
        mine = [phase for phase in phases if phase["kind"] == kind]
        requests = sum(phase["requests"] for phase in mine)
        summary[kind] = {
            "throughput": total["ok"] / total["seconds"] if total["seconds"] else 0.0,
            "p50_ms_per_round": [round(phase["p50_ms"], 1) for phase in mine],
            "p99_ms_per_round": [round(phase["p99_ms"], 1) for phase in mine],
            "errors": total["errors"],
            "requests": requests,
            "cpu_ms_per_verification": {
                key: round(
                    1000 * sum(phase["cpu_seconds"][key] for phase in mine) / max(1, requests), 2
                )
                for key in ("bench_process", "gunicorn", "huangshi_gunicorn", "postgresql")
            },
            "machine_busy_percent": round(
                statistics.mean(phase["machine_busy_percent"] for phase in mine), 0
            ),
            "other_processes_cpu_seconds": round(
                sum(phase["cpu_seconds"]["other_processes"] for phase in mine), 1
            ),
        }
        if total["errors"]:
            out["notes"].append(f"{kind}: {total['errors']} verifications failed")
    out["online"] = {"summary": summary, "phases": phases}
    # The machine's CPU time over the phases' snapshots (longer than ``seconds``: connecting and
    # the barrier come first), from its busy time and busy share.
    capacity = sum(
        100 * phase["cpu_seconds"]["machine_busy"] / phase["machine_busy_percent"]
        for phase in phases
        if phase["machine_busy_percent"] > 0
    )
    others = sum(phase["cpu_seconds"]["other_processes"] for phase in phases)
    out["online"]["other_processes_percent"] = round(100 * others / capacity, 1) if capacity else 0
    if capacity and others > 0.1 * capacity:
        out["notes"].append(
            f"other processes (not this benchmark's) used {100 * others / capacity:.0f}% of the "
            "machine's CPU during the load phases: rates are pessimistic, compare the ratio"
        )
    base = summary["local"]["throughput"]
    ratio = summary["visitor"]["throughput"] / base if base else 0.0
    return Ratio("online_visitor_over_local", ratio, ">=", ONLINE_TARGET)


SANYA_PARTS: list[Part] = [
    ("the whole request (Flask wsgi_app)", "flask/app.py", "wsgi_app"),
    (
        "verify_visitor (Sanya's part and the wait for Huangshi)",
        "federation/visitors.py",
        "verify_visitor",
    ),
    ("  trust-list checks (open_visitor_code)", "federation/visitors.py", "open_visitor_code"),
    ("  asking Huangshi (s2s.ask), all of it", "federation/s2s.py", "ask"),
    ("    sign the request (s2s.sign_request)", "federation/s2s.py", "sign_request"),
    (
        "    making an httpx.Client (its CA bundle; once per question before e6c6890)",
        "",
        "<method 'load_verify_locations' of '_ssl._SSLContext' objects>",
    ),
    ("    the POST to Huangshi (federation.poster)", "federation/poster.py", "post_json"),
    ("    the POST to Huangshi on httpx (with a proxy configured)", "httpx/_client.py", "send"),
    ("    checking Huangshi's signed answer (jws.verify)", "federation/jws.py", "verify"),
    ("  the visitor row (_visitor_id)", "federation/visitors.py", "_visitor_id"),
    (
        "  the verification row (record_verification)",
        "credit_codes/operations.py",
        "record_verification",
    ),
    ("verify_presentation (a local code)", "credit_codes/operations.py", "verify_presentation"),
    ("end of request: COMMIT and close", "citycredit/web/pipeline.py", "_end_unit_of_work"),
]

HUANGSHI_PARTS: list[Part] = [
    ("the whole request (Flask wsgi_app)", "flask/app.py", "wsgi_app"),
    ("answer_introspection", "federation/answers.py", "answer_introspection"),
    ("  check_signed_request (asker, signature)", "federation/s2s.py", "check_signed_request"),
    ("  open_presentation (the code)", "credit_codes/operations.py", "open_presentation"),
    (
        "  replay row, hash and consent, question row (one statement)",
        "federation/answers.py",
        "_remember_and_record",
    ),
    ("  sign_answer", "federation/s2s.py", "sign_answer"),
    ("end of request: COMMIT and close", "citycredit/web/pipeline.py", "_end_unit_of_work"),
]


@contextmanager
def regex_base64url_check() -> Iterator[bool]:
    """While open, PyJWT's per-character base64url alphabet check (``_decode_base64url_segment``,
    PyJWT ≥ 2.12) is done with one regular expression, accepting and refusing the same segments.
    Yields False (and changes nothing) where this PyJWT has no such method."""
    original = jwt.api_jws.PyJWS.__dict__.get("_decode_base64url_segment")
    if original is None:
        yield False
        return
    alphabet = re.compile(rb"[A-Za-z0-9_-]*")

    def check(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if padding > 2 or (padding and len(segment) % 4 != 0):
            raise jwt.DecodeError(f"Invalid {name} padding")
        if len(stripped) % 4 == 1 or not alphabet.fullmatch(stripped):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = jwt.utils.base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if jwt.utils.base64url_encode(decoded) != stripped:
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded

    jwt.api_jws.PyJWS._decode_base64url_segment = staticmethod(check)  # type: ignore[method-assign]
    try:
        yield True
    finally:
        jwt.api_jws.PyJWS._decode_base64url_segment = original  # type: ignore[method-assign]


def _each(call: Callable[[int], object], calls: int) -> None:
    for n in range(calls):
        call(n)


def _cheapest(call: Callable[[int], object], batches: int, size: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call in the cheapest batch: the least disturbed by other work."""
    best = (float("inf"), float("inf"))
    for batch in range(batches):
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(size):
            call(batch * size + n)
        per_call = (
            1000 * (time.process_time() - cpu) / size,
            1000 * (time.perf_counter() - wall) / size,
        )
        best = min(best, per_call)
    return best


@contextmanager
def counting_statements(app: Any) -> Iterator[list[int]]:
    """SQL statements the app's engine sends while open (``[count]``)."""
    engine_ = app.extensions["citycredit"].engine
    count = [0]

    def count_one(*_args: Any) -> None:
        count[0] += 1

    event.listen(engine_, "before_cursor_execute", count_one)
    try:
        yield count
    finally:
        event.remove(engine_, "before_cursor_execute", count_one)


def profile_online(
    cluster: Cluster, local: CodePool, visitor: CodePool, out: dict[str, Any]
) -> None:
    """Where a visitor's verification spends its CPU, in this process: Sanya's app through Flask's
    test client (its question goes to Huangshi's gunicorn over loopback), then Huangshi's app
    answering introspections signed by Sanya's federation key; SQL statements of each."""
    sanya, huangshi = cluster.city(SANYA), cluster.city(HUANGSHI)
    venue: Credentials = sanya.seeded["venue"]
    bearer = {"Authorization": f"Bearer {access_token(sanya.url, venue)}"}
    local_codes, visitor_codes = local.ensure(60), visitor.ensure(60)
    found: dict[str, Any] = {}
    calls, batches = 40, 6
    app = create_app(load_settings(env=sanya.env))
    try:
        web = app.test_client()

        def verify(codes: list[str]) -> Callable[[int], None]:
            def call(n: int) -> None:
                answer = web.post(
                    "/api/v1/verifications",
                    json={"token": codes[n % len(codes)], "scenario": SCENARIO},
                    headers=bearer,
                )
                if answer.status_code != 200:
                    raise RuntimeError(f"verification failed: {answer.get_data(as_text=True)}")

            return call

        for kind, codes in (("local", local_codes), ("visitor", visitor_codes)):
            verify(codes)(0)  # caches warm; then one more, counted
            with counting_statements(app) as count:
                verify(codes)(1)
            found[f"sanya_{kind}_statements"] = count[0]
        local_best = visitor_best = (float("inf"), float("inf"))
        for _ in range(batches):  # interleaved
            local_best = min(local_best, _cheapest(verify(local_codes), 1, calls // 4))
            visitor_best = min(visitor_best, _cheapest(verify(visitor_codes), 1, calls // 4))
        found["sanya_local_ms"], found["sanya_visitor_ms"] = local_best, visitor_best
        for kind, codes in (("visitor", visitor_codes), ("local", local_codes)):
            run = verify(codes)
            report, parts = profile_cpu(partial(_each, run, calls), calls=calls, parts=SANYA_PARTS)
            out["profiles"][f"sanya_{kind}"] = report
            found[f"sanya_{kind}_parts"] = parts
    finally:
        app.extensions["citycredit"].engine.dispose()

    # Huangshi's side: requests signed by Sanya's federation key, as Sanya's s2s.ask signs them.
    body = {"purpose": "verification", "scenario": SCENARIO, "category": "library"}
    requests = []
    with sanya.session() as session:
        for n in range(2 + batches * calls // 4 + calls):
            token, _ = s2s.sign_request(
                session,
                sanya.settings,
                HUANGSHI,
                {"code": visitor_codes[n % len(visitor_codes)], **body},
                now=dt.datetime.now(dt.UTC),
            )
            requests.append(token)
    app = create_app(load_settings(env=huangshi.env))
    try:
        web = app.test_client()
        position = iter(requests)

        def introspect(_n: int) -> None:
            answer = web.post("/api/v1/federation/introspections", json={"request": next(position)})
            if answer.status_code != 200:
                raise RuntimeError(f"introspection failed: {answer.get_data(as_text=True)}")

        introspect(0)
        with counting_statements(app) as count:
            introspect(1)
        found["huangshi_statements"] = count[0]
        found["huangshi_introspection_ms"] = _cheapest(introspect, batches, calls // 4)
        report, parts = profile_cpu(
            partial(_each, introspect, calls), calls=calls, parts=HUANGSHI_PARTS
        )
        out["profiles"]["huangshi_introspection"] = report
        found["huangshi_parts"] = parts
    finally:
        app.extensions["citycredit"].engine.dispose()
    out["online"]["in_process"] = found


# --- 3. trust-list sync -------------------------------------------------------------------------


def _interleaved_medians(
    variants: dict[str, Callable[[], object]], rounds: int
) -> dict[str, float]:
    """Median ms of each variant, called in turn round after round (so a busy spell on a shared
    machine hits them all alike)."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in samples.items()}


def _unverified_read(body: bytes) -> dict[str, Any]:
    """The baseline: the answer and the list it carries read as JSON, nothing checked."""
    document = json.loads(body)["trust_list"]
    payload = document.split(".")[1]
    content: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return content


SYNC_PARTS: list[Part] = [
    ("verify_list, all of it", "federation/trustlist.py", "verify_list"),
    ("PyJWT parsing a JWS (_load), every parse", "jwt/api_jws.py", "_load"),
    ("  of which the base64url alphabet check", "jwt/api_jws.py", "_decode_base64url_segment"),
    (
        "Ed25519 signature checks (the anchor's and ten entries')",
        "",
        "<method 'verify' of 'cryptography.hazmat.bindings._rust.openssl.ed25519.Ed25519PublicKey' objects>",
    ),
    ("JSON decoding", "json/decoder.py", "raw_decode"),
]


def measure_sync(
    cluster: Cluster, args: argparse.Namespace, tmp: Path, out: dict[str, Any]
) -> None:
    coordinator = cluster.coordinator
    sanya = cluster.city(SANYA)
    url = coordinator.url + "/api/v1/federation/trust-list"
    response = httpx.get(url, headers={"Accept": "application/json"}, timeout=10)
    response.raise_for_status()
    body = response.content
    document: str = response.json()["trust_list"]
    content = _unverified_read(body)
    members = [member["issuer"] for member in content["members"]]
    if len(members) != len(MEMBERS):
        raise RuntimeError(f"the coordinator's list has {len(members)} members, not 10")
    payload_json = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    entries = [member["entry"] for member in content["members"]]
    sizes = {
        "answer_bytes": len(body),
        "answer_gzip6_bytes": len(gzip.compress(body, compresslevel=6)),
        "answer_gzip9_bytes": len(gzip.compress(body, compresslevel=9)),
        "jws_bytes": len(document.encode()),
        "payload_json_bytes": len(payload_json),
        "entry_jws_bytes_mean": round(statistics.mean(len(e) for e in entries)),
        "served_content_encoding": response.headers.get("content-encoding", "none"),
    }
    # A city that does not hold the list yet: a fresh database; each sync is rolled back.
    kind = "sqlite" if args.sqlite else "postgresql"
    newcomer = ScratchDatabase(kind, tmp)
    engine_ = make_engine(newcomer.url)
    sessions = make_session_factory(engine_)
    settings = sanya.settings  # pinned anchor, coordinator URL, maximum age
    seq = int(content["seq"])
    try:

        def sync_over_http() -> None:
            with sessions() as session:
                listing, new = federation_ops.sync_trust_list(session, settings)
                assert new and listing.seq == seq and len(listing.members) == len(MEMBERS)
                session.rollback()

        answer = json.loads(body)

        def sync_fetched() -> None:
            with sessions() as session:
                listing, new = federation_ops.sync_trust_list(
                    session, settings, fetch=lambda _url: answer
                )
                assert new and listing.seq == seq
                session.rollback()

        def verify_only(_n: int = 0) -> object:
            return verify_list(
                document,
                anchor_fingerprint=cluster.anchor,
                held_seq=None,
                held_document=None,
                now=dt.datetime.now(dt.UTC),
                max_age=settings.trust_list_max_age,
            )

        keep_alive = httpx.Client(headers={"Accept": "application/json"}, timeout=10)
        try:
            for call in (sync_over_http, sync_fetched, verify_only):
                call()  # warm: connections, caches, imports
            variants: dict[str, Callable[[], object]] = {
                "baseline_json_parse_ms": lambda: _unverified_read(body),
                "sync_over_http_ms": sync_over_http,
                "fetch_as_sync_does_ms": lambda: federation_ops.http_get_json(url),
                "fetch_keep_alive_ms": lambda: keep_alive.get(url).json(),
                "verify_and_accept_ms": sync_fetched,
                "verify_only_ms": verify_only,
                "sdk_verify_trust_list_ms": lambda: verify_trust_list(
                    document, anchor=cluster.anchor
                ),
            }
            timings = _interleaved_medians(variants, args.syncs)
            with regex_base64url_check() as patched:
                if patched:
                    verify_only()
                    more = _interleaved_medians(
                        {"verify_only_regex_check_ms": verify_only}, args.syncs
                    )
                    timings.update(more)
            report, parts = profile_cpu(
                lambda: [verify_only(n) for n in range(20)], calls=20, parts=SYNC_PARTS
            )
            out["profiles"]["verify_list"] = report
        finally:
            keep_alive.close()
    finally:
        engine_.dispose()
        newcomer.drop()
    timings["accept_only_ms"] = timings["verify_and_accept_ms"] - timings["verify_only_ms"]
    base = timings["baseline_json_parse_ms"]
    out["sync"] = {
        "members": members,
        "seq": seq,
        "database": kind,
        "sizes": sizes,
        "ms": {key: round(value, 3) for key, value in timings.items()},
        "verify_list_cpu_profile_ms": parts,
        "over_json_parse": {
            "sync_over_http": timings["sync_over_http_ms"] / base,
            "verify_only": timings["verify_only_ms"] / base,
        },
    }
    log(f"sync: {timings['sync_over_http_ms']:.1f} ms over HTTP, list {len(body):,} B")


# --- the report ---------------------------------------------------------------------------------


def render(out: dict[str, Any]) -> str:
    git = out["git"]
    lines = [
        "Federation benchmark (a coordinator and ten member cities, loopback only)",
        f"  command    {out['command']}",
        f"  started    {out['started_at']}, {out['cpu_count']} CPUs, Python {out['python']}, "
        f"PostgreSQL {out['postgresql']}",
        f"  commit     {git.get('commit', '?')}"
        + (
            f" ({len(git['modified_files'])} files modified in the checkout)"
            if git.get("modified_files")
            else ""
        ),
        f"  machine    {out['background']['busy_percent']:.0f}% busy before the run, load average "
        f"{out['background']['loadavg']}",
        f"  cities     Sanya and Huangshi on {out['backend']}, gunicorn {out['workers']} workers × "
        f"{out['threads']} threads, as is the coordinator (SQLite); eight more members in process "
        "(SQLite, own keys and model, no server: nobody asks them anything)",
        f"  setup      {out['setup_seconds']:.1f} s (migrate, seed, serve, join, publish, sync)",
    ]
    if "offline" in out:
        off = out["offline"]
        lines += [
            "",
            f"1. Offline verification at a Sanya desk (PartnerClient.verify_offline; "
            f"{len(off['members_in_list'])}-member trust list, seq {off['list_seq']})",
        ]
        for key in ("local", "visitor"):
            r = off[key]
            lines.append(
                f"   {r['name']:<58}{r['per_second']:>9,.0f}/s {r['mean_us']:>8.1f} µs each"
            )
        lines.append(
            f"   requests to the city while timed: {off['requests_while_timed']} "
            f"(before timing: {off['requests_before_timing']})"
        )
        if "profile_visitor_ms_per_call" in off:
            lines.append(
                "   where the CPU goes (cProfile, µs per call, parts overlap):  local  visitor"
            )
            local_parts = off["profile_local_ms_per_call"]
            for label, ms in off["profile_visitor_ms_per_call"].items():
                lines.append(f"     {label:<58}{1000 * local_parts[label]:7.0f}  {1000 * ms:7.0f}")
    if "online" in out:
        summary = out["online"]["summary"]
        lines += [
            "",
            f"2. Online verification at Sanya under gunicorn ({out['clients']} client threads, "
            f"{out['rounds']} interleaved rounds of {out['duration']:g} s per kind)",
        ]
        for key, label in (
            ("local", "a Sanya code"),
            ("visitor", "a Huangshi visitor's code (Sanya asks Huangshi)"),
        ):
            s = summary[key]
            cpu = s["cpu_ms_per_verification"]
            lines.append(
                f"   {label:<49}{s['throughput']:>8,.1f} req/s  p50 "
                f"{'/'.join(f'{v:g}' for v in s['p50_ms_per_round'])} ms  p99 "
                f"{'/'.join(f'{v:g}' for v in s['p99_ms_per_round'])} ms  errors {s['errors']}"
            )
            lines.append(
                f"   {'':<49}CPU ms each: Sanya gunicorn {cpu['gunicorn']:.2f}, Huangshi gunicorn "
                f"{cpu['huangshi_gunicorn']:.2f}, PostgreSQL {cpu['postgresql']:.2f}, load "
                f"generator {cpu['bench_process']:.2f}; machine {s['machine_busy_percent']:.0f}% busy"
            )
        inside = out["online"].get("in_process")
        if inside:
            lines += [
                "   in process (Flask test client, one thread; cheapest batch; CPU ms / wall ms per "
                "call; SQL statements + COMMIT):",
                f"     Sanya, a local code            {inside['sanya_local_ms'][0]:7.2f} / "
                f"{inside['sanya_local_ms'][1]:7.2f}   {inside['sanya_local_statements']} statements",
                f"     Sanya, a visitor's code        {inside['sanya_visitor_ms'][0]:7.2f} / "
                f"{inside['sanya_visitor_ms'][1]:7.2f}   {inside['sanya_visitor_statements']} "
                "statements (the wall time includes Huangshi's answer)",
                f"     Huangshi, one introspection    {inside['huangshi_introspection_ms'][0]:7.2f} / "
                f"{inside['huangshi_introspection_ms'][1]:7.2f}   {inside['huangshi_statements']} "
                "statements",
                "   where a visitor's verification's CPU goes at Sanya (cProfile, which inflates "
                "Python-heavy parts; ms per call, parts overlap):",
            ]
            lines += [
                f"     {ms:8.3f}  {label}" for label, ms in inside["sanya_visitor_parts"].items()
            ]
            lines.append("   where Huangshi's answer's CPU goes (cProfile, ms per call):")
            lines += [f"     {ms:8.3f}  {label}" for label, ms in inside["huangshi_parts"].items()]
    if "sync" in out:
        sync = out["sync"]
        sizes, ms = sync["sizes"], sync["ms"]
        lines += [
            "",
            f"3. Trust-list sync, {len(sync['members'])} members (seq {sync['seq']}), at a city "
            f"that does not hold it ({sync['database']}, rolled back each time); medians",
            f"   size: answer {sizes['answer_bytes']:,} B, gzip -6 {sizes['answer_gzip6_bytes']:,} B, "
            f"gzip -9 {sizes['answer_gzip9_bytes']:,} B (served with Content-Encoding: "
            f"{sizes['served_content_encoding']}); JWS {sizes['jws_bytes']:,} B, payload JSON "
            f"{sizes['payload_json_bytes']:,} B, an entry's JWS {sizes['entry_jws_bytes_mean']:,} B",
            f"   sync_trust_list over HTTP (fetch + verify + accept)   {ms['sync_over_http_ms']:8.2f} ms"
            f"   {sync['over_json_parse']['sync_over_http']:,.0f}× the baseline",
            f"     fetch as sync does it (http_get_json)              {ms['fetch_as_sync_does_ms']:8.2f} ms",
            f"     (the same GET on a kept-alive client)              {ms['fetch_keep_alive_ms']:8.2f} ms",
            f"     verify + accept (fetch served from memory)         {ms['verify_and_accept_ms']:8.2f} ms",
            f"       verify only (federation.trustlist.verify_list)   {ms['verify_only_ms']:8.2f} ms"
            f"   {sync['over_json_parse']['verify_only']:,.0f}× the baseline",
            f"       accept (store + audit, by difference)            {ms['accept_only_ms']:8.2f} ms",
            f"   the desk's check (SDK verify_trust_list)             {ms['sdk_verify_trust_list_ms']:8.2f} ms",
        ]
        if "verify_only_regex_check_ms" in ms:
            lines.append(
                f"   verify only, PyJWT's base64url check by one regex    "
                f"{ms['verify_only_regex_check_ms']:8.2f} ms   (what if, this process only)"
            )
        lines += [
            f"   baseline: json.loads of the answer and its payload   {ms['baseline_json_parse_ms']:8.3f} ms",
        ]
    for note in out["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _stop_on_signal(signum: int, _frame: Any) -> None:
    """SIGTERM or SIGHUP: leave through the ``with`` blocks, so every server and database goes."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    backend = "sqlite" if args.sqlite else "postgresql"
    if backend == "postgresql" and (reason := postgresql_unavailable()) is not None:
        print(f"PostgreSQL is needed (or pass --sqlite): {reason}", file=sys.stderr)
        return 2
    out: dict[str, Any] = {
        "command": shlex.join(
            [sys.executable, *sys.argv] if argv is None else ["partner_cities.py", *argv]
        ),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "cpu_count": os.cpu_count() or 0,
        "python": sys.version.split()[0],
        "postgresql": postgresql_version() if backend == "postgresql" else "-",
        "workers": args.workers,
        "threads": args.threads,
        "clients": args.clients,
        "rounds": args.rounds,
        "duration": args.duration,
        "git": git_state(),
        "notes": [],
        "profiles": {},
    }
    log("measuring the machine's background load (2 s) …")
    out["background"] = background_load()
    if out["background"]["busy_percent"] > 10:
        out["notes"].append(
            f"the machine was {out['background']['busy_percent']:.0f}% busy before the run (other "
            "work shares the CPUs): compare ratios, not rates"
        )
    targets: list[Ratio] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp_dir:
        tmp = Path(tmp_dir)
        with federation(args, tmp) as cluster:
            out["setup_seconds"] = time.perf_counter() - started
            sanya, huangshi = cluster.city(SANYA), cluster.city(HUANGSHI)
            local = CodePool(sanya.url, sanya.seeded["app"], sanya.seeded["people"], args.pool)
            visitor = CodePool(
                huangshi.url, huangshi.seeded["app"], huangshi.seeded["people"], args.pool
            )
            targets.append(measure_offline(cluster, local, visitor, args, out))
            targets.append(measure_online(cluster, local, visitor, args, out))
            if not all(target.met for target in targets[-1:]) or args.profile:
                log("profiling both paths in process …")
                profile_online(cluster, local, visitor, out)
            measure_sync(cluster, args, tmp, out)
            _keep_logs(cluster, args.out)
    out["total_seconds"] = round(time.perf_counter() - started, 1)
    out["targets"] = [t.as_dict() for t in targets]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"federation-{backend}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    for name, text in out["profiles"].items():
        (args.out / f"federation-{backend}-profile-{name}.txt").write_text(text)
    print(render(out))
    print(
        f"\nJSON: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}; "
        f"whole run {out['total_seconds']:.0f} s\n"
    )
    print_ratios(targets)
    return 0


def _keep_logs(cluster: Cluster, out_dir: Path) -> None:
    """Sanya's and Huangshi's server logs beside the figures (the temporary directory goes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for code in (SANYA, HUANGSHI):
        deployment: Deployment = cluster.city(code)
        log_file = deployment.directory / "server.log"
        if log_file.exists():
            (out_dir / f"federation-server-{code}.log").write_text(
                log_file.read_text(errors="replace")
            )


if __name__ == "__main__":
    sys.exit(main())
