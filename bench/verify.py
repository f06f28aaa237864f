"""Benchmark credit-code verification: the API under gunicorn, the SDK offline, and QR rendering.

Each figure comes with a baseline measured in the same run, and the ratio is checked against its
target (from the issue):

1. ``POST /api/v1/verifications`` (scenario ``library-deposit-free``, valid codes) under a real
   gunicorn server, driven by ``wrk`` (issue 14), against the floor of a verification in the same
   app (``POST /bench/verification-floor``, ``citycredit/web/floor.py``: one Ed25519 check, one
   INSERT, one COMMIT; the server runs with ``CITYCREDIT_BENCH_FLOOR=1``): throughput ratio
   verify / floor ≥ 0.6 and the verifications' p99 ≤ 30 ms; verify / ``GET /healthz`` is reported
   beside it (≥ 0.5, issue 3). Each endpoint is measured ``--rounds`` times, interleaved. Every
   verification must answer 200, and the verification rows written must equal the 200s.
   ``--load python`` drives the load from this process instead (httpx threads, as before).
2. ``PartnerClient.verify_offline`` (JWKS cached) against bare ``cryptography`` Ed25519 signature
   checks of the same compact JWS parts: ratio offline / raw ≥ 0.8.
3. QR images per second (``credit_codes.qr.render_png`` / ``render_svg`` on real codes), and the QR
   version the codes need.

The server is seeded like the e2e tests (``tests/e2e/conftest.py``) in a fresh PostgreSQL schema
(dropped at the end) or a fresh SQLite file, and only listens on 127.0.0.1.

    .venv/bin/python bench/verify.py                     # PostgreSQL, 2 workers × 4 threads, 16 clients
    .venv/bin/python bench/verify.py --sqlite
    .venv/bin/python bench/verify.py --workers 4 --threads 1 --clients 32 --duration 20
    .venv/bin/python bench/verify.py --requests 5000     # a fixed number of requests per phase

On a small machine the load generator, gunicorn and PostgreSQL share the CPUs: each phase reports the
CPU seconds each of them used (from /proc; wrk's from its rusage), and a note says when other
processes took a share. The output ends with one line per target:
``RATIO <name> <value> target <op> <target> <met|MISSED>``. When a target is missed
(or with ``--profile``) the run profiles the cause and writes the report next to the JSON in
bench/out/, with the server's log.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import datetime as dt
import io
import json
import os

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")
import platform
import pstats
import re
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/verify.py` puts bench/, not the repo root, on the path: `tests` must be importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402
from ratios import Op, Ratio, print_ratios  # noqa: E402  # bench/ratios.py

from citycredit.core.config import Settings, load_settings  # noqa: E402
from citycredit_partner import PartnerClient  # noqa: E402
from credit_codes import qr  # noqa: E402
from credit_codes.qr import qr_version  # noqa: E402
from tests.databases import PG_URL, ScratchDatabase, postgresql_unavailable  # noqa: E402
from tests.e2e.conftest import SECRETS, Credentials, _seed, free_port, gunicorn  # noqa: E402

OUT = Path(__file__).parent / "out"
SCENARIO = "library-deposit-free"  # common tier ≥ 3: the "good" (3) and "excellent" (4) citizens
HTTP_TARGET = 0.5  # verify / healthz (issue 3)
FLOOR_TARGET = 0.6  # verify / floor (issue 14)
P99_TARGET_MS = 30.0  # the verifications' p99 at 16 connections (issue 14)
OFFLINE_TARGET = 0.8  # issue 14 (0.5 in issue 3)
WRK = shutil.which("wrk")
FLOOR_PATH = "/bench/verification-floor"
CODE_LIFETIME = 120
MAX_PHASE_SECONDS = 85.0  # codes live 120 s: a phase must end well before the pool expires
CODE_MARGIN = 15.0  # a code is re-issued unless it outlives the coming phase by this much
REQUEST_TIMEOUT = 10.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- figures ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """One load phase against the server: counts, throughput and latency."""

    name: str
    clients: int
    seconds: float
    requests: int  # answered or failed, all of them
    ok: int  # 200 and the expected body
    errors: dict[str, int]
    throughput: float  # ok / seconds
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    stopped_by: str  # "duration" or "count" (or "time cap" when a count could not be reached)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    machine_busy_percent: float = 0.0


@dataclass
class RateResult:
    """An in-process loop: how many operations per second."""

    name: str
    operations: int
    seconds: float
    per_second: float
    mean_us: float


@dataclass
class Figures:
    command: str
    started_at: str
    backend: str
    cpu_count: int
    python: str
    postgresql: str
    sqlite: str
    gunicorn_command: str
    git: dict[str, Any] = field(default_factory=dict)
    background: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)
    offline: dict[str, Any] = field(default_factory=dict)
    qr: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets_met: dict[str, bool] = field(default_factory=dict)
    server_log: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- arguments ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sqlite", action="store_true", help="a fresh SQLite file instead of PostgreSQL"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="gunicorn threads per worker (default 4, gthread as in the e2e tests; 1 = sync worker)",
    )
    parser.add_argument(
        "--clients", type=int, default=16, help="concurrent client threads (default 16)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured phase (default 10)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="a fixed number of requests per measured phase instead of --duration",
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unmeasured load per endpoint first"
    )
    parser.add_argument(
        "--pool", type=int, default=100, help="credit codes issued for the load (default 100)"
    )
    parser.add_argument(
        "--cpu-seconds",
        type=float,
        default=3.0,
        help="seconds per in-process measurement (offline verification, QR rendering)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile offline verification and the verify endpoint even when the targets are met",
    )
    parser.add_argument(
        "--load",
        choices=("wrk", "python"),
        default="wrk" if WRK else "python",
        help="load generator: wrk (default when installed) or this process's httpx threads",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of healthz, floor and verify (default 2)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.load == "wrk" and not WRK:
        parser.error("wrk is not installed (apt-get install wrk), use --load python")
    if not 1 <= args.rounds <= 5:
        parser.error("--rounds must be from 1 to 5")
    for name in ("workers", "threads", "clients", "pool"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.pool > 1000 or args.clients > 256 or args.workers > 64:
        parser.error("at most 1000 codes, 256 clients and 64 workers")
    if not 0 < args.duration <= MAX_PHASE_SECONDS:
        parser.error(
            f"--duration must be in (0, {MAX_PHASE_SECONDS:g}]: codes live {CODE_LIFETIME} s"
        )
    if args.requests < 0:
        parser.error("--requests must not be negative")
    if not 0 <= args.warmup <= 30 or not 0 < args.cpu_seconds <= 30:
        parser.error("--warmup and --cpu-seconds must be at most 30 s")
    return args


# --- CPU accounting (Linux /proc; empty elsewhere) ----------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu(root: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) per process of gunicorn (``root`` and its workers) and PostgreSQL."""
    found: dict[int, tuple[str, float]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        if pid == root or ppid == root:
            found[pid] = ("gunicorn", seconds)
        elif name == "postgres" or name.startswith("postgres:"):
            found[pid] = ("postgresql", seconds)
    return found


def _cpu_between(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], kind: str
) -> float:
    """CPU used by ``kind`` processes in between, per process: one that exited meanwhile is left out
    (its share is unknowable) instead of being subtracted, and one that started counts whole."""
    return sum(
        seconds - (before[pid][1] if pid in before else 0.0)
        for pid, (what, seconds) in after.items()
        if what == kind
    )


def _cpu_split(
    before: CpuSnapshot, after: CpuSnapshot, generator: str, generator_cpu: float
) -> dict[str, float]:
    """The machine's CPU seconds between two snapshots, by who spent them: the load generator (named
    ``generator``), gunicorn, PostgreSQL, interrupts and everything else."""
    server_cpu = _cpu_between(before.processes, after.processes, "gunicorn")
    database_cpu = _cpu_between(before.processes, after.processes, "postgresql")
    busy = after.busy - before.busy
    interrupts = after.interrupts - before.interrupts
    return {
        generator: generator_cpu,
        "gunicorn": server_cpu,
        "postgresql": database_cpu,
        "interrupts": interrupts,
        "other_processes": max(0.0, busy - generator_cpu - server_cpu - database_cpu - interrupts),
        "machine_busy": busy,
        "steal": after.steal - before.steal,
    }


def _machine_cpu() -> tuple[float, float, float, float]:
    """CPU seconds of the whole machine since boot, from /proc/stat: (busy, total, interrupts, steal).

    ``busy`` excludes idle, iowait and steal (time the hypervisor gave to other guests);
    ``interrupts`` (irq + softirq, mostly loopback TCP here) is part of ``busy``.
    """
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0, 0.0, 0.0, 0.0
    values = [int(v) for v in first[1:9]] + [0] * (9 - len(first))
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    busy = user + nice + system + irq + softirq
    total = busy + idle + iowait + steal
    return (
        busy / CLOCK_TICKS,
        total / CLOCK_TICKS,
        (irq + softirq) / CLOCK_TICKS,
        steal / CLOCK_TICKS,
    )


@dataclass
class CpuSnapshot:
    client: float
    processes: dict[int, tuple[str, float]]
    busy: float
    total: float
    interrupts: float
    steal: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        busy, total, interrupts, steal = _machine_cpu()
        return cls(time.process_time(), _process_cpu(server_pid), busy, total, interrupts, steal)


def background_load(seconds: float = 2.0) -> dict[str, Any]:
    """How busy the machine is before the benchmark starts anything: other work skews every figure."""
    busy0, total0, _, _ = _machine_cpu()
    time.sleep(seconds)
    busy1, total1, _, _ = _machine_cpu()
    percent = 100 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"busy_percent": round(percent, 1), "loadavg": [round(x, 2) for x in load]}


# --- the server ---------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    db: ScratchDatabase
    settings: Settings
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str]
    credentials: dict[str, Any]


@contextmanager
def live_server(args: argparse.Namespace, tmp: Path) -> Iterator[LiveServer]:
    """A seeded city served by gunicorn on loopback; the server and the database go at the end."""
    kind = "sqlite" if args.sqlite else "postgresql"
    db = ScratchDatabase(kind, tmp)
    try:
        port = free_port()
        env = {
            **os.environ,
            **SECRETS,
            "CITYCREDIT_DATABASE_URL": db.url,
            "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
            "CITYCREDIT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CITYCREDIT_BENCH_FLOOR": "1",  # development only: POST /bench/verification-floor
            # Every verification is counted, as in production, but none refused: the bench measures
            # the cost, not the limit (1,200 a minute per client would refuse most of a phase).
            "CITYCREDIT_RATE_LIMIT_VERIFY": "10000000 per minute",
        }
        settings = load_settings(env=env)
        log(f"seeding a city in a fresh {kind} database …")
        seeded = _seed(db, settings)
        log_path = tmp / "server.log"
        with gunicorn(env, port, log_path, workers=args.workers, threads=args.threads) as (
            url,
            command,
            server,
        ):
            log(f"gunicorn is up at {url} ({args.workers} workers × {args.threads} threads)")
            yield LiveServer(url, db, settings, env, server, log_path, command, seeded)
        log("gunicorn stopped")
    finally:
        db.drop()


def access_token(url: str, credentials: Credentials) -> str:
    response = httpx.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
        timeout=REQUEST_TIMEOUT,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


class CodePool:
    """Valid credit codes issued through the API (the city app's call); re-issued before they age out."""

    def __init__(self, url: str, app: Credentials, numbers: list[str], size: int):
        self.url, self.app, self.numbers, self.size = url, app, numbers, size
        self.tokens: list[str] = []
        self.qr_versions: Counter[int] = Counter()
        self.issues = 0
        self.issue_seconds = 0.0
        self.last_issue_seconds = 0.0

    def expires_in(self) -> float:
        if not self.tokens:
            return 0.0
        return min(_claims(token)["exp"] for token in self.tokens) - time.time()

    def ensure(self, seconds: float) -> list[str]:
        """Codes that stay valid for ``seconds`` more (plus a margin): the current ones or fresh ones."""
        if self.expires_in() < seconds + CODE_MARGIN:
            self.refresh()
            if self.expires_in() < seconds:
                raise RuntimeError(
                    f"issuing {self.size} codes took {self.last_issue_seconds:.0f} s: they would "
                    f"expire within the next {seconds:.0f} s phase; use a smaller --pool"
                )
        return self.tokens

    def refresh(self) -> None:
        start = time.perf_counter()
        token = access_token(self.url, self.app)
        tokens = []
        with httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT,
        ) as client:
            for i in range(self.size):
                response = client.post(
                    "/api/v1/credit-codes", json={"id_number": self.numbers[i % len(self.numbers)]}
                )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"issuing a code failed: {response.status_code} {response.text}"
                    )
                body = response.json()
                tokens.append(body["token"])
        # The QR version of a sample (building a QR matrix costs ~20 ms, so not of every code).
        for token in tokens[:10]:
            self.qr_versions[qr_version(token)] += 1
        self.tokens = tokens
        self.issues += 1
        self.last_issue_seconds = time.perf_counter() - start
        self.issue_seconds += self.last_issue_seconds
        log(f"issued {len(tokens)} fresh codes in {self.last_issue_seconds:.2f} s")


# --- load ---------------------------------------------------------------------------------------

Send = Callable[[httpx.Client, int], httpx.Response]
Check = Callable[[httpx.Response], str | None]  # None when the answer is right, else an error kind


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ordered list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n q), at least 1
    return ordered[min(len(ordered), int(rank)) - 1]


def run_load(
    name: str,
    server: LiveServer,
    send: Send,
    check: Check,
    *,
    clients: int,
    duration: float,
    requests: int,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """``clients`` threads, each with its own keep-alive httpx.Client, for ``duration`` s or ``requests``.

    Every thread connects with one unmeasured request, then all start together at a barrier. A phase
    given a request count still stops at the time cap, so no loop can outrun the codes' lifetime.
    """
    by_count = requests > 0
    quotas = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[Counter[str]] = [Counter() for _ in range(clients)]
    attempts = [0] * clients
    oks = [0] * clients
    finished = [0.0] * clients
    started: dict[str, float] = {}

    def start_clock() -> None:
        started["at"] = time.perf_counter()

    barrier = threading.Barrier(clients, action=start_clock)

    crashed: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            load_loop(i)
        except BaseException as exc:  # reported after the join, so the phase fails loudly
            crashed.append(exc)
            barrier.abort()

    def load_loop(i: int) -> None:
        lat, err = latencies[i], errors[i]
        with httpx.Client(
            base_url=server.url,
            headers=headers,
            timeout=REQUEST_TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as client:
            with contextlib.suppress(httpx.HTTPError):
                send(client, i)  # open the connection before the clock starts
            barrier.wait(timeout=60)
            begin = started["at"]
            deadline = begin + (MAX_PHASE_SECONDS if by_count else duration)
            n = 0
            quota = quotas[i]
            while True:
                now = time.perf_counter()
                if now >= deadline or (by_count and n >= quota):
                    break
                n += 1
                try:
                    response = send(client, i + n * clients)
                except httpx.HTTPError as exc:
                    err[f"transport:{type(exc).__name__}"] += 1
                    continue
                lat.append(time.perf_counter() - now)
                try:
                    problem = check(response)
                except ValueError:  # a body that is not the JSON it should be
                    problem = f"http-{response.status_code}:unreadable-body"
                if problem is None:
                    oks[i] += 1
                else:
                    err[problem] += 1
            attempts[i] = n
            finished[i] = time.perf_counter()

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"{name}-{i}", daemon=True)
        for i in range(clients)
    ]
    before = CpuSnapshot.take(server.process.pid)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=MAX_PHASE_SECONDS + 2 * REQUEST_TIMEOUT + 60)
        if thread.is_alive():
            raise RuntimeError(f"a {name} client thread did not stop")
    if crashed:
        raise RuntimeError(f"{len(crashed)} {name} client threads failed") from crashed[0]
    after = CpuSnapshot.take(server.process.pid)
    seconds = max(finished) - started["at"]
    ordered = sorted(x for per_thread in latencies for x in per_thread)
    merged: Counter[str] = Counter()
    for counter in errors:
        merged.update(counter)
    total = sum(attempts)
    stopped_by = "duration"
    if by_count:
        stopped_by = "count" if total >= requests else "time cap"
    elapsed_cpu = after.total - before.total
    client_cpu = after.client - before.client
    answered = max(1, len(ordered))
    cpu = _cpu_split(before, after, "bench_process", client_cpu)
    return LoadResult(
        name=name,
        clients=clients,
        seconds=seconds,
        requests=total,
        ok=sum(oks),
        errors=dict(merged),
        throughput=sum(oks) / seconds if seconds > 0 else 0.0,
        p50_ms=_percentile(ordered, 0.50) * 1000,
        p99_ms=_percentile(ordered, 0.99) * 1000,
        mean_ms=(sum(ordered) / len(ordered) * 1000) if ordered else float("nan"),
        max_ms=(ordered[-1] * 1000) if ordered else float("nan"),
        stopped_by=stopped_by,
        cpu_seconds={key: round(value, 2) for key, value in cpu.items()},
        cpu_ms_per_request={key: round(1000 * value / answered, 3) for key, value in cpu.items()},
        machine_busy_percent=100 * cpu["machine_busy"] / elapsed_cpu if elapsed_cpu > 0 else 0.0,
    )


def healthz_send(client: httpx.Client, _n: int) -> httpx.Response:
    return client.get("/healthz")


def healthz_check(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"http-{response.status_code}"
    if response.json() != {"status": "ok"}:
        return "unexpected-body"
    return None


def verify_sender(tokens: list[str]) -> Send:
    def send(client: httpx.Client, n: int) -> httpx.Response:
        return client.post(
            "/api/v1/verifications", json={"token": tokens[n % len(tokens)], "scenario": SCENARIO}
        )

    return send


def verify_check(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        try:
            kind = str(response.json().get("type", ""))
        except ValueError:
            kind = ""
        return f"http-{response.status_code}{':' + kind if kind else ''}"
    body = response.json()
    if body.get("eligible") is not True:
        return "not-eligible"
    if body.get("scenario") != SCENARIO or body.get("tier", {}).get("level", 0) < 3:
        return "unexpected-body"
    return None


# --- load from wrk ------------------------------------------------------------------------------

_WRK_SCRIPT = r"""
local bodies = {%(bodies)s}
local headers = {%(headers)s}
local counter = 0
request = function()
  counter = counter + 1
  if #bodies == 0 then return wrk.format("%(method)s", "%(path)s", headers) end
  return wrk.format("%(method)s", "%(path)s", headers, bodies[(counter %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\"requests\":%%d,\"duration_us\":%%d,\"connect\":%%d,\"read\":%%d," ..
    "\"write\":%%d,\"status\":%%d,\"timeout\":%%d,\"p50_us\":%%d,\"p99_us\":%%d," ..
    "\"mean_us\":%%f,\"max_us\":%%d}\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError("cannot quote this text for Lua")
    return "[==[" + text + "]==]"


def verification_rows(server: LiveServer) -> int:
    with server.db.engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM verification")).scalar_one())


def run_wrk(
    name: str,
    server: LiveServer,
    method: str,
    path: str,
    bodies: list[dict[str, Any]],
    *,
    clients: int,
    duration: float,
    tmp: Path,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """``wrk`` with ``clients`` keep-alive connections on 2 threads for ``duration`` s; the bodies are
    sent round-robin. Non-2xx answers and socket errors count as errors."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    script = tmp / f"wrk-{name}.lua"
    script.write_text(
        _WRK_SCRIPT
        % {
            "bodies": ",".join(_lua_string(json.dumps(body)) for body in bodies),
            "headers": ",".join(
                f"[ {_lua_string(k)} ]={_lua_string(v)}" for k, v in all_headers.items()
            ),
            "method": method,
            "path": path,
        }
    )
    assert WRK is not None
    command = [
        WRK, f"-t{min(2, clients)}", f"-c{clients}", f"-d{duration:g}s",
        "--timeout", f"{REQUEST_TIMEOUT:g}s", "-s", str(script), server.url + path,
    ]  # fmt: skip
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = CpuSnapshot.take(server.process.pid)
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    after = CpuSnapshot.take(server.process.pid)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = [line for line in done.stdout.splitlines() if line.startswith("WRKJSON ")]
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    summary = json.loads(found[-1].removeprefix("WRKJSON "))
    seconds = summary["duration_us"] / 1e6
    errors = {
        kind: summary[kind]
        for kind in ("status", "connect", "read", "write", "timeout")
        if summary[kind]
    }
    ok = summary["requests"] - summary["status"]
    generator = (reaped.ru_utime + reaped.ru_stime) - (children.ru_utime + children.ru_stime)
    elapsed_cpu = after.total - before.total
    cpu = _cpu_split(before, after, "load_generator", generator)
    answered = max(1, summary["requests"])
    return LoadResult(
        name=name,
        clients=clients,
        seconds=seconds,
        requests=summary["requests"],
        ok=ok,
        errors=errors,
        throughput=ok / seconds if seconds > 0 else 0.0,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        mean_ms=summary["mean_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        stopped_by="duration",
        cpu_seconds={key: round(value, 2) for key, value in cpu.items()},
        cpu_ms_per_request={key: round(1000 * value / answered, 3) for key, value in cpu.items()},
        machine_busy_percent=100 * cpu["machine_busy"] / elapsed_cpu if elapsed_cpu > 0 else 0.0,
    )


def floor_ids(server: LiveServer) -> dict[str, int]:
    """The venue's client row and the scenario's live version, which the floor endpoint is told."""
    venue = server.credentials["venue"].client_id
    with server.db.engine.connect() as connection:
        client = connection.execute(
            sa.text("SELECT id FROM api_client WHERE client_id = :c"), {"c": venue}
        ).scalar_one()
        scenario, version = connection.execute(
            sa.text(
                "SELECT s.id, v.id FROM scenario s JOIN scenario_version v ON v.scenario_id = s.id"
                " AND v.state = 'published' WHERE s.code = :code"
            ),
            {"code": SCENARIO},
        ).one()
    return {"client": int(client), "scenario": int(scenario), "version": int(version)}


def run_http_wrk(
    server: LiveServer, args: argparse.Namespace, figures: Figures, pool: CodePool, tmp: Path
) -> None:
    """Rounds of healthz, floor and verify under wrk; the ratios from the rounds' sums."""
    creds = server.credentials
    bearer = access_token(server.url, creds["venue"])
    token_at = time.monotonic()
    ids = floor_ids(server)
    results: dict[str, list[LoadResult]] = {"healthz": [], "floor": [], "verify": []}
    recorded: dict[str, list[int]] = {"floor": [], "verify": []}

    def phase(name: str, seconds: float) -> LoadResult:
        nonlocal bearer, token_at
        if name == "healthz":
            return run_wrk(
                name, server, "GET", "/healthz", [], clients=args.clients, duration=seconds, tmp=tmp
            )
        tokens = pool.ensure(seconds)
        if name == "floor":
            bodies = [{"token": token, **ids} for token in tokens]
            return run_wrk(
                name, server, "POST", FLOOR_PATH, bodies, clients=args.clients,
                duration=seconds, tmp=tmp,
            )  # fmt: skip
        if time.monotonic() - token_at > 300 - seconds - 30:
            bearer, token_at = access_token(server.url, creds["venue"]), time.monotonic()
        bodies = [{"token": token, "scenario": SCENARIO} for token in tokens]
        return run_wrk(
            name, server, "POST", "/api/v1/verifications", bodies, clients=args.clients,
            duration=seconds, tmp=tmp, headers={"Authorization": f"Bearer {bearer}"},
        )  # fmt: skip

    if args.warmup > 0:
        log(f"warm-up: {args.warmup:g} s per endpoint (wrk) …")
        for name in results:
            phase(name, args.warmup)
    for round_number in range(1, args.rounds + 1):
        for name in results:
            rows = verification_rows(server) if name != "healthz" else 0
            result = phase(name, args.duration)
            result.name = f"{name}-{round_number}"
            results[name].append(result)
            if name != "healthz":
                recorded[name].append(verification_rows(server) - rows)
            log(
                f"round {round_number} {name}: {result.throughput:,.1f} req/s, p50 "
                f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors {result.errors}"
            )

    def rate_of(name: str) -> float:
        return sum(r.ok for r in results[name]) / sum(r.seconds for r in results[name])

    figures.http = {name: [asdict(r) for r in rs] for name, rs in results.items()}
    figures.http["rows_written"] = recorded
    figures.http["floor_ids"] = ids
    cpus = os.cpu_count() or 1
    for rs in results.values():
        for r in rs:
            other = r.cpu_seconds["other_processes"]
            if other > 0.1 * r.seconds * cpus:
                figures.notes.append(
                    f"other processes used {other:.1f} CPU-s "
                    f"({100 * other / (r.seconds * cpus):.0f}% of the machine) during {r.name}: "
                    "its figures are pessimistic"
                )
            if r.errors:
                figures.notes.append(f"errors during {r.name}: {r.errors}")
    verify, floor, healthz = rate_of("verify"), rate_of("floor"), rate_of("healthz")
    figures.ratios["verify_over_floor"] = verify / floor if floor else 0.0
    figures.ratios["verify_over_healthz"] = verify / healthz if healthz else 0.0
    figures.ratios["floor_over_healthz"] = floor / healthz if healthz else 0.0
    figures.ratios["verify_p99_ms"] = max(r.p99_ms for r in results["verify"])
    figures.http["verify_over_floor_by_round"] = [
        round(v.throughput / f.throughput, 3) if f.throughput else 0.0
        for v, f in zip(results["verify"], results["floor"], strict=True)
    ]
    answered = {name: sum(r.ok for r in results[name]) for name in recorded}
    # wrk stops counting at the deadline while the server finishes what is in flight (at most one
    # request per connection): rows may exceed the 200s counted, never fall short.
    figures.targets_met["every_200_recorded"] = all(
        sum(recorded[name]) >= answered[name] for name in recorded
    )
    figures.targets_met["all_verifications_ok"] = all(not r.errors for r in results["verify"])
    figures.targets_met["verify_over_floor"] = figures.ratios["verify_over_floor"] >= FLOOR_TARGET
    figures.targets_met["verify_p99_ms"] = figures.ratios["verify_p99_ms"] <= P99_TARGET_MS
    figures.targets_met["verify_over_healthz"] = (
        figures.ratios["verify_over_healthz"] >= HTTP_TARGET
    )


# --- in-process rates ---------------------------------------------------------------------------


def rate(
    name: str, items: list[Any], operation: Callable[[Any], object], seconds: float
) -> RateResult:
    """Apply ``operation`` to ``items`` round-robin for about ``seconds`` (checked every pass)."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            operation(item)
        count += len(items)
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return RateResult(name, count, elapsed, count / elapsed, elapsed / count * 1e6)


def combine(name: str, parts: list[RateResult]) -> RateResult:
    count = sum(part.operations for part in parts)
    elapsed = sum(part.seconds for part in parts)
    return RateResult(name, count, elapsed, count / elapsed, elapsed / count * 1e6)


class CountingTransport(httpx.HTTPTransport):
    """Counts the SDK's requests, to show that offline verification does not touch the network."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests[request.url.path] += 1
        return super().handle_request(request)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


Part = tuple[str, str, str]  # label, the file's path ending, the function's name


def profile_text(
    run: Callable[[], object], *, calls: int, parts: list[Part], limit: int = 25
) -> tuple[str, dict[str, float]]:
    """Profile ``run`` (``calls`` operations); the report, and ms per operation spent in each part.

    A part's time is cumulative (it includes what it calls), so parts may overlap.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
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
    header = [
        f"Where the time goes, ms per call under cProfile (total {1000 * total / calls:.3f}):"
    ]
    header += [
        f"  {ms:8.3f}  {100 * ms / (1000 * total / calls):5.1f}%  {label}"
        for label, ms in breakdown.items()
    ]
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return "\n".join(header) + "\n\n" + out.getvalue(), breakdown


OFFLINE_PARTS: list[Part] = [
    ("verify_offline, all of it", "_offline.py", "verify_offline"),
    ("reading the code once (_read: split, base64url, JSON)", "_offline.py", "_read"),
    ("the claims' checks (_check_claims)", "_offline.py", "_check_claims"),
    ("PyJWT (should be 0: not on this path any more)", "jwt/api_jwt.py", "decode"),
    (
        "Ed25519 signature check (cryptography)",
        "",
        "<method 'verify' of 'cryptography.hazmat.bindings._rust.openssl.ed25519.Ed25519PublicKey' objects>",
    ),
    ("KeyCache.key (lock, lookup)", "_offline.py", "key"),
]

ENDPOINT_PARTS: list[Part] = [
    ("the whole request (Flask wsgi_app)", "flask/app.py", "wsgi_app"),
    ("bearer authentication (authenticate_bearer)", "citycredit/clients.py", "authenticate_bearer"),
    ("verify_presentation", "credit_codes/operations.py", "verify_presentation"),
    ("signing-key table reads (keys.published_keys)", "citycredit/keys.py", "published_keys"),
    ("scenario lookup (published_scenario)", "scenarios/operations.py", "published_scenario"),
    ("client lookup (find_client)", "citycredit/clients.py", "find_client"),
    ("code checks (open_presentation)", "credit_codes/operations.py", "open_presentation"),
    ("PyJWT decode (access token + code, verified and not)", "jwt/api_jwt.py", "decode"),
    (
        "Ed25519 signature checks",
        "",
        "<method 'verify' of 'cryptography.hazmat.bindings._rust.openssl.ed25519.Ed25519PublicKey' objects>",
    ),
    ("session flush (INSERT verification)", "sqlalchemy/orm/session.py", "flush"),
    ("end of request: COMMIT and close (teardown)", "citycredit/app.py", "_end_unit_of_work"),
    ("waiting on the database (psycopg wait)", "psycopg/connection.py", "wait"),
]


def measure_offline(
    server: LiveServer, pool: CodePool, args: argparse.Namespace, figures: Figures
) -> None:
    venue: Credentials = server.credentials["venue"]
    rounds = 3  # raw and offline interleaved, so drift on a shared machine hits both alike
    tokens = pool.ensure(2 * args.cpu_seconds + 10)
    transport = CountingTransport()
    with PartnerClient(
        venue.client_id, venue.client_secret, server.url, transport=transport
    ) as desk:
        first = desk.verify_offline(tokens[0])  # discovers the issuer and fetches the JWKS once
        warm = sum(transport.requests.values())
        jwks = httpx.get(server.url + "/.well-known/jwks.json", timeout=REQUEST_TIMEOUT).json()
        public = {
            key["kid"]: Ed25519PublicKey.from_public_bytes(_b64decode(key["x"]))
            for key in jwks["keys"]
        }
        raw_parts = []
        for token in tokens:
            header, payload, signature = token.split(".")
            kid = json.loads(_b64decode(header))["kid"]
            raw_parts.append((public[kid], _b64decode(signature), f"{header}.{payload}".encode()))
        # Both paths must accept every code before they are timed.
        for key, signature, signing_input in raw_parts:
            key.verify(signature, signing_input)
        tiers = Counter(desk.verify_offline(token).tier_level for token in tokens)

        def raw_check(part: tuple[Ed25519PublicKey, bytes, bytes]) -> None:
            part[0].verify(part[1], part[2])

        raw_runs, sdk_runs = [], []
        for _ in range(rounds):
            raw_runs.append(rate("raw", raw_parts, raw_check, args.cpu_seconds / rounds))
            sdk_runs.append(rate("sdk", tokens, desk.verify_offline, args.cpu_seconds / rounds))
        raw = combine("cryptography Ed25519PublicKey.verify", raw_runs)
        sdk = combine("PartnerClient.verify_offline", sdk_runs)
        during = sum(transport.requests.values()) - warm
        ratio = sdk.per_second / raw.per_second
        figures.offline = {
            "raw": asdict(raw),
            "sdk": asdict(sdk),
            "tiers_seen": {str(k): v for k, v in sorted(tiers.items())},
            "first_result_issuer": first.issuer,
            "sdk_requests_before_timing": dict(transport.requests),
            "sdk_requests_while_timed": during,
            "sdk_overhead_us_per_code": sdk.mean_us - raw.mean_us,
        }
        figures.ratios["offline_over_raw"] = ratio
        figures.targets_met["offline_over_raw"] = ratio >= OFFLINE_TARGET
        log(f"offline: raw {raw.per_second:,.0f}/s, SDK {sdk.per_second:,.0f}/s, ratio {ratio:.2f}")
        if ratio < OFFLINE_TARGET or args.profile:
            log("profiling verify_offline …")
            sample = (tokens * (3000 // len(tokens) + 1))[:3000]
            report, parts = profile_text(
                lambda: [desk.verify_offline(token) for token in sample],
                calls=len(sample),
                parts=OFFLINE_PARTS,
            )
            figures.profiles["verify_offline"] = report
            figures.offline["profile_ms_per_call"] = parts


def measure_qr(pool: CodePool, args: argparse.Namespace, figures: Figures) -> None:
    tokens = pool.ensure(0)[:20]
    versions = Counter(qr.qr_version(token) for token in tokens)
    png = rate("credit_codes.qr.render_png", tokens, qr.render_png, args.cpu_seconds)
    svg = rate("credit_codes.qr.render_svg", tokens, qr.render_svg, args.cpu_seconds)
    figures.qr = {
        "render_png": asdict(png),
        "render_svg": asdict(svg),
        "qr_versions": {str(k): v for k, v in sorted(versions.items())},
        "qr_versions_reported_by_api": {str(k): v for k, v in sorted(pool.qr_versions.items())},
        "token_length": sorted({len(token) for token in tokens}),
        "png_bytes": len(qr.render_png(tokens[0])),
        "svg_bytes": len(qr.render_svg(tokens[0]).encode()),
        "error_correction": "M",
        "box_size": 6,
    }
    log(f"QR: PNG {png.per_second:,.0f}/s, SVG {svg.per_second:,.0f}/s, versions {dict(versions)}")


def profile_endpoint(
    server: LiveServer, tokens: list[str], bearer: str
) -> tuple[str, dict[str, Any]]:
    """Where a verification's time goes inside the app: the same app, in this process, under cProfile."""
    from citycredit.web.app import create_app

    app = create_app(server.settings)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {bearer}"}
    statements: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split())[:110]] += 1

    engine = app.extensions["citycredit"].engine

    failures: Counter[int] = Counter()

    def call(n: int) -> None:
        response = client.post(
            "/api/v1/verifications",
            json={"token": tokens[n % len(tokens)], "scenario": SCENARIO},
            headers=headers,
        )
        if response.status_code != 200:
            failures[response.status_code] += 1

    for n in range(20):
        call(n)
    sa.event.listen(engine, "before_cursor_execute", count)
    call(0)
    sa.event.remove(engine, "before_cursor_execute", count)
    listing = "\n".join(f"  {n} × {sql}" for sql, n in statements.items())
    # One thread, no HTTP, no profiler: what a request costs the app itself (wall clock, and CPU).
    start, cpu = time.perf_counter(), time.process_time()
    for n in range(300):
        call(n)
    verify_ms = (time.perf_counter() - start) / 300 * 1000
    verify_cpu_ms = (time.process_time() - cpu) / 300 * 1000
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(300):
        client.get("/healthz")
    healthz_ms = (time.perf_counter() - start) / 300 * 1000
    healthz_cpu_ms = (time.process_time() - cpu) / 300 * 1000
    floor_ms = floor_cpu_ms = float("nan")
    if app.view_functions.get("verification_floor") is not None:
        ids = floor_ids(server)
        start, cpu = time.perf_counter(), time.process_time()
        for n in range(300):
            client.post(FLOOR_PATH, json={"token": tokens[n % len(tokens)], **ids})
        floor_ms = (time.perf_counter() - start) / 300 * 1000
        floor_cpu_ms = (time.process_time() - cpu) / 300 * 1000
    text, parts = profile_text(
        lambda: [call(n) for n in range(500)], calls=500, parts=ENDPOINT_PARTS, limit=30
    )
    engine.dispose()
    numbers = {
        "verify_ms": round(verify_ms, 3),
        "verify_cpu_ms": round(verify_cpu_ms, 3),
        "healthz_ms": round(healthz_ms, 3),
        "healthz_cpu_ms": round(healthz_cpu_ms, 3),
        "floor_ms": round(floor_ms, 3),
        "floor_cpu_ms": round(floor_cpu_ms, 3),
        "profile_ms_per_call": parts,
        "sql_statements_per_verification": sum(statements.values()),
        "sql_statements": dict(statements),
    }
    report = (
        f"SQL statements in one verification ({sum(statements.values())}, plus COMMIT):\n"
        f"{listing}\n\nIn process, one thread, no profiler: {verify_ms:.2f} ms per verification "
        f"({verify_cpu_ms:.2f} ms CPU), {floor_ms:.2f} ms per floor ({floor_cpu_ms:.2f} ms CPU), "
        f"{healthz_ms:.3f} ms per /healthz ({healthz_cpu_ms:.3f} ms CPU)\n"
        f"\n500 verifications through Flask's test client (no gunicorn, no HTTP); "
        f"answers other than 200: {dict(failures) or 'none'}\n" + text
    )
    return report, numbers


# --- versions and the report --------------------------------------------------------------------


def postgresql_version() -> str:
    reason = postgresql_unavailable()
    if reason is not None:
        return f"unavailable ({reason})"
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as connection:
            return str(connection.execute(sa.text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\w*: ")


def git_state() -> dict[str, Any]:
    """The commit measured, read-only (no index refresh: others commit in this checkout meanwhile)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except OSError:
        return {}
    return {"commit": head, "modified_files": sorted(line[3:] for line in changed if line.strip())}


def server_log_summary(path: Path) -> dict[str, Any]:
    lines = path.read_text(errors="replace").splitlines()
    # The last line of each traceback names the exception; chained ones count once each.
    exceptions = Counter(line[:160] for line in lines if EXCEPTION_LINE.match(line))
    return {
        "lines": len(lines),
        "tracebacks": sum(1 for line in lines if line.startswith("Traceback")),
        "error_lines": sum(1 for line in lines if "[ERROR]" in line),
        "worker_timeouts": sum(1 for line in lines if "WORKER TIMEOUT" in line),
        "exceptions": dict(exceptions.most_common(10)),
        "tail": lines[-10:],
    }


def _verdict(value: float, target: float) -> str:
    return f"{value:.2f}  (target ≥ {target:.2f}: {'met' if value >= target else 'MISSED'})"


def http_lines(figures: Figures) -> list[str]:
    if figures.settings.get("load") == "wrk":
        return wrk_lines(figures)
    lines = [
        "1. HTTP under gunicorn"
        f"{'requests':>22}{'ok':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}",
    ]
    for key in ("healthz", "verify"):
        r = figures.http[key]
        label = "GET /healthz" if key == "healthz" else "POST /api/v1/verifications"
        lines.append(
            f"   {label:<29}{r['requests']:>9}{r['ok']:>9}{sum(r['errors'].values()):>8}"
            f"{r['throughput']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
        )
    lines.append(
        "   verify / healthz throughput  "
        + _verdict(figures.ratios["verify_over_healthz"], HTTP_TARGET)
    )
    for key in ("healthz", "verify"):
        r = figures.http[key]
        cpu = r["cpu_seconds"]
        lines.append(
            f"   CPU s during {key:<8} bench process {cpu['bench_process']:.1f}, gunicorn "
            f"{cpu['gunicorn']:.1f}, PostgreSQL {cpu['postgresql']:.1f}, irq "
            f"{cpu['interrupts']:.1f}, other {cpu['other_processes']:.1f}, steal {cpu['steal']:.1f}; "
            f"machine {r['machine_busy_percent']:.0f}% busy"
        )
        per = r["cpu_ms_per_request"]
        lines.append(
            f"   CPU ms per {key:<11} bench process {per['bench_process']:.2f}, gunicorn "
            f"{per['gunicorn']:.2f}, PostgreSQL {per['postgresql']:.2f}"
        )
        if r["errors"]:
            lines.append(f"   errors during {key}: {r['errors']}")
    return lines


def wrk_lines(figures: Figures) -> list[str]:
    labels = {
        "healthz": "GET /healthz",
        "floor": "POST " + FLOOR_PATH,
        "verify": "POST /api/v1/verifications",
    }
    lines = [
        f"1. HTTP under gunicorn, wrk {figures.settings['clients']} connections"
        f"{'requests':>10}{'non-2xx':>9}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}   CPU ms per request: wrk / gunicorn / PostgreSQL",
    ]
    for key, label in labels.items():
        for r in figures.http[key]:
            per = r["cpu_ms_per_request"]
            lines.append(
                f"   {label + ' (' + r['name'].rsplit('-', 1)[1] + ')':<49}{r['requests']:>10}"
                f"{sum(r['errors'].values()):>9}{r['throughput']:>9.1f}{r['p50_ms']:>8.1f}"
                f"{r['p99_ms']:>8.1f}{r['max_ms']:>8.1f}   {per['load_generator']:.3f} / "
                f"{per['gunicorn']:.3f} / {per['postgresql']:.3f}"
            )
    ratios = figures.ratios
    lines += [
        "   verify / floor throughput     "
        + _verdict(ratios["verify_over_floor"], FLOOR_TARGET)
        + f"  by round {figures.http['verify_over_floor_by_round']}",
        f"   verify p99 (worst round)      {ratios['verify_p99_ms']:.1f} ms  (target ≤ "
        f"{P99_TARGET_MS:g} ms: {'met' if ratios['verify_p99_ms'] <= P99_TARGET_MS else 'MISSED'})",
        "   verify / healthz throughput   " + _verdict(ratios["verify_over_healthz"], HTTP_TARGET),
        f"   floor / healthz throughput    {ratios['floor_over_healthz']:.2f}",
        f"   verification rows written: {figures.http['rows_written']} (every 200 recorded: "
        f"{figures.targets_met['every_200_recorded']})",
    ]
    return lines


def render_table(figures: Figures) -> str:
    lines = [
        "Credit-code verification benchmark",
        f"  command      {figures.command}",
        f"  started      {figures.started_at}",
        f"  machine      {figures.cpu_count} CPUs, {platform.platform()}, Python {figures.python}",
        f"  PostgreSQL   {figures.postgresql}",
        f"  SQLite       {figures.sqlite}",
        f"  commit       {figures.git.get('commit', '?')}"
        + (
            f" with {len(figures.git['modified_files'])} files modified: "
            + ", ".join(figures.git["modified_files"])
            if figures.git.get("modified_files")
            else ""
        ),
        f"  background   {figures.background['busy_percent']:.0f}% busy before start, "
        f"load average {figures.background['loadavg']}",
        f"  backend      {figures.backend}",
        f"  gunicorn     {figures.gunicorn_command}",
        f"  load         {figures.settings['clients']} "
        + ("wrk connections" if figures.settings.get("load") == "wrk" else "client threads")
        + " (keep-alive), "
        + (
            f"{figures.settings['requests']} requests per phase"
            if figures.settings["requests"]
            else f"{figures.settings['duration']:g} s per phase"
        )
        + f", after {figures.settings['warmup']:g} s warm-up per endpoint",
        f"  code pool    {figures.pool['size']} codes, issued {figures.pool['issues']}× "
        f"({figures.pool['ms_per_issue']:.1f} ms per code through POST /api/v1/credit-codes, "
        "one client)",
        "",
    ]
    lines += http_lines(figures)
    raw, sdk = figures.offline["raw"], figures.offline["sdk"]
    lines += [
        "",
        f"2. Offline verification (in process){'per s':>21}{'µs each':>10}",
        f"   {raw['name']:<44}{raw['per_second']:>12,.0f}{raw['mean_us']:>10.1f}",
        f"   {sdk['name']:<44}{sdk['per_second']:>12,.0f}{sdk['mean_us']:>10.1f}",
        "   offline / raw                 "
        + _verdict(figures.ratios["offline_over_raw"], OFFLINE_TARGET),
        f"   SDK requests while timed: {figures.offline['sdk_requests_while_timed']} "
        f"(JWKS and configuration fetched once before: {figures.offline['sdk_requests_before_timing']})",
        "",
        f"3. QR rendering (in process){'per s':>29}{'ms each':>10}",
    ]
    for key in ("render_png", "render_svg"):
        r = figures.qr[key]
        lines.append(f"   {r['name']:<44}{r['per_second']:>12,.1f}{r['mean_us'] / 1000:>10.2f}")
    lines.append(
        f"   QR version {', '.join(figures.qr['qr_versions'])} at level M (API reported "
        f"{figures.qr['qr_versions_reported_by_api']}); tokens {figures.qr['token_length']} chars; "
        f"PNG {figures.qr['png_bytes']} B, SVG {figures.qr['svg_bytes']} B"
    )
    log_summary = figures.server_log
    lines += [
        "",
        f"Server log ({log_summary.get('saved_as', '-')}): {log_summary['lines']} lines, "
        f"{log_summary['tracebacks']} tracebacks, {log_summary['error_lines']} [ERROR] lines, "
        f"{log_summary['worker_timeouts']} worker timeouts",
    ]
    lines += [f"   {n} × {text}" for text, n in log_summary["exceptions"].items()]
    if "in_process" in figures.http:
        inside = figures.http["in_process"]
        lines.append(
            f"In process (Flask test client, one thread): {inside['verify_ms']:.2f} ms per "
            f"verification ({inside['verify_cpu_ms']:.2f} ms CPU; "
            f"{inside['sql_statements_per_verification']} SQL statements + COMMIT), "
            f"{inside['healthz_ms']:.3f} ms per /healthz ({inside['healthz_cpu_ms']:.3f} ms CPU)"
        )
        lines.append("  where a verification's time goes (cProfile, ms per call, parts overlap):")
        lines += [f"   {ms:8.3f}  {label}" for label, ms in inside["profile_ms_per_call"].items()]
    if "profile_ms_per_call" in figures.offline:
        lines.append("Where verify_offline's time goes (cProfile, ms per call, parts overlap):")
        lines += [
            f"   {ms:8.3f}  {label}" for label, ms in figures.offline["profile_ms_per_call"].items()
        ]
    lines += [f"Note: {note}" for note in figures.notes]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = "sqlite" if args.sqlite else "postgresql"
    if backend == "postgresql" and (reason := postgresql_unavailable()) is not None:
        print(f"PostgreSQL is needed (or pass --sqlite): {reason}", file=sys.stderr)
        return 2
    figures = Figures(
        command=shlex.join([sys.executable, *sys.argv] if argv is None else ["verify.py", *argv]),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        backend=backend,
        cpu_count=os.cpu_count() or 0,
        python=platform.python_version(),
        postgresql=postgresql_version(),
        sqlite=sqlite3.sqlite_version,
        gunicorn_command="",
        settings={
            "workers": args.workers,
            "threads": args.threads,
            "clients": args.clients,
            "duration": args.duration,
            "requests": args.requests,
            "warmup": args.warmup,
            "cpu_seconds": args.cpu_seconds,
            "scenario": SCENARIO,
            "load": args.load,
            "rounds": args.rounds,
        },
    )
    figures.git = git_state()
    log("measuring the machine's background load (2 s) …")
    figures.background = background_load()
    if figures.background["busy_percent"] > 10:
        figures.notes.append(
            f"the machine was {figures.background['busy_percent']:.0f}% busy before the benchmark "
            "started (other work shares the CPUs): every figure below is pessimistic"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"verify-{backend}-w{args.workers}t{args.threads}-c{args.clients}"
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            with live_server(args, tmp) as server:
                figures.gunicorn_command = shlex.join(["python", *server.command[1:]]).replace(
                    server.url.removeprefix("http://"), "127.0.0.1:<free port>"
                )
                run_everything(server, args, figures, tmp)
        finally:
            # The server has stopped: keep its whole log beside the figures, even after a failure.
            server_log = tmp / "server.log"
            if server_log.exists():
                shutil.copyfile(server_log, args.out / f"{stem}-server.log")
                figures.server_log = server_log_summary(server_log)
                figures.server_log["saved_as"] = f"{stem}-server.log"
    for name, text in figures.profiles.items():
        (args.out / f"{stem}-profile-{name}.txt").write_text(text)
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps(asdict(figures), indent=2, ensure_ascii=False) + "\n")
    print(render_table(figures))
    print(f"\nJSON: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    for name in figures.profiles:
        print(f"Profile ({name}): {args.out / f'{stem}-profile-{name}.txt'}")
    print()
    print_ratios(ratios_of(figures))
    return 0


def ratios_of(figures: Figures) -> list[Ratio]:
    """The ratios the run is held to, printed last (``bench/ratios.py``)."""
    wanted: list[tuple[str, str, Op, float]] = [
        ("verify_over_floor", "verify_over_floor", ">=", FLOOR_TARGET),
        ("verify_p99_ms", "verify_p99_ms", "<=", P99_TARGET_MS),
        ("verify_over_healthz", "verify_over_healthz", ">=", HTTP_TARGET),
        ("sdk_verify_over_raw_ed25519", "offline_over_raw", ">=", OFFLINE_TARGET),
    ]
    return [
        Ratio(name, float(figures.ratios[key]), op, target)
        for name, key, op, target in wanted
        if key in figures.ratios
    ]


def run_everything(
    server: LiveServer, args: argparse.Namespace, figures: Figures, tmp: Path
) -> None:
    creds = server.credentials
    numbers = [creds["good"], creds["excellent"]]  # tiers 3 and 4: both qualify for the library
    pool = CodePool(server.url, creds["app"], numbers, args.pool)
    if args.load == "wrk":
        run_http_wrk(server, args, figures, pool, tmp)
        measure_offline(server, pool, args, figures)
        measure_qr(pool, args, figures)
        if args.profile:
            log("profiling the verify endpoint in process …")
            report, in_process = profile_endpoint(
                server, pool.ensure(30), access_token(server.url, creds["venue"])
            )
            figures.profiles["verify_endpoint"] = report
            figures.http["in_process"] = in_process
        figures.pool = {
            "size": args.pool,
            "issues": pool.issues,
            "issue_seconds": round(pool.issue_seconds, 2),
            "ms_per_issue": round(1000 * pool.issue_seconds / max(1, pool.issues * args.pool), 2),
            "citizens": ["good (tier 3)", "excellent (tier 4)"],
        }
        return
    bearer = access_token(server.url, creds["venue"])  # once: valid 300 s, longer than the run
    token_at = time.monotonic()
    auth = {"Authorization": f"Bearer {bearer}"}
    duration = args.duration
    phase_cap = MAX_PHASE_SECONDS if args.requests else duration

    if args.warmup > 0:
        log(f"warm-up: {args.warmup:g} s per endpoint …")
        run_load(
            "warmup-healthz",
            server,
            healthz_send,
            healthz_check,
            clients=args.clients,
            duration=args.warmup,
            requests=0,
        )
        tokens = pool.ensure(args.warmup)
        run_load(
            "warmup-verify",
            server,
            verify_sender(tokens),
            verify_check,
            clients=args.clients,
            duration=args.warmup,
            requests=0,
            headers=auth,
        )

    log("measuring GET /healthz …")
    healthz = run_load(
        "healthz",
        server,
        healthz_send,
        healthz_check,
        clients=args.clients,
        duration=duration,
        requests=args.requests,
    )
    log(f"healthz: {healthz.throughput:,.1f} req/s, p50 {healthz.p50_ms:.1f} ms")
    tokens = pool.ensure(phase_cap)  # fresh enough to outlive the whole phase
    if time.monotonic() - token_at > 300 - phase_cap - 30:
        bearer = access_token(server.url, creds["venue"])
        auth = {"Authorization": f"Bearer {bearer}"}
        figures.notes.append("the venue's access token was renewed before the verify phase")
    log("measuring POST /api/v1/verifications …")
    verify = run_load(
        "verify",
        server,
        verify_sender(tokens),
        verify_check,
        clients=args.clients,
        duration=duration,
        requests=args.requests,
        headers=auth,
    )
    log(
        f"verify: {verify.throughput:,.1f} req/s, p50 {verify.p50_ms:.1f} ms, errors {verify.errors}"
    )
    figures.http = {"healthz": asdict(healthz), "verify": asdict(verify)}
    cpus = os.cpu_count() or 1
    for phase in (healthz, verify):
        other = phase.cpu_seconds["other_processes"]
        if other > 0.1 * phase.seconds * cpus:
            figures.notes.append(
                f"other processes used {other:.1f} CPU-s ({100 * other / (phase.seconds * cpus):.0f}% "
                f"of the machine) during the {phase.name} phase: its figures are pessimistic"
            )
    ratio = verify.throughput / healthz.throughput if healthz.throughput else 0.0
    figures.ratios["verify_over_healthz"] = ratio
    figures.targets_met["verify_over_healthz"] = ratio >= HTTP_TARGET
    figures.targets_met["all_verifications_ok"] = not verify.errors and verify.ok == verify.requests
    figures.targets_met["all_healthz_ok"] = not healthz.errors and healthz.ok == healthz.requests
    if verify.errors:
        figures.notes.append(f"verification errors under load: {verify.errors}")

    measure_offline(server, pool, args, figures)
    measure_qr(pool, args, figures)
    if ratio < HTTP_TARGET or args.profile:
        log("profiling the verify endpoint in process …")
        bearer_now = (
            bearer
            if time.monotonic() - token_at < 240
            else access_token(server.url, creds["venue"])
        )
        report, in_process = profile_endpoint(server, pool.ensure(30), bearer_now)
        figures.profiles["verify_endpoint"] = report
        figures.http["in_process"] = in_process
    figures.pool = {
        "size": args.pool,
        "issues": pool.issues,
        "issue_seconds": round(pool.issue_seconds, 2),
        "ms_per_issue": round(1000 * pool.issue_seconds / max(1, pool.issues * args.pool), 2),
        "citizens": ["good (tier 3)", "excellent (tier 4)"],
    }


if __name__ == "__main__":
    sys.exit(main())
