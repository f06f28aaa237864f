"""``citycredit federation demo`` as a reader of the README runs it: three cities and a coordinator
start, the printout names every address and the commands to try, and those commands, run as printed,
issue a Huangshi citizen's code that a Sanya desk accepts online and offline (and refuses for a citizen
who does not share); Ctrl-C (SIGINT) or ``--exit-after-setup`` leaves no process behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CITIZENS = "120"  # per city: enough for sharers and a refused citizen, quick to seed
SETUP_SECONDS = 300  # seeding three cities and starting four servers, on a busy two-core machine
READY = "Ctrl-C"
CITIES = ("黄石市", "三亚市", "海口市")


@dataclass
class Demo:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, marker: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while marker not in self.text:
            if self.done.is_set() and marker not in self.text:
                pytest.fail(f"the demo ended before printing {marker!r}:\n{self.text[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {marker!r} within {seconds} s:\n{self.text[-4000:]}")
            time.sleep(0.2)


def processes_of(base: Path) -> list[int]:
    """Processes whose environment names ``base`` (each city's database and files are under it):
    the gunicorn masters and workers, and anything else the demo left running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(base).encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


@contextmanager
def demo(base: Path, *options: str) -> Iterator[Demo]:
    """The command in its own session, its output collected line by line; killed if still there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "citycredit.cli", "federation", "demo", "--base", str(base),
         "--citizens", CITIZENS, *options],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )  # fmt: skip
    running = Demo(process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line.rstrip("\n"))
        running.done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for pid in processes_of(base):  # a test that failed half-way leaves nothing either
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def tour_commands(text: str) -> list[str]:
    """The copy-paste block of the printout: from "# 1." to the first blank line."""
    block = text.split("\n# 1.", 1)[1].split("\n\n", 1)[0]
    return [line for line in block.splitlines()[1:] if line and not line.startswith("#")]


def run_shell(script: str) -> str:
    done = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    return done.stdout + done.stderr


def test_the_printed_tour_works_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    base = tmp_path / "federation"
    with demo(base) as running:
        running.wait_for(READY, SETUP_SECONDS)
        text = running.text
        urls = set(re.findall(r"http://127\.0\.0\.1:\d+", text))
        assert len(urls) == 4, text  # three cities and the coordinator, each its own server
        for name in CITIES:
            assert name in text
        for page in ("/admin/federation", "/admin/federation/members", "/me", "/admin "):
            assert page in text
        assert re.search(r"admin / demo-\S+", text)
        sample = re.search(r"黄石市市民 (\d{17}[\dX])", text)
        assert sample is not None and sample.group(1).startswith("4202")
        servers = processes_of(base)
        assert len(servers) >= 4

        commands = tour_commands(text)
        assert len(commands) == 5, commands
        issue, online, offline, issue_refused, online_refused = commands
        assert issue.startswith("CODE=$(") and "federation demo-env 420200" in issue
        assert "citycredit code issue " + sample.group(1) in issue
        assert "citycredit-verify" in online and "--scenario" in online
        assert "--offline --trust-anchor" in offline
        # Run them exactly as printed, each step's exit status told.
        out = run_shell(
            f"{issue} || echo 'issue failed'\n"
            f'{online}; echo "online exit $?"\n'
            f'{offline}; echo "offline exit $?"\n'
            f"{issue_refused} || echo 'issue failed'\n"
            f'{online_refused}; echo "refused exit $?"\n'
        )
        assert "issue failed" not in out, out
        # Sanya's desk: eligible, a visitor from Huangshi, the common level only.
        assert "ELIGIBLE 符合" in out and "online exit 0" in out, out
        assert "visitor 外地访客 from 黄石市 / Huangshi (420200)" in out, out
        # Offline, against the trust list pinned by the printed anchor: the code is Huangshi's.
        assert "valid code of 黄石市 / Huangshi (420200), visitor" in out, out
        assert "offline exit 0" in out, out
        # A citizen who has not consented to cross-city recognition is refused, saying why.
        assert "REJECTED 拒绝: no-cross-city-consent" in out and "refused exit 2" in out, out
        assert sample.group(1) not in out  # neither side echoes the ID number

        # Ctrl-C in a terminal: SIGINT to the whole foreground process group, servers included.
        os.killpg(running.process.pid, signal.SIGINT)
        assert running.process.wait(timeout=90) == 0
        running.done.wait(timeout=10)
        assert "已停止 / stopped" in running.text
        deadline = time.monotonic() + 10
        while processes_of(base) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_of(base) == []


def test_exit_after_setup_starts_afresh_and_leaves_nothing_running(tmp_path: Path) -> None:
    base = tmp_path / "federation"
    base.mkdir()
    (base / "notes.txt").write_text("mine")
    # A directory the demo did not make is never removed.
    refused = subprocess.run(
        [sys.executable, "-m", "citycredit.cli", "federation", "demo", "--base", str(base)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert (base / "notes.txt").read_text() == "mine"

    # What an earlier run left (its state file says it is no longer running) is removed.
    (base / "notes.txt").unlink()
    (base / "federation-demo.json").write_text('{"pid": null, "deployments": {}}')
    (base / "420200").mkdir()
    (base / "420200" / "city.sqlite3").write_text("an earlier run's database")
    with demo(base, "--exit-after-setup") as running:
        assert running.process.wait(timeout=SETUP_SECONDS) == 0, running.text
        running.done.wait(timeout=10)
        assert "已停止 / stopped" in running.text, running.text
        assert "citycredit-verify" in running.text and "/admin/federation" in running.text
        assert processes_of(base) == []
    assert (base / "420200" / "city.sqlite3").read_bytes().startswith(b"SQLite format 3")
    env = subprocess.run(
        [sys.executable, "-m", "citycredit.cli", "federation", "demo-env", "Sanya",
         "--base", str(base)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "export CITYCREDIT_CITY_CODE=460200" in env
    assert f"export CITYCREDIT_DATABASE_URL=sqlite:///{base}/460200/city.sqlite3" in env
