"""``Idempotency-Key`` for POST endpoints: a retried request gets the first answer, not a second effect."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from citycredit.core.idempotency import KeyReused, claim, complete, release
from citycredit.web.api.auth import caller
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session

F = TypeVar("F", bound=Callable[..., Any])

HEADER_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "Repeat the key to retry the same request safely: the first successful answer is returned.",
}


def idempotent(status: int) -> Callable[[F], F]:
    """Store the view's successful result under (client, key); replay it for a repeated key.

    Refusals are not stored: they changed nothing, so repeating the request is already safe.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:

            key = request.headers.get("Idempotency-Key")
            if key is None:
                return view(*args, **kwargs)
            if not 1 <= len(key) <= 200:
                raise Problem("validation-error", "Idempotency-Key must be 1 to 200 characters")
            session = db_session()
            client_id = caller().client.id
            # Keys are scoped to the endpoint: one key may serve a records upload and a redemption.
            key = hashlib.sha256(f"{request.method} {request.path}\n{key}".encode()).hexdigest()
            try:
                replay = claim(session, client_id, key, request.get_data())
            except KeyReused as exc:
                raise Problem("idempotency-key-reused", str(exc)) from None
            if replay is not None:
                return replay
            try:
                result = view(*args, **kwargs)
            except Problem:
                release(session, client_id, key)
                raise
            complete(session, client_id, key, status, result)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
