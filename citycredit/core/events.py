"""Facts a domain announces for the domains above it, handled in the announcer's transaction.

A lower domain cannot import a higher one (the layers of docs/ARCHITECTURE.md), yet some of its
changes matter above it: a score whose common level moved matters to the citizens' linked partners
(``push``). The lower domain *announces* the fact here; every installed domain that declared a
listener for it (``Domain.listens``) is called with the same session, so what the listener writes
(an outbox row) commits or rolls back with the change that caused it.

Facts announced (keyword arguments in brackets):

- ``scores.written`` (``citizen_ids``: citizens given a new current snapshot) — points engine
- ``consent.withdrawn`` (``citizen_id``) — points engine
- ``scenario.status`` (``scenario_id``, ``code``, ``operator_id``, ``status``, ``before``) — scenarios
- ``keys.rotated`` (``kid``) — the ground's signing keys
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy.orm import Session

from citycredit.core.registry import installed_domains, resolve

Listener = Callable[..., None]


@cache
def listeners(name: str) -> tuple[Listener, ...]:
    """The handlers installed domains declared for ``name``, in the domains' order."""
    return tuple(
        resolve(path) for domain in installed_domains() for path in domain.listens.get(name, ())
    )


def announce(session: Session, name: str, **facts: Any) -> None:
    """Call every listener of ``name`` with the session and the facts (nothing when none listens)."""
    for listener in listeners(name):
        listener(session, **facts)
