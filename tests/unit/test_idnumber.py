"""ID numbers: GB 11643 validation, and that the number never shows in a repr or an error."""

from __future__ import annotations

import datetime as dt

import pytest

from citycredit.core.idnumber import InvalidIdNumber, id_hash, make_id_number, parse_id_number

VALID = "11010519491231002X"  # the standard's own worked example


def test_the_standards_example_is_valid_and_its_birth_date_is_read() -> None:
    citizen = parse_id_number(VALID.lower())
    assert citizen.number == VALID
    assert citizen.birth_date == dt.date(1949, 12, 31)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("110105194912310021", "check digit"),
        ("11010519491231002", "18 characters"),
        ("1101051949123100AX", "17 digits"),
        ("110105194902300028", "not a real date"),
        ("110105209912310021", "out of range"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason_that_does_not_echo_them(
    raw: str, reason: str
) -> None:
    with pytest.raises(InvalidIdNumber) as info:
        parse_id_number(raw, today=dt.date(2026, 11, 23))
    assert reason in str(info.value)
    assert raw[6:14] not in str(info.value)


def test_repr_masks_the_number() -> None:
    text = repr(parse_id_number(VALID))
    assert VALID not in text and VALID[6:14] not in text


def test_keyed_hash_depends_on_the_key() -> None:
    citizen = parse_id_number(VALID)
    assert id_hash(b"a" * 32, citizen) != id_hash(b"b" * 32, citizen)
    assert len(id_hash(b"a" * 32, citizen)) == 64


def test_generated_numbers_are_valid() -> None:
    number = make_id_number("420202", dt.date(1990, 5, 17), 123)
    assert parse_id_number(number).birth_date == dt.date(1990, 5, 17)
