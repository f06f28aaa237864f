"""The common tier scale that every city's local tiers map onto (used for ten-city mutual recognition).

A city's scoring model maps each local tier to one of these levels; partner cities exchange only the
common level (with the mapping-table version), never scores or records.
"""

from __future__ import annotations

from dataclasses import dataclass


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
