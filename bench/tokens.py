"""Benchmark the token endpoint, and what the rate limiter costs verification, under gunicorn.

Each figure comes with a baseline measured in the same run (targets from issue 9):

1. ``POST /oauth/token`` (client-credentials grant, secret by HTTP Basic) against ``GET /healthz`` of
   the same app under the same load: throughput ratio token / healthz ≥ 0.2; and the CPU of a token
   request in process (cheapest batch, no load generator) ≤ 5 ms ("a token request costs a few
   milliseconds"); gunicorn's CPU per token request under load is shown too. The server runs with its limiter off
   (``bench/unthrottled.py``): one client asking hundreds of times a second would otherwise measure
   the limit, not the cost. Every answer must be 200 with a token.
2. ``POST /api/v1/verifications`` with the limiter on (``citycredit.web.wsgi:app``, its per-client
   verification limit raised so it counts every request but refuses none) against the same app with
   the limiter off, phases interleaved round by round: ratio on / off ≥ 0.95, once with in-memory
   storage (the demo) and once with Redis at 127.0.0.1:6379 (production's setting; skipped when it
   does not answer).
3. The same in process, for each storage (no HTTP, no gunicorn, no load generator): the CPU of a
   verification against the CPU the limiter adds to it (its per-request hooks and the per-client
   count), each the cheapest of many batches: ratio ≥ 0.95. On a machine shared with other work this
   is the steadier figure.

The city is seeded as the e2e tests seed it, in a fresh PostgreSQL schema (or ``--sqlite`` file), and
all servers share it and listen on 127.0.0.1 only.

    .venv/bin/python bench/tokens.py                    # PostgreSQL, 2 workers × 4 threads, 16 clients
    .venv/bin/python bench/tokens.py --sqlite
    .venv/bin/python bench/tokens.py --only tokens      # section 1 only
    .venv/bin/python bench/tokens.py --rounds 5 --duration 6

The output ends with one line per target: ``RATIO <name> <value> target <op> <target> <met|MISSED>``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/tokens.py` puts bench/, not the repo root, on the path: `tests` must be importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import flask  # noqa: E402
import httpx  # noqa: E402
from ratios import Ratio  # noqa: E402  # bench/ratios.py
from verify import (  # noqa: E402
    SCENARIO,
    CodePool,
    LiveServer,
    LoadResult,
    access_token,
    background_load,
    git_state,
    healthz_check,
    healthz_send,
    log,
    run_load,
    verify_check,
    verify_sender,
)

from citycredit.core.config import load_settings  # noqa: E402
from citycredit.web.app import create_app  # noqa: E402
from citycredit.web.security import limit_verifications  # noqa: E402
from tests.databases import ScratchDatabase, postgresql_unavailable  # noqa: E402
from tests.e2e.conftest import SECRETS, _seed, free_port, gunicorn  # noqa: E402

OUT = Path(__file__).parent / "out"
TOKEN_RATIO_TARGET = 0.2
TOKEN_CPU_MS_TARGET = 5.0
LIMITER_TARGET = 0.95
REDIS_URL = "redis://127.0.0.1:6379/0"
# High enough that no phase is refused, so the limiter does its whole work on every request.
UNREFUSED = "10000000 per minute"
UNTHROTTLED_APP = "unthrottled:app"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="a fresh SQLite file")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--clients", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of section 2 (default 3)"
    )
    parser.add_argument("--only", choices=["tokens", "limiter"], help="run one section only")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 30 or args.rounds < 1 or args.clients < 1:
        parser.error("--duration in (0, 30], --rounds and --clients at least 1")
    return args


def redis_unavailable() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except Exception as exc:  # any failure means: no Redis to measure against
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def servers(
    args: argparse.Namespace, tmp: Path, names: list[str]
) -> Iterator[dict[str, LiveServer]]:
    """One seeded database, and one gunicorn per name: ``off`` (limiter off), ``memory``, ``redis``."""
    kind = "sqlite" if args.sqlite else "postgresql"
    db = ScratchDatabase(kind, tmp)
    try:
        base = {
            **os.environ,
            # The session key too (production refuses to make its own), whatever SECRETS holds.
            "CITYCREDIT_SECRET_KEY": "44" * 32,
            **SECRETS,
            "CITYCREDIT_DATABASE_URL": db.url,
            "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
        }
        log(f"seeding a city in a fresh {kind} database …")
        seeded = _seed(db, load_settings(env=base))
        with contextlib.ExitStack() as stack:
            found: dict[str, LiveServer] = {}
            for name in names:
                port = free_port()
                env = {**base, "CITYCREDIT_PUBLIC_URL": f"http://127.0.0.1:{port}"}
                app = UNTHROTTLED_APP
                if name != "off":
                    app = "citycredit.web.wsgi:app"
                    env["CITYCREDIT_RATE_LIMIT_VERIFY"] = UNREFUSED
                    env["CITYCREDIT_RATE_LIMIT_STORAGE"] = (
                        REDIS_URL if name == "redis" else "memory://"
                    )
                log_path = tmp / f"server-{name}.log"
                url, command, process = stack.enter_context(
                    gunicorn(
                        env, port, log_path, workers=args.workers, threads=args.threads, app=app
                    )
                )
                log(f"gunicorn ({name}) is up at {url}")
                found[name] = LiveServer(
                    url, db, load_settings(env=env), env, process, log_path, command, seeded
                )
            yield found
    finally:
        db.drop()


def token_sender(client_id: str, secret: str) -> Any:
    def send(client: httpx.Client, _n: int) -> httpx.Response:
        return client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )

    return send


def token_check(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"http-{response.status_code}"
    return None if response.json().get("access_token") else "no-token"


def _load(
    name: str, server: LiveServer, send: Any, check: Any, args: argparse.Namespace, **kw: Any
) -> LoadResult:
    return run_load(
        name, server, send, check, clients=args.clients, duration=args.duration, requests=0, **kw
    )


def measure_tokens(
    server: LiveServer, args: argparse.Namespace, out: dict[str, Any]
) -> list[Ratio]:
    venue = server.credentials["venue"]
    send = token_sender(venue.client_id, venue.client_secret)
    if args.warmup > 0:
        log(f"warm-up: {args.warmup:g} s per endpoint …")
        run_load(
            "warmup",
            server,
            healthz_send,
            healthz_check,
            clients=args.clients,
            duration=args.warmup,
            requests=0,
        )
        run_load(
            "warmup",
            server,
            send,
            token_check,
            clients=args.clients,
            duration=args.warmup,
            requests=0,
        )
    log("measuring GET /healthz …")
    healthz = _load("healthz", server, healthz_send, healthz_check, args)
    log(f"healthz: {healthz.throughput:,.1f} req/s")
    log("measuring POST /oauth/token …")
    tokens = _load("token", server, send, token_check, args)
    log(f"token: {tokens.throughput:,.1f} req/s, errors {tokens.errors}")
    out["tokens"] = {"healthz": asdict(healthz), "token": asdict(tokens)}
    if tokens.errors or healthz.errors:
        out["notes"].append(f"errors: healthz {healthz.errors}, token {tokens.errors}")
    ratio = tokens.throughput / healthz.throughput if healthz.throughput else 0.0
    cpu_ms = 1000 * _token_in_process(server, args)
    out["tokens"]["in_process_cpu_ms"] = cpu_ms
    log(f"token in process: {cpu_ms:.2f} ms of CPU")
    return [
        Ratio("token_over_healthz", ratio, ">=", TOKEN_RATIO_TARGET),
        Ratio("token_cpu_ms_in_process", cpu_ms, "<=", TOKEN_CPU_MS_TARGET),
    ]


def _token_in_process(server: LiveServer, args: argparse.Namespace) -> float:
    """CPU seconds of a token request in this process (cheapest batch): the whole request, its
    database client side included, without the load that shares the machine."""
    app = create_app(load_settings(env=server.env))
    try:
        for limiter in app.extensions["limiter"]:
            limiter.enabled = False  # the cost, not the limit
        web = app.test_client()
        venue = server.credentials["venue"]
        pair = f"{venue.client_id}:{venue.client_secret}".encode()
        auth = "Basic " + base64.b64encode(pair).decode()

        def request(_n: int) -> None:
            answer = web.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": auth},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"token request failed: {answer.get_data(as_text=True)}")

        request(0)
        return _cheapest(8 * args.rounds, 20, request)
    finally:
        app.extensions["citycredit"].engine.dispose()


def measure_limiter(
    found: dict[str, LiveServer], args: argparse.Namespace, out: dict[str, Any]
) -> list[Ratio]:
    off = found["off"]
    creds = off.credentials
    pool = CodePool(off.url, creds["app"], [creds["good"], creds["excellent"]], 100)
    order = list(found)
    totals = {name: {"ok": 0, "seconds": 0.0, "cpu": 0.0, "errors": 0} for name in order}
    phases: list[dict[str, Any]] = []
    for round_no in range(args.rounds):
        # A fresh access token each round: it lives 300 s, and any server accepts it (one database).
        auth = {"Authorization": f"Bearer {access_token(off.url, creds['venue'])}"}
        for name in order if round_no % 2 == 0 else reversed(order):
            server = found[name]
            tokens = pool.ensure(args.duration + args.warmup)
            if args.warmup > 0:
                run_load(
                    "warmup",
                    server,
                    verify_sender(tokens),
                    verify_check,
                    clients=args.clients,
                    duration=args.warmup,
                    requests=0,
                    headers=auth,
                )
            result = _load(
                f"verify-{name}", server, verify_sender(tokens), verify_check, args, headers=auth
            )
            log(
                f"round {round_no + 1} {name}: {result.throughput:,.1f} verifications/s, errors {result.errors}"
            )
            phases.append({"round": round_no + 1, **asdict(result)})
            total = totals[name]
            total["ok"] += result.ok
            total["seconds"] += result.seconds
            total["cpu"] += result.cpu_seconds["gunicorn"]
            total["errors"] += result.requests - result.ok
    summary = {
        name: {
            "throughput": t["ok"] / t["seconds"] if t["seconds"] else 0.0,
            "gunicorn_cpu_ms_per_verification": 1000 * t["cpu"] / max(1, t["ok"]),
            "errors": t["errors"],
        }
        for name, t in totals.items()
    }
    out["limiter"] = {"summary": summary, "phases": phases}
    capacity = sum(phase["seconds"] for phase in phases) * (os.cpu_count() or 1)
    others = sum(phase["cpu_seconds"]["other_processes"] for phase in phases)
    if capacity and others > 0.1 * capacity:
        out["notes"].append(
            f"other processes used {100 * others / capacity:.0f}% of the machine during section 2: "
            "its throughput ratios are mostly their noise; section 3 is the steadier figure"
        )
    targets = []
    base = summary["off"]["throughput"]
    for name in order[1:]:
        if summary[name]["errors"]:
            out["notes"].append(f"{name}: {summary[name]['errors']} verifications failed")
        ratio = summary[name]["throughput"] / base if base else 0.0
        targets.append(Ratio(f"verify_limiter_{name}_over_off", ratio, ">=", LIMITER_TARGET))
    return targets


def _cheapest(batches: int, size: int, call: Any) -> float:
    """CPU seconds per call in the cheapest of ``batches`` batches of ``size`` calls."""
    best = float("inf")
    for _ in range(batches):
        started = time.process_time()
        for n in range(size):
            call(n)
        best = min(best, (time.process_time() - started) / size)
    return best


def _in_process(
    env: dict[str, str], pool: CodePool, bearer: dict[str, str], batches: int
) -> tuple[float, dict[bool, float], float]:
    """(verification, hooks per request by limiter state, per-client count), CPU seconds each."""
    app = create_app(load_settings(env=env))
    try:
        web = app.test_client()
        limiter = app.extensions["citycredit_limiter"]
        tokens = pool.ensure(60)

        def verify(n: int) -> None:
            answer = web.post(
                "/api/v1/verifications",
                json={"token": tokens[n % len(tokens)], "scenario": SCENARIO},
                headers=bearer,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"verification failed: {answer.get_data(as_text=True)}")

        limiter.enabled = False
        verification = _cheapest(batches, 50, verify)
        hooks: dict[bool, float] = {}
        for _ in range(3):  # alternate, so a busy spell hits both sides alike
            for enabled in (False, True):
                limiter.enabled = enabled
                cost = _cheapest(batches // 2, 200, lambda _n: web.get("/healthz"))
                hooks[enabled] = min(hooks.get(enabled, cost), cost)
        limiter.enabled = True
        with app.test_request_context("/api/v1/verifications", method="POST"):
            flask.g.caller = SimpleNamespace(client=SimpleNamespace(client_id="cc_bench"))
            count = _cheapest(batches, 500, lambda _n: limit_verifications())
    finally:
        app.extensions["citycredit"].engine.dispose()
    return verification, hooks, count


def measure_in_process(
    found: dict[str, LiveServer], args: argparse.Namespace, out: dict[str, Any]
) -> list[Ratio]:
    """What the limiter adds to a verification, in process: no HTTP, no gunicorn, no load generator.

    The app is built in this process on the same database, once per storage. Three figures, each the
    cheapest of many batches (the least disturbed by other work on the machine), in this process's
    CPU time (a server's throughput is bounded by CPU: a thread waiting on Redis lets the others
    run): a verification with the limiter off; what Flask-Limiter's per-request hooks add to any
    request (``GET /healthz``, limiter on minus off); and the per-client count itself
    (``limit_verifications``). Ratio: verification / (verification + hooks + count). PostgreSQL's CPU,
    the same either way, is left out, which makes the limiter's share look larger, not smaller.
    """
    off = found["off"]
    creds = off.credentials
    pool = CodePool(off.url, creds["app"], [creds["good"], creds["excellent"]], 100)
    bearer = {"Authorization": f"Bearer {access_token(off.url, creds['venue'])}"}
    storages = {"memory": "memory://"}
    if "redis" in found:
        storages["redis"] = REDIS_URL
    results: dict[str, Any] = {}
    targets = []
    batches = 8 * args.rounds
    for name, storage in storages.items():
        env = {
            **off.env,
            "CITYCREDIT_RATE_LIMIT_STORAGE": storage,
            "CITYCREDIT_RATE_LIMIT_VERIFY": UNREFUSED,
        }
        verification, hooks, count = _in_process(env, pool, bearer, batches)
        added = max(0.0, hooks[True] - hooks[False]) + count
        results[name] = {
            "verification_ms": 1000 * verification,
            "hooks_ms": 1000 * (hooks[True] - hooks[False]),
            "count_ms": 1000 * count,
            "limiter_share_percent": 100 * added / (verification + added),
        }
        log(f"in process, {name}: {results[name]}")
        ratio = verification / (verification + added)
        targets.append(
            Ratio(f"verify_in_process_limiter_{name}_over_off", ratio, ">=", LIMITER_TARGET)
        )
    out["in_process"] = results
    return targets


def render(out: dict[str, Any], targets: list[Ratio]) -> str:
    lines = [
        "Token endpoint and rate limiter benchmark",
        f"  command   {out['command']}",
        f"  started   {out['started_at']}, {out['backend']}, {out['cpu_count']} CPUs, "
        f"commit {out['git'].get('commit', '?')}",
        f"  machine   {out['background']['busy_percent']}% busy before the run",
    ]
    if "tokens" in out:
        lines.append("\n1. Token endpoint (limiter off)")
        for key, label in (("healthz", "GET /healthz"), ("token", "POST /oauth/token")):
            r = out["tokens"][key]
            lines.append(
                f"   {label:<18} {r['throughput']:>9,.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                f"p99 {r['p99_ms']:6.1f} ms  gunicorn CPU {r['cpu_ms_per_request']['gunicorn']:.2f} ms/req"
                f"  ({r['ok']} ok of {r['requests']})"
            )
        lines.append(
            f"   token request in process (cheapest batch): {out['tokens']['in_process_cpu_ms']:.2f} ms CPU"
        )
    if "limiter" in out:
        lines.append(f"\n2. Verification, limiter off and on ({out['rounds']} interleaved rounds)")
        for name, s in out["limiter"]["summary"].items():
            lines.append(
                f"   {name:<8} {s['throughput']:>9,.1f} verifications/s  gunicorn CPU "
                f"{s['gunicorn_cpu_ms_per_verification']:.2f} ms each  errors {s['errors']}"
            )
    if "in_process" in out:
        lines.append("\n3. In process, CPU of the cheapest batch (no HTTP, no load generator)")
        for name, r in out["in_process"].items():
            lines.append(
                f"   {name:<8} verification {r['verification_ms']:.3f} ms; limiter hooks "
                f"{r['hooks_ms']:+.3f} ms and per-client count {r['count_ms']:.3f} ms: "
                f"{r['limiter_share_percent']:.1f}% of a verification"
            )
    for note in out["notes"]:
        lines.append(f"  note: {note}")
    lines.append("")
    lines.extend(target.line() for target in targets)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = "sqlite" if args.sqlite else "postgresql"
    if backend == "postgresql" and (reason := postgresql_unavailable()) is not None:
        print(f"PostgreSQL is needed (or pass --sqlite): {reason}", file=sys.stderr)
        return 2
    out: dict[str, Any] = {
        "command": shlex.join(
            [sys.executable, *sys.argv] if argv is None else ["tokens.py", *argv]
        ),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "cpu_count": os.cpu_count() or 0,
        "rounds": args.rounds,
        "git": git_state(),
        "notes": [],
    }
    log("measuring the machine's background load (2 s) …")
    out["background"] = background_load()
    names = ["off"]
    if args.only != "tokens":
        names.append("memory")
        if (reason := redis_unavailable()) is None:
            names.append("redis")
        else:
            out["notes"].append(f"Redis at {REDIS_URL} did not answer ({reason}): not measured")
    targets: list[Ratio] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp,
        servers(args, Path(tmp), names) as found,
    ):
        if args.only != "limiter":
            targets += measure_tokens(found["off"], args, out)
        if args.only != "tokens":
            targets += measure_limiter(found, args, out)
            targets += measure_in_process(found, args, out)
    out["targets"] = [{**asdict(t), "met": t.met} for t in targets]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"tokens-{backend}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(render(out, targets))
    print(f"\nJSON: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
