"""Every page, both languages, through axe-core: the demo city crawled as its users would browse it.

A city seeded by the real ``citycredit demo seed`` (a few hundred citizens, with objections, repair
applications, list entries, venues and one account per role) is served by gunicorn; a phone-sized
Chromium signs in and follows every link it is shown, one page per route shape (``/admin/users/7``
and ``/admin/users/9`` are the same template), then reads each page again in English. axe-core runs
on every page under the page's own Content-Security-Policy, offline (its script comes from the
installed package, not a CDN).

On PostgreSQL the same crawl runs (every link answers a page from that database); axe-core runs on
SQLite only, since the markup does not depend on the database and each run costs seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import pytest

from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.e2e.conftest import free_port, gunicorn, live_env

CITIZENS = 150
MAX_PAGES = 120
# Links that end a session, download a file, or open something that is not one of our pages.
SKIP = re.compile(
    r"(/logout|/login|\.csv$|\.json$|\.svg$|\.png$|/attachments?/|/download|/export|/api/)"
)
# A path segment with a digit, a dash or an underscore names one thing (a record, a case, a scenario
# code, a venue); the words of routes (``new``, ``import``, ``records``) have none.
_ID = re.compile(r"/[^/]*[-_\d][^/]*(?=/|$)")
# A department's page is its route with a code in it (/quality/sources/court, /reports/<month>/tax):
# one department stands for all of them.
_CODE = re.compile(r"(/quality/sources|/reports/<id>)/(?!<id>(?:/|$))[^/.]+(?=/|$)")


@dataclass
class DemoCity:
    kind: str  # the database: "sqlite" or "postgresql"
    url: str
    accounts: dict[str, str]
    citizen: str  # an ID number of a consenting citizen with records
    log: Path


@dataclass
class Seeded:
    accounts: dict[str, str]
    citizen: str


def seed_demo(db: ScratchDatabase, tmp: Path, env: dict[str, str]) -> Seeded:
    """``citycredit demo seed`` as a newcomer runs it; returns the accounts and a sample citizen."""
    cli = [sys.executable, "-m", "citycredit.cli", "demo", "seed", "--citizens", str(CITIZENS),
           "--days-of-use", "5"]  # fmt: skip
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    accounts = json.loads((tmp / "instance" / "demo" / "accounts.json").read_text())
    top = re.search(r"explain (\d{17}[\dX])\s+# top tier", done.stdout)
    assert top, done.stdout
    return Seeded(accounts, top.group(1))


def shape(url: str) -> str:
    """The route a URL stands for: ids replaced, the query reduced to its keys (lang dropped)."""
    parts = urlparse(url)
    keys = sorted({k for k, _ in parse_qsl(parts.query) if k != "lang"})
    path = _CODE.sub(r"\1/<code>", _ID.sub("/<id>", parts.path))
    return path + ("?" + "&".join(keys) if keys else "")


def with_lang(url: str, code: str) -> str:
    parts = urlparse(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "lang"] + [("lang", code)]
    return urlunparse(parts._replace(query=urlencode(query)))


def crawl(page: Any, base: str, start: str, prefixes: tuple[str, ...]) -> list[str]:
    """Breadth first from ``start``: one URL per route shape under ``prefixes``, in visiting order.

    Every link followed must answer a page: a link that leads to an error fails the crawl.
    """
    seen: dict[str, str] = {}
    broken: list[str] = []
    queue = [base + start]
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if shape(url) in seen:
            continue
        response = page.goto(url)
        if response is None or response.status >= 400:
            broken.append(f"{url}: {response.status if response else 'no answer'}")
        if not page.url.startswith(base):
            continue
        seen[shape(url)] = url
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        for href in hrefs:
            href = href.split("#")[0]
            path = urlparse(href).path
            if not href.startswith(base) or SKIP.search(path) or "lang=" in href:
                continue
            if path.startswith(prefixes) and shape(href) not in seen:
                queue.append(href)
    assert broken == [], broken
    return list(seen.values())


def sweep(page: Any, urls: list[str]) -> list[str]:
    """axe-core on each URL in Chinese, then in English (the choice is remembered by the session)."""
    # Imported here: the browser conftest loads this module for its fixture, Playwright or not.
    from tests.browser.test_admin_federation import axe_violations

    violations: list[str] = []
    for code in ("zh", "en"):
        for url in urls:
            page.goto(with_lang(url, code))
            violations += axe_violations(page)
    page.goto(with_lang(urls[0], "zh"))
    return violations


@pytest.fixture(params=BACKENDS)
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DemoCity]:
    _require(request.param)
    db = ScratchDatabase(request.param, tmp_path)
    try:
        yield from serve(db, tmp_path)
    finally:
        db.drop()


def serve(db: ScratchDatabase, tmp: Path) -> Iterator[DemoCity]:
    port = free_port()
    env = live_env(db, tmp, port, CITYCREDIT_DEMO_MODE="1")
    seeded = seed_demo(db, tmp, env)
    log = tmp / "server.log"
    with gunicorn(env, port, log) as (url, _command, _process):
        yield DemoCity(db.kind, url, seeded.accounts, seeded.citizen, log)
