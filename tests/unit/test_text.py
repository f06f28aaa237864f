"""Control characters: which text may hold them, and how a log shows them."""

from __future__ import annotations

import pytest

from citycredit.core.text import control_character, escape_controls, lone_surrogate


@pytest.mark.parametrize(
    ("text", "multiline", "found"),
    [
        ("黄石市 bus-pass_01", False, None),
        ("a\x00b", False, "U+0000"),
        ("a\x00b", True, "U+0000"),
        ("two\nlines", False, "U+000A"),
        ("two\r\nlines\tand a tab", True, None),
        ("escape\x1b[2J", True, "U+001B"),
        ("delete\x7f", True, "U+007F"),
        ("C1 \x85 is not C0", False, None),
    ],
)
def test_control_characters_by_kind_of_field(text: str, multiline: bool, found: str | None) -> None:
    assert control_character(text, multiline=multiline) == found


def test_lone_surrogates_are_found_and_pairs_are_characters() -> None:
    assert lone_surrogate("a\ud800b") == "U+D800"
    assert lone_surrogate("emoji 😀") is None


def test_a_log_message_stays_on_one_line_and_visible() -> None:
    escaped = escape_controls("x\n2026-01-01 forged\r\x1b[2J\u2028\x85\ud800 ok 黄石")
    assert escaped == "x\\n2026-01-01 forged\\r\\x1b[2J\\u2028\\x85\\ud800 ok 黄石"
    assert escaped.isprintable()
