"""Bearer-token authentication of API calls, and the scope each endpoint needs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from citycredit.core.clients import AuthError, Caller, authenticate_bearer
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of

F = TypeVar("F", bound=Callable[..., Any])
# The attribute of a view naming the scope it needs (None: any valid token).
REQUIRED_SCOPE = "required_scope"


def caller() -> Caller:
    found: Caller = g.caller
    return found


def require_scope(scope: str | None) -> Callable[[F], F]:
    """Authenticate the bearer token and require ``scope`` (``None``: any valid token); the client is
    then at :func:`caller`.

    The request pipeline reads the scope from the view (``REQUIRED_SCOPE``) and authenticates before
    the body is parsed, so an anonymous caller learns nothing from validation errors.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if "caller" not in g:
                authenticate(scope)
            return view(*args, **kwargs)

        # functools.wraps copies __dict__, so the outer (argument-parsing) wrappers carry it too.
        wrapper.__dict__[REQUIRED_SCOPE] = scope
        return wrapper  # type: ignore[return-value]

    return decorate


def _challenge(scope: str | None) -> str:
    return 'Bearer realm="citycredit"' + (f', scope="{scope}"' if scope else "")


def token_refused(exc: AuthError, scope: str | None) -> Problem:
    """The 401 for an access token refused (also when a use case finds its client revoked)."""
    return Problem(
        "invalid-token",
        exc.detail,
        headers={"WWW-Authenticate": _challenge(scope) + ', error="invalid_token"'},
    )


def authenticate(scope: str | None) -> Caller:
    """Check the request's bearer token and ``scope``; the client is then at :func:`caller`."""

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = _challenge(scope)
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            "invalid-token",
            "send Authorization: Bearer <access token>",
            headers={"WWW-Authenticate": challenge},
        )
    try:
        found = authenticate_bearer(db_session(), platform_of(current_app).settings, token.strip())
    except AuthError as exc:
        raise token_refused(exc, scope) from None
    if scope is not None and scope not in found.scopes:
        raise Problem(
            "insufficient-scope",
            f"this endpoint needs the {scope!r} scope",
            headers={"WWW-Authenticate": challenge + ', error="insufficient_scope"'},
        )
    g.caller = found
    return found
