"""One city's running platform: settings, engine and session factory, shared by the app, CLI and jobs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from citycredit.core.config import Settings
from citycredit.core.db import make_engine, make_session_factory


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def start(cls, settings: Settings, *, schema: str | None = None) -> Platform:
        engine = make_engine(settings.database_url, schema=schema, echo=settings.sql_echo)
        return cls(settings, engine, make_session_factory(engine))

    def today(self) -> dt.date:
        """Today in the city's timezone: validity and expiry are calendar dates where the city is."""
        return dt.datetime.now(self.settings.tz).date()
