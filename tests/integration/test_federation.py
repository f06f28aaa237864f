"""The federation's domain in one city's database (SQLite and PostgreSQL): the coordinator's four-eyes
membership and the lists it signs, server-to-server requests, the issuing city's answers, daily
bulletins, and consent to cross-city recognition. Partner cities are played in-process by their own
keys; HTTP is replaced by ``fetch`` callables serving what they sign. tests/e2e/test_federation.py
runs the same pieces between real servers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor
from citycredit.core.audit import AuditEvent
from citycredit.core.clients import ApiClient, register_client
from citycredit.core.config import Settings
from citycredit.core.db import Base, utcnow
from citycredit.core.idnumber import make_id_number
from credit_codes import consent
from credit_codes.models import CrossCityConsent, Redemption, Verification, Visitor
from credit_codes.operations import issue_credit_code, record_verification
from federation import answers, bulletins, coordinator, jws, s2s
from federation import keys as fed_keys
from federation.models import (
    Bulletin,
    Member,
    MemberChange,
    PartnerBulletin,
    PartnerQuestion,
    PublishedTrustList,
    SeenRequest,
    SyncState,
)
from federation.operations import accept_list, forget_cached_list, held_list, own_entry
from federation.trustlist import TrustList, verify_list
from points_engine.models import Citizen
from points_engine.operations import give_consent
from points_engine.queries import current_snapshot
from scenarios import benefits
from scenarios import operations as registry
from scenarios.demo import ensure_demo_scenarios
from scenarios.models import Scenario
from tests import factories
from tests.conftest import KEY, TODAY
from tests.rule_cases import ITEMISED

KEY_SECRET = bytes(range(32, 64))
TOKEN_KEY = bytes(range(64, 96))
HERE = "420200"  # this database's city: Huangshi
ALICE, BOB = Actor("alice@credit-office"), Actor("bob@credit-office")


def city_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "sqlite://",
        "id_hash_key": KEY,
        "key_secret": KEY_SECRET,
        "token_key": TOKEN_KEY,
        "city_code": HERE,
        "city_name": "黄石市",
        "city_name_en": "Huangshi",
        "public_url": "https://credit.huangshi.example",
        "environment": "development",
        "federation_coordinator_url": "https://coordinator.example",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # The held list and the day's catalogue are cached per process; rolled-back tests reuse ids.
    def clear() -> None:
        forget_cached_list()
        registry._RULES.clear()
        benefits._CATALOGUES.clear()

    clear()
    yield
    clear()


# --- partner cities, played by their keys ------------------------------------------------------------


@dataclass
class Partner:
    issuer: str
    name_zh: str
    name_en: str
    federation_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    mapping_version: int = 3
    # When its code-signing key was made (the key's nbf in every entry).
    key_made: int = field(default_factory=lambda: int(utcnow().timestamp()) - 86400)

    @property
    def jwk(self) -> dict[str, str]:
        return jws.public_jwk_of(self.federation_key.public_key())

    @property
    def fingerprint(self) -> str:
        return jws.thumbprint(self.jwk)

    @property
    def base_url(self) -> str:
        return f"https://credit.{self.name_en.lower()}.example"

    def entry(self, now: dt.datetime, **changes: Any) -> str:
        kid = jws.thumbprint(jws.public_jwk_of(self.signing_key.public_key()))
        payload = {
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "names": {"zh": self.name_zh, "en": self.name_en},
            "level": "prefecture",
            "base_url": self.base_url,
            "signing_keys": [
                {
                    **jws.public_jwk_of(self.signing_key.public_key()),
                    "kid": kid,
                    "nbf": self.key_made,
                    "exp": None,
                }
            ],
            "mappings": [
                {
                    "version": self.mapping_version,
                    "tiers": [
                        {"code": "A", "name_zh": "甲", "name_en": "A", "common_level": 4},
                        {"code": "B", "name_zh": "乙", "name_en": "B", "common_level": 2},
                    ],
                }
            ],
            "current_mapping": self.mapping_version,
            **changes,
        }
        return jws.sign(payload, self.federation_key, typ=jws.TYP_ENTRY)

    def request(
        self,
        now: dt.datetime,
        *,
        aud: str = HERE,
        jti: str | None = None,
        iat: dt.datetime | None = None,
        lifetime: int = 60,
        signed_by: Ed25519PrivateKey | None = None,
        **body: Any,
    ) -> str:
        issued = int((iat or now).timestamp())
        payload = {
            "iss": self.issuer,
            "aud": aud,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": jti or f"jti-{self.issuer}-{next_serial()}",
            **body,
        }
        return jws.sign(payload, signed_by or self.federation_key, typ=jws.TYP_REQUEST)

    def bulletin(
        self,
        seq: int,
        *,
        iss: str | None = None,
        signed_by: Ed25519PrivateKey | None = None,
        typ: str = jws.TYP_BULLETIN,
    ) -> str:
        payload = {
            "iss": iss or self.issuer,
            "seq": seq,
            "date": (TODAY - dt.timedelta(days=40 - seq)).isoformat(),
            "iat": int(utcnow().timestamp()),
            "revoked_keys": [],
            "visitors": [],
            "catalogue": [
                {"code": f"{self.issuer}-bikes", "category": "transport", "min_level": 3}
            ],
        }
        return jws.sign(payload, signed_by or self.federation_key, typ=typ)


_serial = iter(range(1, 10**9))


def next_serial() -> int:
    return next(_serial)


def wuhan() -> Partner:
    return Partner("420100", "武汉市", "Wuhan")


def sanya() -> Partner:
    return Partner("460200", "三亚市", "Sanya", mapping_version=7)


def xiangyang() -> Partner:
    return Partner("420600", "襄阳市", "Xiangyang")


def jingzhou() -> Partner:
    return Partner("421000", "荆州市", "Jingzhou")


class Web:
    """``fetch`` for the domain: what each partner's deployment serves, by URL; nothing else answers."""

    def __init__(self, *partners: Partner, now: dt.datetime | None = None):
        self.now = now or utcnow()
        self.partners = {p.base_url: p for p in partners}
        self.entry_override: dict[str, Callable[[], dict[str, Any]]] = {}
        self.bulletins: dict[str, list[str]] = {}
        # Served after the newer ones whatever ``after`` says (a server, or whoever answers for it,
        # misbehaving).
        self.injected: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def __call__(self, url: str) -> dict[str, Any]:
        self.asked.append(url)
        base, _, path = url.partition("/api/v1/federation/")
        partner = self.partners.get(base)
        if partner is None:
            raise httpx.ConnectError(f"{base} does not answer")
        if path == "entry":
            if base in self.entry_override:
                return self.entry_override[base]()
            return {"entry": partner.entry(self.now), "federation_key": partner.jwk}
        if path.startswith("bulletins?after="):
            after = int(path.partition("=")[2])
            documents = self.bulletins.get(partner.issuer, [])
            newer = [d for d in documents if jws.unverified_payload(d)["seq"] > after]
            return {"bulletins": newer[: bulletins.PAGE] + self.injected.get(partner.issuer, [])}
        raise httpx.ConnectError(f"nothing at {url}")


# --- this city in a federation (the trust list it holds) ----------------------------------------------


@dataclass
class Federation:
    settings: Settings
    anchor: Ed25519PrivateKey
    partners: dict[str, Partner]
    now: dt.datetime
    seq: int = 0

    def publish(
        self, session: Session, statuses: dict[str, str], *, now: dt.datetime | None = None
    ) -> TrustList:
        """The anchor signs a list of this city and ``statuses``' partners; this city accepts it."""
        now = now or self.now
        own_key = fed_keys.current(session, "city")
        assert own_key is not None
        members = [
            {
                "issuer": HERE,
                "status": "active",
                "federation_key": own_key.public_jwk,
                "status_changed_at": int(now.timestamp()),
                "entry": own_entry(session, self.settings, now=now),
            }
        ]
        for issuer, status in statuses.items():
            partner = self.partners[issuer]
            members.append(
                {
                    "issuer": issuer,
                    "status": status,
                    "federation_key": partner.jwk,
                    "status_changed_at": int(now.timestamp()),
                    "entry": partner.entry(now),
                }
            )
        self.seq += 1
        payload = {
            "format": 1,
            "seq": self.seq,
            "iat": int(now.timestamp()),
            "coordinator": HERE,
            "value_sets": {},
            "members": members,
        }
        document = jws.sign(payload, self.anchor, typ=jws.TYP_TRUST_LIST, with_key=True)
        trust_list, _ = accept_list(session, self.settings, document, now=now, actor="test")
        return trust_list

    def own_public(self, session: Session) -> Any:
        key = fed_keys.current(session, "city")
        assert key is not None
        return jws.public_key_from_jwk(key.public_jwk)


STATUSES = {"420100": "active", "460200": "active", "420600": "suspended", "421000": "left"}


@pytest.fixture
def fed(session: Session) -> Federation:
    anchor = Ed25519PrivateKey.generate()
    settings = city_settings(trust_anchor=jws.thumbprint(jws.public_jwk_of(anchor.public_key())))
    fed_keys.create(session, KEY_SECRET, "city")
    partners = {p.issuer: p for p in (wuhan(), sanya(), xiangyang(), jingzhou())}
    federation = Federation(settings, anchor, partners, utcnow())
    federation.publish(session, STATUSES)
    return federation


def scored_citizen(session: Session, settings: Settings, *, number: str | None = None) -> Citizen:
    """A citizen of this city with a score (an award: local tier AA, common level 4)."""
    factories.source(session)
    if session.scalar(select(func.count()).select_from(Scenario)) == 0:
        ensure_demo_scenarios(session)
    from points_engine.models import ScoringModelVersion

    if session.scalar(select(ScoringModelVersion.id).limit(1)) is None:
        factories.published(session, ITEMISED)
    person = factories.citizen(session, consent=False, number=number)
    today = dt.datetime.now(settings.tz).date()
    factories.record(session, person, "AWARD", today - dt.timedelta(days=10))
    give_consent(session, person, channel="app", as_of=today)
    return person


def code_of(session: Session, settings: Settings, person: Citizen, now: dt.datetime) -> str:
    return issue_credit_code(session, settings, person, now=now, actor="app").token


def everything_stored(session: Session) -> str:
    """Every row of every table, as text (to look for what must never be stored)."""
    session.flush()
    rows = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            rows.append(f"{table.name}: {json.dumps(list(row), default=str, ensure_ascii=False)}")
    return "\n".join(rows)


# === the coordinator ====================================================================================


@dataclass
class Coordinator:
    settings: Settings
    web: Web
    wuhan: Partner
    sanya: Partner

    def join(self, session: Session, partner: Partner) -> Member:
        change = coordinator.propose(
            session,
            self.settings,
            ALICE,
            partner.issuer,
            "join",
            base_url=partner.base_url + "/",
            fingerprint=partner.fingerprint,
            fetch=self.web,
        )
        coordinator.decide(session, self.settings, BOB, change.id, approve=True, now=self.web.now)
        coordinator.refresh_entries(session, self.settings, fetch=self.web)
        return member(session, partner.issuer)

    def change(self, session: Session, issuer: str, action: str, **options: Any) -> MemberChange:
        change = coordinator.propose(
            session, self.settings, ALICE, issuer, action, fetch=self.web, **options
        )
        return coordinator.decide(
            session, self.settings, BOB, change.id, approve=True, now=self.web.now
        )

    def compile(
        self, session: Session, now: dt.datetime | None = None
    ) -> PublishedTrustList | None:
        coordinator.refresh_entries(session, self.settings, fetch=self.web)
        now = now or self.web.now
        published = coordinator.compile_list(session, self.settings, now=now)
        if published is None:
            # An approval signs the list with the change (coordinator.decide): the list as of now.
            latest = coordinator.latest_published(session)
            if latest is not None and latest.issued_at == now.replace(microsecond=0):
                return latest
        return published

    def verified(self, published: PublishedTrustList, now: dt.datetime | None = None) -> TrustList:
        """The published list as a member checks it."""
        return verify_list(
            published.document,
            anchor_fingerprint=self.settings.trust_anchor,
            held_seq=None,
            held_document=None,
            now=now or self.web.now,
            max_age=self.settings.trust_list_max_age,
        )


def member(session: Session, issuer: str) -> Member:
    found = session.scalar(select(Member).where(Member.issuer == issuer))
    assert found is not None
    return found


@pytest.fixture
def coord(session: Session) -> Coordinator:
    anchor = fed_keys.create(session, KEY_SECRET, "anchor")
    fed_keys.create(session, KEY_SECRET, "city")
    settings = city_settings(federation_coordinator=True, trust_anchor=anchor.fingerprint)
    partners = wuhan(), sanya()
    return Coordinator(settings, Web(*partners), *partners)


def test_a_change_is_carried_out_only_when_someone_else_approves_it(
    session: Session, coord: Coordinator
) -> None:
    change = coordinator.propose(
        session,
        coord.settings,
        ALICE,
        "420100",
        "join",
        base_url=coord.wuhan.base_url,
        fingerprint=coord.wuhan.fingerprint,
        fetch=coord.web,
    )
    assert change.state == "pending" and change.proposed_by == ALICE.name
    assert session.scalar(select(Member)) is None  # proposing changes nothing yet

    with pytest.raises(coordinator.CoordinatorError, match="four eyes"):
        coordinator.decide(
            session, coord.settings, ALICE, change.id, approve=True, now=coord.web.now
        )
    assert change.state == "pending" and session.scalar(select(Member)) is None

    coordinator.decide(session, coord.settings, BOB, change.id, approve=True, now=coord.web.now)
    wuhan_row = member(session, "420100")
    assert (wuhan_row.status, wuhan_row.base_url) == ("active", coord.wuhan.base_url)
    assert wuhan_row.federation_jwk == coord.wuhan.jwk
    assert (change.state, change.decided_by) == ("approved", BOB.name)
    # A decided change cannot be decided again.
    with pytest.raises(coordinator.CoordinatorError, match="no pending change"):
        coordinator.decide(
            session, coord.settings, BOB, change.id, approve=False, now=coord.web.now
        )
    actions = session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.like("federation.%"))
        .order_by(AuditEvent.id)
    ).all()
    # The approval signs a list with the new member, which the coordinator's own city then holds.
    assert actions == [
        "federation.propose_join",
        "federation.approve_join",
        "federation.trust_list_signed",
        "federation.trust_list_accepted",
    ]


def test_a_rejected_change_changes_nothing(session: Session, coord: Coordinator) -> None:
    coord.join(session, coord.wuhan)
    first = coord.compile(session)
    assert first is not None

    change = coordinator.propose(session, coord.settings, ALICE, "420100", "suspend")
    coordinator.decide(session, coord.settings, BOB, change.id, approve=False, now=coord.web.now)
    assert (change.state, member(session, "420100").status) == ("rejected", "active")
    assert coordinator.latest_published(session).seq == first.seq  # type: ignore[union-attr]
    assert coordinator.compile_list(session, coord.settings, now=coord.web.now) is None
    joining = coordinator.propose(
        session,
        coord.settings,
        ALICE,
        "460200",
        "join",
        base_url=coord.sanya.base_url,
        fingerprint=coord.sanya.fingerprint,
        fetch=coord.web,
    )
    coordinator.decide(session, coord.settings, BOB, joining.id, approve=False, now=coord.web.now)
    assert session.scalar(select(Member).where(Member.issuer == "460200")) is None
    assert coordinator.compile_list(session, coord.settings, now=coord.web.now) is None
    assert coordinator.latest_published(session).seq == first.seq  # type: ignore[union-attr]


def test_only_the_coordinator_changes_membership(session: Session, coord: Coordinator) -> None:
    member_city = city_settings(trust_anchor=coord.settings.trust_anchor)
    with pytest.raises(coordinator.CoordinatorError, match="not the federation's coordinator"):
        coordinator.propose(
            session,
            member_city,
            ALICE,
            "420100",
            "join",
            base_url=coord.wuhan.base_url,
            fingerprint=coord.wuhan.fingerprint,
            fetch=coord.web,
        )
    with pytest.raises(coordinator.CoordinatorError):
        coordinator.compile_list(session, member_city)


def test_joining_needs_the_fingerprint_of_the_key_the_member_publishes(
    session: Session, coord: Coordinator
) -> None:
    def propose(**options: Any) -> MemberChange:
        values: dict[str, Any] = {
            "base_url": coord.wuhan.base_url,
            "fingerprint": coord.wuhan.fingerprint,
            **options,
        }
        return coordinator.propose(
            session, coord.settings, ALICE, values.pop("issuer", "420100"), "join",
            fetch=coord.web, **values,
        )  # fmt: skip

    # The fingerprint read out on the phone is Sanya's, not the key Wuhan's server shows.
    with pytest.raises(coordinator.CoordinatorError, match="do not proceed"):
        propose(fingerprint=coord.sanya.fingerprint)
    # A man in the middle serving its own key and an entry signed by it: not the fingerprint either.
    impostor = Partner("420100", "武汉市", "Wuhan")
    coord.web.entry_override[coord.wuhan.base_url] = lambda: {
        "entry": impostor.entry(coord.web.now),
        "federation_key": impostor.jwk,
    }
    with pytest.raises(coordinator.CoordinatorError, match="do not proceed"):
        propose()
    del coord.web.entry_override[coord.wuhan.base_url]
    # The right key, but the deployment is another city's.
    with pytest.raises(coordinator.CoordinatorError, match="is '420100', not '420999'"):
        propose(issuer="420999")
    # The URL and fingerprint are both needed.
    with pytest.raises(coordinator.CoordinatorError, match="URL and fingerprint"):
        propose(fingerprint=None)
    # A deployment that does not answer.
    with pytest.raises(httpx.HTTPError):
        propose(base_url="https://credit.nowhere.example")
    assert session.scalar(select(func.count()).select_from(MemberChange)) == 0

    change = propose()
    assert change.detail["base_url"] == coord.wuhan.base_url
    assert change.detail["federation_key"] == coord.wuhan.jwk
    # The entry read with that key at proposal is what gets listed on approval.
    assert (
        jws.verify(
            change.detail["entry"], jws.public_key_from_jwk(coord.wuhan.jwk), typ=jws.TYP_ENTRY
        )["iss"]
        == "420100"
    )
    coordinator.decide(session, coord.settings, BOB, change.id, approve=True, now=coord.web.now)
    with pytest.raises(coordinator.CoordinatorError, match="already a member"):
        propose()


def test_an_approved_member_is_listed_at_once_with_the_entry_read_at_proposal(
    session: Session, coord: Coordinator
) -> None:
    change = coordinator.propose(
        session,
        coord.settings,
        ALICE,
        "420100",
        "join",
        base_url=coord.wuhan.base_url,
        fingerprint=coord.wuhan.fingerprint,
        fetch=coord.web,
    )
    assert coordinator.latest_published(session) is None  # a proposal changes nothing yet
    coordinator.decide(session, coord.settings, BOB, change.id, approve=True, now=coord.web.now)
    listed = coordinator.latest_published(session)
    assert listed is not None
    trust_list = coord.verified(listed)
    assert list(trust_list.members) == ["420100"]
    assert trust_list.members["420100"].status == "active"
    assert trust_list.members["420100"].mappings[3]["A"] == (4, "甲", "A")
    assert trust_list.coordinator == HERE
    # The coordinator's own city holds what it signs, like every member.
    held = held_list(session, coord.settings)
    assert held is not None and held.seq == listed.seq


def test_suspend_resume_leave_and_rekey_change_the_compiled_list(
    session: Session, coord: Coordinator
) -> None:
    coord.join(session, coord.wuhan)
    coord.join(session, coord.sanya)
    first = coord.compile(session)
    assert first is not None
    assert {i: m.status for i, m in coord.verified(first).members.items()} == {
        "420100": "active",
        "460200": "active",
    }

    def statuses_after(issuer: str, action: str, **options: Any) -> dict[str, str]:
        coord.change(session, issuer, action, **options)
        published = coord.compile(session)
        assert published is not None, f"{action} did not change the list"
        return {i: m.status for i, m in coord.verified(published).members.items()}

    assert statuses_after("460200", "suspend")["460200"] == "suspended"
    assert statuses_after("460200", "resume")["460200"] == "active"
    assert statuses_after("420100", "leave") == {"420100": "left", "460200": "active"}

    # Sanya re-keys: its deployment now publishes a new key; the old one no longer vouches for it.
    old_jwk = coord.sanya.jwk
    coord.sanya.federation_key = Ed25519PrivateKey.generate()
    with pytest.raises(coordinator.CoordinatorError, match="do not proceed"):
        coordinator.propose(
            session, coord.settings, ALICE, "460200", "rekey",
            fingerprint=jws.thumbprint(old_jwk), fetch=coord.web,
        )  # fmt: skip
    # Until the re-key is approved, Sanya's new entry does not verify: the last good one stays.
    errors = coordinator.refresh_entries(session, coord.settings, fetch=coord.web)
    assert errors["460200"] is not None and "signature" in errors["460200"]
    assert member(session, "460200").entry_error is not None
    coord.change(session, "460200", "rekey", fingerprint=coord.sanya.fingerprint)
    published = coord.compile(session)
    assert published is not None
    sanya_view = coord.verified(published).members["460200"]
    assert sanya_view.federation_jwk == coord.sanya.jwk != old_jwk
    assert sanya_view.status == "active"
    assert member(session, "460200").entry_error is None


def test_a_list_is_signed_only_on_a_change_or_when_a_quarter_of_its_age_has_passed(
    session: Session, coord: Coordinator
) -> None:
    coord.join(session, coord.wuhan)
    start = coord.web.now
    first = coord.compile(session, start)
    assert first is not None

    # Entries re-read an hour later: Wuhan signs its entry again (new iat), nothing else differs.
    coord.web.now = start + dt.timedelta(hours=1)
    kept_entry = member(session, "420100").entry
    assert coord.compile(session) is None
    assert member(session, "420100").entry == kept_entry  # the old signature is kept
    assert coordinator.compile_list(session, coord.settings, now=coord.web.now) is None

    # A quarter of the maximum age (48 h / 4 = 12 h) later, the same content is signed again.
    quarter = dt.timedelta(seconds=coord.settings.trust_list_max_age / 4)
    coord.web.now = start + quarter - dt.timedelta(seconds=1)
    assert coord.compile(session) is None
    coord.web.now = start + quarter
    refreshed = coord.compile(session)
    assert refreshed is not None and refreshed.seq == first.seq + 1
    assert refreshed.digest == first.digest
    assert coord.verified(refreshed).issued_at == coord.web.now.replace(microsecond=0)

    # A changed entry (a new tier mapping after a model publication) is a change at once.
    coord.web.now += dt.timedelta(minutes=15)
    coord.wuhan.mapping_version = 4
    changed = coord.compile(session)
    assert changed is not None and changed.seq == refreshed.seq + 1
    assert list(coord.verified(changed).members["420100"].mappings) == [4]

    # ``force`` signs anyway (the CLI's --force).
    forced = coordinator.compile_list(session, coord.settings, now=coord.web.now, force=True)
    assert forced is not None and forced.seq == changed.seq + 1


def test_an_unreachable_member_keeps_its_last_good_entry(
    session: Session, coord: Coordinator
) -> None:
    coord.join(session, coord.wuhan)
    first = coord.compile(session)
    assert first is not None
    del coord.web.partners[coord.wuhan.base_url]
    coord.web.now += dt.timedelta(hours=1)
    errors = coordinator.refresh_entries(session, coord.settings, fetch=coord.web)
    assert "does not answer" in str(errors["420100"])
    assert coordinator.compile_list(session, coord.settings, now=coord.web.now) is None
    assert member(session, "420100").entry is not None


def test_changes_that_make_no_sense_for_the_members_standing_are_refused(
    session: Session, coord: Coordinator
) -> None:
    coord.join(session, coord.wuhan)
    with pytest.raises(coordinator.CoordinatorError, match="not a member"):
        coordinator.propose(session, coord.settings, ALICE, "460200", "suspend")
    with pytest.raises(coordinator.CoordinatorError, match="unknown action"):
        coordinator.propose(session, coord.settings, ALICE, "420100", "expel")
    with pytest.raises(coordinator.CoordinatorError, match="is active"):
        coordinator.propose(session, coord.settings, ALICE, "420100", "resume")

    coord.change(session, "420100", "leave")
    # A city that left comes back only by joining again (its key checked again), never by a resume.
    for action in ("resume", "suspend", "leave"):
        with pytest.raises(coordinator.CoordinatorError, match="has left"):
            coordinator.propose(session, coord.settings, ALICE, "420100", action)
    with pytest.raises(coordinator.CoordinatorError, match="has left"):
        coordinator.propose(
            session, coord.settings, ALICE, "420100", "rekey",
            fingerprint=coord.wuhan.fingerprint, fetch=coord.web,
        )  # fmt: skip
    rejoined = coord.join(session, coord.wuhan)
    assert rejoined.status == "active"


def test_a_change_overtaken_by_another_is_not_carried_out(
    session: Session, coord: Coordinator
) -> None:
    coord.join(session, coord.wuhan)
    suspend = coordinator.propose(session, coord.settings, ALICE, "420100", "suspend")
    leave = coordinator.propose(session, coord.settings, ALICE, "420100", "leave")
    coordinator.decide(session, coord.settings, BOB, leave.id, approve=True, now=coord.web.now)
    # Approving the older proposal now would bring the city that left back as "suspended".
    with pytest.raises(coordinator.CoordinatorError, match="has left"):
        coordinator.decide(
            session, coord.settings, BOB, suspend.id, approve=True, now=coord.web.now
        )
    assert member(session, "420100").status == "left"
    assert suspend.state == "pending"
    coordinator.decide(
        session, coord.settings, BOB, suspend.id, approve=False, now=coord.web.now
    )  # set aside
    assert suspend.state == "rejected" and member(session, "420100").status == "left"


# === server-to-server requests ===========================================================================


def refused(
    session: Session, fed: Federation, token: str, now: dt.datetime | None = None
) -> s2s.FederationRefusal:
    with pytest.raises(s2s.FederationRefusal) as caught:
        s2s.check_request(session, fed.settings, token, now=now or fed.now)
    return caught.value


def test_a_request_from_an_active_member_is_accepted_once(
    session: Session, fed: Federation
) -> None:
    wuhan_city = fed.partners["420100"]
    token = wuhan_city.request(fed.now, jti="once-only-1", purpose="verification")
    asker, payload = s2s.check_request(session, fed.settings, token, now=fed.now)
    assert asker.issuer == "420100" and payload["purpose"] == "verification"
    assert session.scalar(select(SeenRequest.jti)) == "once-only-1"

    replay = refused(session, fed, token, fed.now + dt.timedelta(seconds=10))
    assert isinstance(replay, s2s.RequestReplayed)
    assert (replay.type, replay.status) == ("request-replayed", 409)
    # Another city may draw the same jti: request ids are unique per asker.
    sanya_token = fed.partners["460200"].request(fed.now, jti="once-only-1")
    assert s2s.check_request(session, fed.settings, sanya_token, now=fed.now)[0].issuer == "460200"


def test_each_bad_request_is_refused_with_its_type(session: Session, fed: Federation) -> None:
    now = fed.now
    wuhan_city = fed.partners["420100"]
    # Not signed by an active member, expired or malformed: all answered with one status.
    refused_status = s2s.FederationRefusal.status
    stranger = Partner("429000", "仙桃市", "Xiantao")
    cases = {
        "non-member": (
            stranger.request(now),
            "federation-request-refused",
            refused_status,
            "not a member",
        ),
        "left": (
            fed.partners["421000"].request(now),
            "federation-request-refused",
            refused_status,
            "not a member",
        ),
        "suspended": (
            fed.partners["420600"].request(now),
            "member-suspended",
            403,
            "suspended",
        ),
        "bad signature": (
            wuhan_city.request(now, signed_by=stranger.federation_key),
            "federation-request-refused",
            refused_status,
            "not signed by '420100'",
        ),
        "wrong audience": (
            wuhan_city.request(now, aud="460200"),
            "federation-request-refused",
            refused_status,
            "addressed to '460200'",
        ),
        "expired": (
            wuhan_city.request(now, iat=now - dt.timedelta(seconds=70)),
            "request-expired",
            refused_status,
            "expired",
        ),
        "not yet valid": (
            wuhan_city.request(now, iat=now + dt.timedelta(minutes=2)),
            "request-expired",
            refused_status,
            "not yet valid",
        ),
        "too long-lived": (
            wuhan_city.request(now, lifetime=3600),
            "request-expired",
            refused_status,
            "expired or not yet valid",
        ),
        "short jti": (
            wuhan_city.request(now, jti="abc"),
            "federation-request-refused",
            refused_status,
            "8 to 64",
        ),
        "an entry, not a request": (
            wuhan_city.entry(now),
            "federation-request-refused",
            refused_status,
            "not a 'citycredit-s2s+jwt'",
        ),
        "not a document": (
            "not.a.jws",
            "federation-request-refused",
            refused_status,
            "not a signed",
        ),
    }
    for case, (token, type_, status, words) in cases.items():
        refusal = refused(session, fed, token)
        assert (refusal.type, refusal.status) == (type_, status), case
        assert words in refusal.detail, (case, refusal.detail)
    # None of them was remembered as answered.
    assert session.scalar(select(func.count()).select_from(SeenRequest)) == 0


def test_a_request_at_the_edges_of_its_life(session: Session, fed: Federation) -> None:
    wuhan_city = fed.partners["420100"]
    # 60 s of life and 5 s of clock skew after it.
    token = wuhan_city.request(fed.now - dt.timedelta(seconds=64))
    assert s2s.check_request(session, fed.settings, token, now=fed.now)[0].issuer == "420100"
    assert refused(session, fed, wuhan_city.request(fed.now, lifetime=61)).type == "request-expired"


def test_a_request_is_refused_when_the_held_list_is_too_old(
    session: Session, fed: Federation
) -> None:
    later = fed.now + dt.timedelta(seconds=fed.settings.trust_list_max_age + 60)
    refusal = refused(session, fed, fed.partners["420100"].request(later), later)
    assert (refusal.type, refusal.status) == ("trust-list-too-old", 503)


def test_a_member_suspended_by_a_newer_list_is_refused_from_then_on(
    session: Session, fed: Federation
) -> None:
    wuhan_city = fed.partners["420100"]
    assert s2s.check_request(session, fed.settings, wuhan_city.request(fed.now), now=fed.now)
    fed.publish(session, {**STATUSES, "420100": "suspended"})
    assert refused(session, fed, wuhan_city.request(fed.now)).type == "member-suspended"


# === the issuing city's answers ===========================================================================


def answer_of(fed: Federation, session: Session, document: str) -> dict[str, Any]:
    return jws.verify(document, fed.own_public(session), typ=jws.TYP_ANSWER)


def introspect(
    session: Session, fed: Federation, asker: str, code: str, **body: Any
) -> dict[str, Any]:
    fields = {"purpose": "verification", "scenario": "bikes", "category": "transport", **body}
    request = fed.partners[asker].request(fed.now, code=code, **fields)
    document = answers.answer_introspection(session, fed.settings, request, now=fed.now)
    payload = answer_of(fed, session, document)
    assert payload["aud"] == asker and payload["iss"] == HERE
    assert payload["in_reply_to"] == jws.unverified_payload(request)["jti"]
    return payload


def test_introspection_answers_a_pairwise_pseudonym_and_the_codes_level(
    session: Session, fed: Federation
) -> None:
    person = scored_citizen(session, fed.settings)
    other = scored_citizen(session, fed.settings)
    consent.give(session, person, "*", channel="app", actor="citizen")
    consent.give(session, other, "*", channel="app", actor="citizen")

    first = introspect(session, fed, "420100", code_of(session, fed.settings, person, fed.now))
    again = introspect(session, fed, "420100", code_of(session, fed.settings, person, fed.now))
    elsewhere = introspect(session, fed, "460200", code_of(session, fed.settings, person, fed.now))
    someone_else = introspect(
        session, fed, "420100", code_of(session, fed.settings, other, fed.now)
    )

    assert first["sub"] == again["sub"]  # the same for the same asking city
    assert first["sub"] != elsewhere["sub"]  # unlinkable across cities
    assert first["sub"] != someone_else["sub"]
    assert first["sub"].startswith("pw_") and person.id_hash not in first["sub"]
    snapshot = current_snapshot(session, person.id)
    assert snapshot is not None and first["level"] == snapshot.common_tier == 4
    assert dt.datetime.fromisoformat(first["valid_until"]) > fed.now
    assert set(first) == {"iss", "aud", "iat", "in_reply_to", "sub", "level", "valid_until"}

    questions = session.scalars(
        select(PartnerQuestion)
        .where(PartnerQuestion.citizen_id == person.id)
        .order_by(PartnerQuestion.id)
    ).all()
    assert [(q.asker, q.purpose, q.scenario, q.category, q.answered) for q in questions] == [
        ("420100", "verification", "bikes", "transport", True),
        ("420100", "verification", "bikes", "transport", True),
        ("460200", "verification", "bikes", "transport", True),
    ]


def test_introspection_without_consent_for_the_asker_is_refused_and_recorded(
    session: Session, fed: Federation
) -> None:
    person = scored_citizen(session, fed.settings)
    consent.give(session, person, "420100", channel="app", actor="citizen")
    code = code_of(session, fed.settings, person, fed.now)

    introspect(session, fed, "420100", code)
    with pytest.raises(answers.NoCrossCityConsent) as caught:
        introspect(session, fed, "460200", code)
    assert (caught.value.type, caught.value.status) == ("no-cross-city-consent", 403)

    consent.withdraw(session, person, "420100", actor="citizen")
    with pytest.raises(answers.NoCrossCityConsent):
        introspect(session, fed, "420100", code)

    questions = session.scalars(select(PartnerQuestion).order_by(PartnerQuestion.id)).all()
    assert [(q.asker, q.citizen_id, q.answered, q.refusal) for q in questions] == [
        ("420100", person.id, True, None),
        ("460200", person.id, False, "no-cross-city-consent"),
        ("420100", person.id, False, "no-cross-city-consent"),
    ]
    # Those rows are the audit record of the reads (insert-only, as a venue's verification rows).


def test_a_replayed_introspection_is_refused_as_such_and_records_nothing_more(
    session: Session, fed: Federation
) -> None:
    person = scored_citizen(session, fed.settings)
    consent.give(session, person, "420100", channel="app", actor="citizen")
    code = code_of(session, fed.settings, person, fed.now)
    fields = {"purpose": "verification", "scenario": "bikes", "category": "transport"}
    answered = fed.partners["420100"].request(fed.now, code=code, **fields)
    no_consent = fed.partners["460200"].request(fed.now, code=code, **fields)
    bad_purpose = fed.partners["420100"].request(fed.now, code=code, purpose="gossip")

    answers.answer_introspection(session, fed.settings, answered, now=fed.now)
    with pytest.raises(answers.NoCrossCityConsent):
        answers.answer_introspection(session, fed.settings, no_consent, now=fed.now)
    with pytest.raises(s2s.FederationRefusal) as caught:
        answers.answer_introspection(session, fed.settings, bad_purpose, now=fed.now)
    assert caught.value.type == "validation-error"
    # Each again: a replay, whatever its first answer was (and whatever else is wrong with it).
    for request in (answered, no_consent, bad_purpose):
        with pytest.raises(s2s.RequestReplayed) as replay:
            answers.answer_introspection(session, fed.settings, request, now=fed.now)
        assert (replay.value.type, replay.value.status) == ("request-replayed", 409)

    questions = session.scalars(select(PartnerQuestion).order_by(PartnerQuestion.id)).all()
    assert [(q.asker, q.answered, q.refusal) for q in questions] == [
        ("420100", True, None),
        ("460200", False, "no-cross-city-consent"),
    ]


def test_introspection_refuses_codes_it_did_not_issue(session: Session, fed: Federation) -> None:
    person = scored_citizen(session, fed.settings)
    consent.give(session, person, "*", channel="app", actor="citizen")
    # Wuhan asks about a code Sanya issued (to Sanya's own citizen), as if Huangshi had issued it.
    sanya_city = fed.partners["460200"]
    kid = jws.thumbprint(jws.public_jwk_of(sanya_city.signing_key.public_key()))
    foreign = jwt.encode(
        {
            "iss": "460200",
            "sub": "x",
            "ct": 5,
            "lt": "A",
            "iat": int(fed.now.timestamp()),
            "exp": int(fed.now.timestamp()) + 120,
            "jti": "foreign-code",
        },
        sanya_city.signing_key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    with pytest.raises(s2s.FederationRefusal) as caught:
        introspect(session, fed, "420100", foreign)
    assert (caught.value.type, caught.value.status) == ("wrong-issuer", 422)
    # An expired code of ours, and one tampered with.
    code = code_of(session, fed.settings, person, fed.now - dt.timedelta(minutes=5))
    with pytest.raises(s2s.FederationRefusal) as caught:
        introspect(session, fed, "420100", code)
    assert caught.value.type == "token-expired"
    head, body, signature = code_of(session, fed.settings, person, fed.now).split(".")
    claims = jwt.decode(f"{head}.{body}.{signature}", options={"verify_signature": False})
    claims["ct"] = 5
    forged_body = jws._b64(json.dumps(claims).encode())
    with pytest.raises(s2s.FederationRefusal) as caught:
        introspect(session, fed, "420100", f"{head}.{forged_body}.{signature}")
    assert caught.value.type == "bad-signature"
    with pytest.raises(s2s.FederationRefusal) as caught:
        introspect(session, fed, "420100", code_of(session, fed.settings, person, fed.now),
                   purpose="curiosity")  # fmt: skip
    assert caught.value.type == "validation-error"
    # Refused before any citizen was known: nobody's "who checked me" shows them.
    assert session.scalar(select(func.count()).select_from(PartnerQuestion)) == 0


def tier_request(session: Session, fed: Federation, asker: str, number: str, **body: Any) -> str:
    request = fed.partners[asker].request(
        fed.now, id_number=number, reason=body.pop("reason", "租房押金减免 rental deposit"), **body
    )
    return answers.answer_tier_request(session, fed.settings, request, now=fed.now)


def test_a_tier_request_answers_the_level_of_a_consenting_scored_citizen(
    session: Session, fed: Federation
) -> None:
    number = factories.id_number()
    person = scored_citizen(session, fed.settings, number=number)
    consent.give(session, person, "420100", channel="app", actor="citizen")
    payload = answer_of(fed, session, tier_request(session, fed, "420100", number))
    assert payload["level"] == 4
    assert payload["sub"] == answers.pairwise_pseudonym(fed.settings, person, "420100")
    assert dt.datetime.fromisoformat(payload["valid_until"]) == (
        fed.now + answers.TIER_VALIDITY
    ).replace(microsecond=0)
    question = session.scalar(select(PartnerQuestion))
    assert question is not None
    assert (question.citizen_id, question.purpose, question.reason, question.answered) == (
        person.id,
        "tier-request",
        "租房押金减免 rental deposit",
        True,
    )


def test_unknown_person_no_consent_and_no_score_all_answer_not_shared_alike(
    session: Session, fed: Federation
) -> None:
    consenting_unscored = factories.citizen(session, consent=False)
    not_consenting = scored_citizen(session, fed.settings)
    consent.give(session, consenting_unscored, "*", channel="app", actor="citizen")
    consent.give(session, not_consenting, "460200", channel="app", actor="citizen")
    numbers = {
        "unknown": make_id_number("420202", dt.date(1970, 5, 5), 77),
        "no consent for Wuhan": _number_of(session, not_consenting),
        "no score": _number_of(session, consenting_unscored),
        "not an ID number": "420202197005050000",
    }
    seen = set()
    for case, number in numbers.items():
        with pytest.raises(answers.NotShared) as caught:
            tier_request(session, fed, "420100", number)
        seen.add((caught.value.type, caught.value.status, caught.value.detail))
        assert caught.value.type == "not-shared", case
    assert seen == {("not-shared", 403, "no tier is shared with 420100 for this person")}
    # Each question was recorded; the known citizens see theirs.
    questions = session.scalars(select(PartnerQuestion).order_by(PartnerQuestion.id)).all()
    assert [(q.citizen_id, q.answered, q.refusal) for q in questions] == [
        (None, False, "not-shared"),
        (not_consenting.id, False, "not-shared"),
        (consenting_unscored.id, False, "not-shared"),
        (None, False, "not-shared"),
    ]


_numbers: dict[int, str] = {}


def _number_of(session: Session, person: Citizen) -> str:
    return _numbers[person.id]


@pytest.fixture(autouse=True)
def _remember_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Factories make citizens from numbers the tests do not see; remember them (test memory only)."""
    made = factories.citizen

    def citizen(session: Session, *, consent: bool = True, number: str | None = None) -> Citizen:
        number = number or factories.id_number()
        person = made(session, consent=consent, number=number)
        _numbers[person.id] = number
        return person

    monkeypatch.setattr(factories, "citizen", citizen)


def test_a_tier_request_must_say_why_and_never_carry_an_id_number_in_its_reason(
    session: Session, fed: Federation
) -> None:
    number = factories.id_number()
    person = scored_citizen(session, fed.settings, number=number)
    consent.give(session, person, "*", channel="app", actor="citizen")
    for reason in ("", "x", "y" * 201, f"为 {number} 办理租房"):
        with pytest.raises(s2s.FederationRefusal) as caught:
            tier_request(session, fed, "420100", number, reason=reason)
        assert (caught.value.type, caught.value.status) == ("validation-error", 422), reason
        assert number not in caught.value.detail
    assert session.scalar(select(func.count()).select_from(PartnerQuestion)) == 0


def test_the_id_number_is_never_stored_or_audited(session: Session, fed: Federation) -> None:
    number = factories.id_number()
    person = scored_citizen(session, fed.settings, number=number)
    consent.give(session, person, "420100", channel="app", actor="citizen")
    tier_request(session, fed, "420100", number)  # answered
    with pytest.raises(answers.NotShared):
        tier_request(session, fed, "460200", number)  # refused: no consent for Sanya
    stranger = make_id_number("420202", dt.date(1966, 6, 6), 6)
    with pytest.raises(answers.NotShared):
        tier_request(session, fed, "420100", stranger)  # refused: unknown
    # Nor in what a venue's city writes about the scan (stored for "who checked me").
    code = code_of(session, fed.settings, person, fed.now)
    with pytest.raises(s2s.FederationRefusal) as caught:
        introspect(session, fed, "420100", code, scenario=f"desk-{number}")
    assert caught.value.type == "validation-error" and number not in caught.value.detail
    stored = everything_stored(session)
    for clear in (number, stranger, number[:17]):
        assert clear not in stored
    details = session.scalars(select(AuditEvent.detail)).all()
    assert not any(number in json.dumps(d) or stranger in json.dumps(d) for d in details)
    assert session.scalar(select(func.count()).select_from(PartnerQuestion)) == 3


# === bulletins ============================================================================================


@pytest.fixture
def city(session: Session) -> Settings:
    fed_keys.create(session, KEY_SECRET, "city")
    return city_settings()


def published_days(found: list[Bulletin]) -> list[tuple[int, dt.date]]:
    return [(b.seq, b.day) for b in found]


def bulletin_payload(session: Session, bulletin: Bulletin) -> dict[str, Any]:
    key = fed_keys.current(session, "city")
    assert key is not None
    return jws.verify(
        bulletin.document, jws.public_key_from_jwk(key.public_jwk), typ=jws.TYP_BULLETIN
    )


def test_one_bulletin_a_day_up_to_yesterday_and_publishing_twice_changes_nothing(
    session: Session, city: Settings
) -> None:
    day = dt.timedelta(days=1)
    first = bulletins.publish_due(session, city, today=TODAY)
    assert published_days(first) == [(1, TODAY - day)]
    assert bulletins.publish_due(session, city, today=TODAY) == []
    assert published_days(bulletins.publish_due(session, city, today=TODAY + day)) == [(2, TODAY)]
    assert bulletins.publish_due(session, city, today=TODAY + day) == []

    payload = bulletin_payload(session, first[0])
    assert (payload["iss"], payload["seq"], payload["date"]) == (HERE, 1, "2026-06-29")
    assert payload["visitors"] == [] and payload["revoked_keys"] == []
    assert bulletins.bulletins_after(session, 0) == [first[0].document, _doc(session, 2)]
    assert bulletins.bulletins_after(session, 1) == [_doc(session, 2)]


def _doc(session: Session, seq: int) -> str:
    found = session.scalar(select(Bulletin.document).where(Bulletin.seq == seq))
    assert found is not None
    return found


def test_a_city_that_was_down_publishes_every_missed_day_oldest_first(
    session: Session, city: Settings
) -> None:
    bulletins.publish_due(session, city, today=TODAY)  # 06-29, seq 1
    caught_up = bulletins.publish_due(session, city, today=TODAY + dt.timedelta(days=5))
    assert published_days(caught_up) == [
        (2, dt.date(2026, 6, 30)),
        (3, dt.date(2026, 7, 1)),
        (4, dt.date(2026, 7, 2)),
        (5, dt.date(2026, 7, 3)),
        (6, dt.date(2026, 7, 4)),
    ]
    assert [bulletin_payload(session, b)["seq"] for b in caught_up] == [2, 3, 4, 5, 6]

    # Down for three months: only the last 31 days are published, still in order.
    long_gap = bulletins.publish_due(session, city, today=dt.date(2026, 10, 1))
    assert len(long_gap) == bulletins.CATCH_UP_DAYS == 31
    assert long_gap[0].day == dt.date(2026, 8, 31) and long_gap[-1].day == dt.date(2026, 9, 30)
    assert [b.seq for b in long_gap] == list(range(7, 38))


def test_no_bulletin_without_a_federation_key(session: Session) -> None:
    assert bulletins.publish_due(session, city_settings(), today=TODAY) == []
    assert session.scalar(select(func.count()).select_from(Bulletin)) == 0


def local(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """A moment of the city's own day (Asia/Shanghai, UTC+8), in UTC."""
    moment = dt.datetime.combine(day, dt.time(hour, minute, second), city_settings().tz)
    return moment.astimezone(dt.UTC)


def test_the_bulletin_counts_visitors_per_partner_and_category_by_the_citys_day(
    session: Session, city: Settings
) -> None:
    ensure_demo_scenarios(session)
    desk = register_client(
        session, name="三亚来客服务台", kind="venue", scopes=["verify", "redeem"],
        key_secret=KEY_SECRET,
    ).client  # fmt: skip
    library, bus = (
        session.scalars(select(Scenario).where(Scenario.code == code)).one()
        for code in ("library-deposit-free", "bus-fare-discount")
    )
    visitors = {}
    for issuer, pseudonym in (("420100", "pw_a"), ("420100", "pw_b"), ("460200", "pw_c")):
        row = Visitor(issuer=issuer, pseudonym=pseudonym)
        session.add(row)
        session.flush()
        visitors[pseudonym] = row
    day = TODAY - dt.timedelta(days=1)  # 06-29, the day the bulletin of TODAY covers

    def scan(pseudonym: str, scenario: Scenario, at: dt.datetime, *, redeem: bool = False) -> None:
        version = registry.live_version(session, scenario.id)
        assert version is not None
        verification = record_verification(
            session, desk, scenario, version, jti=f"j{next_serial()}", eligible=True, level=4,
            now=at, visitor_id=visitors[pseudonym].id,
        )  # fmt: skip
        session.flush()
        if redeem:
            _redeem(session, desk, verification, at + dt.timedelta(seconds=5), city)

    scan("pw_a", library, local(day, 9), redeem=True)
    scan("pw_b", library, local(day, 23, 59, 30))  # still 06-29 in the city (15:59 UTC)
    scan("pw_b", bus, local(day, 0, 0, 30))  # 06-29 already (06-28 16:00 UTC)
    scan("pw_c", bus, local(day, 12), redeem=True)
    scan("pw_c", bus, local(day, 23, 59, 59), redeem=True)  # redeemed at 00:00:04 on 06-30
    scan("pw_a", library, local(day - dt.timedelta(days=1), 23, 59))  # 06-28: not this day
    scan("pw_b", bus, local(TODAY, 0, 1))  # 06-30: the next bulletin's
    # A local citizen's check is not a visitor's.
    person = factories.citizen(session)
    version = registry.live_version(session, library.id)
    assert version is not None
    record_verification(
        session, desk, library, version, jti="local", eligible=True, level=3,
        now=local(day, 10), citizen_id=person.id,
    )  # fmt: skip

    (bulletin,) = bulletins.publish_due(session, city, today=TODAY)
    assert bulletin_payload(session, bulletin)["visitors"] == [
        {"partner": "420100", "category": "library", "verifications": 2, "redemptions": 1},
        {"partner": "420100", "category": "transport", "verifications": 1, "redemptions": 0},
        {"partner": "460200", "category": "transport", "verifications": 2, "redemptions": 1},
    ]
    (next_day,) = bulletins.publish_due(session, city, today=TODAY + dt.timedelta(days=1))
    assert bulletin_payload(session, next_day)["visitors"] == [
        {"partner": "420100", "category": "transport", "verifications": 1, "redemptions": 0},
        {"partner": "460200", "category": "transport", "verifications": 0, "redemptions": 1},
    ]
    # The catalogue of benefits open to visitors travels with it.
    catalogue = bulletin_payload(session, bulletin)["catalogue"]
    assert {c["code"] for c in catalogue} >= {"library-deposit-free", "bus-fare-discount"}


def _redeem(
    session: Session, desk: ApiClient, verification: Verification, at: dt.datetime, city: Settings
) -> None:
    session.add(
        Redemption(
            public_id=f"red_{next_serial()}",
            verification_id=verification.id,
            client_id=desk.id,
            visitor_id=verification.visitor_id,
            issuer="partner",
            scenario_id=verification.scenario_id,
            scenario_version_id=verification.scenario_version_id,
            token_jti=verification.token_jti,
            day=at.astimezone(city.tz).date(),
            at=at,
        )
    )
    session.flush()


def kept(session: Session, issuer: str) -> list[int]:
    return list(
        session.scalars(
            select(PartnerBulletin.seq)
            .where(PartnerBulletin.issuer == issuer)
            .order_by(PartnerBulletin.seq)
        )
    )


def test_partners_bulletins_are_kept_only_when_signed_by_them_and_in_sequence(
    session: Session, fed: Federation
) -> None:
    wuhan_city, sanya_city = fed.partners["420100"], fed.partners["460200"]
    web = Web(*fed.partners.values())
    web.bulletins["420100"] = [wuhan_city.bulletin(s) for s in (1, 2, 3)]
    web.bulletins["460200"] = [
        sanya_city.bulletin(1),
        sanya_city.bulletin(2, signed_by=wuhan_city.federation_key),  # not Sanya's signature
        sanya_city.bulletin(3),
    ]
    # The suspended and the departed city are not asked at all.
    web.bulletins["420600"] = [fed.partners["420600"].bulletin(1)]
    web.bulletins["421000"] = [fed.partners["421000"].bulletin(1)]

    outcome = bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now)
    assert outcome["420100"] == 3
    assert "signature" in str(outcome["460200"])
    assert set(outcome) == {"420100", "460200"}
    assert not any("xiangyang" in url or "jingzhou" in url for url in web.asked)
    assert kept(session, "420100") == [1, 2, 3]
    assert kept(session, "460200") == [1]  # the one before the forgery; nothing after it
    stored = session.scalar(
        select(PartnerBulletin).where(PartnerBulletin.issuer == "420100", PartnerBulletin.seq == 3)
    )
    assert stored is not None and stored.payload["catalogue"][0]["code"] == "420100-bikes"
    states = {s.what: s for s in session.scalars(select(SyncState))}
    assert states["bulletins:420100"].last_error is None
    assert "signature" in str(states["bulletins:460200"].last_error)

    # Next time each is asked only after what is held.
    web.asked.clear()
    web.bulletins["420100"].append(wuhan_city.bulletin(4))
    web.bulletins["460200"][1] = sanya_city.bulletin(2)  # Sanya fixed its signing
    outcome = bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now)
    assert outcome == {"420100": 1, "460200": 2}
    assert any(url.endswith("/bulletins?after=3") and "wuhan" in url for url in web.asked)
    assert any(url.endswith("/bulletins?after=1") and "sanya" in url for url in web.asked)
    assert kept(session, "460200") == [1, 2, 3]
    assert bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now) == {
        "420100": 0,
        "460200": 0,
    }


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda w, s: w.bulletin(2, iss="460200"), id="another city's"),
        pytest.param(lambda w, s: w.bulletin(2, typ=jws.TYP_ENTRY), id="not a bulletin"),
        pytest.param(lambda w, s: w.bulletin(1), id="a seq already held"),
        pytest.param(lambda w, s: w.bulletin(3), id="a seq skipped"),
        pytest.param(lambda w, s: s.bulletin(2), id="signed by another member"),
    ],
)
def test_a_bulletin_out_of_sequence_or_not_the_partners_is_refused(
    session: Session, fed: Federation, bad: Callable[[Partner, Partner], str]
) -> None:
    wuhan_city, sanya_city = fed.partners["420100"], fed.partners["460200"]
    web = Web(wuhan_city, sanya_city)
    web.bulletins["420100"] = [wuhan_city.bulletin(1)]
    assert bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now)["420100"] == 1

    # The partner's server (or whoever answers for it) serves a bad one after seq 1.
    web.injected["420100"] = [bad(wuhan_city, sanya_city)]
    outcome = bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now)
    assert str(outcome["420100"]).startswith("error:")
    assert kept(session, "420100") == [1]


def test_many_missed_bulletins_arrive_page_by_page(session: Session, fed: Federation) -> None:
    wuhan_city = fed.partners["420100"]
    web = Web(wuhan_city)
    web.bulletins["420100"] = [wuhan_city.bulletin(s) for s in range(1, 41)]
    outcome = bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now)
    assert outcome["420100"] == 40
    assert kept(session, "420100") == list(range(1, 41))
    assert [u.rsplit("=", 1)[1] for u in web.asked if "wuhan" in u] == ["0", "31"]


def test_one_unreachable_partner_stops_no_other(session: Session, fed: Federation) -> None:
    wuhan_city = fed.partners["420100"]
    web = Web(wuhan_city)  # Sanya does not answer
    web.bulletins["420100"] = [wuhan_city.bulletin(1)]
    outcome = bulletins.sync_bulletins(session, fed.settings, fetch=web, now=fed.now)
    assert outcome["420100"] == 1 and "does not answer" in str(outcome["460200"])


def test_without_a_trust_list_no_bulletin_is_fetched(session: Session) -> None:
    web = Web(wuhan())
    assert bulletins.sync_bulletins(session, city_settings(), fetch=web) == {}
    assert web.asked == []


# === consent to cross-city recognition =====================================================================


def xc_of(session: Session, settings: Settings, person: Citizen) -> Any:
    token = code_of(session, settings, person, utcnow())
    return jwt.decode(token, options={"verify_signature": False}).get("xc")


def test_consent_per_partner_and_for_all_and_what_codes_carry(session: Session) -> None:
    settings = city_settings()
    person = scored_citizen(session, settings)
    assert consent.shared_with(session, person.id) is None
    assert xc_of(session, settings, person) is None  # no consent: no cross-city use at all

    assert consent.give(session, person, "460200", channel="app", actor="citizen") is not None
    assert consent.give(session, person, "420100", channel="app", actor="citizen") is not None
    assert consent.give(session, person, "420100", channel="app", actor="citizen") is None
    assert consent.shared_with(session, person.id) == ["420100", "460200"]
    assert xc_of(session, settings, person) == ["420100", "460200"]
    assert consent.shares_with(session, person.id, "420100")
    assert not consent.shares_with(session, person.id, "421000")

    consent.give(session, person, consent.ALL, channel="counter", actor="clerk")
    assert consent.shared_with(session, person.id) == "*"
    assert xc_of(session, settings, person) == "*"
    assert consent.shares_with(session, person.id, "421000")

    # Withdrawing "*" ends every standing consent at once.
    assert consent.withdraw(session, person, consent.ALL, actor="citizen") == 3
    assert consent.shared_with(session, person.id) is None
    assert xc_of(session, settings, person) is None
    assert consent.withdraw(session, person, consent.ALL, actor="citizen") == 0


def test_withdrawing_one_partner_keeps_the_others_and_history_keeps_everything(
    session: Session,
) -> None:
    person = factories.citizen(session)
    other = factories.citizen(session)
    consent.give(session, person, "420100", channel="app", actor="citizen")
    consent.give(session, person, "460200", channel="app", actor="citizen")
    consent.give(session, other, "420100", channel="app", actor="citizen")

    assert consent.withdraw(session, person, "420100", actor="citizen") == 1
    assert consent.shared_with(session, person.id) == ["460200"]
    assert consent.shared_with(session, other.id) == ["420100"]  # another citizen's stands
    assert consent.withdraw(session, person, "421000", actor="citizen") == 0
    # Given again: a new row; the withdrawn one stays in the history.
    consent.give(session, person, "420100", channel="counter", actor="clerk")
    assert consent.shared_with(session, person.id) == ["420100", "460200"]

    history = consent.history(session, person, actor="citizen")
    assert [(h.partner, h.withdrawn_at is not None, h.channel) for h in history] == [
        ("420100", False, "counter"),
        ("460200", False, "app"),
        ("420100", True, "app"),
    ]
    assert (
        session.scalar(
            select(func.count())
            .select_from(CrossCityConsent)
            .where(CrossCityConsent.citizen_id == person.id)
        )
        == 3
    )
    events = session.execute(
        select(AuditEvent.action, AuditEvent.detail)
        .where(AuditEvent.citizen_id == person.id, AuditEvent.action.like("cross_city.%"))
        .order_by(AuditEvent.id)
    ).all()
    assert [(a, d.get("partner")) for a, d in events] == [
        ("cross_city.consent_given", "420100"),
        ("cross_city.consent_given", "460200"),
        ("cross_city.consent_withdrawn", "420100"),
        ("cross_city.consent_given", "420100"),
        ("cross_city.consent_history", None),  # reading the history is audited too
    ]


@pytest.mark.parametrize(
    "odd",
    [
        {"names": ["武汉市"]},
        {"signing_keys": 5},
        {"mappings": [{"version": "3", "tiers": []}]},
        {
            "mappings": [
                {
                    "version": 3,
                    "tiers": [{"code": "A", "name_zh": "甲", "name_en": "A", "common_level": 9}],
                }
            ]
        },
    ],
)
def test_a_signed_but_malformed_entry_is_never_listed(
    session: Session, coord: Coordinator, odd: dict[str, Any]
) -> None:
    """One member's odd entry must not make a list that desks (which read entries strictly)
    refuse: the coordinator keeps that member's last good entry and says why."""
    coord.join(session, coord.wuhan)
    first = coord.compile(session)
    assert first is not None
    wuhan = coord.wuhan
    coord.web.entry_override[wuhan.base_url] = lambda: {
        "entry": wuhan.entry(coord.web.now, **odd),
        "federation_key": wuhan.jwk,
    }
    coord.web.now += dt.timedelta(hours=1)
    errors = coordinator.refresh_entries(session, coord.settings, fetch=coord.web)
    assert errors["420100"] is not None and any(
        word in str(errors["420100"]) for word in ("must", "needs")
    )
    assert coordinator.compile_list(session, coord.settings, now=coord.web.now) is None
    assert (
        member(session, "420100").entry
        == jws.unverified_payload(first.document)["members"][0]["entry"]
    )
