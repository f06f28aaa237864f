"""``citycredit``: the operator's command line. Every command is one unit of work (or one per chunk)."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.cli import admin as admin_commands
from citycredit.audit import audit
from citycredit.clibase import ACTOR, EXIT_ROWS_REJECTED, Context, pass_ctx
from citycredit.idnumber import CitizenId, InvalidIdNumber, parse_id_number
from points_engine import ingest as ingestion
from points_engine import operations, queries
from points_engine.models import DataSource, ScoringModelVersion
from points_engine.scoring_model import ModelFileError


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


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply every pending migration."""
    from citycredit.migrate import current_revision, upgrade

    upgrade(ctx.platform.engine)
    click.echo(f"database at revision {current_revision(ctx.platform.engine)}")


# --- sources --------------------------------------------------------------------------------------


@main.group()
def sources() -> None:
    """Data sources (departments that report records)."""


@sources.command("add")
@click.argument("code")
@click.argument("name_zh")
@click.argument("name_en")
@click.option(
    "--item", "items", multiple=True, help="A scoring item it may report; repeat. Default: any."
)
@pass_ctx
def sources_add(
    ctx: Context, code: str, name_zh: str, name_en: str, items: tuple[str, ...]
) -> None:
    """Register a data source, and the scoring items it may report."""
    with ctx.session() as session:
        operations.add_source(session, code, name_zh, name_en, items=list(items) or None)
    click.echo(f"added source {code}")


@sources.command("list")
@pass_ctx
def sources_list(ctx: Context) -> None:
    with ctx.session() as session:
        for source in session.scalars(select(DataSource).order_by(DataSource.code)):
            click.echo(f"{source.code:16} {source.name_zh}  ({source.name_en})")


# --- scoring models -------------------------------------------------------------------------------


@main.group()
def model() -> None:
    """Scoring-model versions: load, list, what-if, publish."""


@model.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def model_load(ctx: Context, file: Path) -> None:
    """Validate a model file and store it as a new draft version."""
    with ctx.session() as session:
        version = operations.load_model_version(session, file.read_text("utf-8"), str(file))
        label = version.label
    click.echo(f"loaded {label} (draft); compare it with `citycredit model whatif {label}`")


@model.command("list")
@pass_ctx
def model_list(ctx: Context) -> None:
    with ctx.session() as session:
        for v in session.scalars(
            select(ScoringModelVersion).order_by(
                ScoringModelVersion.name, ScoringModelVersion.version
            )
        ):
            click.echo(f"{v.label:32} {v.kind:9} {v.status:10} loaded {v.loaded_at:%Y-%m-%d %H:%M}")


def _table(headings: tuple[str, str], counts: dict[Any, int]) -> None:
    click.echo(f"\n{headings[0]:>12} {headings[1]:>12} {'citizens':>10}")
    for (old, new), count in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        click.echo(f"{old or '(unscored)'!s:>12} {new!s:>12} {count:>10}")


@model.command("whatif")
@click.argument("label")
@click.option("--movers", default=20, show_default=True, help="How many biggest movers to list.")
@pass_ctx
def model_whatif(ctx: Context, label: str, movers: int) -> None:
    """Score everyone with a draft version, without publishing it, and show who would move."""
    with ctx.session() as session:
        draft = operations.find_version(session, label)
        report = queries.what_if(
            session, draft, as_of=ctx.platform.today(), actor=ACTOR, movers=movers
        )
    basis = "tier" if report.basis == "tier" else "common-scale level (the tier tables differ)"
    click.echo(
        f"{report.draft_label} against {report.published_label}: {report.citizens} citizens, "
        f"{report.moved} would change {basis}"
    )
    _table(("now", "draft"), report.transitions)
    if report.basis != "tier":
        _table(("now level", "draft level"), report.common_transitions)
    click.echo("\nbiggest movers (citizen #, score now -> draft):")
    for m in report.biggest_movers:
        click.echo(
            f"  #{m.citizen_id:<8} {m.old_score!s:>5} {m.old_tier or '-':>4} -> {m.new_score:>5} {m.new_tier}"
        )


@model.command("publish")
@click.argument("label")
@click.option("--chunk-size", default=50_000, show_default=True)
@pass_ctx
def model_publish(ctx: Context, label: str, chunk_size: int) -> None:
    """Publish a version and recompute every score with it."""
    with ctx.session() as session:
        version = operations.find_version(session, label)
        operations.publish_model_version(session, version, actor=ACTOR, today=ctx.platform.today())
    click.echo(f"published {label}; recomputing scores")
    _recompute(ctx, chunk_size)


# --- ingestion and scoring ------------------------------------------------------------------------


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the per-row error report [default: FILE.report.csv].",
)
@click.option("--chunk-size", default=5000, show_default=True)
@pass_ctx
def ingest(ctx: Context, file: Path, report: Path | None, chunk_size: int) -> None:
    """Ingest records from a CSV or JSON Lines file; bad rows are reported, good rows land.

    Exit status: 0 when every row landed, 3 when some rows were rejected (see the report), 1 on failure.
    """
    try:
        fmt = ingestion.detect_format(file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    report_path = report or file.with_name(file.name + ".report.csv")
    summary = _ingest_file(ctx, file, fmt, report_path, chunk_size)
    click.echo(
        f"{summary.rows} rows: {summary.inserted} new, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {summary.rejected} rejected"
    )
    for error in summary.errors[:20]:
        click.echo(f"  row {error.row}: {error.field}: {error.reason}", err=True)
    if len(summary.errors) > 20:
        click.echo(f"  … {len(summary.errors) - 20} more", err=True)
    if summary.errors:
        click.echo(f"error report: {report_path}", err=True)
        # Distinct from a failure (1): the good rows landed, but someone must look at the bad ones.
        sys.exit(EXIT_ROWS_REJECTED)


def _ingest_file(
    ctx: Context, file: Path, fmt: str, report_path: Path, chunk_size: int
) -> ingestion.IngestReport:
    platform = ctx.platform
    total = max(_count_lines(file) - (1 if fmt == "csv" else 0), 0)
    session = platform.sessions()
    batch = None
    try:
        batch = ingestion.start_batch(session, str(file), fmt)
        session.commit()
        with (
            file.open(encoding="utf-8-sig", newline="") as stream,
            click.progressbar(length=total, label="ingesting", file=sys.stderr) as bar,
        ):
            done = 0
            summary = None
            for summary in ingestion.ingest_rows(
                session,
                ingestion.read_rows(stream, fmt),
                key=platform.settings.id_hash_key,
                batch=batch,
                today=platform.today(),
                chunk_size=chunk_size,
            ):
                session.commit()  # one chunk, one transaction: a crash keeps whole chunks only
                bar.update(summary.rows - done)
                done = summary.rows
        assert summary is not None
        ingestion.write_report_file(report_path, summary.errors)
        ingestion.finish_batch(batch, summary, str(report_path) if summary.errors else None)
        operations.drain_dirty(session, as_of=platform.today())
        session.commit()
        return summary
    except (operations.EngineError, ModelFileError) as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        session.rollback()
        _mark_failed(session, batch)
        why = (
            "the file is not UTF-8 text (save it as UTF-8; GBK files are common from departments)"
            if isinstance(exc, UnicodeDecodeError)
            else f"the CSV cannot be read: {exc}"
        )
        raise click.ClickException(
            f"{file}: {why}. Whole chunks before the problem were kept; fix the file and rerun "
            "(rows already stored are recognised and change nothing)."
        ) from None
    except BaseException:
        session.rollback()
        _mark_failed(session, batch)
        raise
    finally:
        session.close()


def _mark_failed(session: Session, batch: Any) -> None:
    """Record that a run stopped, so the batch does not read as still running."""
    if batch is None:
        return
    from citycredit.db import utcnow

    batch.status = "failed"
    batch.finished_at = utcnow()
    session.commit()


def _recompute(ctx: Context, chunk_size: int) -> operations.RecomputeSummary:
    platform = ctx.platform
    session = platform.sessions()
    try:
        from points_engine.scoring import citizen_id_ranges

        span = sum(high - low + 1 for low, high in citizen_id_ranges(session, chunk_size))
        with click.progressbar(length=span, label="recomputing", file=sys.stderr) as bar:
            summary = operations.recompute_all(
                session,
                as_of=platform.today(),
                chunk_size=chunk_size,
                progress=bar.update,
                commit=session.commit,
            )
        session.commit()
    except operations.EngineError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from exc
    finally:
        session.close()
    click.echo(f"{summary.citizens} citizens scored, {summary.changed} scores changed")
    return summary


@main.command()
@click.option("--chunk-size", default=50_000, show_default=True, help="Citizens per transaction.")
@pass_ctx
def recompute(ctx: Context, chunk_size: int) -> None:
    """Recompute every consenting citizen's score with the published model (set-based)."""
    _recompute(ctx, chunk_size)


@main.command()
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), help="Pretend today is this date.")
@pass_ctx
def expire(ctx: Context, today: dt.datetime | None) -> None:
    """Run the daily expiry job now."""
    day = today.date() if today else ctx.platform.today()
    with ctx.session() as session:
        expired, result = operations.expire_records(session, today=day)
    click.echo(f"{expired} record(s) expired; {result.changed if result else 0} score(s) changed")


# --- one citizen ----------------------------------------------------------------------------------


def _read_id(raw: str) -> CitizenId:
    """An ID given as ``-`` is read without echo, keeping it out of shell history and process lists."""
    if raw == "-":
        raw = getpass.getpass("ID number: ") if sys.stdin.isatty() else sys.stdin.readline()
    try:
        return parse_id_number(raw)
    except InvalidIdNumber as exc:
        raise click.ClickException(f"invalid ID number: {exc}") from exc


def _citizen(ctx: Context, session: Session, raw: str) -> Any:
    citizen = queries.find_citizen(session, ctx.platform.settings.id_hash_key, _read_id(raw))
    if citizen is None:
        raise click.ClickException("no citizen with this ID number has any record here")
    return citizen


@main.command()
@click.argument("id_number")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@pass_ctx
def explain(ctx: Context, id_number: str, lang: str) -> None:
    """Explain a citizen's score: every record, the points it gave, and why. ID_NUMBER may be '-'."""
    from citycredit.explain_text import render_explanation

    with ctx.session() as session:
        citizen = _citizen(ctx, session, id_number)
        explanation = queries.explain(
            session, citizen, as_of=ctx.platform.today(), actor=ACTOR, purpose="operator query"
        )
    click.echo(render_explanation(explanation, lang))


@main.group()
def consent() -> None:
    """A citizen's consent to be scored (given at a counter, on paper, or withdrawn)."""


@consent.command("give")
@click.argument("id_number")
@click.option("--channel", default="counter", show_default=True)
@pass_ctx
def consent_give(ctx: Context, id_number: str, channel: str) -> None:
    with ctx.session() as session:
        citizen = _citizen(ctx, session, id_number)
        result = operations.give_consent(
            session, citizen, channel=channel, as_of=ctx.platform.today()
        )
    click.echo("consent recorded; score computed" if result else "consent was already given")


@consent.command("withdraw")
@click.argument("id_number")
@click.option("--channel", default="counter", show_default=True)
@pass_ctx
def consent_withdraw(ctx: Context, id_number: str, channel: str) -> None:
    with ctx.session() as session:
        citizen = _citizen(ctx, session, id_number)
        operations.withdraw_consent(session, citizen, channel=channel)
    click.echo("consent withdrawn; the citizen's scores are erased and no longer computed")


# --- processes ------------------------------------------------------------------------------------


@main.command()
@pass_ctx
def scheduler(ctx: Context) -> None:
    """Run the job scheduler (daily expiry and the rest) in this process, until stopped."""
    from citycredit.jobs import run_scheduler

    logging.getLogger().setLevel(logging.INFO)
    click.echo("scheduler running; Ctrl-C to stop")
    run_scheduler(ctx.platform.settings, ctx.platform.sessions)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=2, show_default=True)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app with gunicorn."""
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "-",
            "citycredit.wsgi:app",
        ],
    )


@main.group()
def keys() -> None:
    """The city's signing keys (credit codes, access tokens)."""


@keys.command("rotate")
@pass_ctx
def keys_rotate(ctx: Context) -> None:
    """Add a new signing key; the old one stops signing but stays published until its tokens expire."""
    from citycredit import keys as signing

    with ctx.session() as session:
        key = signing.create_signing_key(session, ctx.platform.settings.key_secret)
        kid = key.kid
    click.echo(
        f"new signing key {kid}; the previous key stays in the JWKS for {signing.MAX_TOKEN_LIFETIME}"
    )


@keys.command("list")
@pass_ctx
def keys_list(ctx: Context) -> None:
    from citycredit.keys import SigningKey

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
    from citycredit.clients import register_client
    from scenarios.models import Operator, Venue

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
    from citycredit.clients import ApiClient

    with ctx.session() as session:
        for c in session.scalars(select(ApiClient).order_by(ApiClient.id)):
            click.echo(f"{c.client_id}  {c.kind:6} {c.status:8} {c.scopes:32} {c.name}")


def _client(session: Session, client_id: str) -> Any:
    from citycredit.clients import find_client

    client = find_client(session, client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id!r}")
    return client


@clients.command("rotate")
@click.argument("client_id")
@pass_ctx
def clients_rotate(ctx: Context, client_id: str) -> None:
    """Give a client a new secret; the old one and every token issued with it stop working at once."""
    from citycredit.clients import rotate_secret

    with ctx.session() as session:
        secret = rotate_secret(session, _client(session, client_id))
        audit(session, actor=ACTOR, action="client.rotate", client=client_id)
    click.echo(f"client_secret: {secret}\n(the secret is shown once; store it now)")


@clients.command("revoke")
@click.argument("client_id")
@pass_ctx
def clients_revoke(ctx: Context, client_id: str) -> None:
    """Revoke a client; its tokens stop working at once."""
    from citycredit.clients import revoke_client

    with ctx.session() as session:
        revoke_client(session, _client(session, client_id))
        audit(session, actor=ACTOR, action="client.revoke", client=client_id)
    click.echo(f"revoked {client_id}")


@main.group()
def code() -> None:
    """Citizens' QR credit codes."""


@code.command("issue")
@click.argument("id_number")
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code as PNG."
)
@click.option(
    "--svg", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code as SVG."
)
@pass_ctx
def code_issue(ctx: Context, id_number: str, png: Path | None, svg: Path | None) -> None:
    """Issue a credit code (valid 120 s) for a consenting citizen, e.g. to try a venue example."""
    from citycredit.db import utcnow
    from credit_codes import operations as codes
    from credit_codes import qr

    with ctx.session() as session:
        citizen = _citizen(ctx, session, id_number)
        try:
            issued = codes.issue_credit_code(
                session, ctx.platform.settings, citizen, now=utcnow(), actor=ACTOR
            )
        except codes.NotScored as exc:
            raise click.ClickException(str(exc)) from exc
    if png:
        png.write_bytes(qr.render_png(issued.token))
    if svg:
        svg.write_text(qr.render_svg(issued.token), encoding="utf-8")
    click.echo(issued.token)
    click.echo(f"expires {issued.expires_at:%H:%M:%S} UTC", err=True)


@main.group()
def demo() -> None:
    """The demo city."""


@demo.command("seed")
@click.option("--citizens", default=3000, show_default=True)
@click.option("--seed", default=20261123, show_default=True)
@pass_ctx
def demo_seed(ctx: Context, citizens: int, seed: int) -> None:
    """Create sources and models, generate a synthetic city, ingest it, gather consent, score it."""
    from citycredit import demo as demo_city

    with ctx.session() as session:
        demo_city.ensure_sources(session)
        demo_city.ensure_reference_models(session, actor=ACTOR)
    plan = demo_city.default_plan(citizens, seed, ctx.platform.today())
    files = demo_city.write_demo_records(ctx.platform.settings.instance_dir / "demo", plan)
    click.echo(f"generated {files.rows} record rows in {files.records_csv}")
    ctx_report = files.records_csv.with_name(files.records_csv.name + ".report.csv")
    summary = _ingest_file(ctx, files.records_csv, "csv", ctx_report, 5000)
    click.echo(
        f"ingested: {summary.inserted} new, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.rejected} rejected (see {ctx_report})"
    )
    with ctx.session() as session:
        consented = demo_city.consent_most(session)
    click.echo(f"{consented} citizens consented to scoring")
    _recompute(ctx, 50_000)
    with ctx.session() as session:
        credentials = demo_city.ensure_demo_partners(session, ctx.platform.settings)
    click.echo(f"demo venue and app credentials: {credentials}")
    with ctx.session() as session:
        from sqlalchemy import func

        from credit_codes.models import Redemption

        if not session.scalar(select(func.count()).select_from(Redemption)):
            made = demo_city.simulate_use(session, ctx.platform.settings)
            click.echo(f"simulated a month of venue scans: {made} benefits redeemed")
    with ctx.session() as session:
        accounts_file, accounts = demo_city.ensure_demo_accounts(session, ctx.platform.settings)
    click.echo(f"admin accounts (passwords also in {accounts_file}):")
    for username, password in accounts.items():
        click.echo(f"  {username:10} {password}")
    with ctx.session() as session:
        samples = demo_city.sample_citizens(session, ctx.platform.settings.id_hash_key, plan)
    click.echo("try:")
    for label, number in samples:
        click.echo(f"  .venv/bin/citycredit explain {number}    # {label}")


def _register_domain_commands() -> None:
    from scenarios.cli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_domain_commands()


main.add_command(admin_commands)

if __name__ == "__main__":
    main()
