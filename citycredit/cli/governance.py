"""``citycredit bulletins …``: the next-day governance bulletins by hand — what the scheduler does at
00:20 and every minute (docs/GOVERNANCE.md)."""

from __future__ import annotations

import datetime as dt

import click
from sqlalchemy import select

from citycredit.cli.base import Context, pass_ctx
from citycredit.core.db import utcnow
from governance import bulletins as governance
from governance.models import GovernanceBulletin


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


COMMANDS = (bulletins,)
