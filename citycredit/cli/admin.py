"""``citycredit admin``: admin accounts from the command line (the first platform admin starts here)."""

from __future__ import annotations

import sys

import click

from admin import operations
from admin.models import ROLES
from citycredit.cli.base import ACTOR, Context
from citycredit.core.db import utcnow

EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """Input refused: exit status 2, like click's own usage errors."""

    exit_code = EXIT_BAD_INPUT


@click.group("admin")
def admin() -> None:
    """Web admin accounts."""


@admin.command("create-user")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    metavar="ROLE",
    help="One of: " + ", ".join(f"{code} ({names[1]})" for code, names in ROLES.items()) + ".",
)
@click.option(
    "--operator", "operator_code", metavar="CODE", help="The operator (operator accounts)."
)
@click.option("--source", "source_code", metavar="CODE", help="Limit a clerk to one data source.")
@click.option("--display-name", default="", help="The person's name as shown in the admin.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
def create_user(
    username: str,
    role: str,
    operator_code: str | None,
    source_code: str | None,
    display_name: str,
    password_stdin: bool,
) -> None:
    """Create an admin account; the password is asked for twice (or read from stdin)."""
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    ctx = click.get_current_context().ensure_object(Context)
    try:
        with ctx.session() as session:
            user = operations.create_user(
                session,
                username=username,
                password=password,
                role=role,
                display_name=display_name,
                operator_code=operator_code,
                source_code=source_code,
                actor=ACTOR,
                now=utcnow(),
            )
            created = (user.username, user.role)
    except operations.AdminInputError as exc:
        raise BadInput(str(exc)) from None
    click.echo(f"created {created[1]} account {created[0]}")
