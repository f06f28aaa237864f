"""The public red and black lists (红黑名单公示): what NDRC order 58 allows to be shown — the list,
the masked name, the deciding department, the decision document and the publication period — as a
page (Chinese first, ``?lang=en``) and a JSON feed. No sign-in; never an ID number or a full name."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request

from citycredit.web.context import db_session, platform_of
from governance import lists

bp = Blueprint("public_lists", __name__)


def _today() -> dt.date:
    return platform_of(current_app).today()


def _kind() -> str | None:
    kind = request.args.get("kind")
    return kind if kind in ("red", "black") else None


@bp.get("/lists")
def page() -> Any:
    lang = "en" if request.args.get("lang") == "en" else "zh"
    kind = _kind()
    entries = lists.public_entries(db_session(), today=_today(), kind=kind)
    return render_template(
        "lists.html",
        lang=lang,
        kind=kind,
        city=platform_of(current_app).settings.city_name,
        red=[e for e in entries if e.kind == "red"],
        black=[e for e in entries if e.kind == "black"],
        today=_today(),
    )


@bp.get("/lists.json")
def feed() -> Any:
    entries = lists.public_entries(db_session(), today=_today(), kind=_kind())
    return jsonify(
        issuer=platform_of(current_app).settings.city_code,
        as_of=_today().isoformat(),
        entries=[
            {
                k: (v.isoformat() if isinstance(v, dt.date) else v)
                for k, v in dataclasses.asdict(e).items()
            }
            for e in entries
        ],
    )


def init_lists(app: Flask) -> None:
    app.register_blueprint(bp)
