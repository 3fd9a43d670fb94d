"""小区管理处信息管理 (T03, T06): an enterprise admin manages its management offices — 新建 / 删除
/ 修改 / 查看 under 「基础信息管理」, no review; tenant isolation in the data layer; deleting an
office decides what becomes of its operators; bad input writes nothing and is never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from idp.accounts.models import Account, Identity
from idp.audit import AuditEvent
from idp.console.models import Operator
from idp.console.offices import (
    MSG_ADDRESS,
    MSG_CONTACT_NAME,
    MSG_CONTACT_PHONE,
    MSG_NAME,
    MSG_NAME_TAKEN,
    MSG_OPERATORS_CHOICE,
    MSG_REMARK,
    OfficeForm,
    OfficeHasOperators,
    OfficeNotFound,
    check_office,
    create_office,
    delete_office,
    get_office,
    list_offices,
    live_operator_count,
    next_office_code,
    update_office,
)
from idp.console.tenant import Tenant, tenant_of
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.web import MSG_CONTROL_CHARACTERS
from tests.conftest import csrf_from, table_counts
from tests.factories import (
    PASSWORD,
    login,
    make_account,
    make_enterprise,
    make_office,
    make_operator,
    ukey_login,
)

BASE = "/console/offices"
FOREIGN_USCC = "91110000600037341L"
OP_PHONE = "13900000001"
BREADCRUMB = "首页 / 基础信息管理 / 小区管理处信息管理"
COLUMNS = ["序号", "管理处编码", "管理处名称", "负责人", "联系电话", "操作员数", "状态"]
GOOD = {"name": "和谐花园管理处", "contact_name": "王建国", "contact_phone": "13812345678",
        "address": "上海市浦东新区和谐路1号", "remark": "负责和谐花园一期、二期"}


# --- helpers --------------------------------------------------------------------------------

def counts() -> dict[str, int]:
    return {k: v for k, v in table_counts().items() if k != "audit_event"}


def events(name: str, result: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == name)
    if result:
        query = query.where(AuditEvent.result == result)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, blanks collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" /  ", " / ")


def admin(client: FlaskClient, devca: Any) -> Organisation:
    """The demo enterprise, logged in with its UKey (the enterprise admin, D02)."""
    enterprise = make_enterprise()
    response = ukey_login(client, devca.sample("demo").pem_path.read_bytes())
    assert response.status_code == 303, response.text
    return enterprise


def tenant() -> Tenant:
    account = db.session.scalar(sa.select(Account).where(Account.kind == "ukey"))
    found = tenant_of(account)
    assert found is not None
    return found


def foreign_office() -> Organisation:
    other = make_enterprise(uscc=FOREIGN_USCC, name="北京外地物业有限公司", ukey=False)
    return make_office(other, "外地物业阳光苑管理处")


def csrf(client: FlaskClient, url: str = BASE + "/new") -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def post_new(client: FlaskClient, **fields: str) -> Any:
    data = {**GOOD, **fields, "csrf_token": csrf(client)}
    return client.post(BASE + "/new", data=data)


def office_id_of(response: Any) -> int:
    assert response.status_code == 303, response.text
    match = re.search(r"/console/offices/(\d+)\?done=created$", response.location)
    assert match, response.location
    return int(match.group(1))


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error" role="alert">([^<]*)</p>',
                      html)
    assert match, f"no error slot for {field}"
    return match.group(1)


def fresh(model: Any, row_id: Any) -> Any:
    db.session.expire_all()
    return db.session.get(model, row_id)


# --- who may enter --------------------------------------------------------------------------

ROUTES = [BASE, BASE + "/new", BASE + "/{id}", BASE + "/{id}/edit", BASE + "/{id}/delete"]
POST_ROUTES = [BASE + "/new", BASE + "/{id}/edit", BASE + "/{id}/delete"]


@pytest.mark.parametrize("route", ROUTES)
def test_t03_anonymous_is_sent_to_login(app: Flask, client: FlaskClient, route: str) -> None:
    office = make_office(make_enterprise())
    response = client.get(route.format(id=office.id))
    assert response.status_code == 303 and response.location.endswith("/login")


@pytest.mark.parametrize("route", POST_ROUTES)
def test_t03_anonymous_post_changes_nothing(app: Flask, client: FlaskClient, route: str) -> None:
    office = make_office(make_enterprise())
    token = csrf_from(client.get("/login").text)
    before = counts()
    response = client.post(route.format(id=office.id),
                           data={**GOOD, "operators": "delete", "csrf_token": token})
    assert response.status_code == 303 and response.location.endswith("/login")
    assert counts() == before
    assert fresh(Organisation, office.id).status == "active"


@pytest.mark.parametrize("route", ROUTES)
def test_t03_pending_password_change_goes_to_the_change_page(
        app: Flask, client: FlaskClient, route: str) -> None:
    account = make_account("13912345678", must_change=True, role="enterprise_admin")
    enterprise_id = account.identities[0].organisation_id
    office = make_office(db.session.get(Organisation, enterprise_id))
    login(client, app, "13912345678", PASSWORD)
    response = client.get(route.format(id=office.id))
    assert response.status_code == 303 and response.location.endswith("/password/change")


@pytest.mark.parametrize("route", ROUTES)
def test_t03_non_admin_is_refused_and_audited(app: Flask, client: FlaskClient,
                                             route: str) -> None:
    """An operator (not an enterprise admin) gets 403; the attempt is in the audit trail."""
    account = make_account("13912345678", role="operator")
    office = make_office(db.session.get(Organisation, account.identities[0].organisation_id))
    assert login(client, app, "13912345678", PASSWORD).status_code == 303
    path = route.format(id=office.id)
    response = client.get(path)
    assert response.status_code == 403
    denied = events("console.denied", "failure")
    assert denied and denied[-1].account_id == account.id and denied[-1].detail["path"] == path


@pytest.mark.parametrize("status", ["pending", "returned", "disabled"])
def test_t03_admin_of_an_enterprise_not_active_is_refused(app: Flask, client: FlaskClient,
                                                          devca: Any, status: str) -> None:
    """A registration under review (T02), returned, or an enterprise disabled after the login:
    no tenant, so no console."""
    enterprise = admin(client, devca)
    office = make_office(enterprise)
    enterprise.status = status
    db.session.commit()
    before = counts()
    for route in ROUTES:
        assert client.get(route.format(id=office.id)).status_code == 403
    assert counts() == before
    assert len(events("console.denied", "failure")) == len(ROUTES)


def test_t03_a_person_enterprise_admin_gets_in(app: Flask, client: FlaskClient) -> None:
    """The tenant comes from an enterprise_admin identity, whoever holds it (T06: personal
    accounts, not only the enterprise's UKey)."""
    make_account("13912345678", role="enterprise_admin")
    assert login(client, app, "13912345678", PASSWORD).status_code == 303
    assert client.get(BASE).status_code == 200


# --- 列表 -----------------------------------------------------------------------------------

def test_t03_list_labels_and_empty(app: Flask, client: FlaskClient, devca: Any) -> None:
    admin(client, devca)
    response = client.get(BASE)
    assert response.status_code == 200
    html = response.text
    assert BREADCRUMB in text_of(html)
    assert "<h1>小区管理处信息管理</h1>" in html
    for label in ("新建", "删除", "修改", "查看"):
        assert f">{label}</" in html, label
    assert f'href="{BASE}/new"' in html
    for column in COLUMNS:
        assert f'<th scope="col">{column}</th>' in html, column
    assert "暂无数据" in html
    assert 'style="' not in html and "<script" not in html and "<style" not in html


def test_t03_list_shows_live_offices_of_the_tenant_only(app: Flask, client: FlaskClient,
                                                       devca: Any) -> None:
    enterprise = admin(client, devca)
    first = make_office(enterprise, "和谐花园管理处")
    first.profile = {"contact_name": "王建国", "contact_phone": "021-58881234"}
    second = make_office(enterprise, "阳光苑管理处")
    gone = make_office(enterprise, "已撤销管理处")
    gone.status = "disabled"
    db.session.commit()
    make_operator(enterprise, OP_PHONE, department=first)
    make_operator(enterprise, "13900000002", name="李四", department=first, status="disabled")
    make_operator(enterprise, "13900000003", name="王五", department=first, status="deleted")
    other = foreign_office()
    html = client.get(BASE).text
    assert "暂无数据" not in html
    assert first.name in html and second.name in html
    assert gone.name not in html and other.name not in html
    row = re.search(rf'<tr id="office-{first.id}">(.*?)</tr>', html, re.S)
    assert row
    cells = [text_of(c) for c in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]
    assert cells[1:] == ["1", first.code, first.name, "王建国", "021-58881234", "2", "正常"]
    assert f'<a href="{BASE}/{first.id}">' in row.group(1)
    row2 = re.search(rf'<tr id="office-{second.id}">(.*?)</tr>', html, re.S)
    assert row2
    cells2 = [text_of(c) for c in re.findall(r"<td>(.*?)</td>", row2.group(1), re.S)]
    assert cells2[1:] == ["2", second.code, second.name, "—", "—", "0", "正常"]


def test_t03_list_pages(app: Flask, client: FlaskClient, devca: Any) -> None:
    enterprise = admin(client, devca)
    for n in range(23):
        make_office(enterprise, f"第{n + 1}管理处")
    first = client.get(BASE).text
    assert "第 1 / 2 页" in first and "下一页" in first and "第23管理处" not in first
    second = client.get(BASE, query_string={"page": "2"}).text
    assert "第23管理处" in second and "<td>21</td>" in second and "第1管理处<" not in second
    for junk in ("0", "-1", "abc", "９", "99999999999"):
        assert client.get(BASE, query_string={"page": junk}).status_code == 200


@pytest.mark.parametrize("action,target", [("view", ""), ("edit", "/edit"),
                                           ("delete", "/delete")])
def test_t03_toolbar_acts_on_the_chosen_row(app: Flask, client: FlaskClient, devca: Any,
                                            action: str, target: str) -> None:
    """The seed's 删除 / 修改 / 查看 act on the row chosen with the radio button (no script)."""
    office = make_office(admin(client, devca))
    html = client.get(BASE).text
    assert f'name="action" value="{action}"' in html
    assert f'type="radio" name="office" value="{office.id}"' in html
    response = client.get(BASE, query_string={"action": action, "office": str(office.id)})
    assert response.status_code == 303
    assert response.location.endswith(f"{BASE}/{office.id}{target}")
    assert client.get(response.location).status_code == 200


def test_t03_toolbar_without_a_row_says_so(app: Flask, client: FlaskClient,
                                           devca: Any) -> None:
    make_office(admin(client, devca))
    response = client.get(BASE, query_string={"action": "edit"})
    assert response.status_code == 400
    assert field_error(response.text, "office") == "请先选择一个管理处"


@pytest.mark.parametrize("args", [
    {"action": "remove", "office": "1"}, {"action": "<script>", "office": "1"},
    {"action": "view", "office": "abc"}, {"action": "view", "office": "99999999999"},
    {"action": "view", "office": "１"}, {"action": "view", "office": "1 OR 1=1"},
    {"action": "view", "office": "-1"}, {"action": "edit", "office": "'; DROP TABLE x;--"},
])
def test_t03_toolbar_bad_choices(app: Flask, client: FlaskClient, devca: Any,
                                 args: dict[str, str]) -> None:
    make_office(admin(client, devca))
    before = counts()
    response = client.get(BASE, query_string=args)
    assert response.status_code in (400, 404)
    assert "<script>" not in response.text
    assert counts() == before


# --- 新建 -----------------------------------------------------------------------------------

def test_t03_new_form_labels(app: Flask, client: FlaskClient, devca: Any) -> None:
    admin(client, devca)
    html = client.get(BASE + "/new").text
    assert BREADCRUMB in text_of(html)
    for label in ("管理处名称", "负责人", "联系电话", "地址", "备注"):
        assert re.search(rf"<label for=\"\w+\">(<span[^>]*>\*</span> )?{label}</label>", html)
    assert "<h1>新建小区管理处</h1>" in html
    assert ">保存</button>" in html and 'name="csrf_token"' in html


def test_t03_create_office_needs_no_review(app: Flask, client: FlaskClient, devca: Any) -> None:
    """新建 takes effect at once (no application, no review) and makes no shared office login
    (T06: the office's people are named operators, added in 操作员管理)."""
    enterprise = admin(client, devca)
    before = counts()
    response = post_new(client, name="  和谐花园   管理处 ", contact_phone="021-58881234")
    office_id = office_id_of(response)
    office = fresh(Organisation, office_id)
    assert office.type == "office" and office.status == "active"
    assert office.parent_id == enterprise.id and office.district == enterprise.district
    assert office.name == "和谐花园 管理处"
    assert office.code == "MA1FL0D34-001"
    assert office.profile == {"contact_name": "王建国", "contact_phone": "021-58881234",
                              "address": GOOD["address"], "remark": GOOD["remark"]}
    after = counts()
    assert after["organisation"] == before["organisation"] + 1
    assert {k: v for k, v in after.items() if k != "organisation"} == \
        {k: v for k, v in before.items() if k != "organisation"}
    created = events("office.create")
    assert len(created) == 1 and created[0].organisation_id == enterprise.id
    assert created[0].detail["office_id"] == office_id
    assert created[0].account_id == tenant().actor_id
    page = client.get(response.location)
    assert "小区管理处已新建" in page.text and office.code in page.text
    # Usable at once: a department for operators, offered to committees (T08).
    assert tenant().department(office_id) is not None


def test_t03_view_page(app: Flask, client: FlaskClient, devca: Any) -> None:
    enterprise = admin(client, devca)
    office_id = office_id_of(post_new(client))
    make_operator(enterprise, OP_PHONE, department=fresh(Organisation, office_id))
    make_operator(enterprise, "13900000002", name="李四", department=enterprise)
    html = client.get(f"{BASE}/{office_id}").text
    assert BREADCRUMB + " / 查看" in text_of(html)
    for label, value in (("管理处编码", "MA1FL0D34-001"), ("管理处名称", GOOD["name"]),
                         ("负责人", GOOD["contact_name"]), ("联系电话", GOOD["contact_phone"]),
                         ("地址", GOOD["address"]), ("备注", GOOD["remark"]),
                         ("状态", "正常")):
        assert re.search(rf"<dt>{label}</dt><dd[^>]*>{re.escape(value)}</dd>", html), label
    assert "操作员数：1 名" in html
    assert 'href="/console/operators?unit_code=MA1FL0D34-001"' in html
    assert f'href="{BASE}/{office_id}/edit"' in html
    assert f'href="{BASE}/{office_id}/delete"' in html


def test_t03_codes_are_unique_and_increasing(app: Flask, client: FlaskClient,
                                             devca: Any) -> None:
    enterprise = admin(client, devca)
    ids = [office_id_of(post_new(client, name=f"第{n}管理处")) for n in range(1, 4)]
    codes = [fresh(Organisation, i).code for i in ids]
    assert codes == ["MA1FL0D34-001", "MA1FL0D34-002", "MA1FL0D34-003"]
    token = csrf(client, f"{BASE}/{ids[1]}/delete")
    assert client.post(f"{BASE}/{ids[1]}/delete",
                       data={"csrf_token": token}).status_code == 303
    fourth = fresh(Organisation, office_id_of(post_new(client, name="第4管理处")))
    assert fourth.code == "MA1FL0D34-004"  # a deleted office keeps its code: never reused
    # A code out of the sequence (a data fix) does not make the next one collide.
    stray = make_office(enterprise, "补录管理处")
    stray.code = "MA1FL0D34-017"
    db.session.commit()
    assert next_office_code(fresh(Organisation, enterprise.id)) == "MA1FL0D34-018"
    all_codes = db.session.scalars(sa.select(Organisation.code).where(
        Organisation.type == "office")).all()
    assert len(all_codes) == len(set(all_codes))


def test_t03_name_unique_among_live_offices(app: Flask, client: FlaskClient,
                                            devca: Any) -> None:
    enterprise = admin(client, devca)
    foreign_office()  # another enterprise may use any name
    office_id_of(post_new(client, name="和谐花园1期管理处"))
    office_id_of(post_new(client, name="外地物业阳光苑管理处"))
    for same in ("和谐花园1期管理处", "和谐花园１期管理处", " 和谐花园1期 管理处"):
        before = counts()
        response = post_new(client, name=same)
        assert response.status_code == 400
        assert field_error(response.text, "name") == MSG_NAME_TAKEN == "该管理处名称已存在"
        assert counts() == before
    # A deleted office's name is free again.
    gone = make_office(enterprise, "旧管理处")
    gone.status = "disabled"
    db.session.commit()
    office_id_of(post_new(client, name="旧管理处"))


def test_t03_optional_fields_may_be_empty(app: Flask, client: FlaskClient, devca: Any) -> None:
    admin(client, devca)
    office = fresh(Organisation, office_id_of(post_new(
        client, contact_name="", contact_phone="", address="", remark="")))
    assert office.profile == {"contact_name": "", "contact_phone": "", "address": "",
                              "remark": ""}


@pytest.mark.parametrize("field,value,stored", [
    # Full-width digits and punctuation are ordinary Chinese text in an address: kept.
    ("address", "浦东新区和谐路１２３号", "浦东新区和谐路１２３号"),
    ("address", "和谐路1号；2号楼（东）", "和谐路1号；2号楼（东）"),  # full-width ；（）
    ("remark", "负责  一期\n二期", "负责 一期 二期"),
    ("contact_phone", "+86 138-1234-5678", "13812345678"),
    ("contact_phone", "021-58881234转8001", "021-58881234转8001"),
    ("contact_name", "阿依古丽·买买提", "阿依古丽·买买提"),
    ("name", "上海第1物业（集团）和谐花园管理处", "上海第1物业（集团）和谐花园管理处"),
])
def test_t03_accepted_values(app: Flask, client: FlaskClient, devca: Any, field: str,
                             value: str, stored: str) -> None:
    admin(client, devca)
    office = fresh(Organisation, office_id_of(post_new(client, **{field: value})))
    assert (office.name if field == "name" else office.profile[field]) == stored


# --- bad input ------------------------------------------------------------------------------

BAD = [
    ("name", "", MSG_NAME), ("name", "   ", MSG_NAME), ("name", "和" * 101, MSG_NAME),
    ("name", "<script>alert(1)</script>", MSG_NAME), ("name", "和谐\x01管理处", MSG_NAME),
    ("name", "１２３４", MSG_NAME), ("name", "和谐'管理处", MSG_NAME),
    ("name", "和谐;管理处", MSG_NAME), ("name", 'a"b', MSG_NAME),
    ("name", "x' OR '1'='1", MSG_NAME), ("name", "管理处\x7f", MSG_NAME),
    ("contact_name", "张" * 51, MSG_CONTACT_NAME),
    ("contact_name", "<script>", MSG_CONTACT_NAME),
    ("contact_name", "张三\x00", MSG_CONTACT_NAME), ("contact_name", "张三１", MSG_CONTACT_NAME),
    ("contact_name", '张"三', MSG_CONTACT_NAME), ("contact_name", "张三;", MSG_CONTACT_NAME),
    ("contact_phone", "1381234567", MSG_CONTACT_PHONE),
    ("contact_phone", "1" * 31, MSG_CONTACT_PHONE),
    ("contact_phone", "<script>", MSG_CONTACT_PHONE),
    ("contact_phone", "１３８１２３４５６７８", MSG_CONTACT_PHONE),
    ("contact_phone", "138;12345678", MSG_CONTACT_PHONE),
    ("contact_phone", "'13812345678'", MSG_CONTACT_PHONE),
    ("contact_phone", "13812345678\x0b", MSG_CONTACT_PHONE),
    ("contact_phone", "电话", MSG_CONTACT_PHONE),
    ("address", "地" * 201, MSG_ADDRESS), ("address", "<script>alert(1)</script>", MSG_ADDRESS),
    ("address", "和谐路1号\x1b", MSG_ADDRESS), ("address", "和谐路'1号", MSG_ADDRESS),
    ("address", "和谐路1号; DROP TABLE organisation", MSG_ADDRESS),
    ("address", 'a"b', MSG_ADDRESS),
    ("remark", "备" * 201, MSG_REMARK), ("remark", "<b>x</b>", MSG_REMARK),
    ("remark", "备注\x08", MSG_REMARK), ("remark", "it's", MSG_REMARK),
    ("remark", "a;b", MSG_REMARK), ("remark", "a\\b", MSG_REMARK),
]
BAD_IDS = [f"{field}-{i}" for i, (field, _, _) in enumerate(BAD)]


def assert_refused(response: Any, field: str, value: str, message: str) -> None:
    assert response.status_code == 400
    if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in value):
        # Control characters are stopped before any view (idp.web): the page says so.
        assert MSG_CONTROL_CHARACTERS in response.text
    else:
        assert field_error(response.text, field) == str(escape(message))
    assert "<script>" not in response.text


@pytest.mark.parametrize("field,value,message", BAD, ids=BAD_IDS)
def test_t03_bad_input_on_new_writes_nothing(app: Flask, client: FlaskClient, devca: Any,
                                             field: str, value: str, message: str) -> None:
    admin(client, devca)
    before = counts()
    response = post_new(client, **{field: value})
    assert_refused(response, field, value, message)
    assert counts() == before
    assert not events("office.create")


@pytest.mark.parametrize("field,value,message", BAD, ids=BAD_IDS)
def test_t03_bad_input_on_edit_changes_nothing(app: Flask, client: FlaskClient, devca: Any,
                                               field: str, value: str, message: str) -> None:
    admin(client, devca)
    office_id = office_id_of(post_new(client))
    before = counts()
    url = f"{BASE}/{office_id}/edit"
    response = client.post(url, data={**GOOD, field: value, "csrf_token": csrf(client, url)})
    assert_refused(response, field, value, message)
    assert counts() == before
    office = fresh(Organisation, office_id)
    assert office.name == GOOD["name"] and office.profile["address"] == GOOD["address"]
    assert not events("office.update")


@pytest.mark.parametrize("value", [None, 12, ["a"], {"a": 1}, True])
@pytest.mark.parametrize("field", ["name", "contact_name", "contact_phone", "address",
                                   "remark"])
def test_t03_check_office_refuses_what_is_not_text(app: Flask, field: str, value: Any) -> None:
    """The API hands JSON values to the service: a number or a list is bad input of that field
    (None is "left out": an error only for the required name)."""
    values: dict[str, Any] = {"name": GOOD["name"], field: value}
    if value is None and field != "name":
        assert getattr(check_office(**values), field) == ""
        return
    with pytest.raises(FieldError) as caught:
        check_office(**values)
    assert caught.value.field == field


def test_t03_missing_and_repeated_fields(app: Flask, client: FlaskClient, devca: Any) -> None:
    admin(client, devca)
    before = counts()
    response = client.post(BASE + "/new", data={"csrf_token": csrf(client)})
    assert response.status_code == 400 and field_error(response.text, "name") == MSG_NAME
    no_token = client.post(BASE + "/new", data=GOOD)
    assert no_token.status_code == 400
    assert counts() == before


# --- 修改 -----------------------------------------------------------------------------------

def test_t03_edit_office(app: Flask, client: FlaskClient, devca: Any) -> None:
    enterprise = admin(client, devca)
    office_id = office_id_of(post_new(client))
    url = f"{BASE}/{office_id}/edit"
    page = client.get(url)
    assert page.status_code == 200
    assert BREADCRUMB + " / 修改" in text_of(page.text)
    assert "<h1>修改小区管理处</h1>" in page.text
    assert f'value="{GOOD["name"]}"' in page.text and "MA1FL0D34-001" in page.text
    assert GOOD["remark"] in page.text
    before = counts()
    response = client.post(url, data={**GOOD, "name": "和谐花园（一期）管理处",
                                      "contact_phone": "", "csrf_token": csrf(client, url)})
    assert response.status_code == 303
    assert response.location.endswith(f"{BASE}/{office_id}?done=updated")
    assert counts() == before
    office = fresh(Organisation, office_id)
    assert office.name == "和谐花园（一期）管理处" and office.profile["contact_phone"] == ""
    assert office.code == "MA1FL0D34-001" and office.status == "active"
    updated = events("office.update")
    assert len(updated) == 1 and updated[0].organisation_id == enterprise.id
    assert updated[0].detail["changes"] == ["name", "contact_phone"]
    assert "小区管理处信息已修改" in client.get(response.location).text
    # Saving unchanged values is no change: nothing recorded.
    again = client.post(url, data={**GOOD, "name": "和谐花园（一期）管理处", "contact_phone": "",
                                   "csrf_token": csrf(client, url)})
    assert again.status_code == 303 and len(events("office.update")) == 1


def test_t03_edit_to_an_existing_name(app: Flask, client: FlaskClient, devca: Any) -> None:
    admin(client, devca)
    office_id_of(post_new(client, name="阳光苑管理处"))
    office_id = office_id_of(post_new(client))
    url = f"{BASE}/{office_id}/edit"
    response = client.post(url, data={**GOOD, "name": "阳光苑管理处",
                                      "csrf_token": csrf(client, url)})
    assert response.status_code == 400 and field_error(response.text, "name") == MSG_NAME_TAKEN
    assert fresh(Organisation, office_id).name == GOOD["name"]
    # Its own name (written differently) is not a clash.
    response = client.post(url, data={**GOOD, "name": " 和谐花园管理处 ",
                                      "csrf_token": csrf(client, url)})
    assert response.status_code == 303


# --- 删除 -----------------------------------------------------------------------------------

def delete_page(client: FlaskClient, office_id: int) -> Any:
    page = client.get(f"{BASE}/{office_id}/delete")
    assert page.status_code == 200, page.text
    return page


def test_t03_delete_office_without_operators(app: Flask, client: FlaskClient,
                                             devca: Any) -> None:
    enterprise = admin(client, devca)
    office_id = office_id_of(post_new(client))
    page = delete_page(client, office_id)
    assert BREADCRUMB + " / 删除" in text_of(page.text)
    assert "该管理处没有操作员" in page.text and 'type="radio"' not in page.text
    before = counts()
    response = client.post(f"{BASE}/{office_id}/delete",
                           data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303 and response.location.endswith(f"{BASE}?done=deleted")
    assert counts() == before  # soft: the row stays
    assert fresh(Organisation, office_id).status == "disabled"
    deleted = events("office.delete")
    assert len(deleted) == 1 and deleted[0].organisation_id == enterprise.id
    assert deleted[0].detail["operators"] == "none"
    listing = client.get(response.location).text
    assert "小区管理处已删除" in listing and "暂无数据" in listing
    for route in ("", "/edit", "/delete"):
        assert client.get(f"{BASE}/{office_id}{route}").status_code == 404
    assert tenant().department(office_id) is None


def office_with_operators(client: FlaskClient, devca: Any,
                          n: int = 2) -> tuple[Organisation, Organisation, list[Operator]]:
    enterprise = admin(client, devca)
    office = make_office(enterprise)
    people = [make_operator(enterprise, f"1390000000{i + 1}", name=f"操作员{'甲乙丙'[i]}",
                            department=office, status="disabled" if i == 1 else "active")
              for i in range(n)]
    make_operator(enterprise, "13900000009", name="企业员工", department=enterprise)
    return enterprise, office, people


def test_t03_delete_with_operators_needs_a_choice(app: Flask, client: FlaskClient,
                                                  devca: Any) -> None:
    _, office, people = office_with_operators(client, devca)
    page = delete_page(client, office.id)
    assert "该管理处还有2名操作员" in page.text
    assert "将这些操作员转到本企业</label>" in page.text
    assert 'type="radio" name="operators" value="move"' in page.text
    assert 'type="radio" name="operators" value="delete"' in page.text
    assert "同时删除这些操作员</label>" in page.text
    before = counts()
    response = client.post(f"{BASE}/{office.id}/delete",
                           data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 400
    assert field_error(response.text, "operators") == \
        "该管理处还有2名操作员，请选择如何处理这些操作员"
    assert counts() == before
    assert fresh(Organisation, office.id).status == "active"
    assert [fresh(Operator, p.id).department_id for p in people] == [office.id, office.id]
    assert not events("office.delete")


@pytest.mark.parametrize("choice", ["foo", "<script>", "１", "move;delete", "MOVE", "move "
                                    "delete", "0"])
def test_t03_delete_with_a_bad_choice(app: Flask, client: FlaskClient, devca: Any,
                                      choice: str) -> None:
    _, office, _ = office_with_operators(client, devca)
    page = delete_page(client, office.id)
    before = counts()
    response = client.post(f"{BASE}/{office.id}/delete",
                           data={"csrf_token": csrf_from(page.text), "operators": choice})
    assert response.status_code == 400
    assert field_error(response.text, "operators") == MSG_OPERATORS_CHOICE
    assert "<script>" not in response.text
    assert counts() == before and fresh(Organisation, office.id).status == "active"


def test_t03_delete_moving_the_operators_to_the_enterprise(app: Flask, client: FlaskClient,
                                                           devca: Any) -> None:
    enterprise, office, people = office_with_operators(client, devca)
    page = delete_page(client, office.id)
    before = counts()
    response = client.post(f"{BASE}/{office.id}/delete",
                           data={"csrf_token": csrf_from(page.text), "operators": "move"})
    assert response.status_code == 303
    assert counts() == before
    for person, status in zip(people, ("active", "disabled"), strict=True):
        operator = fresh(Operator, person.id)
        assert operator.department_id == enterprise.id
        assert (operator.category, operator.role, operator.status) == \
            ("enterprise", "operator", status)
        identity = db.session.get(Identity, operator.identity_id)
        assert identity.organisation_id == enterprise.id and identity.role == "operator"
        assert identity.status == status
    deleted = events("office.delete")
    assert deleted[0].detail["moved"] == 2 and deleted[0].detail["operators"] == "move"
    assert deleted[0].detail["operator_ids"] == [p.id for p in people]
    # The moved (active) operator still logs in, now as the enterprise's.
    other = app.test_client()
    assert login(other, app, people[0].account.phone, PASSWORD).status_code == 303
    account = fresh(Account, people[0].account_id)
    assert [i.organisation_id for i in account.identities_for("repair_fund")] == [enterprise.id]


def test_t03_move_reuses_an_identity_the_person_already_has(app: Flask, client: FlaskClient,
                                                            devca: Any) -> None:
    """A person once an operator of the enterprise (deleted), now of the office: moving must
    not meet the identity's unique constraint — the old enterprise identity comes back."""
    enterprise = admin(client, devca)
    office = make_office(enterprise)
    old = make_operator(enterprise, OP_PHONE, status="deleted")
    now = make_operator(enterprise, OP_PHONE, department=office)
    office_identity = now.identity_id
    page = delete_page(client, office.id)
    response = client.post(f"{BASE}/{office.id}/delete",
                           data={"csrf_token": csrf_from(page.text), "operators": "move"})
    assert response.status_code == 303
    operator = fresh(Operator, now.id)
    assert operator.identity_id == old.identity_id and operator.department_id == enterprise.id
    assert db.session.get(Identity, old.identity_id).status == "active"
    assert db.session.get(Identity, office_identity).status == "deleted"
    assert login(app.test_client(), app, OP_PHONE, PASSWORD).status_code == 303


def test_t03_delete_deleting_the_operators(app: Flask, client: FlaskClient,
                                           devca: Any) -> None:
    enterprise, office, people = office_with_operators(client, devca)
    page = delete_page(client, office.id)
    before = counts()
    response = client.post(f"{BASE}/{office.id}/delete",
                           data={"csrf_token": csrf_from(page.text), "operators": "delete"})
    assert response.status_code == 303
    assert counts() == before
    for person in people:
        operator = fresh(Operator, person.id)
        assert operator.status == "deleted" and operator.identity.status == "deleted"
        assert operator.account.status == "deleted"
        assert login(app.test_client(), app, operator.account.phone, PASSWORD).status_code != 303
    assert len(events("operator.delete")) == 2
    assert events("office.delete")[0].detail["deleted"] == 2
    # The enterprise's own operator is untouched.
    staff = db.session.scalar(sa.select(Operator).where(Operator.name == "企业员工"))
    assert staff.status == "active" and staff.department_id == enterprise.id


def test_t03_delete_disables_identities_no_operator_stands_for(
        app: Flask, client: FlaskClient, devca: Any) -> None:
    """An office login made before the console (no operator row) stops with the office."""
    enterprise = admin(client, devca)
    office = make_office(enterprise)
    account = make_account("13700000001", platform=None)
    identity = Identity(account_id=account.id, organisation_id=office.id, role="office",
                        platform="repair_fund")
    db.session.add(identity)
    db.session.commit()
    page = delete_page(client, office.id)
    assert "该管理处没有操作员" in page.text
    response = client.post(f"{BASE}/{office.id}/delete",
                           data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert fresh(Identity, identity.id).status == "disabled"
    assert events("office.delete")[0].detail["identities_disabled"] == 1


# --- tenant isolation -----------------------------------------------------------------------

@pytest.mark.parametrize("route", ROUTES[2:])
def test_t03_another_enterprises_office_is_not_found(app: Flask, client: FlaskClient,
                                                     devca: Any, route: str) -> None:
    admin(client, devca)
    other = foreign_office()
    assert client.get(route.format(id=other.id)).status_code == 404
    assert client.get(BASE, query_string={"action": "edit",
                                          "office": str(other.id)}).status_code == 404


@pytest.mark.parametrize("route", POST_ROUTES[1:])
def test_t03_another_enterprises_office_cannot_be_changed(app: Flask, client: FlaskClient,
                                                          devca: Any, route: str) -> None:
    enterprise = admin(client, devca)
    own = make_office(enterprise)
    other = foreign_office()
    make_operator(db.session.get(Organisation, other.parent_id), OP_PHONE, department=other)
    token = csrf(client, f"{BASE}/{own.id}/edit")
    before = counts()
    response = client.post(route.format(id=other.id),
                           data={**GOOD, "name": "被改名", "operators": "delete",
                                 "csrf_token": token})
    assert response.status_code == 404
    assert counts() == before
    other = fresh(Organisation, other.id)
    assert other.name == "外地物业阳光苑管理处" and other.status == "active"
    assert db.session.scalar(sa.select(Operator.status)) == "active"
    assert not events("office.update") and not events("office.delete")


@pytest.mark.parametrize("raw", ["0", "99999999999", "2147483648", "-1", "abc"])
def test_t03_ids_that_name_no_row(app: Flask, client: FlaskClient, devca: Any,
                                  raw: str) -> None:
    admin(client, devca)
    for route in ROUTES[2:]:
        assert client.get(route.replace("{id}", raw)).status_code == 404


def test_t03_service_is_scoped_by_tenant(app: Flask, client: FlaskClient, devca: Any) -> None:
    enterprise = admin(client, devca)
    own = make_office(enterprise)
    other = foreign_office()
    scoped = tenant()
    assert [o.id for o in list_offices(scoped)] == [own.id]
    assert get_office(scoped, own.id).id == own.id
    assert get_office(scoped, str(own.id)).id == own.id
    for bad in (other.id, str(other.id), enterprise.id, 0, -1, True, None, "1.0", "１",
                2**31, [own.id]):
        with pytest.raises(OfficeNotFound):
            get_office(scoped, bad)
    form = check_office(**GOOD)
    with pytest.raises(OfficeNotFound):
        update_office(scoped, other, form)
    with pytest.raises(OfficeNotFound):
        delete_office(scoped, other)
    db.session.rollback()
    assert fresh(Organisation, other.id).status == "active"


# --- the service, as the admin API uses it --------------------------------------------------

def test_t03_service_round_trip(app: Flask, client: FlaskClient, devca: Any) -> None:
    enterprise = admin(client, devca)
    scoped = tenant()
    office = create_office(scoped, check_office(name="和谐花园管理处", contact_phone="13812345678"))
    db.session.commit()
    assert office.code == "MA1FL0D34-001" and office.district == enterprise.district
    assert office.profile["contact_phone"] == "13812345678"
    with pytest.raises(FieldError) as taken:
        create_office(scoped, OfficeForm("和谐花园管理处", "", "", "", ""))
    assert taken.value.field == "name" and taken.value.message == MSG_NAME_TAKEN
    db.session.rollback()
    make_operator(enterprise, OP_PHONE, department=office)
    assert live_operator_count(scoped, office) == 1
    with pytest.raises(OfficeHasOperators) as refused:
        delete_office(scoped, office)
    assert refused.value.count == 1
    assert refused.value.message == "该管理处还有1名操作员，请选择如何处理这些操作员"
    db.session.rollback()
    with pytest.raises(FieldError):
        delete_office(scoped, office, operators="everything")
    db.session.rollback()
    after = delete_office(scoped, office, operators="delete")
    db.session.commit()
    after()
    assert fresh(Organisation, office.id).status == "disabled"
    assert list_offices(scoped) == []


# (row locks are what is tested: PostgreSQL's, as in production; SQLite has one writer)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True, scope="session")
def test_t03_an_operator_added_while_its_office_is_deleted_is_not_left_behind(
        app: Flask, backend: str) -> None:
    """T03 + S12 under concurrency: a 删除 of an office that starts while an operator is being
    added to it waits for that add (the enterprise's row lock against the operator's foreign
    key) and then sees the new operator (no choice given: 「该管理处还有1名操作员…」), instead of
    disabling the office under a live operator."""
    import threading

    from idp.console.offices import OfficeHasOperators, delete_office, get_office
    from idp.console.operators import add_operator, check_new
    from idp.console.tenant import tenant_of_client
    from idp.gateways.phone import Outcome, Verification

    class Match:
        def verify(self, name: str, phone: str) -> Verification:
            return Verification(Outcome.MATCH, None, "t", True)

    enterprise = make_enterprise()
    office = make_office(enterprise)
    ids = (enterprise.id, office.id)
    added, go = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def adder() -> None:
        with app.app_context():
            try:
                tenant = tenant_of_client(ids[0], "t")
                assert tenant is not None
                new = check_new(tenant, name="操作员一", department_id=ids[1], category="",
                                phone="13900000011", role="", remark="")
                add_operator(tenant, new, Match())
                added.set()
                go.wait(15)
                db.session.commit()
                outcome["add"] = "created"
            except Exception as exc:  # noqa: BLE001  (a thread reports to the test)
                outcome["add"] = repr(exc)
                added.set()
            finally:
                db.session.remove()

    def deleter() -> None:
        added.wait(15)
        with app.app_context():
            try:
                tenant = tenant_of_client(ids[0], "t")
                assert tenant is not None
                delete_office(tenant, get_office(tenant, ids[1]))
                db.session.commit()
                outcome["delete"] = "deleted"
            except OfficeHasOperators as exc:
                db.session.rollback()
                outcome["delete"] = f"refused:{exc.count}"
            except Exception as exc:  # noqa: BLE001
                outcome["delete"] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=adder), threading.Thread(target=deleter)]
    for thread in threads:
        thread.start()
    threads[1].join(1.0)
    assert threads[1].is_alive(), f"the delete must wait for the add: {outcome}"
    go.set()
    for thread in threads:
        thread.join(30)
    assert outcome == {"add": "created", "delete": "refused:1"}
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Organisation, ids[1]).status == "active"
