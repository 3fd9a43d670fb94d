"""Owners' committees: registration (T04) against an existing property area (T07) with named
handlers (T06), review by the district centre, the committee console, changes (T04),
associations (T08), returned applications and resubmission; bad input writes nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.accounts.service import send_initial_passwords
from idp.extensions import db
from idp.orgs import review
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.registration import committees as svc
from tests.conftest import csrf_from, last_code, sms_messages, table_counts
from tests.factories import PASSWORD, login, make_area, make_centre, make_enterprise
from tests.unit.auth.helpers import Page, field_error, other_code

AREA, DISTRICT = "和谐花园", "310115"
P1, P2, P3 = "13800000001", "13800000002", "13800000003"
NEW_PASSWORD = "N3w-Passw0rd!"
EXEMPT = {"audit_event", "store_entry"}
MSG_AREA_MISSING = "该物业区域在系统中不存在，无法注册。"


# --- helpers (test_lookup.py uses them too) ------------------------------------------------------

def base(**changes: Any) -> dict[str, str]:
    """A valid registration (the SMS code and CSRF token are added when it is posted)."""
    data = {"name": "和谐花园业委会筹备组", "district": DISTRICT, "area_name": AREA,
            "attribute": "provisional", "term_start": "", "term_end": "",
            "handler1_name": "王建国", "handler1_phone": P1,
            "handler2_name": "李建党", "handler2_phone": P2,
            "handler3_name": "", "handler3_phone": ""}
    data.update(changes)
    return data


def send_code(client: FlaskClient, phone: str, path: str = "/register/committee/sms",
              field: str = "handler1_phone", page: str = "/register/committee") -> Any:
    """The 【获取验证码】 button as the page's script presses it (JSON)."""
    csrf = csrf_from(client.get(page).text)
    return client.post(path, data={field: phone, "csrf_token": csrf},
                       headers={"Accept": "application/json"})


def post_registration(client: FlaskClient, app: Flask, data: dict[str, str],
                      code: str | None = None, send: bool = True) -> Any:
    phone = data.get("handler1_phone", P1)
    if send:
        assert send_code(client, phone).status_code == 200
    csrf = csrf_from(client.get("/register/committee").text)
    form = {**data, "csrf_token": csrf}
    if code is not None:
        form["sms_code"] = code
    elif send:
        form["sms_code"] = last_code(app, phone)
    return client.post("/register/committee", data=form)


def register(client: FlaskClient, app: Flask, **changes: Any) -> Application:
    response = post_registration(client, app, base(**changes))
    assert response.status_code == 200, response.text
    assert "注册申请已提交" in response.text
    db.session.rollback()
    application = db.session.scalars(sa.select(Application).where(
        Application.kind == "committee_registration").order_by(Application.id.desc())).first()
    assert application is not None
    return application


def approve(application_id: int, reviewer: Account) -> None:
    """What the centre console does: approve, commit, then SMS the initial passwords."""
    application = db.session.get(Application, application_id)
    assert application is not None
    approval = review.approve(application, reviewer)
    db.session.commit()
    assert send_initial_passwords(approval.new_accounts, "业委会经办人") == []


def send_back(application_id: int, reviewer: Account, reason: str) -> None:
    application = db.session.get(Application, application_id)
    assert application is not None
    review.return_application(application, reviewer, reason)
    db.session.commit()


def initial_password(app: Flask, phone: str) -> str:
    texts = [m["text"] for m in sms_messages(app, phone) if "初始密码" in m["text"]]
    assert texts, f"no initial password sent to {phone}"
    match = re.search(r"初始密码(\S+?)，首次登录", texts[-1])
    assert match
    return match.group(1)


def handler_login(client: FlaskClient, app: Flask, phone: str = P1) -> None:
    """First login of a handler: the initial password from the SMS, then the forced change."""
    response = login(client, app, phone, initial_password(app, phone))
    assert response.status_code == 303 and "/password/change" in response.location
    csrf = csrf_from(client.get("/password/change").text)
    response = client.post("/password/change", data={
        "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD, "csrf_token": csrf})
    assert response.status_code == 303, response.text


def committee_of(application_id: int) -> Organisation:
    db.session.rollback()
    application = db.session.get(Application, application_id)
    assert application is not None
    org = db.session.get(Organisation, application.organisation_id)
    assert org is not None
    return org


def approved_committee(client: FlaskClient, app: Flask, centre: Account,
                       **changes: Any) -> Organisation:
    application = register(client, app, **changes)
    approve(application.id, centre)
    return committee_of(application.id)


def counts() -> dict[str, int]:
    db.session.rollback()
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


@pytest.fixture
def area(app: Flask) -> PropertyArea:
    return make_area(AREA, DISTRICT)


@pytest.fixture
def centre(app: Flask) -> Account:
    return make_centre("13600000001", DISTRICT)


# --- registration (T04, T06, T07) ----------------------------------------------------------------

def test_T04_registration_page_shows_the_fields(client: FlaskClient, area: PropertyArea) -> None:
    page = client.get("/register/committee")
    assert page.status_code == 200
    for label in ("业委会注册", "业委会名称", "所在区", "物业区域", "属性", "临时（筹备组）",
                  "正式", "本届起始日期", "本届截止日期", "经办人1姓名", "经办人1手机号",
                  "经办人2姓名", "经办人2手机号", "手机验证码", "获取验证码"):
        assert label in page.text, label
    assert 'src="/static/sms.js"' in page.text and 'src="/static/committee.js"' in page.text


def test_T04_register_provisional_without_dates(app: Flask, client: FlaskClient,
                                                area: PropertyArea) -> None:
    """临时 (筹备组): dates sent anyway are dropped; a pending committee and its application,
    the area only in the application's data (the link is made on approval)."""
    application = register(client, app, term_start="2024-01-01", term_end="2027-01-01")
    assert application.status == "pending" and application.district == DISTRICT
    assert application.applicant_phone == P1 and application.applicant_account_id is None
    assert application.data == {
        "name": "和谐花园业委会筹备组", "area_id": area.id, "attribute": "provisional",
        "term_start": None, "term_end": None,
        "handlers": [{"name": "王建国", "phone": P1}, {"name": "李建党", "phone": P2}],
        "platforms": ["repair_fund"]}
    org = committee_of(application.id)
    assert (org.type, org.status, org.district) == ("committee", "pending", DISTRICT)
    assert org.profile == {"attribute": "provisional", "term_start": None, "term_end": None}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AreaLink)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == 0


def test_T04_register_formal_with_dates(app: Flask, client: FlaskClient,
                                        area: PropertyArea) -> None:
    application = register(client, app, name="和谐花园业主委员会", attribute="formal",
                           term_start="2024-03-01", term_end="2029-02-28")
    assert application.data["attribute"] == "formal"
    assert (application.data["term_start"], application.data["term_end"]) == (
        "2024-03-01", "2029-02-28")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"term_start": "2029-01-01", "term_end": "2024-01-01"}, "term_end", svc.MSG_DATE_ORDER),
    ({"term_start": "2024-01-01", "term_end": "2024-01-01"}, "term_end", svc.MSG_DATE_ORDER),
    ({"term_start": "", "term_end": "2029-01-01"}, "term_start",
     svc.MSG_DATE_REQUIRED["term_start"]),
    ({"term_start": "2024-01-01", "term_end": ""}, "term_end", svc.MSG_DATE_REQUIRED["term_end"]),
])
def test_T04_formal_needs_a_term_start_before_end(app: Flask, client: FlaskClient,
                                                  area: PropertyArea, changes: dict[str, str],
                                                  field: str, message: str) -> None:
    before = counts()
    response = post_registration(client, app, base(attribute="formal", **changes))
    assert response.status_code == 400
    assert field_error(response.text, field) == message
    assert counts() == before


def test_T07_area_that_does_not_exist_is_refused(app: Flask, client: FlaskClient,
                                                 area: PropertyArea) -> None:
    make_area("幸福小区", "310104")  # the name exists, but in another district
    assert send_code(client, P1).status_code == 200
    code = last_code(app, P1)  # a failure does not use it up
    before = counts()
    for name, district in (("和谐花园二期", DISTRICT), ("幸福小区", DISTRICT), (AREA, "310104"),
                           ("和谐", DISTRICT)):
        response = post_registration(client, app, base(area_name=name, district=district),
                                     code=code, send=False)
        assert response.status_code == 400
        assert field_error(response.text, "area_name") == MSG_AREA_MISSING
    assert counts() == before


def test_T07_merged_area_name_is_refused_naming_the_survivor(app: Flask, client: FlaskClient,
                                                             area: PropertyArea) -> None:
    old = PropertyArea(name="和谐花园一期", district=DISTRICT, status="merged",
                       merged_into_id=area.id)
    db.session.add(old)
    db.session.commit()
    before = counts()
    response = post_registration(client, app, base(area_name="和谐花园一期"))
    assert response.status_code == 400
    message = field_error(response.text, "area_name")
    assert AREA in message and "合并" in message
    assert counts() == before


def test_T04_an_area_with_a_committee_or_an_open_registration_is_refused(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    first = register(client, app)
    other = app.test_client()
    phones = {"handler1_phone": "13800000011", "handler2_phone": "13800000012"}
    response = post_registration(other, app, base(**phones))
    assert response.status_code == 400
    assert field_error(response.text, "area_name") == svc.MSG_AREA_TAKEN
    approve(first.id, centre)  # now an active committee represents it
    third = app.test_client()
    phones = {"handler1_phone": "13800000021", "handler2_phone": "13800000022"}
    response = post_registration(third, app, base(**phones))
    assert field_error(response.text, "area_name") == svc.MSG_AREA_TAKEN
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Application)) == 1


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"handler2_name": "", "handler2_phone": ""}, "handler2_phone", svc.MSG_HANDLER_PHONE),
    ({"handler2_name": "", "handler2_phone": ""}, "handler2_name", svc.MSG_HANDLER_NAME),
    ({"handler2_phone": P1}, "handler2_phone", svc.MSG_HANDLER_DUPLICATE),
    ({"handler3_name": "张三", "handler3_phone": P2}, "handler3_phone",
     svc.MSG_HANDLER_DUPLICATE),
    ({"handler3_name": "张三"}, "handler3_phone", svc.MSG_HANDLER_PHONE),
    ({"handler3_phone": P3}, "handler3_name", svc.MSG_HANDLER_NAME),
])
def test_T06_two_named_handlers_with_their_own_phones(app: Flask, client: FlaskClient,
                                                      area: PropertyArea,
                                                      changes: dict[str, str], field: str,
                                                      message: str) -> None:
    before = counts()
    response = post_registration(client, app, base(**changes))
    assert response.status_code == 400
    assert field_error(response.text, field) == message
    assert counts() == before


def test_T06_a_third_handler_is_optional(app: Flask, client: FlaskClient,
                                         area: PropertyArea) -> None:
    application = register(client, app, handler3_name="张 三", handler3_phone="138 0000 0003")
    assert application.data["handlers"][2] == {"name": "张 三", "phone": P3}


@pytest.mark.parametrize("code", ["", "wrong", "other"])
def test_T04_sms_code_wrong_or_missing_writes_nothing(app: Flask, client: FlaskClient,
                                                      area: PropertyArea, code: str) -> None:
    assert send_code(client, P1).status_code == 200
    real = last_code(app, P1)
    sent = {"": "", "wrong": "12ab56", "other": other_code(real)}[code]
    before = counts()
    response = post_registration(client, app, base(), code=sent, send=False)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code")
    assert counts() == before
    # The live code was not used up by the failure: the corrected form goes through.
    response = post_registration(client, app, base(), code=real, send=False)
    assert response.status_code == 200, response.text


def test_T04_the_code_is_used_once(app: Flask, client: FlaskClient, area: PropertyArea) -> None:
    register(client, app)
    other_area = make_area("幸福小区", DISTRICT)
    csrf = csrf_from(client.get("/register/committee").text)
    response = client.post("/register/committee", data={
        **base(area_name=other_area.name), "csrf_token": csrf, "sms_code": last_code(app, P1)})
    assert response.status_code == 400
    assert field_error(response.text, "sms_code")


def test_T04_code_must_be_handler_1s(app: Flask, client: FlaskClient, area: PropertyArea) -> None:
    """A code sent to another phone does not prove 经办人1's."""
    assert send_code(client, P2).status_code == 200
    response = post_registration(client, app, base(), code=last_code(app, P2), send=False)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code")


def test_T04_sms_button_without_script_keeps_the_form(app: Flask, client: FlaskClient,
                                                      area: PropertyArea) -> None:
    csrf = csrf_from(client.get("/register/committee").text)
    response = client.post("/register/committee/sms", data={**base(), "csrf_token": csrf})
    assert response.status_code == 200
    assert "验证码已发送，请注意查收" in response.text
    assert 'value="和谐花园业委会筹备组"' in response.text and f'value="{P2}"' in response.text
    assert len(sms_messages(app, P1)) == 1
    response = client.post("/register/committee/sms", data={
        **base(handler1_phone="１３８００００００01"), "csrf_token": csrf})
    assert response.status_code == 400
    assert field_error(response.text, "handler1_phone") == "手机号格式不正确"


def test_T04_sms_button_answers_json_alike_for_every_phone(app: Flask, client: FlaskClient,
                                                           area: PropertyArea) -> None:
    make_centre("13600000009", DISTRICT)  # a phone with an account
    answers = [send_code(client, phone).json for phone in ("13600000009", "13700000009")]
    assert answers[0] == answers[1] == {"ok": True, "message": "验证码已发送，请注意查收",
                                        "wait": 60}
    bad = send_code(client, "12345")
    assert bad.status_code == 400 and bad.json["ok"] is False


def test_T04_review_policy_off_approves_at_once(app: Flask, client: FlaskClient,
                                                area: PropertyArea,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """T02/T04: review_required without repair_fund:committee — approved on submission, the
    handlers' initial passwords are sent."""
    settings = app.config["IDP"]
    monkeypatch.setitem(app.config, "IDP", settings.replace(review_required=()))
    response = post_registration(client, app, base())
    assert response.status_code == 200, response.text
    assert "注册成功" in response.text
    db.session.rollback()
    application = db.session.scalars(sa.select(Application)).one()
    assert application.status == "approved"
    assert committee_of(application.id).status == "active"
    assert initial_password(app, P1) and initial_password(app, P2)


# --- review, login, console ----------------------------------------------------------------------

def test_T04_T06_approval_gives_each_handler_a_personal_account(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    org = approved_committee(client, app, centre)
    assert org.status == "active"
    link = db.session.scalars(sa.select(AreaLink)).one()
    assert (link.area_id, link.organisation_id, link.role) == (area.id, org.id, "committee")
    for phone, name in ((P1, "王建国"), (P2, "李建党")):
        account = db.session.scalar(sa.select(Account).where(Account.phone == phone))
        assert account is not None and account.name == name and account.must_change_password
        roles = {(i.organisation_id, i.role, i.platform) for i in account.identities}
        assert roles == {(org.id, "committee_handler", "repair_fund")}
    handler_login(client, app, P2)
    page = client.get("/committee")
    assert page.status_code == 200
    facts = Page(page.text)
    assert facts.by_id("committee-name")["text"] == "和谐花园业委会筹备组"
    assert facts.by_id("committee-attribute")["text"] == "临时（筹备组）"
    assert facts.by_id("committee-area")["text"] == AREA
    assert facts.by_id("committee-managers")["text"] == "暂未关联"
    assert "王建国" in facts.by_id("committee-handlers")["text"]
    assert "已通过" in page.text


def test_T04_console_needs_a_handler(app: Flask, client: FlaskClient, centre: Account) -> None:
    assert client.get("/committee").status_code == 303
    assert login(client, app, "13600000001", PASSWORD).status_code == 303
    response = client.get("/committee")
    assert response.status_code == 403
    assert "业委会经办人" in response.text
    assert client.post("/committee/change", data={
        "csrf_token": csrf_from(client.get("/password/change").text)}).status_code == 403


def change_form(client: FlaskClient, **changes: str) -> dict[str, str]:
    csrf = csrf_from(client.get("/committee/change").text)
    data = {"name": "和谐花园业委会筹备组", "attribute": "provisional", "term_start": "",
            "term_end": "", "csrf_token": csrf}
    data.update(changes)
    return data


def test_T04_change_is_an_application_with_the_changed_fields(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    org = approved_committee(client, app, centre)
    handler_login(client, app)
    page = client.get("/committee/change")
    assert 'value="和谐花园业委会筹备组"' in page.text and "申请变更" in page.text
    response = client.post("/committee/change", data=change_form(client))
    assert response.status_code == 400
    assert svc.MSG_NO_CHANGE in response.text
    response = client.post("/committee/change", data=change_form(
        client, name="和谐花园业主委员会", attribute="formal", term_start="2025-01-01",
        term_end="2030-01-01"))
    assert response.status_code == 303, response.text
    db.session.rollback()
    change = db.session.scalars(sa.select(Application).where(
        Application.kind == "committee_change")).one()
    assert change.data == {"name": "和谐花园业主委员会", "attribute": "formal",
                           "term_start": "2025-01-01", "term_end": "2030-01-01"}
    assert change.organisation_id == org.id and change.status == "pending"
    assert change.applicant_account_id is not None and change.district == DISTRICT
    # One open change at a time.
    response = client.post("/committee/change", data=change_form(client, name="别的名称"))
    assert response.status_code == 400 and svc.MSG_CHANGE_OPEN in response.text
    # Nothing changes before approval; approval applies exactly the changed fields.
    assert committee_of(change.id).name == "和谐花园业委会筹备组"
    approve(change.id, centre)
    page = client.get("/committee")
    facts = Page(page.text)
    assert facts.by_id("committee-name")["text"] == "和谐花园业主委员会"
    assert facts.by_id("committee-attribute")["text"] == "正式"
    assert facts.by_id("committee-term")["text"] == "2025-01-01 至 2030-01-01"
    # Then only the term end.
    response = client.post("/committee/change", data=change_form(
        client, name="和谐花园业主委员会", attribute="formal", term_start="2025-01-01",
        term_end="2031-01-01"))
    assert response.status_code == 303
    db.session.rollback()
    last = db.session.scalars(sa.select(Application).order_by(Application.id.desc())).first()
    assert last is not None and last.data == {"term_end": "2031-01-01"}


def test_T04_returned_change_is_corrected_in_the_console(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    approved_committee(client, app, centre)
    handler_login(client, app)
    client.post("/committee/change", data=change_form(client, name="和谐花园业委"))
    db.session.rollback()
    change = db.session.scalars(sa.select(Application).where(
        Application.kind == "committee_change")).one()
    send_back(change.id, centre, "名称应为全称")
    page = client.get("/committee")
    assert "名称应为全称" in page.text and "修改后重新提交" in page.text
    url = f"/committee/applications/{change.id}/resubmit"
    form = client.get(url)
    assert form.status_code == 200 and 'value="和谐花园业委"' in form.text
    assert "名称应为全称" in form.text
    csrf = csrf_from(form.text)
    response = client.post(url, data={"name": "和谐花园业主委员会", "attribute": "provisional",
                                      "csrf_token": csrf})
    assert response.status_code == 303, response.text
    db.session.rollback()
    change = db.session.get(Application, change.id)
    assert change is not None and change.status == "pending"
    assert change.data == {"name": "和谐花园业主委员会"}
    again = client.post(url, data={"name": "和谐花园业主委员会2", "attribute": "provisional",
                                   "csrf_token": csrf})
    assert again.status_code == 400  # only a returned application can be resubmitted


# --- associations (T08) -------------------------------------------------------------------

ENTERPRISE_USCC = "91310115MA1FL0D34W"
OTHER_USCC = "91350100M000100Y43"


def association(client: FlaskClient, uscc: str, target: str | None = None,
                path: str = "/committee/association") -> Any:
    csrf = csrf_from(client.get(path).text)
    data = {"csrf_token": csrf, "uscc": uscc, "step": "1"}
    if target is not None:
        data.update(step="2", target=target)
    return client.post(path, data=data)


def office(name: str, parent: Organisation, status: str = "active") -> Organisation:
    org = Organisation(type="office", name=name, parent_id=parent.id, district=DISTRICT,
                       status=status)
    db.session.add(org)
    db.session.commit()
    return org


@pytest.mark.parametrize("choose", ["enterprise", "office"])
def test_T08_association_with_the_enterprise_or_one_of_its_offices(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account,
        choose: str) -> None:
    org = approved_committee(client, app, centre)
    enterprise = make_enterprise(ENTERPRISE_USCC, "演示物业服务有限公司")
    managed = office("和谐花园管理处", enterprise)
    office("已撤销管理处", enterprise, status="disabled")
    handler_login(client, app)
    step1 = association(client, ENTERPRISE_USCC.lower())
    assert step1.status_code == 200
    assert Page(step1.text).by_id("enterprise-name")["text"] == "演示物业服务有限公司"
    assert "企业本部" in step1.text and "和谐花园管理处" in step1.text
    assert "已撤销管理处" not in step1.text
    target = enterprise if choose == "enterprise" else managed
    response = association(client, ENTERPRISE_USCC, str(target.id))
    assert response.status_code == 303, response.text
    db.session.rollback()
    application = db.session.scalars(sa.select(Application).where(
        Application.kind == "association")).one()
    assert application.data == {"area_id": area.id, "target_id": target.id}
    assert application.organisation_id == org.id and application.district == DISTRICT
    again = association(client, ENTERPRISE_USCC, str(target.id))
    assert again.status_code == 400 and svc.MSG_ASSOCIATION_OPEN in again.text
    approve(application.id, centre)
    link = db.session.scalars(sa.select(AreaLink).where(AreaLink.role == "manager")).one()
    assert (link.area_id, link.organisation_id) == (area.id, target.id)
    page = client.get("/committee")
    assert Page(page.text).by_id("committee-managers")["text"] == target.name


def test_T08_wrong_targets_are_refused(app: Flask, client: FlaskClient, area: PropertyArea,
                                       centre: Account) -> None:
    org = approved_committee(client, app, centre)
    enterprise = make_enterprise(ENTERPRISE_USCC, "演示物业服务有限公司")
    other = make_enterprise(OTHER_USCC, "别家物业有限公司", ukey=False)
    foreign_office = office("别家管理处", other)
    closed = office("已撤销管理处", enterprise, status="disabled")
    pending = make_enterprise("91440101MA5CJQ4N59", "待审核物业有限公司", ukey=False)
    pending.status = "pending"
    db.session.commit()
    handler_login(client, app)
    before = counts()
    for target in (foreign_office, closed, other, org, centre.identities[0].organisation):
        response = association(client, ENTERPRISE_USCC, str(target.id))
        assert response.status_code == 400
        assert field_error(response.text, "target") == svc.MSG_TARGET_INVALID
    for uscc, message in (("91440101MA5CJQ4N59", svc.MSG_ENTERPRISE_UNKNOWN),
                          ("91350200MA2YJ1XR9G", svc.MSG_ENTERPRISE_UNKNOWN),
                          ("91310115MA1H8R7C6D", "统一社会信用代码格式不正确")):
        response = association(client, uscc)
        assert response.status_code == 400
        assert field_error(response.text, "uscc") == message
    response = association(client, ENTERPRISE_USCC, "")
    assert field_error(response.text, "target") == svc.MSG_TARGET
    assert counts() == before


def test_T08_returned_association_is_resubmitted(app: Flask, client: FlaskClient,
                                                 area: PropertyArea, centre: Account) -> None:
    approved_committee(client, app, centre)
    enterprise = make_enterprise(ENTERPRISE_USCC, "演示物业服务有限公司")
    managed = office("和谐花园管理处", enterprise)
    handler_login(client, app)
    association(client, ENTERPRISE_USCC, str(enterprise.id))
    db.session.rollback()
    application = db.session.scalars(sa.select(Application).where(
        Application.kind == "association")).one()
    send_back(application.id, centre, "应关联到管理处")
    url = f"/committee/applications/{application.id}/resubmit"
    page = client.get(url)
    assert page.status_code == 200 and "应关联到管理处" in page.text
    assert ENTERPRISE_USCC in page.text
    response = association(client, ENTERPRISE_USCC, str(managed.id), path=url)
    assert response.status_code == 303, response.text
    db.session.rollback()
    application = db.session.get(Application, application.id)
    assert application is not None and application.status == "pending"
    assert application.data["target_id"] == managed.id


# --- isolation between committees ----------------------------------------------------------------

def test_T04_another_committees_data_is_unreachable(app: Flask, client: FlaskClient,
                                                    area: PropertyArea, centre: Account) -> None:
    mine = approved_committee(client, app, centre)
    make_area("幸福小区", DISTRICT)
    other_client = app.test_client()
    theirs_app = register(other_client, app, name="幸福小区业委会", area_name="幸福小区",
                          handler1_phone="13800000011", handler2_phone="13800000012")
    approve(theirs_app.id, centre)
    theirs = committee_of(theirs_app.id)
    handler_login(other_client, app, "13800000011")
    other_client.post("/committee/change",
                      data=change_form(other_client, name="幸福小区业主委员会"))
    db.session.rollback()
    their_change = db.session.scalars(sa.select(Application).where(
        Application.kind == "committee_change")).one()
    send_back(their_change.id, centre, "请补充材料")

    handler_login(client, app)
    assert client.get(f"/committee?org={theirs.id}").status_code == 404
    assert client.get(f"/committee?org={mine.id}").status_code == 200
    url = f"/committee/applications/{their_change.id}/resubmit"
    assert client.get(url).status_code == 404
    csrf = csrf_from(client.get("/committee/change").text)
    assert client.post(url, data={"name": "篡改", "attribute": "provisional",
                                  "csrf_token": csrf}).status_code == 404
    assert client.get(f"/committee/applications/{theirs_app.id}/resubmit").status_code == 404
    page = client.get("/committee")
    assert "幸福小区" not in page.text and "请补充材料" not in page.text
    db.session.rollback()
    assert committee_of(theirs_app.id).name == "幸福小区业委会"


def test_T06_a_handler_of_two_committees_switches_between_them(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    first = approved_committee(client, app, centre)
    make_area("幸福小区", DISTRICT)
    second = approved_committee(app.test_client(), app, centre, name="幸福小区业委会",
                                area_name="幸福小区", handler1_phone="13800000011",
                                handler2_phone=P1)
    handler_login(client, app)
    assert Page(client.get("/committee").text).by_id("committee-name")["text"] == first.name
    page = client.get(f"/committee?org={second.id}")
    assert Page(page.text).by_id("committee-name")["text"] == "幸福小区业委会"
    client.post("/committee/change", data=change_form(client, name="幸福小区业主委员会"))
    db.session.rollback()
    change = db.session.scalars(sa.select(Application).where(
        Application.kind == "committee_change")).one()
    assert change.organisation_id == second.id


def test_T06_a_disabled_handler_identity_loses_the_console(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    approved_committee(client, app, centre)
    handler_login(client, app)
    identity = db.session.scalars(sa.select(Identity).where(
        Identity.role == "committee_handler")).first()
    assert identity is not None
    for mine in db.session.scalars(sa.select(Identity).where(
            Identity.account_id == identity.account_id)):
        mine.status = "disabled"
    db.session.commit()
    assert client.get("/committee").status_code == 403


# --- bad input: nothing written -----------------------------------------------------------

HOSTILE = {
    "html": "<script>alert(1)</script>",
    "sql": "' OR '1'='1",
    "sql-drop": "1\" UNION SELECT password_hash FROM account; DROP TABLE token; --",
    "fullwidth": "１３８００００００１２",
    "blank": "   ",
    "control": "和谐\x01花园",
    "overlong": "和" * 101,
    "odd-unicode": "\u202e\u200b和谐花园",
}
REGISTRATION_FIELDS = ["name", "district", "area_name", "attribute", "term_start", "term_end",
                       "handler1_name", "handler1_phone", "handler2_name", "handler2_phone",
                       "handler3_name", "handler3_phone", "sms_code"]
EXTRA = {
    "term_start": {"invalid-date": "2025-02-30", "slashes": "2025/01/01",
                   "fullwidth-date": "２０２５-０１-０１", "year-1": "0001-01-01"},
    "term_end": {"invalid-date": "2025-02-30", "huge": "9" * 400},
    "district": {"unknown": "310000"},
    "attribute": {"other": "temporary"},
    "handler1_name": {"digits": "王建国1"},
    "handler1_phone": {"short": "1380000000", "landline": "021-58881234"},
    "sms_code": {"fullwidth-code": "１２３４５６", "letters": "abcdef"},
    "name": {"digits-only": "１２３４５"},
}
CASES = [(field, label, value) for field in REGISTRATION_FIELDS
         for label, value in [*HOSTILE.items(), *EXTRA.get(field, {}).items()]
         # An optional 经办人3 left blank is a legitimate registration.
         if not (field.startswith("handler3") and label == "blank")]


@pytest.mark.parametrize(("field", "label", "value"), CASES,
                         ids=[f"{f}-{label}" for f, label, _ in CASES])
def test_T04_bad_input_in_every_field_writes_nothing(app: Flask, client: FlaskClient,
                                                     area: PropertyArea, field: str, label: str,
                                                     value: str) -> None:
    assert send_code(client, P1).status_code == 200
    data = base(attribute="formal", term_start="2024-01-01", term_end="2029-01-01",
                handler3_name="张三", handler3_phone=P3)
    data["sms_code"] = last_code(app, P1)
    data[field] = value
    csrf = csrf_from(client.get("/register/committee").text)
    before = counts()
    response = client.post("/register/committee", data={**data, "csrf_token": csrf})
    assert response.status_code == 400, (field, label, response.status_code)
    assert "<script>alert(1)" not in response.text
    page = Page(response.text)
    errors = [e for e in page.elements if e["attrs"].get("class") in
              ("field-error", "error-message") and e["text"].strip()]
    assert errors, "no message shown"
    assert counts() == before
    # The valid request still goes through afterwards (the code was not used up), except for
    # the control character, which is refused before any of this and consumes nothing either.
    data.update(base(attribute="formal", term_start="2024-01-01", term_end="2029-01-01"),
                sms_code=last_code(app, P1))
    ok = client.post("/register/committee", data={**data, "csrf_token": csrf})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("field", "value"), [
    ("name", "<b>x</b>"), ("name", "' OR 1=1 --"), ("name", ""), ("name", "名" * 101),
    ("attribute", "temporary"), ("term_start", "2025-02-30"), ("term_end", "２０３０-０１-０１"),
    ("term_start", "2031-01-01"),
])
def test_T04_bad_change_input_writes_nothing(app: Flask, client: FlaskClient,
                                             area: PropertyArea, centre: Account, field: str,
                                             value: str) -> None:
    approved_committee(client, app, centre)
    handler_login(client, app)
    data = change_form(client, attribute="formal", term_start="2025-01-01",
                       term_end="2030-01-01")
    data[field] = value
    before = counts()
    response = client.post("/committee/change", data=data)
    assert response.status_code == 400
    assert counts() == before


@pytest.mark.parametrize("value", [
    "<script>alert(1)</script>", "' OR '1'='1", "９１３１０１１５ＭＡ１ＦＬ０Ｄ３４Ｗ", "",
    "9" * 400, "91310115MA1FL0D34", "-1"])
@pytest.mark.parametrize("field", ["uscc", "target"])
def test_T08_bad_association_input_writes_nothing(app: Flask, client: FlaskClient,
                                                  area: PropertyArea, centre: Account,
                                                  field: str, value: str) -> None:
    approved_committee(client, app, centre)
    enterprise = make_enterprise(ENTERPRISE_USCC, "演示物业服务有限公司")
    handler_login(client, app)
    before = counts()
    data = {"uscc": ENTERPRISE_USCC, "target": str(enterprise.id)}
    data[field] = value
    response = association(client, data["uscc"], data["target"])
    assert response.status_code == 400
    assert "<script>alert(1)" not in response.text
    assert counts() == before
