"""Partner cities on the citizen's phone page, in a real browser (Debian's Chromium at 390×844), on
SQLite and PostgreSQL.

A live city (黄石市, 420200) holds a trust list naming 三亚市 and 苏州市 as active partners, Sanya's
latest bulletin, and partner cities' questions about a citizen. The citizen turns sharing with Sanya on
with its switch (the next code carries ``xc``), off through the confirmation page (the next code has
none), and reads where their tier is recognised and who checked them. Every page is axe-core clean,
in Chinese and English, and fits 390 px at 200 % text size; nothing leaves loopback.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from axe_playwright_python.sync_playwright import Axe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import expect

from citycredit.core.config import load_settings
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from citycredit.core.idnumber import parse_id_number
from federation import jws
from federation.models import PartnerBulletin, PartnerQuestion
from federation.operations import accept_list
from points_engine.operations import get_or_create_citizen
from tests.browser.test_citizen import DOUBLE_TEXT, horizontal_overflow, phone, sign_in
from tests.browser.test_pages import screenshot
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import LiveCity, _seed, free_port, gunicorn, live_env
from tests.integration.test_citizen_federation import (
    HOME,
    SANYA,
    SANYA_OFFERS,
    SUZHOU,
    sign_trust_list,
)

PAGES = (
    "/me/partners",
    "/me/partners/benefits",
    "/me/checks",
    f"/me/partners/stop?partner={SANYA}",
)


@pytest.fixture(params=BACKENDS)
def federated_city(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveCity]:
    """A live city in demo mode that holds a trust list with two active partners."""
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    port = free_port()
    anchor = Ed25519PrivateKey.generate()
    env = live_env(
        db,
        tmp_path,
        port,
        CITYCREDIT_DEMO_MODE="1",
        CITYCREDIT_CITY_CODE=HOME,
        CITYCREDIT_CITY_NAME="黄石市",
        CITYCREDIT_CITY_NAME_EN="Huangshi",
        CITYCREDIT_TRUST_ANCHOR=jws.thumbprint(jws.public_jwk_of(anchor.public_key())),
    )
    settings = load_settings(env=env)
    seeded = _seed(db, settings)
    with unit_of_work(make_session_factory(db.engine)) as session:
        accept_list(session, settings, sign_trust_list(anchor), now=utcnow(), actor="test")
        session.add(
            PartnerBulletin(
                issuer=SANYA,
                seq=1,
                day=dt.date.today(),
                payload={"iss": SANYA, "seq": 1, "visitors": [], "catalogue": SANYA_OFFERS},
            )
        )
        number = str(seeded["excellent"])
        citizen_id = get_or_create_citizen(
            session, settings.id_hash_key, parse_id_number(number)
        ).id
        now = utcnow()
        for asker, purpose, minutes, answered, extra in (
            (SANYA, "verification", 90, True, {"category": "library", "scenario": "sy-bus"}),
            (SUZHOU, "tier-request", 30, False, {"reason": "租房押金减免申请"}),
        ):
            session.add(
                PartnerQuestion(
                    citizen_id=citizen_id,
                    asker=asker,
                    purpose=purpose,
                    answered=answered,
                    refusal=None if answered else "not-shared",
                    at=now - dt.timedelta(minutes=minutes),
                    **extra,
                )
            )
    try:
        with gunicorn(env, port, tmp_path / "server.log") as (url, _command, _process):
            yield LiveCity(url=url, db=db, settings=settings, **seeded)  # type: ignore[arg-type]
    finally:
        db.drop()


def cross_city(city: LiveCity, number: str) -> Any:
    """The ``xc`` claim of a code the city's app issues now (None when it carries none)."""
    claims = jwt.decode(city.code(number), options={"verify_signature": False})
    return claims.get("xc")


def axe_violations(page: Any) -> list[str]:
    results = Axe().run(page)
    assert results.response["testEngine"]["name"] == "axe-core"  # it ran, under the page's CSP
    return [
        f"{page.url}: {v['id']} ({v['impact']}) {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
    ]


def test_a_citizen_shares_with_a_partner_city_and_stops_on_a_phone(
    browser: Any, federated_city: LiveCity
) -> None:
    city = federated_city
    number = city.excellent  # common level 4 (AA)
    context, page, outside, errors = phone(browser)
    sign_in(page, city, number)
    violations: list[str] = []
    assert cross_city(city, number) is None

    # 1. The navigation leads to the partner cities page; every switch is off.
    page.get_by_role("link", name="跨城互认").click()
    page.wait_for_url("**/me/partners")
    sanya = page.get_by_role("switch", name="向三亚市共享")
    assert sanya.get_attribute("aria-checked") == "false"
    assert page.get_by_role("switch").count() == 3  # all, Sanya, Suzhou
    expect(page.get_by_text("看不到您的信用分或任何记录")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-partners")

    # 2. The switch shares at once: the next code names Sanya.
    sanya.click()
    page.wait_for_url(re.compile(r".*/me/partners\?shared=460200$"))
    assert page.get_by_role("status").inner_text().startswith("已开始向三亚市共享")
    assert page.get_by_role("switch", name="向三亚市共享").get_attribute("aria-checked") == "true"
    assert cross_city(city, number) == [SANYA]
    violations += axe_violations(page)

    # 3. Where my tier is recognised: Sanya's benefits, qualifying ones first, the rest folded.
    page.get_by_role("link", name="我的等级在哪些城市可用").click()
    page.wait_for_url("**/me/partners/benefits")
    offers = page.locator(f"#offers-{SANYA}")
    expect(offers.get_by_text("三亚公交八折")).to_be_visible()
    expect(offers.get_by_text("三亚图书馆延长借期")).to_be_visible()  # level 4 reaches it
    folded = offers.get_by_text("三亚博物馆免排队")
    expect(folded).not_to_be_visible()
    offers.get_by_text("另有 1 项需要更高等级").click()
    expect(folded).to_be_visible()
    expect(page.locator(f"#offers-{SUZHOU}").get_by_text("您尚未向苏州市共享等级")).to_be_visible()
    violations += axe_violations(page)
    screenshot(page, "citizen-partner-benefits")

    # 4. Who checked me: Sanya's check and Suzhou's refused tier request.
    page.get_by_role("link", name="查询记录").click()
    page.wait_for_url("**/me/checks")
    checks = page.locator("#checks > li")
    assert checks.count() == 2
    assert checks.nth(0).inner_text().startswith("苏州市 · 等级查询")
    assert "已拒绝" in checks.nth(0).inner_text()
    assert checks.nth(1).inner_text().startswith("三亚市 · 图书馆 · 核验")
    violations += axe_violations(page)

    # 5. Turning the switch off asks first; confirming withdraws at once.
    page.get_by_role("link", name="跨城互认").click()
    page.get_by_role("switch", name="向三亚市共享").click()
    page.wait_for_url(re.compile(r".*/me/partners/stop\?partner=460200$"))
    expect(page.get_by_role("heading", name="停止向三亚市共享？")).to_be_visible()
    assert cross_city(city, number) == [SANYA]  # nothing changed yet
    violations += axe_violations(page)
    screenshot(page, "citizen-partner-stop")
    page.get_by_role("button", name="确认停止共享").click()
    page.wait_for_url(re.compile(r".*/me/partners\?stopped=460200$"))
    assert page.get_by_role("switch", name="向三亚市共享").get_attribute("aria-checked") == "false"
    assert cross_city(city, number) is None
    history = page.locator("#consent-history > li")
    assert history.count() == 2
    assert "撤回共享" in history.nth(0).inner_text()
    assert "同意共享" in history.nth(1).inner_text()

    # 6. In English too, and every page fits 390 px at 200 % text.
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/me/partners\?.*lang=en$"))
    assert (
        page.get_by_role("link", name="Partners", exact=True).get_attribute("aria-current")
        == "page"
    )
    expect(page.get_by_role("switch", name="Share with Sanya")).to_be_visible()
    violations += axe_violations(page)
    too_wide = {}
    for path in PAGES:
        for language in ("en", "zh"):
            page.goto(f"{city.url}{path}{'&' if '?' in path else '?'}lang={language}")
            if language == "en":
                violations += axe_violations(page)
            page.evaluate(DOUBLE_TEXT)
            if overflow := horizontal_overflow(page):
                too_wide[f"{path} ({language})"] = overflow
    assert not too_wide, f"wider than 390 px at 200 % text: {too_wide}"
    assert not violations, "\n".join(violations)
    assert outside == [] and errors == []
    context.close()
