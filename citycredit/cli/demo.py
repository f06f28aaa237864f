"""The demo city: sources, both reference models, a synthetic population ingested the real way."""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from admin import operations as admin_operations
from citizen import operations as citizen_ops
from citizen import repairs
from citizen.models import Objection, RepairApplication
from citizen.operations import ObjectionTerms
from citycredit.core.actors import SYSTEM, Actor
from citycredit.core.clients import ApiClient, find_client, register_client
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.idnumber import id_hash, make_id_number
from citycredit.core.keys import current_signing_key
from citycredit.core.workdays import is_working_day
from credit_codes.operations import RedemptionRefused, issue_credit_code, redeem
from governance import lists
from governance.models import ListEntry
from points_engine import batches, catalogue, operations
from points_engine.models import (
    Citizen,
    DataSource,
    IngestBatch,
    Record,
    RejectedRow,
    ScoreSnapshot,
)
from points_engine.synthetic import SOURCES, CityPlan, citizen_ids, generate_rows, write_csv
from push import outbox
from push import subscriptions as subs
from push.apps import register_app
from push.links import create_link
from push.models import Attempt, Delivery, Subscription
from scenarios.benefits import live_catalogue
from scenarios.demo import ensure_demo_scenarios, load_catalogue
from scenarios.models import Operator, Scenario

REFERENCE_MODELS = ("itemised-base1000.yaml", "weighted-dimensions.yaml")


def reference_model_text(filename: str) -> str:
    return (resources.files("points_engine") / "models" / "reference" / filename).read_text("utf-8")


# Catalogued records no item scores, and the demo sources that report them (licences granted,
# inspections, enforcement, rulings, confirmations: issue 13 §1).
NON_SCORING = {
    "market": ("ADMIN_ENFORCEMENT", "ADMIN_RULING", "INSPECTION_RESULT", "LICENCE_GRANTED"),
    "civil_affairs": ("ADMIN_CONFIRMATION",),
}


def ensure_sources(session: Session) -> int:
    known = {s.code: s for s in session.scalars(select(DataSource))}
    added = 0
    for spec in SOURCES:
        items = sorted({item for item, _ in spec.items} | set(NON_SCORING.get(spec.code, ())))
        if spec.code not in known:
            operations.add_source(session, spec.code, spec.name_zh, spec.name_en, items=items)
            added += 1
        elif known[spec.code].items is None or not set(items) <= set(known[spec.code].items or ()):
            known[spec.code].items = sorted(set(items) | set(known[spec.code].items or ()))
    return added


def ensure_reference_models(session: Session, *, actor: str) -> None:
    """Load both reference models once; publish the itemised one if nothing is published yet.

    The reference catalogue is published first (the models score only what it holds).
    """
    if catalogue.published_version(session) is None:
        catalogue.adopt_reference(session, actor=SYSTEM)
    for filename in REFERENCE_MODELS:
        text = reference_model_text(filename)
        name = filename.removesuffix(".yaml")
        try:
            operations.find_version(session, name)
        except operations.EngineError:
            operations.load_model_version(session, text, filename)
    try:
        operations.published_model(session)
    except operations.NoPublishedModel:
        operations.publish_model_version(
            session, operations.find_version(session, "itemised-base1000"), actor=actor
        )


@dataclass
class DemoFiles:
    records_csv: Path
    rows: int
    sample_ids: list[str]


def write_demo_records(directory: Path, plan: CityPlan) -> DemoFiles:
    path = directory / f"records-{plan.citizens}-{plan.seed}.csv"
    rows = write_csv(path, generate_rows(plan))
    return DemoFiles(path, rows, citizen_ids(plan)[1:4])


def consent_most(session: Session) -> int:
    """Nine citizens in ten consent in the demo; the tenth shows what an unscored citizen looks like."""
    return operations.give_consent_bulk(
        session, select(Citizen.id).where(Citizen.id % 10 != 0), channel="demo-import"
    )


def default_plan(citizens: int, seed: int, today: dt.date) -> CityPlan:
    return CityPlan(citizens=citizens, seed=seed, today=today)


def sample_citizens(session: Session, key: bytes, plan: CityPlan) -> list[tuple[str, str]]:
    """A few demo ID numbers worth explaining: a top tier, a direct tier, deductions, no consent."""
    wanted = {
        "top tier": lambda s: s is not None and s.tier_rank == 0,
        "tier set directly by a severe record": lambda s: s is not None and s.direct_tier,
        "below the base score": lambda s: s is not None and not s.direct_tier and s.score < 1000,
        "no consent, so no score": lambda s: s is None,
    }
    found: dict[str, str] = {}
    for number in citizen_ids(plan):
        row = session.execute(
            select(Citizen, ScoreSnapshot)
            .outerjoin(
                ScoreSnapshot,
                (ScoreSnapshot.citizen_id == Citizen.id) & ScoreSnapshot.is_current.is_(True),
            )
            .where(Citizen.id_hash == id_hash(key, number))
        ).first()
        if row is None:
            continue
        for label, matches in wanted.items():
            if label not in found and matches(row[1]):
                found[label] = number
                break
        if len(found) == len(wanted):
            break
    return [(label, found[label]) for label in wanted if label in found]


def ensure_demo_partners(session: Session, settings: Settings) -> Path:
    """Demo scenarios, the signing key, and demo API clients whose credentials go to a local file.

    Only the demo writes secrets to disk (``instance/demo/clients.json``, mode 600) so that the
    examples can run against it; a real client's secret is shown once and never stored in clear.
    """

    ensure_demo_scenarios(session)
    load_catalogue(session)
    current_signing_key(session, settings.key_secret)
    path = settings.instance_dir / "demo" / "clients.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "venue": ("示范市信易+便民服务台 / City benefits desk", "venue", ["verify", "redeem"]),
        "app": ("示范市城市服务App / City app", "app", ["codes:issue"]),
    }
    for role, (name, kind, scopes) in wanted.items():
        if role in known and find_client(session, known[role]["client_id"]) is not None:
            continue
        issued = register_client(
            session, name=name, kind=kind, scopes=scopes, key_secret=settings.key_secret
        )
        known[role] = {"client_id": issued.client.client_id, "client_secret": issued.secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return path


# The demo library's lending system, linked by citizens (issue 15): its redirect URI is on loopback,
# where a developer runs examples/ (http is allowed there only).
DEMO_LINK_OPERATOR = "library-operator"
DEMO_LINK_REDIRECT = "http://127.0.0.1:8765/citycredit/linked"


def lending_system(session: Session, settings: Settings) -> ApiClient | None:
    """The demo library's lending system: one operator client that citizens link (a link app) and
    whose webhook history the admin shows. Made once; its credentials and redirect URI go to the
    demo's clients file, like the venue's. None when the demo has no library operator."""
    path = settings.instance_dir / "demo" / "clients.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    operator = session.scalar(select(Operator).where(Operator.code == DEMO_LINK_OPERATOR))
    if operator is None:
        return None
    entry = known.get("links")
    client = find_client(session, entry["client_id"]) if entry else None
    if client is not None:
        return client
    issued = register_client(
        session,
        name="示范市图书馆借阅系统 / Library lending system",
        kind="operator",
        scopes=["links:read", "webhooks:manage"],
        operator_id=operator.id,
        key_secret=settings.key_secret,
    )
    known["links"] = {
        "client_id": issued.client.client_id,
        "client_secret": issued.secret,
        "redirect_uri": DEMO_LINK_REDIRECT,
    }
    register_app(session, issued.client, [DEMO_LINK_REDIRECT], actor="demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return issued.client


def ensure_demo_link(session: Session, settings: Settings, number: str | None) -> None:
    """One citizen (``number``, a demo ID number) who linked the demo's lending system, so 我的授权
    has something to show."""
    client = lending_system(session, settings)
    if client is None or number is None:
        return
    citizen = session.scalar(
        select(Citizen).where(Citizen.id_hash == id_hash(settings.id_hash_key, number))
    )
    if citizen is not None and citizen.consent_given:
        create_link(
            session, id_hash_key=settings.id_hash_key, citizen=citizen, client=client, actor="demo"
        )


# username, role, display name, operator (operator accounts), data source (a clerk limited to one)
DEMO_ACCOUNTS: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    ("admin", "platform_admin", "示范管理员", None, None),
    ("reviewer2", "platform_admin", "第二审核人", None, None),
    ("library", "operator", "图书馆运营", "library-operator", None),
    ("transport", "operator", "公交运营", "transport-operator", None),
    ("clerk", "clerk", "数据专员", None, None),
    ("objections", "reviewer", "异议审核员", None, None),
    ("traffic-clerk", "clerk", "交警支队数据专员", None, "traffic_police"),
    ("auditor", "auditor", "审计员", None, None),
)


def ensure_demo_accounts(session: Session, settings: Settings) -> tuple[Path, dict[str, str]]:
    """Admin accounts for the demo, one per role, with random passwords kept in a local file.

    As with the demo clients, only the demo writes passwords to disk (``instance/demo/accounts.json``,
    mode 600); a real city creates its first account with ``citycredit admin create-user``.
    """

    path = settings.instance_dir / "demo" / "accounts.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for username, role, name, operator, source in DEMO_ACCOUNTS:
        if admin_operations.find_user(session, username) is not None:
            continue  # made by an earlier seed (its password is in the file) or by hand (not ours)
        password = "demo-" + secrets.token_urlsafe(9)
        admin_operations.create_user(
            session,
            username=username,
            password=password,
            role=role,
            display_name=name,
            operator_code=operator,
            source_code=source,
            actor="demo",
            now=utcnow(),
        )
        known[username] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return path, known


def simulate_use(session: Session, settings: Settings, *, days: int = 30, seed: int = 7) -> int:
    """A month of venues scanning citizens' codes, through the real issue/verify/redeem path, so the
    admin's dashboard and the citizens' "who checked me" have history. Returns redemptions made."""

    credentials = json.loads((settings.instance_dir / "demo" / "clients.json").read_text())
    desk = find_client(session, credentials["venue"]["client_id"])
    assert desk is not None
    rng = random.Random(seed)
    people = list(
        session.scalars(
            select(Citizen)
            .join(ScoreSnapshot, ScoreSnapshot.citizen_id == Citizen.id)
            .where(ScoreSnapshot.is_current.is_(True), Citizen.consent_given.is_(True))
            .order_by(Citizen.id)
            .limit(400)
        )
    )
    today = dt.datetime.now(settings.tz).date()
    catalogue = live_catalogue(session, today=today)
    if not people or not catalogue:
        return 0
    # Some benefits are far more popular than others (buses and libraries most of all).
    weights = [
        {"transport": 8, "library": 5, "rental": 4}.get(e.scenario.category, 1) / (1 + i % 7)
        for i, e in enumerate(catalogue)
    ]
    now = utcnow()
    made = 0
    for back in range(days, 0, -1):
        for _ in range(rng.randint(40, 90)):
            moment = now - dt.timedelta(days=back, seconds=rng.randint(0, 12 * 3600))
            person = rng.choice(people)
            entry = rng.choices(catalogue, weights)[0]
            code = issue_credit_code(session, settings, person, now=moment, actor="demo")
            try:
                redeem(session, settings, desk, code.token, entry.scenario.code, now=moment)
                made += 1
            except RedemptionRefused:
                pass
    return made


OBJECTION_REASONS = (
    "处罚决定书上的日期与事实不符，请核实。",
    "该欠费已于次月补缴，请更正记录。",
    "我当天不在本市，处罚对象有误。",
    "该记录对应的案件已撤销，请核实后删除。",
)


def simulate_objections(session: Session, settings: Settings, *, seed: int = 11) -> int:
    """A dozen objections at every stage (open, with the source, answered, upheld, rejected,
    withdrawn), filed over the last month through the real workflow, so that the reviewer's queue
    has near and overdue cases and citizens have outcomes to read. Returns the objections made."""
    if session.scalar(select(func.count()).select_from(Objection)):
        return 0
    terms = ObjectionTerms.from_settings(settings)
    today = dt.datetime.now(settings.tz).date()
    _, model = operations.published_model(session)
    negative = sorted(code for code, item in model.items.items() if item.points < 0)
    candidates = session.execute(
        select(Record, Citizen)
        .join(Citizen, Citizen.id == Record.citizen_id)
        .where(
            Record.item_code.in_(negative),
            Record.status == "active",
            Citizen.consent_given.is_(True),
            or_(Record.expires_on.is_(None), Record.expires_on > today),
        )
        .order_by(Record.id)
        .limit(400)
    ).all()
    rng = random.Random(seed)
    chosen: dict[int, Record] = {}
    for record, citizen in rng.sample(candidates, len(candidates)):
        chosen.setdefault(citizen.id, record)
        if len(chosen) == 12:
            break
    reviewer = Actor("admin:objections")
    people = {c.id: c for c in session.scalars(select(Citizen).where(Citizen.id.in_(chosen)))}
    for number, (citizen_id, record) in enumerate(chosen.items()):
        filed = today - dt.timedelta(days=(1, 2, 4, 6, 9, 13, 16, 19, 23, 26, 28, 31)[number])
        moment = dt.datetime.combine(filed, dt.time(9, 30), tzinfo=settings.tz)
        person = people[citizen_id]
        reason = OBJECTION_REASONS[number % len(OBJECTION_REASONS)]
        case = citizen_ops.file_objection(
            session, person, record, reason, today=filed, now=moment, terms=terms
        )
        stage = number % 6
        later = moment + dt.timedelta(days=1)
        if stage in (1, 2, 3, 4):
            citizen_ops.forward(session, case, reviewer, later)
        if stage in (2, 3, 4):
            clerk = Actor.for_source("admin:clerk", source_id=record.source_id)
            answer = "经核实，记录登记有误。" if stage == 3 else "经核实，记录无误。"
            citizen_ops.record_source_answer(session, case, clerk, answer, later)
        if stage in (3, 4):
            citizen_ops.decide(
                session,
                case,
                reviewer,
                stage == 3,
                "来源单位确认登记有误，撤销该记录。" if stage == 3 else "来源单位核实记录无误。",
                "revoke" if stage == 3 else None,
                now=later + dt.timedelta(hours=2),
                today=today,
            )
        if stage == 5:
            citizen_ops.withdraw(session, person, case, now=later, today=today)
    # Filing rescored each citizen as of the filing day; bring them all to today.
    operations.mark_dirty(session, chosen)
    operations.drain_dirty(session, as_of=today)
    return len(chosen)


def simulate_repairs(session: Session, settings: Settings, *, seed: int = 13) -> int:
    """Eight credit-repair applications at every stage (awaiting a first review, awaiting the
    second, approved, refused), through the real workflow: the reviewers' queue has work and some
    citizens have a repaired record. Returns the applications made."""
    if session.scalar(select(func.count()).select_from(RepairApplication)):
        return 0
    today = dt.datetime.now(settings.tz).date()
    _, model = operations.published_model(session)
    codes = sorted(code for code, item in model.items.items() if item.repairable)
    candidates = session.execute(
        select(Record, Citizen)
        .join(Citizen, Citizen.id == Record.citizen_id)
        .where(
            Record.item_code.in_(codes),
            Record.status == "active",
            Citizen.consent_given.is_(True),
        )
        .order_by(Record.id)
        .limit(600)
    ).all()
    rng = random.Random(seed)
    chosen: dict[int, tuple[Record, Citizen]] = {}
    for record, citizen in rng.sample(candidates, len(candidates)):
        if citizen.id in chosen or not repairs.eligibility(session, record, today=today).allowed:
            continue
        chosen[citizen.id] = (record, citizen)
        if len(chosen) == 8:
            break
    first, second = Actor("admin:objections"), Actor("admin:admin")
    statements = (
        "欠缴款项已于上月全部结清，附缴款凭证。",
        "已履行法院判决确定的全部义务，附结案通知书。",
        "已按要求改正违法行为并参加信用修复培训。",
    )
    for number, (record, citizen) in enumerate(chosen.values()):
        moment = dt.datetime.combine(
            today - dt.timedelta(days=8 - number), dt.time(10), tzinfo=settings.tz
        )
        application = repairs.apply(
            session,
            citizen,
            record,
            statements[number % len(statements)],
            [],
            today=today,
            now=moment,
        )
        stage = number % 4
        if stage >= 1:
            refuse = stage == 3
            repairs.propose(
                session,
                application,
                first,
                not refuse,
                "未提供履行义务的证明材料。" if refuse else "材料齐全，义务已履行。",
                now=moment + dt.timedelta(hours=3),
            )
        if stage >= 2:
            repairs.confirm(
                session,
                application,
                second,
                True,
                "",
                now=moment + dt.timedelta(days=1),
                today=today,
            )
    return len(chosen)


DEMO_NAMES = ("张三丰", "李小龙", "王建国", "赵丽华", "欧阳娜娜", "陈志强", "刘晓燕", "周杰")


def simulate_lists(session: Session, settings: Settings, plan: CityPlan) -> int:
    """A few red and black list decisions of the court and the civil-affairs bureau, filed through
    the real import, one of them lifted: the public list and the admin's page have something to show.
    Returns the entries listed."""
    if session.scalar(select(func.count()).select_from(ListEntry)):
        return 0
    today = dt.datetime.now(settings.tz).date()
    sources = {s.code: s for s in session.scalars(select(DataSource))}
    numbers = citizen_ids(plan)[:8]

    def filer(item: str) -> DataSource | None:
        # The department that may report the list type's item.
        return next((s for s in sources.values() if s.items is None or item in s.items), None)

    court = filer(lists.LIST_TYPES["dishonest_debtor"].item_code)
    honours = filer(lists.LIST_TYPES["honesty_model"].item_code)
    if len(numbers) < 8 or court is None or honours is None:
        return 0
    batches = (
        (court, "dishonest_debtor", "（{year}）鄂02执{n}号", "24", numbers[:4]),
        (honours, "honesty_model", "黄诚信〔{year}〕{n}号", "12", numbers[4:]),
    )
    made: list[ListEntry] = []
    for source, list_code, decision, months, chosen in batches:
        rows = [
            (
                line,
                {
                    "list": list_code,
                    "id_number": number,
                    "name": DEMO_NAMES[(line + len(made)) % len(DEMO_NAMES)],
                    "decision_no": decision.format(year=today.year, n=100 + line),
                    "start_on": (today - dt.timedelta(days=20 * line)).isoformat(),
                    "publish_months": months,
                },
            )
            for line, number in enumerate(chosen, start=2)
        ]
        result = lists.import_entries(
            session,
            rows,
            source=source,
            key=settings.id_hash_key,
            today=today,
            now=utcnow(),
            actor="demo",
        )
        made.extend(result.listed)
    if made:
        lists.lift(
            session,
            made[0],
            actor="admin:admin",
            reason="已履行法院判决确定的全部义务，法院决定移出。",
            today=today,
            now=utcnow(),
        )
    return len(made)


# --- a month of collection (issue 13 §2: the data-quality pages have something to show) -----------

COLLECTION_DAYS = 30
COLLECTION_ORIGIN = "demo-collection"
# Per source: rows a working day (low, high), share sent late, share malformed; the rest mostly
# within the catalogue's three working days. Profiles differ so the grades do too.
COLLECTION_PROFILES: dict[str, tuple[tuple[int, int], float, float]] = {
    "traffic_police": ((6, 12), 0.0, 0.0),
    "court": ((1, 3), 0.0, 0.0),
    "market": ((3, 7), 0.08, 0.06),
    "water": ((2, 6), 0.25, 0.03),
    "civil_affairs": ((1, 3), 0.03, 0.1),
    "tax": ((1, 4), 0.05, 0.0),
    "volunteer": ((4, 9), 0.0, 0.02),
}
# New residents the collection is about (not the synthetic city's people: their scores stay as the
# README and the docs describe them).
COLLECTION_REGION = "420281"


@dataclass
class Collection:
    batches: int = 0
    rows: int = 0
    rejected: int = 0
    resent: int = 0


def _working_days_back(day: dt.date, n: int) -> dt.date:
    while n:
        day -= dt.timedelta(days=1)
        if is_working_day(day):
            n -= 1
    return day


def simulate_collection(
    session: Session, settings: Settings, *, days: int = COLLECTION_DAYS, seed: int = 17
) -> Collection:
    """The departments' last ``days`` days of daily reporting, through the real ingest, one small
    batch per source and working day: mostly on time, some late, a few malformed rows (a wrong
    ID-number check digit, a missing field, an uncatalogued code), duplicates and corrections; most
    refused rows are corrected and re-sent a few days later (resolved), some are left open."""
    done = Collection()
    if session.scalar(
        select(func.count())
        .select_from(IngestBatch)
        .where(IngestBatch.origin.like(f"{COLLECTION_ORIGIN}/%"))
    ):
        return done
    sources = {s.code: s for s in session.scalars(select(DataSource))}
    rng = random.Random(seed)
    people = [
        make_id_number(
            COLLECTION_REGION,
            dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(50 * 365)),
            rng.randrange(1000),
        )
        for _ in range(300)
    ]
    today = dt.datetime.now(settings.tz).date()
    sent: dict[str, list[dict[str, str]]] = {code: [] for code in COLLECTION_PROFILES}
    # Refused rows to correct: (the day they go again, the corrected row).
    to_resend: dict[str, list[tuple[dt.date, dict[str, str]]]] = {
        code: [] for code in COLLECTION_PROFILES
    }
    serial = 0
    for back in range(days, 0, -1):
        day = today - dt.timedelta(days=back)
        if not is_working_day(day):
            continue
        for code, ((low, high), late, bad) in COLLECTION_PROFILES.items():
            source = sources.get(code)
            if source is None:
                continue
            items = sorted(source.items or ())
            before = len(sent[code])  # rows of earlier days, to send again
            rows: list[dict[str, str]] = []
            for _ in range(rng.randint(low, high)):
                serial += 1
                if rng.random() < late:
                    occurred = day - dt.timedelta(days=rng.randint(8, 20))
                else:
                    occurred = _working_days_back(day, rng.choice((0, 0, 1, 1, 2, 3)))
                good = {
                    "source": code,
                    "source_record_id": f"{code}-{day:%Y%m%d}-{serial:05d}",
                    "id_number": rng.choice(people),
                    "item_code": rng.choice(items),
                    "document_no": f"黄{code[:2]}〔{occurred.year}〕{serial}号",
                    "occurred_on": occurred.isoformat(),
                    "reported_on": occurred.isoformat(),
                    "status": "active",
                }
                if rng.random() < bad:
                    spoiled = dict(good)
                    kind = rng.randrange(3)
                    if kind == 0:
                        number = good["id_number"]
                        spoiled["id_number"] = number[:17] + ("1" if number[17] == "0" else "0")
                    elif kind == 1:
                        spoiled["document_no"] = ""
                    else:
                        spoiled["item_code"] = "PARKING_OVERSTAY"  # in no catalogue
                    rows.append(spoiled)
                    if rng.random() < 0.65:  # the rest stay open for the clerk
                        when = day + dt.timedelta(days=rng.randint(1, 4))
                        to_resend[code].append((when, good))
                    continue
                rows.append(good)
                sent[code].append(good)
            if before and rng.random() < 0.3:
                rows.append(dict(sent[code][rng.randrange(before)]))  # again unchanged: a duplicate
            if before and rng.random() < 0.2:
                at = rng.randrange(before)
                fixed = dict(sent[code][at])
                fixed["document_no"] = fixed["document_no"].removesuffix("（更正）") + "（更正）"
                if fixed != sent[code][at]:
                    sent[code][at] = fixed
                    rows.append(fixed)  # a correction
            due = [row for when, row in to_resend[code] if when <= day]
            to_resend[code] = [(w, r) for w, r in to_resend[code] if w > day]
            rows.extend(due)
            if not rows:
                continue
            result = batches.ingest(
                session,
                iter(enumerate(rows, start=2)),
                origin=f"{COLLECTION_ORIGIN}/{code}/{day.isoformat()}",
                fmt="csv",
                key=settings.id_hash_key,
                today=day,
            )
            _backdate(session, result.report.batch_id, day, settings)
            done.batches += 1
            done.rows += len(rows)
            done.rejected += result.report.rejected
            done.resent += len(due)
    return done


def _backdate(session: Session, batch_id: int, day: dt.date, settings: Settings) -> None:
    """The batch and what it resolved read as of its simulated day (17:30 in the city)."""
    moment = dt.datetime.combine(day, dt.time(17, 30), tzinfo=settings.tz).astimezone(dt.UTC)
    batch = session.get(IngestBatch, batch_id)
    assert batch is not None
    batch.started_at = batch.progress_at = moment
    batch.finished_at = moment
    for row in session.scalars(
        select(RejectedRow).where(RejectedRow.resolved_by_batch_id == batch_id)
    ):
        row.resolved_at = moment
    session.flush()


DEMO_WEBHOOK_URL = "https://library.example/citycredit/webhooks"
DEMO_WEBHOOK_DAYS = 21


def simulate_webhooks(session: Session, settings: Settings, *, seed: int = 17) -> int:
    """Three weeks of webhook history for the admin's pages and chart: the library operator's
    lending system subscribed, events sent, a few retried, the last days failing into dead letters.

    The subscription points at a reserved example domain (RFC 2606) and is left disabled, with its
    reason shown, so the demo's scheduler never sends anything anywhere. Deliveries and attempts are
    written as history here (the worker owns them in a running city). Returns deliveries made."""
    if session.scalar(select(Subscription.id).limit(1)) is not None:
        return 0
    client = lending_system(session, settings)
    if client is None or client.operator_id is None:
        return 0
    operator_id = client.operator_id
    sub, _secret = subs.create_subscription(  # the secret is not kept: nothing is sent
        session,
        client,
        url=DEMO_WEBHOOK_URL,
        event_types=["scenario.published", "scenario.suspended", "tier.changed", "link.revoked"],
        key_secret=settings.key_secret,
        actor="demo",
    )
    codes = list(
        session.scalars(
            select(Scenario.code).where(Scenario.operator_id == operator_id).order_by(Scenario.code)
        )
    ) or ["library-demo"]
    rng = random.Random(seed)
    now = utcnow()
    made = 0
    for back in range(DEMO_WEBHOOK_DAYS, 0, -1):
        for _ in range(rng.randint(2, 6)):
            moment = now - dt.timedelta(days=back, seconds=rng.randint(0, 20 * 3600))
            code = rng.choice(codes)
            kind = rng.choice(["scenario.published", "scenario.suspended"])
            outbox.emit(
                session,
                [outbox.Outgoing(kind, code, {"scenario": code, "status": kind.split(".")[1]})],
                now=moment,
            )
            delivery = session.scalar(
                select(Delivery)
                .where(Delivery.subscription_id == sub.id)
                .order_by(Delivery.id.desc())
                .limit(1)
            )
            assert delivery is not None
            # The receiver answers well at first; in the last days it is down for good.
            failing_for_good = back <= 3
            retried = not failing_for_good and rng.random() < 0.2
            tries: list[tuple[int | None, str | None]] = []
            if failing_for_good:
                tries = [(503, None), (None, "connection refused"), (503, None)]
            elif retried:
                tries = [(rng.choice([500, 502, 503]), None), (200, None)]
            else:
                tries = [(200, None)]
            at = moment
            for n, (status_code, error) in enumerate(tries):
                # The first try within a second; retries minutes apart (the worker's backoff).
                at += dt.timedelta(seconds=1) if n == 0 else dt.timedelta(minutes=rng.randint(1, 5))
                session.add(
                    Attempt(
                        delivery_id=delivery.id,
                        at=at,
                        status_code=status_code,
                        error=error,
                        duration_ms=rng.randint(25, 400) if status_code else 10_000,
                    )
                )
            last_code, last_error = tries[-1]
            delivery.attempts = len(tries)
            delivery.last_status_code = last_code
            delivery.last_error = last_error
            if failing_for_good:
                delivery.status = "dead"
            else:
                delivery.status, delivery.delivered_at = "delivered", at
            made += 1
    session.flush()
    subs.set_status(
        session,
        sub,
        "disabled",
        actor="demo",
        reason="示范数据：接收地址为示例域名，不会实际投递 / demo data: the receiver is an "
        "example domain, nothing is sent",
    )
    return made
