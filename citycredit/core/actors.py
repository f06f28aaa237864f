"""Who is acting, and what they may do: one ``Actor`` for every workflow (scenarios, and the ones to come).

Every write in a domain takes an actor. The admin builds one from the signed-in user, the API from
the calling client, the CLI and jobs use :data:`SYSTEM`; the rules below live here once, so no entry
point decides them differently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class NotPermitted(PermissionError):
    """The actor may not do this (another operator's thing, a step for another role, four eyes)."""


@dataclass(frozen=True)
class Actor:
    """Who is acting. ``operator_id`` limits an operator's people to their own rows (``None`` means
    city-wide); ``can_publish`` is the credit office's review right; ``read_only`` is the auditor.
    A ``partner`` (a venue's desk, the city's app) owns nothing and reads only what is public; a desk
    names its ``venue_id``. A data source's clerk (a person in the admin, or the source's API client)
    is ``source_clerk`` and answers for ``source_id`` (``None``: every source)."""

    name: str
    operator_id: int | None = None
    can_publish: bool = False
    read_only: bool = False
    partner: bool = False
    venue_id: int | None = None
    source_clerk: bool = False
    source_id: int | None = None

    @classmethod
    def for_partner(cls, name: str, *, venue_id: int | None = None) -> Actor:
        return cls(name, partner=True, read_only=True, venue_id=venue_id)

    @classmethod
    def for_source(cls, name: str, *, source_id: int | None) -> Actor:
        return cls(name, source_clerk=True, source_id=source_id)

    def is_city_wide(self) -> bool:
        return self.operator_id is None and not self.partner

    def may_see(self, operator_id: int | None) -> bool:
        """Another operator's rows do not exist as far as this actor can tell."""
        if self.partner:
            return False
        return self.operator_id is None or self.operator_id == operator_id

    def may_manage(self, operator_id: int | None) -> bool:
        return not self.read_only and self.may_see(operator_id)

    def may_review(self) -> bool:
        return self.can_publish and not self.read_only

    def may_work_objections(self) -> bool:
        """The objection reviewer's steps: forward a case, decide it (not a source, not a partner)."""
        return not (self.read_only or self.partner or self.source_clerk)

    def may_answer_for(self, source_id: int) -> bool:
        """Enter a data source's answer to an objection: the reviewer, or that source's clerk."""
        if self.read_only or self.partner:
            return False
        return not self.source_clerk or self.source_id in (None, source_id)

    def is_system(self) -> bool:
        return self is SYSTEM


SYSTEM = Actor("system", can_publish=True)


def is_second_pair_of_eyes(actor: Actor, authors: Iterable[str | None]) -> bool:
    """Four eyes: whoever wrote, edited or submitted a thing cannot also approve it.

    The system actor (migrations, the demo seed, CLI imports by the credit office) is exempt: it
    publishes only what a person already reviewed, or the demo's own catalogue.
    """
    return actor.is_system() or actor.name not in {a for a in authors if a}


def require_four_eyes(
    actor: Actor, authors: Iterable[str | None], *, error: type[Exception] = NotPermitted
) -> None:
    """Raise ``error`` unless :func:`is_second_pair_of_eyes`; the message says which rule refused."""
    if not is_second_pair_of_eyes(actor, authors):
        raise error(
            "four eyes: a version is published by someone other than those who wrote or submitted it"
        )
