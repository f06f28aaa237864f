"""Plain-text rendering of a score explanation, in Chinese or English (CLI; the pages reuse the labels)."""

from __future__ import annotations

from points_engine.queries import Explanation
from points_engine.tiers import TIER_RELATION

REASONS = {
    "unknown_item": ("该项目不在当前评分模型中", "item not in the published model"),
    "not_scored_item": (
        "信用信息目录中的信息，评分模型不对其计分",
        "a catalogued record the scoring model does not score",
    ),
    "expired": ("已过有效期，不再计分", "past its validity period"),
    "revoked": ("已被来源单位撤销", "revoked by its source"),
    "repaired": ("已信用修复，按修复后分值计", "credit repaired: counts at the repaired value"),
    "under_objection": ("异议处理中，暂停扣分", "under objection: deduction suspended"),
    "under_objection_counted": (
        "异议处理中（加分项照常计入）",
        "under objection (awards keep counting)",
    ),
    "overlapped": (
        "同一行为已按最高扣分计入一次",
        "same act already counted once, at its largest deduction",
    ),
    "direct_tier": ("该记录直接决定信用等级", "this record sets the tier directly"),
    "capped": ("已达该项目年度上限", "yearly cap of this item reached"),
}


def reason_text(reason: str, lang: str) -> str:
    if reason.startswith("repeat_x"):
        factor = reason.removeprefix("repeat_x")
        return (
            f"有效期内重复发生，按{factor}倍计"
            if lang == "zh"
            else f"repeat within validity: ×{factor}"
        )
    zh, en = REASONS.get(reason, (reason, reason))
    return zh if lang == "zh" else en


def render_explanation(e: Explanation, lang: str = "zh") -> str:
    zh = lang == "zh"
    if not e.consent_given:
        return (
            "该市民未授权信用评分，因此没有分数。"
            if zh
            else "This citizen has not consented to scoring, so there is no score."
        )
    lines = [
        f"{'信用分' if zh else 'Score'}: {e.score}    {e.tier_words(lang)}"
        f"{'（严重失信记录直接定级）' if zh and e.direct_tier else ''}"
        f"{' (set directly by a severe record)' if not zh and e.direct_tier else ''}",
        f"{'评分模型' if zh else 'Model'}: {e.model_label}    {'计算日期' if zh else 'As of'}: {e.as_of}",
        TIER_RELATION[0] if zh else TIER_RELATION[1],
    ]
    if e.base_score is not None:
        lines.append(f"{'基础分' if zh else 'Base score'}: {e.base_score}")
    lines.append("")
    lines.append("维度：" if zh else "Dimensions:")
    for d in e.dimensions:
        lines.append(
            f"  {d.name_zh if zh else d.name_en}: {d.value:+d}"
            if e.base_score is not None
            else f"  {d.name_zh if zh else d.name_en}: {d.value}"
        )
    lines.append("")
    lines.append("记录：" if zh else "Records:")
    if not e.records:
        lines.append("  （无）" if zh else "  (none)")
    for r in e.records:
        counted = (
            f"{r.points:+d}"
            if r.counted
            else ("不计" if zh else "0")
            if r.scored
            else ("不计分" if zh else "not scored")
        )
        why = (
            "；".join(reason_text(x, lang) for x in r.reasons)
            if zh
            else "; ".join(reason_text(x, lang) for x in r.reasons)
        )
        lines.append(
            f"  {r.occurred_on} {r.item_name_zh if zh else r.item_name_en} [{r.source_name_zh if zh else r.source_name_en}] "
            f"{counted}" + (f"（{why}）" if zh and why else f" ({why})" if why else "")
        )
        lines.append(
            f"      {'文书' if zh else 'document'}: {r.document_no}   "
            f"{'依据' if zh else 'basis'}: {r.legal_basis or '-'}   "
            f"{'计分至（含）' if zh else 'counts until (inclusive)'}: {r.last_day or '-'}"
            + (f"   {'修复于' if zh else 'repaired on'}: {r.repaired_on}" if r.repaired_on else "")
        )
    return "\n".join(lines)
