"""Citizen ID numbers (公民身份号码, GB 11643-1999): validation and keyed pseudonyms.

An ID number never leaves this module in clear: callers keep the keyed hash and, where the rules need
it, the birth date. ``repr`` of :class:`CitizenId` masks the number so it cannot reach a log by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


class InvalidIdNumber(ValueError):
    """The string is not a valid 18-character citizen ID number."""


def check_digit(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


@dataclass(frozen=True)
class CitizenId:
    """A validated ID number; its repr and str are masked."""

    number: str
    birth_date: date

    def __repr__(self) -> str:
        return f"CitizenId({mask(self.number)})"

    __str__ = __repr__


def mask(number: str) -> str:
    """Show only enough to tell two numbers apart in a conversation: region prefix and check char."""
    if len(number) != 18:
        return "*" * len(number)
    return number[:3] + "*" * 14 + number[-1]


def parse_id_number(raw: str, *, today: date | None = None) -> CitizenId:
    """Validate ``raw`` and return it normalised (upper-case X). Errors never echo the number."""
    number = raw.strip().upper()
    if len(number) != 18:
        raise InvalidIdNumber(f"must be 18 characters, got {len(number)}")
    # ASCII only: str.isdigit() would also accept full-width and other Unicode digits.
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        raise InvalidIdNumber("must be 17 digits followed by a digit or X")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("birth date part is not a real date") from None
    if birth < date(1900, 1, 1) or birth > (today or date.today()):
        raise InvalidIdNumber("birth date part is out of range")
    if check_digit(number[:17]) != number[17]:
        raise InvalidIdNumber("check digit does not match (GB 11643)")
    return CitizenId(number=number, birth_date=birth)


def id_hash(key: bytes, citizen_id: CitizenId | str) -> str:
    """The keyed pseudonym stored instead of the ID number (HMAC-SHA256, hex)."""
    number = citizen_id.number if isinstance(citizen_id, CitizenId) else citizen_id
    return hmac.new(key, number.encode("ascii"), hashlib.sha256).hexdigest()


def make_id_number(region: str, birth: date, sequence: int) -> str:
    """Build a valid ID number (for synthetic data and tests): 6-digit region, birth date, 3-digit sequence."""
    first17 = f"{region}{birth:%Y%m%d}{sequence % 1000:03d}"
    return first17 + check_digit(first17)
