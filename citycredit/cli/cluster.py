"""A small federation on loopback: a coordinator and member cities, each its own gunicorn process
and database, joined with four eyes and synced — for the demo (``citycredit federation demo``), the
end-to-end tests and the benchmarks. Nothing here is used by a production deployment.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from citycredit.core.actors import Actor
from citycredit.core.config import Settings, load_settings
from citycredit.core.db import make_engine, make_session_factory, unit_of_work
from citycredit.core.keys import current_signing_key
from citycredit.migrate import upgrade
from federation import bulletins, coordinator, operations
from federation import keys as fed_keys

Seed = Callable[[Session, Settings], Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class CitySpec:
    code: str
    name_zh: str
    name_en: str
    database_url: str = ""  # SQLite in the city's directory when empty
    level: str = "prefecture"
    seed: Seed | None = None


@dataclass
class Deployment:
    spec: CitySpec
    directory: Path
    port: int
    env: dict[str, str]
    settings: Settings
    process: subprocess.Popen[bytes] | None = None
    seeded: Any = None
    _engine: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def code(self) -> str:
        return self.spec.code

    def session(self) -> Any:
        """A unit of work on the city's database (from this process, as its CLI would)."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return unit_of_work(make_session_factory(self._engine))

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``citycredit …`` as this city (its environment and database)."""
        return subprocess.run(
            [sys.executable, "-m", "citycredit.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )


@dataclass
class Cluster:
    """A coordinator and cities on loopback. Use as a context manager; everything stops at exit."""

    base: Path
    cities: list[CitySpec]
    coordinator_code: str = "coord"
    max_age: int = 3600
    workers: int = 1
    threads: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    base_port: int = 0  # 0: any free ports; else the coordinator on it and the cities after it
    deployments: dict[str, Deployment] = field(default_factory=dict)
    anchor: str = ""
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def coordinator(self) -> Deployment:
        return self.deployments[self.coordinator_code]

    def city(self, code: str) -> Deployment:
        return self.deployments[code]

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        coordinator_spec = CitySpec(self.coordinator_code, "协调方", "Coordinator")
        coord = self._prepare(coordinator_spec, coordinator=True)
        with coord.session() as session:
            self.anchor = fed_keys.ensure(session, coord.settings.key_secret, "anchor").fingerprint
            fed_keys.ensure(session, coord.settings.key_secret, "city")
        for spec in self.cities:
            self._prepare(spec, coordinator=False)
        for deployment in self.deployments.values():
            deployment.env["CITYCREDIT_TRUST_ANCHOR"] = self.anchor
            deployment.settings = deployment.settings.with_overrides(trust_anchor=self.anchor)
            self.serve(deployment)
        for index, spec in enumerate(self.cities):
            self.join(spec.code, proposer=f"admin-a{index}", approver=f"admin-b{index}")
        self.publish()
        self.sync_all()

    def _prepare(self, spec: CitySpec, *, coordinator: bool) -> Deployment:
        directory = self.base / spec.code
        directory.mkdir(parents=True, exist_ok=True)
        port = self.base_port + len(self.deployments) if self.base_port else free_port()
        database_url = spec.database_url or f"sqlite:///{directory / 'city.sqlite3'}"
        env = {
            **os.environ,
            "CITYCREDIT_ENV": "development",
            "CITYCREDIT_ID_HASH_KEY": secrets.token_hex(32),
            "CITYCREDIT_KEY_SECRET": secrets.token_hex(32),
            "CITYCREDIT_TOKEN_KEY": secrets.token_hex(32),
            "CITYCREDIT_SECRET_KEY": secrets.token_hex(32),
            "CITYCREDIT_CITY_CODE": spec.code,
            "CITYCREDIT_CITY_NAME": spec.name_zh,
            "CITYCREDIT_CITY_NAME_EN": spec.name_en,
            "CITYCREDIT_CITY_LEVEL": spec.level,
            "CITYCREDIT_DATABASE_URL": database_url,
            "CITYCREDIT_INSTANCE_DIR": str(directory / "instance"),
            "CITYCREDIT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CITYCREDIT_TRUST_LIST_MAX_AGE": str(self.max_age),
            **self.extra_env,
        }
        if coordinator:
            env["CITYCREDIT_FEDERATION_COORDINATOR"] = "1"
        else:
            # Members fetch the list from the coordinator (whose port is known by now).
            env["CITYCREDIT_FEDERATION_COORDINATOR_URL"] = self.coordinator.url
        settings = load_settings(env=env)
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()
        deployment = Deployment(spec, directory, port, env, settings)
        self.deployments[spec.code] = deployment
        with deployment.session() as session:
            current_signing_key(session, settings.key_secret)
            fed_keys.ensure(session, settings.key_secret, "city")
            if spec.seed is not None:
                deployment.seeded = spec.seed(session, settings)
        return deployment

    def serve(self, deployment: Deployment) -> None:
        """Start (or restart) the city's gunicorn and wait until it answers."""
        command = [
            sys.executable, "-m", "gunicorn", "--config", "python:citycredit.web.gunicorn_config",
            "--bind", f"127.0.0.1:{deployment.port}",
            "--workers", str(self.workers), "--threads", str(self.threads), "--timeout", "60",
            "citycredit.web.wsgi:app",
        ]  # fmt: skip
        log = (deployment.directory / "server.log").open("a")
        deployment.process = subprocess.Popen(
            command, env=deployment.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(deployment.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or deployment.process.poll() is not None:
                raise RuntimeError(
                    f"{deployment.code} did not start:\n"
                    + (deployment.directory / "server.log").read_text()[-3000:]
                )
            time.sleep(0.1)

    def halt(self, deployment: Deployment) -> None:
        if deployment.process is None:
            return
        deployment.process.terminate()
        try:
            deployment.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            deployment.process.kill()
            deployment.process.wait(timeout=10)
        deployment.process = None

    def stop(self) -> None:
        for deployment in self.deployments.values():
            self.halt(deployment)
            deployment.dispose()

    # --- the federation's operations, as its operators would run them -------------------------

    def join(self, code: str, *, proposer: str = "admin-a", approver: str = "admin-b") -> None:
        city = self.city(code)
        coord = self.coordinator
        with city.session() as session:
            fingerprint = fed_keys.current(session, "city")
            assert fingerprint is not None
            print_ = fingerprint.fingerprint
        with coord.session() as session:
            change = coordinator.propose(
                session, coord.settings, Actor(proposer), code, "join",
                base_url=city.url, fingerprint=print_,
            )  # fmt: skip
            coordinator.decide(session, coord.settings, Actor(approver), change.id, approve=True)

    def change(self, code: str, action: str, *, fingerprint: str | None = None) -> None:
        coord = self.coordinator
        with coord.session() as session:
            change = coordinator.propose(
                session, coord.settings, Actor("admin-a"), code, action, fingerprint=fingerprint
            )
            coordinator.decide(session, coord.settings, Actor("admin-b"), change.id, approve=True)

    def publish(self, *, force: bool = False) -> int | None:
        coord = self.coordinator
        with coord.session() as session:
            coordinator.refresh_entries(session, coord.settings)
            published = coordinator.compile_list(session, coord.settings, force=force)
            return published.seq if published else None

    def sync(self, code: str) -> Any:
        city = self.city(code)
        with city.session() as session:
            return operations.sync_trust_list(session, city.settings)

    def sync_all(self) -> None:
        for spec in self.cities:
            self.sync(spec.code)
        operations.forget_cached_list()

    def exchange_bulletins(self) -> None:
        for spec in self.cities:
            with self.city(spec.code).session() as session:
                bulletins.publish_due(session, self.city(spec.code).settings)
        for spec in self.cities:
            with self.city(spec.code).session() as session:
                bulletins.sync_bulletins(session, self.city(spec.code).settings)
