"""A newcomer's first run, on a fresh checkout: ``make demo PORT=<a free port, not 5000>``, then every
command of the README's tour and partner-venue blocks as printed there, with the address `make demo`
printed. Every one succeeds (the re-ingest exits 3, as the README says); the discovery document names
the port served; a second ``make demo`` on the same port says so in one line and seeds nothing; the
CLI finds the city from a folder under the project; no gunicorn control socket is shared.

The checkout is the repository's tracked files as they stand (a clone of the work in progress), run
with this test's virtualenv (``make -o`` keeps make from installing into it). Loopback only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
STAMP = ".venv/.installed-stamp"
CITIZENS = 150  # enough for every sample citizen the demo prints, quick to seed
SETUP_SECONDS = 420  # migrate, seed, start gunicorn, on a busy two-core machine
COMMAND_SECONDS = 180

pytestmark = pytest.mark.skipif(
    not (VENV / "bin" / "citycredit").exists() or shutil.which("make") is None,
    reason="needs make and the project's virtualenv (.venv/bin/citycredit)",
)


def fresh_checkout(target: Path) -> Path:
    """The tracked files, as a clone would have them (no instance/, nothing untracked)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(VENV)
    return target


def newcomer_env(checkout: Path, home: Path) -> dict[str, str]:
    """A shell with none of the tests' CITYCREDIT_* settings, running the checkout's code."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CITYCREDIT_") and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    run_dir = home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        PYTHONPATH=f"{checkout}{os.pathsep}{checkout / 'partner_sdk'}",
        PYTHONUNBUFFERED="1",
        HOME=str(home),
        XDG_RUNTIME_DIR=str(run_dir),
    )
    return env


@dataclass
class Running:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while True:
            found = re.search(pattern, self.text)
            if found:
                return found
            if self.process.poll() is not None:
                time.sleep(0.5)  # the last lines
                found = re.search(pattern, self.text)
                if found:
                    return found
                pytest.fail(f"ended before printing {pattern!r}:\n{self.text[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} within {seconds} s:\n{self.text[-4000:]}")
            time.sleep(0.2)


@contextmanager
def started(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[Running]:
    """A command in its own process group, its output collected; interrupted (Ctrl-C) at the end."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Running(process)
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(
        target=lambda: running.lines.extend(line.rstrip("\n") for line in stdout), daemon=True
    )
    reader.start()
    try:
        yield running
    finally:
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            if process.poll() is not None:
                break
            with suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
        reader.join(timeout=5)
        stdout.close()


def make_demo(port: int) -> list[str]:
    return ["make", "-o", STAMP, "demo", f"PORT={port}", f"DEMO_CITIZENS={CITIZENS}"]


def readme_block(heading: str) -> list[str]:
    """The lines of the first ```sh block under a README heading."""
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def run_line(
    line: str, prelude: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "\n".join([*prelude, line])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def test_the_readme_tour_runs_on_another_port_from_a_fresh_checkout(tmp_path: Path) -> None:
    checkout = fresh_checkout(tmp_path / "citycredit")
    env = newcomer_env(checkout, tmp_path / "home")
    port = free_port()
    assert port != 5000
    with started(make_demo(port), checkout, env) as demo:
        export = demo.wait_for(r"export CITYCREDIT_BASE_URL=(\S+)", SETUP_SECONDS)
        base_url = export.group(1)
        assert base_url == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(base_url + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or demo.process.poll() is not None:
                pytest.fail(f"the demo did not serve {base_url}:\n{demo.text[-4000:]}")
            time.sleep(0.5)
        citizen = re.search(r"explain (\d{17}[\dX])\s+# top tier", demo.text)
        assert citizen, demo.text[-3000:]

        # The discovery document names the address actually served, not port 5000.
        discovery = httpx.get(base_url + "/.well-known/citycredit-configuration").json()
        assert discovery["token_endpoint"] == base_url + "/oauth/token"
        assert discovery["jwks_uri"] == base_url + "/.well-known/jwks.json"

        # Each server has no control socket of its own, so none is shared between servers.
        assert not (tmp_path / "home" / "run" / "gunicorn.ctl").exists()
        assert not (tmp_path / "home" / ".gunicorn").exists()

        venue = json.loads((checkout / "instance" / "demo" / "clients.json").read_text())["venue"]
        prelude = [export.group(0)]
        ran = []
        for line in readme_block("A short tour") + readme_block("Partner venues"):
            command = line.split("#", 1)[0].strip()
            if command.startswith("export CITYCREDIT_BASE_URL="):
                continue  # the reader pastes the line `make demo` printed instead (the prelude)
            if command.startswith("ID="):
                prelude.append(f"ID={citizen.group(1)}")
                continue
            line = line.replace("records-3000-", f"records-{CITIZENS}-")
            line = line.replace(
                "CITYCREDIT_CLIENT_ID=…", f"CITYCREDIT_CLIENT_ID={venue['client_id']}"
            )
            line = line.replace(
                "CITYCREDIT_CLIENT_SECRET=…", f"CITYCREDIT_CLIENT_SECRET={venue['client_secret']}"
            )
            assert "…" not in line.split("#", 1)[0], f"a placeholder the test cannot fill: {line}"
            ran.append(command.split()[0:3])
            if " scheduler" in command:
                with started(["bash", "-c", "\n".join([*prelude, line])], checkout, env) as jobs:
                    jobs.wait_for("scheduler running", COMMAND_SECONDS)
                    time.sleep(1)
                    assert jobs.process.poll() is None, jobs.text
                assert "Traceback" not in jobs.text, jobs.text
                continue
            result = run_line(line, prelude, checkout, env)
            output = result.stdout + result.stderr
            assert "Traceback" not in output, f"{line}\n{output}"
            if " ingest " in command:
                # The README says why: the demo file's deliberately bad rows, exit status 3.
                assert "exit status 3" in line, line
                assert result.returncode == 3, f"{line}\n{output}"
                assert re.search(r": 0 new, 0 updated, \d+ unchanged, [1-9]\d* rejected", output)
            else:
                assert result.returncode == 0, f"{line}\n{output}"
        assert len(ran) >= 11, ran

        # From a folder under the project, the CLI finds the same city.
        inside = run_line("../.venv/bin/citycredit model list", [], checkout / "docs", env)
        assert inside.returncode == 0 and "itemised-base1000@v1" in inside.stdout, inside.stderr
        assert not (checkout / "docs" / "instance").exists()

        # The port taken by the running demo: one line that says so, and nothing reseeded.
        database = checkout / "instance" / "citycredit.sqlite3"
        before = database.stat().st_mtime_ns
        again = subprocess.run(
            make_demo(port), cwd=checkout, env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode != 0
        said = [ln for ln in again.stderr.splitlines() + again.stdout.splitlines() if ln]
        ours = [ln for ln in said if not ln.startswith("make")]
        assert len(ours) == 1, said
        assert f"port {port}" in ours[0] and "make demo PORT=" in ours[0], ours
        assert "db upgrade" not in again.stdout and "generated" not in again.stdout
        assert database.stat().st_mtime_ns == before
        assert httpx.get(base_url + "/healthz", timeout=5).status_code == 200
