"""The admin's webhook pages: subscriptions made, rotated, disabled (with the reason shown), enabled
and deleted; the secret shown once; deliveries with their attempts; resending one or many; the chart
of attempts per day, whose figures are the rows'; an operator sees only its own."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from citycredit.core.clients import ApiClient, register_client
from push import outbox
from push.models import Attempt, Delivery, Subscription
from push.subscriptions import create_subscription, signing_secrets
from scenarios.models import Operator
from tests.databases import ScratchDatabase
from tests.integration.admin_support import START, AdminApp, admin_app, csrf, post, signed_in

CITY = ZoneInfo("Asia/Shanghai")
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as built:
        built.add_user("boss", "platform_admin")
        built.add_user("audit", "auditor")
        with built.session() as session:
            for code in ("library", "bus"):
                session.add(Operator(code=code, name_zh=code + "馆", name_en=code.title()))
        built.add_user("lib-op", "operator", operator_code="library")
        yield built


def operator_client(city: AdminApp, code: str) -> str:
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        operator = session.scalar(select(Operator).where(Operator.code == code))
        assert operator is not None
        issued = register_client(
            session,
            name=f"{code} system",
            kind="operator",
            scopes=["webhooks:manage"],
            operator_id=operator.id,
            key_secret=settings.key_secret,
        )
    return issued.client.client_id


def subscribed(city: AdminApp, client_id: str, url: str) -> str:
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        client = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
        assert client is not None
        sub, _ = create_subscription(
            session,
            client,
            url=url,
            event_types=["scenario.published"],
            key_secret=settings.key_secret,
            actor="test",
        )
        return sub.public_id


def submit(browser: FlaskClient, path: str, **form: str | list[str]) -> Any:
    """A form POST with the session's CSRF token (fields may repeat, as checkboxes send them)."""
    return browser.post(path, data={**form, "csrf_token": csrf(browser, "/admin/account")})


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, (path, answer.status_code)
    return answer.get_data(as_text=True)


def test_a_subscription_is_made_rotated_disabled_enabled_and_deleted(city: AdminApp) -> None:
    library = operator_client(city, "library")
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        city_app = register_client(
            session,
            name="city app",
            kind="app",
            scopes=["webhooks:manage"],
            key_secret=settings.key_secret,
        ).client.client_id
    boss = signed_in(city, "boss")
    assert "推送订阅" in page(boss, "/admin/")  # in the navigation
    assert library in page(boss, "/admin/push/new")

    refused = submit(
        boss, "/admin/push", client=library, url="http://lib.example/h", event_types="tier.changed"
    )
    assert refused.status_code == 422
    assert "接收地址须为完整的 https 网址" in refused.get_data(as_text=True)
    personal = submit(
        boss,
        "/admin/push",
        client=city_app,
        url="https://app.example/h",
        event_types="tier.changed",
    )
    assert "只有运营方的系统才能接收已授权市民的事件" in personal.get_data(as_text=True)
    made = submit(
        boss,
        "/admin/push",
        client=library,
        url="https://lib.example/hooks",
        event_types="tier.changed",
    )
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    secrets = _SECRET.findall(made.get_data(as_text=True))
    assert len(set(secrets)) == 1
    first = secrets[0]
    with city.session() as session:
        sub = session.scalar(select(Subscription))
        assert sub is not None and sub.url == "https://lib.example/hooks"
        public_id = sub.public_id

    rotated = post(boss, f"/admin/push/{public_id}/rotate")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    second = _SECRET.findall(rotated.get_data(as_text=True))[0]
    assert second != first
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        sub = session.get(Subscription, sub.id)
        assert sub is not None
        now = dt.datetime.now(dt.UTC)
        assert signing_secrets(sub, key_secret=settings.key_secret, now=now) == [second, first]

    # Neither secret appears on any page afterwards.
    for path in ("/admin/push", f"/admin/push/{public_id}", "/admin/push/deliveries"):
        shown = page(boss, path)
        assert first not in shown and second not in shown and not _SECRET.search(shown)
    assert "旧密钥同时签名至" in page(boss, f"/admin/push/{public_id}")

    post(boss, f"/admin/push/{public_id}/status", status="disabled", reason="接收方维护中")
    listed = page(boss, "/admin/push")
    assert f'id="notice-{public_id}"' in listed and "接收方维护中" in listed
    assert "已停用" in listed
    detail = page(boss, f"/admin/push/{public_id}")
    assert 'id="disabled-notice"' in detail and "接收方维护中" in detail
    post(boss, f"/admin/push/{public_id}/status", status="active")
    assert f'id="notice-{public_id}"' not in page(boss, "/admin/push")
    post(boss, f"/admin/push/{public_id}/status", status="deleted")
    assert public_id not in page(boss, "/admin/push")
    with city.session() as session:
        assert session.scalar(select(Subscription.status)) == "deleted"
    actions = [
        (e.actor, e.action) for e in city.events() if e.action.startswith("webhook.subscription")
    ]
    assert actions == [
        ("admin:boss", "webhook.subscription.create"),
        ("admin:boss", "webhook.subscription.rotate"),
        ("admin:boss", "webhook.subscription.disabled"),
        ("admin:boss", "webhook.subscription.active"),
        ("admin:boss", "webhook.subscription.deleted"),
    ]


def test_an_operator_sees_and_changes_only_its_own(city: AdminApp) -> None:
    mine = subscribed(city, operator_client(city, "library"), "https://lib.example/h")
    theirs = subscribed(city, operator_client(city, "bus"), "https://bus.example/h")
    with city.session() as session:
        outbox.emit(session, [outbox.Outgoing("scenario.published", "s", {"scenario": "s"})])
        bus_delivery = session.scalar(
            select(Delivery.id)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(Subscription.public_id == theirs)
        )
        session.execute(update(Delivery).values(status="dead"))
    op = signed_in(city, "lib-op")
    listed = page(op, "/admin/push")
    assert mine in listed and theirs not in listed
    page(op, f"/admin/push/{theirs}", 404)
    page(op, f"/admin/push/deliveries/{bus_delivery}", 404)
    assert theirs not in page(op, "/admin/push/deliveries")
    assert post(op, f"/admin/push/{theirs}/status", status="disabled").status_code == 404
    assert post(op, f"/admin/push/{theirs}/rotate").status_code == 404
    post(op, "/admin/push/deliveries/resend", ids=str(bus_delivery))
    with city.session() as session:
        assert session.get(Delivery, bus_delivery).status == "dead"  # type: ignore[union-attr]
        assert (
            session.scalar(select(Subscription.status).where(Subscription.public_id == theirs))
            == "active"
        )
    # The auditor reads everything and changes nothing.
    auditor = signed_in(city, "audit")
    assert theirs in page(auditor, "/admin/push") and mine in page(auditor, "/admin/push")
    assert post(auditor, f"/admin/push/{mine}/status", status="disabled").status_code == 403


def test_deliveries_attempts_resend_and_the_chart_of_attempts_per_day(city: AdminApp) -> None:
    sub_id = subscribed(city, operator_client(city, "library"), "https://lib.example/h")
    with city.session() as session:
        outbox.emit(
            session,
            [
                outbox.Outgoing("scenario.published", f"s{n}", {"scenario": f"s{n}"})
                for n in range(3)
            ],
        )
        ids = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[:2]))
            .values(status="dead", attempts=2, last_status_code=503)
        )
        # Attempts around the city's midnight (UTC+8), on days the chart shows and one it does not.
        moments = [
            (ids[0], dt.datetime(2026, 6, 29, 15, 30, tzinfo=dt.UTC), 503, None),  # 06-29 23:30
            (ids[0], dt.datetime(2026, 6, 29, 16, 10, tzinfo=dt.UTC), None, "timed out"),  # 06-30
            (ids[1], dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC), 200, None),
            (ids[1], dt.datetime(2026, 6, 29, 15, 59, tzinfo=dt.UTC), 204, None),  # 06-29 23:59
            (ids[2], START - dt.timedelta(minutes=5), 200, None),  # 06-30 09:55
            (ids[2], dt.datetime(2026, 5, 1, 3, 0, tzinfo=dt.UTC), 200, None),  # too old
        ]
        for delivery_id, at, code, error in moments:
            session.add(
                Attempt(
                    delivery_id=delivery_id, at=at, status_code=code, error=error, duration_ms=7
                )
            )
    boss = signed_in(city, "boss")
    shown = page(boss, "/admin/push/deliveries")
    table = dict(
        (day, (int(ok), int(bad), int(total)))
        for day, ok, bad, total in re.findall(
            r'<tr><td>(\d{4}-\d\d-\d\d)</td><td class="num">(\d+)</td><td class="num">(\d+)</td>'
            r'<td class="num">(\d+)</td></tr>',
            shown,
        )
    )
    assert len(table) == 30 and min(table) == "2026-06-01" and max(table) == "2026-06-30"
    expected: Counter[tuple[str, bool]] = Counter()
    for _, at, code, _error in moments:
        day = at.astimezone(CITY).date().isoformat()
        if day >= "2026-06-01":
            expected[(day, code is not None and 200 <= code < 300)] += 1
    for day, (ok, bad, total) in table.items():
        assert (ok, bad) == (expected[(day, True)], expected[(day, False)]), day
        assert total == ok + bad
    assert table["2026-06-29"] == (1, 1, 2) and table["2026-06-30"] == (1, 1, 2)
    assert table["2026-06-20"] == (1, 0, 1)
    assert "06-30 送达: 1" in shown and "06-29 失败: 1" in shown  # the bars' own titles

    dead = page(boss, "/admin/push/deliveries?status=dead")
    assert f'id="delivery-{ids[0]}"' in dead and f'id="delivery-{ids[2]}"' not in dead
    one = html.unescape(page(boss, f"/admin/push/deliveries/{ids[0]}"))
    assert "timed out" in one and "503" in one and sub_id in one and '"scenario": "s0"' in one
    assert city.events("admin.webhook_delivery_view")[-1].detail["delivery"] == ids[0]

    done = submit(boss, "/admin/push/deliveries/resend", ids=[str(ids[0]), str(ids[1])])
    assert done.status_code == 302
    with city.session() as session:
        states = session.scalars(select(Delivery.status).order_by(Delivery.id)).all()
    assert states == ["pending", "pending", "pending"]
    assert "已重新排队 2 条投递" in page(boss, "/admin/push/deliveries")
    assert city.events("webhook.delivery.resend")[-1].actor == "admin:boss"
