"""Configuration read from the environment (``CITYCREDIT_*``), with explicit overrides applied last."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_INSTANCE_DIR = Path("instance")
# The city's database (SQLite, when no CITYCREDIT_DATABASE_URL is set) and the first secret it makes:
# an ``instance/`` holding either is a city's, not some other project's folder of the same name.
INSTANCE_DATABASE = "citycredit.sqlite3"
INSTANCE_MARKERS = (INSTANCE_DATABASE, "id_hash.key")
# The project the code runs from (an editable install or a clone on PYTHONPATH).
SOURCE_TREE = Path(__file__).resolve().parents[2]


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
    # Whether CITYCREDIT_PUBLIC_URL (or `citycredit serve`) named it; if not, the discovery document
    # names the address the request came to rather than a port nobody may be serving.
    public_url_configured: bool = False
    # How citizens sign in (citizen.identity.PROVIDERS); "demo" sends one-time codes to the log.
    citizen_identity: str = "demo"
    # Demo mode shows the demo provider's one-time code on screen too. Never on in production.
    demo_mode: bool = False
    # "production" (the default) or "development": only development (and demo mode) may create
    # missing secrets on the fly; production refuses to start without them.
    environment: str = "production"
    # Lifetime of a credit code, at most 120 s (shorter only to test the phone page's refresh).
    code_lifetime_seconds: int = 120
    # Where rate-limit counters live (citycredit.web.security): "memory://" counts per process (the
    # demo); production sets redis://host:6379/N so every worker and host shares one count.
    rate_limit_storage: str = "memory://"
    # Reverse proxies (load balancers) in front of the app whose X-Forwarded-For/-Proto/-Host are
    # believed. 0 (the default) believes none: a caller cannot pick the address its limits count.
    trusted_proxies: int = 0
    # Verifications one API client may make, e.g. "1200 per minute" (a busy venue's desk may need more).
    rate_limit_verify: str = "1200 per minute"
    # --- the federation of partner cities (docs/FEDERATION.md) ---
    city_name_en: str = "Demo City"
    # "prefecture", "county", … : nothing assumes one level of government.
    city_level: str = "prefecture"
    # Where this city fetches the trust list (the coordinator's base URL); empty: not federated.
    federation_coordinator_url: str = ""
    # The trust anchor's fingerprint (RFC 7638), pinned at onboarding, out of band.
    trust_anchor: str = ""
    # The oldest trust list still honoured, in seconds (a clear problem type beyond it).
    trust_list_max_age: int = 172800
    # This deployment also plays coordinator: it signs the trust list with the anchor key.
    federation_coordinator: bool = False
    # --- objections (issue 11 §1) ---
    # Working days an objection must be decided in, on the official calendar (citycredit.core.workdays).
    objection_days: int = 20
    # An optional JSON file of official holidays / swapped working days that overrides the library's
    # year table (a new year's arrangement without a release); empty: the library's alone.
    workdays_file: str = ""
    # --- next-day publication (issue 11 §4) ---
    # Where each day's signed governance bulletin is pushed (the provincial / national platform's
    # endpoint); empty: pull only (GET /api/v1/governance/bulletins).
    bulletin_push_url: str = ""
    # A bearer token the receiving endpoint asks for (sent as Authorization), if any.
    bulletin_push_token: str = ""
    # --- the tamper-evident audit log (issue 13 §4, docs/AUDIT.md) ---
    # Audit events younger than this are not sealed yet: longer than the longest request (gunicorn's
    # 60 s), so a transaction that commits after a later one never lands below the sealed mark.
    audit_seal_grace_seconds: int = 300
    # --- benchmarks (issue 14) ---
    # Serve POST /bench/verification-floor (citycredit.web.floor), the least a verification can
    # cost, for bench/verify.py. Development only: production refuses to start with it.
    bench_floor: bool = False

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
# The session cookies' signing key; kept apart because it is a str setting, not bytes.
SESSION_SECRET = ("secret_key", "CITYCREDIT_SECRET_KEY", "session.key")
ENVIRONMENTS = ("production", "development")


class MissingSecret(ConfigError):
    """A secret is neither in the environment nor written for this deployment (production)."""

    def __init__(self, variable: str, instance_dir: Path):
        super().__init__(
            f"{variable} is not set and {instance_dir}/ holds no secret for it. A production "
            "deployment never makes its own keys: two hosts would give one citizen two different "
            "pseudonyms. Run `citycredit secrets init` once for a new deployment and give every "
            f"host the same values (or set CITYCREDIT_ENV=development on a developer's machine)."
        )
        self.variable = variable


def is_city_instance(directory: Path) -> bool:
    """Whether ``directory`` holds a city's files (its database or its secrets)."""
    return any((directory / marker).exists() for marker in INSTANCE_MARKERS)


def find_instance_dir(env: dict[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The city's instance folder, found the way a user expects.

    ``CITYCREDIT_INSTANCE_DIR`` when set; else the nearest ``instance/`` holding a city's files in the
    working directory or a folder above it (the CLI run from ``docs/`` finds the project's); else
    the source tree's; else ``instance`` here, for the commands that create a city.
    """
    env = dict(os.environ if env is None else env)
    if env.get("CITYCREDIT_INSTANCE_DIR"):
        return Path(env["CITYCREDIT_INSTANCE_DIR"])
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents, SOURCE_TREE):
        if is_city_instance(folder / DEFAULT_INSTANCE_DIR):
            return DEFAULT_INSTANCE_DIR if folder == here else folder / DEFAULT_INSTANCE_DIR
    return DEFAULT_INSTANCE_DIR


def _instance_key(instance_dir: Path, name: str, *, create: bool = True) -> bytes | None:
    """Read a per-instance secret; in development, create it on first use so a fresh demo needs no setup.

    A production deployment sets the environment variables, or has the files written once by
    ``citycredit secrets init``; ``create=False`` answers None for a missing file instead.
    """
    path = instance_dir / name
    if not path.exists():
        if not create:
            return None
        instance_dir.mkdir(parents=True, exist_ok=True)
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
    env: dict[str, str],
    overrides: dict[str, Any],
    instance_dir: Path,
    spec: tuple[str, str, str],
    *,
    create: bool,
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
        found = _instance_key(instance_dir, filename, create=create)
        if found is None:
            raise MissingSecret(variable, instance_dir)
        value = found
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
    instance_dir = Path(overrides.pop("instance_dir", None) or find_instance_dir(env))
    database_url = overrides.pop("database_url", None) or env.get("CITYCREDIT_DATABASE_URL")
    if not database_url:
        instance_dir.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite:///{(instance_dir / INSTANCE_DATABASE).resolve()}"
    environment = overrides.pop("environment", None) or env.get("CITYCREDIT_ENV", "production")
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"CITYCREDIT_ENV must be one of {', '.join(ENVIRONMENTS)}")
    demo_mode = overrides.pop("demo_mode", env.get("CITYCREDIT_DEMO_MODE", "") == "1")
    create = environment == "development" or demo_mode
    keys = {spec[0]: _secret(env, overrides, instance_dir, spec, create=create) for spec in SECRETS}
    if "secret_key" in overrides:
        secret_key = overrides.pop("secret_key")
    elif env.get(SESSION_SECRET[1]):
        secret_key = env[SESSION_SECRET[1]]
    else:
        session_key = _instance_key(instance_dir, SESSION_SECRET[2], create=create)
        if session_key is None:
            raise MissingSecret(SESSION_SECRET[1], instance_dir)
        secret_key = session_key.hex()
    settings = Settings(
        database_url=database_url,
        **keys,
        city_code=env.get("CITYCREDIT_CITY_CODE", "demo"),
        city_name=env.get("CITYCREDIT_CITY_NAME", "示范市"),
        timezone=env.get("CITYCREDIT_TIMEZONE", "Asia/Shanghai"),
        instance_dir=instance_dir,
        # Signs the admin's session cookies: every worker and restart must share it.
        secret_key=secret_key,
        sql_echo=env.get("CITYCREDIT_SQL_ECHO", "") == "1",
        public_url=(env.get("CITYCREDIT_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/"),
        public_url_configured=bool(env.get("CITYCREDIT_PUBLIC_URL")) or "public_url" in overrides,
        citizen_identity=env.get("CITYCREDIT_CITIZEN_IDENTITY", "demo"),
        demo_mode=demo_mode,
        environment=environment,
        code_lifetime_seconds=_whole_number(
            env, "CITYCREDIT_CODE_LIFETIME", 120, 5, 120, " of seconds", "5 to 120 seconds"
        ),
        trusted_proxies=_whole_number(
            env, "CITYCREDIT_TRUSTED_PROXIES", 0, 0, 5, " (0 to 5)", "0 to 5"
        ),
        rate_limit_storage=env.get("CITYCREDIT_RATE_LIMIT_STORAGE") or "memory://",
        rate_limit_verify=env.get("CITYCREDIT_RATE_LIMIT_VERIFY") or "1200 per minute",
        city_name_en=env.get("CITYCREDIT_CITY_NAME_EN", "Demo City"),
        city_level=env.get("CITYCREDIT_CITY_LEVEL", "prefecture"),
        federation_coordinator_url=env.get("CITYCREDIT_FEDERATION_COORDINATOR_URL", "").rstrip("/"),
        trust_anchor=env.get("CITYCREDIT_TRUST_ANCHOR", "").strip(),
        trust_list_max_age=_whole_number(
            env,
            "CITYCREDIT_TRUST_LIST_MAX_AGE",
            172800,
            10,
            30 * 86400,
            " of seconds",
            "10 seconds to 30 days",
        ),
        federation_coordinator=env.get("CITYCREDIT_FEDERATION_COORDINATOR", "") == "1",
        objection_days=_whole_number(
            env, "CITYCREDIT_OBJECTION_DAYS", 20, 1, 90, " of working days", "1 to 90 working days"
        ),
        workdays_file=env.get("CITYCREDIT_WORKDAYS_FILE", "").strip(),
        bulletin_push_url=env.get("CITYCREDIT_BULLETIN_PUSH_URL", "").strip(),
        bulletin_push_token=env.get("CITYCREDIT_BULLETIN_PUSH_TOKEN", "").strip(),
        audit_seal_grace_seconds=_whole_number(
            env,
            "CITYCREDIT_AUDIT_SEAL_GRACE",
            300,
            90,
            86400,
            " of seconds",
            "90 seconds to 1 day",
        ),
        bench_floor=env.get("CITYCREDIT_BENCH_FLOOR", "") == "1",
    )
    settings = settings.with_overrides(**overrides)
    if settings.bench_floor and settings.environment == "production":
        raise ConfigError("CITYCREDIT_BENCH_FLOOR is for benchmarks: never in production")
    return settings


def _whole_number(
    env: dict[str, str], variable: str, default: int, low: int, high: int, unit: str, span: str
) -> int:
    """An integer setting within [low, high]; the error names the variable, the unit and the span."""
    raw = env.get(variable, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{variable} must be a whole number{unit}") from None
    if not low <= value <= high:
        raise ConfigError(f"{variable} must be from {span}")
    return value


def write_new_secrets(instance_dir: Path) -> list[Path]:
    """Write every secret of a new deployment into ``instance_dir``, once.

    Refuses when any of them exists: a second ``id_hash.key`` would give every citizen a new
    pseudonym and orphan their records. Returns the files written (mode 0600).
    """
    names = [spec[2] for spec in (*SECRETS, SESSION_SECRET)]
    present = [name for name in names if (instance_dir / name).exists()]
    if present:
        raise ConfigError(
            f"{instance_dir}/ already holds {', '.join(present)}: this deployment has its secrets. "
            "Copy them to the other hosts; never make new ones for a running city."
        )
    written = []
    for name in names:
        _instance_key(instance_dir, name, create=True)
        written.append(instance_dir / name)
    return written


def secrets_as_environment(instance_dir: Path) -> str:
    """The deployment's secrets as ``VARIABLE=hex`` lines (a systemd EnvironmentFile, a vault entry)."""
    lines = []
    for _, variable, filename in (*SECRETS, SESSION_SECRET):
        value = _instance_key(instance_dir, filename, create=False)
        if value is None:
            raise MissingSecret(variable, instance_dir)
        lines.append(f"{variable}={value.hex()}")
    return "\n".join(lines) + "\n"
