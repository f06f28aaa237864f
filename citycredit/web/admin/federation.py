"""Admin pages for the federation of partner cities (十城互认).

- ``/admin/federation``: this city in the federation — its federation key's fingerprint (read out by
  phone at onboarding), the pinned trust anchor, the held trust list's sequence and age, the last sync
  of the list and of each partner's bulletins, the members with their keys, and their tier mappings
  side by side on the common scale.
- ``/admin/federation/members`` (at the coordinator only): registered members, proposing a join,
  suspension, resumption, departure or re-key, and approving or rejecting what another platform admin
  proposed (four eyes, in ``federation.coordinator``), with the history of changes.
- ``/admin/federation/visitors``: visitors from partner cities here, per partner and day (chart) and
  per partner and category (table).

Only the platform admin changes anything; the auditor reads. The coordinator's functions audit each
change under the admin's name (``admin:<username>``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import httpx
from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from citycredit.core.actors import Actor
from citycredit.web.admin import charts
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    bp,
    can,
    current_user,
    now,
    require_permission,
    t,
    today,
)
from citycredit.web.context import db_session, platform_of
from federation import coordinator, jws, queries
from federation.models import CHANGE_ACTIONS
from federation.trustlist import MemberView
from points_engine.tiers import COMMON_TIERS
from scenarios.models import CATEGORIES

# The federation is the credit office's business: the platform admin acts, the auditor reads;
# operators, clerks and reviewers have nothing to do here and do not see it.
PERMISSIONS["federation.view"] = frozenset({"platform_admin", "auditor"})
PERMISSIONS["federation.manage"] = frozenset({"platform_admin"})

NAV.append(
    NavItem("admin.federation", "合作城市", "Partner cities", PERMISSIONS["federation.view"])
)

VISITOR_DAYS = 30
ISSUER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")

MEMBER_STATUS = {
    "active": ("正常", "active", "active"),
    "suspended": ("已暂停", "suspended", "disabled"),
    "left": ("已退出", "left", "retired"),
}
ACTION_NAMES = {
    "join": ("加入", "join"),
    "suspend": ("暂停", "suspend"),
    "resume": ("恢复", "resume"),
    "leave": ("退出", "leave"),
    "rekey": ("更换联盟密钥", "re-key"),
}
CHANGE_STATES = {
    "pending": ("待批准", "pending", "running"),
    "approved": ("已批准", "approved", "completed"),
    "rejected": ("已驳回", "rejected", "failed"),
}
LEVELS = {
    "prefecture": ("地级市", "prefecture-level city"),
    "county": ("县（市、区）", "county"),
    "province": ("省", "province"),
}

# The coordinator speaks English; the page says the same in Chinese first.
_ZH: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^four eyes: .*$"),
        "四眼原则：成员变更须由提议人以外的另一位平台管理员批准。",
    ),
    (
        re.compile(r"^this deployment is not the federation's coordinator.*$"),
        "本部署不是联盟协调方。",
    ),
    (re.compile(r"^(\S+) is already a member \((\w+)\)$"), r"\1 已是成员（\2）。"),
    (re.compile(r"^(\S+) is not a member$"), r"\1 不是成员。"),
    (
        re.compile(r"^joining and re-keying need the member's URL and fingerprint$"),
        "加入和更换密钥须填写该城市的网址和联盟密钥指纹。",
    ),
    (re.compile(r"^(\S+) publishes no federation entry$"), r"\1 未发布联盟条目。"),
    (
        re.compile(r"^the key (\S+) publishes has fingerprint (\S+), not (\S+): .*$"),
        r"\1 发布的密钥指纹为 \2，而不是 \3：在该城市信用办确认之前请勿继续。",
    ),
    (re.compile(r"^(\S+) is '(.*)', not '(.*)'$"), r"\1 的条目属于 \2，而不是 \3。"),
    (re.compile(r"^no pending change #(\d+)$"), r"没有待批准的变更 #\1。"),
]


def coordinator_message(text: str) -> str:
    """A coordinator's refusal in the page's language (unknown messages are shown as they are)."""
    for pattern, replacement in _ZH:
        if pattern.match(text):
            return t(pattern.sub(replacement, text), text)
    return text


# --- small formatting helpers for the templates -----------------------------------------------------


def duration(seconds: int | None) -> str:
    """A span of time as days, hours and minutes."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return t(f"{days} 天 {hours} 小时", f"{days} d {hours} h")
    if hours:
        return t(f"{hours} 小时 {minutes} 分钟", f"{hours} h {minutes} min")
    return t(f"{minutes} 分钟", f"{minutes} min")


def read_aloud(fingerprint: str | None) -> str:
    """A fingerprint in groups of four, to read out by phone."""
    if not fingerprint:
        return ""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def from_timestamp(seconds: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, dt.UTC) if seconds else None


def member_status(status: str) -> Markup:
    zh, en, css = MEMBER_STATUS.get(status, (status, status, ""))
    return Markup('<span class="badge {}">{}</span>').format(css, t(zh, en))


def change_state(state: str) -> Markup:
    zh, en, css = CHANGE_STATES.get(state, (state, state, ""))
    return Markup('<span class="badge {}">{}</span>').format(css, t(zh, en))


def action_name(action: str) -> str:
    zh, en = ACTION_NAMES.get(action, (action, action))
    return t(zh, en)


def level_name(level: str) -> str:
    zh, en = LEVELS.get(level, (level, level))
    return t(zh, en)


def category_label(code: str) -> str:
    brand, zh, en = CATEGORIES.get(code, ("", code, code))
    return t(f"{brand}·{zh}" if brand else zh, en)


def key_fingerprint(jwk: dict[str, Any]) -> str:
    try:
        return jws.thumbprint(jwk)
    except (KeyError, TypeError):
        return "—"


@bp.context_processor
def _federation_helpers() -> dict[str, Any]:
    return {
        "fed_duration": duration,
        "read_aloud": read_aloud,
        "from_timestamp": from_timestamp,
        "member_status": member_status,
        "change_state": change_state,
        "action_name": action_name,
        "level_name": level_name,
        "key_fingerprint": key_fingerprint,
        "fed_coordinator": _settings().federation_coordinator,
    }


def _settings() -> Any:
    return platform_of(current_app).settings


def _actor() -> Actor:
    user = current_user()
    assert user is not None
    return Actor(f"admin:{user.username}", read_only=not can("federation.manage"))


# --- the federation as this city sees it ------------------------------------------------------------


@dataclass(frozen=True)
class MappingColumn:
    member: MemberView
    version: int | None
    # common level → the local tiers mapped to it: (code, name_zh, name_en)
    cells: dict[int, list[tuple[str, str, str]]]


def mapping_columns(members: list[MemberView]) -> list[MappingColumn]:
    """Each member's current tier mapping, turned around: per common level, its local tiers."""
    columns = []
    for member in members:
        version = member.current_mapping
        if version not in member.mappings:
            version = max(member.mappings) if member.mappings else None
        cells: dict[int, list[tuple[str, str, str]]] = {tier.level: [] for tier in COMMON_TIERS}
        if version is not None:
            for code, (level, name_zh, name_en) in member.mappings[version].items():
                cells.setdefault(level, []).append((code, name_zh, name_en))
        columns.append(MappingColumn(member, version, cells))
    return columns


def sync_label(what: str, names: dict[str, MemberView]) -> str:
    if what == "trust-list":
        return t("信任列表", "Trust list")
    if what.startswith("bulletins:"):
        issuer = what.split(":", 1)[1]
        member = names.get(issuer)
        name = t(member.name_zh, member.name_en) if member else issuer
        return t(f"{name} 的公报", f"Bulletins of {name}")
    return what


@bp.get("/federation")
@require_permission("federation.view")
def federation() -> Any:
    settings = _settings()
    standing = queries.standing(db_session(), settings, now=now())
    names = {m.issuer: m for m in standing.members}
    return render_template(
        "admin/federation/overview.html",
        standing=standing,
        city_name=t(settings.city_name, settings.city_name_en),
        columns=mapping_columns(standing.members),
        common_tiers=COMMON_TIERS,
        syncs=[(sync_label(s.what, names), s) for s in standing.syncs],
        anchor_mismatch=bool(
            standing.anchor_fingerprint
            and standing.pinned_anchor
            and standing.anchor_fingerprint != standing.pinned_anchor
        ),
    )


# --- the coordinator: membership with four eyes -------------------------------------------------------


def _require_coordinator() -> None:
    if not _settings().federation_coordinator:
        abort(404)


def _members_page(form: dict[str, str], errors: dict[str, str], status: int = 200) -> Any:
    session = db_session()
    standing = queries.standing(session, _settings(), now=now())
    me = current_user()
    return (
        render_template(
            "admin/federation/members.html",
            standing=standing,
            history=queries.recent_changes(session),
            actions=CHANGE_ACTIONS,
            my_name=f"admin:{me.username}" if me else "",
            names={m.issuer: t(m.name_zh, m.name_en) for m in standing.members},
            form=form,
            errors=errors,
        ),
        status,
    )


@bp.get("/federation/members")
@require_permission("federation.view")
def federation_members() -> Any:
    _require_coordinator()
    return _members_page({"action": "join"}, {})


def _check_proposal(form: dict[str, str]) -> dict[str, str]:
    errors = {}
    if form["action"] not in CHANGE_ACTIONS:
        errors["action"] = t("请选择变更类型。", "Choose what to change.")
    if not ISSUER.match(form["issuer"]):
        errors["issuer"] = t(
            "请填写城市代码（1–32 位字母、数字、连字符或下划线，如 420200）。",
            "Give the city's code (1–32 letters, digits, hyphens or underscores, e.g. 420200).",
        )
    if form["action"] in ("join", "rekey"):
        url = form["base_url"]
        if url and (not url.startswith(("https://", "http://")) or len(url) > 300):
            errors["base_url"] = t(
                "网址须以 https:// 开头，最长 300 个字符。",
                "The URL starts with https:// and has at most 300 characters.",
            )
        elif not url and form["action"] == "join":
            errors["base_url"] = t("加入须填写该城市的网址。", "Joining needs the city's URL.")
        if not FINGERPRINT.match(form["fingerprint"]):
            errors["fingerprint"] = t(
                "请填写该城市信用办通过电话或信函告知的联盟密钥指纹（43 个字符）。",
                "Give the federation key fingerprint the city's credit office read out by phone "
                "or sent by letter (43 characters).",
            )
    return errors


@bp.post("/federation/members")
@require_permission("federation.manage")
def propose_change() -> Any:
    _require_coordinator()
    form = {
        name: request.form.get(name, "").strip()
        for name in ("action", "issuer", "base_url", "fingerprint")
    }
    # Spaces are how the fingerprint is read out; they are not part of it.
    form["fingerprint"] = re.sub(r"\s+", "", form["fingerprint"])
    errors = _check_proposal(form)
    if errors:
        return _members_page(form, errors, 422)
    joining = form["action"] in ("join", "rekey")
    try:
        change = coordinator.propose(
            db_session(),
            _settings(),
            _actor(),
            form["issuer"],
            form["action"],
            base_url=(form["base_url"] or None) if joining else None,
            fingerprint=form["fingerprint"] if joining else None,
        )
    except coordinator.CoordinatorError as exc:
        return _members_page(form, {"proposal": coordinator_message(str(exc))}, 422)
    except (httpx.HTTPError, ValueError) as exc:
        return _members_page(
            form,
            {
                "proposal": t(
                    f"无法读取该城市发布的联盟条目：{exc}",
                    f"The city's federation entry could not be read: {exc}",
                )
            },
            422,
        )
    except (jws.BadDocument, KeyError, TypeError) as exc:
        return _members_page(
            form,
            {
                "proposal": t(
                    f"该城市发布的联盟条目无法验证：{exc}",
                    f"The city's federation entry does not verify: {exc}",
                )
            },
            422,
        )
    g.admin_audited = True  # coordinator.propose audited it under the admin's name
    flash(
        t(
            f"已提议 #{change.id}：{action_name(change.action)} {change.issuer}。"
            "须由另一位平台管理员批准后生效（四眼原则）。",
            f"Proposed #{change.id}: {action_name(change.action)} {change.issuer}. "
            "Another platform admin must approve it (four eyes).",
        ),
        "success",
    )
    return redirect(url_for("admin.federation_members"))


@bp.post("/federation/changes/<int:change_id>/<decision>")
@require_permission("federation.manage")
def decide_change(change_id: int, decision: str) -> Any:
    _require_coordinator()
    if decision not in ("approve", "reject"):
        abort(404)
    session = db_session()
    settings = _settings()
    try:
        change = coordinator.decide(
            session, settings, _actor(), change_id, approve=decision == "approve", now=now()
        )
    except coordinator.CoordinatorError as exc:
        flash(coordinator_message(str(exc)), "error")
        return redirect(url_for("admin.federation_members"))
    g.admin_audited = True  # coordinator.decide audited it under the admin's name
    what = f"#{change.id} {action_name(change.action)} {change.issuer}"
    if decision == "reject":
        flash(t(f"已驳回 {what}。", f"Rejected {what}."), "success")
        return redirect(url_for("admin.federation_members"))
    # coordinator.decide signed the new list with the change (one use case for every entry point).
    published = coordinator.latest_published(session)
    assert change.decided_at is not None
    if published is not None and published.issued_at >= change.decided_at.replace(microsecond=0):
        flash(
            t(
                f"已批准 {what}；已签发信任列表第 {published.seq} 版。",
                f"Approved {what}; trust list {published.seq} signed.",
            ),
            "success",
        )
    else:
        flash(
            t(
                f"已批准 {what}；信任列表将由计划任务签发。",
                f"Approved {what}; the scheduler signs the trust list.",
            ),
            "success",
        )
    return redirect(url_for("admin.federation_members"))


# --- visitors from partner cities -------------------------------------------------------------------


@bp.get("/federation/visitors")
@require_permission("federation.view")
def federation_visitors() -> Any:
    session = db_session()
    settings = _settings()
    last = today()
    first = last - dt.timedelta(days=VISITOR_DAYS - 1)
    since = dt.datetime.combine(first, dt.time(), settings.tz).astimezone(dt.UTC)
    per_day = queries.visitors_per_day(session, settings, days=VISITOR_DAYS, today=last)
    by_category = queries.visitors_by_category(session, since=since)
    standing_members = queries.standing(session, settings, now=now()).members
    names = {m.issuer: t(m.name_zh, m.name_en) for m in standing_members}

    def name(issuer: str) -> str:
        return names.get(issuer, issuer)

    days = [first + dt.timedelta(days=i) for i in range(VISITOR_DAYS)]
    partners = sorted(per_day, key=lambda issuer: (name(issuer), issuer))
    series = [
        charts.Series(
            name(issuer),
            charts.PALETTE[i % len(charts.PALETTE)],
            [per_day[issuer].get(d, (0, 0))[0] for d in days],
        )
        for i, issuer in enumerate(partners)
    ]
    chart = charts.stacked_bar_chart(
        [d.strftime("%m-%d") for d in days],
        series,
        title=t(
            f"近 {VISITOR_DAYS} 天合作城市来访者每日核验次数（按来源城市）",
            f"Verifications of visitors' codes per day by partner city, last {VISITOR_DAYS} days",
        ),
        desc=t(
            f"{first} 至 {last} 每天核验合作城市来访者信用码的次数，按来源城市分段堆叠。",
            f"Visitors' codes verified here each day from {first} to {last}, stacked by the "
            "city that issued them.",
        ),
        y_label=t("核验次数", "Verifications"),
        empty=t("近期没有合作城市来访者", "No visitors from partner cities lately"),
    )
    totals: dict[str, list[int]] = {}
    for issuer, _category, verifications, redemptions in by_category:
        total = totals.setdefault(issuer, [0, 0])
        total[0] += verifications
        total[1] += redemptions
    rows = [
        (name(issuer), issuer, category_label(category), verifications, redemptions)
        for issuer, category, verifications, redemptions in by_category
    ]
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return render_template(
        "admin/federation/visitors.html",
        chart=chart,
        series=series,
        days=days,
        rows=rows,
        totals=sorted(
            ((name(issuer), issuer, v, r) for issuer, (v, r) in totals.items()),
            key=lambda r: (r[0], r[1]),
        ),
        first=first,
        last=last,
        visitor_days=VISITOR_DAYS,
    )
