"""The citizen's phone page and partner cities (跨城互认), through the Flask test client, on SQLite
and PostgreSQL.

The city is 黄石市 (420200). It holds a trust list signed by an anchor it pins, naming itself, two
active partners (三亚市 460200, 苏州市 320500) and a suspended one (杭州市 330100). Alice's common
level is 3 (良好, tier A under the ITEMISED test model). Sharing is given and withdrawn on the page;
what a freshly issued code carries (``xc``) is read from the code's own claims.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.web.app import create_app
from credit_codes import consent
from credit_codes.models import CrossCityConsent
from credit_codes.operations import issue_credit_code
from federation import jws
from federation.models import PartnerBulletin, PartnerQuestion
from federation.operations import accept_list, common_scale
from points_engine.models import Citizen
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import (
    START,
    CitizenApp,
    Clock,
    Person,
    csrf,
    post,
    sign_in,
    text,
)
from tests.integration.test_citizen_pages import consented, venue_checks

HOME = "420200"
SANYA, SUZHOU, HANGZHOU = "460200", "320500", "330100"
CITIES = {
    HOME: ("黄石市", "Huangshi", "active"),
    SANYA: ("三亚市", "Sanya", "active"),
    SUZHOU: ("苏州市", "Suzhou", "active"),
    HANGZHOU: ("杭州市", "Hangzhou", "suspended"),
}
CATEGORIES = [
    {"code": "library", "name_zh": "图书馆", "name_en": "Libraries"},
    {"code": "transport", "name_zh": "公共交通", "name_en": "Transport"},
    {"code": "tourism", "name_zh": "文化旅游", "name_en": "Tourism"},
]


def benefit(code: str, category: str, zh: str, en: str, level: int) -> dict[str, Any]:
    return {
        "code": code,
        "category": category,
        "name_zh": zh,
        "name_en": en,
        "benefit_zh": f"{zh}的优惠",
        "benefit_en": f"{en}, discounted",
        "min_level": level,
    }


# Sanya's latest bulletin: Alice (level 3) can use the first two, not the last two.
SANYA_OFFERS = [
    benefit("sy-library-free", "library", "三亚图书馆免押金", "Sanya library, no deposit", 2),
    benefit("sy-bus", "transport", "三亚公交八折", "Sanya buses, 20% off", 3),
    benefit("sy-library-vip", "library", "三亚图书馆延长借期", "Sanya library, longer loans", 4),
    benefit("sy-museum", "tourism", "三亚博物馆免排队", "Sanya museum, no queue", 5),
]
SANYA_OLD_OFFER = benefit("sy-old", "library", "旧的权益", "An old offer", 1)


# --- a city in a federation --------------------------------------------------------------------


def sign_trust_list(anchor: Ed25519PrivateKey, *, seq: int = 1) -> str:
    """A trust list as a coordinator signs it: each member's entry signed by that member's key."""
    now = int(utcnow().timestamp())
    members = []
    for issuer, (zh, en, status) in CITIES.items():
        key = Ed25519PrivateKey.generate()
        entry = {
            "iss": issuer,
            "iat": now,
            "names": {"zh": zh, "en": en},
            "level": "prefecture",
            "base_url": f"https://credit.{en.lower()}.example",
            "signing_keys": [],
            "mappings": [],
            "current_mapping": None,
        }
        members.append(
            {
                "issuer": issuer,
                "status": status,
                "federation_key": jws.public_jwk_of(key.public_key()),
                "status_changed_at": now,
                "entry": jws.sign(entry, key, typ=jws.TYP_ENTRY),
            }
        )
    payload = {
        "format": 1,
        "seq": seq,
        "iat": now,
        "coordinator": HOME,
        "value_sets": {"common_levels": common_scale(), "categories": CATEGORIES},
        "members": members,
    }
    return jws.sign(payload, anchor, typ=jws.TYP_TRUST_LIST, with_key=True)


@contextmanager
def federated_app(
    db: ScratchDatabase, tmp: Path, anchor: Ed25519PrivateKey
) -> Iterator[CitizenApp]:
    """The citizen page's test app (as ``citizen_app``) for 黄石市, pinning ``anchor``."""
    app = create_app(
        {
            "database_url": db.url,
            "id_hash_key": factories.KEY,
            "instance_dir": tmp,
            "demo_mode": True,
            "city_code": HOME,
            "city_name": "黄石市",
            "city_name_en": "Huangshi",
            "trust_anchor": jws.thumbprint(jws.public_jwk_of(anchor.public_key())),
        }
    )
    clock = Clock(START)
    app.extensions["citizen_now"] = clock
    try:
        yield CitizenApp(app, clock, db, [])
    finally:
        app.extensions["citycredit"].engine.dispose()


def settings_of(city: CitizenApp) -> Settings:
    settings: Settings = city.app.extensions["citycredit"].settings
    return settings


def hold_trust_list(city: CitizenApp, anchor: Ed25519PrivateKey) -> None:
    with city.session() as session:
        accept_list(session, settings_of(city), sign_trust_list(anchor), now=utcnow(), actor="test")


@pytest.fixture
def anchor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def city(fresh_database: ScratchDatabase, tmp_path: Path, anchor: Ed25519PrivateKey) -> Any:
    with federated_app(fresh_database, tmp_path, anchor) as built:
        yield built


@pytest.fixture
def federated(city: CitizenApp, anchor: Ed25519PrivateKey) -> CitizenApp:
    hold_trust_list(city, anchor)
    return city


# --- what the pages and a new code say ---------------------------------------------------------


def cross_city_claim(city: CitizenApp, person: Person) -> Any:
    """The ``xc`` claim of a code issued now (None when the code carries none)."""
    with city.session() as session:
        citizen = session.get(Citizen, person.citizen_id)
        assert citizen is not None
        code = issue_credit_code(
            session, settings_of(city), citizen, now=city.clock(), actor="test"
        )
    claims = jwt.decode(code.token, options={"verify_signature": False})
    return claims.get("xc")


def switches(page: str) -> dict[str, bool]:
    """Each share switch on the partner cities page: on (aria-checked) or off, by city code."""
    return {
        code: checked == "true"
        for checked, code in re.findall(
            r'<button type="submit" class="switch" role="switch" aria-checked="(true|false)" '
            r'id="switch-([0-9a-z]+)"',
            page,
        )
    }


def share(client: FlaskClient, partner: str) -> Any:
    return post(client, "/me/partners", token_from="/me/partners", partner=partner)


def stop(client: FlaskClient, partner: str) -> Any:
    """Confirm on the second step (the POST form of the confirmation page)."""
    path = f"/me/partners/stop?partner={partner}"
    return post(client, "/me/partners/stop", token_from=path, partner=partner)


def plain(page: str) -> str:
    """The page's text with tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def section(page: str, element_id: str) -> str:
    found = re.search(rf'<(ul|section|p)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.DOTALL)
    assert found, f"no #{element_id} on the page"
    return found.group(2)


def history_lines(page: str) -> list[str]:
    return [
        plain(li) for li in re.findall(r"<li>(.*?)</li>", section(page, "consent-history"), re.S)
    ]


def city_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


# --- sharing ------------------------------------------------------------------------------------


def test_sharing_city_by_city_and_with_all_changes_what_a_new_code_carries(
    federated: CitizenApp,
) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)

    page = text(client.get("/me/partners"))
    assert "合作城市的场所只能得知您的通用信用等级，看不到您的信用分或任何记录" in page
    assert "每个城市得到的是一个互不相同的化名编号" in page
    # Active partners only: not this city, not a suspended member.
    assert switches(page) == {"all": False, SANYA: False, SUZHOU: False}
    assert cross_city_claim(city, alice) is None

    response = share(client, SANYA)
    assert response.status_code == 302 and response.location.endswith(f"?shared={SANYA}")
    page = text(client.get(response.location))
    assert "已开始向三亚市共享您的通用信用等级" in section(page, "flash")
    assert switches(page) == {"all": False, SANYA: True, SUZHOU: False}
    assert cross_city_claim(city, alice) == [SANYA]

    share(client, SUZHOU)
    assert cross_city_claim(city, alice) == [SUZHOU, SANYA]
    share(client, "*")
    assert cross_city_claim(city, alice) == "*"
    assert switches(text(client.get("/me/partners"))) == {"all": True, SANYA: True, SUZHOU: True}

    # Stopping one city while sharing with all asks first, and names who stays.
    asked = text(client.get(f"/me/partners/stop?partner={SANYA}"))
    assert "停止向三亚市共享？" in asked
    assert "逐一向其余城市共享" in asked and "苏州市" in section(asked, "remaining")
    assert "三亚市" not in section(asked, "remaining")
    assert cross_city_claim(city, alice) == "*"  # asking changes nothing
    response = stop(client, SANYA)
    assert response.status_code == 302 and response.location.endswith(f"?stopped={SANYA}")
    assert cross_city_claim(city, alice) == [SUZHOU]
    assert switches(text(client.get("/me/partners"))) == {
        "all": False,
        SANYA: False,
        SUZHOU: True,
    }

    # Stopping all ends every consent: the very next code is for this city alone.
    share(client, SANYA)
    stop(client, "*")
    assert cross_city_claim(city, alice) is None
    with city.session() as session:
        assert consent.standing(session, alice.citizen_id) == []
        assert not consent.shares_with(session, alice.citizen_id, SUZHOU)


def test_the_history_shows_each_consent_given_and_withdrawn_in_city_time(
    federated: CitizenApp,
) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)
    share(client, SANYA)
    stop(client, SANYA)
    share(client, "*")
    page = text(client.get("/me/partners"))
    with city.session() as session:
        rows = list(
            session.scalars(
                select(CrossCityConsent)
                .where(CrossCityConsent.citizen_id == alice.citizen_id)
                .order_by(CrossCityConsent.id)
            )
        )
    sanya, everyone = rows
    assert sanya.withdrawn_at is not None and everyone.withdrawn_at is None
    assert history_lines(page) == [
        f"{city_time(everyone.given_at)} — 全部合作城市 · 同意共享 (信用页面)",
        f"{city_time(sanya.withdrawn_at)} — 三亚市 · 撤回共享",
        f"{city_time(sanya.given_at)} — 三亚市 · 同意共享 (信用页面)",
    ]
    assert {r.channel for r in rows} == {"citizen-page"}
    english = text(client.get("/me/partners?lang=en"))
    assert history_lines(english)[0] == (
        f"{city_time(everyone.given_at)} — all partner cities · shared (this page)"
    )
    actions = [e.action for e in city.events(actor=f"citizen:{alice.citizen_id}")]
    assert actions.count("cross_city.consent_given") == 2
    assert actions.count("cross_city.consent_withdrawn") == 1
    assert "cross_city.consent_history" in actions


def test_withdrawing_is_a_second_step_that_says_what_happens_and_acts_at_once(
    federated: CitizenApp,
) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)
    share(client, SANYA)

    # The switch of a shared city is a form that only asks (GET): nothing is withdrawn by it.
    page = text(client.get("/me/partners"))
    form = re.search(r'<li id="partner-460200">\s*<form method="(\w+)" action="([^"]+)"', page)
    assert form and form.groups() == ("get", "/me/partners/stop")
    asked = client.get(f"/me/partners/stop?partner={SANYA}")
    assert asked.status_code == 200
    page = text(asked)
    happens = plain(section(page, "what-happens"))
    assert "立即生效：从现在起生成的信用码在三亚市不能再使用" in happens
    assert "三亚市对您等级的查询（扫码核验、办事时的等级查询）将被拒绝" in happens
    assert "最长 120 秒" in happens
    assert 'action="/me/partners/stop"' in page and 'name="csrf_token"' in page
    assert 'href="/me/partners">取消</a>' in page
    assert cross_city_claim(city, alice) == [SANYA]

    # A forged confirmation (no CSRF token) is refused and changes nothing.
    refused = client.post("/me/partners/stop", data={"partner": SANYA})
    assert refused.status_code == 400
    assert cross_city_claim(city, alice) == [SANYA]

    done = stop(client, SANYA)
    assert done.status_code == 302
    flash = section(text(client.get(done.location)), "flash")
    assert "已停止向三亚市共享。新生成的信用码在那里不再可用，对方的查询将被拒绝。" in flash
    assert cross_city_claim(city, alice) is None
    with city.session() as session:
        assert not consent.shares_with(session, alice.citizen_id, SANYA)
    # Nothing left to stop: the confirmation page is not offered again.
    again = client.get(f"/me/partners/stop?partner={SANYA}")
    assert again.status_code == 302 and again.location.endswith("/me/partners")


def test_only_active_partners_can_be_chosen_and_a_forged_share_changes_nothing(
    federated: CitizenApp,
) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)
    for partner in (HANGZHOU, HOME, "999999", ""):
        response = share(client, partner)
        assert response.status_code == 422, partner
        assert "不是合作城市" in text(response)
    refused = client.post("/me/partners", data={"partner": SANYA})  # no CSRF token
    assert refused.status_code == 400
    assert cross_city_claim(city, alice) is None


def test_a_consent_to_a_city_that_was_later_suspended_can_still_be_withdrawn(
    federated: CitizenApp,
) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)
    with city.session() as session:
        citizen = session.get(Citizen, alice.citizen_id)
        assert citizen is not None
        consent.give(session, citizen, HANGZHOU, channel="counter", actor="test")
    page = text(client.get("/me/partners"))
    assert switches(page)[HANGZHOU] is True
    assert "该城市目前已暂停或退出互认，您对它的授权仍然有效，可以撤回" in page
    assert "(counter)" in plain(section(page, "consent-history"))
    stop(client, HANGZHOU)
    assert cross_city_claim(city, alice) is None


def test_without_partner_cities_the_page_says_so(city: CitizenApp) -> None:
    alice = city.seed().alice
    client = consented(city, alice)
    page = text(client.get("/me/partners"))
    assert "本市目前还没有合作城市" in page and switches(page) == {}
    assert "本市目前还没有合作城市" in text(client.get("/me/partners/benefits"))
    assert client.get("/me/checks").status_code == 200


# --- who checked me -----------------------------------------------------------------------------


def ask(
    session: Session,
    person: Person,
    asker: str,
    purpose: str,
    at: dt.datetime,
    *,
    answered: bool,
    category: str | None = None,
    scenario: str | None = None,
    reason: str | None = None,
) -> None:
    session.add(
        PartnerQuestion(
            citizen_id=person.citizen_id,
            asker=asker,
            purpose=purpose,
            scenario=scenario,
            category=category,
            reason=reason,
            answered=answered,
            refusal=None if answered else "no-cross-city-consent",
            at=at,
        )
    )


def bulletin(session: Session, issuer: str, seq: int, catalogue: list[dict[str, Any]]) -> None:
    session.add(
        PartnerBulletin(
            issuer=issuer,
            seq=seq,
            day=dt.date(2026, 6, 28) + dt.timedelta(days=seq),
            payload={"iss": issuer, "seq": seq, "visitors": [], "catalogue": catalogue},
        )
    )


def test_who_checked_me_lists_partner_cities_checks_with_local_ones_in_time_order(
    federated: CitizenApp,
) -> None:
    city = federated
    seeded = city.seed()
    alice = seeded.alice
    client = consented(city, alice)
    venue_checks(city, alice)  # a library desk here, at 10:00 city time
    with city.session() as session:
        bulletin(session, SANYA, 1, SANYA_OFFERS)
        ask(session, alice, SANYA, "redemption", START - dt.timedelta(hours=1), answered=True,
            category="library", scenario="sy-library-free")  # fmt: skip
        ask(session, alice, SANYA, "verification", START - dt.timedelta(minutes=30),
            answered=True, category="library", scenario="sy-library-free")  # fmt: skip
        ask(session, alice, SUZHOU, "tier-request", START + dt.timedelta(minutes=30),
            answered=False, reason="租房押金减免申请")  # fmt: skip
        ask(session, seeded.bob, SANYA, "verification", START, answered=True, category="library")

    page = text(client.get("/me/checks"))
    items = [plain(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", section(page, "checks"), re.S)]
    assert len(items) == 4  # Bob's check is not Alice's
    tier_request, local, verification, redemption = items
    assert tier_request.startswith("苏州市 · 等级查询 · 2026-06-30 10:30")
    assert "对方说明的事由：租房押金减免申请" in tier_request
    assert "已拒绝：您当时未向该城市共享" in tier_request
    assert local.startswith("黄石港区图书馆 · 2026-06-30 10:00") and "符合条件" in local
    assert verification.startswith("三亚市 · 图书馆 · 核验 · 2026-06-30 09:30")
    assert "三亚图书馆免押金" in verification  # named as Sanya's bulletin names it
    assert "已告知通用等级" in verification and "已拒绝" not in verification
    assert redemption.startswith("三亚市 · 图书馆 · 使用权益 · 2026-06-30 09:00")

    english = text(client.get("/me/checks?lang=en"))
    items = [
        plain(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", section(english, "checks"), re.S)
    ]
    assert items[0].startswith("Suzhou asked for your tier · 2026-06-30 10:30")
    assert "refused: you had not shared with this city" in items[0]
    assert items[2].startswith("Sanya checked your code (Libraries) · 2026-06-30 09:30")
    assert "Sanya library, no deposit" in items[2]
    actions = [e.action for e in city.events(actor=f"citizen:{alice.citizen_id}")]
    assert {"citizen.checks", "citizen.partner_checks"} <= set(actions)


def test_my_data_holds_cross_city_consents_and_partner_questions(federated: CitizenApp) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)
    share(client, SANYA)
    with city.session() as session:
        ask(session, alice, SANYA, "verification", START, answered=True, category="library")
    held = json.loads(text(client.get("/me/data.json")))
    assert [
        (c["partner"], c["channel"], c["withdrawn_at"]) for c in held["cross_city_consents"]
    ] == [(SANYA, "citizen-page", None)]
    assert [(q["partner"], q["partner_zh"], q["purpose"], q["answered"])
            for q in held["partner_checks"]] == [(SANYA, "三亚市", "verification", True)]  # fmt: skip


# --- where my tier is recognised --------------------------------------------------------------------


def offers_of(page: str, partner: str) -> str:
    return section(page, f"offers-{partner}")


def test_where_my_tier_is_recognised_only_for_cities_i_share_with(federated: CitizenApp) -> None:
    city = federated
    alice = city.seed().alice
    client = consented(city, alice)  # common level 3 (良好)
    with city.session() as session:
        bulletin(session, SANYA, 1, [SANYA_OLD_OFFER])
        bulletin(session, SANYA, 2, SANYA_OFFERS)

    page = text(client.get("/me/partners/benefits"))
    assert "您的通用等级： 良好 （3级，共5级）" in plain(page)
    sanya = offers_of(page, SANYA)
    assert "您尚未向三亚市共享等级" in sanya and "三亚市向来访者开放 4 项权益" in sanya
    assert f'href="/me/partners#partner-{SANYA}"' in sanya
    assert "三亚公交八折" not in sanya  # nothing is worked out for a city not shared with

    share(client, SANYA)
    page = text(client.get("/me/partners/benefits"))
    sanya = offers_of(page, SANYA)
    assert "旧的权益" not in sanya  # the latest bulletin counts
    headings = re.findall(r"<h3>(.*?)</h3>", sanya)
    assert headings == ["图书馆", "公共交通", "文化旅游"]  # what can be used first
    library = sanya.split("<h3>图书馆</h3>")[1].split("<h3>")[0]
    usable, folded = library.split('<details class="not-yet">')
    assert "三亚图书馆免押金" in usable and "可享受" in usable
    assert "三亚图书馆延长借期" in folded and "需达到 优秀" in folded
    assert "另有 1 项需要更高等级" in folded
    transport = sanya.split("<h3>公共交通</h3>")[1].split("<h3>")[0]
    assert "三亚公交八折" in transport and "<details" not in transport
    tourism = sanya.split("<h3>文化旅游</h3>")[1]
    assert "此类权益您暂不符合条件" in tourism and "需达到 极好" in tourism
    # Suzhou is not shared with yet: a prompt, not benefits.
    assert "您尚未向苏州市共享等级" in offers_of(page, SUZHOU)
    assert HANGZHOU not in page  # a suspended member offers nothing

    share(client, "*")
    page = text(client.get("/me/partners/benefits?lang=en"))
    assert "Suzhou has announced no benefits for visitors yet." in offers_of(page, SUZHOU)
    sanya = offers_of(page, SANYA)
    assert "Sanya buses, 20% off" in sanya and "needs Very good" in sanya
    assert "Your common level: Good (3 of 5)" in plain(page)
    actions = [e.action for e in city.events(actor=f"citizen:{alice.citizen_id}")]
    assert actions.count("citizen.partner_recognition") == 3


def test_without_a_score_nothing_is_usable_in_a_partner_city(federated: CitizenApp) -> None:
    city = federated
    bob = city.seed().bob
    client = city.client()
    sign_in(client, bob.number)  # no consent to scoring: no level
    with city.session() as session:
        bulletin(session, SANYA, 1, SANYA_OFFERS)
    share(client, SANYA)
    page = text(client.get("/me/partners/benefits"))
    assert "您还没有信用分" in page
    sanya = offers_of(page, SANYA)
    assert "可享受" not in sanya and sanya.count('<details class="not-yet">') == 3


# --- navigation and English -----------------------------------------------------------------------


def test_every_page_links_partner_cities_and_speaks_english(federated: CitizenApp) -> None:
    city = federated
    client = consented(city, city.seed().alice)
    home = text(client.get("/me/"))
    assert '<a href="/me/partners">跨城互认</a>' in home
    assert 'href="/me/partners/benefits"' in text(client.get("/me/benefits"))
    page = text(client.get("/me/partners?lang=en"))
    assert '<a href="/me/partners" aria-current="page">Partners</a>' in page
    assert "venues in a partner city learn only your common level, never your score" in page
    assert "Each city gets a different pseudonym for you" in page
    assert switches(page) == {"all": False, SANYA: False, SUZHOU: False}
    assert "Share with Sanya" in page and "Share with all partner cities" in page
    assert csrf(client, "/me/partners")
