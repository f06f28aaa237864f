"""Secrets: production never makes its own; a new deployment writes them once; development may."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from citycredit.core.config import ConfigError, MissingSecret, load_settings, write_new_secrets

PRODUCTION = {"CITYCREDIT_ENV": "production"}


def test_production_refuses_to_start_without_its_secrets_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(MissingSecret) as refused:
        load_settings(env=PRODUCTION, instance_dir=tmp_path / "instance")
    assert refused.value.variable == "CITYCREDIT_ID_HASH_KEY"
    assert "citycredit secrets init" in str(refused.value)
    assert not (tmp_path / "instance" / "id_hash.key").exists()  # nothing minted silently


def test_production_names_the_session_key_when_only_it_is_missing(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "CITYCREDIT_ID_HASH_KEY": "11" * 32,
        "CITYCREDIT_KEY_SECRET": "22" * 32,
        "CITYCREDIT_TOKEN_KEY": "33" * 32,
    }
    with pytest.raises(MissingSecret) as refused:
        load_settings(env=env, instance_dir=tmp_path)
    assert refused.value.variable == "CITYCREDIT_SECRET_KEY"
    settings = load_settings(env={**env, "CITYCREDIT_SECRET_KEY": "ab" * 16}, instance_dir=tmp_path)
    assert settings.id_hash_key == bytes.fromhex("11" * 32)


def test_two_hosts_sharing_written_secrets_make_the_same_pseudonyms(tmp_path: Path) -> None:
    written = write_new_secrets(tmp_path / "a")
    assert {p.name for p in written} == {
        "id_hash.key",
        "signing.secret",
        "token.key",
        "session.key",
    }
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in written)
    first = load_settings(env=PRODUCTION, instance_dir=tmp_path / "a")
    again = load_settings(env=PRODUCTION, instance_dir=tmp_path / "a")
    assert first.id_hash_key == again.id_hash_key and first.secret_key == again.secret_key
    with pytest.raises(ConfigError, match="already holds"):
        write_new_secrets(tmp_path / "a")


def test_development_makes_missing_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    first = load_settings(env={"CITYCREDIT_ENV": "development"}, instance_dir=tmp_path)
    again = load_settings(env={"CITYCREDIT_ENV": "development"}, instance_dir=tmp_path)
    assert first.id_hash_key == again.id_hash_key
    demo = load_settings(
        env={**PRODUCTION, "CITYCREDIT_DEMO_MODE": "1"}, instance_dir=tmp_path / "d"
    )
    assert demo.demo_mode and len(demo.token_key) == 32


def test_an_unknown_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CITYCREDIT_ENV"):
        load_settings(env={"CITYCREDIT_ENV": "prod"}, instance_dir=tmp_path)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citycredit.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_command_line_says_what_is_missing_and_writes_secrets_once(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "CITYCREDIT_INSTANCE_DIR": str(tmp_path),
        "CITYCREDIT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    refused = _cli("keys", "list", env=env)
    assert refused.returncode == 1
    assert "CITYCREDIT_ID_HASH_KEY is not set" in refused.stderr
    assert "Traceback" not in refused.stderr
    made = _cli("secrets", "init", env=env)
    assert made.returncode == 0, made.stderr
    assert "id_hash.key" in made.stdout
    again = _cli("secrets", "init", env=env)
    assert again.returncode == 1 and "already holds" in again.stderr
    lines = _cli("secrets", "env", env=env).stdout.splitlines()
    assert [line.split("=")[0] for line in lines] == [
        "CITYCREDIT_ID_HASH_KEY",
        "CITYCREDIT_KEY_SECRET",
        "CITYCREDIT_TOKEN_KEY",
        "CITYCREDIT_SECRET_KEY",
    ]
    # Another host given those values as its environment starts, with no files of its own.
    other = tmp_path / "other"
    other_env = dict(line.split("=", 1) for line in lines)
    settings = load_settings(env={**PRODUCTION, **other_env}, instance_dir=other)
    assert settings.id_hash_key == bytes.fromhex((tmp_path / "id_hash.key").read_text().strip())


def test_the_benchmarks_floor_endpoint_is_refused_in_production(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "CITYCREDIT_ID_HASH_KEY": "11" * 32,
        "CITYCREDIT_KEY_SECRET": "22" * 32,
        "CITYCREDIT_TOKEN_KEY": "33" * 32,
        "CITYCREDIT_SECRET_KEY": "ab" * 16,
    }
    assert not load_settings(env=env, instance_dir=tmp_path).bench_floor
    with pytest.raises(ConfigError, match="CITYCREDIT_BENCH_FLOOR"):
        load_settings(env={**env, "CITYCREDIT_BENCH_FLOOR": "1"}, instance_dir=tmp_path)
    development = {"CITYCREDIT_ENV": "development", "CITYCREDIT_BENCH_FLOOR": "1"}
    assert load_settings(env=development, instance_dir=tmp_path).bench_floor
