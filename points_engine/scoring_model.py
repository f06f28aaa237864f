"""Scoring models as data: the file format, its validation with line-precise errors, and the parsed form.

A model file (YAML, or JSON which is read the same way) declares dimensions, scoring items, the tier
table and the rules that shape how records count. Two kinds exist:

* ``itemised``: start from ``base_score`` and add every item's points (per-dimension caps optional);
* ``weighted``: every dimension starts at its ``base`` on a 0..``dimension_max`` scale, items move it, and
  the dimensions are weighted (integer percentages summing to 100) into 0..``score_range.max``.

Every item must name its public-catalogue category and its legal basis: nothing without a lawful basis
may be scored (see docs/SCORING_MODELS.md for the full reference).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from citycredit.core.periods import Period
from points_engine.tiers import COMMON_LEVELS

CODE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
KINDS = ("itemised", "weighted")


# --- parsed form ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    code: str
    name_zh: str
    name_en: str
    cap_min: int | None = None
    cap_max: int | None = None
    base: int = 0
    weight: int = 0


@dataclass(frozen=True)
class Tier:
    code: str
    name_zh: str
    name_en: str
    min_score: int
    common_tier: int
    rank: int  # 0 is the best tier


@dataclass(frozen=True)
class Item:
    code: str
    name_zh: str
    name_en: str
    dimension: str
    catalogue_category: str
    legal_basis: str
    points: int
    # How long a record counts from the day it occurred: calendar months, then days.
    validity_days: int
    yearly_cap: int | None = None
    direct_tier: str | None = None
    overlap_group: str | None = None
    repeat_multiplier: int | None = None
    repaired_points: int = 0
    validity_months: int = 0
    # Credit repair (信用修复): a citizen may apply once ``repair_after`` has passed since the record
    # occurred (the minimum disclosure period); a repaired record counts ``repaired_points`` and, when
    # ``repaired_validity`` is set, for that long from the repair date instead of its own validity.
    repairable: bool = False
    repair_after: Period | None = None
    repaired_validity: Period | None = None

    @property
    def validity(self) -> Period:
        return Period(self.validity_months, self.validity_days)

    def expires_on(self, occurred_on: dt.date, repaired_on: dt.date | None = None) -> dt.date:
        """The first day the record no longer counts (it counts while ``as_of`` is before it). A
        repaired record counts for its repaired validity from the repair date, never beyond its own
        validity: a repair never makes a record count longer."""
        own = self.validity.after(occurred_on)
        if repaired_on is not None and self.repaired_validity is not None:
            return min(own, self.repaired_validity.after(repaired_on))
        return own

    def repairable_from(self, occurred_on: dt.date) -> dt.date | None:
        """The first day a repair may be applied for; None when the item cannot be repaired."""
        if not self.repairable:
            return None
        return self.repair_after.after(occurred_on) if self.repair_after else occurred_on

    @property
    def needs_ordering(self) -> bool:
        """Whether this item's records interact (caps, overlap, repeats) and must be scored in order."""
        return bool(self.yearly_cap or self.overlap_group or self.repeat_multiplier)


@dataclass(frozen=True)
class ScoringModel:
    name: str
    kind: str
    title_zh: str
    title_en: str
    base_score: int
    score_min: int
    score_max: int
    dimension_max: int
    dimensions: tuple[Dimension, ...]
    tiers: tuple[Tier, ...]
    items: dict[str, Item]
    definition: dict[str, Any] = field(repr=False, compare=False)
    source_sha256: str = ""

    def tier_for_score(self, score: int) -> Tier:
        for tier in self.tiers:
            if score >= tier.min_score:
                return tier
        return self.tiers[-1]

    def tier(self, code: str) -> Tier:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        raise KeyError(code)

    def dimension(self, code: str) -> Dimension:
        for dim in self.dimensions:
            if dim.code == code:
                return dim
        raise KeyError(code)


# --- file schema ----------------------------------------------------------------------------------


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class NamesSchema(_Strict):
    zh = fields.String(required=True, validate=validate.Length(min=1, max=200))
    en = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RangeSchema(_Strict):
    min = fields.Integer(strict=True, required=True)
    max = fields.Integer(strict=True, required=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data["min"] > data["max"]:
            raise ValidationError("min must not exceed max", "max")


class CapSchema(_Strict):
    min = fields.Integer(strict=True, load_default=None)
    max = fields.Integer(strict=True, load_default=None)


class PeriodSchema(_Strict):
    """``{years: 5}``, ``{months: 6}``, ``{days: 30}`` or a mix: calendar years and months, then days."""

    years = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=100))
    months = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=1200))
    days = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=36500))

    @validates_schema
    def _positive(self, data: dict[str, int], **_: Any) -> None:
        if not (data["years"] or data["months"] or data["days"]):
            raise ValidationError("a period must be longer than zero")


class RepairSchema(_Strict):
    after = fields.Nested(
        PeriodSchema,
        load_default=None,
        metadata={"description": "the minimum disclosure period before a repair, from occurred_on"},
    )
    points = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=-1000, max=0),
        metadata={"description": "what a repaired record counts (default: the model's)"},
    )
    counts_for = fields.Nested(
        PeriodSchema,
        load_default=None,
        metadata={"description": "how long the repaired value counts, from the repair date"},
    )


class ValidityRuleSchema(_Strict):
    max_abs_points = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    days = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=36500))


class DimensionSchema(_Strict):
    code = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    name = fields.Nested(NamesSchema, required=True)
    cap = fields.Nested(CapSchema, load_default=None)
    base = fields.Integer(strict=True, load_default=None)
    weight = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0, max=100))


class TierSchema(_Strict):
    code = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    name = fields.Nested(NamesSchema, required=True)
    min_score = fields.Integer(strict=True, required=True)
    common_tier = fields.Integer(
        strict=True, required=True, validate=validate.OneOf(sorted(COMMON_LEVELS))
    )


class ItemSchema(_Strict):
    code = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    name = fields.Nested(NamesSchema, required=True)
    dimension = fields.String(required=True)
    catalogue_category = fields.String(required=True, validate=validate.Length(min=2, max=200))
    legal_basis = fields.String(required=True, validate=validate.Length(min=4, max=500))
    points = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=-1000, max=1000)
    )
    validity_days = fields.Integer(
        strict=True, load_default=None, validate=validate.Range(min=1, max=36500)
    )
    valid_for = fields.Nested(PeriodSchema, load_default=None)
    repair = fields.Nested(RepairSchema, load_default=None)
    yearly_cap = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    direct_tier = fields.String(load_default=None)
    overlap_group = fields.String(load_default=None, validate=validate.Regexp(CODE_PATTERN))
    repeat_multiplier = fields.Integer(
        strict=True, load_default=None, validate=validate.Range(min=2, max=10)
    )
    repaired_points = fields.Integer(strict=True, load_default=None)


class ModelFileSchema(_Strict):
    name = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    title = fields.Nested(NamesSchema, required=True)
    base_score = fields.Integer(strict=True, load_default=None)
    score_range = fields.Nested(RangeSchema, required=True)
    dimension_max = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    validity = fields.List(
        fields.Nested(ValidityRuleSchema), required=True, validate=validate.Length(min=1)
    )
    repaired_points = fields.Integer(strict=True, load_default=0)
    dimensions = fields.List(
        fields.Nested(DimensionSchema), required=True, validate=validate.Length(min=1)
    )
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(min=2))
    items = fields.List(fields.Nested(ItemSchema), required=True, validate=validate.Length(min=1))


# --- errors with line numbers ---------------------------------------------------------------------

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ModelFileProblem:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        dotted = ".".join(str(p) for p in self.path) or "(top level)"
        return f"{where}: {dotted}: {self.message}"


class ModelFileError(ValueError):
    """A scoring model file that cannot be used, with every problem found and its line."""

    def __init__(self, filename: str, problems: list[ModelFileProblem]):
        self.filename = filename
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path.__repr__()))
        super().__init__(
            f"{filename}: {len(self.problems)} problem(s)\n"
            + "\n".join(f"  {filename}:{p}" for p in self.problems)
        )


def _line_map(
    node: yaml.Node, path: Path, out: dict[Path, int], dupes: list[ModelFileProblem]
) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dupes.append(
                    ModelFileProblem((*path, key), key_node.start_mark.line + 1, "duplicate key")
                )
            seen.add(key)
            _line_map(value_node, (*path, key), out, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _line_map(child, (*path, index), out, dupes)


def _line_for(lines: dict[Path, int], path: Path) -> int | None:
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        probe = probe[:-1]
    return lines.get(())


def _flatten(messages: Any, path: Path = ()) -> list[tuple[Path, str]]:
    if isinstance(messages, dict):
        out: list[tuple[Path, str]] = []
        for key, value in messages.items():
            sub: str | int = key
            if isinstance(key, str) and key.isdigit():
                sub = int(key)
            if key == "_schema":
                out.extend(_flatten(value, path))
            else:
                out.extend(_flatten(value, (*path, sub)))
        return out
    if isinstance(messages, list):
        return [(path, str(m)) for m in messages]
    return [(path, str(messages))]


# --- loading --------------------------------------------------------------------------------------


# libyaml when PyYAML was built with it: a model file parses in ~5 ms instead of ~100 ms, which a
# page pays on each process's first use of a model (the admin's first dashboard, say).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data built from that same tree: one parse, not two."""
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


def parse_model(text: str, filename: str = "<model>") -> ScoringModel:
    """Parse and validate a model file; raise :class:`ModelFileError` listing every problem with its line."""
    try:
        root, data = _compose_and_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ModelFileError(
            filename,
            [ModelFileProblem((), line, f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}")],
        ) from None
    if root is None or not isinstance(data, dict):
        raise ModelFileError(filename, [ModelFileProblem((), 1, "the file must be a mapping")])
    lines: dict[Path, int] = {}
    problems: list[ModelFileProblem] = []
    _line_map(root, (), lines, problems)

    try:
        loaded = ModelFileSchema().load(data)
    except ValidationError as exc:
        for path, message in _flatten(exc.messages):
            problems.append(ModelFileProblem(path, _line_for(lines, path), message))
        raise ModelFileError(filename, problems) from None

    semantic = _check_semantics(loaded)
    problems.extend(ModelFileProblem(p, _line_for(lines, p), m) for p, m in semantic)
    if problems:
        raise ModelFileError(filename, problems)
    return _build(loaded, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _check_semantics(d: dict[str, Any]) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    kind = d["kind"]
    lo, hi = d["score_range"]["min"], d["score_range"]["max"]

    def dupes(section: str) -> None:
        seen: set[str] = set()
        for i, entry in enumerate(d[section]):
            if entry["code"] in seen:
                out.append(((section, i, "code"), f"duplicate code {entry['code']!r}"))
            seen.add(entry["code"])

    for section in ("dimensions", "tiers", "items"):
        dupes(section)

    if kind == "itemised":
        if d["base_score"] is None:
            out.append((("base_score",), "required for an itemised model"))
        elif not lo <= d["base_score"] <= hi:
            out.append((("base_score",), f"must lie within score_range {lo}..{hi}"))
        for i, dim in enumerate(d["dimensions"]):
            for key in ("base", "weight"):
                if dim[key] is not None:
                    out.append(
                        (("dimensions", i, key), "only weighted models have dimension " + key)
                    )
    else:
        if d["dimension_max"] is None:
            out.append((("dimension_max",), "required for a weighted model"))
        if lo != 0:
            out.append((("score_range", "min"), "a weighted model's score range starts at 0"))
        if d["base_score"] is not None:
            out.append(
                (("base_score",), "a weighted model has per-dimension bases, not base_score")
            )
        total = 0
        for i, dim in enumerate(d["dimensions"]):
            if dim["weight"] is None:
                out.append((("dimensions", i, "weight"), "required for a weighted model"))
            else:
                total += dim["weight"]
            if dim["base"] is None:
                out.append((("dimensions", i, "base"), "required for a weighted model"))
            elif d["dimension_max"] is not None and not 0 <= dim["base"] <= d["dimension_max"]:
                out.append((("dimensions", i, "base"), "must lie within 0..dimension_max"))
            if dim["cap"] is not None:
                out.append(
                    (("dimensions", i, "cap"), "a weighted dimension is bounded by dimension_max")
                )
        if total != 100 and all(dim["weight"] is not None for dim in d["dimensions"]):
            out.append((("dimensions",), f"weights must sum to 100, they sum to {total}"))

    previous = None
    for i, tier in enumerate(d["tiers"]):
        if previous is not None and tier["min_score"] >= previous:
            out.append(
                (("tiers", i, "min_score"), "tiers are listed best first with falling min_score")
            )
        previous = tier["min_score"]
    if d["tiers"] and d["tiers"][-1]["min_score"] > lo:
        out.append(
            (
                ("tiers", len(d["tiers"]) - 1, "min_score"),
                f"the last tier must start at {lo} or below",
            )
        )
    levels = [t["common_tier"] for t in d["tiers"]]
    if levels != sorted(levels, reverse=True):
        out.append((("tiers",), "common_tier must not rise as tiers get worse"))

    rules = d["validity"]
    for i in range(1, len(rules)):
        if rules[i]["max_abs_points"] <= rules[i - 1]["max_abs_points"]:
            out.append(
                (("validity", i, "max_abs_points"), "rules must be in rising max_abs_points")
            )

    dim_codes = {dim["code"] for dim in d["dimensions"]}
    tier_codes = {t["code"] for t in d["tiers"]}
    for i, item in enumerate(d["items"]):
        if item["dimension"] not in dim_codes:
            out.append((("items", i, "dimension"), f"unknown dimension {item['dimension']!r}"))
        if item["direct_tier"] is not None and item["direct_tier"] not in tier_codes:
            out.append((("items", i, "direct_tier"), f"unknown tier {item['direct_tier']!r}"))
        given = item["validity_days"] is not None or item["valid_for"] is not None
        if not given and abs(item["points"]) > rules[-1]["max_abs_points"]:
            out.append(
                (
                    ("items", i, "points"),
                    "no validity rule covers these points; set validity_days or valid_for",
                )
            )
        if item["validity_days"] is not None and item["valid_for"] is not None:
            out.append((("items", i, "valid_for"), "give validity_days or valid_for, not both"))
        repair = item["repair"]
        if repair is not None and item["points"] >= 0 and item["direct_tier"] is None:
            out.append(
                (("items", i, "repair"), "only a record that counts against someone is repaired")
            )
        if (
            repair is not None
            and repair["points"] is not None
            and item["repaired_points"] is not None
        ):
            out.append(
                (
                    ("items", i, "repair", "points"),
                    "give repair.points or repaired_points, not both",
                )
            )
        if item["points"] == 0 and item["direct_tier"] is None:
            out.append((("items", i, "points"), "an item must move the score or set a direct tier"))
    return out


def _validity_days(points: int, rules: list[dict[str, int]]) -> int:
    for rule in rules:
        if abs(points) <= rule["max_abs_points"]:
            return rule["days"]
    raise AssertionError("checked by _check_semantics")


def _validity(item: dict[str, Any], rules: list[dict[str, int]]) -> dict[str, Any]:
    if item["valid_for"] is not None:
        period = Period.of(item["valid_for"])
        return {"validity_months": period.months, "validity_days": period.days}
    return {"validity_days": item["validity_days"] or _validity_days(item["points"], rules)}


def _repair(item: dict[str, Any], model_default: int) -> dict[str, Any]:
    repair = item["repair"]
    points = item["repaired_points"]
    if repair is not None and repair["points"] is not None:
        points = repair["points"]
    out: dict[str, Any] = {"repaired_points": model_default if points is None else points}
    if repair is not None:
        out["repairable"] = True
        out["repair_after"] = Period.of(repair["after"]) if repair["after"] else None
        out["repaired_validity"] = Period.of(repair["counts_for"]) if repair["counts_for"] else None
    return out


def _build(d: dict[str, Any], sha256: str) -> ScoringModel:
    dimensions = tuple(
        Dimension(
            code=dim["code"],
            name_zh=dim["name"]["zh"],
            name_en=dim["name"]["en"],
            cap_min=(dim["cap"] or {}).get("min"),
            cap_max=(dim["cap"] or {}).get("max"),
            base=dim["base"] or 0,
            weight=dim["weight"] or 0,
        )
        for dim in d["dimensions"]
    )
    tiers = tuple(
        Tier(
            code=t["code"],
            name_zh=t["name"]["zh"],
            name_en=t["name"]["en"],
            min_score=t["min_score"],
            common_tier=t["common_tier"],
            rank=rank,
        )
        for rank, t in enumerate(d["tiers"])
    )
    items = {
        it["code"]: Item(
            code=it["code"],
            name_zh=it["name"]["zh"],
            name_en=it["name"]["en"],
            dimension=it["dimension"],
            catalogue_category=it["catalogue_category"],
            legal_basis=it["legal_basis"],
            points=it["points"],
            **_validity(it, d["validity"]),
            yearly_cap=it["yearly_cap"],
            direct_tier=it["direct_tier"],
            overlap_group=it["overlap_group"],
            repeat_multiplier=it["repeat_multiplier"],
            **_repair(it, d["repaired_points"]),
        )
        for it in d["items"]
    }
    return ScoringModel(
        name=d["name"],
        kind=d["kind"],
        title_zh=d["title"]["zh"],
        title_en=d["title"]["en"],
        base_score=d["base_score"] or 0,
        score_min=d["score_range"]["min"],
        score_max=d["score_range"]["max"],
        dimension_max=d["dimension_max"] or 0,
        dimensions=dimensions,
        tiers=tiers,
        items=items,
        definition=json.loads(json.dumps(d)),
        source_sha256=sha256,
    )
