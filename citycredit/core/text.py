"""Control characters in text from outside: found before they reach the database, escaped before logs.

PostgreSQL refuses NUL in text, and a line break or terminal escape in a log message forges a line or
rewrites a terminal. Single-line values allow no C0 control character (nor DEL); multi-line values
(text areas) allow tab, line feed and carriage return.
"""

from __future__ import annotations

import re

_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f]")
_MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What a log viewer or terminal may take for a line break or an escape sequence: C0, DEL, C1 and the
# Unicode line and paragraph separators.
_UNSAFE_IN_LOGS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character ``text`` may not hold (as ``U+XXXX``), or None when it is clean."""
    found = (_MULTI_LINE if multiline else _SINGLE_LINE).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def lone_surrogate(text: str) -> str | None:
    """The first half of a surrogate pair standing alone (``\\ud800`` in JSON), which no database
    can store as UTF-8, as ``U+XXXX``; None when there is none."""
    found = _SURROGATE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters and line separators as visible ``\\n``/``\\xNN`` escapes."""
    return _UNSAFE_IN_LOGS.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
