"""Admin pages for webhooks (issue 15): subscriptions (make one, rotate its secret, enable, disable,
delete), deliveries with their attempts, resending one or many, and attempts per day as a chart.

Every write goes through ``push.subscriptions`` and ``push.delivery.resend``, which audit it. A
secret is shown once, in the answer to the request that made it (never flashed: the flash store is
the session cookie), with ``Cache-Control: no-store``. An operator's account sees and manages only
its operator's clients' subscriptions; another's reads as unknown (404).

Link apps (an operator client's redirect URIs) are not managed here yet: ``push.apps`` is another
helper's and was not on main when these pages were written.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from flask import (
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from citycredit.core.clients import ApiClient
from citycredit.core.config import Settings
from citycredit.web.admin import charts
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    admin_audit,
    can,
    current_user,
    now,
    operator_scope,
    require_permission,
    safe_next,
    t,
    today,
)
from citycredit.web.admin.web import bp as admin_bp
from citycredit.web.context import db_session, platform_of
from push import delivery as deliveries
from push import queries
from push import subscriptions as subs
from push.models import DELIVERY_STATES, EVENT_TYPES, PERSONAL_EVENTS, Subscription
from scenarios.models import Operator

PERMISSIONS["webhooks.view"] = frozenset({"platform_admin", "operator", "auditor"})
PERMISSIONS["webhooks.manage"] = frozenset({"platform_admin", "operator"})

NAV.append(
    NavItem("admin.push_subscriptions", "推送订阅", "Webhooks", PERMISSIONS["webhooks.view"])
)

CHART_DAYS = 30
PAGE_SIZE = 50

# code -> (Chinese, English, badge class)
SUBSCRIPTION_STATUS = {
    "active": ("启用", "active", "active"),
    "disabled": ("已停用", "disabled", "disabled"),
    "deleted": ("已删除", "deleted", "retired"),
}
DELIVERY_STATUS = {
    "pending": ("待投递", "pending", "running"),
    "delivered": ("已送达", "delivered", "completed"),
    "dead": ("已放弃（死信）", "dead letter", "failed"),
    "cancelled": ("已取消", "cancelled", "draft"),
}
EVENT_NAMES = {
    "tier.changed": ("等级变化", "tier changed"),
    "link.revoked": ("授权撤销", "link revoked"),
    "scenario.published": ("场景发布", "scenario published"),
    "scenario.suspended": ("场景暂停", "scenario suspended"),
    "scenario.retired": ("场景下线", "scenario retired"),
    "keys.rotated": ("密钥轮换", "keys rotated"),
}


def _settings() -> Settings:
    return platform_of(current_app).settings


def _actor() -> str:
    user = current_user()
    assert user is not None
    return f"admin:{user.username}"


def _words() -> dict[str, Any]:
    return {
        "sub_status": lambda code: t(*SUBSCRIPTION_STATUS[code][:2]),
        "sub_badge": lambda code: SUBSCRIPTION_STATUS[code][2],
        "delivery_status": lambda code: t(*DELIVERY_STATUS[code][:2]),
        "delivery_badge": lambda code: DELIVERY_STATUS[code][2],
        "event_name": lambda code: t(*EVENT_NAMES.get(code, (code, code))),
        "event_types": EVENT_TYPES,
        "personal_events": PERSONAL_EVENTS,
        "delivery_states": DELIVERY_STATES,
    }


def _say(exc: subs.SubscriptionError) -> str:
    """The domain's (English) refusal, in the page's language."""
    said = str(exc)
    if said.startswith("the URL must be an absolute"):
        zh = (
            "接收地址须为完整的 "
            + ("https 或 http" if "http URL" in said else "https")
            + " 网址，且不超过 2000 个字符"
        )
    elif said.startswith("the URL must not carry"):
        zh = "接收地址中不能包含用户名或密码"
    elif said.startswith("choose at least one"):
        zh = "请至少选择一种事件类型"
    elif "only an operator's system" in said:
        zh = said.split(":")[0] + "：只有运营方的系统才能接收已授权市民的事件"
    elif said.startswith("unknown event type"):
        zh = "未知事件类型：" + said.split(": ", 1)[-1]
    else:
        zh = said
    return t(zh, said)


def _subscription_or_404(public_id: str) -> Subscription:
    found = queries.subscription(
        db_session(), public_id, operator_id=operator_scope(), include_deleted=True
    )
    if found is None:
        abort(404)
    return found


def _clients() -> list[tuple[ApiClient, Operator | None]]:
    """The active API clients this user may subscribe (an operator: its own)."""
    query = (
        select(ApiClient, Operator)
        .outerjoin(Operator, Operator.id == ApiClient.operator_id)
        .where(ApiClient.status == "active")
        .order_by(ApiClient.name, ApiClient.id)
    )
    if operator_scope() is not None:
        query = query.where(ApiClient.operator_id == operator_scope())
    return [(client, operator) for client, operator in db_session().execute(query)]


def _secret_page(sub: Subscription, client: ApiClient, secret: str, *, rotated: bool) -> Any:
    response = make_response(
        render_template(
            "admin/push/secret.html", sub=sub, client=client, secret=secret, rotated=rotated
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# --- subscriptions --------------------------------------------------------------------------------


@admin_bp.get("/push")
@require_permission("webhooks.view")
def push_subscriptions() -> Any:
    rows = queries.subscriptions(db_session(), operator_id=operator_scope())
    return render_template("admin/push/list.html", rows=rows, **_words())


def _form_page(form: dict[str, Any], errors: dict[str, list[str]], status: int = 200) -> Any:
    return (
        render_template(
            "admin/push/new.html", clients=_clients(), form=form, errors=errors, **_words()
        ),
        status,
    )


@admin_bp.get("/push/new")
@require_permission("webhooks.manage")
def push_new() -> Any:
    return _form_page({"event_types": []}, {})


@admin_bp.post("/push")
@require_permission("webhooks.manage")
def push_create() -> Any:
    form = request.form
    chosen = form.getlist("event_types")
    shown = {"client": form.get("client", ""), "url": form.get("url", ""), "event_types": chosen}
    client = next((c for c, _ in _clients() if c.client_id == form.get("client")), None)
    errors: dict[str, list[str]] = {}
    if client is None:
        errors["client"] = [t("请选择 API 客户端", "choose an API client")]
    url = form.get("url", "").strip()
    try:
        subs.check_url(url, allow_http=subs.allows_http(url, _settings()))
    except subs.SubscriptionError as exc:
        errors["url"] = [_say(exc)]
    if client is not None:
        try:
            subs.check_event_types(chosen, client)
        except subs.SubscriptionError as exc:
            errors["event_types"] = [_say(exc)]
    if errors or client is None:
        return _form_page(shown, errors, 422)
    sub, secret = subs.create_subscription(
        db_session(),
        client,
        url=url,
        event_types=chosen,
        key_secret=_settings().key_secret,
        actor=_actor(),
        allow_http=subs.allows_http(url, _settings()),
    )
    g.admin_audited = True
    return _secret_page(sub, client, secret, rotated=False)


@admin_bp.get("/push/<public_id>")
@require_permission("webhooks.view")
def push_subscription(public_id: str) -> Any:
    session = db_session()
    sub = _subscription_or_404(public_id)
    client = session.get(ApiClient, sub.client_id)
    operator = session.get(Operator, client.operator_id) if client and client.operator_id else None
    recent = queries.deliveries(
        session,
        queries.DeliveryFilters(subscription_id=sub.id),
        tz=_settings().tz,
        size=20,
    )
    return render_template(
        "admin/push/detail.html",
        sub=sub,
        client=client,
        operator=operator,
        recent=recent,
        overlap=sub.previous_until if sub.previous_until and sub.previous_until > now() else None,
        may_manage=can("webhooks.manage") and sub.status != "deleted",
        **_words(),
    )


@admin_bp.post("/push/<public_id>/rotate")
@require_permission("webhooks.manage")
def push_rotate(public_id: str) -> Any:
    sub = _subscription_or_404(public_id)
    if sub.status == "deleted":
        abort(404)
    secret = subs.rotate_secret(
        db_session(), sub, key_secret=_settings().key_secret, actor=_actor()
    )
    g.admin_audited = True
    client = db_session().get(ApiClient, sub.client_id)
    assert client is not None
    return _secret_page(sub, client, secret, rotated=True)


@admin_bp.post("/push/<public_id>/status")
@require_permission("webhooks.manage")
def push_status(public_id: str) -> Any:
    sub = _subscription_or_404(public_id)
    status = request.form.get("status", "")
    if status not in SUBSCRIPTION_STATUS or sub.status == "deleted":
        abort(400)
    reason = request.form.get("reason", "").strip()[:500]
    subs.set_status(db_session(), sub, status, actor=_actor(), reason=reason)
    g.admin_audited = True
    flash(
        {
            "active": t("已启用，投递恢复。", "Enabled: deliveries resume."),
            "disabled": t("已停用，不再投递。", "Disabled: nothing more is sent."),
            "deleted": t("已删除，不再投递。", "Deleted: nothing more is sent."),
        }[status],
        "success",
    )
    if status == "deleted":
        return redirect(url_for("admin.push_subscriptions"))
    return redirect(url_for("admin.push_subscription", public_id=public_id))


# --- deliveries -----------------------------------------------------------------------------------


def _chart(days: list[queries.DayFigures]) -> Any:
    first, last = days[0].day, days[-1].day
    return charts.stacked_bar_chart(
        [d.day.strftime("%m-%d") for d in days],
        [
            charts.Series(t("送达", "Delivered"), charts.PALETTE[0], [d.delivered for d in days]),
            charts.Series(t("失败", "Failed"), charts.PALETTE[1], [d.failed for d in days]),
        ],
        title=t(
            f"近 {CHART_DAYS} 天每日投递尝试：送达与失败",
            f"Delivery attempts per day, last {CHART_DAYS} days: delivered and failed",
        ),
        desc=t(
            f"{first} 至 {last} 每天向订阅方发送的次数，分为送达（对方回应 2xx）与失败两段堆叠；"
            "两段之和为当天的尝试次数。",
            f"Sends to subscribers each day from {first} to {last}, stacked as delivered (the "
            "receiver answered 2xx) and failed; together they are the day's attempts.",
        ),
        y_label=t("次数", "Attempts"),
        empty=t(f"近 {CHART_DAYS} 天没有投递", f"No deliveries in the last {CHART_DAYS} days"),
    )


@admin_bp.get("/push/deliveries")
@require_permission("webhooks.view")
def push_deliveries() -> Any:
    session = db_session()
    args = request.args
    errors: dict[str, list[str]] = {}
    visible = queries.subscriptions(session, operator_id=operator_scope(), include_deleted=True)
    by_public = {row.subscription.public_id: row.subscription for row in visible}
    status = args.get("status", "")
    if status and status not in DELIVERY_STATES:
        errors["status"] = [t("未知状态", "unknown status")]
    event_type = args.get("event", "")
    if event_type and event_type not in EVENT_TYPES:
        errors["event"] = [t("未知事件类型", "unknown event type")]
    chosen = args.get("subscription", "")
    if chosen and chosen not in by_public:
        errors["subscription"] = [t("没有该订阅", "no such subscription")]
    day = None
    if args.get("day"):
        try:
            day = dt.date.fromisoformat(args["day"])
        except ValueError:
            errors["day"] = [t("日期格式应为 YYYY-MM-DD", "a date as YYYY-MM-DD")]
    before = args.get("before", type=int)
    filters = queries.DeliveryFilters(
        status="" if "status" in errors else status,
        subscription_id=by_public[chosen].id if chosen in by_public else None,
        event_type="" if "event" in errors else event_type,
        day=day,
    )
    page = queries.deliveries(
        session,
        filters,
        tz=_settings().tz,
        operator_id=operator_scope(),
        before=before,
        size=PAGE_SIZE,
    )
    last = today()
    days = queries.attempts_per_day(
        session,
        first=last - dt.timedelta(days=CHART_DAYS - 1),
        last=last,
        tz=_settings().tz,
        operator_id=operator_scope(),
    )
    kept = {k: v for k, v in args.items() if k in ("status", "event", "subscription", "day") and v}
    older_url = (
        url_for("admin.push_deliveries") + "?" + urlencode({**kept, "before": page.older})
        if page.older
        else None
    )
    first_url = (
        url_for("admin.push_deliveries") + ("?" + urlencode(kept) if kept else "")
        if before
        else None
    )
    return render_template(
        "admin/push/deliveries.html",
        page=page,
        args=args,
        errors=errors,
        subscriptions=visible,
        days=days,
        chart=_chart(days),
        older_url=older_url,
        first_url=first_url,
        may_manage=can("webhooks.manage"),
        **_words(),
    )


@admin_bp.get("/push/deliveries/<int:delivery_id>")
@require_permission("webhooks.view")
def push_delivery(delivery_id: int) -> Any:
    found = queries.delivery(db_session(), delivery_id, operator_id=operator_scope())
    if found is None:
        abort(404)
    # A personal event's data is a pseudonym and a level: reading it is recorded.
    admin_audit("admin.webhook_delivery_view", delivery=delivery_id, event=found.event.public_id)
    return render_template(
        "admin/push/delivery.html",
        d=found,
        # A cancelled delivery's level was never sent: the citizen revoked the link (as the API).
        data=None
        if found.delivery.status == "cancelled"
        else json.dumps(found.event.data, ensure_ascii=False, indent=2),
        may_manage=can("webhooks.manage"),
        **_words(),
    )


@admin_bp.post("/push/deliveries/resend")
@require_permission("webhooks.manage")
def push_resend() -> Any:
    wanted = [int(v) for v in request.form.getlist("ids") if v.isdigit() and len(v) < 19]
    ids = queries.owned_deliveries(db_session(), wanted, operator_id=operator_scope())
    if not ids:
        flash(t("请先勾选要重发的投递。", "Tick the deliveries to send again first."), "error")
    else:
        queued = deliveries.resend(db_session(), ids, actor=_actor())
        g.admin_audited = True
        skipped = len(ids) - queued
        flash(
            t(
                f"已重新排队 {queued} 条投递，将很快发送。"
                + (f"{skipped} 条已取消的未重发（市民已撤销授权）。" if skipped else ""),
                f"{queued} deliveries queued again; they go out shortly."
                + (
                    f" {skipped} cancelled ones were not (the citizen revoked the link)."
                    if skipped
                    else ""
                ),
            ),
            "success",
        )
    back = safe_next(request.form.get("back"))
    if back is not None and back.startswith("/admin/push"):
        return redirect(back)
    return redirect(url_for("admin.push_deliveries"))
