"""The admin REST API's 小区管理处 (T03): list, 新建 (no review, a 管理处编码), 查看, 修改 (the
fields sent; the code stays), 删除 with the office's operators moved or deleted by choice —
without a choice 409 and nothing changes. Exact messages; bad input writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from idp.audit import AuditEvent
from idp.console.models import Operator
from idp.console.offices import (
    MSG_ADDRESS,
    MSG_CONTACT_NAME,
    MSG_CONTACT_PHONE,
    MSG_NAME,
    MSG_NAME_TAKEN,
    MSG_REMARK,
)
from idp.extensions import db
from idp.orgs.models import Organisation
from tests.conftest import table_counts
from tests.factories import make_office, make_operator

URL = "/api/v1/offices"
EXEMPT = ("audit_event", "store_entry")


def counts() -> dict[str, int]:
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


def events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == name)))


def post(client: FlaskClient, auth: dict[str, str], body: Any, method: str = "post",
         url: str = URL) -> Any:
    return getattr(client, method)(url, headers=auth, data=json.dumps(body),
                                   content_type="application/json")


def test_t03_create_list_get(client: FlaskClient, enterprise: Organisation,
                             auth: dict[str, str]) -> None:
    """T03: 新建 answers 201 with the office and its 管理处编码; usable at once (a department
    for operators); listed with its operator count."""
    response = post(client, auth, {"name": "和谐花园管理处", "contact_name": "王五",
                                   "contact_phone": "021-58881234", "address": "浦东新区某路1号",
                                   "remark": "一期"})
    assert response.status_code == 201, response.text
    office = response.json
    assert response.headers["Location"] == f"{URL}/{office['id']}"
    assert office["code"] == "MA1FL0D34-001"
    assert (office["name"], office["contact_name"], office["contact_phone"], office["address"],
            office["remark"], office["operator_count"]) == (
        "和谐花园管理处", "王五", "021-58881234", "浦东新区某路1号", "一期", 0)
    (event,) = events("api.office.create")
    assert (event.client_id, event.organisation_id) == ("prov", enterprise.id)
    created = client.post("/api/v1/operators", headers=auth, json={
        "name": "李四", "department_id": office["id"], "phone": "13900000002"})
    assert created.status_code == 201 and created.json["category"] == "office"
    listed = client.get(URL, headers=auth).json
    assert listed["total"] == 1 and listed["items"][0]["operator_count"] == 1
    shown = client.get(f"{URL}/{office['id']}", headers=auth)
    assert shown.status_code == 200 and shown.json["operator_count"] == 1
    minimal = post(client, auth, {"name": "阳光苑管理处"})
    assert minimal.status_code == 201
    assert (minimal.json["contact_name"], minimal.json["address"]) == ("", "")
    assert minimal.json["code"] == "MA1FL0D34-002"


def test_t03_duplicate_name_is_409(client: FlaskClient, enterprise: Organisation,
                                   auth: dict[str, str]) -> None:
    make_office(enterprise, name="和谐花园管理处")
    before = counts()
    response = post(client, auth, {"name": "和谐花园管理处"})
    assert response.status_code == 409
    assert response.json == {"error": "name_taken", "message": MSG_NAME_TAKEN, "field": "name"}
    assert counts() == before


BAD_FIELDS = [
    ({"name": ""}, "name", MSG_NAME),
    ({"name": None}, "name", MSG_NAME),
    ({"name": "管理处<script>"}, "name", MSG_NAME),
    ({"name": "管" * 101}, "name", MSG_NAME),
    ({"name": 5}, "name", MSG_NAME),
    ({"name": "\ud800"}, "name", MSG_NAME),
    ({"contact_name": "王五1"}, "contact_name", MSG_CONTACT_NAME),
    ({"contact_name": ["王五"]}, "contact_name", MSG_CONTACT_NAME),
    ({"contact_phone": "12345"}, "contact_phone", MSG_CONTACT_PHONE),
    ({"contact_phone": 13900000001}, "contact_phone", MSG_CONTACT_PHONE),
    ({"address": "a" * 201}, "address", MSG_ADDRESS),
    ({"address": "某路'; DROP TABLE"}, "address", MSG_ADDRESS),
    ({"remark": "<b>x</b>"}, "remark", MSG_REMARK),
    ({"remark": "a\u0000b"}, "remark", MSG_REMARK),
    ({"remark": {"a": 1}}, "remark", MSG_REMARK),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_FIELDS)
def test_t03_create_bad_field_is_400(client: FlaskClient, enterprise: Organisation,
                                     auth: dict[str, str], changes: dict[str, Any],
                                     field: str, message: str) -> None:
    before = counts()
    response = post(client, auth, {"name": "和谐花园管理处", **changes})
    assert response.status_code == 400, response.text
    assert response.json == {"error": "invalid_field", "message": message, "field": field}
    assert counts() == before


@pytest.mark.parametrize(("changes", "field", "message"), BAD_FIELDS)
def test_t03_patch_bad_field_is_400(client: FlaskClient, enterprise: Organisation,
                                    auth: dict[str, str], changes: dict[str, Any],
                                    field: str, message: str) -> None:
    office = make_office(enterprise)
    before = counts()
    response = post(client, auth, changes, "patch", f"{URL}/{office.id}")
    assert response.status_code == 400, response.text
    assert response.json == {"error": "invalid_field", "message": message, "field": field}
    assert counts() == before
    db.session.refresh(office)
    assert office.name == "演示物业和谐花园管理处"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"code": "X-001"}, 400, "不支持的字段"),
    ({"status": "disabled"}, 400, "不支持的字段"),
    ([], 400, "请求体应为 JSON 对象"),
])
def test_t03_bad_bodies(client: FlaskClient, enterprise: Organisation, auth: dict[str, str],
                        body: Any, status: int, message: str) -> None:
    office = make_office(enterprise)
    before = counts()
    for method, url in (("post", URL), ("patch", f"{URL}/{office.id}")):
        response = post(client, auth, body, method, url)
        assert response.status_code == status
        assert response.json["message"] == message
    empty = post(client, auth, {}, "patch", f"{URL}/{office.id}")
    assert empty.status_code == 400 and empty.json["message"] == "没有需要保存的修改"
    assert counts() == before


def test_t03_patch_changes_only_what_is_sent(client: FlaskClient, enterprise: Organisation,
                                             auth: dict[str, str]) -> None:
    office = make_office(enterprise)
    make_office(enterprise, name="阳光苑管理处")
    first = post(client, auth, {"contact_name": "王五", "address": "某路1号"}, "patch",
                 f"{URL}/{office.id}")
    assert first.status_code == 200, first.text
    assert (first.json["name"], first.json["contact_name"], first.json["address"],
            first.json["code"]) == ("演示物业和谐花园管理处", "王五", "某路1号", office.code)
    renamed = post(client, auth, {"name": "和谐花园二期管理处"}, "patch", f"{URL}/{office.id}")
    assert renamed.status_code == 200
    assert (renamed.json["name"], renamed.json["contact_name"]) == ("和谐花园二期管理处", "王五")
    taken = post(client, auth, {"name": "阳光苑管理处"}, "patch", f"{URL}/{office.id}")
    assert taken.status_code == 409 and taken.json["message"] == MSG_NAME_TAKEN
    assert len(events("api.office.update")) == 2


def test_t03_delete_with_operators_needs_a_choice(client: FlaskClient,
                                                  enterprise: Organisation,
                                                  auth: dict[str, str]) -> None:
    """T03: with live operators and no choice: 409 and nothing changes; ``move`` puts them in
    the enterprise itself; the office is gone (404) afterwards, its row kept."""
    office = make_office(enterprise)
    operator = make_operator(enterprise, department=office)
    before = counts()
    refused = client.delete(f"{URL}/{office.id}", headers=auth)
    assert refused.status_code == 409
    assert refused.json == {"error": "office_has_operators",
                            "message": "该管理处还有1名操作员，请选择如何处理这些操作员",
                            "field": "operators"}
    bad = client.delete(f"{URL}/{office.id}", headers=auth, query_string={"operators": "keep"})
    assert bad.status_code == 400 and bad.json["field"] == "operators"
    assert counts() == before
    moved = client.delete(f"{URL}/{office.id}", headers=auth, query_string={"operators": "move"})
    assert moved.status_code == 204
    db.session.expire_all()
    row = db.session.get(Operator, operator.id)
    assert row is not None and (row.department_id, row.category, row.status) == (
        enterprise.id, "enterprise", "active")
    assert db.session.get(Organisation, office.id).status == "disabled"  # type: ignore[union-attr]
    assert client.get(f"{URL}/{office.id}", headers=auth).status_code == 404
    assert client.delete(f"{URL}/{office.id}", headers=auth).status_code == 404
    (event,) = events("api.office.delete")
    assert (event.client_id, event.organisation_id) == ("prov", enterprise.id)
    assert event.detail["operators"] == "move"


def test_t03_delete_with_operators_deleted(client: FlaskClient, enterprise: Organisation,
                                           auth: dict[str, str]) -> None:
    office = make_office(enterprise)
    operator = make_operator(enterprise, department=office)
    response = client.delete(f"{URL}/{office.id}", headers=auth,
                             query_string={"operators": "delete"})
    assert response.status_code == 204
    db.session.expire_all()
    row = db.session.get(Operator, operator.id)
    assert row is not None and row.status == "deleted"


def test_t03_delete_empty_office(client: FlaskClient, enterprise: Organisation,
                                 auth: dict[str, str]) -> None:
    office = make_office(enterprise)
    assert client.delete(f"{URL}/{office.id}", headers=auth).status_code == 204
    assert client.get(URL, headers=auth).json == {"items": [], "total": 0}


def test_t03_unknown_or_enterprise_ids_are_404(client: FlaskClient, enterprise: Organisation,
                                               auth: dict[str, str]) -> None:
    """The enterprise itself is not an office; junk ids are 404, not 500."""
    for bad in (str(enterprise.id), "999999", "0", "x", str(2**40)):
        response = client.get(f"{URL}/{bad}", headers=auth)
        assert response.status_code == 404, bad
        assert response.json == {"error": "not_found", "message": "小区管理处不存在"}
