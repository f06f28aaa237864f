"""Every scoring rule on small hand-built cases, through the reference Python rules."""

from __future__ import annotations

import pytest

from points_engine.rules import RecordFact, evaluate
from tests.rule_cases import AS_OF, CASES, Case, model


def facts(case: Case) -> list[RecordFact]:
    return [RecordFact(i + 1, r.item, r.status, r.occurred_on) for i, r in enumerate(case.records)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_case(case: Case) -> None:
    result = evaluate(model(case.model), facts(case), AS_OF)
    assert (result.score, result.tier.code, result.direct_tier) == (
        case.score,
        case.tier,
        case.direct,
    )
    by_id = {c.record_id: c for c in result.contributions}
    for index, (points, reasons) in case.expect.items():
        con = by_id[index + 1]
        assert (con.points, con.reasons) == (points, reasons), f"record {index}"


def test_contributions_add_up_to_the_itemised_score_without_caps() -> None:
    case = next(c for c in CASES if c.id.startswith("repeat within"))
    result = evaluate(model("itemised"), facts(case), AS_OF)
    assert 1000 + sum(c.points for c in result.contributions) == result.score


def test_record_order_in_input_does_not_change_the_result() -> None:
    case = next(c for c in CASES if c.id.startswith("yearly cap: second"))
    forward = evaluate(model("itemised"), facts(case), AS_OF)
    backward = evaluate(model("itemised"), list(reversed(facts(case))), AS_OF)
    assert forward.score == backward.score
    assert [c.points for c in forward.contributions] == [c.points for c in backward.contributions]
