"""Issue 11 §3: red and black lists — imported with per-row errors, feeding scores through an
ordinary record, published within NDRC order 58's periods with masked names only, lifted at once,
ended early by a repair, and reported in the next day's bulletin."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

from sqlalchemy.orm import Session

from citycredit.core.clients import register_client
from citycredit.core.config import load_settings
from governance import bulletins, lists
from governance.models import ListEntry
from points_engine.models import DataSource, Record
from points_engine.queries import current_snapshot
from points_engine.record_state import Outcome, change_record_state
from tests import factories
from tests.conftest import KEY
from tests.databases import ScratchDatabase
from tests.integration.admin_support import admin_app, csrf, post, signed_in
from tests.integration.citizen_support import citizen_app

TODAY = dt.date(2026, 6, 30)
NOW = dt.datetime(2026, 6, 30, 2, tzinfo=dt.UTC)
REFERENCE = "points_engine/models/reference/itemised-base1000.yaml"


def _setup(session: Session) -> DataSource:
    with open(REFERENCE, encoding="utf-8") as f:
        factories.published(session, f.read(), "itemised-base1000.yaml")
    return factories.source(session, "court")


def _row(number: str, **overrides: str) -> dict[str, str]:
    return {
        "list": "dishonest_debtor",
        "id_number": number,
        "name": "张三丰",
        "decision_no": "（2026）鄂02执118号",
        "start_on": "2026-03-01",
        "publish_months": "24",
        **overrides,
    }


def test_a_black_list_import_sets_tier_d_and_lifting_takes_it_back_at_once(
    session: Session,
) -> None:
    court = _setup(session)
    person = factories.citizen(session, number=(number := factories.id_number()))
    bad_number = _row(factories.id_number(), id_number="11010119900307001X")
    result = lists.import_entries(
        session,
        [
            (2, _row(number)),
            (3, bad_number),
            (4, _row(factories.id_number(), list="no_such_list")),
            (5, _row(factories.id_number(), publish_months="99", decision_no="X-2")),
            (6, _row(factories.id_number(), start_on="2027-01-01", decision_no="X-3")),
        ],
        source=court,
        key=KEY,
        today=TODAY,
        now=NOW,
        actor="admin:boss",
    )
    assert [(r, f) for r, f, _ in result.errors] == [
        (3, "id_number"),
        (4, "list"),
        (5, "publish_months"),
        (6, "start_on"),
    ]
    assert "24 to 60 months" in result.errors[2][2]
    [entry] = result.listed
    assert (entry.masked_name, entry.kind, entry.publish_until) == (
        "张*丰",
        "black",
        dt.date(2028, 2, 29),
    )
    snap = current_snapshot(session, person.id)
    assert snap is not None and snap.tier_code == "D"  # the listing sets the tier directly
    record = session.get(Record, entry.record_id)
    assert record is not None and record.item_code == "COURT_DISHONEST"
    # Sent again, nothing changes.
    again = lists.import_entries(
        session, [(2, _row(number))], source=court, key=KEY, today=TODAY, now=NOW, actor="x"
    )
    assert (again.listed, again.unchanged, again.errors) == ([], 1, [])

    public = lists.public_entries(session, today=TODAY)
    assert [(p.masked_name, p.list_name_zh, p.decision_no) for p in public] == [
        ("张*丰", "失信被执行人名单", "（2026）鄂02执118号")
    ]
    shown = json.dumps([p.__dict__ for p in public], default=str, ensure_ascii=False)
    assert number not in shown and "张三丰" not in shown

    lists.lift(session, entry, actor="admin:boss", reason="已履行全部义务", today=TODAY, now=NOW)
    snap = current_snapshot(session, person.id)
    assert snap is not None and snap.tier_code != "D"  # within the day: at once
    assert lists.public_entries(session, today=TODAY) == []
    assert session.get(Record, entry.record_id).status == "revoked"  # type: ignore[union-attr]


def test_publication_ends_on_its_last_day_and_early_after_a_repair(session: Session) -> None:
    court = _setup(session)
    number = factories.id_number()
    factories.citizen(session, number=number)
    result = lists.import_entries(
        session,
        [(2, _row(number, list="honesty_model", name="李四", publish_months="12"))],
        source=court,
        key=KEY,
        today=TODAY,
        now=NOW,
        actor="x",
    )
    [red] = result.listed
    assert (red.kind, red.masked_name, red.publish_until) == ("red", "李*", dt.date(2027, 2, 28))
    assert len(lists.public_entries(session, today=dt.date(2027, 2, 28), kind="red")) == 1
    assert lists.public_entries(session, today=dt.date(2027, 3, 1)) == []

    black = lists.import_entries(
        session,
        [(2, _row(number, decision_no="（2026）鄂02执9号"))],
        source=court,
        key=KEY,
        today=TODAY,
        now=NOW,
        actor="x",
    ).listed[0]
    assert len(lists.public_entries(session, today=TODAY, kind="black")) == 1
    record = session.get(Record, black.record_id)
    assert record is not None
    change_record_state(session, record, outcome=Outcome.REPAIRED, repaired_on=TODAY, as_of=TODAY)
    assert lists.public_entries(session, today=TODAY, kind="black") == []  # ended early
    assert session.get(ListEntry, black.id).status == "listed"  # type: ignore[union-attr]


def test_list_changes_are_in_the_next_day_s_bulletin(session: Session) -> None:
    court = _setup(session)
    number = factories.id_number()
    factories.citizen(session, number=number)
    listed_at = dt.datetime(2026, 6, 29, 15, 59, tzinfo=dt.UTC)  # 23:59 in the city
    entry = lists.import_entries(
        session, [(2, _row(number))], source=court, key=KEY, today=TODAY, now=listed_at, actor="x"
    ).listed[0]
    lists.lift(session, entry, actor="x", reason="撤销", today=TODAY, now=NOW)
    city = load_settings(env={"CITYCREDIT_ENV": "development"}, key_secret=b"s" * 32)
    made = bulletins.publish_due(session, city, today=dt.date(2026, 7, 1), now=NOW)
    assert [(b.day, b.list_changes) for b in made] == [(dt.date(2026, 6, 30), 1)]
    earlier = bulletins.outcomes_of_day(session, city, dt.date(2026, 6, 29))
    assert [c["change"] for c in earlier["list_changes"]] == ["listed"]
    payload = bulletins.jws.unverified_payload(made[0].document)
    assert [(c["change"], c["decision_no"]) for c in payload["list_changes"]] == [
        ("lifted", "（2026）鄂02执118号")
    ]
    assert number not in made[0].document


def test_the_public_page_and_feed_show_masked_names_only(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with citizen_app(fresh_database, tmp_path) as city:
        number = factories.id_number()
        with city.session() as session:
            court = _setup(session)
            factories.citizen(session, number=number)
            lists.import_entries(
                session,
                [(2, _row(number, start_on="2026-06-01"))],
                source=court,
                key=KEY,
                today=city.app.extensions["citycredit"].today(),
                now=NOW,
                actor="x",
            )
        client = city.client()
        page = client.get("/lists").get_data(as_text=True)
        assert "红黑名单公示" in page and "张*丰" in page and "（2026）鄂02执118号" in page
        assert "失信被执行人名单" in page and "court 单位" in page
        assert number not in page and "张三丰" not in page
        english = client.get("/lists?lang=en&kind=black").get_data(as_text=True)
        assert "Dishonest judgment debtors" in english and "Red lists" not in english
        feed = client.get("/lists.json").get_json()
        assert [e["masked_name"] for e in feed["entries"]] == ["张*丰"]
        assert number not in json.dumps(feed, ensure_ascii=False)
        assert client.get("/lists?kind=red").get_data(as_text=True).count("张*丰") == 0


def test_a_department_files_its_list_through_the_api(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with citizen_app(fresh_database, tmp_path) as city:
        settings = city.app.extensions["citycredit"].settings
        with city.session() as session:
            court = _setup(session)
            bound = register_client(
                session,
                name="court system",
                kind="source",
                scopes=["lists:write"],
                source_id=court.id,
                key_secret=settings.key_secret,
            )
            unbound = register_client(
                session,
                name="city",
                kind="source",
                scopes=["lists:write"],
                key_secret=settings.key_secret,
            )
        client = city.client()

        def token(issued: object) -> dict[str, str]:
            answer = client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(issued.client.client_id, issued.secret),  # type: ignore[attr-defined]
            )
            return {"Authorization": "Bearer " + answer.get_json()["access_token"]}

        number = factories.id_number()
        body = {
            "entries": [
                _row(number, start_on="2026-06-01"),
                _row(factories.id_number(), list="nope", decision_no="B-1"),
                _row(factories.id_number(), name="", decision_no="B-2"),
            ]
        }
        answer = client.post("/api/v1/lists", json=body, headers=token(bound))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        result = answer.get_json()
        assert [(e["masked_name"], e["list"]) for e in result["listed"]] == [
            ("张*丰", "dishonest_debtor")
        ]
        assert [(e["row"], e["field"]) for e in result["errors"]] == [(2, "list"), (3, "name")]
        again = client.post(
            "/api/v1/lists", json={"entries": body["entries"][:1]}, headers=token(bound)
        )
        assert again.get_json()["unchanged"] == 1 and again.get_json()["listed"] == []
        refused = client.post("/api/v1/lists", json=body, headers=token(unbound))
        assert refused.status_code == 403
        assert refused.get_json()["type"] == "/problems/not-permitted"
        assert number not in answer.get_data(as_text=True)


def test_the_admin_imports_a_csv_and_lifts_an_entry(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with admin_app(fresh_database, tmp_path) as site:
        with site.session() as session:
            _setup(session)
            factories.source(session, "tax")
        site.add_user("court-clerk", "clerk", source_code="court")
        site.add_user("aud", "auditor")
        number = factories.id_number()
        csv_text = (
            "list,id_number,name,decision_no,start_on,publish_months\n"
            f"dishonest_debtor,{number},欧阳娜娜,（2026）鄂02执5号,2026-05-01,24\n"
            f"dishonest_debtor,{factories.id_number()},李四,（2026）鄂02执6号,2026-05-01,3\n"
        )
        clerk = signed_in(site, "court-clerk")
        page = clerk.get("/admin/lists").get_data(as_text=True)
        assert '<option value="court">' in page and '<option value="tax">' not in page
        response = clerk.post(
            "/admin/lists/import",
            data={
                "csrf_token": csrf(clerk, "/admin/lists"),
                "source": "court",
                "file": (io.BytesIO(csv_text.encode()), "court.csv"),
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 422
        text = response.get_data(as_text=True)
        assert "已列入 1 条" in text and "第 3 行" in text and "publish_months" in text
        assert "欧**娜" in text and number not in text and "欧阳娜娜" not in text
        entry = re.search(r'id="entry-(lst_[0-9a-f]+)"', text)
        assert entry
        auditor = signed_in(site, "aud")
        assert post(auditor, f"/admin/lists/{entry.group(1)}/lift", reason="x").status_code == 403
        post(clerk, f"/admin/lists/{entry.group(1)}/lift", reason="已履行")
        assert "已移出" in clerk.get("/admin/lists").get_data(as_text=True)
        actions = [e.action for e in site.events() if e.action.startswith("list.")]
        assert actions == ["list.entry.listed", "list.entry.lifted"]
