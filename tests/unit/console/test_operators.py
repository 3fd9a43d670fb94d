"""操作员管理 in the tenant console (S10–S15): the enterprise admin's list with its filters and
paging, 增加 with the carrier check (S12/S13) and the one-role-per-phone rule (S14, also under
concurrency), 查询 / 修改 / 删除 (S15); enterprise admins only, every other enterprise's id a
404, bad input never written and never a 500."""

from __future__ import annotations

import html as html_module
import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.accounts.service import create_person
from idp.audit import AuditEvent
from idp.console import operators as service
from idp.console.models import Operator
from idp.console.operators import (
    MSG_CATEGORY,
    MSG_CHOICE,
    MSG_DELETED,
    MSG_DEPARTMENT,
    MSG_FILTER_ID,
    MSG_FILTER_TEXT,
    MSG_NO_CHANGE,
    MSG_OPERATOR_NAME,
    MSG_PHONE_BOUND,
    MSG_PHONE_REQUIRED,
    MSG_REMARK,
    MSG_REMARK_HTML,
    MSG_ROLE,
    MSG_STATUS,
)
from idp.console.views import DONE, MSG_ALREADY_DELETED, MSG_PICK
from idp.extensions import db
from idp.gateways.phone import MESSAGES, Outcome
from idp.gateways.sms import SmsGatewayError
from idp.oidc.models import Client, Token
from idp.orgs.models import Organisation
from idp.pki.devca import DevCA
from idp.validators import MSG_PHONE_FORMAT
from idp.web import MSG_CONTROL_CHARACTERS
from tests.conftest import csrf_from, sms_messages, table_counts
from tests.factories import (
    PASSWORD,
    login,
    make_client,
    make_enterprise,
    make_office,
    make_operator,
    ukey_login,
)

EXEMPT = ("audit_event", "store_entry")
S13 = "您填写的身份信息与手机号认证失败，请确认信息是否填写正确。"
S14 = "该手机号已绑定维修资金系统物业企业（含小区管理处）角色，请重新输入正确的手机号。"
SAVED = "保存成功，初始密码已通过短信发送至操作员手机。"
BREADCRUMB = "首页 / 公共部分 / 系统管理 / 操作员管理 / 列表"
DEMO_NAME = "演示物业服务有限公司"
OTHER_USCC = "91350100M000100Y43"
OTHER_NAME = "和谐物业有限公司"
OTHER_ADMIN_PHONE = "13700000001"
COLUMNS = ["序号", "操作员ID", "操作员姓名", "操作员手机号", "部门名称", "角色", "状态"]
FILTER_LABELS = ["操作员ID", "操作员姓名", "操作员状态", "操作员类别", "所属单位编码",
                 "所属单位名称"]
PASSWORD_RE = re.compile(r"初始密码([^，]+)，首次登录须修改密码")


# --- helpers --------------------------------------------------------------------------------

def counts() -> dict[str, int]:
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


def events(name: str, result: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == name)
    if result:
        query = query.where(AuditEvent.result == result)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def as_admin(client: FlaskClient, devca: DevCA) -> Organisation:
    """The demo enterprise, its admin logged in with the UKey (S02)."""
    enterprise = make_enterprise()
    response = ukey_login(client, devca.sample("demo").pem_path.read_bytes())
    assert response.status_code == 303, response.text
    return enterprise


def other_enterprise(admin_phone: str | None = None) -> Organisation:
    """Another enterprise; with ``admin_phone`` a person account administers it."""
    org = make_enterprise(uscc=OTHER_USCC, name=OTHER_NAME, ukey=False)
    if admin_phone:
        account = create_person(admin_phone, "和谐管理员", PASSWORD, must_change=False)
        db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                                role="enterprise_admin", platform="repair_fund"))
        db.session.commit()
    return org


def reload(row: Any) -> Any:
    db.session.expire_all()
    return db.session.get(type(row), row.id)


def csrf(client: FlaskClient, url: str = "/console/operators/new") -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def new_form(department: Organisation, **overrides: str) -> dict[str, str]:
    data = {"name": "操作员一", "department_id": str(department.id), "category": "",
            "phone": "13900000011", "role": "", "remark": ""}
    data.update(overrides)
    return data


def save_new(client: FlaskClient, data: dict[str, str]) -> Any:
    return client.post("/console/operators/new", data={"csrf_token": csrf(client), **data})


def error_beside(html: str, field: str) -> str:
    match = re.search(rf'id="{field}-error" role="alert">([^<]*)</p>', html)
    assert match, f"no error slot for {field}"
    return html_module.unescape(match.group(1))


def row_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="operator-(\d+)">', html)]


def initial_password(app: Flask, phone: str) -> str:
    texts = [m["text"] for m in sms_messages(app, phone) if m["code"] is None]
    assert texts, f"no initial password SMS to {phone}"
    match = PASSWORD_RE.search(texts[-1])
    assert match, texts[-1]
    return match.group(1)


def operator_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Operator)) or 0


def make_token(account_id: str, identity_id: int | None, n: int = 1) -> Token:
    """An access token as /token issues it (only what revocation looks at)."""
    if db.session.get(Client, "rp1") is None:
        make_client()
    token = Token(grant_type="authorization_code", client_id="rp1", account_id=account_id,
                  identity_id=identity_id, access_token_hash=f"{n:064d}", expires_in=3600,
                  family_id=f"fam{n}")
    db.session.add(token)
    db.session.commit()
    return token


# --- S10: who gets in -----------------------------------------------------------------------

GET_ROUTES = ["/console/operators", "/console/operators/go?action=view&operator=1",
              "/console/operators/new", "/console/operators/1", "/console/operators/1/edit",
              "/console/operators/1/delete"]
POST_ROUTES = ["/console/operators/new", "/console/operators/1/edit",
               "/console/operators/1/delete"]


@pytest.mark.parametrize("url", GET_ROUTES)
def test_s10_anonymous_is_sent_to_login(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 303 and response.location.endswith("/login")


@pytest.mark.parametrize("url", POST_ROUTES)
def test_s10_anonymous_post_is_sent_to_login_and_writes_nothing(client: FlaskClient,
                                                                url: str) -> None:
    token = csrf_from(client.get("/login").text)
    before = counts()
    response = client.post(url, data={"csrf_token": token, "name": "操作员一",
                                      "phone": "13900000011"})
    assert response.status_code == 303 and response.location.endswith("/login")
    assert counts() == before


@pytest.mark.parametrize(("method", "url"), [("GET", u) for u in GET_ROUTES]
                         + [("POST", u) for u in POST_ROUTES])
def test_s10_a_person_without_an_enterprise_to_administer_gets_403_audited(
        app: Flask, client: FlaskClient, method: str, url: str) -> None:
    enterprise = make_enterprise()
    make_operator(enterprise)  # an operator, not an admin
    assert login(client, app, "13900000001").status_code == 303
    token = csrf_from(client.get("/password/change").text)
    before = counts()
    if method == "POST":
        response = client.post(url, data={"csrf_token": token, "phone": "13900000011"})
    else:
        response = client.get(url)
    assert response.status_code == 403
    assert "没有访问权限" in response.text
    assert counts() == before
    denied = events("console.denied", "failure")
    assert denied and denied[-1].detail["path"] == url.split("?")[0]


def test_s10_a_pending_password_change_comes_first(app: Flask, client: FlaskClient) -> None:
    enterprise = other_enterprise()
    account = create_person("13700000002", "新管理员", PASSWORD, must_change=True)
    db.session.add(Identity(account_id=account.id, organisation_id=enterprise.id,
                            role="enterprise_admin", platform="repair_fund"))
    db.session.commit()
    assert "/password/change" in login(client, app, "13700000002").location
    response = client.get("/console/operators")
    assert response.status_code == 303 and "/password/change" in response.location


def test_s10_a_disabled_enterprise_has_no_console(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    enterprise.status = "disabled"
    db.session.commit()
    assert client.get("/console/operators").status_code == 403


def test_s10_a_person_admin_of_an_enterprise_gets_in(app: Flask, client: FlaskClient) -> None:
    other_enterprise(OTHER_ADMIN_PHONE)
    assert login(client, app, OTHER_ADMIN_PHONE).status_code == 303
    page = client.get("/console/operators")
    assert page.status_code == 200 and OTHER_NAME in page.text


def test_s10_console_navigation_has_the_admin_menus(client: FlaskClient, devca: DevCA) -> None:
    as_admin(client, devca)
    page = client.get("/console/operators").text
    for label, path in (("操作员管理", "/console/operators"), ("用户审核", "/console/applications"),
                        ("小区管理处信息管理", "/console/offices")):
        assert re.search(rf'<a href="{path}"[^>]*>{label}</a>', page), label
    assert 'aria-current="page">操作员管理</a>' in page
    assert "console.css" in page


# --- S11: the list --------------------------------------------------------------------------

def test_s11_list_page_has_the_seed_labels_and_an_empty_table(client: FlaskClient,
                                                             devca: DevCA) -> None:
    as_admin(client, devca)
    page = client.get("/console/operators")
    assert page.status_code == 200
    html = page.text
    assert BREADCRUMB in html
    assert f'id="enterprise-name">{DEMO_NAME}</p>' in html
    for label in FILTER_LABELS:
        assert re.search(rf'<label for="f-\w+">{label}</label>', html), label
    assert re.findall(r'<th scope="col">([^<]+)</th>', html) == COLUMNS
    status_options = re.search(r'<select id="f-status".*?</select>', html, re.S)
    assert status_options and re.findall(r">([^<]+)</option>", status_options.group(0)) == [
        "全部", "正常使用", "停用", "已删除"]
    category_options = re.search(r'<select id="f-category".*?</select>', html, re.S)
    assert category_options and re.findall(r">([^<]+)</option>", category_options.group(0)) == [
        "全部", "物业企业", "小区管理处"]
    assert 'id="filter-submit">查询</button>' in html
    assert 'id="filter-reset" href="/console/operators">重新筛选</a>' in html
    for action, label in (("new", "增加"), ("view", "查询"), ("edit", "修改"),
                          ("delete", "删除")):
        assert re.search(rf'name="action" value="{action}"[^>]*>{label}</button>', html), label
    assert '<td colspan="7" class="empty">暂无数据</td>' in html
    assert "请输入" in html  # the placeholders of the seed


def test_s11_list_shows_the_tenants_operators_only(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    first = make_operator(enterprise, "13900000011", "操作员一")
    second = make_operator(enterprise, "13900000012", "操作员二", department=office)
    other = other_enterprise()
    foreign = make_operator(other, "13900000013", "操作员三")
    html = client.get("/console/operators").text
    assert row_ids(html) == [first.id, second.id]
    assert f"operator-{foreign.id}" not in html and "操作员三" not in html
    row = re.search(rf'<tr id="operator-{second.id}">(.*?)</tr>', html, re.S)
    assert row
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>",
                                                                     row.group(1), re.S)]
    assert cells == ["2", str(second.id), "操作员二", "13900000012", "演示物业玉兰花园管理处",
                     "小区管理处", "正常使用"]
    assert f'name="operator" value="{first.id}" form="operator-actions"' in html


def _filter_world(enterprise: Organisation) -> dict[str, Operator]:
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    return {
        "one": make_operator(enterprise, "13900000011", "操作员一"),
        "two": make_operator(enterprise, "13900000012", "操作员二", department=office),
        "three": make_operator(enterprise, "13900000013", "张三", status="disabled"),
    }


@pytest.mark.parametrize(("args", "expected"), [
    ({"name": "操作员"}, ["one", "two"]),
    ({"name": "张"}, ["three"]),
    ({"status": "disabled"}, ["three"]),
    ({"status": "active"}, ["one", "two"]),
    ({"status": "deleted"}, []),
    ({"category": "office"}, ["two"]),
    ({"category": "enterprise"}, ["one", "three"]),
    ({"unit_name": "玉兰花园"}, ["two"]),
    ({"unit_name": "演示物业服务"}, ["one", "three"]),
    ({"unit_code": "MA1FL0D34-001"}, ["two"]),
    ({"unit_code": "91310115MA1FL0D34W"}, ["one", "three"]),
    ({"name": "操作员", "category": "enterprise"}, ["one"]),
])
def test_s11_each_filter_narrows_the_list(client: FlaskClient, devca: DevCA,
                                          args: dict[str, str], expected: list[str]) -> None:
    world = _filter_world(as_admin(client, devca))
    page = client.get("/console/operators", query_string=args)
    assert page.status_code == 200
    assert row_ids(page.text) == [world[k].id for k in expected]
    if not expected:
        assert "暂无数据" in page.text


def test_s11_operator_id_filter_and_reset(client: FlaskClient, devca: DevCA) -> None:
    world = _filter_world(as_admin(client, devca))
    page = client.get(f"/console/operators?operator_id={world['two'].id}").text
    assert row_ids(page) == [world["two"].id]
    assert f'name="operator_id" value="{world["two"].id}"' in page
    # 「重新筛选」 is the bare list
    assert row_ids(client.get("/console/operators").text) == [o.id for o in world.values()]


def test_s11_paging_20_a_page_keeps_the_filters(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    ids = [make_operator(enterprise, f"139000001{n:02d}", f"操作员{chr(0x4e00 + n)}").id
           for n in range(45)]
    first = client.get("/console/operators").text
    assert row_ids(first) == ids[:20] and "第 1 / 3 页" in first
    assert 'href="/console/operators?page=2">下一页</a>' in first
    third = client.get("/console/operators?page=3").text
    assert row_ids(third) == ids[40:]
    assert re.search(r"<label class=\"pick\"><input[^>]*> 41</label>", third)  # 序号 goes on
    for bad in ("0", "-1", "abc", "１", "9" * 50, ""):
        page = client.get("/console/operators", query_string={"page": bad})
        assert page.status_code == 200 and row_ids(page.text) == ids[:20], bad
    assert row_ids(client.get("/console/operators?page=999").text) == ids[40:]
    filtered = client.get("/console/operators?status=active&page=2").text
    assert 'href="/console/operators?page=1&amp;status=active">上一页</a>' in filtered
    assert 'href="/console/operators?page=3&amp;status=active">下一页</a>' in filtered


@pytest.mark.parametrize("action", ["view", "edit", "delete"])
def test_s11_buttons_without_a_chosen_row_ask_for_one(client: FlaskClient, devca: DevCA,
                                                     action: str) -> None:
    enterprise = as_admin(client, devca)
    make_operator(enterprise, "13900000011", "操作员一")
    response = client.get(f"/console/operators/go?action={action}&status=active")
    assert response.status_code == 400
    assert f'id="pick-error" role="alert">{MSG_PICK}</p>' in response.text
    assert BREADCRUMB in response.text and "操作员一" in response.text


@pytest.mark.parametrize(("action", "suffix"), [("view", ""), ("edit", "/edit"),
                                                ("delete", "/delete")])
def test_s11_buttons_open_the_chosen_operator(client: FlaskClient, devca: DevCA, action: str,
                                             suffix: str) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    response = client.get(f"/console/operators/go?action={action}&operator={operator.id}")
    assert response.status_code == 303
    assert response.location.endswith(f"/console/operators/{operator.id}{suffix}")
    assert client.get(response.location).status_code == 200


def test_s11_add_button_opens_the_form_and_unknown_actions_go_back(client: FlaskClient,
                                                                  devca: DevCA) -> None:
    as_admin(client, devca)
    response = client.get("/console/operators/go?action=new")
    assert response.status_code == 303 and response.location.endswith("/console/operators/new")
    response = client.get("/console/operators/go?action=<script>&name=张")
    assert response.status_code == 303
    assert response.location.endswith("/console/operators?name=%E5%BC%A0")


HOSTILE = [("empty", ""), ("overlong", "长" * 300), ("html", "<script>alert(1)</script>"),
           ("control", "a\x1b[31m"), ("fullwidth", "１３９１２３４５６７８"),
           ("sql", "' OR '1'='1"), ("sql2", "1; DROP TABLE operator;--")]
# What each filter says about each hostile value: None = a harmless search (200).
FILTER_ERRORS = {
    "operator_id": {"empty": None, "overlong": MSG_FILTER_ID, "html": MSG_FILTER_ID,
                    "fullwidth": MSG_FILTER_ID, "sql": MSG_FILTER_ID, "sql2": MSG_FILTER_ID},
    "name": {"empty": None, "overlong": MSG_FILTER_TEXT, "html": None, "fullwidth": None,
             "sql": None, "sql2": None},
    "unit_name": {"empty": None, "overlong": MSG_FILTER_TEXT, "html": None, "fullwidth": None,
                  "sql": None, "sql2": None},
    "unit_code": {"empty": None, "overlong": MSG_FILTER_TEXT, "html": MSG_FILTER_TEXT,
                  "fullwidth": MSG_FILTER_TEXT, "sql": MSG_FILTER_TEXT,
                  "sql2": MSG_FILTER_TEXT},
    "status": {"empty": None, "overlong": MSG_CHOICE, "html": MSG_CHOICE,
               "fullwidth": MSG_CHOICE, "sql": MSG_CHOICE, "sql2": MSG_CHOICE},
    "category": {"empty": None, "overlong": MSG_CHOICE, "html": MSG_CHOICE,
                 "fullwidth": MSG_CHOICE, "sql": MSG_CHOICE, "sql2": MSG_CHOICE},
}


@pytest.mark.parametrize("field", list(FILTER_ERRORS))
@pytest.mark.parametrize(("kind", "value"), HOSTILE, ids=[k for k, _ in HOSTILE])
def test_s11_bad_filter_values_are_named_beside_the_filter(
        client: FlaskClient, devca: DevCA, field: str, kind: str, value: str) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    before = counts()
    page = client.get("/console/operators", query_string={field: value})
    assert counts() == before
    assert "<script>alert(1)</script>" not in page.text
    if kind == "control":
        assert page.status_code == 400 and MSG_CONTROL_CHARACTERS in page.text
        return
    expected = FILTER_ERRORS[field][kind]
    if expected is None:
        assert page.status_code == 200
        assert row_ids(page.text) == ([operator.id] if kind == "empty" else [])
    else:
        assert page.status_code == 400
        assert error_beside(page.text, field) == expected
        assert row_ids(page.text) == [operator.id]  # the bad filter is dropped, not applied


# --- S12: 增加 ------------------------------------------------------------------------------

def test_s12_the_add_form_has_the_seed_fields(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    other = other_enterprise()
    foreign_office = make_office(other, "和谐物业某某管理处")
    page = client.get("/console/operators/new")
    assert page.status_code == 200
    html = page.text
    assert "首页 / 公共部分 / 系统管理 / 操作员管理 / 新增操作员" in html
    assert "<legend>操作员信息添加</legend>" in html and DEMO_NAME in html
    for field, label in (("name", "操作员姓名"), ("department_id", "部门名称"),
                         ("phone", "手机号码")):
        assert re.search(rf'<label for="{field}"><span class="required" aria-hidden="true">\*'
                         rf"</span>{label}</label>", html), label
    for field, label in (("category", "部门类别"), ("role", "角色"), ("remark", "备注")):
        assert f'<label for="{field}">{label}</label>' in html, label
    department = re.search(r'<select[^>]*id="department_id".*?</select>', html, re.S)
    assert department
    assert re.findall(r'<option[^>]*value="([^"]*)"[^>]*>([^<]+)</option>',
                      department.group(0)) == [
        ("", "选择"), (str(enterprise.id), f"{DEMO_NAME}（物业企业）"),
        (str(office.id), "演示物业玉兰花园管理处（小区管理处）")]
    assert str(foreign_office.id) not in department.group(0)
    for field, options in (("category", ["请选择", "物业企业", "小区管理处"]),
                           ("role", ["请选择", "物业管理企业", "小区管理处"])):
        select = re.search(rf'<select[^>]*id="{field}".*?</select>', html, re.S)
        assert select and re.findall(r">([^<]+)</option>", select.group(0)) == options
    assert 'id="save">保存</button>' in html
    assert 'id="back" href="/console/operators">返回</a>' in html


def test_s12_save_creates_the_operator_and_sms_the_initial_password(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    response = save_new(client, new_form(enterprise, remark="财务"))
    assert response.status_code == 303, response.text
    (operator,) = db.session.scalars(sa.select(Operator)).all()
    assert response.location.endswith(f"/console/operators/{operator.id}?done=created")
    assert (operator.name, operator.category, operator.role, operator.status, operator.remark,
            operator.department_id, operator.enterprise_id) == (
        "操作员一", "enterprise", "operator", "active", "财务", enterprise.id, enterprise.id)
    account = operator.account
    assert account.phone == "13900000011" and account.must_change_password
    assert account.password_hash and account.password_hash.startswith("$argon2")
    identity = db.session.get(Identity, operator.identity_id)
    assert identity and (identity.role, identity.platform, identity.organisation_id,
                         identity.status) == ("operator", "repair_fund", enterprise.id, "active")
    detail = client.get(response.location)
    assert f'id="done">{SAVED}</p>' in detail.text
    # the SMS (MSG_INITIAL_PASSWORD), and the password nowhere else
    (sms,) = [m for m in sms_messages(app, "13900000011") if m["code"] is None]
    password = initial_password(app, "13900000011")
    assert sms["text"] == (f"【统一认证登录平台】您的统一认证登录平台账号已开通（物业管理企业）。"
                           f"登录手机号13900000011，初始密码{password}，首次登录须修改密码。")
    assert password not in detail.text and password not in response.text
    assert password not in client.get("/console/operators").text
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert password not in repr(tuple(row)), table.name
    assert events("operator.create", "success") and events("sms.initial_password", "success")
    assert events("operator.phone_check", "success")[-1].detail["outcome"] == "match"


def test_s12_s17_the_new_operator_logs_in_and_must_change_the_password(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    assert save_new(client, new_form(enterprise)).status_code == 303
    password = initial_password(app, "13900000011")
    person = app.test_client()
    response = login(person, app, "13900000011", password)
    assert response.status_code == 303 and "/password/change" in response.location
    page = person.get("/password/change")
    assert page.status_code == 200
    changed = person.post("/password/change", data={
        "csrf_token": csrf_from(page.text), "new_password": "N3wPassw0rd!x",
        "confirm_password": "N3wPassw0rd!x"})
    assert changed.status_code == 303, changed.text
    assert not reload(db.session.scalars(sa.select(Operator)).one().account).must_change_password


def test_s12_an_office_operator_gets_the_office_category_and_role(client: FlaskClient,
                                                                 devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    response = save_new(client, new_form(office, name="曹伟仙", phone="13343586601",
                                         category="office", role="office"))
    assert response.status_code == 303, response.text
    operator = db.session.scalars(sa.select(Operator)).one()
    assert (operator.category, operator.role, operator.department_id) == (
        "office", "office", office.id)
    detail = client.get(response.location).text
    assert "演示物业玉兰花园管理处" in detail and "MA1FL0D34-001" in detail


def test_s12_category_and_role_must_agree_with_the_department(client: FlaskClient,
                                                             devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    before = counts()
    response = save_new(client, new_form(enterprise, category="office"))
    assert response.status_code == 400 and error_beside(response.text, "category") == MSG_CATEGORY
    response = save_new(client, new_form(enterprise, role="office"))
    assert response.status_code == 400 and error_beside(response.text, "role") == MSG_ROLE
    assert counts() == before


def test_s12_sms_failure_is_said_and_the_operator_stays(app: Flask, client: FlaskClient,
                                                       devca: DevCA,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    enterprise = as_admin(client, devca)
    token = csrf(client)

    class Down:
        def send(self, to: str, text: str, code: str | None = None) -> None:
            raise SmsGatewayError("unreachable")

    monkeypatch.setattr(app.extensions["idp.sms"], "_gateway", Down())
    response = client.post("/console/operators/new",
                           data={"csrf_token": token, **new_form(enterprise)})
    assert response.status_code == 303 and "done=created_sms_failed" in response.location
    assert DONE["created_sms_failed"] in client.get(response.location).text
    assert operator_count() == 1
    assert events("sms.initial_password", "failure")


def test_s12_a_person_who_has_an_account_keeps_the_password(app: Flask, client: FlaskClient,
                                                           devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    create_person("13900000011", "操作员一", PASSWORD, must_change=False)
    db.session.commit()
    response = save_new(client, new_form(enterprise))
    assert response.status_code == 303 and "done=created_existing" in response.location
    assert DONE["created_existing"] in client.get(response.location).text
    assert not [m for m in sms_messages(app, "13900000011") if m["code"] is None]
    assert login(app.test_client(), app, "13900000011", PASSWORD).status_code == 303


def test_s12_another_enterprises_office_is_not_a_department(client: FlaskClient,
                                                           devca: DevCA) -> None:
    as_admin(client, devca)
    foreign_office = make_office(other_enterprise(), "和谐物业某某管理处")
    before = counts()
    response = save_new(client, new_form(foreign_office))
    assert response.status_code == 400
    assert error_beside(response.text, "department_id") == MSG_DEPARTMENT
    assert counts() == before


def test_s12_csrf_is_required(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    before = counts()
    response = client.post("/console/operators/new", data=new_form(enterprise))
    assert response.status_code == 400 and "页面已过期" in response.text
    assert counts() == before


# What each field says about each hostile value: None = accepted (the operator is saved).
NEW_ERRORS: dict[str, dict[str, str | None]] = {
    "name": {"empty": MSG_OPERATOR_NAME, "overlong": MSG_OPERATOR_NAME,
             "html": MSG_OPERATOR_NAME, "fullwidth": MSG_OPERATOR_NAME,
             "sql": MSG_OPERATOR_NAME, "sql2": MSG_OPERATOR_NAME},
    "department_id": {"empty": MSG_DEPARTMENT, "overlong": MSG_DEPARTMENT,
                      "html": MSG_DEPARTMENT, "fullwidth": MSG_DEPARTMENT,
                      "sql": MSG_DEPARTMENT, "sql2": MSG_DEPARTMENT},
    "category": {"empty": None, "overlong": MSG_CHOICE, "html": MSG_CHOICE,
                 "fullwidth": MSG_CHOICE, "sql": MSG_CHOICE, "sql2": MSG_CHOICE},
    "phone": {"empty": MSG_PHONE_REQUIRED, "overlong": MSG_PHONE_FORMAT,
              "html": MSG_PHONE_FORMAT, "fullwidth": MSG_PHONE_FORMAT,
              "sql": MSG_PHONE_FORMAT, "sql2": MSG_PHONE_FORMAT},
    "role": {"empty": None, "overlong": MSG_CHOICE, "html": MSG_CHOICE,
             "fullwidth": MSG_CHOICE, "sql": MSG_CHOICE, "sql2": MSG_CHOICE},
    "remark": {"empty": None, "overlong": MSG_REMARK, "html": MSG_REMARK_HTML,
               "fullwidth": None, "sql": None, "sql2": None},
}


@pytest.mark.parametrize("field", list(NEW_ERRORS))
@pytest.mark.parametrize(("kind", "value"), HOSTILE, ids=[k for k, _ in HOSTILE])
def test_s12_bad_input_in_the_add_form_is_named_beside_the_field_and_not_saved(
        client: FlaskClient, devca: DevCA, field: str, kind: str, value: str) -> None:
    enterprise = as_admin(client, devca)
    token = csrf(client)
    before = counts()
    response = client.post("/console/operators/new",
                           data={"csrf_token": token, **new_form(enterprise, **{field: value})})
    assert "<script>alert(1)</script>" not in response.text
    if kind == "control":
        assert response.status_code == 400 and MSG_CONTROL_CHARACTERS in response.text
        assert counts() == before
        return
    expected = NEW_ERRORS[field][kind]
    if expected is None:
        assert response.status_code == 303, response.text
        assert operator_count() == 1
        return
    assert response.status_code == 400
    assert error_beside(response.text, field) == expected
    assert 'aria-invalid="true"' in response.text
    assert counts() == before


def test_s12_a_huge_department_id_is_a_message_not_a_500(client: FlaskClient,
                                                        devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    before = counts()
    response = save_new(client, new_form(enterprise, department_id="9" * 5000))
    assert response.status_code == 400
    assert error_beside(response.text, "department_id") == MSG_DEPARTMENT
    assert counts() == before


# --- S13: the carrier check fails -----------------------------------------------------------

@pytest.mark.parametrize(("name", "phone", "outcome"), [
    ("张三", "13900000003", Outcome.MISMATCH),
    ("赵六", "13900000004", Outcome.NO_RECORD),
    ("周九", "13900000007", Outcome.PROVIDER_ERROR),
    ("钱七", "13900000005", Outcome.UNSUPPORTED),
])
def test_s13_a_failed_two_element_check_saves_nothing(client: FlaskClient, devca: DevCA,
                                                      name: str, phone: str,
                                                      outcome: Outcome) -> None:
    enterprise = as_admin(client, devca)
    token = csrf(client)
    before = counts()
    response = client.post("/console/operators/new", data={
        "csrf_token": token, **new_form(enterprise, name=name, phone=phone)})
    assert response.status_code == 400
    alert = re.search(r'<div class="alert" role="alert" id="alert">(.*?)</div>',
                      response.text, re.S)
    assert alert and "提示" in alert.group(1) and MESSAGES[outcome] in alert.group(1)
    if outcome is Outcome.MISMATCH:
        assert S13 in alert.group(1)
    assert counts() == before  # only the audit trail grows
    checks = events("operator.phone_check", "failure")
    assert checks and checks[-1].detail["outcome"] == outcome.value
    assert phone not in repr(checks[-1].detail) and name not in repr(checks[-1].detail)
    # the form keeps what was typed
    assert f'value="{phone}"' in response.text and f'value="{name}"' in response.text


# --- S14: one enterprise or office role per phone -------------------------------------------

def _bound_to_another_enterprises_operator(enterprise: Organisation) -> None:
    make_operator(other_enterprise(), "13900000011", "操作员一")


def _bound_to_an_office_operator(enterprise: Organisation) -> None:
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    make_operator(enterprise, "13900000011", "操作员一", department=office)


def _bound_to_another_enterprises_office(enterprise: Organisation) -> None:
    other = other_enterprise()
    make_operator(other, "13900000011", "操作员一", department=make_office(other, "和谐管理处"))


def _bound_to_an_enterprise_admin(enterprise: Organisation) -> None:
    other = other_enterprise()
    account = create_person("13900000011", "操作员一", PASSWORD, must_change=False)
    db.session.add(Identity(account_id=account.id, organisation_id=other.id,
                            role="enterprise_admin", platform="repair_fund"))
    db.session.commit()


def _bound_to_an_office_identity(enterprise: Organisation) -> None:
    """An office role made before the console (no operator row)."""
    account = create_person("13900000011", "操作员一", PASSWORD, must_change=False)
    db.session.add(Identity(account_id=account.id, organisation_id=enterprise.id,
                            role="office", platform="repair_fund"))
    db.session.commit()


@pytest.mark.parametrize("bind", [
    _bound_to_another_enterprises_operator, _bound_to_an_office_operator,
    _bound_to_another_enterprises_office, _bound_to_an_enterprise_admin,
    _bound_to_an_office_identity,
], ids=["other-enterprise-operator", "office-operator", "other-office-operator",
        "enterprise-admin", "office-identity"])
def test_s14_a_bound_phone_cannot_be_bound_again(client: FlaskClient, devca: DevCA,
                                                 bind: Any) -> None:
    enterprise = as_admin(client, devca)
    bind(enterprise)
    token = csrf(client)
    before = counts()
    response = client.post("/console/operators/new",
                           data={"csrf_token": token, **new_form(enterprise)})
    assert response.status_code == 400
    assert error_beside(response.text, "phone") == S14 == MSG_PHONE_BOUND
    assert counts() == before
    assert events("operator.create", "failure")[-1].detail["reason"] == "phone_bound"
    assert not events("operator.phone_check")  # refused before the (billed) carrier check


def test_s14_a_phone_of_a_deleted_operator_can_be_added_again(app: Flask, client: FlaskClient,
                                                             devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    old = make_operator(other_enterprise(), "13900000011", "操作员一", status="deleted")
    old.account.status = "deleted"
    db.session.commit()
    response = save_new(client, new_form(enterprise))
    assert response.status_code == 303, response.text
    assert reload(old.account).status == "active"
    assert initial_password(app, "13900000011")


def test_s14_two_enterprises_saving_one_phone_at_once_make_one_operator(
        app: Flask, devca: DevCA, monkeypatch: pytest.MonkeyPatch) -> None:
    """S14 under concurrency: both saves pass the check before either writes (a barrier), the
    database (account.phone, uq_operator_live_account) lets one through, the other gets S14."""
    first, second = app.test_client(), app.test_client()
    demo = as_admin(first, devca)
    other = other_enterprise(OTHER_ADMIN_PHONE)
    assert login(second, app, OTHER_ADMIN_PHONE).status_code == 303
    posts = [(first, {"csrf_token": csrf(first), **new_form(demo)}),
             (second, {"csrf_token": csrf(second), **new_form(other)})]
    db.session.commit()
    barrier = threading.Barrier(2)
    original = service.phone_is_bound

    def racing(phone: str, *, except_account: str | None = None) -> bool:
        seen = original(phone, except_account=except_account)
        barrier.wait(timeout=15)  # both have looked before either writes
        return seen

    monkeypatch.setattr(service, "phone_is_bound", racing)
    results: list[Any] = []

    def worker(client: FlaskClient, data: dict[str, str]) -> None:
        try:
            results.append(client.post("/console/operators/new", data=data))
        except Exception as exc:  # noqa: BLE001  (a thread reports to the test)
            results.append(exc)

    threads = [threading.Thread(target=worker, args=post) for post in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and all(not isinstance(r, Exception) for r in results), results
    statuses = sorted(r.status_code for r in results)
    assert statuses == [303, 400], [r.text[:300] for r in results]
    refused = next(r for r in results if r.status_code == 400)
    assert error_beside(refused.text, "phone") == S14
    db.session.rollback()
    assert operator_count() == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account).where(
        Account.phone == "13900000011")) == 1


# --- S15: 查询 ------------------------------------------------------------------------------

def test_s15_detail_shows_every_field(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    operator = make_operator(enterprise, "13900000011", "操作员一", department=office)
    operator.remark = "夜班"
    db.session.commit()
    page = client.get(f"/console/operators/{operator.id}")
    assert page.status_code == 200
    html = page.text
    assert "首页 / 公共部分 / 系统管理 / 操作员管理 / 查询" in html
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]*)</dd>", html))
    assert facts["操作员ID"] == str(operator.id)
    assert facts["操作员姓名"] == "操作员一" and facts["手机号码"] == "13900000011"
    assert facts["部门名称"] == "演示物业玉兰花园管理处"
    assert facts["所属单位编码"] == "MA1FL0D34-001"
    assert facts["部门类别"] == "小区管理处" and facts["角色"] == "小区管理处"
    assert facts["操作员状态"] == "正常使用" and facts["备注"] == "夜班"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d（北京时间）", facts["创建时间"])
    assert f'href="/console/operators/{operator.id}/edit">修改</a>' in html
    assert f'href="/console/operators/{operator.id}/delete">删除</a>' in html


# --- S15: 修改 ------------------------------------------------------------------------------

def edit(client: FlaskClient, operator: Operator, **data: str) -> Any:
    token = csrf(client, f"/console/operators/{operator.id}/edit")
    return client.post(f"/console/operators/{operator.id}/edit",
                       data={"csrf_token": token, **data})


def test_s15_edit_offers_only_phone_and_status(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    page = client.get(f"/console/operators/{operator.id}/edit")
    assert page.status_code == 200
    form = re.search(r'<form method="post".*?</form>', page.text, re.S)
    assert form
    names = set(re.findall(r'name="([^"]+)"', form.group(0)))
    assert names == {"csrf_token", "phone", "status"}
    assert 'value="13900000011"' in form.group(0)
    status = re.search(r'<select[^>]*id="status".*?</select>', form.group(0), re.S)
    assert status and re.findall(r">([^<]+)</option>", status.group(0)) == ["正常使用", "停用"]
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]*)</dd>", page.text))
    assert facts["操作员姓名"] == "操作员一" and facts["部门名称"] == DEMO_NAME
    assert "首页 / 公共部分 / 系统管理 / 操作员管理 / 修改" in page.text


def test_s15_changing_the_phone_runs_the_carrier_check(client: FlaskClient,
                                                      devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000012", "操作员一")
    response = edit(client, operator, phone="13900000011", status="active")
    assert response.status_code == 303
    assert response.location.endswith(f"/console/operators/{operator.id}?done=updated")
    assert "修改成功" in client.get(response.location).text
    assert reload(operator.account).phone == "13900000011"
    check = events("operator.phone_check", "success")[-1]
    assert check.detail["purpose"] == "change_phone"
    assert events("operator.update")[-1].detail["changes"] == {"phone": "changed"}


def test_s15_s13_a_new_phone_of_somebody_else_is_refused(client: FlaskClient,
                                                        devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000012", "操作员一")
    before = counts()
    response = edit(client, operator, phone="13900000003", status="active")
    assert response.status_code == 400
    assert re.search(r'role="alert" id="alert">.*提示.*' + re.escape(S13), response.text, re.S)
    assert counts() == before and reload(operator.account).phone == "13900000012"
    assert events("operator.phone_check", "failure")


def test_s15_s14_a_new_phone_bound_elsewhere_is_refused(client: FlaskClient,
                                                       devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000012", "操作员二")
    make_operator(other_enterprise(), "13900000011", "操作员一")
    before = counts()
    response = edit(client, operator, phone="13900000011", status="active")
    assert response.status_code == 400 and error_beside(response.text, "phone") == S14
    assert counts() == before and reload(operator.account).phone == "13900000012"


def test_s15_disabling_revokes_the_operators_tokens(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    token = make_token(operator.account_id, operator.identity_id)
    response = edit(client, operator, phone="13900000011", status="disabled")
    assert response.status_code == 303
    assert reload(token).revoked_at is not None
    assert reload(operator).status == "disabled"
    assert db.session.get(Identity, operator.identity_id).status == "disabled"
    assert "停用" in client.get(f"/console/operators/{operator.id}").text
    # and back to 正常使用
    assert edit(client, operator, phone="13900000011", status="active").status_code == 303
    assert reload(operator).status == "active"


def test_s15_saving_without_a_change_says_so(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    response = edit(client, operator, phone="13900000011", status="active")
    assert response.status_code == 400 and error_beside(response.text, "phone") == MSG_NO_CHANGE


EDIT_ERRORS: dict[str, dict[str, str]] = {
    "phone": {"empty": MSG_PHONE_REQUIRED, "overlong": MSG_PHONE_FORMAT,
              "html": MSG_PHONE_FORMAT, "fullwidth": MSG_PHONE_FORMAT,
              "sql": MSG_PHONE_FORMAT, "sql2": MSG_PHONE_FORMAT},
    # an empty status keeps the status: with the phone unchanged there is nothing to save
    "status": {"empty": MSG_NO_CHANGE, "overlong": MSG_STATUS, "html": MSG_STATUS,
               "fullwidth": MSG_STATUS, "sql": MSG_STATUS, "sql2": MSG_STATUS},
}


@pytest.mark.parametrize("field", list(EDIT_ERRORS))
@pytest.mark.parametrize(("kind", "value"), HOSTILE, ids=[k for k, _ in HOSTILE])
def test_s15_bad_input_in_the_edit_form_changes_nothing(client: FlaskClient, devca: DevCA,
                                                        field: str, kind: str,
                                                        value: str) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    data = {"phone": "13900000011", "status": "active", field: value}
    token = csrf(client, f"/console/operators/{operator.id}/edit")
    before = counts()
    response = client.post(f"/console/operators/{operator.id}/edit",
                           data={"csrf_token": token, **data})
    assert "<script>alert(1)</script>" not in response.text
    assert response.status_code == 400
    assert counts() == before
    assert reload(operator).status == "active" and reload(operator.account).phone == "13900000011"
    if kind == "control":
        assert MSG_CONTROL_CHARACTERS in response.text
        return
    expected = EDIT_ERRORS[field][kind]
    slot = "phone" if expected == MSG_NO_CHANGE else field
    assert error_beside(response.text, slot) == expected


# --- S15: 删除 ------------------------------------------------------------------------------

def test_s15_delete_asks_then_makes_the_account_unusable(app: Flask, client: FlaskClient,
                                                        devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    token_row = make_token(operator.account_id, operator.identity_id)
    page = client.get(f"/console/operators/{operator.id}/delete")
    assert page.status_code == 200
    assert f"确定删除操作员「操作员一」（操作员ID {operator.id}）吗？" in page.text
    assert "首页 / 公共部分 / 系统管理 / 操作员管理 / 删除" in page.text
    response = client.post(f"/console/operators/{operator.id}/delete",
                           data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303 and response.location.endswith(
        "/console/operators?done=deleted")
    listing = client.get(response.location).text
    assert 'id="done">删除成功</p>' in listing
    assert "已删除" in listing  # the row stays, with its status
    operator = reload(operator)
    assert operator.status == "deleted"
    assert reload(operator.account).status == "deleted"
    assert db.session.get(Identity, operator.identity_id).status == "deleted"
    assert reload(token_row).revoked_at is not None
    assert events("operator.delete", "success")
    refused = login(app.test_client(), app, "13900000011")
    assert refused.status_code == 400  # the account cannot log in any more


def test_s15_delete_needs_the_csrf_token(client: FlaskClient, devca: DevCA) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一")
    before = counts()
    response = client.post(f"/console/operators/{operator.id}/delete")
    assert response.status_code == 400
    assert counts() == before and reload(operator).status == "active"


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("route", ["edit", "delete"])
def test_s15_a_deleted_operator_cannot_be_edited_or_deleted(client: FlaskClient, devca: DevCA,
                                                            route: str, method: str) -> None:
    enterprise = as_admin(client, devca)
    operator = make_operator(enterprise, "13900000011", "操作员一", status="deleted")
    token = csrf(client, "/console/operators/new")
    before = counts()
    url = f"/console/operators/{operator.id}/{route}"
    data = {"csrf_token": token, "phone": "13900000012", "status": "active"}
    response = client.get(url) if method == "GET" else client.post(url, data=data)
    assert response.status_code == 409
    assert (MSG_DELETED if route == "edit" else MSG_ALREADY_DELETED) in response.text
    assert counts() == before and reload(operator).status == "deleted"
    assert reload(operator.account).phone == "13900000011"


# --- tenant isolation -----------------------------------------------------------------------

@pytest.mark.parametrize(("method", "suffix"), [
    ("GET", ""), ("GET", "/edit"), ("POST", "/edit"), ("GET", "/delete"), ("POST", "/delete"),
    ("GO", "view"), ("GO", "edit"), ("GO", "delete"),
])
def test_s15_another_enterprises_operator_is_not_found(client: FlaskClient, devca: DevCA,
                                                       method: str, suffix: str) -> None:
    as_admin(client, devca)
    foreign = make_operator(other_enterprise(), "13900000011", "操作员一")
    token = csrf(client)
    before = counts()
    if method == "GO":
        response = client.get(f"/console/operators/go?action={suffix}&operator={foreign.id}")
    elif method == "GET":
        response = client.get(f"/console/operators/{foreign.id}{suffix}")
    else:
        response = client.post(f"/console/operators/{foreign.id}{suffix}", data={
            "csrf_token": token, "phone": "13900000012", "status": "disabled"})
    assert response.status_code == 404
    assert "操作员一" not in response.text
    assert counts() == before
    foreign = reload(foreign)
    assert foreign.status == "active" and foreign.account.phone == "13900000011"


@pytest.mark.parametrize("path", ["/console/operators/0", "/console/operators/99999999999",
                                  "/console/operators/abc/edit", "/console/operators/１/delete",
                                  "/console/operators/go?action=view&operator=%3Cscript%3E",
                                  "/console/operators/go?action=view&operator=" + "9" * 5000])
def test_s15_ids_that_name_nothing_are_404(client: FlaskClient, devca: DevCA,
                                           path: str) -> None:
    as_admin(client, devca)
    assert client.get(path).status_code == 404
