"""``citycredit audit …``: seal the audit log, check its chain, export a signed slice (docs/AUDIT.md)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from citycredit.cli.base import ACTOR, Context, pass_ctx
from citycredit.core import audit_chain


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log: seal, verify, export."""


@audit_group.command("seal")
@click.option(
    "--grace",
    type=click.IntRange(0),
    default=None,
    help="Seconds an event must be old to be sealed (default: CITYCREDIT_AUDIT_SEAL_GRACE, 300).",
)
@pass_ctx
def seal(ctx: Context, grace: int | None) -> None:
    """Chain the events older than the grace period and sign a checkpoint, as the scheduler does
    every minute."""
    settings = ctx.platform.settings
    seconds = settings.audit_seal_grace_seconds if grace is None else grace
    with ctx.session() as session:
        done = audit_chain.seal(session, settings.key_secret, grace=dt.timedelta(seconds=seconds))
    if done.sealed:
        click.echo(f"sealed {done.sealed} events, up to event {done.up_to}; checkpoint signed")
    else:
        click.echo(f"nothing to seal (sealed up to event {done.up_to or 'none'})")


@audit_group.command("verify")
@pass_ctx
def verify(ctx: Context) -> None:
    """Check every event against its seal and every signed checkpoint; exit 1 at the first broken
    link, naming it."""
    with ctx.session() as session:
        found = audit_chain.verify_and_record(session, actor=ACTOR)
    if found.ok:
        click.echo(found.line())
    else:
        click.echo(found.line(), err=True)
        sys.exit(1)


@audit_group.command("export")
@click.option(
    "--from",
    "first",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    required=True,
    help="First day (the city's calendar), included.",
)
@click.option(
    "--to",
    "last",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    required=True,
    help="Last day (the city's calendar), included.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The JSON Lines file to write; its signature goes to <out>.jws.",
)
@pass_ctx
def export(ctx: Context, first: dt.datetime, last: dt.datetime, out: Path) -> None:
    """Write the events of some days as JSON Lines, with a JWS over the file's SHA-256 beside it
    (signed by the city's current signing key, published in its JWKS). The export is audited."""
    settings = ctx.platform.settings
    if last < first:
        raise click.ClickException("--to is before --from")
    start = first.replace(tzinfo=settings.tz)
    end = (last + dt.timedelta(days=1)).replace(tzinfo=settings.tz)
    with ctx.session() as session:
        made = audit_chain.export(session, settings.key_secret, first=start, last=end, actor=ACTOR)
    out.write_bytes(made.lines)
    signature = out.with_name(out.name + ".jws")
    signature.write_text(made.signature + "\n", encoding="ascii")
    click.echo(f"{made.count} events to {out}, signature in {signature}")


COMMANDS = (audit_group,)
