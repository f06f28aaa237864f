"""The SDK's webhook receiver: Standard Webhooks signatures made by the maintained library, the
replay window on an injected clock, rotation with several secrets, and the seen stores (in memory,
and a SQLite file that outlives the receiver)."""

from __future__ import annotations

import base64
import datetime as dt
import gc
import http.client
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from citycredit_partner import (
    InMemorySeenStore,
    KeysRotated,
    LinkedMember,
    LinkRevoked,
    NotFoundError,
    PartnerClient,
    PartnerError,
    ScenarioChanged,
    SQLiteSeenStore,
    TierChanged,
    WebhookEvent,
    WebhookHeaderError,
    WebhookPayloadError,
    WebhookReceiver,
    WebhookRejectedError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from citycredit_partner.testing import new_webhook_secret, signed_webhook
from citycredit_partner.webhooks import DEFAULT_SEEN_TTL

OLD = "whsec_" + base64.b64encode(b"the old secret, 24 bytes").decode()
NEW = "whsec_" + base64.b64encode(b"the new secret, 32 bytes long!!!").decode()
NOW = 1_796_000_000  # 2026-11-30 in unix seconds


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def body(kind: str = "tier.changed", **data: Any) -> bytes:
    data = data or {
        "pseudonym": "lk_7Qm2",
        "common_level": 4,
        "valid_until": "2026-12-07T08:00:00+00:00",
    }
    event = {"type": kind, "timestamp": "2026-11-30T08:00:00.123456Z", "data": data}
    return json.dumps(event, separators=(",", ":")).encode()


def signed(
    payload: bytes, *secrets: str, webhook_id: str = "msg_1", at: int = NOW
) -> dict[str, str]:
    """Headers as the city sends them: one v1 signature per signing secret, by the library."""
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": " ".join(
            Webhook(secret).sign(webhook_id, moment, payload) for secret in secrets or (NEW,)
        ),
    }


def receiver(*secrets: str, clock: Clock | None = None, **options: Any) -> WebhookReceiver:
    return WebhookReceiver(list(secrets or (NEW,)), clock=clock or Clock(), **options)


def test_a_signed_tier_change_reads_as_a_typed_event() -> None:
    event = receiver().receive(body(), signed(body()))
    assert isinstance(event, WebhookEvent)
    assert (event.id, event.type, event.pseudonym) == ("msg_1", "tier.changed", "lk_7Qm2")
    assert event.payload == TierChanged("lk_7Qm2", 4, dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC))
    assert event.timestamp == dt.datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=dt.UTC)
    assert event.sent_at == dt.datetime.fromtimestamp(NOW, dt.UTC)


@pytest.mark.parametrize(
    "kind, data, payload",
    [
        (
            "link.revoked",
            {"pseudonym": "lk_x", "revoked_at": "2026-11-30T07:59:00+00:00"},
            LinkRevoked("lk_x", dt.datetime(2026, 11, 30, 7, 59, tzinfo=dt.UTC)),
        ),
        (
            "scenario.suspended",
            {"scenario": "library-deposit-free", "status": "suspended"},
            ScenarioChanged("library-deposit-free", "suspended"),
        ),
        (
            "keys.rotated",
            {"kid": "2026-11", "jwks": "/.well-known/jwks.json"},
            KeysRotated("2026-11", "/.well-known/jwks.json"),
        ),
        ("something.new", {"anything": [1, 2]}, None),
    ],
)
def test_each_event_type_has_its_typed_payload(
    kind: str, data: dict[str, Any], payload: object
) -> None:
    event = receiver().receive(body(kind, **data), signed(body(kind, **data)))
    assert event is not None
    assert (event.type, event.payload, dict(event.data)) == (kind, payload, data)


def test_header_names_are_matched_whatever_their_case() -> None:
    headers = {name.title(): value for name, value in signed(body()).items()}
    assert receiver().receive(body(), headers) is not None
    from_http_server = http.client.HTTPMessage()  # BaseHTTPRequestHandler.headers
    for name, value in headers.items():
        from_http_server[name.upper()] = value
    assert receiver().receive(body(), from_http_server) is not None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda b, h: (b.replace(b'"common_level":4', b'"common_level":5'), h), id="body"
        ),
        pytest.param(lambda b, h: (b + b" ", h), id="trailing-space"),
        pytest.param(lambda b, h: (b, {**h, "webhook-id": "msg_2"}), id="id"),
        pytest.param(lambda b, h: (b, {**h, "webhook-timestamp": str(NOW + 1)}), id="timestamp"),
        pytest.param(lambda b, h: (b, {**h, "webhook-signature": "v1a,AAAA"}), id="no-v1"),
        pytest.param(lambda b, h: (b, {**h, "webhook-signature": "v1," + "A" * 44}), id="made-up"),
    ],
)
def test_a_tampered_or_unsigned_webhook_is_refused(change: Any) -> None:
    tampered_body, headers = change(body(), signed(body()))
    with pytest.raises(WebhookSignatureError) as refused:
        receiver().receive(tampered_body, headers)
    assert refused.value.reason == "bad-signature"
    assert isinstance(refused.value, WebhookRejectedError | PartnerError)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(missing: str) -> None:
    headers = signed(body())
    del headers[missing]
    with pytest.raises(WebhookHeaderError, match=f"missing-header: no {missing} header"):
        receiver().receive(body(), headers)
    with pytest.raises(WebhookHeaderError, match="missing-header"):
        receiver().receive(body(), {**signed(body()), missing: " "})


def test_a_timestamp_that_is_not_whole_seconds_is_malformed() -> None:
    for stamp in ("1.796e9", "-5", "soon", f"{NOW}.5", "99999999999", "0x6b0d3e80"):
        with pytest.raises(WebhookHeaderError) as refused:
            receiver().receive(body(), {**signed(body()), "webhook-timestamp": stamp})
        assert refused.value.reason == "malformed-header"


def test_the_replay_window_on_each_side_including_its_edges() -> None:
    clock = Clock()
    city = receiver(clock=clock, tolerance=60)
    for offset, accepted in [(-61, False), (-60, True), (0, True), (60, True), (61, False)]:
        clock.now = NOW - offset  # the message was sent at NOW; the receiver's clock moves
        headers = signed(body(), webhook_id=f"msg_{offset}")
        if accepted:
            assert city.receive(body(), headers) is not None, offset
            continue
        with pytest.raises(WebhookTimestampError) as refused:
            city.receive(body(), headers)
        assert refused.value.reason == ("timestamp-too-old" if offset < 0 else "timestamp-too-new")
        assert refused.value.webhook_id == f"msg_{offset}"


def test_the_default_window_is_the_library_s_five_minutes_and_cannot_be_widened() -> None:
    clock = Clock(NOW + 300)
    assert receiver(clock=clock).receive(body(), signed(body())) is not None
    clock.now = NOW + 301
    with pytest.raises(WebhookTimestampError, match="timestamp-too-old"):
        receiver(clock=clock).receive(body(), signed(body(), webhook_id="msg_2"))
    for too_wide in (301, dt.timedelta(minutes=10), 0):
        with pytest.raises(ValueError, match="tolerance"):
            receiver(tolerance=too_wide)
    assert receiver(tolerance=dt.timedelta(seconds=30)).tolerance == 30


def test_a_signed_body_that_is_not_an_event_is_malformed() -> None:
    for bad in (b"not json", b"[1]", b'{"type":"tier.changed","data":{}}', b"\xff\xfe"):
        with pytest.raises(WebhookPayloadError, match="malformed-body"):
            receiver().receive(bad, signed(bad))
    bad_level = body(pseudonym="lk_x", common_level=9, valid_until="2026-12-07T08:00:00+00:00")
    with pytest.raises(WebhookPayloadError, match="common_level"):
        receiver().receive(bad_level, signed(bad_level))


def test_a_parsed_or_decoded_body_is_refused_loudly() -> None:
    with pytest.raises(TypeError, match="bytes"):
        receiver().receive(body().decode(), signed(body()))  # type: ignore[arg-type]  # the mistake


def test_during_a_rotation_either_secret_is_accepted() -> None:
    both = receiver(OLD, NEW)
    assert both.receive(body(), signed(body(), OLD, webhook_id="a")) is not None
    assert both.receive(body(), signed(body(), NEW, webhook_id="b")) is not None
    # The city signs with the old and the new secret while both are live.
    assert receiver(NEW).receive(body(), signed(body(), OLD, NEW)) is not None
    assert receiver(OLD).receive(body(), signed(body(), OLD, NEW)) is not None
    with pytest.raises(WebhookSignatureError):  # the old one alone, after the overlap
        receiver(OLD).receive(body(), signed(body(), NEW))


def test_secrets_are_checked_when_the_receiver_is_made_and_never_shown() -> None:
    for bad in ("", "whsec_", b""):
        with pytest.raises(ValueError, match="secret"):
            WebhookReceiver(bad)
    with pytest.raises(ValueError, match="at least one"):
        WebhookReceiver([])
    assert NEW[6:] not in repr(receiver(OLD, NEW)) and "secrets=2" in repr(receiver(OLD, NEW))


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: list[SQLiteSeenStore] = []

    def make(**options: Any) -> Any:
        if request.param == "memory":
            return InMemorySeenStore(**options)
        made.append(SQLiteSeenStore(tmp_path / "seen.sqlite3", **options))
        return made[-1]

    yield make
    for store in made:
        store.close()


def test_a_second_copy_of_an_id_is_dropped_until_it_expires(make_store: Any) -> None:
    clock = Clock()
    city = receiver(clock=clock, seen=make_store(ttl=3600))
    assert city.receive(body(), signed(body())) is not None
    clock.now += 100  # re-sent later by the city: same id, new timestamp, new signature
    assert city.receive(body(), signed(body(), at=NOW + 100)) is None
    assert city.receive(body(), signed(body(), webhook_id="msg_2", at=NOW + 100)) is not None
    clock.now = NOW + 3601
    assert city.receive(body(), signed(body(), at=NOW + 3601)) is not None


def test_the_default_ttl_outlasts_three_days_of_retries(make_store: Any) -> None:
    clock = Clock()
    city = receiver(clock=clock, seen=make_store())
    assert DEFAULT_SEEN_TTL > 3 * 24 * 3600
    assert city.receive(body(), signed(body())) is not None
    three_days = NOW + 3 * 24 * 3600
    clock.now = three_days
    assert city.receive(body(), signed(body(), at=three_days)) is None


def test_process_marks_the_id_only_after_the_handler_succeeded(make_store: Any) -> None:
    city = receiver(seen=make_store())
    handled: list[str] = []

    def crash(event: WebhookEvent) -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        city.process(body(), signed(body()), crash)
    event = city.process(body(), signed(body()), lambda event: handled.append(event.id))
    assert event is not None and handled == ["msg_1"]
    assert city.process(body(), signed(body()), lambda event: handled.append(event.id)) is None
    assert handled == ["msg_1"]


def test_receive_marks_before_returning_unless_asked_not_to(make_store: Any) -> None:
    store = make_store()
    city = receiver(seen=store)
    unmarked = city.receive(body(), signed(body()), mark=False)
    assert unmarked is not None
    assert city.receive(body(), signed(body()), mark=False) is not None  # still not marked
    city.mark_processed(unmarked)
    assert city.receive(body(), signed(body()), mark=False) is None
    assert city.receive(body(), signed(body())) is None
    store.discard("msg_1")  # before asking for a resend of an event processed, then lost
    assert city.receive(body(), signed(body())) is not None


def test_of_concurrent_copies_only_one_is_returned(make_store: Any) -> None:
    city = receiver(seen=make_store())
    results: list[WebhookEvent | None] = []
    start = threading.Barrier(8)

    def deliver() -> None:
        start.wait()
        results.append(city.receive(body(), signed(body())))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1


def test_the_sqlite_store_remembers_ids_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite3"
    first = receiver(seen=SQLiteSeenStore(path))
    assert first.receive(body(), signed(body())) is not None
    del first  # the receiver process was restarted
    again = receiver(seen=SQLiteSeenStore(path))
    assert again.receive(body(), signed(body())) is None
    assert again.receive(body(), signed(body(), webhook_id="msg_2")) is not None
    with pytest.raises(ValueError, match="file"):
        SQLiteSeenStore(":memory:")


def test_the_sqlite_store_purges_expired_ids(tmp_path: Path) -> None:
    store = SQLiteSeenStore(tmp_path / "seen.sqlite3", ttl=10)
    for number in range(300):
        assert store.add(f"msg_{number}", now=NOW + number)
    with sqlite3.connect(tmp_path / "seen.sqlite3") as connection:
        (left,) = connection.execute("SELECT count(*) FROM citycredit_webhook_seen").fetchone()
    assert left < 300 - 200  # the ids older than ten seconds went at the purge
    assert store.contains("msg_299", now=NOW + 299) and not store.contains("msg_0", now=NOW + 299)


def test_the_memory_store_is_bounded_oldest_first() -> None:
    store = InMemorySeenStore(max_entries=3)
    for number in range(5):
        assert store.add(f"msg_{number}", now=NOW)
    assert len(store) == 3
    assert [store.contains(f"msg_{n}", now=NOW) for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert not store.add("msg_4", now=NOW)


def test_a_member_s_level_is_pulled_again_before_it_expires() -> None:
    asked: list[str] = []

    def city(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        asked.append(request.url.raw_path.decode())
        if request.url.path == "/api/v1/links/lk_7Qm2":
            member = {
                "pseudonym": "lk_7Qm2",
                "common_level": 3,
                "valid_until": "2026-12-14T08:00:00+00:00",
                "scenarios": ["library-deposit-free"],
            }
            return httpx.Response(200, json=member)
        problem = {"type": "/problems/not-found", "title": "Not found", "status": 404}
        return httpx.Response(404, json=problem)

    transport = httpx.MockTransport(city)
    with PartnerClient("cc_test", "s", "https://city.test", transport=transport) as desk:
        assert desk.link("lk_7Qm2") == LinkedMember(
            "lk_7Qm2", 3, dt.datetime(2026, 12, 14, 8, tzinfo=dt.UTC), ("library-deposit-free",)
        )
        with pytest.raises(NotFoundError):  # revoked: forget the member
            desk.link("lk_gone/../../records")
    assert asked == ["/api/v1/links/lk_7Qm2", "/api/v1/links/lk_gone%2F..%2F..%2Frecords"]


def test_the_testing_helper_signs_as_the_city_does() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    data = {"pseudonym": "lk_读者", "common_level": 2, "valid_until": "2026-12-14T08:00:00+00:00"}
    body, sent = signed_webhook([old, new], "tier.changed", data, webhook_id="msg_t", sent_at=NOW)
    assert "lk_读者".encode() in body and b" " not in body  # compact UTF-8, as the city sends
    assert len(sent["webhook-signature"].split()) == 2
    for holder in (old, new):
        event = receiver(holder).receive(body, sent)
        assert event is not None and event.payload == TierChanged(
            "lk_读者", 2, dt.datetime(2026, 12, 14, 8, tzinfo=dt.UTC)
        )
    with pytest.raises(WebhookSignatureError):
        receiver(new_webhook_secret()).receive(body, sent)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")
def test_the_sqlite_store_does_not_keep_a_file_open_per_finished_thread(tmp_path: Path) -> None:
    # A threaded server (Flask's, http.server's) answers each request in a new thread.
    store = SQLiteSeenStore(tmp_path / "seen.sqlite3")
    before = len(os.listdir("/proc/self/fd"))
    for number in range(60):
        thread = threading.Thread(target=store.add, args=(f"msg_{number}",), kwargs={"now": NOW})
        thread.start()
        thread.join()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) < before + 10
    assert all(store.contains(f"msg_{number}", now=NOW) for number in range(60))
    store.close()
    assert len(os.listdir("/proc/self/fd")) < before
