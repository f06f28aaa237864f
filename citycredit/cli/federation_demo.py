"""``citycredit federation demo``: a small federation of partner cities on loopback, for the tour.

Three cities (黄石市 420200, 三亚市 460200, 海口市 460100) and a coordinator, each its own gunicorn
process and SQLite database (``citycredit.cli.cluster``), with three different tier tables: Huangshi
scores with the reference itemised model (AAA–D), Sanya with the weighted reference model (six tiers,
0–1000), Haikou with the itemised items under a five-star table. Each city is seeded the way
``citycredit demo seed`` builds the demo city (sources, models, a synthetic population ingested for
real, consent, the demo catalogue with the benefits open to visitors, venue and app credentials, admin
accounts, a week of venue scans); a few citizens of each consent to cross-city recognition, a few
visit the other cities, and the cities publish and exchange their bulletins. Then the command prints
what to open and what to try, keeps the federation current (trust list, bulletins) and waits for
Ctrl-C (or SIGTERM) to stop every process it started.

``citycredit federation demo-env CITY`` prints a city's environment, so the usual commands run as
that city: ``eval "$(citycredit federation demo-env 420200)"``.

Every run starts afresh: the cities' secrets are made per run, so the previous run's databases under
``--base`` (and only a directory this command made) are removed first. The demo keeps its secrets,
passwords and client credentials in files of mode 0600 under ``--base``, as ``demo seed`` does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin import operations as admin_operations
from citycredit.cli import demo as demo_city
from citycredit.cli.base import ACTOR
from citycredit.cli.cluster import CitySpec, Cluster, Deployment
from citycredit.core.config import Settings
from citycredit.core.db import utcnow
from citycredit.core.idnumber import check_digit, id_hash
from credit_codes import consent
from credit_codes.operations import issue_credit_code
from points_engine import batches, operations
from points_engine.models import Citizen, DataSource, ScoreSnapshot
from points_engine.synthetic import REGIONS, CityPlan, citizen_ids, generate_rows, write_csv
from scenarios.benefits import visitor_catalogue

STATE_FILE = "federation-demo.json"
DEFAULT_BASE = Path("instance") / "federation"
COORDINATOR = "coord"
SIMULATED_DAYS = 4  # of venue scans per city (the single-city demo simulates 30)
SHARERS = 12  # citizens per city who consent to recognition by every partner city
KEEP_CURRENT_EVERY = 30.0  # seconds between re-reading entries, re-signing and syncing the list
PREFERRED_SCENARIO = "library-deposit-free"

# Haikou scores the reference items under a table of its own: five stars on the common scale.
HAIKOU_TIERS = """tiers:
  - {code: STAR5, name: {zh: 五星（诚信典范）, en: Five stars (exemplary)}, min_score: 1060, common_tier: 5}
  - {code: STAR4, name: {zh: 四星（诚信优秀）, en: Four stars (excellent)}, min_score: 1020, common_tier: 4}
  - {code: STAR3, name: {zh: 三星（诚信）, en: Three stars (trustworthy)}, min_score: 970, common_tier: 3}
  - {code: STAR2, name: {zh: 二星（一般）, en: Two stars (fair)}, min_score: 880, common_tier: 2}
  - {code: STAR1, name: {zh: 一星（待提升）, en: One star (needs improvement)}, min_score: 0, common_tier: 1}
"""


@dataclass(frozen=True)
class DemoCity:
    code: str
    name_zh: str
    name_en: str
    short_zh: str  # as in the sources' names (市自来水公司 → 三亚市自来水公司 …)
    regions: tuple[str, ...]  # the districts its citizens' ID numbers come from
    seed: int
    model: str  # the published model's name

    def model_text(self) -> tuple[str, str]:
        """The published model's file text and file name."""
        if self.model == "haikou-stars":
            text = demo_city.reference_model_text("itemised-base1000.yaml")
            text = re.sub(r"^name: .*$", "name: haikou-stars", text, count=1, flags=re.M)
            text = re.sub(
                r"^title: .*$",
                'title: {zh: 海口市个人信用积分（星级）, en: "Haikou credit points (stars)"}',
                text,
                count=1,
                flags=re.M,
            )
            text = re.sub(r"^tiers:.*?(?=^items:)", HAIKOU_TIERS, text, count=1, flags=re.M | re.S)
            # A severe record (e.g. a court's list of the dishonest) sets the lowest tier directly.
            text = re.sub(r"direct_tier: D$", "direct_tier: STAR1", text, flags=re.M)
            return text, "haikou-stars.yaml"
        filename = f"{self.model}.yaml"
        return demo_city.reference_model_text(filename), filename


SANYA = ("460202", "460203", "460204", "460205")  # 海棠区, 吉阳区, 天涯区, 崖州区
HAIKOU = ("460105", "460106", "460107", "460108")  # 秀英区, 龙华区, 琼山区, 美兰区
CITIES = (
    DemoCity("420200", "黄石市", "Huangshi", "黄石", REGIONS, 20261123, "itemised-base1000"),
    DemoCity("460200", "三亚市", "Sanya", "三亚", SANYA, 20260460, "weighted-dimensions"),
    DemoCity("460100", "海口市", "Haikou", "海口", HAIKOU, 20260461, "haikou-stars"),
)
ISSUING, VISITED = CITIES[0], CITIES[1]  # the tour: a Huangshi citizen at a Sanya desk


@dataclass
class Seeded:
    """What one city's seed made, for the printout and the tour."""

    accounts: dict[str, str]
    accounts_file: Path
    clients: dict[str, dict[str, str]]
    tiers: list[tuple[str, int]]  # local tier code, common level: the city's table
    model_label: str
    citizens: int
    scored: int
    sharers: list[str]  # ID numbers of citizens who consent to recognition by every partner
    # A scored citizen who shares (the best tier among them) and one who does not.
    sharer: tuple[str, int] | None = None
    keeper: tuple[str, int] | None = None
    visitor_benefits: list[dict[str, Any]] = field(default_factory=list)


# --- the synthetic cities ---------------------------------------------------------------------------


def rehome(number: str, city: DemoCity) -> str:
    """Move a synthetic ID number to one of the city's districts, keeping a bad one as bad."""
    if city.regions == REGIONS or not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        return number
    index = REGIONS.index(number[:6]) if number[:6] in REGIONS else 0
    first17 = city.regions[index % len(city.regions)] + number[6:17]
    valid = number[17] == check_digit(number[:17])
    return first17 + (check_digit(first17) if valid else number[17])


def _rows(plan: CityPlan, city: DemoCity) -> Iterator[dict[str, str]]:
    for row in generate_rows(plan):
        row["id_number"] = rehome(row["id_number"], city)
        yield row


def _publish_own_model(session: Session, city: DemoCity) -> None:
    """The city's own table first; then the reference models as drafts, as ``demo seed`` leaves them."""
    text, filename = city.model_text()
    version = operations.load_model_version(session, text, filename)
    operations.publish_model_version(session, version, actor=ACTOR)
    demo_city.ensure_reference_models(session, actor=ACTOR)


def _current(session: Session) -> list[tuple[Citizen, ScoreSnapshot]]:
    return [
        (row[0], row[1])
        for row in session.execute(
            select(Citizen, ScoreSnapshot)
            .join(ScoreSnapshot, ScoreSnapshot.citizen_id == Citizen.id)
            .where(ScoreSnapshot.is_current.is_(True))
            .order_by(Citizen.id)
        )
    ]


def seed_city(city: DemoCity, citizens: int) -> Any:
    """The Cluster's seed for one city: ``demo seed``'s steps, smaller, plus cross-city consent."""

    def seed(session: Session, settings: Settings) -> Seeded:
        today = dt.datetime.now(settings.tz).date()
        demo_city.ensure_sources(session)
        for source in session.scalars(select(DataSource)):
            source.name_zh = source.name_zh.replace("黄石", city.short_zh)
        _publish_own_model(session, city)
        plan = CityPlan(citizens=citizens, seed=city.seed, today=today)
        records = settings.instance_dir / "demo" / f"records-{citizens}-{city.seed}.csv"
        write_csv(records, _rows(plan, city))
        batches.ingest_file(
            session,
            records,
            fmt="csv",
            key=settings.id_hash_key,
            today=today,
            report_path=records.with_name(records.name + ".report.csv"),
        )
        demo_city.consent_most(session)
        operations.recompute_all(session, as_of=today)
        demo_city.ensure_demo_partners(session, settings)
        demo_city.simulate_use(session, settings, days=SIMULATED_DAYS)
        accounts_file, accounts = demo_city.ensure_demo_accounts(session, settings)
        clients = json.loads((settings.instance_dir / "demo" / "clients.json").read_text())
        version, model = operations.published_model(session)

        # Who is who: the plain ID numbers are the plan's (the database holds only their HMACs).
        numbers = {
            id_hash(settings.id_hash_key, rehome(n, city)): rehome(n, city)
            for n in citizen_ids(plan)
        }
        scored = [(c, s, numbers[c.id_hash]) for c, s in _current(session) if c.id_hash in numbers]
        # A few citizens consent to recognition by every partner city (on the phone page, in life).
        sharing = scored[:: max(1, len(scored) // SHARERS)][:SHARERS]
        for citizen, _, _ in sharing:
            consent.give(session, citizen, "*", channel="demo", actor="demo")
        best = max(sharing, key=lambda x: (x[1].common_tier, -x[0].id), default=None)
        sharing_ids = {c.id for c, _, _ in sharing}
        others = [x for x in scored if x[0].id not in sharing_ids and x[1].common_tier >= 3]
        return Seeded(
            accounts=accounts,
            accounts_file=accounts_file,
            clients=clients,
            tiers=[(t.code, t.common_tier) for t in model.tiers],
            model_label=version.label,
            citizens=len(numbers),
            scored=len(scored),
            sharers=[number for _, _, number in sharing],
            sharer=(best[2], best[1].common_tier) if best else None,
            keeper=(others[0][2], others[0][1].common_tier) if others else None,
            visitor_benefits=visitor_catalogue(session, today=today),
        )

    return seed


COORDINATOR_ACCOUNTS = (
    ("admin", "platform_admin", "协调方管理员"),
    ("reviewer2", "platform_admin", "协调方第二审核人"),
    ("auditor", "auditor", "协调方审计员"),
)


def coordinator_accounts(deployment: Deployment) -> tuple[Path, dict[str, str]]:
    """Two platform admins (membership changes take four eyes) and an auditor at the coordinator."""
    path = deployment.settings.instance_dir / "demo" / "accounts.json"
    known: dict[str, str] = {}
    with deployment.session() as session:
        for username, role, name in COORDINATOR_ACCOUNTS:
            password = "demo-" + os.urandom(9).hex()
            admin_operations.create_user(
                session,
                username=username,
                password=password,
                role=role,
                display_name=name,
                actor="demo",
                now=utcnow(),
            )
            known[username] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return path, known


def visit(cluster: Cluster, seeded: dict[str, Seeded]) -> int:
    """A few sharing citizens use a benefit in each partner city, through the partner API (so the
    federation pages and "who checked me" have something to show). Returns redemptions made."""
    made = 0
    for home in CITIES:
        issuing = cluster.city(home.code)
        sample = seeded[home.code].sharer
        # Not the tour's sample citizen: their benefits stay unused for the reader to try.
        travellers = [n for n in seeded[home.code].sharers if not sample or n != sample[0]][:3]
        for away in CITIES:
            if away is home:
                continue
            host = cluster.city(away.code)
            offered = [b["code"] for b in seeded[away.code].visitor_benefits]
            if not offered:
                continue
            desk = seeded[away.code].clients["venue"]
            token = httpx.post(
                host.url + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(desk["client_id"], desk["client_secret"]),
                timeout=10,
            ).json()["access_token"]
            for index, number in enumerate(travellers):
                with issuing.session() as session:
                    citizen = _find(session, issuing.settings, number)
                    code = issue_credit_code(
                        session, issuing.settings, citizen, now=utcnow(), actor="demo"
                    ).token
                answer = httpx.post(
                    host.url + "/api/v1/redemptions",
                    json={"token": code, "scenario": offered[index % len(offered)]},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=20,
                )
                made += answer.status_code == 201
    return made


def _find(session: Session, settings: Settings, number: str) -> Citizen:
    citizen = session.scalar(
        select(Citizen).where(Citizen.id_hash == id_hash(settings.id_hash_key, number))
    )
    assert citizen is not None
    return citizen


# --- the base directory, ports and the state file ------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_base(base: Path) -> None:
    """Start afresh: remove an earlier run of this command under ``base``, never anything else."""
    state = base / STATE_FILE
    if state.exists():
        pid = json.loads(state.read_text()).get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            raise click.ClickException(
                f"a federation demo is already running in {base} (pid {pid}); stop it first "
                f"(Ctrl-C in its terminal) or choose another --base"
            )
        shutil.rmtree(base)
    elif base.exists() and any(base.iterdir()):
        raise click.ClickException(
            f"{base} is not empty and was not made by `citycredit federation demo`; "
            "choose another --base"
        )
    base.mkdir(parents=True, exist_ok=True)


def check_ports(first: int, count: int) -> None:
    for port in range(first, first + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise click.ClickException(
                    f"port {port} is in use (is `make demo` or another federation demo running?); "
                    f"choose other ports with --ports (it needs {count} in a row)"
                ) from None


def write_state(base: Path, cluster: Cluster) -> None:
    """What ``demo-env`` reads: each deployment's address and environment (secrets: mode 0600)."""
    state = {
        "pid": os.getpid(),
        "anchor": cluster.anchor,
        "deployments": {
            code: {
                "name_zh": d.spec.name_zh,
                "name_en": d.spec.name_en,
                "url": d.url,
                "env": {k: v for k, v in d.env.items() if k.startswith("CITYCREDIT_")},
            }
            for code, d in cluster.deployments.items()
        },
    }
    path = base / STATE_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps(state, ensure_ascii=False, indent=2))


# --- the printout --------------------------------------------------------------------------------


def _shown(path: Path) -> str:
    """A path as the user would type it here: relative under the current directory."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _bin() -> str:
    """Where this interpreter's commands are (``.venv/bin`` after ``make``)."""
    return _shown(Path(sys.executable).parent.absolute())


def tour(
    cluster: Cluster,
    seeded: dict[str, Seeded],
    coordinator_logins: tuple[Path, dict[str, str]],
    base: Path,
) -> str:
    """Everything to open and try, in Chinese and English."""
    bin_ = _bin()
    env_flag = "" if base == DEFAULT_BASE.absolute() else f" --base {shlex.quote(_shown(base))}"
    lines = [
        "",
        "合作城市联盟（十城互认）演示已在本机启动：三个城市和一个协调方，各自独立进程与数据库。",
        "A federation of partner cities is running on loopback: three cities and a coordinator,",
        "each its own gunicorn process and database.",
        f"  信任锚点指纹 / trust anchor fingerprint: {cluster.anchor}",
        "",
    ]
    for city in CITIES:
        d, s = cluster.city(city.code), seeded[city.code]
        table = " ".join(f"{code}→{level}" for code, level in s.tiers)
        lines += [
            f"{city.name_zh} {city.name_en} ({city.code})  {d.url}",
            f"  等级表 / tier table: {s.model_label}: {table}  (本地等级→通用等级 / local→common)",
            f"  市民 / citizens: {s.citizens}, {s.scored} 已评分 / scored, "
            f"{len(s.sharers)} 同意跨城互认 / share with partner cities; "
            f"{len(s.visitor_benefits)} 项权益向来访者开放 / benefits open to visitors",
            f"  城市概览 / overview:        {d.url}/?lang=en",
            f"  管理后台 / admin:           {d.url}/admin   admin / {s.accounts.get('admin', '?')}"
            f"   (其他账号 / other accounts: {_shown(s.accounts_file)})",
            f"  合作城市 / federation:      {d.url}/admin/federation",
            f"  市民手机页 / phone page:    {d.url}/me"
            + (f"   (e.g. {s.sharer[0]})" if s.sharer else ""),
            "",
        ]
    coord = cluster.coordinator
    accounts_file, accounts = coordinator_logins
    lines += [
        f"协调方 Coordinator  {coord.url}",
        f"  成员与信任列表 / members and the trust list: {coord.url}/admin/federation/members",
        "  admin / "
        + accounts.get("admin", "?")
        + ",  reviewer2 / "
        + accounts.get("reviewer2", "?")
        + "   (四眼原则：一人提议，另一人批准 / four eyes: one proposes, another approves;"
        + f" {_shown(accounts_file)})",
        "",
    ]
    huangshi, sanya = seeded[ISSUING.code], seeded[VISITED.code]
    sanya_url = cluster.city(VISITED.code).url
    desk = sanya.clients["venue"]
    if huangshi.sharer is None:
        lines += [
            "（黄石市没有已评分且同意互认的市民 / no Huangshi citizen shares: use more --citizens）"
        ]
        return "\n".join(lines)
    number, level = huangshi.sharer
    scenario = pick_scenario(sanya, level)
    verify = (
        f"{bin_}/citycredit-verify --base-url {sanya_url} "
        f"--client-id {desk['client_id']} --client-secret {desk['client_secret']}"
    )
    issue = f'eval "$({bin_}/citycredit federation demo-env {ISSUING.code}{env_flag})" && {bin_}/citycredit code issue'
    lines += [
        f"样例 / sample: 黄石市市民 {number}（同意跨城互认，通用等级 {level} / shares; common level {level}）",
        "试一试（另开一个终端，在本目录；信用码 120 秒有效）/ Try it (another terminal, this directory;",
        "a credit code lives 120 s):",
        "",
        "# 1. 黄石市签发信用码 / Huangshi issues the citizen's credit code",
        f"CODE=$({issue} {number})",
        "# 2. 三亚市服务台在线核验（三亚向黄石询问）/ A Sanya desk verifies it online (Sanya asks Huangshi)",
        f"{verify} --scenario {scenario} \"$CODE\"",
        "# 3. 离线核验：签名校验过的信任列表 / Offline, against the trust list pinned by the anchor",
        f"{bin_}/citycredit-verify --base-url {sanya_url} --offline --trust-anchor {cluster.anchor} \"$CODE\"",
    ]  # fmt: skip
    if huangshi.keeper is not None:
        lines += [
            "# 4. 未同意跨城互认的市民被拒绝 / A citizen who does not share is refused",
            f"CODE=$({issue} {huangshi.keeper[0]})",
            f"{verify} --scenario {scenario} \"$CODE\"",
        ]  # fmt: skip
    lines += [
        "",
        f"再看 / then: 黄石市手机页“谁查过我” / Huangshi's phone page, who checked me: "
        f"{cluster.city(ISSUING.code).url}/me ({number});",
        f"  三亚市来访者统计 / Sanya's visitors: {sanya_url}/admin/federation/visitors;",
        f"  在协调方暂停一个成员（两位管理员），{int(KEEP_CURRENT_EVERY)} 秒内各城同步 / suspend a member at the"
        f" coordinator (two admins): the cities follow within {int(KEEP_CURRENT_EVERY)} s.",
        f"  以某城身份运行命令 / run commands as a city: eval \"$({bin_}/citycredit federation demo-env 460200{env_flag})\"",
    ]  # fmt: skip
    return "\n".join(lines)


def pick_scenario(host: Seeded, level: int) -> str:
    """A benefit the visiting citizen's level opens at the host city: the library's if it can."""
    usable = [b["code"] for b in host.visitor_benefits if b["min_level"] <= level]
    if PREFERRED_SCENARIO in usable or not usable:
        return PREFERRED_SCENARIO
    return str(usable[0])


# --- running -------------------------------------------------------------------------------------


class DemoCluster(Cluster):
    """The servers never see the terminal's Ctrl-C: it goes to the whole foreground process group,
    and a gunicorn worker interrupted that way while its master also stops it can hang, orphaned.
    They start with SIGINT blocked (the mask survives fork and exec), and the demo stops them itself,
    with SIGTERM, so each shuts down once and gracefully."""

    def serve(self, deployment: Deployment) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().serve(deployment)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a Ctrl-C meanwhile lands here


def _stop(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def keep_current(cluster: Cluster) -> None:
    """What each city's scheduler does every 15 minutes, every half minute for the demo: the
    coordinator re-reads the entries and re-signs the list when something changed (or it ages), the
    cities fetch it, and bulletins are published and exchanged (the day turns while it runs)."""
    cluster.publish()
    cluster.sync_all()
    cluster.exchange_bulletins()


@click.command("demo")
@click.option(
    "--base",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_BASE,
    show_default=True,
    help="Where the deployments keep their databases and files (removed and made afresh).",
)
@click.option("--citizens", default=300, show_default=True, help="Synthetic citizens per city.")
@click.option(
    "--ports",
    type=click.IntRange(1024, 65531),
    default=None,
    help="The coordinator's port; the cities take the next three. Default: any free ports.",
)
@click.option(
    "--exit-after-setup", is_flag=True, help="Stop everything once it is set up and printed."
)
def federation_demo(base: Path, citizens: int, ports: int | None, exit_after_setup: bool) -> None:
    """Three partner cities and a coordinator on loopback, seeded, joined and synced; Ctrl-C stops."""
    base = base.absolute()
    prepare_base(base)
    if ports:
        check_ports(ports, 1 + len(CITIES))
    specs = [CitySpec(c.code, c.name_zh, c.name_en, seed=seed_city(c, citizens)) for c in CITIES]
    cluster = DemoCluster(
        base,
        specs,
        coordinator_code=COORDINATOR,
        extra_env={"CITYCREDIT_DEMO_MODE": "1"},
        base_port=ports or 0,
    )
    # Explicitly: a shell may start a background job with SIGINT ignored.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    try:
        click.echo(f"starting a coordinator and {len(CITIES)} cities under {_shown(base)} …")
        try:
            cluster.start()
        except RuntimeError as exc:  # a server that did not start: its log's tail says why
            raise click.ClickException(str(exc)) from exc
        write_state(base, cluster)
        seeded: dict[str, Seeded] = {c.code: cluster.city(c.code).seeded for c in CITIES}
        coordinator_logins = coordinator_accounts(cluster.coordinator)
        visited = visit(cluster, seeded)
        cluster.exchange_bulletins()
        click.echo(
            f"ready in {time.monotonic() - started:.0f} s "
            f"({visited} visitor redemptions across cities)"
        )
        click.echo(tour(cluster, seeded, coordinator_logins, base))
        click.echo("")
        if exit_after_setup:
            click.echo("已完成设置，正在停止 / set up; stopping (--exit-after-setup)")
            return
        click.echo("按 Ctrl-C 停止全部进程 / Press Ctrl-C to stop every process")
        last = time.monotonic()
        while True:
            time.sleep(1)
            for deployment in cluster.deployments.values():
                if deployment.process is not None and deployment.process.poll() is not None:
                    raise click.ClickException(
                        f"{deployment.code} stopped unexpectedly; see {deployment.directory}/server.log"
                    )
            if time.monotonic() - last >= KEEP_CURRENT_EVERY:
                last = time.monotonic()
                try:
                    keep_current(cluster)
                except Exception as exc:  # a city busy or down: the next round tries again
                    click.echo(f"keeping the federation current failed ({exc}); retrying", err=True)
    except KeyboardInterrupt:
        click.echo("\n正在停止 / stopping …")
    finally:
        # A second Ctrl-C must not leave servers behind: stopping is not interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for deployment in cluster.deployments.values():  # all at once, then wait for each
            if deployment.process is not None and deployment.process.poll() is None:
                deployment.process.terminate()
        cluster.stop()
        state = base / STATE_FILE
        if state.exists():
            data = json.loads(state.read_text())
            data["pid"] = None
            state.write_text(json.dumps(data, ensure_ascii=False, indent=2))
        click.echo("已停止 / stopped")


@click.command("demo-env")
@click.argument("city")
@click.option(
    "--base",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_BASE,
    show_default=True,
)
def federation_demo_env(city: str, base: Path) -> None:
    """Print `export` lines that make the citycredit commands act as CITY of the federation demo
    (its code, English or Chinese name, or "coord"): eval "$(citycredit federation demo-env 420200)"."""
    path = base / STATE_FILE
    if not path.exists():
        raise click.ClickException(
            f"no federation demo in {base}: start one with `citycredit federation demo`"
        )
    deployments: dict[str, dict[str, Any]] = json.loads(path.read_text())["deployments"]
    wanted = city.strip().casefold()
    for code, d in deployments.items():
        if wanted in {code.casefold(), d["name_en"].casefold(), d["name_zh"].casefold()}:
            for key, value in sorted(d["env"].items()):
                click.echo(f"export {key}={shlex.quote(value)}")
            return
    choices = ", ".join(f"{code} ({d['name_en']})" for code, d in deployments.items())
    raise click.ClickException(f"no city {city!r} in the demo; one of: {choices}")
