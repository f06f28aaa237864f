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
    # Encrypts the stored private signing keys.
    key_secret: bytes
    # AES-GCM key of the per-token citizen pseudonym inside QR credit codes; 32 bytes.
    token_key: bytes
    city_code: str = "demo"
    city_name: str = "示范市"
    timezone: str = "Asia/Shanghai"
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    sql_echo: bool = False
    public_url: str = "http://127.0.0.1:5000"
    # How citizens sign in (citizen.identity.PROVIDERS); "demo" sends one-time codes to the log.
    citizen_identity: str = "demo"
    # Demo mode shows the demo provider's one-time code on screen too. Never on in production.
    demo_mode: bool = False
    # Lifetime of a credit code, at most 120 s (shorter only to test the phone page's refresh).
    code_lifetime_seconds: int = 120

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


# Secrets: (setting, environment variable, instance file). Each is 32 random bytes, given as hex.
SECRETS = (
    ("id_hash_key", "CITYCREDIT_ID_HASH_KEY", "id_hash.key"),
    ("key_secret", "CITYCREDIT_KEY_SECRET", "signing.secret"),
    ("token_key", "CITYCREDIT_TOKEN_KEY", "token.key"),
)


def _instance_key(instance_dir: Path, name: str) -> bytes:
    """Read a per-instance secret, creating it on first use so a fresh demo needs no setup.

    A production deployment sets the environment variables instead; the file fallback exists so that
    `make demo` works on a fresh clone and keeps the same pseudonyms and keys across restarts.
    """
    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / name
    if not path.exists():
        # Several processes (gunicorn workers) may start at once: the key is written to a private
        # file and linked into place, which succeeds for exactly one of them; the others read it.
        temporary = instance_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return bytes.fromhex(path.read_text().strip())


def _secret(
    env: dict[str, str], overrides: dict[str, Any], instance_dir: Path, spec: tuple[str, str, str]
) -> bytes:
    setting, variable, filename = spec
    if setting in overrides:
        value: bytes = overrides.pop(setting)
    elif env.get(variable):
        try:
            value = bytes.fromhex(env[variable])
        except ValueError as exc:
            raise ConfigError(f"{variable} must be hex (64 hex digits recommended)") from exc
    else:
        value = _instance_key(instance_dir, filename)
    if len(value) < 16:
        raise ConfigError(f"{variable} must be at least 16 bytes")
    if setting == "token_key" and len(value) not in (16, 24, 32):
        raise ConfigError(
            f"{variable} must be an AES key: 16, 24 or 32 bytes (32, 64 or 48 hex digits)"
        )
    return value


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
    keys = {spec[0]: _secret(env, overrides, instance_dir, spec) for spec in SECRETS}
    settings = Settings(
        database_url=database_url,
        **keys,
        city_code=env.get("CITYCREDIT_CITY_CODE", "demo"),
        city_name=env.get("CITYCREDIT_CITY_NAME", "示范市"),
        timezone=env.get("CITYCREDIT_TIMEZONE", "Asia/Shanghai"),
        instance_dir=instance_dir,
        # Signs the admin's session cookies: every worker and restart must share it.
        secret_key=env.get("CITYCREDIT_SECRET_KEY")
        or _instance_key(instance_dir, "session.key").hex(),
        sql_echo=env.get("CITYCREDIT_SQL_ECHO", "") == "1",
        public_url=env.get("CITYCREDIT_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        citizen_identity=env.get("CITYCREDIT_CITIZEN_IDENTITY", "demo"),
        demo_mode=env.get("CITYCREDIT_DEMO_MODE", "") == "1",
        code_lifetime_seconds=_lifetime(env.get("CITYCREDIT_CODE_LIFETIME", "120")),
    )
    return settings.with_overrides(**overrides)


def _lifetime(raw: str) -> int:
    try:
        seconds = int(raw)
    except ValueError:
        raise ConfigError("CITYCREDIT_CODE_LIFETIME must be a whole number of seconds") from None
    if not 5 <= seconds <= 120:
        raise ConfigError("CITYCREDIT_CODE_LIFETIME must be from 5 to 120 seconds")
    return seconds
