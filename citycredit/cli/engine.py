"""The points engine's commands: sources, scoring models, ingest, recompute, expiry, explanations, consent."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.cli.base import ACTOR, EXIT_ROWS_REJECTED, Context, pass_ctx
from citycredit.core.idnumber import CitizenId, InvalidIdNumber, parse_id_number
from points_engine import batches, operations, queries, scoring
from points_engine import ingest as ingestion
from points_engine.explain_text import render_explanation
from points_engine.models import DataSource, ScoringModelVersion
from points_engine.scoring_model import ModelFileError


@click.group()
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


@click.group()
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
    unit = "tier" if report.basis == "tier" else "level"
    click.echo(
        f"\nbiggest movers: {unit}s moved first, then the move as a share of each model's scale"
        f"\n(`citycredit explain C…` explains one citizen's score now)"
    )
    click.echo(f"  {'citizen':<10} {'now':>10}    {'draft':>10} {unit + 's':>7} {'scale':>7}")
    for m in report.biggest_movers:
        now = f"{m.old_score} {m.old_tier}" if m.old_score is not None else "(unscored)"
        steps = "" if m.tier_steps is None else f"{m.tier_steps:+d}"
        share = "" if m.scale_change is None else f"{m.scale_change:+.1%}"
        click.echo(
            f"  {m.reference:<10} {now:>10} -> {f'{m.new_score} {m.new_tier}':>10} {steps:>7} {share:>7}"
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


def _why_no_rows(path: Path, fmt: str) -> str | None:
    """None when the file holds a row after its header, else what it holds; reads up to that row."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            lines = (line for line in stream if line.strip())
            if next(lines, None) is None:
                return "empty"
            if fmt == "csv" and next(lines, None) is None:
                return "a header only"
            return None
    except UnicodeDecodeError:
        return None  # the ingest says what is wrong with it


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the per-row error report [default: FILE.report.csv].",
)
@click.option("--chunk-size", default=5000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--backfill",
    is_flag=True,
    help="Historic records loaded in bulk (存量): held to no reporting deadline, so they count in "
    "no on-time rate.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Database connections that rescore a city-wide import's citizens at once (PostgreSQL).",
)
@pass_ctx
def ingest(
    ctx: Context, file: Path, report: Path | None, chunk_size: int, backfill: bool, workers: int
) -> None:
    """Ingest records from a CSV or JSON Lines file; bad rows are reported, good rows land.

    A rerun of a file whose earlier run was interrupted completes it (stored rows change nothing).
    The report is written only when a row is rejected. Exit status: 0 when every row landed (or the
    file has no rows: empty, or a header only), 3 when some rows were rejected (see the report),
    1 on failure.
    """
    try:
        fmt = ingestion.detect_format(file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    holds = _why_no_rows(file, fmt)
    if holds is not None:
        click.echo(f"{file}: no rows to ingest (the file is {holds}); nothing recorded")
        return
    report_path = report or file.with_name(file.name + ".report.csv")
    result = _ingest_file(
        ctx, file, fmt, report_path, chunk_size, backfill=backfill, workers=workers
    )
    summary = result.report
    if result.completes is not None:
        click.echo(f"batch #{summary.batch_id} {result.completes}")
    click.echo(
        f"{summary.rows} row{'' if summary.rows == 1 else 's'}: {summary.inserted} new, {summary.updated} updated, "
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
    ctx: Context,
    file: Path,
    fmt: str,
    report_path: Path,
    chunk_size: int,
    *,
    today: dt.date | None = None,
    backfill: bool = False,
    workers: int = 1,
) -> batches.IngestResult:
    """The ingest use case with a progress bar, its failures told as the operator can act on them
    (``today``: the city day the batch is received; the demo backdates its history)."""
    platform = ctx.platform
    total = max(_count_lines(file) - (1 if fmt == "csv" else 0), 0)
    session = platform.sessions()
    try:
        with click.progressbar(length=total, label="ingesting", file=sys.stderr) as bar:
            done = 0

            def advance(report: ingestion.IngestReport) -> None:
                nonlocal done
                bar.update(report.rows - done)
                done = report.rows

            return batches.ingest_file(
                session,
                file,
                fmt=fmt,
                key=platform.settings.id_hash_key,
                today=today or platform.today(),
                chunk_size=chunk_size,
                commit_chunks=True,
                backfill=backfill,
                progress=advance,
                report_path=report_path,
                workers=workers,
            )
    except (operations.EngineError, ModelFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        why = (
            "the file is not UTF-8 text (save it as UTF-8; GBK files are common from departments)"
            if isinstance(exc, UnicodeDecodeError)
            else f"the CSV cannot be read: {exc}"
        )
        raise click.ClickException(
            f"{file}: {why}. Whole chunks before the problem were kept; fix the file and rerun "
            "(rows already stored are recognised and change nothing)."
        ) from None
    finally:
        session.close()


def _recompute(ctx: Context, chunk_size: int, workers: int = 2) -> operations.RecomputeSummary:
    platform = ctx.platform
    session = platform.sessions()
    try:
        span = sum(high - low + 1 for low, high in scoring.citizen_id_ranges(session, chunk_size))
        with click.progressbar(length=span, label="recomputing", file=sys.stderr) as bar:
            summary = operations.recompute_all(
                session,
                as_of=platform.today(),
                chunk_size=chunk_size,
                progress=bar.update,
                commit=session.commit,
                workers=workers,
            )
        session.commit()
    except operations.EngineError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from exc
    finally:
        session.close()
    click.echo(f"{summary.citizens} citizens scored, {summary.changed} scores changed")
    return summary


@click.command()
@click.option("--chunk-size", default=50_000, show_default=True, help="Citizens per transaction.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1, max=32),
    help="Citizen ranges scored at once, each on its own connection (PostgreSQL; about one per "
    "database core; SQLite always uses one).",
)
@pass_ctx
def recompute(ctx: Context, chunk_size: int, workers: int) -> None:
    """Recompute every consenting citizen's score with the published model (set-based)."""
    _recompute(ctx, chunk_size, workers)


@click.command()
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


def _citizen(ctx: Context, session: Session, raw: str, *, reference: bool = False) -> Any:
    """The citizen an ID number names, or (``reference=True``, for reading only) a reference such as
    ``C934`` from an operator's list. What acts for a citizen (consent, codes) takes the ID number
    the citizen shows, never a reference."""
    if reference and raw.strip()[:1] in ("C", "c", "#"):
        citizen = queries.find_citizen_by_reference(session, raw)
        if citizen is None:
            raise click.ClickException(
                f"no citizen {raw.strip()} here (a reference is C and a number, as `model whatif` lists them)"
            )
        return citizen
    citizen = queries.find_citizen(session, ctx.platform.settings.id_hash_key, _read_id(raw))
    if citizen is None:
        raise click.ClickException("no citizen with this ID number has any record here")
    return citizen


@click.command()
@click.argument("id_number")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@pass_ctx
def explain(ctx: Context, id_number: str, lang: str) -> None:
    """Explain a citizen's score: every record, the points it gave, and why.

    ID_NUMBER is an ID number, '-' to type it without echo, or a citizen reference such as C934 (as
    `citycredit model whatif` lists the biggest movers).
    """

    with ctx.session() as session:
        citizen = _citizen(ctx, session, id_number, reference=True)
        explanation = queries.explain(
            session, citizen, as_of=ctx.platform.today(), actor=ACTOR, purpose="operator query"
        )
    click.echo(render_explanation(explanation, lang))


@click.group()
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


COMMANDS = (sources, model, ingest, recompute, expire, explain, consent)
