"""Small hand-built cases for every scoring rule, run through the Python rules (unit) and SQL (integration)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from points_engine.scoring_model import ScoringModel, parse_model

AS_OF = dt.date(2026, 6, 30)

ITEMISED = """
name: test-itemised
kind: itemised
title: {zh: 测试模型, en: Test model}
base_score: 1000
score_range: {min: 0, max: 1200}
validity:
  - {max_abs_points: 10, days: 365}
  - {max_abs_points: 50, days: 730}
dimensions:
  - {code: good, name: {zh: 好, en: Good}, cap: {max: 20}}
  - {code: bad, name: {zh: 差, en: Bad}, cap: {min: -50}}
  - {code: court, name: {zh: 法院, en: Court}}
tiers:
  - {code: AA, name: {zh: AA, en: AA}, min_score: 1010, common_tier: 4}
  - {code: A, name: {zh: A, en: A}, min_score: 1000, common_tier: 3}
  - {code: B, name: {zh: B, en: B}, min_score: 950, common_tier: 2}
  - {code: C, name: {zh: C, en: C}, min_score: 900, common_tier: 1}
  - {code: D, name: {zh: D, en: D}, min_score: 0, common_tier: 1}
items:
  - {code: AWARD, name: {zh: 奖, en: Award}, dimension: good, catalogue_category: 行政奖励信息,
     legal_basis: 测试依据第一条, points: 10, yearly_cap: 15}
  - {code: FINE, name: {zh: 罚, en: Fine}, dimension: bad, catalogue_category: 行政处罚信息,
     legal_basis: 测试依据第二条, points: -5, overlap_group: act, repeat_multiplier: 2}
  - {code: BIG_FINE, name: {zh: 重罚, en: Big fine}, dimension: bad, catalogue_category: 行政处罚信息,
     legal_basis: 测试依据第三条, points: -20, overlap_group: act}
  - {code: PENALTY, name: {zh: 处罚, en: Penalty}, dimension: bad, catalogue_category: 行政处罚信息,
     legal_basis: 测试依据第四条, points: -30, repeat_multiplier: 3}
  - {code: DEBTOR, name: {zh: 失信, en: Debtor}, dimension: court, catalogue_category: 司法信息,
     legal_basis: 测试依据第五条, points: -100, validity_days: 1000, direct_tier: D, repaired_points: -30}
  - {code: WATCH, name: {zh: 关注, en: Watch list}, dimension: court, catalogue_category: 司法信息,
     legal_basis: 测试依据第八条, points: -100, validity_days: 365, direct_tier: B}
"""

WEIGHTED = """
name: test-weighted
kind: weighted
title: {zh: 测试加权模型, en: Test weighted model}
score_range: {min: 0, max: 1000}
dimension_max: 100
validity: [{max_abs_points: 100, days: 365}]
dimensions:
  - {code: a, name: {zh: 甲, en: A}, base: 51, weight: 45}
  - {code: b, name: {zh: 乙, en: B}, base: 80, weight: 55}
tiers:
  - {code: HIGH, name: {zh: 高, en: High}, min_score: 670, common_tier: 4}
  - {code: MID, name: {zh: 中, en: Mid}, min_score: 600, common_tier: 3}
  - {code: LOW, name: {zh: 低, en: Low}, min_score: 0, common_tier: 2}
items:
  - {code: PLUS_THREE, name: {zh: 加三, en: Plus three}, dimension: a, catalogue_category: 志愿服务信息,
     legal_basis: 测试依据第六条, points: 3}
  - {code: MINUS_SIXTY, name: {zh: 减六十, en: Minus sixty}, dimension: a, catalogue_category: 行政处罚信息,
     legal_basis: 测试依据第七条, points: -60}
"""

MODELS = {"itemised": ITEMISED, "weighted": WEIGHTED}


def model(kind: str) -> ScoringModel:
    return parse_model(MODELS[kind], f"test-{kind}.yaml")


@dataclass(frozen=True)
class Rec:
    item: str
    occurred: str
    status: str = "active"

    @property
    def occurred_on(self) -> dt.date:
        return dt.date.fromisoformat(self.occurred)


@dataclass(frozen=True)
class Case:
    id: str
    records: tuple[Rec, ...]
    score: int
    tier: str
    model: str = "itemised"
    direct: bool = False
    # record index -> (points counted, reasons)
    expect: dict[int, tuple[int, list[str]]] = field(default_factory=dict)


CASES = (
    Case("no records: base score", (), 1000, "A"),
    Case(
        "yearly cap: second award of the year counts only up to the cap",
        (Rec("AWARD", "2026-01-05"), Rec("AWARD", "2026-02-05")),
        1015,
        "AA",
        expect={0: (10, []), 1: (5, ["capped"])},
    ),
    Case(
        "yearly cap is per calendar year; the dimension cap bounds the total",
        (Rec("AWARD", "2025-08-01"), Rec("AWARD", "2026-01-01"), Rec("AWARD", "2026-03-01")),
        1020,
        "AA",
        expect={0: (10, []), 1: (10, []), 2: (5, ["capped"])},
    ),
    Case(
        "overlap: one act matching two items counts once, at the largest deduction",
        (Rec("FINE", "2026-03-01"), Rec("BIG_FINE", "2026-03-01")),
        980,
        "B",
        expect={0: (0, ["overlapped"]), 1: (-20, [])},
    ),
    Case(
        "overlap only joins records of the same day",
        (Rec("FINE", "2026-03-01"), Rec("BIG_FINE", "2026-03-02")),
        975,
        "B",
    ),
    Case(
        "repeat within the validity window doubles",
        (Rec("FINE", "2026-01-10"), Rec("FINE", "2026-03-10")),
        985,
        "B",
        expect={0: (-5, []), 1: (-10, ["repeat_x2"])},
    ),
    Case(
        "a repeat stays doubled after the first record expires",
        (Rec("FINE", "2025-05-01"), Rec("FINE", "2025-09-01")),
        990,
        "B",
        expect={0: (0, ["expired"]), 1: (-10, ["repeat_x2"])},
    ),
    Case(
        "no repeat once the previous record's window has passed",
        (Rec("FINE", "2024-01-01"), Rec("FINE", "2025-08-01")),
        995,
        "B",
        expect={0: (0, ["expired"]), 1: (-5, [])},
    ),
    Case(
        "the dimension floor bounds deductions (repeats ×3 included)",
        (Rec("PENALTY", "2026-01-01"), Rec("PENALTY", "2026-02-01"), Rec("PENALTY", "2026-03-01")),
        950,
        "B",
        expect={1: (-90, ["repeat_x3"]), 2: (-90, ["repeat_x3"])},
    ),
    Case(
        "a direct tier overrides the score",
        (Rec("DEBTOR", "2026-01-01"), Rec("AWARD", "2026-02-01")),
        910,
        "D",
        direct=True,
        expect={0: (-100, ["direct_tier"]), 1: (10, [])},
    ),
    Case(
        "a direct tier caps the tier but never lifts it above the score's",
        (Rec("WATCH", "2026-01-01"),),
        900,
        "C",
        direct=True,
    ),
    Case(
        "repair lifts the direct tier and leaves a fixed deduction",
        (Rec("DEBTOR", "2026-01-01", "repaired"),),
        970,
        "B",
        expect={0: (-30, ["repaired"])},
    ),
    Case(
        "a repaired record without repaired points stops counting",
        (Rec("FINE", "2026-01-01", "repaired"),),
        1000,
        "A",
        expect={0: (0, ["repaired"])},
    ),
    Case(
        "a deduction under objection is suspended",
        (Rec("DEBTOR", "2026-01-01", "under_objection"),),
        1000,
        "A",
        expect={0: (0, ["under_objection"])},
    ),
    Case(
        "an award under objection keeps counting",
        (Rec("AWARD", "2026-01-01", "under_objection"),),
        1010,
        "AA",
        expect={0: (10, ["under_objection_counted"])},
    ),
    Case(
        "revoked records, and archived (expired) ones past their date, do not count",
        (Rec("BIG_FINE", "2026-01-01", "revoked"), Rec("AWARD", "2025-01-01", "expired")),
        1000,
        "A",
        expect={0: (0, ["revoked"]), 1: (0, ["expired"])},
    ),
    Case(
        "a record past its validity does not count even before the expiry job runs",
        (Rec("AWARD", "2025-06-30"),),
        1000,
        "A",
        expect={0: (0, ["expired"])},
    ),
    Case(
        "records of items the model does not know do not count",
        (Rec("JAYWALKING", "2026-01-01"),),
        1000,
        "A",
        expect={0: (0, ["unknown_item"])},
    ),
    Case("weighted: bases only", (), 670, "HIGH", model="weighted"),  # 669.5 rounds half up
    Case(
        "weighted: a dimension moves by its weight",
        (Rec("PLUS_THREE", "2026-01-01"),),
        683,
        "HIGH",
        model="weighted",
    ),
    Case(
        "weighted: a dimension is bounded at 0",
        (Rec("MINUS_SIXTY", "2026-01-01"),),
        440,
        "LOW",
        model="weighted",
    ),
)
