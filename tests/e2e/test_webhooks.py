"""Webhook delivery to real receiving servers on loopback (issue 15's acceptance).

The receiver is a real HTTP server (threads, HTTP/1.1 keep-alive) that records what arrives and can
be down (its port closed), answer 500, or be slow. Signatures are checked with the independent
``standardwebhooks`` library, as a partner would. Time is driven forward through ``now`` where days
must pass; worker processes are real ``citycredit webhooks worker`` commands.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from citycredit.core.audit import AuditEvent
from citycredit.core.clients import ApiClient, register_client
from citycredit.core.config import Settings, load_settings
from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.jobs import JobContext, registered_jobs, run_job
from points_engine import operations
from points_engine.models import Citizen
from push import delivery, links
from push.models import EVENT_TYPES, Attempt, Delivery, Event, Link, Subscription
from push.outbox import Outgoing, emit
from push.subscriptions import create_subscription, rotate_secret, set_status
from scenarios.models import Operator
from tests import factories
from tests.conftest import BACKENDS, TODAY, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import SECRETS, free_port
from tests.rule_cases import ITEMISED

# Ahead of the real clock: a resend queues at the real time, due at once here.
T0 = dt.datetime(2030, 1, 7, 8, 0, tzinfo=dt.UTC)


# --- a real receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    started: float
    ended: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def document(self) -> dict[str, object]:
        found: dict[str, object] = json.loads(self.body)
        return found


@dataclass
class Receiver:
    """A threaded HTTP server on 127.0.0.1 recording every POST (also the failed ones)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    # The same webhook-id arriving while it is already being received: a concurrent double send.
    overlaps: int = 0
    _active: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/citycredit"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer: headers and body apart would wait on the client's delayed ACK.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: the port refuses connections until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        body = request.rfile.read(int(request.headers["Content-Length"]))
        webhook_id = request.headers.get("webhook-id", "")
        with self._lock:
            self.overlaps += self._active[webhook_id] > 0
            self._active[webhook_id] += 1
        time.sleep(self.delay)
        status = self.status
        with self._lock:
            self._active[webhook_id] -= 1
            self.received.append(
                Received(
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                    started,
                    time.monotonic(),
                )
            )
        answer = b'{"ok":true}' if status < 300 else b'{"error":"boom"}'
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)

    def ids(self) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.start()
    yield found
    found.stop()


# --- a small city with one operator's subscription --------------------------------------------------


@dataclass
class Town:
    db: ScratchDatabase
    settings: Settings
    sessions: sessionmaker[Session]
    env: dict[str, str]
    operator_id: int
    subscription_id: int
    secret: str


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    _require(request.param)
    kind: str = request.param
    return kind


def _town(kind: str, tmp_path: Path, url: str) -> Town:
    db = ScratchDatabase(kind, tmp_path)
    env = {
        **os.environ,
        **SECRETS,
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    settings = load_settings(env=env)
    sessions = make_session_factory(db.engine)
    with unit_of_work(sessions) as session:
        factories.source(session)
        factories.published(session, ITEMISED)
        operator = Operator(code="library", name_zh="图书馆", name_en="Library")
        session.add(operator)
        session.flush()
        client = register_client(
            session,
            name="library system",
            kind="operator",
            scopes=["links:read", "webhooks:manage"],
            operator_id=operator.id,
            key_secret=settings.key_secret,
        ).client
        subscription, secret = create_subscription(
            session,
            client,
            url=url,
            event_types=EVENT_TYPES,
            key_secret=settings.key_secret,
            actor="test",
            allow_http=True,
        )
    return Town(db, settings, sessions, env, operator.id, subscription.id, secret)


@pytest.fixture
def town(backend: str, tmp_path: Path, receiver: Receiver) -> Iterator[Town]:
    made = _town(backend, tmp_path, receiver.url)
    yield made
    made.db.drop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with delivery.new_client() as made:
        yield made


def level_events(
    town: Town, keys: list[str], per_key: int, at: dt.datetime | None = None
) -> list[str]:
    """``per_key`` tier.changed events for each pseudonym, interleaved; their webhook-ids."""
    events = [
        Outgoing(
            "tier.changed",
            key,
            {"pseudonym": key, "common_level": 1 + n % 5, "valid_until": "2026-12-31T00:00:00"},
            operator_id=town.operator_id,
        )
        for n in range(per_key)
        for key in keys
    ]
    with unit_of_work(town.sessions) as session:
        emit(session, events, now=at)
        return list(session.scalars(select(Event.public_id).order_by(Event.id)))[-len(events) :]


def deliver_all(town: Town, client: httpx.Client, now: dt.datetime) -> delivery.Round:
    """Rounds at ``now`` until nothing more is due."""
    total = delivery.Round()
    for _ in range(100):
        done = delivery.deliver_due(town.sessions, town.settings, now=now, client=client)
        if not done.claimed:
            return total
        for name in ("sent", "delivered", "failed", "dead", "disabled"):
            setattr(total, name, getattr(total, name) + getattr(done, name))
    raise AssertionError("deliveries kept coming")


def subscription(session: Session, town: Town) -> Subscription:
    found = session.get(Subscription, town.subscription_id)
    assert found is not None
    return found


def statuses(town: Town) -> Counter[str]:
    with unit_of_work(town.sessions) as session:
        return Counter(session.scalars(select(Delivery.status)))


def verified(received: Received, secret: str) -> dict[str, object]:
    """What the independent library makes of a request (raises when the signature is wrong)."""
    document: dict[str, object] = Webhook(secret).verify(received.body, received.headers)
    return document


def in_order_per_key(received: list[Received]) -> dict[str, list[int]]:
    """Each pseudonym's levels in the order they first arrived (duplicates dropped, as a receiver
    deduplicating by webhook-id would)."""
    seen: set[str] = set()
    levels: dict[str, list[int]] = {}
    for r in received:
        if r.webhook_id in seen:
            continue
        seen.add(r.webhook_id)
        data = r.document["data"]
        assert isinstance(data, dict)
        levels.setdefault(data["pseudonym"], []).append(data["common_level"])
    return levels


# --- the tests ------------------------------------------------------------------------------------


def test_each_change_arrives_signed_for_the_standard_library(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    with unit_of_work(town.sessions) as session:
        person = factories.citizen(session)
        operations.recompute_all(session, as_of=TODAY)
        library = session.scalars(select(ApiClient).where(ApiClient.operator_id.is_not(None))).one()
        link = links.create_link(
            session,
            id_hash_key=town.settings.id_hash_key,
            citizen=person,
            client=library,
            actor="t",
        )
        pseudonym = link.pseudonym
        factories.record(session, person, "AWARD", "2026-06-01")
        operations.drain_dirty(session, as_of=TODAY)
        emit(session, [Outgoing("scenario.published", "library-deposit-free", {"code": "x"})])
        # Rotated: both secrets sign during the overlap, and either verifies.
        old_secret = town.secret
        new_secret = rotate_secret(
            session,
            subscription(session, town),
            key_secret=town.settings.key_secret,
            actor="test",
        )
        sent_ids = list(session.scalars(select(Event.public_id).order_by(Event.id)))

    done = deliver_all(town, client, dt.datetime.now(dt.UTC))

    assert done.delivered == 2 and statuses(town) == {"delivered": 2}
    assert [r.webhook_id for r in receiver.received] == sent_ids
    tier, scenario = receiver.received
    for secret in (old_secret, new_secret):
        data = verified(tier, secret)["data"]
        assert isinstance(data, dict) and set(data) == {"pseudonym", "common_level", "valid_until"}
        assert (data["pseudonym"], data["common_level"]) == (pseudonym, 4)
        assert verified(scenario, secret)["type"] == "scenario.published"
    assert len(tier.headers["webhook-signature"].split(" ")) == 2
    assert tier.headers["content-type"] == "application/json"
    assert tier.headers["user-agent"].startswith("CityCredit-Webhooks/")
    # The body is the event as stored: its type, its own time, its data; nothing personal.
    assert tier.document["type"] == "tier.changed"
    assert str(tier.document["timestamp"]).endswith("Z")
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 43 + "=").verify(tier.body, tier.headers)
    with unit_of_work(town.sessions) as session:
        codes = session.scalars(select(Attempt.status_code)).all()
    assert codes == [200, 200]


def test_a_receiver_down_for_hours_gets_every_event_in_order_per_pseudonym(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.stop()
    sent = level_events(town, ["lk_anna", "lk_bo", "lk_chen"], per_key=4)
    now = T0
    for _ in range(12):  # six hours down, a try every half hour as the backoff allows
        deliver_all(town, client, now)
        now += dt.timedelta(minutes=30)
    assert statuses(town) == {"pending": 12} and receiver.received == []
    with unit_of_work(town.sessions) as session:
        failed = session.scalar(select(func.count()).select_from(Attempt))
        sub = subscription(session, town)
        assert sub.failing_since == T0 and sub.status == "active"
    assert failed and failed >= 12

    receiver.start()
    for _ in range(20):  # the backoff's 4-hour cap: everything is due again within it
        now += dt.timedelta(hours=1)
        deliver_all(town, client, now)
    assert statuses(town) == {"delivered": 12}
    assert sorted(receiver.ids()) == sorted(sent) and len(receiver.received) == 12
    assert in_order_per_key(receiver.received) == {
        key: [1, 2, 3, 4] for key in ("lk_anna", "lk_bo", "lk_chen")
    }
    for r in receiver.received:
        verified(r, town.secret)
    with unit_of_work(town.sessions) as session:
        sub = subscription(session, town)
        assert sub.failing_since is None and sub.last_success_at is not None


def test_a_later_event_waits_for_an_earlier_one_of_the_same_pseudonym(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    level_events(town, ["lk_anna", "lk_bo"], per_key=2)
    receiver.status = 500
    deliver_all(town, client, T0)  # the heads fail: anna's 1st, bo's 1st
    receiver.status = 200
    # Nothing of either pseudonym goes before its failed head is due again.
    deliver_all(town, client, T0 + dt.timedelta(seconds=1))
    assert len(receiver.received) == 2
    deliver_all(town, client, T0 + dt.timedelta(minutes=1))
    deliver_all(town, client, T0 + dt.timedelta(minutes=1))
    assert in_order_per_key(receiver.received) == {"lk_anna": [1, 2], "lk_bo": [1, 2]}
    assert statuses(town) == {"delivered": 4}


def test_a_receiver_answering_500_for_three_days_gets_a_dead_letter_then_is_disabled(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.status = 500
    level_events(town, ["lk_anna"], per_key=1)
    now = T0
    while now < T0 + dt.timedelta(days=3):
        deliver_all(town, client, now)
        assert statuses(town) == {"pending": 1}
        now += dt.timedelta(hours=1)
    deliver_all(town, client, now + dt.timedelta(hours=4))
    assert statuses(town) == {"dead": 1}
    with unit_of_work(town.sessions) as session:
        tries = session.scalars(select(Attempt.status_code)).all()
        dead = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "webhook.delivery.dead")
        ).all()
    # Every try reached the real receiver and was answered 500; the backoff spaced them out.
    assert len(tries) == len(receiver.received) and set(tries) == {500}
    assert 20 <= len(tries) <= 50
    assert len(dead) == 1 and dead[0].detail["attempts"] == len(tries)

    # The city goes on: a new event on day 4 fails too; on day 5 the endpoint is disabled.
    level_events(town, ["lk_bo"], per_key=1, at=T0 + dt.timedelta(days=4))
    deliver_all(town, client, T0 + dt.timedelta(days=4))
    with unit_of_work(town.sessions) as session:
        assert subscription(session, town).status == "active"
    deliver_all(town, client, T0 + dt.timedelta(days=5, minutes=1))
    with unit_of_work(town.sessions) as session:
        sub = subscription(session, town)
        assert sub.status == "disabled"
        assert sub.disabled_reason and "failed for 5 days" in sub.disabled_reason
        notice = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "webhook.subscription.disabled")
        ).one()
        assert notice.actor == "webhooks"
    # Disabled: nothing more is sent, new events are not even stored for it.
    tried = len(receiver.received)
    level_events(town, ["lk_chen"], per_key=1, at=T0 + dt.timedelta(days=5, hours=1))
    deliver_all(town, client, T0 + dt.timedelta(days=6))
    assert len(receiver.received) == tried
    # Enabled again (the endpoint fixed) and the dead letter resent: both arrive.
    receiver.status = 200
    with unit_of_work(town.sessions) as session:
        set_status(session, subscription(session, town), "active", actor="t")
        dead_ids = session.scalars(select(Delivery.id).where(Delivery.status == "dead")).all()
        assert delivery.resend(session, dead_ids, actor="t") == 1
    deliver_all(town, client, T0 + dt.timedelta(days=6))
    assert statuses(town) == {"delivered": 2}
    assert in_order_per_key(receiver.received[tried:]) == {"lk_anna": [1], "lk_bo": [1]}


def test_a_revoked_link_never_sends_its_pending_tier_change(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    with unit_of_work(town.sessions) as session:
        person = factories.citizen(session)
        operations.recompute_all(session, as_of=TODAY)
        library = session.scalars(select(ApiClient).where(ApiClient.operator_id.is_not(None))).one()
        link = links.create_link(
            session,
            id_hash_key=town.settings.id_hash_key,
            citizen=person,
            client=library,
            actor="t",
        )
        factories.record(session, person, "AWARD", "2026-06-01")
        operations.drain_dirty(session, as_of=TODAY)
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1
        links.revoke_link(session, link, by="citizen", actor="citizen")
        pseudonym, person_id = link.pseudonym, person.id

    deliver_all(town, client, dt.datetime.now(dt.UTC))
    assert [r.document["type"] for r in receiver.received] == ["link.revoked"]
    assert verified(receiver.received[0], town.secret)["data"]["pseudonym"] == pseudonym  # type: ignore[index]
    assert statuses(town) == {"cancelled": 1, "delivered": 1}
    # Later changes of the citizen's level are nobody's business at the operator any more.
    with unit_of_work(town.sessions) as session:
        again = session.get(Citizen, person_id)
        assert again is not None
        factories.record(session, again, "DEBTOR", "2026-06-02")
        operations.drain_dirty(session, as_of=TODAY)
    deliver_all(town, client, dt.datetime.now(dt.UTC))
    assert [r.document["type"] for r in receiver.received] == ["link.revoked"]


# --- real worker processes ------------------------------------------------------------------------


def start_worker(town: Town, log: Path, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "citycredit.cli.main", "webhooks", "worker", *options]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=town.env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}; the worker said:\n{log.read_text()}"
            )
        time.sleep(0.05)


def stop_worker(worker: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM: the worker finishes its round and exits 0 within a couple of seconds."""
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(timeout=10) == 0, log.read_text()
    assert time.monotonic() - started < 3


def test_kill_9_mid_batch_loses_nothing_and_doubles_only_what_dedup_absorbs(
    town: Town, receiver: Receiver, tmp_path: Path
) -> None:
    keys = [f"lk_{n:02d}" for n in range(8)]
    sent = level_events(town, keys, per_key=3)
    receiver.delay = 0.15
    log = tmp_path / "worker.log"
    first = start_worker(town, log, "--poll", "0.1", "--lease", "3")
    try:
        wait_for(lambda: len(receiver.received) >= 4, 60, "the first deliveries", log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    time.sleep(0.3)  # a request the killed worker had in flight is still answered: count it
    before_kill = len(receiver.received)
    assert before_kill < len(sent), "the kill came too late to be mid-batch"

    second = start_worker(town, log, "--poll", "0.1", "--lease", "3")
    try:
        wait_for(lambda: statuses(town) == {"delivered": len(sent)}, 90, "every delivery", log)
    finally:
        stop_worker(second, log)

    ids = receiver.ids()
    assert sorted(set(ids)) == sorted(sent), "an event was lost"
    # The killed round's sends were never recorded: they went again (the kill hit mid-batch).
    assert len(ids) > len(sent)
    # Doubles only of what the killed worker had in flight, with the same webhook-id (and so
    # absorbed by a receiver deduplicating on it).
    doubled = [i for i, n in Counter(ids).items() if n > 1]
    assert all(Counter(ids)[i] == 2 for i in doubled)
    assert set(doubled) <= set(ids[: before_kill + 1])
    assert in_order_per_key(receiver.received) == {key: [1, 2, 3] for key in keys}
    for r in receiver.received:
        verified(r, town.secret)


@pytest.mark.parametrize("backend", BACKENDS[1:], indirect=True)
def test_two_workers_at_once_never_send_the_same_delivery(
    town: Town, receiver: Receiver, tmp_path: Path
) -> None:
    keys = [f"lk_{n:02d}" for n in range(20)]
    sent = level_events(town, keys, per_key=3)
    receiver.delay = 0.02
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    workers = [start_worker(town, log, "--poll", "0.05", "--limit", "4") for log in logs]
    try:
        wait_for(lambda: statuses(town) == {"delivered": len(sent)}, 90, "every delivery", logs[0])
    finally:
        for worker, log in zip(workers, logs, strict=True):
            stop_worker(worker, log)
    ids = receiver.ids()
    assert receiver.overlaps == 0
    assert sorted(ids) == sorted(sent), "a delivery was sent twice (or lost)"
    assert in_order_per_key(receiver.received) == {key: [1, 2, 3] for key in keys}
    shares = [int(log.read_text().rsplit("stopped: ", 1)[1].split(" ")[0]) for log in logs]
    assert sum(shares) == len(sent) and min(shares) > 0, shares


def test_the_scheduler_job_delivers_what_is_due(town: Town, receiver: Receiver) -> None:
    sent = level_events(town, ["lk_anna", "lk_bo"], per_key=2)
    job = next(job for job in registered_jobs() if job.id == "push.deliver")
    assert job.trigger == "interval" and job.options["seconds"] <= 5
    run_job(job, town.sessions, JobContext(town.settings))
    assert statuses(town) == {"delivered": 4}
    assert receiver.ids() == sent


def test_in_production_a_url_that_resolves_into_the_city_network_is_never_posted_to(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    """The receiver is on loopback (as an internal service would be): in production the worker
    records a refused try and never connects, so the city's worker cannot be aimed at its network."""
    ids = level_events(town, ["lk_a"], 1)
    production = replace(town.settings, environment="production", demo_mode=False)
    done = delivery.deliver_due(town.sessions, production, now=T0, client=client)
    assert (done.sent, done.delivered) == (1, 0) and receiver.received == []
    with unit_of_work(town.sessions) as session:
        row = session.scalars(select(Delivery)).one()
        assert row.status == "pending" and row.last_error is not None
        assert row.last_error.startswith("refused: not a public address (127.0.0.1 is 127.0.0.1)")
    deliver_all(town, client, T0 + dt.timedelta(hours=1))  # development: loopback is allowed
    assert [r.webhook_id for r in receiver.received] == ids


def test_a_failing_endpoint_gets_one_probe_a_round_and_a_bad_url_stops_no_round(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    """A down endpoint does not hold a batch of slots it would hand back untried; a stored URL
    httpx cannot send to (written before the check existed) is a failed try, not a crashed round."""
    receiver.stop()
    level_events(town, [f"lk_{n}" for n in range(5)], per_key=1)
    first = delivery.deliver_due(town.sessions, town.settings, now=T0, client=client)
    assert (first.claimed, first.sent, first.failed) == (5, 1, 1)  # not failing yet: a batch
    probe = delivery.deliver_due(town.sessions, town.settings, now=T0, client=client)
    assert (probe.claimed, probe.sent, probe.failed) == (1, 1, 1)  # failing: one probe

    with unit_of_work(town.sessions) as session:
        subscription(session, town).url = "https://xn--/hook"
    later = T0 + dt.timedelta(hours=5)
    done = delivery.deliver_due(town.sessions, town.settings, now=later, client=client)
    assert (done.sent, done.failed) == (1, 1)
    with unit_of_work(town.sessions) as session:
        error = session.scalars(select(Attempt.error).order_by(Attempt.id.desc()).limit(1)).one()
        assert error is not None and ("xn--" in error or "IDNA" in error)


def test_a_receiver_trickling_its_answer_does_not_hold_the_round(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.delay = 6.0  # longer than this round's wait (a 4 s lease: 2 s to start, 1.2 s grace)
    level_events(town, ["lk_slow"], per_key=1)
    started = time.monotonic()
    done = delivery.deliver_due(
        town.sessions, town.settings, now=T0, client=client, lease=dt.timedelta(seconds=4)
    )
    assert time.monotonic() - started < 5.0
    assert (done.claimed, done.sent) == (1, 0)
    with unit_of_work(town.sessions) as session:
        row = session.scalars(select(Delivery)).one()
        assert row.status == "pending" and row.attempts == 0 and row.lease_until is not None


def test_resend_requeues_only_what_is_finished_and_never_a_revoked_level(
    town: Town, receiver: Receiver, client: httpx.Client
) -> None:
    with unit_of_work(town.sessions) as session:
        people = [factories.citizen(session), factories.citizen(session)]
        operations.recompute_all(session, as_of=TODAY)
        library = session.scalars(select(ApiClient).where(ApiClient.operator_id.is_not(None))).one()
        gone, kept = (
            links.create_link(
                session,
                id_hash_key=town.settings.id_hash_key,
                citizen=person,
                client=library,
                actor="t",
            ).pseudonym
            for person in people
        )
    level_events(town, [gone, kept], per_key=1)
    deliver_all(town, client, T0)
    level_events(town, [gone], per_key=1)  # pending: it may be being sent right now
    with unit_of_work(town.sessions) as session:
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
        assert delivery.resend(session, [ids[2]], actor="t") == 0
        assert delivery.resend(session, ids[:2], actor="t") == 2
    deliver_all(town, client, T0 + dt.timedelta(minutes=1))
    assert len(receiver.received) == 5  # two, the same two again, and the third
    with unit_of_work(town.sessions) as session:
        link = session.scalars(select(Link).where(Link.pseudonym == gone)).one()
        links.revoke_link(session, link, by="citizen", actor="citizen")
    with unit_of_work(town.sessions) as session:
        assert delivery.resend(session, ids, actor="t") == 1  # only the citizen who kept the link


def test_deleting_a_subscription_cancels_what_it_had_queued(town: Town) -> None:
    level_events(town, ["lk_a", "lk_b"], per_key=2)
    with unit_of_work(town.sessions) as session:
        set_status(session, subscription(session, town), "deleted", actor="t")
    assert statuses(town) == {"cancelled": 4}
