"""The common tier scale that every city's local tiers map onto (used for ten-city mutual recognition),
and the one place that words a citizen's tier: the city's local tier, then the common level.

A city's scoring model maps each local tier to one of these levels; partner cities exchange only the
common level (with the mapping-table version), never scores or records. Every page, the CLI and the
docs say the pair in the same words and order (``tier_pair``) and explain it with ``TIER_RELATION``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CommonTier:
    level: int
    name_zh: str
    name_en: str


COMMON_TIERS: tuple[CommonTier, ...] = (
    CommonTier(5, "极好", "Excellent"),
    CommonTier(4, "优秀", "Very good"),
    CommonTier(3, "良好", "Good"),
    CommonTier(2, "一般", "Fair"),
    CommonTier(1, "待提升", "Needs improvement"),
)
COMMON_LEVELS = frozenset(t.level for t in COMMON_TIERS)


def common_tier(level: int) -> CommonTier:
    for tier in COMMON_TIERS:
        if tier.level == level:
            return tier
    raise KeyError(level)


# The two names, said the same way everywhere: (Chinese, English).
LOCAL_TIER = ("本市等级", "City tier")
COMMON_LEVEL = ("通用等级", "Common level")
# Said once wherever the pair first appears (home, the CLI, README, docs/API.md).
TIER_RELATION = (
    "本市等级按本市的评分规则评定；通用等级是合作城市共同认可的五级标准，由本市等级对应而来。",
    "The city tier is this city's own, set by its scoring rules; the common level is the five-step "
    "scale that partner cities recognise, mapped from the city tier.",
)


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def local_tier_name(code: str | None, name_zh: str | None, name_en: str | None, lang: str) -> str:
    """A local tier's name in ``lang``, carrying its code once ("A (trustworthy)", never "A (…) (A)").

    A model's names usually start with the code already; one that does not gets it added in front.
    A missing English name falls back to the Chinese one, then to the code.
    """
    name = (name_en or name_zh) if lang == "en" else (name_zh or name_en)
    if not name:
        return code or "—"
    if not code or name.startswith(code):
        return name
    return f"{code} {name}" if lang == "en" else f"{code}级 {name}"


def common_level_name(level: int, lang: str) -> str:
    """One common level's name ("良好", "Good")."""
    tier = common_tier(level)
    return tier.name_en if lang == "en" else tier.name_zh


def common_level_words(level: int, lang: str, *, or_above: bool = False) -> str:
    """ "通用等级 良好" / "common level Good"; with ``or_above``, a condition: "… 及以上" / "… or above"."""
    name = common_level_name(level, lang)
    if lang == "en":
        return f"common level {name}" + (" or above" if or_above else "")
    return f"通用等级 {name}" + ("及以上" if or_above else "")


def tier_parts(
    code: str | None,
    name_zh: str | None,
    name_en: str | None,
    level: int | None,
    lang: str,
) -> tuple[str, str | None]:
    """The two halves of ``tier_pair`` (a page sets each on its own line when the pair must wrap)."""
    local = f"{_pick(LOCAL_TIER, lang)} {local_tier_name(code, name_zh, name_en, lang)}"
    return local, (common_level_words(level, lang) if level is not None else None)


def tier_pair(
    code: str | None,
    name_zh: str | None,
    name_en: str | None,
    level: int | None,
    lang: str,
) -> str:
    """The citizen's tier as every surface says it: "本市等级 A级（诚信） · 通用等级 良好" /
    "City tier A (trustworthy) · common level Good". Without a common level, the local tier alone."""
    local, common = tier_parts(code, name_zh, name_en, level, lang)
    return local if common is None else f"{local} · {common}"


class LocalTier(Protocol):
    """A scoring model's tier, as far as its words go (``scoring_model.Tier``)."""

    @property
    def code(self) -> str: ...
    @property
    def name_zh(self) -> str: ...
    @property
    def name_en(self) -> str: ...
    @property
    def common_tier(self) -> int: ...


def condition_words(level: int, local_tiers: Sequence[LocalTier], lang: str) -> str:
    """A "common level … or above" condition, with the city tiers it covers under today's model:
    "通用等级 良好及以上 · 即本市等级 A级（诚信）及以上" / "common level Good or above · city tier
    A (trustworthy) or above". ``local_tiers`` is the published model's table, best first."""
    words = common_level_words(level, lang, or_above=True)
    covered = [tier for tier in local_tiers if tier.common_tier >= level]
    if not covered:
        return words
    lowest = covered[-1]
    name = local_tier_name(lowest.code, lowest.name_zh, lowest.name_en, lang)
    if lang == "en":
        return f"{words} · city tier {name} or above"
    return f"{words} · 即本市等级 {name}及以上"
