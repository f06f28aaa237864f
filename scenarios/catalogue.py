"""The demo city's catalogue of benefit scenarios (信易+), generated from templates in natural Chinese.

Eight categories, each with its operators and venues and a few benefit templates; every template is
offered at every venue of its category, which yields a realistic catalogue of 200+ scenarios.
Deterministic: the same call gives the same catalogue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DISTRICTS = (
    ("hsg", "黄石港区", "Huangshigang"),
    ("xss", "西塞山区", "Xisaishan"),
    ("xl", "下陆区", "Xialu"),
    ("ts", "铁山区", "Tieshan"),
    ("dy", "大冶市", "Daye"),
    ("yx", "阳新县", "Yangxin"),
)


@dataclass(frozen=True)
class Category:
    code: str
    brand_zh: str  # the 信易+ brand of the category
    name_en: str
    operator_zh: str
    operator_en: str
    venue_zh: str  # venue name pattern; {d} is the district
    venue_en: str


CATEGORIES = (
    Category(
        "library",
        "信易阅",
        "Libraries",
        "市文化和旅游局",
        "Culture and Tourism Bureau",
        "{d}图书馆",
        "{d} Library",
    ),
    Category(
        "transport",
        "信易行",
        "Transport",
        "市公共交通集团",
        "Public Transport Group",
        "{d}公交枢纽",
        "{d} Bus Hub",
    ),
    Category(
        "rental",
        "信易租",
        "Rentals",
        "市共享出行服务公司",
        "Shared Mobility Company",
        "{d}共享服务点",
        "{d} Sharing Point",
    ),
    Category(
        "tourism",
        "信易游",
        "Tourism",
        # Scenic areas are run by the city's tourism group; the bureau runs the libraries. (One body
        # under two operator codes read as one operator listed twice in the admin's choices.)
        "市文旅集团",
        "City Tourism Group",
        "{d}景区",
        "{d} Scenic Area",
    ),
    Category(
        "healthcare",
        "信易医",
        "Healthcare",
        "市卫生健康委员会",
        "Health Commission",
        "{d}人民医院",
        "{d} People's Hospital",
    ),
    Category(
        "lodging",
        "信易住",
        "Lodging",
        "市酒店行业协会",
        "Hotel Association",
        "{d}诚信酒店",
        "{d} Trusted Hotel",
    ),
    Category(
        "parking",
        "信易停",
        "Parking",
        "市城市管理执法局",
        "Urban Management Bureau",
        "{d}公共停车场",
        "{d} Public Car Park",
    ),
    Category(
        "government",
        "信易批",
        "Government services",
        "市政务服务和大数据管理局",
        "Government Services Bureau",
        "{d}政务服务中心",
        "{d} Government Service Centre",
    ),
    Category(
        "sports",
        "信易健",
        "Sports",
        "市体育局",
        "Sports Bureau",
        "{d}全民健身中心",
        "{d} Fitness Centre",
    ),
)


@dataclass(frozen=True)
class Template:
    key: str
    name_zh: str
    name_en: str
    benefit_zh: str
    benefit_en: str
    min_common_tier: int
    per_day: int
    per_month: int | None = None
    adults_only: bool = False
    residents_only: bool = False
    # Offered to visitors from partner cities: only benefits a traveller would use whose rule reads
    # the common tier alone (a visitor has no local score, records, residence or known age here).
    visitors: bool = False


TEMPLATES: dict[str, tuple[Template, ...]] = {
    "library": (
        Template(
            "deposit-free",
            "免押金借阅",
            "Deposit-free borrowing",
            "免押金借阅图书，最多{n}册",
            "Borrow up to {n} books without a deposit",
            3,
            1,
            visitors=True,
        ),
        Template(
            "extended-loan",
            "延长借阅期",
            "Extended loans",
            "借阅期限由30天延长至60天",
            "Loan period extended from 30 to 60 days",
            3,
            1,
        ),
        Template(
            "fine-waiver",
            "逾期费减免",
            "Late-fee waiver",
            "首次逾期7日内免收逾期费",
            "First late return within 7 days: no late fee",
            4,
            1,
            2,
        ),
        Template(
            "study-room",
            "自习室优先预约",
            "Study-room priority",
            "优先预约自习室座位",
            "Priority booking of study-room seats",
            3,
            1,
            visitors=True,
        ),
    ),
    "transport": (
        Template(
            "fare-discount",
            "公交乘车优惠",
            "Bus fare discount",
            "公交乘车享受八折优惠",
            "20% off bus fares",
            4,
            6,
            None,
            False,
            True,
        ),
        Template(
            "ride-now-pay-later",
            "先乘车后付费",
            "Ride now, pay later",
            "余额不足时可先乘车、次月补缴",
            "Ride on an empty card and settle next month",
            3,
            4,
        ),
        Template(
            "bike-free",
            "公共自行车免押金",
            "Deposit-free public bikes",
            "免押金使用公共自行车，每次首小时免费",
            "Deposit-free public bikes, first hour free",
            3,
            4,
            visitors=True,
        ),
        Template(
            "taxi-priority",
            "出租车预约优先",
            "Taxi booking priority",
            "电召出租车优先派单",
            "Priority dispatch for booked taxis",
            4,
            2,
        ),
    ),
    "rental": (
        Template(
            "power-bank",
            "充电宝免押金",
            "Deposit-free power banks",
            "免押金租用充电宝，3小时内免费",
            "Power banks deposit-free, free for 3 hours",
            3,
            2,
            visitors=True,
        ),
        Template(
            "umbrella",
            "爱心雨伞免押金",
            "Deposit-free umbrellas",
            "免押金借用雨伞，48小时内归还免费",
            "Umbrellas deposit-free, free if returned within 48 hours",
            2,
            1,
            visitors=True,
        ),
        Template(
            "ebike",
            "电单车免押金",
            "Deposit-free e-bikes",
            "免押金租用电单车",
            "E-bikes without a deposit",
            3,
            3,
            None,
            True,
        ),
        Template(
            "appliance",
            "家电租赁免押金",
            "Deposit-free appliance rental",
            "家电租赁免收押金",
            "Appliance rental without a deposit",
            4,
            1,
            2,
            True,
            True,
        ),
        Template(
            "stroller",
            "婴儿推车免押金",
            "Deposit-free strollers",
            "商圈婴儿推车免押金借用",
            "Strollers at shopping centres without a deposit",
            2,
            1,
            visitors=True,
        ),
    ),
    "tourism": (
        Template(
            "ticket-discount",
            "景区门票优惠",
            "Ticket discount",
            "门票享受八折优惠",
            "20% off admission",
            3,
            1,
            visitors=True,
        ),
        Template(
            "fast-lane",
            "景区快速通道",
            "Fast lane",
            "节假日走诚信快速通道入园",
            "Trusted fast lane on public holidays",
            4,
            1,
        ),
        Template(
            "free-entry",
            "景区免票入园",
            "Free admission",
            "每月一次免票入园",
            "Free admission once a month",
            5,
            1,
            1,
        ),
        Template(
            "guide-free",
            "免费讲解服务",
            "Free guided tour",
            "免费提供景区讲解服务",
            "A free guided tour of the site",
            3,
            1,
            visitors=True,
        ),
    ),
    "healthcare": (
        Template(
            "pay-later",
            "先诊疗后付费",
            "Treat now, pay later",
            "门诊及住院先诊疗后付费",
            "Treatment first, payment after",
            3,
            2,
            None,
            True,
            True,
        ),
        Template(
            "no-deposit",
            "住院免押金",
            "Deposit-free admission",
            "住院免交押金",
            "Hospital admission without a deposit",
            4,
            1,
            2,
            True,
            True,
        ),
        Template(
            "priority-appointment",
            "专家号优先预约",
            "Priority specialist booking",
            "优先预约专家门诊号源",
            "Priority booking of specialist appointments",
            4,
            1,
        ),
        Template(
            "checkup-discount",
            "体检优惠",
            "Health check discount",
            "健康体检套餐享受九折",
            "10% off health-check packages",
            3,
            1,
            1,
            True,
        ),
    ),
    "lodging": (
        Template(
            "no-deposit",
            "免押金入住",
            "Deposit-free check-in",
            "入住免交押金",
            "Check in without a deposit",
            3,
            1,
            None,
            True,
        ),
        Template(
            "late-checkout",
            "延迟退房",
            "Late check-out",
            "免费延迟退房至14:00",
            "Free late check-out until 14:00",
            3,
            1,
            visitors=True,
        ),
        Template(
            "room-discount",
            "诚信房价优惠",
            "Trusted-guest rate",
            "房费享受九折优惠",
            "10% off the room rate",
            4,
            1,
            None,
            True,
        ),
        Template(
            "breakfast",
            "免费早餐",
            "Free breakfast",
            "入住期间赠送早餐一份",
            "A free breakfast during the stay",
            4,
            1,
        ),
    ),
    "parking": (
        Template(
            "park-now-pay-later",
            "先停车后付费",
            "Park now, pay later",
            "离场无需排队缴费，48小时内线上补缴",
            "Leave without paying at the gate; pay online within 48 hours",
            3,
            4,
        ),
        Template(
            "first-hour-free",
            "首小时免费",
            "First hour free",
            "每日首次停车首小时免费",
            "First hour free, once a day",
            4,
            1,
            None,
            False,
            True,
        ),
        Template(
            "monthly-pass",
            "月卡优惠",
            "Monthly pass discount",
            "停车月卡享受九折优惠",
            "10% off monthly parking passes",
            3,
            1,
            1,
            True,
        ),
    ),
    "government": (
        Template(
            "green-channel",
            "绿色通道",
            "Green channel",
            "政务服务窗口优先办理",
            "Priority service at government counters",
            4,
            1,
        ),
        Template(
            "commitment",
            "容缺受理",
            "Accept now, documents later",
            "次要材料缺失时先行受理、限期补正",
            "Applications accepted while minor documents follow later",
            3,
            1,
            None,
            True,
            True,
        ),
        Template(
            "fee-waiver",
            "证照工本费减免",
            "Certificate fee waiver",
            "证照补办工本费减免",
            "Replacement certificate fees waived",
            4,
            1,
            2,
            True,
            True,
        ),
        Template(
            "express-approval",
            "审批提速",
            "Faster approval",
            "承诺办结时限缩短一半",
            "Half the promised processing time",
            4,
            1,
            None,
            True,
        ),
    ),
    "sports": (
        Template(
            "gym-discount",
            "健身优惠",
            "Fitness discount",
            "健身场馆单次入场八折",
            "20% off single gym visits",
            3,
            1,
        ),
        Template(
            "court-priority",
            "场地优先预约",
            "Court booking priority",
            "羽毛球、篮球场地优先预约",
            "Priority booking of badminton and basketball courts",
            4,
            1,
        ),
        Template(
            "swim-free",
            "游泳馆免押金",
            "Deposit-free swimming",
            "游泳馆储物柜及手环免押金",
            "Swimming-pool lockers and wristbands without a deposit",
            3,
            1,
        ),
    ),
}


def rule_of(template: Template) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"min_common_tier": template.min_common_tier}]
    if template.adults_only:
        conditions.append({"min_age": 18})
    if template.residents_only:
        conditions.append({"resident": True})
    if template.min_common_tier >= 4:
        conditions.append({"no_direct_tier_record": True})
    return conditions[0] if len(conditions) == 1 else {"all": conditions}


def venues() -> Iterator[dict[str, str]]:
    for category in CATEGORIES:
        for code, district_zh, district_en in DISTRICTS:
            yield {
                "code": f"{category.code}-{code}",
                "category": category.code,
                "operator": category.operator_zh,
                "name_zh": category.venue_zh.format(d=district_zh),
                "name_en": category.venue_en.format(d=district_en),
            }


def scenarios() -> Iterator[dict[str, Any]]:
    """Every template at every venue of its category: one scenario per (venue, benefit)."""
    books = (20, 30, 40)
    for category in CATEGORIES:
        for index, (code, district_zh, district_en) in enumerate(DISTRICTS):
            venue_zh = category.venue_zh.format(d=district_zh)
            venue_en = category.venue_en.format(d=district_en)
            for template in TEMPLATES[category.code]:
                n = books[index % len(books)]
                yield {
                    "code": f"{category.code}-{code}-{template.key}",
                    "category": category.code,
                    "operator_zh": category.operator_zh,
                    "operator_en": category.operator_en,
                    "venue": f"{category.code}-{code}",
                    "name_zh": f"{category.brand_zh}·{venue_zh}{template.name_zh}",
                    "name_en": f"{venue_en}: {template.name_en}",
                    "benefit_zh": template.benefit_zh.format(n=n),
                    "benefit_en": template.benefit_en.format(n=n),
                    "eligibility": rule_of(template),
                    "quota_per_day": template.per_day,
                    "quota_per_month": template.per_month,
                    "open_to_visitors": template.visitors,
                }
