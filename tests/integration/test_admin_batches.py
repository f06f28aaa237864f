"""The admin's batch pages tell an interrupted ingest from a running one, and link the rerun that completed it."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from citycredit.cli.demo import ensure_reference_models, ensure_sources
from points_engine import batches, ingest
from tests import factories
from tests.conftest import KEY
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, signed_in

TODAY = dt.date(2026, 6, 30)
ORIGIN = "/exchange/court-2026-06.csv"


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        with web.session() as session:
            ensure_sources(session)
            ensure_reference_models(session, actor="test")
        web.add_user("boss", "platform_admin")
        yield web


def rows(count: int) -> list[tuple[int, dict[str, str]]]:
    return [
        (
            n + 2,
            {
                "source": "court",
                "source_record_id": f"c{n}",
                "id_number": factories.id_number(),
                "item_code": "COURT_DISHONEST",
                "document_no": f"罚字{n}号",
                "occurred_on": "2026-03-01",
                "reported_on": "2026-03-02",
            },
        )
        for n in range(count)
    ]


def finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_interrupted_batch_reads_so_in_both_languages_and_links_the_rerun(
    site: AdminApp,
) -> None:
    data = rows(8)
    with site.session() as session:
        # A run killed after its first chunk: the batch says running, its process is gone.
        killed = ingest.start_batch(session, ORIGIN, "csv")
        killed.runner = f"{socket.gethostname()}:{finished_pid()}"
        for _ in ingest.ingest_rows(
            session, iter(data[:4]), key=KEY, batch=killed, today=TODAY, chunk_size=4
        ):
            session.flush()
        killed_id = killed.id
    with site.session() as session:
        rerun = batches.ingest(
            session,
            iter(data),
            origin=ORIGIN,
            fmt="csv",
            key=KEY,
            today=TODAY,
            commit_chunks=True,
        )
    rerun_id = rerun.report.batch_id
    assert str(rerun.completes) == f"completes batch #{killed_id} (interrupted after 4 rows)"

    client = signed_in(site, "boss")
    listing = client.get("/admin/sources").get_data(as_text=True)
    assert '<span class="badge interrupted">已中断</span>' in listing
    assert '<span class="badge completed">已完成</span>' in listing
    page = client.get(f"/admin/sources/batches/{killed_id}").get_data(as_text=True)
    assert '<span class="badge interrupted">已中断</span>' in page
    assert "此批次被中断" in page and "由此批次补全" in page
    assert f'href="/admin/sources/batches/{rerun_id}">#{rerun_id}</a>' in page
    # Completed already: no advice to rerun it.
    assert "重新导入同一文件即可补全" not in page

    english = client.get(f"/admin/sources/batches/{killed_id}?lang=en").get_data(as_text=True)
    assert '<span class="badge interrupted">interrupted</span>' in english
    assert "This batch was interrupted" in english and "Completed by" in english
    listing_en = client.get("/admin/sources?lang=en").get_data(as_text=True)
    assert '<span class="badge interrupted">interrupted</span>' in listing_en
    completing = client.get(f"/admin/sources/batches/{rerun_id}?lang=en").get_data(as_text=True)
    assert "Completes batch" in completing
    assert f'href="/admin/sources/batches/{killed_id}">#{killed_id}</a>' in completing


def test_an_interrupted_batch_not_yet_completed_says_how_to_complete_it(site: AdminApp) -> None:
    with site.session() as session:
        stopped = ingest.start_batch(session, ORIGIN, "csv")
        stopped.runner = f"{socket.gethostname()}:{finished_pid()}"
        session.flush()
        assert batches.mark_interrupted(session) == [stopped.id]
        stopped_id = stopped.id
    client = signed_in(site, "boss")
    page = client.get(f"/admin/sources/batches/{stopped_id}").get_data(as_text=True)
    assert "重新导入同一文件即可补全，已存储的行不会重复写入。" in page
    english = client.get(f"/admin/sources/batches/{stopped_id}?lang=en").get_data(as_text=True)
    assert "Ingest the same file again to complete it" in english
