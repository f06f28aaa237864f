"""The CLI finds the city's instance/ the way a user expects, and says in one line when there is none
(issue 12): never a fresh instance with new keys and an empty database, never a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from citycredit.cli.main import main
from citycredit.core import config
from citycredit.core.config import find_instance_dir


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project where `make demo` ran: instance/ holds the city's key and database."""
    instance = tmp_path / "project" / "instance"
    instance.mkdir(parents=True)
    (instance / "id_hash.key").write_text("11" * 32)
    (tmp_path / "project" / "docs" / "api").mkdir(parents=True)
    return tmp_path / "project"


@pytest.fixture
def newcomer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CITYCREDIT_* in the environment, and source code that is not in a project with a city."""
    for variable in ("CITYCREDIT_INSTANCE_DIR", "CITYCREDIT_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(config, "SOURCE_TREE", tmp_path / "site-packages")


def test_the_nearest_city_instance_above_the_working_directory_is_found(
    project: Path, newcomer: None
) -> None:
    assert find_instance_dir({}, cwd=project / "docs" / "api") == project / "instance"
    assert find_instance_dir({}, cwd=project) == Path("instance")
    # Another project's instance/ (a Flask app's, say) is not a city: the walk goes on past it.
    (project / "docs" / "instance").mkdir()
    assert find_instance_dir({}, cwd=project / "docs" / "api") == project / "instance"


def test_the_variable_wins_and_the_source_tree_is_the_last_resort(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_instance_dir({"CITYCREDIT_INSTANCE_DIR": "/srv/city"}, cwd=project) == Path(
        "/srv/city"
    )
    monkeypatch.setattr(config, "SOURCE_TREE", project)
    assert find_instance_dir({}, cwd=elsewhere) == project / "instance"


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output.splitlines()


def test_outside_any_project_a_command_says_what_to_do_in_one_line_and_creates_nothing(
    tmp_path: Path, newcomer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, lines = _run("model", "list", env={"CITYCREDIT_ENV": "development"})
    assert code == 1
    assert len(lines) == 1, lines
    assert "no city found" in lines[0] and "CITYCREDIT_INSTANCE_DIR" in lines[0]
    assert str(elsewhere) in lines[0]
    assert list(elsewhere.iterdir()) == []  # no instance/, no keys, no empty database

    empty = tmp_path / "empty"
    code, lines = _run("explain", "-", env={"CITYCREDIT_INSTANCE_DIR": str(empty)})
    assert code == 1 and len(lines) == 1, lines
    assert f"CITYCREDIT_INSTANCE_DIR={empty} holds no citycredit.sqlite3" in lines[0]
    assert not empty.exists()


def test_a_database_without_tables_says_run_db_upgrade(
    tmp_path: Path, newcomer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    sqlite3.connect(instance / "citycredit.sqlite3").close()
    monkeypatch.chdir(tmp_path)
    code, lines = _run("model", "list", env={"CITYCREDIT_ENV": "development"})
    assert code == 1 and len(lines) == 1, lines
    assert "has no tables yet: run `citycredit db upgrade`" in lines[0]
