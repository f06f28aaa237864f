"""The catalogue's and the data-quality figures' commands (issue 13 §1, §2).

``citycredit catalogue load FILE`` stores a draft and submits it; another person publishes it (in the
admin, or ``citycredit catalogue publish N`` as another user): four eyes. ``adopt-reference`` starts a
city on the reference catalogue in one step (the system acting, as the demo does).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from citycredit.cli.base import ACTOR, MONTH, Context, pass_ctx
from citycredit.core.actors import SYSTEM, Actor, NotPermitted
from points_engine import catalogue, quality
from points_engine.ingest import REASONS

OFFICE = Actor(ACTOR, can_publish=True)


@click.group("catalogue")
def catalogue_group() -> None:
    """The public credit information catalogue: versions, entries, four-eyes publication."""


@catalogue_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="What this version changes (kept in the history).")
@pass_ctx
def catalogue_load(ctx: Context, file: Path, note: str) -> None:
    """Store a catalogue CSV as a new version and submit it for review."""
    try:
        with ctx.session() as session:
            version = catalogue.create_draft(
                session, file.read_text("utf-8-sig"), actor=OFFICE, note=note
            )
            catalogue.submit(session, version, actor=OFFICE)
            number, entries = version.number, len(version.entries)
    except catalogue.CatalogueInvalid as exc:
        for line, column, reason in exc.problems:
            click.echo(f"{file.name}:{line}: {column}: {reason}", err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s); nothing stored") from exc
    click.echo(
        f"catalogue version {number} ({entries} entries) is in review; another person publishes "
        f"it in the admin (目录管理) or with `citycredit catalogue publish {number}`"
    )


@catalogue_group.command("publish")
@click.argument("number", type=int)
@pass_ctx
def catalogue_publish(ctx: Context, number: int) -> None:
    """Publish a version in review (not by whoever loaded it)."""
    try:
        with ctx.session() as session:
            catalogue.publish(session, catalogue.find_version(session, number), actor=OFFICE)
    except NotPermitted as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"catalogue version {number} is published; ingest now checks rows against it")


@catalogue_group.command("reject")
@click.argument("number", type=int)
@click.option("--reason", required=True)
@pass_ctx
def catalogue_reject(ctx: Context, number: int, reason: str) -> None:
    """Send a version in review back, with the reason."""
    try:
        with ctx.session() as session:
            catalogue.reject(
                session, catalogue.find_version(session, number), actor=OFFICE, reason=reason
            )
    except NotPermitted as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"catalogue version {number} is rejected")


@catalogue_group.command("adopt-reference")
@pass_ctx
def catalogue_adopt(ctx: Context) -> None:
    """Publish the reference catalogue (a new city's start), unless one is published already."""
    with ctx.session() as session:
        current = catalogue.published_version(session)
        if current is not None:
            click.echo(f"catalogue version {current.number} is already published; nothing done")
            return
        version = catalogue.adopt_reference(session, actor=SYSTEM)
        click.echo(f"published the reference catalogue as version {version.number}")


@catalogue_group.command("list")
@pass_ctx
def catalogue_list(ctx: Context) -> None:
    """Every version, newest first, with its status and who did what."""
    with ctx.session() as session:
        for v in catalogue.versions(session):
            who = f"by {v.created_by}" + (f", decided by {v.decided_by}" if v.decided_by else "")
            click.echo(
                f"{v.number:>4}  {v.status:<10}  {len(v.entries):>4} entries  {who}  {v.note}"
            )


@catalogue_group.command("export")
@click.argument("number", type=int, required=False)
@pass_ctx
def catalogue_export(ctx: Context, number: int | None) -> None:
    """Print a version (the published one by default) as CSV, ready to edit and load again."""
    with ctx.session() as session:
        version = (
            catalogue.find_version(session, number)
            if number is not None
            else catalogue.published_version(session)
        )
        if version is None:
            raise click.ClickException(
                "no catalogue is published; `citycredit catalogue adopt-reference` starts one"
            )
        sys.stdout.write(catalogue.to_csv(catalogue.entries_of(version)))


@catalogue_group.command("diff")
@click.argument("number", type=int)
@pass_ctx
def catalogue_diff(ctx: Context, number: int) -> None:
    """What a version changes against the published one before it."""
    with ctx.session() as session:
        version = catalogue.find_version(session, number)
        before = catalogue.previous_published(session, version)
        changes = catalogue.diff(
            catalogue.entries_of(before) if before else [], catalogue.entries_of(version)
        )
        base = f"version {before.number}" if before else "nothing"
    if not changes:
        click.echo(f"version {number} changes nothing against {base}")
    for change in changes:
        detail = f" ({', '.join(change.fields)})" if change.fields else ""
        click.echo(f"{change.what:<8} {change.code}{detail}")


@click.group("quality")
def quality_group() -> None:
    """Data quality per source: the month's figures against the city's targets."""


@quality_group.command("month")
@click.argument("month", type=MONTH, required=False)
@pass_ctx
def quality_month(ctx: Context, month: dt.date | None) -> None:
    """Each source's figures and grade for a month (YYYY-MM; this month by default)."""
    first = (month or ctx.platform.today()).replace(day=1)
    with ctx.session() as session:
        rows = quality.month_figures(session, first)
        goals = quality.targets(session)
    click.echo(
        f"{first:%Y-%m}  source  received  rejected  qualified  on-time  ID errors  open  grade"
    )
    for f in [*rows, quality.city_total(rows, goals)]:
        reasons = ", ".join(f"{REASONS[r][1]} {n}" for r, n in sorted(f.rejected_by_reason.items()))
        click.echo(
            f"  {f.code or 'city':<16} {f.received:>8} {f.rejected:>9} {_pct(f.qualified_rate):>10}"
            f" {_pct(f.on_time_rate):>8} {_pct(f.id_error_rate, 3):>10} {f.open_rejections:>5}"
            f"  {f.grade or '-'}" + (f"  [{reasons}]" if reasons else "")
        )


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


COMMANDS = (catalogue_group, quality_group)
