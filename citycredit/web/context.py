"""What a request's code reaches through Flask's context: the city's platform and the request's session.

Kept apart from the app factory so that every shell module (API, admin, citizen pages) imports it at
the top while the factory imports them.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from citycredit.core.platform import Platform


def platform_of(app: Flask) -> Platform:
    platform: Platform = app.extensions["citycredit"]
    return platform


def roll_back_request() -> None:
    """Make the request end in a rollback even though a handler turned the error into a response."""
    g.rollback = True


def db_session() -> Session:
    """The request's session; committed once when the request succeeds, rolled back otherwise."""
    if "db_session" not in g:
        g.db_session = platform_of(current_app).sessions()
    session: Session = g.db_session
    return session
