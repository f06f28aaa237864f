"""Eligibility as data: who qualifies for a benefit, evaluated safely (no ``eval``), with reasons.

A rule is a small JSON tree, e.g.::

    {"all": [{"min_common_tier": 3}, {"min_age": 18}, {"resident": true}]}

Each condition kind is one registered class (:func:`register`); ``all`` and ``any`` combine them. There is
deliberately no negation: a scenario grants a benefit to those who meet thresholds and can never single
out people to restrict or penalise (incentive-only rules, see DOMAIN.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from points_engine.tiers import COMMON_LEVELS, common_level_words


@dataclass(frozen=True)
class CitizenFacts:
    """What eligibility may look at; nothing else about the citizen is available to a scenario.

    A ``visitor`` presents a partner city's code: only its common level is known here (FEDERATION.md),
    so a rule's local conditions cannot grant to them, each with a reason that says so.
    """

    common_tier: int | None  # None: not scored (no consent)
    local_score: int | None
    age: int | None
    resident: bool
    has_direct_tier_record: bool
    visitor: bool = False

    def __post_init__(self) -> None:
        if self.visitor and self.resident:
            raise ValueError("a visitor from a partner city is not a resident of this city")

    @classmethod
    def for_visitor(cls, common_level: int | None, *, age: int | None = None) -> CitizenFacts:
        """A visitor's facts: the common level their code vouches for, and nothing local."""
        return cls(
            common_tier=common_level,
            local_score=None,
            age=age,
            resident=False,
            has_direct_tier_record=False,
            visitor=True,
        )


@dataclass(frozen=True)
class Reason:
    """Why a condition is not met, in both languages."""

    kind: str
    zh: str
    en: str


@dataclass
class Outcome:
    eligible: bool
    unmet: list[Reason] = field(default_factory=list)


class RuleError(ValueError):
    """An eligibility rule that cannot be used; ``path`` points into the rule (e.g. ``all.1.min_age``)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path or '(rule)'}: {message}")
        self.path = path
        self.message = message


class Condition(ABC):
    kind: ClassVar[str]
    # The CitizenFacts fields this kind reads; a verification fetches only what its rule needs.
    needs: ClassVar[frozenset[str]] = frozenset()

    def facts_needed(self) -> frozenset[str]:
        return self.needs

    @classmethod
    @abstractmethod
    def parse(cls, value: Any, path: str) -> Condition: ...

    @abstractmethod
    def evaluate(self, facts: CitizenFacts) -> Outcome: ...

    @abstractmethod
    def to_data(self) -> dict[str, Any]: ...

    @abstractmethod
    def describe(self, lang: str) -> str: ...


CONDITIONS: dict[str, type[Condition]] = {}


def register(cls: type[Condition]) -> type[Condition]:
    if cls.kind in CONDITIONS:
        raise ValueError(f"condition kind {cls.kind!r} registered twice")
    CONDITIONS[cls.kind] = cls
    return cls


MAX_DEPTH = 8


def parse_rule(data: Any, path: str = "") -> Condition:
    """Parse a rule tree; raise :class:`RuleError` naming the exact place of the first problem."""
    if path.count(".") >= 2 * MAX_DEPTH:
        raise RuleError(path, f"nested too deeply (at most {MAX_DEPTH} levels of all/any)")
    if not isinstance(data, dict) or len(data) != 1:
        raise RuleError(path, "a condition is an object with exactly one key, its kind")
    ((kind, value),) = data.items()
    cls = CONDITIONS.get(kind)
    if cls is None:
        known = ", ".join(sorted(CONDITIONS))
        raise RuleError(_join(path, kind), f"unknown condition kind (known: {known})")
    return cls.parse(value, _join(path, kind))


def _join(path: str, part: str | int) -> str:
    return f"{path}.{part}" if path else str(part)


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleError(path, f"must be a whole number from {low} to {high}")
    return value


@register
@dataclass(frozen=True)
class MinCommonTier(Condition):
    kind: ClassVar[str] = "min_common_tier"
    needs: ClassVar[frozenset[str]] = frozenset({"common_tier"})
    level: int

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        return cls(_int(value, path, min(COMMON_LEVELS), max(COMMON_LEVELS)))

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        if facts.common_tier is None:
            return Outcome(
                False, [Reason(self.kind, "尚未授权信用评分", "not scored (no consent given)")]
            )
        if facts.common_tier >= self.level:
            return Outcome(True)
        return Outcome(
            False,
            [
                Reason(
                    self.kind,
                    f"需达到{common_level_words(self.level, 'zh', or_above=True)}",
                    f"needs {common_level_words(self.level, 'en', or_above=True)}",
                )
            ],
        )

    def to_data(self) -> dict[str, Any]:
        return {self.kind: self.level}

    def describe(self, lang: str) -> str:
        return common_level_words(self.level, lang, or_above=True)


@register
@dataclass(frozen=True)
class MinLocalScore(Condition):
    kind: ClassVar[str] = "min_local_score"
    needs: ClassVar[frozenset[str]] = frozenset({"local_score"})
    score: int

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        return cls(_int(value, path, 0, 10_000))

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        if facts.visitor:
            return Outcome(
                False,
                [
                    Reason(
                        self.kind,
                        "外地来访者无本市分数，此条件不适用",
                        "visitors from partner cities have no local score here",
                    )
                ],
            )
        if facts.local_score is not None and facts.local_score >= self.score:
            return Outcome(True)
        if facts.local_score is None:
            return Outcome(
                False, [Reason(self.kind, "尚未授权信用评分", "not scored (no consent given)")]
            )
        return Outcome(
            False,
            [Reason(self.kind, f"信用分需达到{self.score}分", f"needs a score of {self.score}")],
        )

    def to_data(self) -> dict[str, Any]:
        return {self.kind: self.score}

    def describe(self, lang: str) -> str:
        return f"信用分{self.score}分及以上" if lang == "zh" else f"score {self.score} or more"


@register
@dataclass(frozen=True)
class MinAge(Condition):
    kind: ClassVar[str] = "min_age"
    needs: ClassVar[frozenset[str]] = frozenset({"age"})
    years: int

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        return cls(_int(value, path, 0, 120))

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        if facts.age is not None and facts.age >= self.years:
            return Outcome(True)
        if facts.age is None and facts.visitor:
            return Outcome(
                False,
                [
                    Reason(
                        self.kind,
                        f"外地来访者的年龄在本市无从核实，无法确认年满{self.years}周岁",
                        f"a visitor's age is not known here, so being {self.years} or older "
                        "cannot be confirmed",
                    )
                ],
            )
        if facts.age is None:
            return Outcome(
                False,
                [
                    Reason(
                        self.kind,
                        f"无出生日期记录，无法确认年满{self.years}周岁",
                        f"no birth date on record, so being {self.years} or older "
                        "cannot be confirmed",
                    )
                ],
            )
        return Outcome(
            False, [Reason(self.kind, f"需年满{self.years}周岁", f"must be {self.years} or older")]
        )

    def to_data(self) -> dict[str, Any]:
        return {self.kind: self.years}

    def describe(self, lang: str) -> str:
        return f"年满{self.years}周岁" if lang == "zh" else f"aged {self.years} or over"


def _flag(value: Any, path: str) -> None:
    if value is not True:
        raise RuleError(path, "write true (there is no negated form: a scenario only grants)")


@register
@dataclass(frozen=True)
class Resident(Condition):
    kind: ClassVar[str] = "resident"
    needs: ClassVar[frozenset[str]] = frozenset({"resident"})

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        _flag(value, path)
        return cls()

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        if facts.resident:
            return Outcome(True)
        if facts.visitor:
            return Outcome(
                False,
                [
                    Reason(
                        self.kind,
                        "限本市居民，合作城市来访者不适用",
                        "for residents of this city, not visitors from partner cities",
                    )
                ],
            )
        return Outcome(False, [Reason(self.kind, "限本市居民", "for residents of this city")])

    def to_data(self) -> dict[str, Any]:
        return {self.kind: True}

    def describe(self, lang: str) -> str:
        return "本市居民" if lang == "zh" else "resident of the city"


@register
@dataclass(frozen=True)
class NoDirectTierRecord(Condition):
    kind: ClassVar[str] = "no_direct_tier_record"
    needs: ClassVar[frozenset[str]] = frozenset({"has_direct_tier_record"})

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        _flag(value, path)
        return cls()

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        if facts.visitor:
            # The visitor's records are held by their own city; a common level does not say whether
            # one of them set it directly, so "no such record" cannot be confirmed here.
            return Outcome(
                False,
                [
                    Reason(
                        self.kind,
                        "外地来访者的信用记录不在本市，无法确认无直接定级的严重失信记录",
                        "a visitor's records are held by their own city, so the absence of a "
                        "record that sets the tier cannot be confirmed here",
                    )
                ],
            )
        if not facts.has_direct_tier_record:
            return Outcome(True)
        return Outcome(
            False,
            [
                Reason(
                    self.kind,
                    "存在直接定级的严重失信记录",
                    "a severe record currently sets the tier",
                )
            ],
        )

    def to_data(self) -> dict[str, Any]:
        return {self.kind: True}

    def describe(self, lang: str) -> str:
        return (
            "无直接定级的严重失信记录" if lang == "zh" else "no record that sets the tier directly"
        )


def _children(value: Any, path: str) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise RuleError(path, "must be a non-empty list of conditions")
    return tuple(parse_rule(item, _join(path, i)) for i, item in enumerate(value))


@register
@dataclass(frozen=True)
class All(Condition):
    kind: ClassVar[str] = "all"
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        return cls(_children(value, path))

    def facts_needed(self) -> frozenset[str]:
        return frozenset().union(*(c.facts_needed() for c in self.conditions))

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        outcomes = [c.evaluate(facts) for c in self.conditions]
        return Outcome(all(o.eligible for o in outcomes), [r for o in outcomes for r in o.unmet])

    def to_data(self) -> dict[str, Any]:
        return {self.kind: [c.to_data() for c in self.conditions]}

    def describe(self, lang: str) -> str:
        return ("且".join if lang == "zh" else " and ".join)(
            c.describe(lang) for c in self.conditions
        )


@register
@dataclass(frozen=True)
class Any_(Condition):
    kind: ClassVar[str] = "any"
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, value: Any, path: str) -> Condition:
        return cls(_children(value, path))

    def facts_needed(self) -> frozenset[str]:
        return frozenset().union(*(c.facts_needed() for c in self.conditions))

    def evaluate(self, facts: CitizenFacts) -> Outcome:
        outcomes = [c.evaluate(facts) for c in self.conditions]
        if any(o.eligible for o in outcomes):
            return Outcome(True)
        return Outcome(False, [r for o in outcomes for r in o.unmet])

    def to_data(self) -> dict[str, Any]:
        return {self.kind: [c.to_data() for c in self.conditions]}

    def describe(self, lang: str) -> str:
        joined = ("或".join if lang == "zh" else " or ".join)(
            c.describe(lang) for c in self.conditions
        )
        return f"（{joined}）" if lang == "zh" else f"({joined})"


def lowest_visitor_level(rule: Condition) -> int | None:
    """The lowest common level (1–5) at which ``rule`` grants to a visitor from a partner city, or
    None when it grants to no visitor (it reads the local score, residence, age or local records)."""
    for level in sorted(COMMON_LEVELS):
        if rule.evaluate(CitizenFacts.for_visitor(level)).eligible:
            return level
    return None
