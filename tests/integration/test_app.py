"""The overview page shows the city's aggregate figures, in Chinese by default and in English."""

from __future__ import annotations

from pathlib import Path

from citycredit.cli.demo import ensure_reference_models, ensure_sources
from citycredit.core.db import unit_of_work
from citycredit.web.app import create_app
from tests.databases import ScratchDatabase


def test_overview_page_in_both_languages(fresh_database: ScratchDatabase, tmp_path: Path) -> None:
    app = create_app(
        {"database_url": fresh_database.url, "id_hash_key": b"k" * 32, "instance_dir": tmp_path}
    )
    platform = app.extensions["citycredit"]
    with unit_of_work(platform.sessions) as session:
        ensure_sources(session)
        ensure_reference_models(session, actor="test")
    client = app.test_client()
    zh = client.get("/").get_data(as_text=True)
    assert "当前评分模型" in zh and "itemised-base1000@v1" in zh and "AAA级（诚信模范）" in zh
    en = client.get("/?lang=en").get_data(as_text=True)
    assert "Published scoring model" in en and "AAA (exemplary)" in en
    # The tier table: each city tier beside the common level it maps to, and what the two are.
    assert "<th>本市等级</th><th>通用等级</th>" in zh
    assert "<tr><td>AAA级（诚信模范）</td><td>极好</td>" in zh
    assert "<tr><td>AAA (exemplary)</td><td>Excellent</td>" in en
    assert "the common level is the five-step scale that partner cities recognise" in en
    settings = platform.settings
    assert f"<h1>{settings.city_name_en}: personal credit points</h1>" in en
    assert settings.city_name not in en.split("<nav")[1]  # no Chinese city name in English
    # Every page names the favicon, and it is served.
    assert 'rel="icon" href="/static/favicon.svg"' in zh
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert client.get("/healthz").get_json() == {"status": "ok"}
    platform.engine.dispose()
