"""Credit codes from the command line (a counter clerk's printout, tests)."""

from __future__ import annotations

from pathlib import Path

import click

from citycredit.cli.base import ACTOR, Context, pass_ctx
from citycredit.cli.engine import _citizen
from citycredit.core.db import utcnow
from credit_codes import operations as codes
from credit_codes import qr


@click.group()
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


COMMANDS = (code,)
