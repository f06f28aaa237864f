"""``citycredit links …``: which operator systems may ask citizens to link (docs/LINKING.md): an
operator's API client and the exact redirect URIs its authorization requests may name."""

from __future__ import annotations

import click

from citycredit.cli.base import ACTOR, Context, pass_ctx
from citycredit.core.clients import find_client
from push.apps import AppError, app_of, register_app


@click.group("links")
def links() -> None:
    """Operator systems that citizens may link (OAuth 2 code with PKCE)."""


@links.command("register-app")
@click.argument("client_id")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    required=True,
    help="An exact redirect URI (https; http only on 127.0.0.1 or localhost). Repeat for more.",
)
@pass_ctx
def register(ctx: Context, client_id: str, redirect_uris: tuple[str, ...]) -> None:
    """Let an operator's API client (scope links:read) ask citizens to link, returning only to
    these addresses (they replace any registered before)."""
    with ctx.session() as session:
        client = find_client(session, client_id)
        if client is None:
            raise click.ClickException(f"no API client {client_id!r}")
        try:
            app = register_app(session, client, list(redirect_uris), actor=ACTOR)
        except AppError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{client_id} may ask citizens to link; redirect URIs:")
        for uri in app.redirect_uris:
            click.echo(f"  {uri}")


@links.command("show-app")
@click.argument("client_id")
@pass_ctx
def show(ctx: Context, client_id: str) -> None:
    """The redirect URIs registered for an operator's API client."""
    with ctx.session() as session:
        found = app_of(session, client_id)
        if found is None:
            raise click.ClickException(f"{client_id!r} is not an active client allowed to link")
        for uri in found[1].redirect_uris:
            click.echo(uri)


COMMANDS = (links,)
