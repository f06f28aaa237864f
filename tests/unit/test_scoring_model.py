"""Model files: both reference models load; a bad file is refused with every problem and its line."""

from __future__ import annotations

from importlib import resources

import pytest

from points_engine.scoring_model import ModelFileError, parse_model
from tests.rule_cases import ITEMISED

REFERENCE = resources.files("points_engine") / "models" / "reference"


@pytest.mark.parametrize("filename", ["itemised-base1000.yaml", "weighted-dimensions.yaml"])
def test_reference_models_load_and_every_item_names_its_legal_basis(filename: str) -> None:
    model = parse_model((REFERENCE / filename).read_text("utf-8"), filename)
    assert len(model.items) >= 10
    assert all(item.legal_basis and item.catalogue_category for item in model.items.values())


def test_reference_models_express_the_required_rules() -> None:
    model = parse_model((REFERENCE / "itemised-base1000.yaml").read_text("utf-8"))
    items = model.items.values()
    assert any(i.yearly_cap for i in items)
    assert any(i.overlap_group for i in items)
    assert any(i.repeat_multiplier for i in items)
    assert model.items["COURT_DISHONEST"].direct_tier == "D"
    # Validity by size: small deductions one year, larger two.
    assert model.items["TRAFFIC_PENALTY"].validity_days == 365
    assert model.items["ADMIN_PENALTY"].validity_days == 730


def problems(text: str) -> list[str]:
    with pytest.raises(ModelFileError) as info:
        parse_model(text, "bad.yaml")
    return [str(p) for p in info.value.problems]


def test_missing_legal_basis_is_reported_on_its_items_line() -> None:
    text = ITEMISED.replace("legal_basis: 测试依据第三条, ", "")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "code: BIG_FINE" in row)
    assert problems(text) == [f"line {line}: items.2.legal_basis: Missing data for required field."]


def test_wrong_types_and_duplicate_keys_are_each_reported_with_lines() -> None:
    text = ITEMISED.replace("base_score: 1000", "base_score: lots\nbase_score: 900")
    found = problems(text)
    # YAML keeps the last value (valid here), but the duplicate is still refused.
    assert found == ["line 6: base_score: duplicate key"]
    found = problems(ITEMISED.replace("base_score: 1000", "base_score: lots"))
    assert found == ["line 5: base_score: Not a valid integer."]


def test_references_to_unknown_dimensions_and_tiers_are_refused() -> None:
    text = ITEMISED.replace("dimension: court", "dimension: courts").replace(
        "direct_tier: D", "direct_tier: Z"
    )
    found = problems(text)
    assert any("items.4.dimension: unknown dimension 'courts'" in p for p in found)
    assert any("items.4.direct_tier: unknown tier 'Z'" in p for p in found)


def test_weights_must_sum_to_100() -> None:
    from tests.rule_cases import WEIGHTED

    found = problems(WEIGHTED.replace("weight: 55", "weight: 50"))
    assert any("weights must sum to 100, they sum to 95" in p for p in found)


def test_tiers_must_be_best_first() -> None:
    found = problems(ITEMISED.replace("min_score: 950", "min_score: 1005"))
    assert any("tiers are listed best first" in p for p in found)


def test_broken_yaml_names_its_line() -> None:
    found = problems("name: x\nkind: [itemised\n")
    assert len(found) == 1 and found[0].startswith("line 3: (top level): not valid YAML/JSON")
