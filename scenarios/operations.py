"""Writes of scenarios (the minimal set issue 3 needs; the operators' workflow comes with issue 4)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from scenarios.models import Scenario


class UnknownScenario(LookupError):
    def __init__(self, code: str):
        super().__init__(f"no published scenario {code!r}")
        self.code = code


def upsert_scenario(session: Session, **fields: object) -> Scenario:
    scenario = session.scalar(select(Scenario).where(Scenario.code == fields["code"]))
    if scenario is None:
        scenario = Scenario(**fields)
        session.add(scenario)
    else:
        for name, value in fields.items():
            setattr(scenario, name, value)
    session.flush()
    return scenario


def published_scenario(session: Session, code: str) -> Scenario:
    scenario = session.scalar(
        select(Scenario).where(Scenario.code == code, Scenario.status == "published")
    )
    if scenario is None:
        raise UnknownScenario(code)
    return scenario


DEMO_SCENARIOS = (
    dict(
        code="library-deposit-free",
        category="library",
        name_zh="信易阅·免押金借书",
        name_en="Library: deposit-free borrowing",
        benefit_zh="免押金借阅图书最多40册",
        benefit_en="Borrow up to 40 books without a deposit",
        min_common_tier=3,
        daily_quota_per_citizen=1,
    ),
    dict(
        code="bus-fare-discount",
        category="transport",
        name_zh="信易行·公交八折",
        name_en="Bus: 20% fare discount",
        benefit_zh="乘坐公交享受八折优惠",
        benefit_en="20% off the bus fare",
        min_common_tier=4,
        daily_quota_per_citizen=6,
    ),
    dict(
        code="power-bank-free",
        category="rental",
        name_zh="信易租·充电宝免费三小时",
        name_en="Power bank: three hours free",
        benefit_zh="免押金、免费租用充电宝三小时",
        benefit_en="Rent a power bank deposit-free, three hours free",
        min_common_tier=3,
        daily_quota_per_citizen=2,
    ),
)
