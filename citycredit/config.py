"""Configuration read from the environment (``CITYCREDIT_*``), with explicit overrides applied last."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_INSTANCE_DIR = Path("instance")


class ConfigError(RuntimeError):
    """The configuration cannot be used as given."""


@dataclass(frozen=True)
class Settings:
    """Everything a process of the platform needs to know about its city and its storage."""

    database_url: str
    id_hash_key: bytes
    city_code: str = "demo"
    city_name: str = "示范市"
    timezone: str = "Asia/Shanghai"
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    sql_echo: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


def _instance_key(instance_dir: Path, name: str) -> bytes:
    """Read a per-instance secret, creating it on first use so a fresh demo needs no setup.

    A production deployment sets CITYCREDIT_ID_HASH_KEY instead; the file fallback exists only so that
    `make demo` works on a fresh clone and keeps the same pseudonyms across restarts.
    """
    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / name
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, then apply ``overrides`` (tests and callers win)."""
    env = dict(os.environ if env is None else env)
    instance_dir = Path(
        overrides.pop("instance_dir", env.get("CITYCREDIT_INSTANCE_DIR", DEFAULT_INSTANCE_DIR))
    )
    database_url = overrides.pop("database_url", None) or env.get("CITYCREDIT_DATABASE_URL")
    if not database_url:
        instance_dir.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite:///{(instance_dir / 'citycredit.sqlite3').resolve()}"
    if "id_hash_key" in overrides:
        id_hash_key = overrides.pop("id_hash_key")
    elif env.get("CITYCREDIT_ID_HASH_KEY"):
        try:
            id_hash_key = bytes.fromhex(env["CITYCREDIT_ID_HASH_KEY"])
        except ValueError as exc:
            raise ConfigError(
                "CITYCREDIT_ID_HASH_KEY must be hex (64 hex digits recommended)"
            ) from exc
    else:
        id_hash_key = _instance_key(instance_dir, "id_hash.key")
    if len(id_hash_key) < 16:
        raise ConfigError("the ID hash key must be at least 16 bytes")
    settings = Settings(
        database_url=database_url,
        id_hash_key=id_hash_key,
        city_code=env.get("CITYCREDIT_CITY_CODE", "demo"),
        city_name=env.get("CITYCREDIT_CITY_NAME", "示范市"),
        timezone=env.get("CITYCREDIT_TIMEZONE", "Asia/Shanghai"),
        instance_dir=instance_dir,
        secret_key=env.get("CITYCREDIT_SECRET_KEY") or secrets.token_hex(32),
        sql_echo=env.get("CITYCREDIT_SQL_ECHO", "") == "1",
    )
    return settings.with_overrides(**overrides)
