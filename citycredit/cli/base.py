"""What every command group shares: the acting name, exit codes, and the lazily started platform.

Kept apart from ``citycredit.cli.main`` so that domain command groups (``citycredit.cli.scenarios``, ``citycredit.cli.admin``) can
import it while ``citycredit.cli.main`` imports them, including when it runs as ``python -m citycredit.cli.main``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from citycredit.core.config import ConfigError, load_settings
from citycredit.core.db import unit_of_work
from citycredit.core.platform import Platform
from points_engine import operations
from points_engine.scoring_model import ModelFileError

ACTOR = "cli:" + (os.environ.get("USER") or "operator")
EXIT_ROWS_REJECTED = 3


class Context:
    def __init__(self) -> None:
        self._platform: Platform | None = None

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            try:
                self._platform = Platform.start(load_settings())
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._platform

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with unit_of_work(self.platform.sessions) as session:
                yield session
        except (operations.EngineError, ModelFileError) as exc:
            raise click.ClickException(str(exc)) from exc


pass_ctx = click.make_pass_decorator(Context, ensure=True)
