"""A deterministic synthetic city: valid ID numbers, sources, and a realistic mix of records.

Used by ``make demo``, the benchmarks and the tests. The same seed gives the same city byte for byte.
A small share of rows is deliberately bad (wrong check digit, future date, unknown item…) so that the
ingestion report has something to show.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from citycredit.core.idnumber import make_id_number
from points_engine.ingest import FIELDS

# Huangshi's districts and counties (黄石港区, 西塞山区, 下陆区, 铁山区, 阳新县, 大冶市).
REGIONS = ("420202", "420203", "420204", "420205", "420222", "420281")


@dataclass(frozen=True)
class SourceSpec:
    code: str
    name_zh: str
    name_en: str
    items: tuple[tuple[str, float], ...]  # item code, relative frequency


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        "volunteer", "市志愿服务联合会", "Volunteer Federation", (("VOLUNTEER_SERVICE", 30),)
    ),
    SourceSpec("blood", "市中心血站", "Central Blood Station", (("BLOOD_DONATION", 8),)),
    SourceSpec("charity", "市慈善总会", "Charity Federation", (("CHARITY_DONATION", 10),)),
    SourceSpec(
        "hr_awards",
        "市人力资源和社会保障局",
        "Human Resources and Social Security Bureau",
        (("ADMIN_AWARD_CITY", 3), ("ADMIN_AWARD_PROVINCE", 1)),
    ),
    SourceSpec("civil_affairs", "市民政局", "Civil Affairs Bureau", (("BRAVE_ACT", 0.5),)),
    SourceSpec("water", "市自来水公司", "Water Company", (("UTILITY_ARREARS", 7),)),
    SourceSpec("power", "国网黄石供电公司", "Power Supply Company", (("UTILITY_ARREARS", 5),)),
    SourceSpec("gas", "市燃气公司", "Gas Company", (("UTILITY_ARREARS", 3),)),
    SourceSpec("tax", "国家税务总局黄石市税务局", "Tax Bureau", (("TAX_ARREARS", 2),)),
    SourceSpec(
        "housing_fund", "市住房公积金中心", "Housing Provident Fund Centre", (("OVERDUE_LOAN", 4),)
    ),
    SourceSpec(
        "traffic_police",
        "市公安局交通警察支队",
        "Traffic Police",
        (("TRAFFIC_PENALTY", 20), ("DRUNK_DRIVING", 1)),
    ),
    SourceSpec("market", "市市场监督管理局", "Market Regulation Bureau", (("ADMIN_PENALTY", 5),)),
    SourceSpec("court", "市中级人民法院", "Intermediate People's Court", (("COURT_DISHONEST", 1),)),
)

_DOC_PREFIX = {
    "volunteer": "黄志联记",
    "blood": "黄血证",
    "charity": "黄慈捐",
    "hr_awards": "黄人社奖",
    "civil_affairs": "黄民确",
    "water": "黄水催",
    "power": "黄电催",
    "gas": "黄燃催",
    "tax": "黄税强",
    "housing_fund": "黄公积金",
    "traffic_police": "黄公交决",
    "market": "黄市监罚",
    "court": "（2025）鄂02执",
}
FIELDNAMES = FIELDS


@dataclass(frozen=True)
class CityPlan:
    citizens: int
    records_per_citizen: float = 6.0
    seed: int = 20261123
    today: dt.date = dt.date(2026, 11, 23)
    bad_row_share: float = 0.004


def citizen_ids(plan: CityPlan) -> list[str]:
    """The city's ID numbers, unique and valid, in a fixed order."""
    rng = random.Random(plan.seed)
    seen: set[str] = set()
    out: list[str] = []
    start = dt.date(1946, 1, 1).toordinal()
    # Fixed, not relative to today, so a seed names the same people every day (docs quote their IDs).
    end = dt.date(2006, 12, 31).toordinal()
    while len(out) < plan.citizens:
        number = make_id_number(
            rng.choice(REGIONS), dt.date.fromordinal(rng.randint(start, end)), rng.randint(0, 999)
        )
        if number not in seen:
            seen.add(number)
            out.append(number)
    return out


def _weighted_items() -> tuple[list[tuple[str, str]], list[float]]:
    pairs, weights = [], []
    for source in SOURCES:
        for item, weight in source.items:
            pairs.append((source.code, item))
            weights.append(weight)
    return pairs, weights


def generate_rows(plan: CityPlan) -> Iterator[dict[str, str]]:
    """Yield record rows (as a source would send them), with a few bad ones mixed in."""
    rng = random.Random(plan.seed + 1)
    ids = citizen_ids(plan)
    pairs, weights = _weighted_items()
    horizon = 4 * 365
    serial = 0
    for number in ids:
        # A skewed count: most people have a few records, some have many.
        count = min(
            int(rng.expovariate(1 / plan.records_per_citizen)), int(plan.records_per_citizen * 8)
        )
        for _ in range(count):
            serial += 1
            source, item = rng.choices(pairs, weights)[0]
            occurred = plan.today - dt.timedelta(days=rng.randint(1, horizon))
            rows = [_row(rng, serial, source, item, number, occurred, plan.today)]
            if item == "DRUNK_DRIVING" and rng.random() < 0.7:
                # The same act also fined as a traffic offence: the overlap rule counts it once.
                serial += 1
                rows.append(
                    _row(rng, serial, source, "TRAFFIC_PENALTY", number, occurred, plan.today)
                )
            for row in rows:
                if rng.random() < plan.bad_row_share:
                    _spoil(rng, row, plan.today)
                yield row


def _row(
    rng: random.Random,
    serial: int,
    source: str,
    item: str,
    number: str,
    occurred: dt.date,
    today: dt.date,
) -> dict[str, str]:
    reported = min(occurred + dt.timedelta(days=rng.randint(0, 10)), today)
    status = "active"
    roll = rng.random()
    if item in ("COURT_DISHONEST", "ADMIN_PENALTY", "TAX_ARREARS") and roll < 0.15:
        status = "repaired"
    elif roll < 0.01:
        status = "revoked"
    return {
        "source": source,
        "source_record_id": f"{source}-{serial:09d}",
        "id_number": number,
        "item_code": item,
        "document_no": f"{_DOC_PREFIX[source]}〔{occurred.year}〕{serial % 100000}号",
        "occurred_on": occurred.isoformat(),
        "reported_on": reported.isoformat(),
        "status": status,
    }


def _spoil(rng: random.Random, row: dict[str, str], today: dt.date) -> None:
    kind = rng.randrange(6)
    if kind == 0:
        body = row["id_number"][:17]
        wrong = "0" if row["id_number"][17] != "0" else "1"
        row["id_number"] = body + wrong
    elif kind == 1:
        # Far enough ahead to stay in the future when the file is ingested again weeks later (the
        # demo loads its history a month back, and the README's tour ingests the file again today).
        row["occurred_on"] = (today + dt.timedelta(days=90)).isoformat()
    elif kind == 2:
        row["item_code"] = "JAYWALKING"  # not in any catalogue: must be refused
    elif kind == 3:
        row["document_no"] = ""
    elif kind == 4:
        row["source"] = "unknown_department"
    else:
        row["reported_on"] = "2025-02-30"


def write_csv(path: Path, rows: Iterator[dict[str, str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDNAMES)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            written += 1
    return written
