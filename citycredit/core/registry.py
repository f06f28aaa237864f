"""The one registration point: each domain declares what it brings, and every shell iterates one list.

A domain is a package whose ``__init__.py`` sets ``DOMAIN = Domain(...)``. What it brings to the
shells (API blueprints, pages, CLI commands, admin pages) is named by import path and loaded only by
the shell that uses it, so declaring a domain, or importing one, loads no Flask and no click.

The list of installed domains is configuration, like Django's ``INSTALLED_APPS``: the ground names
them as strings and imports them lazily, so it never depends on their code when it is imported.
Adding a domain is a new package plus one line in ``INSTALLED_DOMAINS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

# In dependency order: a domain may use the ones above it, never the ones below.
INSTALLED_DOMAINS = (
    "citycredit.core",
    "points_engine",
    "scenarios",
    "credit_codes",
    "federation",
    "citizen",
    "governance",
    "push",
    "admin",
)


@dataclass(frozen=True)
class Domain:
    """What one domain brings. Every ``str`` naming code is an import path, ``module`` or ``module:attr``."""

    name: str
    # Modules that define tables: imported for Alembic, the drift test and the metadata.
    models: tuple[str, ...] = ()
    # ``module:attr`` of a sequence of ``citycredit.core.jobs.JobSpec`` run by the scheduler.
    jobs: str | None = None
    # OAuth scopes this domain's API endpoints ask for: name → what it allows.
    scopes: Mapping[str, str] = field(default_factory=dict)
    # Kinds of API client this domain serves (a venue desk, a data source, …).
    client_kinds: tuple[str, ...] = ()
    # ``module:attr`` of flask-smorest blueprints mounted under the partner API.
    api: tuple[str, ...] = ()
    # ``module:attr`` of ``init(app)`` functions mounting server-rendered pages.
    web: tuple[str, ...] = ()
    # Modules adding pages (and their navigation entries) to the admin; imported before it is mounted.
    admin_pages: tuple[str, ...] = ()
    # ``module:attr`` of click commands or sequences of them, added to the ``citycredit`` command.
    cli: tuple[str, ...] = ()
    # Facts announced by lower domains (``citycredit.core.events``) → ``module:attr`` of handlers,
    # called in the announcer's transaction.
    listens: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def resolve(path: str) -> Any:
    """Import ``module`` or ``module:attr`` and return it."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def resolve_all(paths: tuple[str, ...]) -> Iterator[Any]:
    """Each path's object; a sequence (``COMMANDS``, ``JOBS``) contributes each of its items."""
    for path in paths:
        found = resolve(path)
        if isinstance(found, list | tuple):
            yield from found
        else:
            yield found


@cache
def installed_domains() -> tuple[Domain, ...]:
    """The installed domains' declarations, in dependency order."""
    domains = []
    for package in INSTALLED_DOMAINS:
        declared = getattr(importlib.import_module(package), "DOMAIN", None)
        if not isinstance(declared, Domain):
            raise TypeError(f"{package} declares no DOMAIN = Domain(...) in its __init__.py")
        domains.append(declared)
    return tuple(domains)


def load_models() -> None:
    """Import every table of every domain, so ``Base.metadata`` is complete (Alembic, tests)."""
    for domain in installed_domains():
        for module in domain.models:
            importlib.import_module(module)


def all_scopes() -> dict[str, str]:
    """Every OAuth scope any domain's endpoints use: name → what it allows."""
    return {name: text for d in installed_domains() for name, text in d.scopes.items()}


def all_client_kinds() -> tuple[str, ...]:
    return tuple(kind for d in installed_domains() for kind in d.client_kinds)
