"""What every command group shares: the acting name, exit codes, and the lazily started platform.

Kept apart from ``citycredit.cli.main`` so that domain command groups (``citycredit.cli.scenarios``, ``citycredit.cli.admin``) can
import it while ``citycredit.cli.main`` imports them, including when it runs as ``python -m citycredit.cli.main``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from citycredit.core.config import (
    INSTANCE_DATABASE,
    ConfigError,
    find_instance_dir,
    load_settings,
)
from citycredit.core.db import unit_of_work
from citycredit.core.periods import parse_month
from citycredit.core.platform import Platform
from points_engine import operations
from points_engine.scoring_model import ModelFileError

ACTOR = "cli:" + (os.environ.get("USER") or "operator")
EXIT_ROWS_REJECTED = 3
CommandT = TypeVar("CommandT", bound=click.Command)


def creates_city(command: CommandT) -> CommandT:
    """Mark a command that may make a new city (``db upgrade``, ``demo seed``) where none is found."""
    command.creates_city = True  # type: ignore[attr-defined]
    return command


def no_city_here(instance_dir: Path) -> str:
    """One line: where no city was found, and what to do."""
    if os.environ.get("CITYCREDIT_INSTANCE_DIR"):
        return (
            f"CITYCREDIT_INSTANCE_DIR={instance_dir} holds no {INSTANCE_DATABASE}: point it at the "
            "instance/ folder `make demo` made, or run `citycredit db upgrade` there to start a new city"
        )
    return (
        f"no city found: neither {Path.cwd()} nor a folder above it has instance/{INSTANCE_DATABASE}; "
        "run this inside the project where `make demo` ran, or set CITYCREDIT_INSTANCE_DIR=<that "
        "project>/instance (`citycredit db upgrade` starts a new city here)"
    )


class Context:
    def __init__(self) -> None:
        self._platform: Platform | None = None

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            current = click.get_current_context(silent=True)
            creating = getattr(current and current.command, "creates_city", False)
            # Without a database URL the city is instance/'s SQLite file: a command that reads it
            # must not make an empty one (and fresh keys) wherever it happens to run.
            if not creating and not os.environ.get("CITYCREDIT_DATABASE_URL"):
                instance_dir = find_instance_dir()
                if not (instance_dir / INSTANCE_DATABASE).exists():
                    raise click.ClickException(no_city_here(instance_dir))
            try:
                self._platform = Platform.start(load_settings())
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
            if not creating and not inspect(self._platform.engine).has_table("alembic_version"):
                raise click.ClickException(
                    f"the database at {self._platform.engine.url!r} has no tables yet: "
                    "run `citycredit db upgrade` (or `make demo`) first"
                )
        return self._platform

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with unit_of_work(self.platform.sessions) as session:
                yield session
        except (operations.EngineError, ModelFileError) as exc:
            raise click.ClickException(str(exc)) from exc


pass_ctx = click.make_pass_decorator(Context, ensure=True)


class MonthType(click.ParamType):
    """A month as YYYY-MM (its first day), as the pages read one (``periods.parse_month``)."""

    name = "YYYY-MM"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return parse_month(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


MONTH = MonthType()
