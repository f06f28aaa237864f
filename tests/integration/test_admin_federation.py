"""The admin's federation pages: this city's keys and trust list, members' keys and tier mappings side
by side, membership changes with four eyes at the coordinator, and visitors from partner cities."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core import actors
from citycredit.core.clients import register_client
from citycredit.core.config import Settings
from citycredit.web.app import create_app
from credit_codes.models import Redemption, Verification, Visitor
from federation import coordinator, jws
from federation import keys as fed_keys
from federation.models import Member, MemberChange, PublishedTrustList
from federation.operations import note_sync, own_entry
from scenarios import operations as registry
from scenarios.models import Scenario, ScenarioVersion
from tests import factories
from tests.databases import ScratchDatabase
from tests.integration.admin_support import START, AdminApp, Clock, csrf, post, signed_in
from tests.rule_cases import ITEMISED

KEY_SECRET = bytes(range(32, 64))
CITY = {"city_code": "420200", "city_name": "黄石市", "city_name_en": "Huangshi"}


# --- a federation, in-process -----------------------------------------------------------------------


@dataclass
class Partner:
    """A partner city of the test: its own federation and code-signing keys, and its tier table."""

    issuer: str
    name_zh: str
    name_en: str
    tiers: list[tuple[str, str, str, int]]  # code, name_zh, name_en, common level
    mapping_version: int
    federation_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwk(self) -> dict[str, str]:
        return jws.public_jwk_of(self.federation_key.public_key())

    @property
    def fingerprint(self) -> str:
        return jws.thumbprint(self.jwk)

    @property
    def kid(self) -> str:
        return jws.thumbprint(jws.public_jwk_of(self.signing_key.public_key()))

    @property
    def base_url(self) -> str:
        return f"https://credit.{self.name_en.lower()}.example"

    def entry(self, now: dt.datetime) -> str:
        signing = {
            **jws.public_jwk_of(self.signing_key.public_key()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
            "nbf": int((now - dt.timedelta(days=10)).timestamp()),
            "exp": None,
        }
        payload = {
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "names": {"zh": self.name_zh, "en": self.name_en},
            "level": "prefecture",
            "base_url": self.base_url,
            "signing_keys": [signing],
            "mappings": [
                {
                    "version": self.mapping_version,
                    "tiers": [
                        {"code": c, "name_zh": zh, "name_en": en, "common_level": level}
                        for c, zh, en, level in self.tiers
                    ],
                }
            ],
            "current_mapping": self.mapping_version,
        }
        return jws.sign(payload, self.federation_key, typ=jws.TYP_ENTRY)


def sanya() -> Partner:
    return Partner(
        "460200",
        "三亚市",
        "Sanya",
        [
            ("A+", "甲上", "A plus", 5),
            ("A", "甲", "A", 4),
            ("B", "乙", "B", 3),
            ("C", "丙", "C", 2),
            ("D", "丁", "D", 1),
        ],
        mapping_version=7,
    )


def wuhan() -> Partner:
    return Partner(
        "420100",
        "武汉市",
        "Wuhan",
        [
            ("AAA", "AAA级", "AAA", 5),
            ("AA", "AA级", "AA", 5),
            ("A", "A级", "A", 4),
            ("B", "B级", "B", 3),
            ("C", "C级", "C", 2),
            ("D", "D级", "D", 1),
        ],
        mapping_version=3,
    )


@dataclass
class Federation:
    own_fingerprint: str
    anchor_fingerprint: str
    partners: list[Partner]


def make_keys(session: Session, secret: bytes = KEY_SECRET) -> tuple[str, str]:
    """This city's federation key and the trust anchor (it coordinates): their fingerprints."""
    city = fed_keys.create(session, secret, "city")
    anchor = fed_keys.create(session, secret, "anchor")
    return city.fingerprint, anchor.fingerprint


def seed_federation(
    session: Session,
    settings: Settings,
    partners: list[Partner],
    *,
    now: dt.datetime,
    publish_model: bool = True,
) -> None:
    """This city (coordinator) and its partners registered, their entries held, a list signed."""
    if publish_model:  # this city's tier table: AA→4, A→3, B→2, C→1, D→1
        factories.published(session, ITEMISED)
    city = fed_keys.current(session, "city")
    assert city is not None
    session.add(
        Member(
            issuer=settings.city_code,
            base_url=settings.public_url,
            federation_jwk=city.public_jwk,
            status="active",
            status_changed_at=now - dt.timedelta(days=30),
            joined_at=now - dt.timedelta(days=30),
            entry=own_entry(session, settings, now=now),
            entry_fetched_at=now,
        )
    )
    for partner in partners:
        session.add(
            Member(
                issuer=partner.issuer,
                base_url=partner.base_url,
                federation_jwk=partner.jwk,
                status="active",
                status_changed_at=now - dt.timedelta(days=20),
                joined_at=now - dt.timedelta(days=20),
                entry=partner.entry(now),
                entry_fetched_at=now,
            )
        )
    session.flush()
    published = coordinator.compile_list(session, settings, now=now)
    assert published is not None and published.seq == 1


_serial = itertools.count(1)


def seed_visitors(
    session: Session, key_secret: bytes, visits: list[tuple[str, str, dt.datetime, bool]]
) -> None:
    """Visitors' codes verified here: (partner, scenario category, when, redeemed too)."""
    operator = registry.ensure_operator(session, "city-parks", "市园林局", "City Parks")
    client = register_client(
        session, name="gate", kind="venue", scopes=["verify", "redeem"], key_secret=key_secret
    ).client
    scenarios: dict[str, tuple[Scenario, ScenarioVersion]] = {}
    for category in sorted({v[1] for v in visits}):
        scenario = registry.create_scenario(
            session,
            actors.Actor("seed"),
            code=f"visitor-{category}",
            operator=operator,
            category=category,
            content={
                "name_zh": f"来访者{category}",
                "name_en": f"Visitors {category}",
                "benefit_zh": "优惠",
                "benefit_en": "a discount",
                "eligibility": {"min_common_tier": 3},
                "open_to_visitors": True,
            },
        )
        version = registry.publish_directly(
            session, scenario, submitter=actors.Actor("seed"), publisher=actors.SYSTEM
        )
        scenarios[category] = (scenario, version)
    for issuer, category, at, redeemed in visits:
        n = next(_serial)
        visitor = Visitor(issuer=issuer, pseudonym=f"p{n:04d}", first_seen_at=at)
        session.add(visitor)
        session.flush()
        scenario, version = scenarios[category]
        verification = Verification(
            public_id=f"v{n:06d}",
            client_id=client.id,
            visitor_id=visitor.id,
            scenario_id=scenario.id,
            scenario_version_id=version.id,
            token_jti=f"j{n:06d}",
            eligible=True,
            common_tier=4,
            at=at,
        )
        session.add(verification)
        session.flush()
        if redeemed:
            session.add(
                Redemption(
                    public_id=f"r{n:06d}",
                    verification_id=verification.id,
                    client_id=client.id,
                    visitor_id=visitor.id,
                    issuer=issuer,
                    scenario_id=scenario.id,
                    scenario_version_id=version.id,
                    token_jti=f"j{n:06d}",
                    day=at.date(),
                    at=at,
                )
            )
    session.flush()


# --- the admin on that federation -------------------------------------------------------------------


@contextmanager
def federated_admin(
    db: ScratchDatabase, tmp: Path, anchor: str, **overrides: Any
) -> Iterator[AdminApp]:
    app = create_app(
        {
            "database_url": db.url,
            "id_hash_key": b"k" * 32,
            "key_secret": KEY_SECRET,
            "instance_dir": tmp,
            "public_url": "https://credit.huangshi.example",
            "federation_coordinator": True,
            "trust_anchor": anchor,
            **CITY,
            **overrides,
        }
    )
    clock = Clock()
    app.extensions["admin"].now = clock
    try:
        yield AdminApp(app, clock)
    finally:
        app.extensions["citycredit"].engine.dispose()


@pytest.fixture
def federation_setup(fresh_database: ScratchDatabase) -> Federation:
    from citycredit.core.db import make_session_factory, unit_of_work

    with unit_of_work(make_session_factory(fresh_database.engine)) as session:
        own, anchor = make_keys(session)
    return Federation(own, anchor, [sanya(), wuhan()])


@pytest.fixture
def site(
    fresh_database: ScratchDatabase, tmp_path: Path, federation_setup: Federation
) -> Iterator[AdminApp]:
    with federated_admin(fresh_database, tmp_path, federation_setup.anchor_fingerprint) as admin:
        settings = admin.app.extensions["citycredit"].settings
        with admin.session() as session:
            seed_federation(session, settings, federation_setup.partners, now=START)
            registry.ensure_operator(session, "city-library", "市图书馆", "City Library")
        admin.add_user("root", "platform_admin")
        admin.add_user("root2", "platform_admin")
        admin.add_user("watcher", "auditor")
        admin.add_user("librarian", "operator", operator_code="city-library")
        admin.add_user("clerk1", "clerk")
        admin.add_user("rev1", "reviewer")
        yield admin


class Tables(HTMLParser):
    """The text of every cell of every table with an id: {id: [[cell, …], …]} (rows in order)."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and dict(attrs).get("id"):
            self._table = dict(attrs)["id"]
            self.tables[self._table or ""] = []
        elif self._table and tag == "tr":
            self._row = []
        elif self._row is not None and tag in ("td", "th"):
            self._cell = []
        elif self._cell is not None and tag == "br":
            self._cell.append(" / ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr" and self._table and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _page(client: Any, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    text: str = response.get_data(as_text=True)
    return text


# --- this city in the federation ----------------------------------------------------------------------


def test_the_overview_shows_keys_the_held_list_and_the_members_mappings_side_by_side(
    site: AdminApp, federation_setup: Federation
) -> None:
    page = _page(signed_in(site, "watcher"), "/admin/federation")
    # This city's fingerprint, whole and in groups of four to read out by phone, and the anchor.
    own = federation_setup.own_fingerprint
    assert f'<pre id="own-fingerprint">{own}</pre>' in page
    assert " ".join(own[i : i + 4] for i in range(0, len(own), 4)) in page
    assert f'<pre id="pinned-anchor">{federation_setup.anchor_fingerprint}</pre>' in page
    assert "第 1 版" in page and "2026-06-30 10:00" in page and "有效" in page
    assert "已过期" not in page
    # Each member with its federation key and code-signing keys.
    sanya_, wuhan_ = federation_setup.partners
    for partner in (sanya_, wuhan_):
        assert partner.fingerprint in page and partner.kid in page
        assert f"{partner.name_zh} <code>{partner.issuer}</code>" in page
    # The mapping table: one row per common level 5…1, one column per member (sorted by code).
    rows = Tables(page).tables["mappings"]
    assert rows[0] == [
        "通用等级",
        "武汉市 / 420100 · 映射 v3",
        "黄石市 / 420200 · 映射 v1",
        "三亚市 / 460200 · 映射 v7",
    ]
    assert rows[1:] == [
        ["5 极好", "AAA AAA级 / AA AA级", "—", "A+ 甲上"],
        ["4 优秀", "A A级", "AA", "A 甲"],
        ["3 良好", "B B级", "A", "B 乙"],
        ["2 一般", "C C级", "B", "C 丙"],
        ["1 待提升", "D D级", "C / D", "D 丁"],
    ]
    english = _page(signed_in(site, "root"), "/admin/federation?lang=en")
    assert "Tier mappings on the common scale" in english
    assert Tables(english).tables["mappings"][1][0] == "5 Excellent"
    assert "Sanya" in english and "sequence 1" in english


def test_syncs_and_a_trust_list_grown_too_old_are_flagged(site: AdminApp) -> None:
    with site.session() as session:
        note_sync(session, "trust-list", now=START - dt.timedelta(minutes=5), error=None)
        note_sync(session, "bulletins:460200", now=START - dt.timedelta(hours=2), error=None)
        note_sync(
            session,
            "bulletins:460200",
            now=START - dt.timedelta(minutes=15),
            error="partner-unreachable: connection refused",
        )
    root = signed_in(site, "root")
    page = _page(root, "/admin/federation")
    assert "已过期" not in page
    assert "三亚市 的公报" in page and "partner-unreachable: connection refused" in page
    assert "2026-06-30 08:00" in page  # the bulletins' last success, in the city's time
    assert "信任列表" in page and "2026-06-30 09:55" in page

    # Three days without a new list: older than the 48 hours allowed, and the page says so.
    site.clock.advance(days=3)
    root = signed_in(site, "root")
    page = _page(root, "/admin/federation")
    assert "已过期" in page and "trust-list-too-old" in page
    assert "已过 3 天 0 小时" in page and "最长 2 天 0 小时" in page


# --- membership at the coordinator, with four eyes -------------------------------------------------------


def _registered(page: str) -> dict[str, str]:
    """City code → its status cell, from the registered members' table."""
    out = {}
    for row in Tables(page).tables["registered"][1:]:
        code = row[0].split(" / ")[1]
        out[code] = row[1].split(" / ")[0]
    return out


def test_a_suspension_takes_a_second_admin_and_then_a_new_list(site: AdminApp) -> None:
    root, root2 = signed_in(site, "root"), signed_in(site, "root2")
    page = _page(root, "/admin/federation/members")
    assert _registered(page) == {"420100": "正常", "420200": "正常", "460200": "正常"}
    assert "最新签发的信任列表：第 1 版。" in page

    proposed = post(root, "/admin/federation/members", action="suspend", issuer="460200")
    assert proposed.status_code == 302
    page = _page(root, "/admin/federation/members")
    assert "已提议 #1：暂停 460200" in page
    assert "#1 暂停 三亚市" in page and "这是您提出的变更" in page

    # The proposer's own approval is refused, and nothing changes.
    own = post(root, "/admin/federation/changes/1/approve")
    assert own.status_code == 302
    page = _page(root, "/admin/federation/members")
    assert "四眼原则：成员变更须由提议人以外的另一位平台管理员批准。" in page
    assert _registered(page)["460200"] == "正常"
    with site.session() as session:
        change = session.get(MemberChange, 1)
        assert change is not None and change.state == "pending"

    # Another platform admin approves: suspended at once, and a new list is signed with it.
    assert "这是您提出的变更" not in _page(root2, "/admin/federation/members")
    approved = post(root2, "/admin/federation/changes/1/approve")
    assert approved.status_code == 302
    page = _page(root2, "/admin/federation/members")
    assert "已批准 #1 暂停 460200；已签发信任列表第 2 版。" in page
    assert _registered(page) == {"420100": "正常", "420200": "正常", "460200": "已暂停"}
    history = Tables(page).tables["history"]
    # Who proposed and who decided (the times are the database's own clock, not the test's).
    assert [cell.split(" / ")[0] for cell in history[1]] == [
        "1",
        "暂停 460200",
        "已批准",
        "admin:root",
        "admin:root2",
    ]
    overview = _page(root, "/admin/federation")
    assert "第 2 版" in overview
    assert '三亚市 <code>460200</code> <span class="badge disabled">已暂停</span>' in overview
    with site.session() as session:
        assert (
            session.scalar(
                select(PublishedTrustList.seq).order_by(PublishedTrustList.seq.desc()).limit(1)
            )
            == 2
        )

    # A proposal can be rejected too; the member's status stays.
    assert (
        post(root2, "/admin/federation/members", action="resume", issuer="460200").status_code
        == 302
    )
    assert post(root, "/admin/federation/changes/2/reject").status_code == 302
    page = _page(root, "/admin/federation/members")
    assert "已驳回 #2 恢复 460200" in page and _registered(page)["460200"] == "已暂停"
    assert Tables(page).tables["history"][1][:3] == ["2", "恢复 460200", "已驳回"]

    actions = [(e.actor, e.action) for e in site.events() if e.action.startswith("federation.")]
    assert ("admin:root", "federation.propose_suspend") in actions
    assert ("admin:root2", "federation.approve_suspend") in actions
    assert ("admin:root2", "federation.propose_resume") in actions
    assert ("admin:root", "federation.reject_resume") in actions
    # The refused approval left its trace too (the admin's safety net), by the one who tried.
    refused = [e for e in site.events("admin.request") if e.actor == "admin:root"]
    assert any(e.detail.get("endpoint") == "admin.decide_change" for e in refused)


def test_proposals_name_what_is_wrong(site: AdminApp) -> None:
    root = signed_in(site, "root")
    bad = post(root, "/admin/federation/members", action="join", issuer="", base_url="ftp://x")
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "请填写城市代码" in text and "网址须以 https:// 开头" in text
    assert "请填写该城市信用办通过电话或信函告知的联盟密钥指纹" in text
    again = post(root, "/admin/federation/members", action="join", issuer="420100",
                 base_url="https://credit.wuhan.example", fingerprint="x" * 43)  # fmt: skip
    assert again.status_code == 422
    assert "420100 已是成员（active）。" in again.get_data(as_text=True)
    unknown = post(root, "/admin/federation/members", action="leave", issuer="999999")
    assert unknown.status_code == 422 and "999999 不是成员。" in unknown.get_data(as_text=True)
    with site.session() as session:
        assert session.scalars(select(MemberChange)).all() == []


@contextmanager
def serving_entry(partner: Partner, now: dt.datetime) -> Iterator[str]:
    """A partner's deployment on loopback publishing its signed entry and federation key."""
    body = json.dumps({"entry": partner.entry(now), "federation_key": partner.jwk}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/api/v1/federation/entry"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_join_reads_the_citys_key_and_holds_it_to_the_fingerprint_given_by_phone(
    site: AdminApp,
) -> None:
    changsha = Partner("430100", "长沙市", "Changsha", [("A", "A", "A", 4)], mapping_version=1)
    root, root2 = signed_in(site, "root"), signed_in(site, "root2")
    with serving_entry(changsha, START) as url:
        impostor = Ed25519PrivateKey.generate().public_key()
        wrong = jws.thumbprint(jws.public_jwk_of(impostor))
        refused = post(root, "/admin/federation/members", action="join", issuer="430100",
                       base_url=url, fingerprint=wrong)  # fmt: skip
        assert refused.status_code == 422
        text = refused.get_data(as_text=True)
        assert f"发布的密钥指纹为 {changsha.fingerprint}，而不是 {wrong}" in text
        assert "在该城市信用办确认之前请勿继续" in text
        # Read out by phone in groups of four: the spaces are not part of it.
        spoken = " ".join(changsha.fingerprint[i : i + 4] for i in range(0, 43, 4))
        proposed = post(root, "/admin/federation/members", action="join", issuer="430100",
                        base_url=url, fingerprint=spoken)  # fmt: skip
        assert proposed.status_code == 302
        unreachable = post(root, "/admin/federation/members", action="join", issuer="430200",
                           base_url=url + "/nowhere", fingerprint=wrong)  # fmt: skip
        assert unreachable.status_code == 422
        assert "无法读取该城市发布的联盟条目" in unreachable.get_data(as_text=True)
    page = _page(root2, "/admin/federation/members")
    assert "#1 加入 430100" in page and changsha.fingerprint in page and url in page
    assert post(root2, "/admin/federation/changes/1/approve").status_code == 302
    page = _page(root2, "/admin/federation/members")
    assert "已批准 #1 加入 430100；" in page  # and the list is signed with it, or by the scheduler
    assert _registered(page)["430100"] == "正常"
    row = next(r for r in Tables(page).tables["registered"] if "430100" in r[0])
    assert row[2] == changsha.fingerprint and row[3].startswith("读取于")  # read at proposal
    with site.session() as session:
        member = session.scalar(select(Member).where(Member.issuer == "430100"))
        assert member is not None and member.base_url == url
        assert jws.thumbprint(member.federation_jwk) == changsha.fingerprint


# --- who sees the section ------------------------------------------------------------------------------


def test_only_the_platform_admin_changes_the_auditor_reads_and_others_do_not_see_it(
    site: AdminApp,
) -> None:
    paths = ("/admin/federation", "/admin/federation/members", "/admin/federation/visitors")
    for username in ("librarian", "clerk1", "rev1"):
        client = signed_in(site, username)
        assert "合作城市" not in _page(client, "/admin/")
        for path in paths:
            assert client.get(path).status_code == 403, (username, path)
        denied = post(client, "/admin/federation/members", action="suspend", issuer="460200")
        assert denied.status_code == 403

    watcher = signed_in(site, "watcher")
    assert "合作城市" in _page(watcher, "/admin/")
    for path in paths:
        page = _page(watcher, path)
        assert "提交提议" not in page
    assert (
        post(watcher, "/admin/federation/members", action="suspend", issuer="460200").status_code
        == 403
    )

    root, root2 = signed_in(site, "root"), signed_in(site, "root2")
    assert (
        post(root, "/admin/federation/members", action="suspend", issuer="460200").status_code
        == 302
    )
    # The auditor sees the pending change, but no buttons to decide it, and cannot.
    page = _page(watcher, "/admin/federation/members")
    assert "#1 暂停 三亚市" in page and "批准 #1" not in page
    assert post(watcher, "/admin/federation/changes/1/approve").status_code == 403
    assert "批准 #1" in _page(root2, "/admin/federation/members")
    with site.session() as session:
        change = session.get(MemberChange, 1)
        assert change is not None and change.state == "pending"
    assert not any(e.action.startswith("federation.approve") for e in site.events())


def test_a_member_that_does_not_coordinate_has_no_membership_page(
    fresh_database: ScratchDatabase, tmp_path: Path, federation_setup: Federation, site: AdminApp
) -> None:
    with federated_admin(
        fresh_database,
        tmp_path / "member",
        federation_setup.anchor_fingerprint,
        federation_coordinator=False,
        federation_coordinator_url="https://credit.huangshi.example",
    ) as member:
        client = signed_in(member, "root")
        page = _page(client, "/admin/federation")
        assert "成员管理（协调方）" not in page and "https://credit.huangshi.example" in page
        assert "本部署持有的信任锚密钥" not in page
        assert client.get("/admin/federation/members").status_code == 404
        refused = client.post(
            "/admin/federation/members",
            data={"action": "suspend", "issuer": "460200", "csrf_token": csrf(client, "/admin/")},
        )
        assert refused.status_code == 404


def test_a_city_not_yet_federated_is_told_what_to_do(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with federated_admin(fresh_database, tmp_path, "", federation_coordinator=False) as city:
        city.add_user("root", "platform_admin")
        client = signed_in(city, "root")
        page = _page(client, "/admin/federation")
        assert "尚未生成" in page and "citycredit federation init" in page
        assert "未设置（CITYCREDIT_TRUST_ANCHOR）：本市尚未加入联盟" in page
        assert "尚未持有信任列表" in page and "尚未同步过。" in page
        assert "没有成员可对照" in page
        english = _page(client, "/admin/federation?lang=en")
        assert "not made yet" in english and "none held yet" in english
        assert "No visitors from partner cities" in _page(client, "/admin/federation/visitors")


# --- visitors from partner cities ---------------------------------------------------------------------


def test_visitors_per_partner_per_day_and_per_category(site: AdminApp) -> None:
    key_secret = site.app.extensions["citycredit"].settings.key_secret
    day = dt.timedelta(days=1)
    visits = [
        ("460200", "tourism", START - dt.timedelta(hours=1), True),
        ("460200", "tourism", START - dt.timedelta(hours=1), False),
        ("460200", "transport", START - day, True),
        ("460200", "tourism", START - 3 * day, False),
        ("420100", "tourism", START - 3 * day, True),
        # Before the 30 days shown: not counted.
        ("420100", "transport", START - 40 * day, True),
    ]
    with site.session() as session:
        seed_visitors(session, key_secret, visits)
    page = _page(signed_in(site, "watcher"), "/admin/federation/visitors")
    assert '<svg class="chart"' in page and 'role="img"' in page
    assert "近 30 天合作城市来访者每日核验次数（按来源城市）</title>" in page
    assert ">核验次数</text>" in page  # the y axis says what it counts
    assert "06-30 三亚市: 2</title>" in page and "06-27 武汉市: 1</title>" in page
    rows = Tables(page).tables["by-category"]
    assert rows[1:] == [
        ["三亚市 460200", "信易游·文化旅游", "3", "1"],
        ["三亚市 460200", "信易行·公共交通", "1", "1"],
        ["武汉市 420100", "信易游·文化旅游", "1", "1"],
        ["三亚市 合计", "4", "2"],
        ["武汉市 合计", "1", "1"],
    ]
    english = _page(signed_in(site, "root"), "/admin/federation/visitors?lang=en")
    assert "Verifications of visitors&#39; codes per day by partner city" in english
    assert ["Sanya 460200", "Tourism", "3", "1"] in Tables(english).tables["by-category"]


def test_no_visitors_yet_says_so(site: AdminApp) -> None:
    page = _page(signed_in(site, "root"), "/admin/federation/visitors")
    assert "近期没有合作城市来访者" in page and "近 30 天没有合作城市来访者。" in page
