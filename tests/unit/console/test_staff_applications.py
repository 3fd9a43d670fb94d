"""用户审核 (S16): staff submit a real-name application (实名认证申请) to their enterprise from a
public page, proving the phone by SMS code; the enterprise admin approves (the operator account
and identity are created, the initial password goes out by SMS, S12/S14/S17) or rejects with a
reason the applicant reads in 「用户名查询」 (T05). Tenant isolation, a single decision, and bad
input that changes nothing and is never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.audit import AuditEvent
from idp.console import staff as svc
from idp.console.models import Operator, StaffApplication
from idp.console.operators import MSG_PHONE_BOUND
from idp.extensions import db
from idp.gateways.phone import MESSAGES, Outcome, Verification
from idp.gateways.sms import SmsGatewayError
from idp.orgs.models import Organisation
from idp.pki.devca import DevCA
from idp.security import seal
from idp.store import get_store
from idp.validators import MSG_CHOICE, MSG_ID_CHECK, MSG_ID_NUMBER, MSG_USCC_FORMAT
from tests.conftest import csrf_from, last_code, sms_messages, table_counts
from tests.factories import (
    PASSWORD,
    login,
    make_account,
    make_enterprise,
    make_office,
    make_operator,
    ukey_login,
)
from tests.unit.auth.helpers import field_error, other_code

EXEMPT = ("audit_event", "store_entry")
USCC = "91310115MA1FL0D34W"  # the demo enterprise, whose admin logs in with devca's "demo"
OTHER_USCC = "91350100M000100Y43"
UNKNOWN_USCC = "91110000600037341L"  # well-formed, no such enterprise
NAME, PHONE = "李四", "13900000002"  # the sandbox carrier: a match
OFFICE_NAME = "演示物业和谐花园管理处"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_card(body: str) -> str:
    """A 居民身份证号 with its GB 11643 check character."""
    total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


ID_NUMBER = id_card("31010119900307123")
WRONG_CHECK = ID_NUMBER[:-1] + ("0" if ID_NUMBER[-1] != "0" else "1")


# --- helpers --------------------------------------------------------------------------------

def counts() -> dict[str, int]:
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


def events(name: str, result: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == name)
    if result:
        query = query.where(AuditEvent.result == result)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def reload(row: Any) -> Any:
    db.session.expire_all()
    return db.session.get(type(row), row.id)


def send_code(client: FlaskClient, phone: str) -> Any:
    get_store().delete(f"sms:cool:staff:{phone}")  # the test skips the resend interval
    token = csrf_from(client.get("/staff/apply").text)
    return client.post("/staff/apply/sms", data={"phone": phone, "csrf_token": token},
                       headers={"Accept": "application/json"})


def form_data(**overrides: str) -> dict[str, str]:
    data = {"uscc": USCC, "office": "", "name": NAME, "id_type": "111",
            "id_number": ID_NUMBER, "phone": PHONE}
    data.update(overrides)
    return data


def post_apply(client: FlaskClient, data: dict[str, str]) -> Any:
    token = csrf_from(client.get("/staff/apply").text)
    return client.post("/staff/apply", data={**data, "csrf_token": token})


def apply(client: FlaskClient, app: Flask, code: str | None = None, **overrides: str) -> Any:
    """The whole public form: 获取验证码, then 提交申请 with the code from the outbox."""
    data = form_data(**overrides)
    if code is None:
        assert send_code(client, data["phone"]).status_code == 200
        code = last_code(app, data["phone"])
    return post_apply(client, {**data, "sms_code": code})


def as_admin(client: FlaskClient, devca: DevCA) -> None:
    """Log the demo enterprise's admin in with its UKey."""
    response = ukey_login(client, devca.sample("demo").pem_path.read_bytes())
    assert response.status_code == 303, response.text


def make_application(enterprise: Organisation, name: str = NAME, phone: str = PHONE,
                     department: Organisation | None = None,
                     id_number: str = ID_NUMBER) -> StaffApplication:
    """A pending application as the public form leaves it."""
    from flask import current_app

    application = StaffApplication(
        enterprise_id=enterprise.id, department_id=(department or enterprise).id, phone=phone,
        name=name, id_type="111",
        id_number_sealed=seal(current_app.config["IDP"].key_passphrase, svc.SEAL_PURPOSE,
                              id_number),
        id_number_hint=svc.mask_id_number(id_number), status="pending")
    db.session.add(application)
    db.session.commit()
    return application


def detail_csrf(client: FlaskClient, application_id: int) -> str:
    page = client.get(f"/console/applications/{application_id}")
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def decide(client: FlaskClient, application_id: int, decision: str,
           reason: str | None = None, token: str | None = None) -> Any:
    data = {"csrf_token": token or detail_csrf(client, application_id)}
    if reason is not None:
        data["reason"] = reason
    return client.post(f"/console/applications/{application_id}/{decision}", data=data)


def initial_password(app: Flask, phone: str) -> str:
    texts = [m["text"] for m in sms_messages(app, phone) if "初始密码" in m["text"]]
    assert texts, f"no initial password sent to {phone}"
    match = re.search(r"初始密码(\S+?)，", texts[-1])
    assert match
    return match.group(1)


def look_up(client: FlaskClient, app: Flask, phone: str) -> Any:
    get_store().delete(f"sms:cool:lookup:{phone}")
    token = csrf_from(client.get("/lookup").text)
    assert client.post("/lookup/sms", data={"phone": phone, "csrf_token": token},
                       headers={"Accept": "application/json"}).status_code == 200
    token = csrf_from(client.get("/lookup").text)
    response = client.post("/lookup", data={"phone": phone, "sms_code": last_code(app, phone),
                                            "csrf_token": token})
    assert response.status_code == 303, response.text
    return client.get(response.location)


@pytest.fixture
def enterprise(app: Flask) -> Organisation:
    return make_enterprise()


# --- the public form ------------------------------------------------------------------------

def test_S16_application_page_has_every_field(client: FlaskClient) -> None:
    page = client.get("/staff/apply")
    assert page.status_code == 200
    for text in ("实名认证申请", "所属企业统一社会信用代码", "所属小区管理处（选填）", "姓名",
                 "证件类型", "居民身份证", "证件号码", "手机号码", "手机验证码", "获取验证码",
                 "提交申请", "用户名查询"):
        assert text in page.text
    assert '<option selected value="111">居民身份证</option>' in page.text
    assert "<script>" not in page.text and "style=" not in page.text  # CSP: no inline code


def test_S16_sms_code_button_answers_json_and_without_script(app: Flask,
                                                             client: FlaskClient) -> None:
    response = send_code(client, PHONE)
    assert response.status_code == 200 and response.json["ok"] is True
    assert response.json["message"] == "验证码已发送，请注意查收"
    assert "实名认证申请验证码" in sms_messages(app, PHONE)[-1]["text"]
    bad = client.post("/staff/apply/sms", data={
        "phone": "12345", "csrf_token": csrf_from(client.get("/staff/apply").text)},
        headers={"Accept": "application/json"})
    assert bad.status_code == 400 and bad.json["message"] == "手机号格式不正确"
    get_store().delete(f"sms:cool:staff:{PHONE}")
    page = client.post("/staff/apply/sms", data={
        **form_data(), "csrf_token": csrf_from(client.get("/staff/apply").text)})
    assert page.status_code == 200
    assert "验证码已发送，请注意查收" in page.text and ID_NUMBER in page.text  # typed values stay
    again = client.post("/staff/apply/sms", data={
        **form_data(), "csrf_token": csrf_from(client.get("/staff/apply").text)})
    assert again.status_code == 429
    assert field_error(again.text, "phone").startswith("发送过于频繁")


def test_S16_T05_whole_flow_apply_approve_sms_login_must_change_password(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    """Apply → the admin sees it in 用户审核 (masked in the list, in full on the detail page)
    → 通过 → the operator account and identity exist, the initial password is in the SMS
    outbox → the person logs in with it and must change it first (S17, T05)."""
    response = apply(client, app)
    assert response.status_code == 200, response.text
    assert svc.MSG_SUBMITTED in response.text
    assert "申请已提交，请等待企业管理员审核。审核结果可通过「用户名查询」查看。" in response.text
    application = db.session.scalar(sa.select(StaffApplication))
    assert application is not None and application.status == "pending"
    assert application.enterprise_id == enterprise.id == application.department_id
    assert ID_NUMBER not in application.id_number_sealed  # sealed, not in clear
    assert application.id_number_hint == ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
    applied = events("staff.apply")
    assert applied[-1].result == "success" and applied[-1].organisation_id == enterprise.id
    assert PHONE not in str(applied[-1].detail)
    assert events("operator.phone_check")[-1].detail["purpose"] == "staff_apply"

    admin = app.test_client()
    as_admin(admin, devca)
    listing = admin.get("/console/applications")
    assert listing.status_code == 200
    for text in ("用户审核", "待审核", "已通过", "已驳回", "序号", "姓名", "手机号码", "证件类型",
                 "证件号码", "部门", "申请时间", "状态", NAME, PHONE, application.id_number_hint):
        assert text in listing.text
    assert ID_NUMBER not in listing.text
    assert "待审核<span class=\"count\">（1）</span>" in listing.text
    detail = admin.get(f"/console/applications/{application.id}")
    assert detail.status_code == 200 and ID_NUMBER in detail.text

    response = decide(admin, application.id, "approve")
    assert response.status_code == 303
    assert "/console/applications?status=approved" in response.location
    application = reload(application)
    assert application.status == "approved" and application.decided_at is not None
    assert application.decided_by is not None and application.operator_id is not None
    operator = db.session.get(Operator, application.operator_id)
    assert operator is not None and operator.enterprise_id == enterprise.id
    assert operator.name == NAME and operator.account.phone == PHONE
    assert operator.department_id == enterprise.id and operator.role == "operator"
    assert operator.identity.status == "active" and operator.identity.platform == "repair_fund"
    assert operator.account.must_change_password
    assert events("staff.approve")[-1].organisation_id == enterprise.id
    assert events("sms.initial_password")
    password = initial_password(app, PHONE)
    assert "已通过" in admin.get("/console/applications?status=approved").text

    person = app.test_client()
    response = login(person, app, PHONE, password)
    assert response.status_code == 303 and "/password/change" in response.location


def test_S16_approval_of_an_office_application_makes_an_office_operator(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    office = make_office(enterprise, OFFICE_NAME)
    response = apply(client, app, office=f"  {OFFICE_NAME} ", name="操作员一",
                     phone="13900000011")
    assert response.status_code == 200, response.text
    application = db.session.scalar(sa.select(StaffApplication))
    assert application is not None and application.department_id == office.id
    as_admin(client, devca)
    assert OFFICE_NAME in client.get("/console/applications").text
    assert decide(client, application.id, "approve").status_code == 303
    operator = db.session.get(Operator, reload(application).operator_id)
    assert operator is not None
    assert (operator.department_id, operator.category, operator.role) == (
        office.id, "office", "office")


def test_S16_T05_rejection_reason_shows_in_lookup_result(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    assert apply(client, app).status_code == 200
    application = db.session.scalar(sa.select(StaffApplication))
    assert application is not None
    pending = look_up(app.test_client(), app, PHONE)
    assert "实名认证申请" in pending.text and "待审核" in pending.text
    assert enterprise.name in pending.text

    admin = app.test_client()
    as_admin(admin, devca)
    reason = "证件号码与姓名不符，请核对后重新申请"
    response = decide(admin, application.id, "reject", reason=f"  {reason}  ")
    assert response.status_code == 303
    application = reload(application)
    assert (application.status, application.reason) == ("rejected", reason)
    assert application.operator_id is None
    assert events("staff.reject")[-1].organisation_id == enterprise.id
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Operator)) == 0
    rejected = admin.get("/console/applications?status=rejected")
    assert NAME in rejected.text and "已驳回<span class=\"count\">（1）</span>" in rejected.text

    result = look_up(app.test_client(), app, PHONE)
    assert result.status_code == 200
    assert "已驳回" in result.text and reason in result.text
    # Somebody else's look-up shows nothing of it.
    other = look_up(app.test_client(), app, "13900000011")
    assert reason not in other.text and enterprise.name not in other.text

    # Rejected, the person may apply again.
    assert apply(client, app).status_code == 200


# --- every refusal of the public form ----------------------------------------------------------

def test_S16_S14_a_bound_phone_cannot_apply(app: Flask, client: FlaskClient,
                                           enterprise: Organisation) -> None:
    other = make_enterprise(uscc=OTHER_USCC, name="福州物业有限公司", ukey=False)
    make_operator(other, phone=PHONE, name=NAME)
    before = counts()
    response = apply(client, app)
    assert response.status_code == 400
    assert field_error(response.text, "phone") == MSG_PHONE_BOUND
    assert counts() == before
    assert events("staff.apply", "failure")[-1].detail["reason"] == "phone_bound"


def test_S16_a_second_pending_application_to_the_same_enterprise_is_refused(
        app: Flask, client: FlaskClient, enterprise: Organisation) -> None:
    assert apply(client, app).status_code == 200
    before = counts()
    response = apply(client, app)
    assert response.status_code == 400
    assert field_error(response.text, "phone") == "您已提交过申请，请等待企业管理员审核"
    assert counts() == before
    # Another enterprise is another application.
    make_enterprise(uscc=OTHER_USCC, name="福州物业有限公司", ukey=False)
    assert apply(client, app, uscc=OTHER_USCC).status_code == 200


@pytest.mark.parametrize(("name", "phone", "outcome"), [
    ("张三", "13900000003", Outcome.MISMATCH),  # S13
    ("赵六", "13900000004", Outcome.NO_RECORD),
    ("钱七", "13900000005", Outcome.UNSUPPORTED),
    ("孙八", "13900000006", Outcome.RATE_LIMITED),
    ("周九", "13900000007", Outcome.PROVIDER_ERROR),
    ("吴十", "13900000008", Outcome.INVALID_INPUT),
])
def test_S16_S13_carrier_check_failure_saves_nothing_and_keeps_the_code(
        app: Flask, client: FlaskClient, enterprise: Organisation, name: str, phone: str,
        outcome: Outcome) -> None:
    before = counts()
    assert send_code(client, phone).status_code == 200
    code = last_code(app, phone)
    response = apply(client, app, code=code, name=name, phone=phone)
    assert response.status_code == 400
    assert field_error(response.text, "phone") == MESSAGES[outcome]
    assert counts() == before
    check = events("operator.phone_check", "failure")[-1]
    assert check.detail["outcome"] == outcome.value and check.organisation_id == enterprise.id
    if outcome is Outcome.MISMATCH:  # the name corrected, the same code still works
        response = apply(client, app, code=code, name="张叁", phone=phone)
        assert response.status_code == 200, response.text


def test_S16_sms_code_is_single_use_and_of_its_own_purpose(
        app: Flask, client: FlaskClient, enterprise: Organisation) -> None:
    assert send_code(client, PHONE).status_code == 200
    code = last_code(app, PHONE)
    assert apply(client, app, code=code).status_code == 200
    # Rejected later, the person applies again with the used code: refused.
    db.session.execute(sa.update(StaffApplication).values(status="rejected", reason="x"))
    db.session.commit()
    before = counts()
    response = apply(client, app, code=code)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") in ("验证码已过期，请重新获取", "请先获取验证码")
    # A login code does not complete this form.
    login_page = client.get("/login")
    client.post("/login/sms", data={"phone": PHONE, "csrf_token": csrf_from(login_page.text)},
                headers={"Accept": "application/json"})
    response = apply(client, app, code=last_code(app, PHONE))
    assert response.status_code == 400 and field_error(response.text, "sms_code")
    assert counts() == before


def test_S16_the_sms_code_is_checked_before_s14_and_the_carrier(
        app: Flask, client: FlaskClient, enterprise: Organisation) -> None:
    """Without the phone's code nobody learns whether it is bound, nor buys a carrier call."""
    make_operator(enterprise, phone=PHONE, name=NAME)
    assert send_code(client, PHONE).status_code == 200
    response = apply(client, app, code=other_code(last_code(app, PHONE)))
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") == "验证码错误"
    assert field_error(response.text, "phone") == ""
    assert not events("operator.phone_check")


def test_S16_an_inactive_enterprise_cannot_be_applied_to(app: Flask,
                                                         client: FlaskClient) -> None:
    org = make_enterprise()
    org.status = "disabled"
    db.session.commit()
    before = counts()
    response = apply(client, app)
    assert response.status_code == 400
    assert field_error(response.text, "uscc") == svc.MSG_ENTERPRISE_UNKNOWN
    assert counts() == before


def test_S16_office_must_be_a_live_office_of_that_enterprise(
        app: Flask, client: FlaskClient, enterprise: Organisation) -> None:
    other = make_enterprise(uscc=OTHER_USCC, name="福州物业有限公司", ukey=False)
    make_office(other, "福州物业某某管理处")
    gone = make_office(enterprise, "已撤销管理处")
    gone.status = "disabled"
    db.session.commit()
    before = counts()
    for office in ("福州物业某某管理处", "已撤销管理处", "不存在的管理处"):
        response = apply(client, app, office=office)
        assert response.status_code == 400
        assert field_error(response.text, "office") == svc.MSG_OFFICE_UNKNOWN
    assert counts() == before


def test_S16_an_ambiguous_office_name_is_refused(app: Flask, client: FlaskClient,
                                                 enterprise: Organisation) -> None:
    make_office(enterprise, OFFICE_NAME)
    make_office(enterprise, OFFICE_NAME)
    before = counts()
    response = apply(client, app, office=OFFICE_NAME)
    assert response.status_code == 400
    assert field_error(response.text, "office") == svc.MSG_OFFICE_AMBIGUOUS
    assert counts() == before


LONG = "张" * 51
BAD_APPLY = [
    # field, value, message
    ("uscc", "", svc.MSG_USCC_REQUIRED),
    ("uscc", "9" * 200, MSG_USCC_FORMAT),
    ("uscc", "<script>alert(1)</script>", MSG_USCC_FORMAT),
    ("uscc", "９１３１０１１５ＭＡ１ＦＬ０Ｄ３４Ｗ", MSG_USCC_FORMAT),  # full-width
    ("uscc", "91310115MA1FL0D34X", MSG_USCC_FORMAT),  # wrong check character
    ("uscc", UNKNOWN_USCC, svc.MSG_ENTERPRISE_UNKNOWN),
    ("office", "管" * 101, svc.MSG_OFFICE),
    ("office", "<script>alert(1)</script>", svc.MSG_OFFICE),
    ("office", "１２３", svc.MSG_OFFICE),  # full-width digits and no letter: not a name
    ("office", "管理处１", svc.MSG_OFFICE_UNKNOWN),  # not the office's name as registered
    ("name", "", svc.MSG_NAME),
    ("name", LONG, svc.MSG_NAME),
    ("name", "<script>alert(1)</script>", svc.MSG_NAME),
    ("name", "李四１", svc.MSG_NAME),  # full-width digit
    ("name", "'; DROP TABLE account; --", svc.MSG_NAME),
    ("id_type", "", MSG_CHOICE),
    ("id_type", "999", MSG_CHOICE),
    ("id_type", "<script>", MSG_CHOICE),
    ("id_number", "", svc.MSG_ID_NUMBER_REQUIRED),
    ("id_number", WRONG_CHECK, MSG_ID_CHECK),
    ("id_number", ID_NUMBER + "0", MSG_ID_NUMBER),
    ("id_number", "1" * 300, MSG_ID_NUMBER),
    ("id_number", "<script>alert(1)</script>", MSG_ID_NUMBER),
    ("id_number", "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in ID_NUMBER),
     MSG_ID_NUMBER),  # full-width digits
    ("phone", "", svc.MSG_PHONE_REQUIRED),
    ("phone", "1390000000212345", "手机号格式不正确"),
    ("phone", "<script>", "手机号格式不正确"),
    ("phone", "１３９００００００２", "手机号格式不正确"),
    ("sms_code", "", svc.MSG_SMS_REQUIRED),
    ("sms_code", "１２３４５６", "请输入6位数字验证码"),
    ("sms_code", "<script>", "请输入6位数字验证码"),
    ("sms_code", "1" * 100, "请输入6位数字验证码"),
    ("sms_code", "WRONG", "验证码错误"),  # a well-formed wrong code (see below)
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_APPLY,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_APPLY)])
def test_S16_bad_input_of_the_application_form_changes_nothing(
        app: Flask, client: FlaskClient, enterprise: Organisation, field: str, value: str,
        message: str) -> None:
    assert send_code(client, PHONE).status_code == 200
    code = last_code(app, PHONE)
    if value == "WRONG":
        value = other_code(code)
    data = {**form_data(), "sms_code": code, field: value}
    before = counts()
    response = post_apply(client, data)
    assert response.status_code == 400, response.text
    assert field_error(response.text, field) == message
    assert counts() == before
    assert "<script>alert" not in response.text


@pytest.mark.parametrize("field", ["uscc", "office", "name", "id_type", "id_number", "phone",
                                   "sms_code"])
def test_S16_control_characters_in_the_application_form_are_refused(
        app: Flask, client: FlaskClient, enterprise: Organisation, field: str) -> None:
    data = {**form_data(), "sms_code": "123456", field: "李\x00四"}
    before = counts()
    response = post_apply(client, data)
    assert response.status_code == 400
    assert "控制字符" in response.text
    assert counts() == before


def test_S16_application_without_csrf_token_is_refused(app: Flask, client: FlaskClient,
                                                       enterprise: Organisation) -> None:
    before = counts()
    response = client.post("/staff/apply", data={**form_data(), "sms_code": "123456"})
    assert response.status_code == 400
    assert counts() == before


# --- 用户审核: who may enter, tenant isolation -------------------------------------------------

def test_S16_console_requires_an_enterprise_admin(app: Flask, client: FlaskClient,
                                                  enterprise: Organisation) -> None:
    application = make_application(enterprise)
    anonymous = client.get("/console/applications")
    assert anonymous.status_code == 303 and anonymous.location.endswith("/login")
    make_account("13912345678", role="operator")  # a person, not an admin
    assert login(client, app, "13912345678", PASSWORD).status_code == 303
    token = csrf_from(client.get("/staff/apply").text)  # a valid token of this session
    before = counts()
    for url in ("/console/applications", f"/console/applications/{application.id}"):
        assert client.get(url).status_code == 403, url
    for decision in ("approve", "reject"):
        response = client.post(f"/console/applications/{application.id}/{decision}",
                               data={"reason": "不符合", "csrf_token": token})
        assert response.status_code == 403, decision
    assert len(events("console.denied", "failure")) == 4
    assert counts() == before and reload(application).status == "pending"


def test_S16_another_enterprises_application_is_not_found(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    other = make_enterprise(uscc=OTHER_USCC, name="福州物业有限公司", ukey=False)
    theirs = make_application(other, name="操作员二", phone="13900000012")
    mine = make_application(enterprise)
    as_admin(client, devca)
    listing = client.get("/console/applications")
    assert "操作员二" not in listing.text and "13900000012" not in listing.text
    assert NAME in listing.text
    token = detail_csrf(client, mine.id)
    before = counts()
    assert client.get(f"/console/applications/{theirs.id}").status_code == 404
    assert decide(client, theirs.id, "approve", token=token).status_code == 404
    assert decide(client, theirs.id, "reject", reason="不是本企业员工",
                  token=token).status_code == 404
    for bad in ("0", "2147483648", "99999999999999999999", "abc", "-1"):
        assert client.get(f"/console/applications/{bad}").status_code == 404
    assert counts() == before
    theirs = reload(theirs)
    assert theirs.status == "pending" and theirs.reason is None
    assert not events("operator.phone_check")


# --- a single decision -----------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second"), [("approve", "approve"), ("approve", "reject"),
                                               ("reject", "approve"), ("reject", "reject")])
def test_S16_an_application_is_decided_only_once(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA, first: str,
        second: str) -> None:
    application = make_application(enterprise)
    as_admin(client, devca)
    token = detail_csrf(client, application.id)  # two tabs open on the same page
    assert decide(client, application.id, first, reason="不符合", token=token).status_code == 303
    decided = reload(application)
    state = (decided.status, decided.reason, decided.operator_id, decided.decided_at)
    before = counts()
    response = decide(client, application.id, second, reason="再次处理", token=token)
    assert response.status_code == 409
    assert "该申请已处理" in response.text
    assert counts() == before
    again = reload(application)
    assert (again.status, again.reason, again.operator_id, again.decided_at) == state
    assert events(f"staff.{second}", "failure")[-1].detail["reason"] == "该申请已处理"
    if first == "approve":
        assert len([m for m in sms_messages(app, PHONE) if "初始密码" in m["text"]]) == 1


def test_S16_approval_rechecks_s14_and_the_carrier_and_then_stays_pending(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA,
        monkeypatch: pytest.MonkeyPatch) -> None:
    application = make_application(enterprise)
    as_admin(client, devca)
    # The carrier now has another name for the number (it changed hands): refused.
    mismatch = Verification(Outcome.MISMATCH, "中国移动", "req-1", True)
    monkeypatch.setitem(app.extensions, "idp.phone_verifier",
                        type("Changed", (), {"verify": lambda self, n, p: mismatch})())
    before = counts()
    response = decide(client, application.id, "approve")
    assert response.status_code == 400
    assert MESSAGES[Outcome.MISMATCH] in response.text
    assert counts() == before and reload(application).status == "pending"
    assert events("operator.phone_check", "failure")
    monkeypatch.undo()
    # Meanwhile the person became an operator of another enterprise (S14): refused.
    other = make_enterprise(uscc=OTHER_USCC, name="福州物业有限公司", ukey=False)
    make_operator(other, phone=PHONE, name=NAME)
    before = counts()
    response = decide(client, application.id, "approve")
    assert response.status_code == 400 and MSG_PHONE_BOUND in response.text
    assert counts() == before and reload(application).status == "pending"
    # The admin rejects it instead.
    assert decide(client, application.id, "reject", reason="已在其他企业任职").status_code == 303


def test_S16_approval_when_the_office_was_deleted_meanwhile(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    office = make_office(enterprise, OFFICE_NAME)
    application = make_application(enterprise, department=office)
    office.status = "disabled"
    db.session.commit()
    as_admin(client, devca)
    before = counts()
    response = decide(client, application.id, "approve")
    assert response.status_code == 400 and svc.MSG_DEPARTMENT_GONE in response.text
    assert counts() == before and reload(application).status == "pending"


def test_S16_sms_failure_after_approval_is_reported_not_a_500(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA,
        monkeypatch: pytest.MonkeyPatch) -> None:
    application = make_application(enterprise)
    as_admin(client, devca)
    token = detail_csrf(client, application.id)

    class Down:
        def send(self, phone: str, text: str, code: str | None) -> None:
            raise SmsGatewayError("unreachable")

    monkeypatch.setattr(app.extensions["idp.sms"], "_gateway", Down())
    response = decide(client, application.id, "approve", token=token)
    assert response.status_code == 200
    assert "初始密码短信发送失败" in response.text
    assert reload(application).status == "approved"
    assert events("sms.initial_password", "failure")


def test_S16_approving_an_existing_persons_application_sends_no_password(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    """A committee handler (a person account, not bound by S14) joins an enterprise: the
    identity is added to the account, and the password stays theirs."""
    account = make_account(PHONE, name=NAME, platform="repair_fund", role="committee_handler")
    application = make_application(enterprise)
    as_admin(client, devca)
    assert decide(client, application.id, "approve").status_code == 303
    assert not [m for m in sms_messages(app, PHONE) if "初始密码" in m["text"]]
    identities = db.session.scalars(sa.select(Identity).where(
        Identity.account_id == account.id)).all()
    assert {i.role for i in identities} == {"committee_handler", "operator"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == 2  # + ukey


# --- bad input of the decision form ----------------------------------------------------------

BAD_REASON = [
    ("", svc.MSG_REASON),
    ("   ", svc.MSG_REASON),
    ("原" * 501, svc.MSG_REASON),
    ("<script>alert(1)</script>", svc.MSG_REASON_HTML),
    ("资料不全<b>", svc.MSG_REASON_HTML),
]


@pytest.mark.parametrize(("reason", "message"), BAD_REASON,
                         ids=["empty", "blank", "too-long", "script", "tag"])
def test_S16_bad_rejection_reason_changes_nothing(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA, reason: str,
        message: str) -> None:
    application = make_application(enterprise)
    as_admin(client, devca)
    before = counts()
    response = decide(client, application.id, "reject", reason=reason)
    assert response.status_code == 400
    assert field_error(response.text, "reason") == message
    assert "<script>alert" not in response.text
    assert counts() == before
    after = reload(application)
    assert after.status == "pending" and after.reason is None


def test_S16_missing_reason_field_and_control_characters_change_nothing(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    application = make_application(enterprise)
    as_admin(client, devca)
    before = counts()
    response = decide(client, application.id, "reject")  # no reason field at all
    assert response.status_code == 400
    assert field_error(response.text, "reason") == svc.MSG_REASON
    response = decide(client, application.id, "reject", reason="原因\x07")
    assert response.status_code == 400 and "控制字符" in response.text
    response = client.post(f"/console/applications/{application.id}/approve", data={})
    assert response.status_code == 400  # no CSRF token
    response = client.post(f"/console/applications/{application.id}/reject",
                           data={"reason": "不符合"})
    assert response.status_code == 400
    assert counts() == before and reload(application).status == "pending"


def test_S16_full_width_digits_in_a_reason_are_text(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    """A reason is free text for the applicant: full-width digits are kept as typed."""
    application = make_application(enterprise)
    as_admin(client, devca)
    response = decide(client, application.id, "reject", reason="请于１０日内补交材料")
    assert response.status_code == 303
    assert reload(application).reason == "请于１０日内补交材料"


def test_S16_list_tabs_unknown_status_and_paging_are_never_a_500(
        app: Flask, client: FlaskClient, enterprise: Organisation, devca: DevCA) -> None:
    for i in range(svc.PAGE_SIZE + 1):
        make_application(enterprise, name="操作员三", phone=f"1390000{i:04d}")
    as_admin(client, devca)
    first = client.get("/console/applications")
    assert "第 1 / 2 页" in first.text and "（21）" in first.text
    second = client.get("/console/applications?status=pending&page=2")
    assert second.status_code == 200 and "<td>21</td>" in second.text
    for query in ("status=<script>", "page=-1", "page=99999999", "page=１", "status=approved"):
        response = client.get(f"/console/applications?{query}")
        assert response.status_code == 200, query
        assert "<script>" not in response.text
    assert "暂无数据" in client.get("/console/applications?status=approved").text


def test_S16_a_decision_made_elsewhere_meanwhile_is_seen_through_the_lock(
        app: Flask, enterprise: Organisation) -> None:
    """The decision reads the row afresh under its lock: a copy this request read before
    (stale: another admin decided in between) does not let a second decision through."""
    from idp.console.tenant import tenant_of

    application = make_application(enterprise)
    admin = db.session.scalar(sa.select(Account).where(Account.kind == "ukey"))
    tenant = tenant_of(admin)
    assert tenant is not None
    assert svc.get_application(tenant, application.id).status == "pending"  # read, kept
    with db.engine.begin() as conn:  # another admin's transaction
        conn.execute(sa.update(StaffApplication).values(status="rejected", reason="不符合"))
    before = counts()
    for decide_now in (lambda: svc.approve(tenant, application.id),
                       lambda: svc.reject(tenant, application.id, "再次驳回")):
        with pytest.raises(svc.AlreadyDecided):
            decide_now()
        db.session.rollback()
    assert counts() == before
    assert reload(application).reason == "不符合"
