"""The bulletins as the provincial platform pulls them (API) and as the credit office watches them
(admin): pages of signed documents after a sequence number, the delivery state, a resend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from citycredit.core.clients import register_client
from citycredit.core.db import utcnow
from federation import jws
from governance import bulletins
from governance.models import GovernanceBulletin
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, post, signed_in
from tests.integration.citizen_support import CitizenApp, citizen_app
from tests.integration.test_pipeline import bearer
from tests.rule_cases import ITEMISED


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[CitizenApp]:
    with citizen_app(fresh_database, tmp_path) as built:
        yield built


def _publish(session: object, settings: object, days: int) -> None:
    today = dt.date(2026, 6, 30)
    bulletins.publish_due(
        session,  # type: ignore[arg-type]
        settings,  # type: ignore[arg-type]
        today=today - dt.timedelta(days=days - 1),
        now=utcnow(),
    )
    bulletins.publish_due(session, settings, today=today, now=utcnow())  # type: ignore[arg-type]


def _token(city: CitizenApp, scopes: list[str]) -> str:
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        issued = register_client(
            session, name="province", kind="city", scopes=scopes, key_secret=settings.key_secret
        )
    answer = city.client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(issued.client.client_id, issued.secret or ""),
    )
    return str(answer.get_json()["access_token"])


def test_the_platform_pulls_pages_after_the_last_sequence_it_holds(city: CitizenApp) -> None:
    settings = city.app.extensions["citycredit"].settings
    with city.session() as session:
        factories.published(session, ITEMISED)
        _publish(session, settings, 3)
    token = _token(city, ["governance:read"])
    client = city.client()
    page = client.get("/api/v1/governance/bulletins", headers=bearer(token)).get_json()
    assert [b["seq"] for b in page["bulletins"]] == [1, 2, 3]
    key = jws.public_key_from_jwk(page["key"]["jwk"])
    assert page["key"]["fingerprint"] == jws.thumbprint(page["key"]["jwk"])
    for item in page["bulletins"]:
        payload = jws.verify(item["document"], key, typ=bulletins.TYP)
        assert payload["seq"] == item["seq"] and payload["batch_id"] == item["batch_id"]
    rest = client.get("/api/v1/governance/bulletins?after=2", headers=bearer(token)).get_json()
    assert [b["seq"] for b in rest["bulletins"]] == [3]
    refused = client.get("/api/v1/governance/bulletins", headers=bearer(_token(city, ["verify"])))
    assert refused.status_code == 403
    assert (
        client.get("/api/v1/governance/bulletins?after=-1", headers=bearer(token)).status_code
        == 422
    )


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        web.add_user("boss", "platform_admin")
        web.add_user("aud", "auditor")
        yield web


def test_the_admin_shows_each_day_and_resends_a_failed_one(site: AdminApp) -> None:
    settings = site.app.extensions["citycredit"].settings
    with site.session() as session:
        factories.published(session, ITEMISED)
        _publish(session, settings, 2)
        failed = session.get(GovernanceBulletin, 1)
        assert failed is not None
        failed.delivery, failed.attempts, failed.last_error = "failed", 30, "HTTP 503: busy"
    boss = signed_in(site, "boss")
    page = boss.get("/admin/bulletins").get_data(as_text=True)
    assert 'id="bulletin-1"' in page and "报送失败" in page and "HTTP 503: busy" in page
    detail = boss.get("/admin/bulletins/1").get_data(as_text=True)
    assert f"{settings.city_code}-governance-" in detail
    assert "&#34;objections&#34;: []" in detail  # the signed content, escaped in the page
    auditor = signed_in(site, "aud")
    assert "重新报送" not in auditor.get("/admin/bulletins/1").get_data(as_text=True)
    assert post(auditor, "/admin/bulletins/1/resend").status_code == 403
    post(boss, "/admin/bulletins/1/resend")
    with site.session() as session:
        again = session.get(GovernanceBulletin, 1)
        assert again is not None and (again.delivery, again.attempts) == ("pending", 0)
    assert [e.actor for e in site.events("governance.bulletin.resend")] == ["admin:boss"]
    assert boss.get("/admin/bulletins/99").status_code == 404
