"""The demo city: sources, both reference models, a synthetic population ingested the real way."""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin import operations as admin_operations
from citycredit.core.clients import find_client, register_client
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.idnumber import id_hash
from citycredit.core.keys import current_signing_key
from credit_codes.operations import RedemptionRefused, issue_credit_code, redeem
from points_engine import operations
from points_engine.models import Citizen, DataSource, ScoreSnapshot
from points_engine.synthetic import SOURCES, CityPlan, citizen_ids, generate_rows, write_csv
from scenarios.benefits import live_catalogue
from scenarios.demo import ensure_demo_scenarios, load_catalogue

REFERENCE_MODELS = ("itemised-base1000.yaml", "weighted-dimensions.yaml")


def reference_model_text(filename: str) -> str:
    return (resources.files("points_engine") / "models" / "reference" / filename).read_text("utf-8")


def ensure_sources(session: Session) -> int:
    known = {s.code: s for s in session.scalars(select(DataSource))}
    added = 0
    for spec in SOURCES:
        items = sorted({item for item, _ in spec.items})
        if spec.code not in known:
            operations.add_source(session, spec.code, spec.name_zh, spec.name_en, items=items)
            added += 1
        elif known[spec.code].items is None:
            known[spec.code].items = items
    return added


def ensure_reference_models(session: Session, *, actor: str) -> None:
    """Load both reference models once; publish the itemised one if nothing is published yet."""
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


DEMO_ACCOUNTS = (
    ("admin", "platform_admin", "示范管理员", None),
    ("reviewer2", "platform_admin", "第二审核人", None),
    ("library", "operator", "图书馆运营", "library-operator"),
    ("transport", "operator", "公交运营", "transport-operator"),
    ("clerk", "clerk", "数据专员", None),
    ("auditor", "auditor", "审计员", None),
)


def ensure_demo_accounts(session: Session, settings: Settings) -> tuple[Path, dict[str, str]]:
    """Admin accounts for the demo, one per role, with random passwords kept in a local file.

    As with the demo clients, only the demo writes passwords to disk (``instance/demo/accounts.json``,
    mode 600); a real city creates its first account with ``citycredit admin create-user``.
    """

    path = settings.instance_dir / "demo" / "accounts.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for username, role, name, operator in DEMO_ACCOUNTS:
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
