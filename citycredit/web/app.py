"""The Flask application factory. Nothing is created at import time; overrides are applied last."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Flask, jsonify, render_template, request
from jinja2 import FileSystemBytecodeCache
from jinja2.bccache import Bucket
from werkzeug.middleware.proxy_fix import ProxyFix

from citycredit.core.config import Settings, load_settings
from citycredit.core.platform import Platform
from citycredit.core.registry import installed_domains, resolve_all
from citycredit.web.api import init_api
from citycredit.web.compression import init_compression
from citycredit.web.context import db_session, platform_of
from citycredit.web.floor import init_floor
from citycredit.web.pipeline import PipelineFlask, init_pipeline
from citycredit.web.security import init_security
from points_engine import queries
from points_engine.operations import NoPublishedModel
from points_engine.tiers import TIER_RELATION, common_level_name


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the web app for one city. ``config`` is a Settings, or overrides of the environment's."""
    settings = config if isinstance(config, Settings) else load_settings(**(config or {}))
    app = PipelineFlask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key
    # 10,000 records are about 3 MB of JSON; anything far larger is refused before it is parsed.
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    platform = Platform.start(settings)
    app.extensions["citycredit"] = platform
    _keep_compiled_templates(app, settings)  # before anything makes the template environment
    init_pipeline(app)  # first: its commit must run after every other after_request hook
    _register_pages(app)
    init_api(app)
    init_floor(app)  # benchmarks only: registered when Settings.bench_floor is on
    for domain in installed_domains():
        for init in resolve_all(domain.web):
            init(app)
    init_security(app)  # it wraps the views every shell registered
    init_compression(app)  # last: its hook then runs first, on the body the view made
    if settings.trusted_proxies:
        # Behind a load balancer the peer is the balancer: take the caller's address (which the
        # rate limits count) and scheme from the headers of that many proxies, and no more.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    return app


class _TemplateCache(FileSystemBytecodeCache):
    """Compiled templates in the instance folder: a new worker loads a page's compiled template
    instead of compiling it on its first request (the admin's first dashboard paid ~30 ms per
    template). Jinja keys each by the template's source, so an edited template is compiled anew."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        # A full or read-only disk costs the next worker a compile, never a page.
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _keep_compiled_templates(app: Flask, settings: Settings) -> None:
    if not settings.instance_dir.is_dir():
        return  # no instance folder is ever made just for this
    folder = settings.instance_dir / "cache" / "templates"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return  # a read-only instance: templates are compiled in memory, as before
    app.jinja_options = {**app.jinja_options, "bytecode_cache": _TemplateCache(str(folder))}


def _register_pages(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/")
    def overview() -> Any:
        session = db_session()
        lang = "en" if request.args.get("lang") == "en" else "zh"
        stats = queries.city_stats(session)
        try:
            tiers = queries.tier_distribution(session)
        except NoPublishedModel:
            tiers = []
        return render_template(
            "overview.html",
            lang=lang,
            city=(
                platform_of(app).settings.city_name_en
                if lang == "en"
                else platform_of(app).settings.city_name
            ),
            stats=stats,
            tiers=tiers,
            common_level_name=common_level_name,
            tier_relation=TIER_RELATION,
            max_count=max((t.citizens for t in tiers), default=0) or 1,
        )
