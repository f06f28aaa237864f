"""``citycredit``: the operator's command line. Every command is one unit of work (or one per chunk)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citycredit.cli import demo as demo_city
from citycredit.cli.base import ACTOR, Context, creates_city, pass_ctx
from citycredit.cli.engine import _ingest_file, _recompute
from citycredit.cli.serving import address_problem, served_url
from citycredit.core import keys as signing
from citycredit.core.audit import audit
from citycredit.core.clients import (
    ApiClient,
    find_client,
    register_client,
    revoke_client,
    rotate_secret,
)
from citycredit.core.config import (
    DEFAULT_INSTANCE_DIR,
    ConfigError,
    secrets_as_environment,
    write_new_secrets,
)
from citycredit.core.jobs import CityTimeFormatter, run_scheduler
from citycredit.core.keys import SigningKey
from citycredit.core.registry import installed_domains, resolve_all
from citycredit.migrate import current_revision, upgrade
from credit_codes.models import Redemption
from points_engine.models import Citizen, DataSource
from scenarios.models import Operator, Venue


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the jobs and commands do.")
def main(verbose: bool) -> None:
    """City personal credit points (信用积分): operator commands."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --- database -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@creates_city
@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply every pending migration."""

    upgrade(ctx.platform.engine)
    click.echo(f"database at revision {current_revision(ctx.platform.engine)}")


# --- sources --------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--debug", is_flag=True, help="Also log every routine run (by default only what a job did)."
)
@pass_ctx
def scheduler(ctx: Context, debug: bool) -> None:
    """Run the job scheduler (daily expiry and the rest) in this process, until Ctrl-C or SIGTERM.

    Logs what the jobs did, timed in the city's timezone; exit status 0 when stopped.
    """
    settings = ctx.platform.settings
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(CityTimeFormatter(settings.tz))
    click.echo(f"scheduler running in {settings.timezone} time; Ctrl-C to stop")
    try:
        run_scheduler(settings, ctx.platform.sessions)
    except KeyboardInterrupt:
        # A second Ctrl-C while a job was finishing: that job's unit of work is rolled back.
        click.echo("scheduler stopped before a running job finished; its work was rolled back")
        sys.exit(130)
    click.echo("scheduler stopped")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True)
@click.option(
    "--check", is_flag=True, help="Only check that the port is free (exit 1, saying so, if not)."
)
def serve(host: str, port: int, workers: int, check: bool) -> None:
    """Serve the web app with gunicorn (the city's address is http://HOST:PORT unless
    CITYCREDIT_PUBLIC_URL says otherwise)."""
    problem = address_problem(host, port)
    if problem:
        raise click.ClickException(problem)
    if check:
        return
    # The discovery document and token audience name the address actually served, not 5000.
    os.environ.setdefault("CITYCREDIT_PUBLIC_URL", served_url(host, port))
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:citycredit.web.gunicorn_config",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "-",
            "citycredit.web.wsgi:app",
        ],
    )


@main.group()
def keys() -> None:
    """The city's signing keys (credit codes, access tokens)."""


@keys.command("rotate")
@pass_ctx
def keys_rotate(ctx: Context) -> None:
    """Add a new signing key; the old one stops signing but stays published until its tokens expire."""

    with ctx.session() as session:
        key = signing.create_signing_key(session, ctx.platform.settings.key_secret)
        kid = key.kid
    click.echo(
        f"new signing key {kid}; the previous key stays in the JWKS for {signing.MAX_TOKEN_LIFETIME}"
    )


@keys.command("list")
@pass_ctx
def keys_list(ctx: Context) -> None:

    with ctx.session() as session:
        for key in session.scalars(select(SigningKey).order_by(SigningKey.id)):
            state = (
                "signing" if key.retired_at is None else f"retired {key.retired_at:%Y-%m-%d %H:%M}"
            )
            click.echo(
                f"{key.kid}  {key.algorithm}  created {key.created_at:%Y-%m-%d %H:%M}  {state}"
            )


@main.group()
def clients() -> None:
    """API clients: partner venues, data sources, the city's app."""


@clients.command("add")
@click.argument("name")
@click.option(
    "--kind", type=click.Choice(["venue", "source", "city", "app", "operator"]), required=True
)
@click.option("--scope", "scopes", multiple=True, required=True, help="Repeat for several scopes.")
@click.option("--source", "source_code", help="For a data source: the only source it may write.")
@click.option(
    "--venue", "venue_code", help="For a venue desk: its venue (verifies only its scenarios)."
)
@click.option("--operator", "operator_code", help="For an operator's system: its operator.")
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key: the client authenticates with signed assertions instead of a secret.",
)
@pass_ctx
def clients_add(
    ctx: Context,
    name: str,
    kind: str,
    scopes: tuple[str, ...],
    source_code: str | None,
    venue_code: str | None,
    operator_code: str | None,
    public_key: Path | None,
) -> None:
    """Register a client; its secret is shown once and never again."""

    with ctx.session() as session:
        source_id = None
        if source_code:
            source = session.scalar(select(DataSource).where(DataSource.code == source_code))
            if source is None:
                raise click.ClickException(f"no data source {source_code!r}")
            source_id = source.id
        venue = operator = None
        if venue_code:
            venue = session.scalar(select(Venue).where(Venue.code == venue_code))
            if venue is None:
                raise click.ClickException(f"no venue {venue_code!r}")
        if operator_code:
            operator = session.scalar(select(Operator).where(Operator.code == operator_code))
            if operator is None:
                raise click.ClickException(f"no operator {operator_code!r}")
        try:
            issued = register_client(
                session,
                name=name,
                kind=kind,
                scopes=list(scopes),
                source_id=source_id,
                venue_id=venue.id if venue else None,
                operator_id=operator.id if operator else (venue.operator_id if venue else None),
                public_key_pem=public_key.read_text() if public_key else None,
                key_secret=ctx.platform.settings.key_secret,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        client_id = issued.client.client_id
    click.echo(f"client_id:     {client_id}")
    if issued.secret:
        click.echo(f"client_secret: {issued.secret}")
        click.echo("(the secret is shown once; store it now)")


@clients.command("list")
@pass_ctx
def clients_list(ctx: Context) -> None:

    with ctx.session() as session:
        for c in session.scalars(select(ApiClient).order_by(ApiClient.id)):
            click.echo(f"{c.client_id}  {c.kind:6} {c.status:8} {c.scopes:32} {c.name}")


def _client(session: Session, client_id: str) -> Any:

    client = find_client(session, client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id!r}")
    return client


@clients.command("rotate")
@click.argument("client_id")
@pass_ctx
def clients_rotate(ctx: Context, client_id: str) -> None:
    """Give a client a new secret; the old one and every token issued with it stop working at once."""

    with ctx.session() as session:
        secret = rotate_secret(
            session, _client(session, client_id), key_secret=ctx.platform.settings.key_secret
        )
        audit(session, actor=ACTOR, action="client.rotate", client=client_id)
    click.echo(f"client_secret: {secret}\n(the secret is shown once; store it now)")


@clients.command("revoke")
@click.argument("client_id")
@pass_ctx
def clients_revoke(ctx: Context, client_id: str) -> None:
    """Revoke a client; its tokens stop working at once."""

    with ctx.session() as session:
        revoke_client(session, _client(session, client_id))
        audit(session, actor=ACTOR, action="client.revoke", client=client_id)
    click.echo(f"revoked {client_id}")


@main.group()
def demo() -> None:
    """The demo city."""


@creates_city
@demo.command("seed")
@click.option("--citizens", default=3000, show_default=True)
@click.option("--seed", default=20261123, show_default=True)
@click.option(
    "--days-of-use",
    default=30,
    show_default=True,
    type=click.IntRange(0, 366),
    help="Days of simulated venue scans before today (the dashboard's and 'who checked me' history).",
)
@pass_ctx
def demo_seed(ctx: Context, citizens: int, seed: int, days_of_use: int) -> None:
    """Create sources and models, generate a synthetic city, ingest it, gather consent, score it."""

    with ctx.session() as session:
        demo_city.ensure_sources(session)
        demo_city.ensure_reference_models(session, actor=ACTOR)
    # The city's history was loaded (as a backfill: held to no reporting deadline) the day before
    # its month of daily collection began, so this month's data-quality figures are the
    # departments' daily reporting, not the backlog's.
    history_day = ctx.platform.today() - dt.timedelta(days=demo_city.COLLECTION_DAYS + 1)
    plan = demo_city.default_plan(citizens, seed, history_day)
    files = demo_city.write_demo_records(ctx.platform.settings.instance_dir / "demo", plan)
    click.echo(f"generated {files.rows} record rows in {files.records_csv}")
    ctx_report = files.records_csv.with_name(files.records_csv.name + ".report.csv")
    summary = _ingest_file(
        ctx, files.records_csv, "csv", ctx_report, 5000, today=history_day, backfill=True
    ).report
    see = f" (see {ctx_report})" if summary.rejected else ""  # a report only when rows are rejected
    click.echo(
        f"ingested: {summary.inserted} new, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.rejected} rejected{see}"
    )
    with ctx.session() as session:
        on_record = session.scalar(select(func.count()).select_from(Citizen)) or 0
        consented = demo_city.consent_most(session)
    # The platform knows a person only through a record: residents without one are not counted.
    click.echo(
        f"{on_record:,} of the city's {citizens:,} residents have a record: the citizens on record"
    )
    click.echo(f"{consented} citizens consented to scoring")
    with ctx.session() as session:
        collected = demo_city.simulate_collection(session, ctx.platform.settings)
    if collected.batches:
        click.echo(
            f"simulated {demo_city.COLLECTION_DAYS} days of the departments' daily reporting: "
            f"{collected.batches} batches, {collected.rows} rows, {collected.rejected} rejected, "
            f"{collected.resent} corrected and re-sent"
        )
    _recompute(ctx, 50_000)
    with ctx.session() as session:
        credentials = demo_city.ensure_demo_partners(session, ctx.platform.settings)
    click.echo(f"demo venue and app credentials: {credentials}")
    with ctx.session() as session:
        if not session.scalar(select(func.count()).select_from(Redemption)):
            made = demo_city.simulate_use(session, ctx.platform.settings, days=days_of_use)
            click.echo(f"simulated {days_of_use} days of venue scans: {made} benefits redeemed")
    with ctx.session() as session:
        made = demo_city.simulate_objections(session, ctx.platform.settings)
        if made:
            click.echo(f"simulated {made} objections at every stage of review")
        made = demo_city.simulate_repairs(session, ctx.platform.settings)
        if made:
            click.echo(f"simulated {made} credit-repair applications at every stage")
        made = demo_city.simulate_lists(session, ctx.platform.settings, plan)
        if made:
            click.echo(f"listed {made} citizens on red and black lists (one lifted)")
        made = demo_city.simulate_webhooks(session, ctx.platform.settings)
        if made:
            click.echo(f"simulated {made} webhook deliveries to the library's (disabled) endpoint")
    with ctx.session() as session:
        accounts_file, accounts = demo_city.ensure_demo_accounts(session, ctx.platform.settings)
    click.echo(f"admin accounts (passwords also in {accounts_file}):")
    for username, password in accounts.items():
        click.echo(f"  {username:14} {password}")
    with ctx.session() as session:
        samples = demo_city.sample_citizens(session, ctx.platform.settings.id_hash_key, plan)
        top = dict(samples).get("top tier")
        demo_city.ensure_demo_link(session, ctx.platform.settings, top)
    if top:
        click.echo("the top-tier citizen below linked the demo library's lending system (我的授权)")
    click.echo("try:")
    for label, number in samples:
        click.echo(f"  .venv/bin/citycredit explain {number}    # {label}")


instance_dir_option = click.option(
    "--instance-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("CITYCREDIT_INSTANCE_DIR", str(DEFAULT_INSTANCE_DIR)),
    show_default="$CITYCREDIT_INSTANCE_DIR or instance",
)


@main.group()
def secrets() -> None:
    """A deployment's secrets: pseudonym key, key encryption, code sealing, session signing."""


@secrets.command("init")
@instance_dir_option
def secrets_init(instance_dir: Path) -> None:
    """Write a new deployment's secrets once (files of mode 0600); refuses if any exists."""
    try:
        written = write_new_secrets(instance_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        "Every host of this city needs the same values: copy these files, or load the output of "
        "`citycredit secrets env` into each host's environment. Keep them out of version control."
    )


@secrets.command("env")
@instance_dir_option
def secrets_env(instance_dir: Path) -> None:
    """Print the secrets as VARIABLE=hex lines, for an EnvironmentFile or a vault (handle with care)."""
    try:
        click.echo(secrets_as_environment(instance_dir), nl=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _register_domain_commands() -> None:
    for domain in installed_domains():
        for command in resolve_all(domain.cli):
            main.add_command(command)


_register_domain_commands()

if __name__ == "__main__":
    main()
