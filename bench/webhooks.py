"""Benchmark webhook delivery: deliveries per second through ``push.delivery.deliver_due`` against a
plain loop of httpx POSTs of the same bodies, with the same client settings, to the same receiver.

The receiver is a fast threaded HTTP/1.1 server (keep-alive) on 127.0.0.1, in a process of its own
(so it takes no share of this process's interpreter lock), answering 200 at once. The outbox lives
in a fresh PostgreSQL schema (``bench_webhooks``, dropped at the end); each round stores ``--events``
``tier.changed`` events (one per pseudonym, as a recompute changing a tenth of a city's tiers makes),
then measures the plain loop and the worker on them, interleaved; the best round of each counts.

Target (issue 15): worker / plain ≥ 0.5.

    .venv/bin/python bench/webhooks.py                     # 3 rounds of 3000 deliveries
    .venv/bin/python bench/webhooks.py --events 10000 --rounds 5
    .venv/bin/python bench/webhooks.py --subscriptions 4   # four receivers' subscriptions in parallel

The output ends with one ``RATIO <name> <value> target <op> <target> <met|MISSED>`` line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Benchmarks make throwaway cities with throwaway secrets, as a developer machine does.
os.environ.setdefault("CITYCREDIT_ENV", "development")

import httpx
from ratios import Ratio, exit_code, print_ratios
from schemas import drop_schema, fresh_schema
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from citycredit.core.clients import register_client
from citycredit.core.config import Settings
from citycredit.core.db import make_session_factory, unit_of_work
from push import delivery
from push.models import Delivery, Event
from push.outbox import Outgoing, emit
from push.subscriptions import create_subscription
from scenarios.models import Operator

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET = 0.5
KEY_SECRET = bytes.fromhex("22" * 32)


# --- the receiver (run as `bench/webhooks.py --receive PORT`) ---------------------------------------


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer: headers and body apart would wait on the client's delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        Answer.received += 1
        self._answer(b'{"ok":true}')

    def do_GET(self) -> None:
        self._answer(str(Answer.received).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def receive(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Answer)
    server.daemon_threads = True
    server.serve_forever()


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--receive", str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the outbox ---------------------------------------------------------------------------------------


@dataclass
class Outbox:
    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings
    operator_ids: list[int]


def make_outbox(engine: Engine, database_url: str, receiver: str, subscriptions: int) -> Outbox:
    settings = Settings(
        database_url=database_url,
        id_hash_key=bytes(32),
        key_secret=KEY_SECRET,
        token_key=bytes(32),
        # The receiver is on loopback: production refuses to post there (no SSRF into the city).
        environment="development",
    )
    sessions = make_session_factory(engine)
    operator_ids = []
    with unit_of_work(sessions) as session:
        for n in range(subscriptions):
            operator = Operator(code=f"op{n}", name_zh=f"运营方{n}", name_en=f"Operator {n}")
            session.add(operator)
            session.flush()
            client = register_client(
                session,
                name=f"op{n} system",
                kind="operator",
                scopes=["webhooks:manage"],
                operator_id=operator.id,
                key_secret=KEY_SECRET,
            ).client
            create_subscription(
                session,
                client,
                url=f"{receiver}/hooks/{n}",
                event_types=["tier.changed"],
                key_secret=KEY_SECRET,
                actor="bench",
                allow_http=True,
            )
            operator_ids.append(operator.id)
    return Outbox(engine, sessions, settings, operator_ids)


def store_events(outbox: Outbox, count: int, round_no: int) -> list[tuple[str, str, bytes]]:
    """``count`` tier.changed events, one per pseudonym, spread over the operators; returns each
    delivery's (url path, webhook-id, body) for the plain loop."""
    operators = outbox.operator_ids
    with unit_of_work(outbox.sessions) as session:
        emit(
            session,
            [
                Outgoing(
                    "tier.changed",
                    f"lk_r{round_no}_{n:07d}",
                    {
                        "pseudonym": f"lk_r{round_no}_{n:07d}",
                        "common_level": 1 + n % 5,
                        "valid_until": "2026-12-14T00:00:00+00:00",
                    },
                    operator_id=operators[n % len(operators)],
                )
                for n in range(count)
            ],
        )
        events = session.scalars(select(Event).order_by(Event.id.desc()).limit(count)).all()
        return [
            (f"/hooks/{operators.index(e.operator_id or 0)}", e.public_id, delivery.event_body(e))
            for e in reversed(events)
        ]


# --- the two measurements -------------------------------------------------------------------------------


def plain_loop(receiver: str, bodies: list[tuple[str, str, bytes]]) -> float:
    """Seconds for a loop of POSTs of the same bodies with the worker's client settings."""
    with delivery.new_client() as client:
        started = time.perf_counter()
        for path, webhook_id, body in bodies:
            response = client.post(
                receiver + path,
                content=body,
                headers={"Content-Type": "application/json", "webhook-id": webhook_id},
            )
            if response.status_code != 200:
                raise SystemExit(f"the receiver answered {response.status_code}")
        return time.perf_counter() - started


def worker(outbox: Outbox, expected: int) -> float:
    """Seconds for deliver_due rounds to deliver everything pending."""
    with delivery.new_client() as client:
        started = time.perf_counter()
        delivered = 0
        while True:
            done = delivery.deliver_due(outbox.sessions, outbox.settings, client=client)
            delivered += done.delivered
            if not done.claimed:
                break
        seconds = time.perf_counter() - started
    with unit_of_work(outbox.sessions) as session:
        pending = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status != "delivered")
        )
    if delivered != expected or pending:
        raise SystemExit(
            f"the worker delivered {delivered} of {expected} ({pending} not delivered)"
        )
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--schema", default="bench_webhooks")
    parser.add_argument("--events", type=int, default=3000, help="deliveries per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscriptions", type=int, default=1)
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receive:
        receive(args.receive)
        return 0
    receiver, url = start_receiver()
    engine = fresh_schema(args.database_url, args.schema)
    try:
        outbox = make_outbox(engine, args.database_url, url, args.subscriptions)
        plain, worked = [], []
        for round_no in range(args.rounds):
            bodies = store_events(outbox, args.events, round_no)
            plain.append(args.events / plain_loop(url, bodies))
            worked.append(args.events / worker(outbox, args.events))
            print(
                f"round {round_no + 1}: plain POSTs {plain[-1]:,.0f}/s, "
                f"deliver_due {worked[-1]:,.0f}/s",
                flush=True,
            )
        received = int(httpx.get(url).text)
    finally:
        engine.dispose()
        drop_schema(args.database_url, args.schema)
        receiver.terminate()
        receiver.wait(timeout=10)
    expected = 2 * args.events * args.rounds
    if received != expected:
        raise SystemExit(f"the receiver counted {received} requests, not {expected}")
    print(
        f"{args.events:,} deliveries a round, {args.subscriptions} subscription(s), "
        f"{args.rounds} rounds; best: plain {max(plain):,.0f}/s, deliver_due {max(worked):,.0f}/s "
        f"(schema {args.schema} dropped)"
    )
    ratios = [Ratio("webhooks_per_plain_post", max(worked) / max(plain), ">=", TARGET)]
    print_ratios(ratios)
    return exit_code(ratios)


if __name__ == "__main__":
    sys.exit(main())
