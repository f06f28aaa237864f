"""Chinese for the registry's validation messages (the domain speaks English; the admin speaks both).

Messages come from marshmallow, the eligibility parser and the registry; a message without a known
pattern is shown as it is, so nothing is ever hidden by a missing translation.
"""

from __future__ import annotations

import re

FIELD_LABELS: dict[str, tuple[str, str]] = {
    "code": ("场景编码", "Code"),
    "operator": ("运营方", "Operator"),
    "category": ("类别", "Category"),
    "name_zh": ("名称（中文）", "Name (Chinese)"),
    "name_en": ("名称（英文）", "Name (English)"),
    "benefit_zh": ("权益内容（中文）", "Benefit (Chinese)"),
    "benefit_en": ("权益内容（英文）", "Benefit (English)"),
    "eligibility": ("准入条件", "Eligibility"),
    "quota_per_day": ("每人每日次数", "Per citizen per day"),
    "quota_per_month": ("每人每月次数", "Per citizen per month"),
    "quota_total": ("总量", "In total"),
    "valid_from": ("生效日期", "Valid from"),
    "valid_until": ("截止日期", "Valid until"),
    "venues": ("适用场所", "Venues"),
    "name": ("名称", "Name"),
    "address_zh": ("地址", "Address"),
}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Missing data for required field\.$"), "必填"),
    (re.compile(r"^Length must be between (\d+) and (\d+)\.$"), r"长度须为 \1–\2 个字符"),
    (
        re.compile(r"^Must be greater than or equal to (\d+) and less than or equal to (\d+)\.$"),
        r"须为 \1 到 \2 之间的整数",
    ),
    (re.compile(r"^Not a valid integer\.$"), "不是有效的整数"),
    (re.compile(r"^Not a valid date\.$"), "不是有效的日期（格式：2026-01-31）"),
    (re.compile(r"^must not be before valid_from$"), "不能早于生效日期"),
    (re.compile(r"^must allow at least the daily quota$"), "不能少于每人每日次数"),
    (re.compile(r"^3–64 characters: .*$"), "须为 3–64 位小写字母、数字或连字符"),
    (re.compile(r"^unknown category .*$"), "未知的类别"),
    (re.compile(r"^scenario '(.+)' exists already$"), r"场景编码 \1 已存在"),
    (re.compile(r"^venue '(.+)' exists already$"), r"场所编码 \1 已存在"),
    (re.compile(r"^unknown venue '(.+)'$"), r"未知的场所 \1"),
    (re.compile(r"^venue '(.+)' belongs to another operator$"), r"场所 \1 属于其他运营方"),
    (re.compile(r"^required: a rule such as .*$"), "必填：请至少设置一项条件"),
    (re.compile(r"^not valid JSON: (.*)$"), r"不是有效的 JSON：\1"),
    (
        re.compile(r"^(\S+): unknown condition kind \(known: (.*)\)$"),
        r"\1：未知的条件类型（可用：\2）",
    ),
    (
        re.compile(r"^(\S+): must be a whole number from (\d+) to (\d+)$"),
        r"\1：须为 \2 到 \3 的整数",
    ),
    (re.compile(r"^(\S+): must be a non-empty list of conditions$"), r"\1：须为非空的条件列表"),
    (
        re.compile(r"^(\S+): a condition is an object with exactly one key, its kind$"),
        r"\1：每个条件须为只含一个键（条件类型）的对象",
    ),
    (re.compile(r"^(\S+): write true .*$"), r"\1：只能写 true（场景只授予权益，不设反向条件）"),
    (
        re.compile(r"^contains a control character \((U\+[0-9A-F]{4})\) \(only tab .*\)$"),
        r"含有控制字符 \1（只允许制表符和换行）",
    ),
    (re.compile(r"^contains a control character \((U\+[0-9A-F]{4})\)$"), r"含有控制字符 \1"),
    (re.compile(r"^contains a lone surrogate \((U\+[0-9A-F]{4})\)$"), r"含有孤立的代理字符 \1"),
]


def zh(message: str) -> str:
    for pattern, replacement in _PATTERNS:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message
