"""The audit trail in the platform admin console (等保 8.1.4.3: time, who, event, result; not
editable by admins): filters that each narrow, newest first, keyset pages, the CSV export
(UTF-8 with BOM, fixed columns, formula cells neutralised, capped) — and the export itself is
audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from idp.accounts.service import create_person
from idp.admin import audit_log
from idp.audit import AuditEvent
from idp.extensions import db
from idp.orgs.models import Organisation
from tests.factories import PASSWORD
from tests.unit.admin.helpers import as_admin, events

MARKS = ("E1", "E2", "E3", "E4")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def trail(app) -> dict[str, Any]:
    """Four known events (detail.mark E1–E4) among whatever the admin's own login writes."""
    a = create_person("13911110001", "甲", PASSWORD, must_change=False)
    b = create_person("13911110002", "乙", PASSWORD, must_change=False)
    o1 = Organisation(type="enterprise", name="上海甲乙物业有限公司", uscc="91310115MA1FL0D34W",
                      org_code="MA1FL0D34")
    o2 = Organisation(type="committee", name="和谐花园业主委员会")
    db.session.add_all([o1, o2])
    db.session.flush()
    rows = [
        # 2026-01-10 08:00 Beijing = 00:00 UTC
        AuditEvent(at=utc(2026, 1, 10, 0, 0), event="login", result="success",
                   account_id=a.id, client_id="rp1", organisation_id=o1.id, ip="10.0.0.1",
                   detail={"mark": "E1"}),
        AuditEvent(at=utc(2026, 1, 11, 1, 0), event="login", result="failure",
                   account_id=b.id, detail={"mark": "E2", "reason": "wrong_password"}),
        AuditEvent(at=utc(2026, 1, 12, 2, 0), event="admin.client.create", result="success",
                   account_id=a.id, client_id="rp2", organisation_id=o2.id,
                   detail={"mark": "E3"}),
        AuditEvent(at=utc(2026, 1, 12, 2, 30), event="logout", result="success",
                   account_id=b.id, organisation_id=o1.id, detail={"mark": "E4"}),
    ]
    db.session.add_all(rows)
    db.session.commit()
    return {"a": a.id, "b": b.id, "o1": o1.id, "o2": o2.id}


def shown(text: str) -> set[str]:
    """The marks of the events listed (the detail column is the event's JSON)."""
    return {mark for mark in MARKS if f'"mark": "{mark}"' in text}


FILTER_CASES = [
    ({}, {"E1", "E2", "E3", "E4"}),
    ({"start": "2026-01-11T09:00"}, {"E2", "E3", "E4"}),
    ({"start": "2026-01-11T09:01"}, {"E3", "E4"}),
    ({"end": "2026-01-11T09:00"}, {"E1", "E2"}),  # the whole minute 09:00 is included
    ({"end": "2026-01-11T08:59"}, {"E1"}),
    ({"start": "2026-01-12", "end": "2026-01-12"}, {"E3", "E4"}),
    ({"start": "2026-01-12 10:00:00", "end": "2026-01-12 10:29:59"}, {"E3"}),
    ({"account": "{a}"}, {"E1", "E3"}),
    ({"account": "13911110002"}, {"E2", "E4"}),
    ({"account": "+86 139-1111-0002"}, {"E2", "E4"}),
    ({"org": "{o1}"}, {"E1", "E4"}),
    ({"org": "91310115ma1fl0d34w"}, {"E1", "E4"}),
    ({"org": "和谐花园"}, {"E3"}),
    ({"org": "上海甲乙物业有限公司"}, {"E1", "E4"}),
    ({"event": "login"}, {"E1", "E2"}),
    ({"event": "log"}, {"E1", "E2", "E4"}),
    ({"event": "admin.client"}, {"E3"}),
    ({"result": "failure"}, {"E2"}),
    ({"result": "success", "account": "{b}"}, {"E4"}),
    ({"account": "13911119999"}, set()),  # no such account: nothing, with a note
    ({"org": "不存在的单位"}, set()),
    ({"org": "999999"}, set()),
    ({"event": "login_x"}, set()),  # "_" is not a wildcard
]


def _args(raw: dict[str, str], trail: dict[str, Any]) -> dict[str, str]:
    return {k: v.format(**trail) for k, v in raw.items()}


@pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
def test_audit_filters_each_narrow(app, client, trail, raw, expected):
    as_admin(client, app)
    response = client.get("/admin/audit", query_string=_args(raw, trail))
    assert response.status_code == 200, response.text
    assert shown(response.text) == expected


@pytest.mark.parametrize(("raw", "expected"), FILTER_CASES)
def test_audit_csv_has_the_same_filters(app, client, trail, raw, expected):
    as_admin(client, app)
    response = client.get("/admin/audit.csv", query_string=_args(raw, trail))
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    marks = {m for row in rows[1:] for m in MARKS if f'"mark": "{m}"' in row[7]}
    assert marks == expected


def test_unknown_phone_says_so_beside_the_field(app, client, trail):
    as_admin(client, app)
    page = client.get("/admin/audit", query_string={"account": "13911119999"})
    assert page.status_code == 200 and "未找到该手机号码的账号" in page.text


def test_newest_first(app, client, trail):
    as_admin(client, app)
    text = client.get("/admin/audit", query_string={"end": "2026-02-01"}).text
    positions = [text.index(f'"mark": "{m}"') for m in ("E4", "E3", "E2", "E1")]
    assert positions == sorted(positions)


def test_times_are_shown_in_beijing_time(app, client, trail):
    as_admin(client, app)
    text = client.get("/admin/audit", query_string={"event": "login", "result": "success",
                                                    "end": "2026-02-01"}).text
    assert "2026-01-10 08:00（北京时间）" in text


def test_keyset_pages(app, client):
    as_admin(client, app)
    db.session.add_all([AuditEvent(at=utc(2025, 1, 1, 0, 0), event="bulk", result="success",
                                   detail={"n": n}) for n in range(120)])
    db.session.commit()
    first = client.get("/admin/audit", query_string={"event": "bulk"})
    assert first.status_code == 200
    assert first.text.count('class="event-success"') == audit_log.PAGE_SIZE
    assert 'id="newer"' not in first.text
    older = re.search(r'id="older" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = client.get(older)
    assert second.text.count('class="event-success"') == audit_log.PAGE_SIZE
    third_url = re.search(r'id="older" href="([^"]+)"', second.text).group(1)
    third = client.get(third_url.replace("&amp;", "&"))
    assert third.text.count('class="event-success"') == 20
    assert 'id="older"' not in third.text
    newer = re.search(r'id="newer" href="([^"]+)"', third.text).group(1).replace("&amp;", "&")
    back = client.get(newer)
    n_first = re.findall(r'"n": (\d+)', first.text)
    n_second = re.findall(r'"n": (\d+)', second.text)
    assert n_first == [str(n) for n in range(119, 69, -1)]
    assert n_second == [str(n) for n in range(69, 19, -1)]
    assert re.findall(r'"n": (\d+)', back.text) == n_second
    assert 'id="newer"' in back.text and 'id="newest"' in back.text


def test_csv_format_bom_header_and_escaping(app, client, trail):
    as_admin(client, app)
    response = client.get("/admin/audit.csv", query_string={"event": "log", "end": "2026-02-01"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    assert response.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == ["时间", "事件", "结果", "账号", "客户端", "组织", "IP", "详情"]
    assert [r[7] for r in rows[1:]] == ['{"mark": "E4"}', '{"mark": "E2", "reason": '
                                        '"wrong_password"}', '{"mark": "E1"}']
    e1 = rows[3]
    assert e1[:7] == ["2026-01-10 08:00:00", "login", "成功", trail["a"], "rp1",
                      str(trail["o1"]), "10.0.0.1"]
    assert rows[2][2] == "失败"


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://evil\")", "+1+1", "-2+3", "@SUM(A1)",
                                   "\t=1", "\r=1"])
def test_csv_injection_is_neutralised(app, client, value):
    as_admin(client, app)
    db.session.add(AuditEvent(at=utc(2025, 6, 1, 0, 0), event="inject", result="success",
                              account_id=value[:32], client_id=value, ip=value[:64],
                              detail={"v": value}))
    db.session.commit()
    response = client.get("/admin/audit.csv", query_string={"event": "inject"})
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert len(rows) == 2
    row = rows[1]
    for cell in (row[3], row[4], row[6]):
        assert cell.startswith("'") and cell[1:] == value[:len(cell) - 1]
    assert row[7].startswith("{")  # JSON starts with a brace: harmless as it is


def test_csv_cell_guard_leaves_ordinary_text_alone():
    assert audit_log.csv_cell("login") == "login"
    assert audit_log.csv_cell(None) == ""
    assert audit_log.csv_cell("1-2") == "1-2"
    assert audit_log.csv_cell("-1") == "'-1"


def test_csv_is_streamed_in_batches_and_capped(app, client, monkeypatch):
    as_admin(client, app)
    db.session.add_all([AuditEvent(at=utc(2025, 1, 1, 0, 0), event="bulk", result="success",
                                   detail={"n": n}) for n in range(25)])
    db.session.commit()
    monkeypatch.setattr(audit_log, "CSV_BATCH", 4)
    monkeypatch.setattr(audit_log, "CSV_CAP", 10)
    response = client.get("/admin/audit.csv", query_string={"event": "bulk"})
    assert response.is_streamed
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert len(rows) == 1 + 10
    assert [r[7] for r in rows[1:3]] == ['{"n": 24}', '{"n": 23}']  # newest first
    monkeypatch.setattr(audit_log, "CSV_CAP", 100)
    rows = list(csv.reader(io.StringIO(
        client.get("/admin/audit.csv", query_string={"event": "bulk"}).data.decode("utf-8-sig"))))
    assert len(rows) == 1 + 25 and len({r[7] for r in rows[1:]}) == 25


def test_csv_export_is_audited(app, client, trail):
    admin, _ = as_admin(client, app)
    client.get("/admin/audit.csv", query_string={"account": "13911110002", "result": "failure"})
    exported = events("admin.audit.export", "success")
    assert len(exported) == 1 and exported[0].account_id == admin.id
    assert exported[0].detail["filter_account"] == trail["b"]
    assert exported[0].detail["filter_result"] == "failure"


def test_the_list_offers_the_export_with_the_same_filters(app, client, trail):
    as_admin(client, app)
    page = client.get("/admin/audit", query_string={"event": "login", "result": "failure"})
    link = re.search(r'id="export-csv" href="([^"]+)"', page.text).group(1)
    assert link.startswith("/admin/audit.csv?")
    assert "event=login" in link and "result=failure" in link
