"""「用户名查询」 (T05): by phone + SMS code a person sees their own accounts, identities and
applications — nothing about anybody else — and corrects and resubmits a returned committee
registration (T04)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account
from idp.extensions import db
from idp.orgs.models import Application, PropertyArea
from idp.orgs.review import MSG_NOT_RETURNED
from idp.registration import committees as svc
from idp.store import get_store
from tests.conftest import csrf_from, last_code, sms_messages
from tests.factories import make_account, make_area
from tests.unit.auth.helpers import Page, field_error, other_code
from tests.unit.registration.test_committees import (
    AREA,
    DISTRICT,
    P1,
    P2,
    approve,
    base,
    committee_of,
    counts,
    post_registration,
    register,
    send_back,
)
from tests.unit.registration.test_committees import area as area  # the fixtures
from tests.unit.registration.test_committees import centre as centre

OTHER = "13900000001"  # somebody else, with an account and an application of their own


def send_lookup_code(client: FlaskClient, phone: str) -> Any:
    csrf = csrf_from(client.get("/lookup").text)
    return client.post("/lookup/sms", data={"phone": phone, "csrf_token": csrf},
                       headers={"Accept": "application/json"})


def look_up(client: FlaskClient, app: Flask, phone: str, code: str | None = None) -> Any:
    """The whole look-up; returns the result page (or the refusal)."""
    if code is None:
        get_store().delete(f"sms:cool:lookup:{phone}")  # the test skips the resend interval
        assert send_lookup_code(client, phone).status_code == 200
        code = last_code(app, phone)
    csrf = csrf_from(client.get("/lookup").text)
    response = client.post("/lookup", data={"phone": phone, "sms_code": code,
                                            "csrf_token": csrf})
    if response.status_code != 303:
        return response
    assert response.location.endswith("/lookup/result")
    return client.get(response.location)


def other_persons_things(app: Flask) -> None:
    """An operator account of an enterprise and a committee registration of another phone."""
    make_account(OTHER, name="赵其他", role="operator")
    make_area("幸福小区", DISTRICT)
    register(app.test_client(), app, name="幸福小区业委会", area_name="幸福小区",
             handler1_name="钱某某", handler1_phone="13900000002",
             handler2_name="孙某某", handler2_phone=OTHER)


def test_T05_lookup_page(client: FlaskClient) -> None:
    page = client.get("/lookup")
    assert page.status_code == 200
    for text in ("用户名查询", "手机号码", "手机验证码", "获取验证码", "查询"):
        assert text in page.text


def test_T05_a_person_sees_their_own_accounts_identities_and_applications(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    application = register(client, app)
    approve(application.id, centre)
    other_persons_things(app)
    page = look_up(app.test_client(), app, P1)
    assert page.status_code == 200
    found = Page(page.text)
    account = found.by_id("lookup-account")["text"]
    assert P1 in account and "王建国" in account and "正常使用" in account
    assert "首次登录须修改密码" in account
    identities = found.by_id("lookup-identities")["text"]
    assert "和谐花园业委会筹备组" in identities and "业委会经办人" in identities
    assert "上海市商品住房维修资金管理系统" in identities
    applications = found.by_id("lookup-applications")["text"]
    assert "业委会注册" in applications and "已通过" in applications
    # Nothing of anybody else: not their phones, names, organisations or applications.
    for foreign in (OTHER, "13900000002", P2, "赵其他", "钱某某", "幸福小区",
                    "上海申大物业有限公司", "李建党"):
        assert foreign not in page.text, foreign


def test_T05_other_phones_see_only_their_own(app: Flask, client: FlaskClient,
                                             area: PropertyArea) -> None:
    register(client, app)
    other_persons_things(app)
    page = look_up(app.test_client(), app, OTHER)
    assert "赵其他" in page.text and "上海申大物业有限公司" in page.text
    # OTHER is 经办人2 of the other registration, not its applicant: applications are the
    # applicant's; and never the first registration's.
    assert "幸福小区业委会" not in page.text and "和谐花园" not in page.text
    assert P1 not in page.text


def test_T05_a_phone_without_anything_is_told_so(app: Flask, client: FlaskClient,
                                                 area: PropertyArea) -> None:
    register(client, app)
    page = look_up(client, app, "13700000077")
    assert page.status_code == 200
    found = Page(page.text)
    assert found.by_id("lookup-none")["text"] == "未查询到该手机号码的账号。"
    assert "暂无数据" in found.by_id("lookup-applications")["text"]
    assert "和谐花园" not in page.text and P1 not in page.text


def test_T05_a_pending_registration_shows_before_any_account(
        app: Flask, client: FlaskClient, area: PropertyArea) -> None:
    register(client, app)
    page = look_up(app.test_client(), app, P1)
    assert Page(page.text).by_id("lookup-none")
    assert "待审核" in Page(page.text).by_id("lookup-applications")["text"]


def test_T05_the_sms_step_answers_alike_for_every_phone(app: Flask, client: FlaskClient) -> None:
    make_account(OTHER)
    answers = [send_lookup_code(client, phone) for phone in (OTHER, "13700000077")]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json == answers[1].json
    csrf = csrf_from(client.get("/lookup").text)
    page = client.post("/lookup/sms", data={"phone": "13700000088", "csrf_token": csrf})
    assert page.status_code == 200 and "验证码已发送，请注意查收" in page.text
    assert 'value="13700000088"' in page.text


@pytest.mark.parametrize(("field", "value"), [
    ("sms_code", ""), ("sms_code", "wrong"), ("sms_code", "１２３４５６"), ("sms_code", "12345"),
    ("sms_code", "' OR '1'='1"), ("phone", ""), ("phone", "１３９００００００01"),
    ("phone", "<script>alert(1)</script>"), ("phone", "13900000001' --"), ("phone", "9" * 400),
    ("phone", "1390000000\x01"), ("phone", "13700000077"),
])
def test_T05_bad_input_shows_nothing_and_writes_nothing(app: Flask, client: FlaskClient,
                                                        field: str, value: str) -> None:
    make_account(OTHER)
    assert send_lookup_code(client, OTHER).status_code == 200
    code = last_code(app, OTHER)
    data = {"phone": OTHER, "sms_code": code}
    data[field] = other_code(code) if value == "wrong" else value
    before = counts()
    csrf = csrf_from(client.get("/lookup").text)
    response = client.post("/lookup", data={**data, "csrf_token": csrf})
    assert response.status_code == 400
    assert "<script>alert(1)" not in response.text and "赵" not in response.text
    assert counts() == before
    assert client.get("/lookup/result").status_code == 303  # no proof in the session


def test_T05_the_proof_expires_after_ten_minutes(app: Flask, client: FlaskClient) -> None:
    make_account(OTHER)
    assert look_up(client, app, OTHER).status_code == 200
    with client.session_transaction() as session:
        proof = dict(session[svc.LOOKUP_KEY])
        session[svc.LOOKUP_KEY] = {**proof, "at": proof["at"] - svc.LOOKUP_TTL - 1}
    assert client.get("/lookup/result").status_code == 303


def test_T05_lookup_gives_a_new_session_id(app: Flask, client: FlaskClient) -> None:
    """The proof of a phone must not be inherited by a session id somebody planted."""
    name = app.config["IDP"].session_cookie_name
    client.get("/lookup")
    before = client.get_cookie(name)
    look_up(client, app, OTHER)
    after = client.get_cookie(name)
    assert before is not None and after is not None and before.value != after.value


# --- returned registrations: correct and resubmit (T04) ------------------------------------------

def returned(app: Flask, client: FlaskClient, centre: Account) -> Application:
    application = register(client, app)
    send_back(application.id, centre, "物业区域填写有误，应为和谐花园二期")
    db.session.rollback()
    reloaded = db.session.get(Application, application.id)
    assert reloaded is not None
    return reloaded


def test_T04_returned_registration_is_resubmitted_via_lookup(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    application = returned(app, client, centre)
    assert committee_of(application.id).status == "returned"
    second = make_area("和谐花园二期", "310104")
    browser = app.test_client()
    page = look_up(browser, app, P1)
    assert "物业区域填写有误，应为和谐花园二期" in page.text and "已退回" in page.text
    url = f"/register/committee/{application.id}/resubmit"
    assert url in page.text
    form = browser.get(url)
    assert form.status_code == 200
    assert "物业区域填写有误" in form.text and f'value="{AREA}"' in form.text
    assert 'value="李建党"' in form.text and 'name="sms_code"' not in form.text
    assert 'name="handler1_phone"' not in form.text
    csrf = csrf_from(form.text)
    data = {**base(area_name="和谐花园二期", district="310104", handler1_name="王建国",
                   handler1_phone="13700000099"),  # 经办人1 stays the proven applicant
            "csrf_token": csrf}
    response = browser.post(url, data=data)
    assert response.status_code == 200, response.text
    assert "重新提交" in response.text
    db.session.rollback()
    application = db.session.get(Application, application.id)
    assert application is not None and application.status == "pending"
    assert application.district == "310104" and application.data["area_id"] == second.id
    assert application.data["handlers"][0] == {"name": "王建国", "phone": P1}
    org = committee_of(application.id)
    assert (org.status, org.district) == ("pending", "310104")
    # Pending again: not resubmittable.
    again = browser.post(url, data=data)
    assert again.status_code == 400 and MSG_NOT_RETURNED in again.text
    approve(application.id, centre)
    assert committee_of(application.id).status == "active"


def test_T04_resubmission_needs_the_applicants_lookup(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    application = returned(app, client, centre)
    url = f"/register/committee/{application.id}/resubmit"
    stranger = app.test_client()
    assert stranger.get(url).status_code == 404
    assert look_up(stranger, app, P2).status_code == 200  # 经办人2 is not the applicant
    assert stranger.get(url).status_code == 404
    csrf = csrf_from(stranger.get("/lookup").text)
    assert stranger.post(url, data={**base(), "csrf_token": csrf}).status_code == 404
    assert stranger.get("/register/committee/999999/resubmit").status_code == 404
    owner = app.test_client()
    look_up(owner, app, P1)
    assert owner.get(url).status_code == 200
    with owner.session_transaction() as session:
        proof = dict(session[svc.LOOKUP_KEY])
        session[svc.LOOKUP_KEY] = {**proof, "at": proof["at"] - svc.LOOKUP_TTL - 1}
    assert owner.get(url).status_code == 404


@pytest.mark.parametrize(("field", "value", "message"), [
    ("area_name", "不存在的小区", "该物业区域在系统中不存在，无法注册。"),
    ("handler2_phone", P1, svc.MSG_HANDLER_DUPLICATE),
    ("name", "<script>alert(1)</script>", svc.MSG_NAME),
    ("term_start", "2025-02-30", svc.MSG_DATE),
])
def test_T04_bad_resubmission_writes_nothing(app: Flask, client: FlaskClient,
                                             area: PropertyArea, centre: Account, field: str,
                                             value: str, message: str) -> None:
    application = returned(app, client, centre)
    browser = app.test_client()
    look_up(browser, app, P1)
    url = f"/register/committee/{application.id}/resubmit"
    csrf = csrf_from(browser.get(url).text)
    data = base(attribute="formal", term_start="2024-01-01", term_end="2029-01-01")
    data[field] = value
    before = counts()
    response = browser.post(url, data={**data, "csrf_token": csrf})
    assert response.status_code == 400
    assert field_error(response.text, field) == message
    assert "<script>alert(1)" not in response.text
    assert counts() == before
    db.session.rollback()
    reloaded = db.session.get(Application, application.id)
    assert reloaded is not None and reloaded.status == "returned"


def test_T04_another_registration_may_not_take_a_returned_ones_area(
        app: Flask, client: FlaskClient, area: PropertyArea, centre: Account) -> None:
    """A returned registration still holds its area (it may be corrected and resubmitted)."""
    returned(app, client, centre)
    other = app.test_client()
    response = post_registration(other, app, base(handler1_phone="13800000031",
                                                  handler2_phone="13800000032"))
    assert response.status_code == 400
    assert field_error(response.text, "area_name") == svc.MSG_AREA_TAKEN
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Application)) == 1


def test_T05_a_committee_registration_code_does_not_open_the_look_up(
        app: Flask, client: FlaskClient) -> None:
    """Each page has its own SMS purpose: a code sent by 「业委会注册」 is no proof for
    「用户名查询」 (and the other way round)."""
    phone = "13700000009"
    csrf = csrf_from(client.get("/register/committee").text)
    sent = client.post("/register/committee/sms", data={"handler1_phone": phone,
                                                         "csrf_token": csrf},
                       headers={"Accept": "application/json"})
    assert sent.status_code == 200
    code = last_code(app, phone)
    assert "业委会注册验证码" in sms_messages(app, phone)[-1]["text"]
    csrf = csrf_from(client.get("/lookup").text)
    response = client.post("/lookup", data={"phone": phone, "sms_code": code,
                                            "csrf_token": csrf})
    assert response.status_code == 400
    with client.session_transaction() as session:
        assert "lookup_phone" not in session
