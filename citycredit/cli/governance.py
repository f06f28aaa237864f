"""``citycredit bulletins …``: the next-day governance bulletins by hand — what the scheduler does at
00:20 and every minute; ``citycredit lists …``: red and black lists (docs/GOVERNANCE.md)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from citycredit.cli.base import ACTOR, EXIT_ROWS_REJECTED, Context, pass_ctx
from citycredit.core.db import utcnow
from governance import bulletins as governance
from governance import lists
from governance.models import GovernanceBulletin, ListEntry
from points_engine.models import DataSource


@click.group("bulletins")
def bulletins() -> None:
    """Next-day publication of objection and repair outcomes (and list changes)."""


@bulletins.command("publish")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Publish every day before this one that has no bulletin yet (default: today).",
)
@pass_ctx
def publish(ctx: Context, today: dt.datetime | None) -> None:
    """Publish yesterday's bulletin and any missed day's, as the scheduler does after midnight."""
    settings = ctx.platform.settings
    day = today.date() if today else dt.datetime.now(settings.tz).date()
    with ctx.session() as session:
        made = governance.publish_due(session, settings, today=day, now=utcnow())
        for b in made:
            click.echo(
                f"#{b.seq} {b.day}: {b.objections} objections, {b.repairs} repairs, "
                f"{b.list_changes} list changes ({b.delivery})"
            )
    if not made:
        click.echo("nothing to publish: every day before it has its bulletin")


@bulletins.command("deliver")
@pass_ctx
def deliver(ctx: Context) -> None:
    """Push the pending bulletins whose time has come to CITYCREDIT_BULLETIN_PUSH_URL, in order."""
    settings = ctx.platform.settings
    if not settings.bulletin_push_url:
        raise click.ClickException(
            "no endpoint: set CITYCREDIT_BULLETIN_PUSH_URL (or let the platform pull them)"
        )
    with ctx.session() as session:
        done = governance.deliver_due(session, settings, now=utcnow())
        waiting = session.scalars(
            select(GovernanceBulletin)
            .where(GovernanceBulletin.delivery == "pending")
            .order_by(GovernanceBulletin.seq)
        ).all()
    for b in done:
        click.echo(f"#{b.seq} {b.day}: delivered after {b.attempts} attempt(s)")
    for b in waiting:
        click.echo(f"#{b.seq} {b.day}: waiting, next attempt {b.next_attempt_at}; {b.last_error}")


@bulletins.command("list")
@pass_ctx
def list_bulletins(ctx: Context) -> None:
    """The latest bulletins and their delivery state."""
    with ctx.session() as session:
        rows = session.scalars(
            select(GovernanceBulletin).order_by(GovernanceBulletin.seq.desc()).limit(30)
        ).all()
        for b in rows:
            click.echo(
                f"#{b.seq} {b.day} {b.delivery:9} attempts {b.attempts} "
                f"objections {b.objections} repairs {b.repairs} lists {b.list_changes}"
            )


@click.group("lists")
def lists_group() -> None:
    """Red and black lists (红黑名单): import a department's decisions, lift an entry, show the public list."""


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise click.ClickException(f"{path}:{number}: not JSON: {exc.msg}") from exc
        return rows
    return list(enumerate(csv.DictReader(io.StringIO(text)), start=2))


@lists_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source", "source_code", required=True, help="The deciding department's source code."
)
@pass_ctx
def import_lists(ctx: Context, file: Path, source_code: str) -> None:
    """Import list decisions from CSV (header: list,id_number,name,decision_no,start_on,publish_months)
    or JSON Lines; bad rows are reported by line and field (exit status 3), good rows land."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        source = session.scalar(select(DataSource).where(DataSource.code == source_code))
        if source is None:
            raise click.ClickException(f"no data source {source_code!r}")
        result = lists.import_entries(
            session,
            _read_rows(file),
            source=source,
            key=settings.id_hash_key,
            today=dt.datetime.now(settings.tz).date(),
            now=utcnow(),
            actor=ACTOR,
        )
        for entry in result.listed:
            click.echo(
                f"listed {entry.public_id} {entry.list_code} {entry.masked_name} "
                f"{entry.decision_no} until {entry.publish_until}"
            )
    click.echo(
        f"{len(result.listed)} listed, {result.unchanged} unchanged, "
        f"{len({r for r, _, _ in result.errors})} rejected"
    )
    for row, name, reason in result.errors:
        click.echo(f"  {file}:{row}: {name}: {reason}", err=True)
    if result.errors:
        sys.exit(EXIT_ROWS_REJECTED)


@lists_group.command("lift")
@click.argument("entry_id")
@click.option(
    "--reason", required=True, help="Why it is lifted (kept, and in the bulletin's history)."
)
@pass_ctx
def lift_entry(ctx: Context, entry_id: str, reason: str) -> None:
    """Take an entry off its list: off the public list and out of the score at once."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        entry = session.scalar(select(ListEntry).where(ListEntry.public_id == entry_id))
        if entry is None:
            raise click.ClickException(f"no list entry {entry_id!r}")
        try:
            lists.lift(
                session,
                entry,
                actor=ACTOR,
                reason=reason,
                today=dt.datetime.now(settings.tz).date(),
                now=utcnow(),
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"lifted {entry_id}")


@lists_group.command("show")
@pass_ctx
def show_lists(ctx: Context) -> None:
    """What the public list shows today (masked names only)."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        for e in lists.public_entries(session, today=dt.datetime.now(settings.tz).date()):
            click.echo(
                f"{e.kind:5} {e.list_name_zh} {e.masked_name} {e.decision_no} "
                f"{e.start_on} – {e.publish_until}"
            )


COMMANDS = (bulletins, lists_group)
