"""Adding a domain is a new package plus one line: every shell picks up what it declares."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from citycredit.core import registry

PACKAGE = {
    "__init__.py": """
        from citycredit.core.registry import Domain

        DOMAIN = Domain(
            name="parcels",
            models=("parcels.models",),
            jobs="parcels.jobs:JOBS",
            scopes={"parcels:read": "read parcels (a test domain)"},
            client_kinds=("courier",),
            api=("parcels.api:blueprint",),
            web=("parcels.pages:init",),
            admin_pages=("parcels.admin_pages",),
            cli=("parcels.commands:COMMANDS",),
        )
    """,
    "models.py": """
        from sqlalchemy.orm import Mapped, mapped_column

        from citycredit.core.db import Base


        class Parcel(Base):
            __tablename__ = "test_parcel"
            id: Mapped[int] = mapped_column(primary_key=True)
    """,
    "jobs.py": """
        from citycredit.core.jobs import JobSpec

        def sweep(session, ctx):
            pass

        JOBS = (JobSpec("parcels.sweep", sweep, "cron", {"hour": 4}),)
    """,
    "api.py": """
        from flask_smorest import Blueprint

        blueprint = Blueprint("parcels", __name__, url_prefix="/api/v1/parcels")

        @blueprint.route("", methods=["GET"])
        def parcels():
            return {"parcels": []}
    """,
    "pages.py": """
        def init(app):
            app.add_url_rule("/parcels", "parcels_page", lambda: "parcels")
    """,
    "admin_pages.py": """
        from citycredit.web.admin.web import NAV, NavItem, bp

        @bp.get("/parcels")
        def parcels_admin():
            return "admin parcels"

        NAV.append(NavItem("admin.parcels_admin", "包裹", "Parcels"))
    """,
    "commands.py": """
        import click

        @click.command("parcels")
        def parcels():
            "Parcels (a test domain)."
            click.echo("parcels!")

        COMMANDS = (parcels,)
    """,
}


@pytest.fixture
def parcels_domain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    package = tmp_path / "parcels"
    package.mkdir()
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    # The one line a new domain adds:
    monkeypatch.setattr(registry, "INSTALLED_DOMAINS", (*registry.INSTALLED_DOMAINS, "parcels"))
    registry.installed_domains.cache_clear()
    yield
    registry.installed_domains.cache_clear()
    for name in [m for m in sys.modules if m == "parcels" or m.startswith("parcels.")]:
        del sys.modules[name]


@pytest.mark.usefixtures("parcels_domain")
def test_a_new_domain_reaches_the_scheduler_alembic_scopes_and_clients() -> None:
    from citycredit.core.clients import all_client_kinds, all_scopes
    from citycredit.core.db import Base
    from citycredit.core.jobs import registered_jobs

    assert "parcels.sweep" in {job.id for job in registered_jobs()}
    registry.load_models()
    assert "test_parcel" in Base.metadata.tables
    assert all_scopes()["parcels:read"].startswith("read parcels")
    assert "courier" in all_client_kinds()
    Base.metadata.remove(Base.metadata.tables["test_parcel"])


def test_a_new_domain_reaches_the_web_app_the_api_docs_and_the_admin(tmp_path: Path) -> None:
    # A fresh interpreter: the admin's blueprint takes new pages only before its first app is made.
    package = tmp_path / "parcels"
    package.mkdir()
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text))
    probe = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from citycredit.core import registry
        registry.INSTALLED_DOMAINS = (*registry.INSTALLED_DOMAINS, "parcels")
        from citycredit.web.app import create_app
        app = create_app({{"database_url": "sqlite:///{tmp_path}/db.sqlite3",
                          "instance_dir": {str(tmp_path)!r}, "environment": "development"}})
        client = app.test_client()
        spec = client.get("/api/openapi.json").get_json()
        print(json.dumps({{
            "page": client.get("/parcels").text,
            "api": "/api/v1/parcels" in spec["paths"],
            "scope": "parcels:read" in json.dumps(spec["components"]["securitySchemes"]),
            "admin": "/admin/parcels" in {{r.rule for r in app.url_map.iter_rules()}},
        }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "page": "parcels",
        "api": True,
        "scope": True,
        "admin": True,
    }


@pytest.mark.usefixtures("parcels_domain")
def test_a_new_domain_reaches_the_command_line() -> None:
    from citycredit.cli.main import _register_domain_commands, main

    _register_domain_commands()
    try:
        result = CliRunner().invoke(main, ["parcels"])
        assert result.exit_code == 0, result.output
        assert result.output == "parcels!\n"
    finally:
        main.commands.pop("parcels", None)
