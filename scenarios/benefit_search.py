"""Finding a benefit among a citizen's: search words, a category, a district ("near me"), a condition.

Plain functions over ``benefits.my_benefits``' list (no database, no web framework): the citizen page
parses the query string into a ``BenefitQuery`` and renders the ``BenefitResults``. What the citizen
qualifies for comes first; benefits that share one condition are grouped under it, so the condition
(and, for what is out of reach, why) is said once.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from scenarios.benefits import BenefitView
from scenarios.catalogue import DISTRICTS
from scenarios.eligibility import Reason
from scenarios.models import CATEGORIES

MAX_QUERY = 100  # characters of search words; a longer query is refused with a message
# Above this many matches each condition shows a few benefits and a link to all of its own, so the
# unfiltered page stays a few screens long (it was 45 screens).
FULL_LIST = 40
PREVIEW = 5

DISTRICT_NAMES = {code: (name_zh, name_en) for code, name_zh, name_en in DISTRICTS}
_CATEGORY_ORDER = {code: index for index, code in enumerate(CATEGORIES)}
_DISTRICT_ORDER = {code: index for index, (code, _, _) in enumerate(DISTRICTS)}


class QueryError(ValueError):
    """A query the page cannot search with, said in both languages."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en


@dataclass(frozen=True)
class BenefitQuery:
    text: str = ""
    category: str | None = None
    district: str | None = None
    condition: str | None = None  # a ``condition_key``

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(normalise(self.text).split())

    @property
    def filtered(self) -> bool:
        return bool(self.words or self.category or self.district or self.condition)


def normalise(text: str) -> str:
    """Full-width letters and digits as half-width, case folded: "ＬＩＢ" finds "Library"."""
    return unicodedata.normalize("NFKC", text).casefold()


def parse_query(
    text: str, category: str, district: str, condition: str, known: Iterable[BenefitView]
) -> BenefitQuery:
    """The query string's values checked against what exists; ``QueryError`` says what is wrong."""
    text = text.strip()
    if len(text) > MAX_QUERY:
        raise QueryError(
            f"搜索词太长（{len(text)} 个字），请缩短到 {MAX_QUERY} 个字以内。",
            f"The search is too long ({len(text)} characters); use at most {MAX_QUERY}.",
        )
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise QueryError(
            "搜索词含有无法识别的字符（如控制字符），请只输入文字。",
            "The search contains characters that cannot be searched (such as control "
            "characters); type words only.",
        )
    views = list(known)
    if category and category not in {b.category for b in views}:
        raise QueryError("没有这个权益类别。", "There is no such category of benefits.")
    if district and district not in DISTRICT_NAMES:
        raise QueryError("没有这个区县。", "There is no such district.")
    if condition and condition not in {condition_key(b) for b in views}:
        raise QueryError(
            "没有这个条件的权益（可能已更新）。",
            "No benefit has this condition (it may have changed).",
        )
    return BenefitQuery(text, category or None, district or None, condition or None)


def condition_key(benefit: BenefitView) -> str:
    """A short stable name for a benefit's condition, for links that show one condition's list."""
    described = f"{benefit.requirement_zh}\n{benefit.requirement_en}".encode()
    return hashlib.blake2s(described, digest_size=4).hexdigest()


def districts_of(benefit: BenefitView) -> set[str]:
    return {v.district for v in benefit.venues if v.district is not None}


def _haystack(benefit: BenefitView) -> str:
    """What the search words are looked for in: name, benefit, venues, category, district, operator."""
    parts = [
        benefit.name_zh,
        benefit.name_en,
        benefit.benefit_zh,
        benefit.benefit_en,
        benefit.category,
        benefit.category_zh,
        benefit.category_en,
        benefit.operator_zh,
        benefit.operator_en,
    ]
    for venue in benefit.venues:
        parts += [venue.name_zh, venue.name_en, venue.address_zh]
    for code in districts_of(benefit):
        parts += DISTRICT_NAMES[code]
    return normalise("\n".join(parts))


def matches(benefit: BenefitView, query: BenefitQuery, *, facet: str | None = None) -> bool:
    """Whether ``benefit`` answers ``query``; counting a ``facet`` leaves out that facet and the
    condition, as the facet's links do."""
    if facet != "category" and query.category and benefit.category != query.category:
        return False
    if facet != "district" and query.district and query.district not in districts_of(benefit):
        return False
    if facet is None and query.condition and condition_key(benefit) != query.condition:
        return False
    words = query.words
    if words:
        haystack = _haystack(benefit)
        return all(word in haystack for word in words)
    return True


@dataclass
class ConditionGroup:
    """Benefits that share one condition: the condition, and for what is out of reach, why."""

    key: str
    requirement_zh: str
    requirement_en: str
    needed_tier: int | None
    eligible: bool
    unmet: list[Reason]
    total: int  # matching benefits under this condition
    shown: list[BenefitView] = field(default_factory=list)

    @property
    def more(self) -> int:
        return self.total - len(self.shown)


@dataclass
class BenefitResults:
    query: BenefitQuery
    matching: int
    eligible: list[ConditionGroup]  # what the citizen qualifies for
    others: list[ConditionGroup]  # the rest, shown folded
    categories: list[tuple[str, int]]  # (code, matches in it), the selected one even with none
    districts: list[tuple[str, int]]
    previewed: bool  # whether groups show only their first few benefits

    @property
    def eligible_count(self) -> int:
        return sum(g.total for g in self.eligible)

    @property
    def other_count(self) -> int:
        return sum(g.total for g in self.others)


def _category_rank(benefit: BenefitView) -> tuple[int, str]:
    return (_CATEGORY_ORDER.get(benefit.category, len(_CATEGORY_ORDER)), benefit.category)


def _place_rank(benefit: BenefitView) -> int:
    return min((_DISTRICT_ORDER[d] for d in districts_of(benefit)), default=len(_DISTRICT_ORDER))


def _listing_order(benefit: BenefitView) -> tuple[tuple[int, str], int, str]:
    """By category (the city's order), then district (the city's order), then code."""
    return (_category_rank(benefit), _place_rank(benefit), benefit.code)


def _interleaved(benefits: list[BenefitView]) -> list[BenefitView]:
    """One of each category, then the second of each…: a preview that shows the range."""
    seen: dict[str, int] = {}
    ranked = []
    for benefit in benefits:
        index = seen.get(benefit.category, 0)
        seen[benefit.category] = index + 1
        ranked.append((index, _listing_order(benefit), benefit))
    return [benefit for *_, benefit in sorted(ranked, key=lambda r: r[:2])]


def find_benefits(listed: list[BenefitView], query: BenefitQuery) -> BenefitResults:
    """The benefits answering ``query``, qualifying first, grouped by condition, with facet counts."""
    found = [b for b in listed if matches(b, query)]
    previewed = len(found) > FULL_LIST and query.condition is None
    groups: dict[tuple[bool, str], ConditionGroup] = {}
    members: dict[tuple[bool, str], list[BenefitView]] = {}
    for benefit in sorted(found, key=_listing_order):
        key = (benefit.eligible, condition_key(benefit))
        if key not in groups:
            groups[key] = ConditionGroup(
                key=key[1],
                requirement_zh=benefit.requirement_zh,
                requirement_en=benefit.requirement_en,
                needed_tier=benefit.needed_tier,
                eligible=benefit.eligible,
                unmet=list(benefit.unmet),
                total=0,
            )
            members[key] = []
        groups[key].total += 1
        members[key].append(benefit)
    for key, group in groups.items():
        group.shown = _interleaved(members[key])[:PREVIEW] if previewed else members[key]
    # The easiest condition first: what is nearest to reach leads the folded rest too.
    ordered = sorted(
        groups.values(), key=lambda g: (g.needed_tier or 0, -g.total, g.requirement_zh)
    )

    def counted(facet: str, value_of: str) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for benefit in listed:
            if matches(benefit, query, facet=facet):
                values = {benefit.category} if facet == "category" else districts_of(benefit)
                for value in values:
                    counts[value] = counts.get(value, 0) + 1
        if value_of:
            counts.setdefault(value_of, 0)
        order = _CATEGORY_ORDER if facet == "category" else _DISTRICT_ORDER
        return sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))

    return BenefitResults(
        query=query,
        matching=len(found),
        eligible=[g for g in ordered if g.eligible],
        others=[g for g in ordered if not g.eligible],
        categories=counted("category", query.category or ""),
        districts=counted("district", query.district or ""),
        previewed=previewed,
    )
