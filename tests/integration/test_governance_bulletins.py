"""Issue 11 §4: the next-day governance bulletin. The clock is driven, never slept on: a decision at
23:59 city time is in that day's bulletin, one a minute later in the next; missed days are caught
up; a receiving endpoint that is down gets every bulletin once it is back, in order, each once."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws as independent
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from citizen import operations as citizen_ops
from citizen import repairs
from citycredit.core.actors import Actor
from citycredit.core.config import load_settings
from governance import bulletins
from governance.models import GovernanceBulletin
from points_engine import operations
from tests import factories
from tests.integration.test_repair_rules import REPAIRABLE

CITY = dt.timezone(dt.timedelta(hours=8))
DAY = dt.date(2026, 6, 29)
REASON = "处罚对象有误，当天我不在本市。"
REVIEWER = Actor("admin:rev")


def local(day: dt.date, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=CITY).astimezone(dt.UTC)


def settings(**overrides: Any) -> Any:
    return load_settings(
        env={"CITYCREDIT_CITY_CODE": "420200", "CITYCREDIT_ENV": "development"},
        key_secret=b"s" * 32,
        **overrides,
    )


def _decided_objection(session: Session, at: dt.datetime) -> str:
    person = factories.citizen(session)
    fine = factories.record(session, person, "BIG_FINE", "2026-05-01")
    case = citizen_ops.file_objection(
        session,
        person,
        fine,
        REASON,
        today=DAY - dt.timedelta(days=5),
        now=at - dt.timedelta(days=5),
    )
    citizen_ops.forward(session, case, REVIEWER, at - dt.timedelta(days=1))
    citizen_ops.record_source_answer(
        session, case, REVIEWER, "记录有误。", at - dt.timedelta(hours=1)
    )
    citizen_ops.decide(session, case, REVIEWER, True, "撤销", "revoke", now=at, today=at.date())
    return case.public_id


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")
def test_a_decision_at_23_59_is_in_that_day_s_bulletin_and_one_at_midnight_in_the_next(
    session: Session,
) -> None:
    factories.published(session, REPAIRABLE)
    late = _decided_objection(session, local(DAY, 23, 59, 30))
    midnight = _decided_objection(session, local(DAY + dt.timedelta(days=1), 0, 0, 10))
    # A repair approved that afternoon.
    person = factories.citizen(session)
    listing = factories.record(session, person, "LISTING", "2025-01-10")
    operations.recompute_all(session, as_of=DAY)
    application = repairs.apply(
        session,
        person,
        listing,
        "已履行全部义务，附结案证明。",
        [],
        today=DAY,
        now=local(DAY, 9, 0),
    )
    repairs.propose(session, application, REVIEWER, True, "齐全", now=local(DAY, 10, 0))
    repairs.confirm(
        session, application, Actor("admin:boss"), True, "", now=local(DAY, 15, 0), today=DAY
    )

    city = settings()
    made = bulletins.publish_due(
        session,
        city,
        today=DAY + dt.timedelta(days=1),
        now=local(DAY + dt.timedelta(days=1), 0, 20),
    )
    assert [(b.seq, b.day, b.objections, b.repairs) for b in made] == [(1, DAY, 1, 1)]
    bulletin = made[0]
    assert bulletin.batch_id == "420200-governance-2026-06-29"
    assert bulletin.delivery == "pull_only"  # no endpoint configured
    # The signature verifies with an independent JOSE library and the city's published key.
    page_key = bulletins.fed_keys.current(session, "city")
    assert page_key is not None
    verified = independent.deserialize_compact(
        bulletin.document, OKPKey.import_key(page_key.public_jwk), algorithms=["EdDSA"]
    )
    payload = json.loads(verified.payload)
    assert payload["date"] == "2026-06-29" and payload["seq"] == 1 and payload["iss"] == "420200"
    assert [o["case"] for o in payload["objections"]] == [late]
    assert payload["objections"][0]["outcome"] == "upheld"
    assert payload["objections"][0]["source"] == "court"
    assert payload["repairs"][0]["outcome"] == "approved"
    assert payload["repairs"][0]["repaired_on"] == "2026-06-29"
    text = json.dumps(payload, ensure_ascii=False)
    assert "citizen" not in text and "id_number" not in text  # records, never people

    # Publishing again the same day changes nothing; the next day carries the midnight decision.
    assert (
        bulletins.publish_due(session, city, today=DAY + dt.timedelta(days=1), now=local(DAY, 1, 0))
        == []
    )
    after = bulletins.publish_due(
        session,
        city,
        today=DAY + dt.timedelta(days=2),
        now=local(DAY + dt.timedelta(days=2), 0, 20),
    )
    assert [(b.seq, b.objections) for b in after] == [(2, 1)]
    second = (
        json.loads(verified.payload)
        if False
        else bulletins.jws.unverified_payload(after[0].document)
    )
    assert [o["case"] for o in second["objections"]] == [midnight]


def test_missed_days_are_caught_up_in_order(session: Session) -> None:
    factories.published(session, REPAIRABLE)
    city = settings()
    bulletins.publish_due(session, city, today=DAY, now=local(DAY, 0, 20))
    # The scheduler was down for five days.
    later = DAY + dt.timedelta(days=5)
    made = bulletins.publish_due(session, city, today=later, now=local(later, 3, 0))
    assert [b.day for b in made] == [DAY + dt.timedelta(days=n) for n in range(5)]
    assert [b.seq for b in made] == [2, 3, 4, 5, 6]


class Receiver:
    """A provincial platform's endpoint on loopback: down (503) for the first ``down`` requests."""

    def __init__(self, down: int):
        self.down = down
        self.requests: list[tuple[int, str, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 503 if len(receiver.requests) < receiver.down else 200
                receiver.requests.append((status, self.headers["Idempotency-Key"], body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bulletins"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[str]:
        return [key for status, key, _ in self.requests if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(down=3)
    yield found
    found.close()


def test_an_outage_is_retried_with_backoff_and_each_bulletin_delivered_once_in_order(
    session: Session, receiver: Receiver
) -> None:
    factories.published(session, REPAIRABLE)
    city = settings(bulletin_push_url=receiver.url)
    today = DAY + dt.timedelta(days=2)
    made = bulletins.publish_due(session, city, today=DAY, now=local(DAY, 0, 20))
    made += bulletins.publish_due(session, city, today=today, now=local(today, 0, 20))
    assert [(b.seq, b.delivery) for b in made] == [(1, "pending"), (2, "pending"), (3, "pending")]
    rng = random.Random(1)
    now = local(today, 0, 21)
    delays: list[float] = []
    with httpx.Client(timeout=5) as client:
        for _ in range(40):  # bounded: the receiver is back after its third refusal
            bulletins.deliver_due(session, city, now=now, client=client, rng=rng)
            if all(b.delivery == "delivered" for b in made):
                break
            waiting = [b.next_attempt_at for b in made if b.next_attempt_at is not None]
            assert waiting, "a refused bulletin has its next attempt"
            # Nothing is retried before its time: a second run now sends nothing.
            before = len(receiver.requests)
            bulletins.deliver_due(session, city, now=now, client=client, rng=rng)
            assert len(receiver.requests) == before
            delays.append((waiting[0] - now).total_seconds())
            now = waiting[0]  # the driven clock jumps to the next attempt
    assert [b.delivery for b in made] == ["delivered"] * 3
    # Three refusals of the first day (the later days waited), then each, in order, accepted once.
    ids = [b.batch_id for b in made]
    assert [key for _, key, _ in receiver.requests] == [ids[0]] * 4 + ids[1:]
    assert receiver.accepted() == ids
    assert [b.attempts for b in made] == [4, 1, 1]
    # The backoff grows: 1, 5, 15 minutes, each with up to 20 % jitter.
    assert len(delays) == 3
    assert all(base * 60 <= d <= base * 72 for d, base in zip(delays, (1, 5, 15), strict=True))
    body = receiver.requests[-1][2]
    assert body["seq"] == 3 and body["document"] == made[2].document


def test_a_receiver_refusing_for_days_marks_the_bulletin_failed_and_a_resend_queues_it(
    session: Session,
) -> None:
    factories.published(session, REPAIRABLE)
    always_down = Receiver(down=10_000)
    try:
        city = settings(bulletin_push_url=always_down.url)
        made = bulletins.publish_due(session, city, today=DAY, now=local(DAY, 0, 20))
        now = local(DAY, 0, 21)
        with httpx.Client(timeout=5) as client:
            for _ in range(bulletins.MAX_ATTEMPTS):
                bulletins.deliver_due(session, city, now=now, client=client)
                now += dt.timedelta(hours=2)
        bulletin = made[0]
        assert bulletin.delivery == "failed" and bulletin.attempts == bulletins.MAX_ATTEMPTS
        assert bulletin.last_error is not None and "503" in bulletin.last_error
        bulletins.resend(session, bulletin, actor="admin:boss")
        assert (bulletin.delivery, bulletin.attempts, bulletin.next_attempt_at) == (
            "pending",
            0,
            None,
        )
    finally:
        always_down.close()
    assert session.scalar(select(GovernanceBulletin.id)) is not None


def test_settings_read_the_endpoint(tmp_path: Path) -> None:
    env = {
        "CITYCREDIT_BULLETIN_PUSH_URL": " https://province.example/bulletins ",
        "CITYCREDIT_ENV": "development",
    }
    assert load_settings(env=env).bulletin_push_url == "https://province.example/bulletins"
