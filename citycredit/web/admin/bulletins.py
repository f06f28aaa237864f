"""Admin pages for the next-day publication (issue 11 §4): each day's signed governance bulletin,
what it carries, its delivery state (attempts, the last error, the next attempt), and a resend."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, url_for
from sqlalchemy import select

from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    current_user,
    require_permission,
    t,
)
from citycredit.web.admin.web import bp as admin_bp
from citycredit.web.context import db_session, platform_of
from federation import jws
from governance import bulletins
from governance.models import GovernanceBulletin

PERMISSIONS["bulletins.view"] = frozenset({"platform_admin", "reviewer", "auditor"})
PERMISSIONS["bulletins.manage"] = frozenset({"platform_admin"})

NAV.append(
    NavItem("admin.bulletins_list", "次日报送", "Next-day bulletins", PERMISSIONS["bulletins.view"])
)

DELIVERY = {
    "pending": ("待报送", "pending", "running"),
    "delivered": ("已送达", "delivered", "completed"),
    "failed": ("报送失败", "failed", "failed"),
    "pull_only": ("供拉取", "for pulling", "draft"),
}


def _names() -> dict[str, Any]:
    return {
        "delivery_name": lambda code: t(*DELIVERY[code][:2]),
        "delivery_badge": lambda code: DELIVERY[code][2],
    }


@admin_bp.get("/bulletins")
@require_permission("bulletins.view")
def bulletins_list() -> Any:
    rows = db_session().scalars(
        select(GovernanceBulletin).order_by(GovernanceBulletin.seq.desc()).limit(90)
    )
    return render_template(
        "admin/bulletins/list.html",
        rows=list(rows),
        push_url=platform_of(current_app).settings.bulletin_push_url,
        **_names(),
    )


def _bulletin_or_404(seq: int) -> GovernanceBulletin:
    found = db_session().scalar(select(GovernanceBulletin).where(GovernanceBulletin.seq == seq))
    if found is None:
        abort(404)
    return found


@admin_bp.get("/bulletins/<int:seq>")
@require_permission("bulletins.view")
def bulletin_detail(seq: int) -> Any:
    bulletin = _bulletin_or_404(seq)
    payload = jws.unverified_payload(bulletin.document)
    return render_template(
        "admin/bulletins/detail.html",
        b=bulletin,
        payload=payload,
        pretty=json.dumps(payload, ensure_ascii=False, indent=2),
        **_names(),
    )


@admin_bp.post("/bulletins/<int:seq>/resend")
@require_permission("bulletins.manage")
def bulletin_resend(seq: int) -> Any:
    bulletin = _bulletin_or_404(seq)
    user = current_user()
    assert user is not None
    bulletins.resend(db_session(), bulletin, actor=f"admin:{user.username}")
    g.admin_audited = True
    flash(
        t(
            f"第 {seq} 号报送已重新排队，将在一分钟内发送。",
            f"Bulletin #{seq} is queued again and goes out within a minute.",
        ),
        "success",
    )
    return redirect(url_for("admin.bulletin_detail", seq=seq))
