"""The one way a benchmark states its verdict: ``RATIO <name> <value> target <op> <target> <met|MISSED>``.

Every bench ends with one such line per ratio (issue 14), so two runs compare at a glance and a script
can grep them. A bench builds its ``Ratio`` values, prints them last with :func:`print_ratios`, and may
exit with :func:`exit_code` (0 when every target is met).

(Named ``ratios``, not after anything in the project: a bench's folder comes first on ``sys.path``, so a
module here called like a project package would shadow it.)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Op = Literal["<=", ">="]
_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Ratio:
    """One measured ratio and the target it is held to (``value <op> target``)."""

    name: str
    value: float
    op: Op
    target: float

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise ValueError(f"{self.name}: target operator must be <= or >=, not {self.op!r}")
        if " " in self.name:
            raise ValueError(f"{self.name!r}: a ratio's name is one word")

    @property
    def met(self) -> bool:
        return _COMPARE[self.op](self.value, self.target)

    def line(self) -> str:
        verdict = "met" if self.met else "MISSED"
        return f"RATIO {self.name} {self.value:.3f} target {self.op} {self.target:g} {verdict}"

    def as_dict(self) -> dict[str, object]:
        """For a bench's JSON output."""
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "target": self.target,
            "met": self.met,
        }


def print_ratios(ratios: Iterable[Ratio]) -> None:
    """Print one ``RATIO`` line per ratio; call it last, after everything else a bench prints."""
    for ratio in ratios:
        print(ratio.line(), flush=True)


def exit_code(ratios: Iterable[Ratio]) -> int:
    """0 when every target is met, 1 otherwise."""
    return 0 if all(ratio.met for ratio in ratios) else 1
