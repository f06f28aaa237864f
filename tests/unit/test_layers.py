"""The layers of docs/ARCHITECTURE.md hold: the import contracts, and no domain module loads Flask."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_PACKAGES = (
    "points_engine",
    "scenarios",
    "credit_codes",
    "federation",
    "citizen",
    "governance",
    "admin",
)
WEB = ("flask", "werkzeug", "jinja2", "flask_smorest")


def _modules(package: str) -> list[str]:
    path = ROOT / package.replace(".", "/")
    found = [package]
    for info in pkgutil.walk_packages([str(path)], prefix=package + "."):
        found.append(info.name)
    return found


def test_the_import_contracts_are_kept() -> None:
    """import-linter (.importlinter): shells → domains → ground, the SDK imports nothing of ours."""
    probe = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


def test_no_domain_or_ground_module_loads_a_web_framework() -> None:
    """Every module, imported one after another in a fresh interpreter, leaves Flask unloaded: the
    CLI, the scheduler and the benches never pay for the web app (once loaded, it would stay)."""
    modules = [m for p in (*DOMAIN_PACKAGES, "citycredit.core") for m in _modules(p)]
    assert len(modules) > 40  # the walk found the packages' modules, not just their names
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"    loaded = sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r})\n"
        "    if loaded:\n"
        "        print(name, 'loads', ', '.join(loaded[:5]))\n"
        "        break\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ""
