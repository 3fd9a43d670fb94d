"""The district centre's console (T02, T04, T07, T08): review queues scoped to the reviewer's
districts, approve / return with a reason, property areas; centre staff only, everything
audited, bad input changes nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from idp import audit
from idp.accounts.models import Account, Identity
from idp.audit import AuditEvent
from idp.extensions import db
from idp.gateways.sms import SmsGatewayError
from idp.orgs.areas import MSG_AREA_NAME, MSG_AREA_NAME_TAKEN, MSG_MERGE_COMMITTEES
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.orgs.review import MSG_ALREADY_DECIDED, MSG_REASON, open_application, resubmit
from idp.validators import MSG_CHOICE
from tests.conftest import csrf_from, sms_messages, table_counts
from tests.factories import PASSWORD, login, make_account, make_area, make_centre

EXEMPT = ("audit_event", "store_entry")
CENTRE_PHONE = "13600000001"
HANDLERS = [{"name": "张三", "phone": "13800000011"}, {"name": "李四", "phone": "13800000012"}]
USCCS = ["91110000600037341L", "91350100M000100Y43", "91440101MA5CJQ4N59",
         "91350200MA2YJ1XR9G", "91310115MA1FL0D34W"]


# --- helpers --------------------------------------------------------------------------------

def counts() -> dict[str, int]:
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


def events(name: str, result: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == name)
    if result:
        query = query.where(AuditEvent.result == result)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def as_centre(client: FlaskClient, app: Flask, district: str = "310115",
              phone: str = CENTRE_PHONE) -> Account:
    account = make_centre(phone, district)
    response = login(client, app, phone, PASSWORD)
    assert response.status_code == 303, response.text
    return account


def csrf(client: FlaskClient, url: str = "/centre/areas") -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def enterprise_application(district: str = "310115", n: int = 0,
                           name: str = "浦东申大物业有限公司") -> Application:
    """An enterprise registration waiting for review, as registration leaves it (T02)."""
    uscc = USCCS[n % len(USCCS)] if n < len(USCCS) else None
    org = Organisation(type="enterprise", name=name, uscc=uscc,
                       org_code=uscc[8:17] if uscc else None, status="pending",
                       district=district, profile={"contact_name": "王五",
                                                   "legal_id_type": "111"})
    db.session.add(org)
    db.session.flush()
    account = Account(kind="ukey", name=name, organisation_id=org.id, status="pending")
    db.session.add(account)
    db.session.flush()
    db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                            role="enterprise_admin", platform="supervision", status="pending"))
    application = open_application("enterprise_registration", org, district,
                                   {"platforms": ["supervision"], "name": name, "uscc": uscc},
                                   applicant_account_id=account.id)
    db.session.commit()
    return application


def committee_application(area: PropertyArea, handlers: list[dict[str, str]] | None = None,
                          ) -> Application:
    org = Organisation(type="committee", name="和谐花园业主委员会筹备组", status="pending",
                       district=area.district)
    db.session.add(org)
    db.session.flush()
    application = open_application("committee_registration", org, area.district, {
        "name": "和谐花园业主委员会筹备组", "area_id": area.id, "attribute": "provisional",
        "term_start": "2024-01-01", "term_end": "2026-12-31",
        "handlers": handlers if handlers is not None else HANDLERS,
        "platforms": ["repair_fund"]}, applicant_phone=HANDLERS[0]["phone"])
    db.session.commit()
    return application


def active_org(type_: str, name: str, district: str = "310115") -> Organisation:
    org = Organisation(type=type_, name=name, status="active", district=district)
    db.session.add(org)
    db.session.commit()
    return org


def decide(client: FlaskClient, application_id: int, decision: str,
           reason: str | None = None) -> Any:
    token = csrf(client, f"/centre/applications/{application_id}")
    data = {"csrf_token": token}
    if reason is not None:
        data["reason"] = reason
    return client.post(f"/centre/applications/{application_id}/{decision}", data=data)


def reload(row: Any) -> Any:
    db.session.expire_all()
    return db.session.get(type(row), row.id)


# --- who gets in ----------------------------------------------------------------------------

GET_ROUTES = ["/centre", "/centre?queue=committee", "/centre/applications/1", "/centre/areas"]
POST_ROUTES = ["/centre/applications/1/approve", "/centre/applications/1/return",
               "/centre/areas", "/centre/areas/1/rename", "/centre/areas/merge"]


@pytest.mark.parametrize("url", GET_ROUTES)
def test_t02_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 303 and response.location.endswith("/login")


@pytest.mark.parametrize("url", POST_ROUTES)
def test_t02_anonymous_post_is_sent_to_login_and_writes_nothing(app, client, url):
    token = csrf_from(client.get("/login").text)
    before = counts()
    response = client.post(url, data={"csrf_token": token, "reason": "x", "name": "x"})
    assert response.status_code == 303 and response.location.endswith("/login")
    assert counts() == before


@pytest.mark.parametrize("url", GET_ROUTES + POST_ROUTES)
def test_t02_a_person_without_a_centre_role_gets_403(app, client, url):
    enterprise_application()
    make_account("13912345678")
    assert login(client, app, "13912345678").status_code == 303
    token = csrf_from(client.get("/password/change").text)
    before = counts()
    if url in POST_ROUTES:
        response = client.post(url, data={"csrf_token": token, "reason": "x"})
    else:
        response = client.get(url)
    assert response.status_code == 403
    assert '<p class="error-message">没有访问权限。</p>' in response.text
    assert counts() == before
    assert len(events("centre.denied", "failure")) == 1


def test_t02_centre_staff_with_a_pending_password_change_change_it_first(app, client):
    account = make_centre(CENTRE_PHONE)
    account.must_change_password = True
    db.session.commit()
    assert login(client, app, CENTRE_PHONE, PASSWORD).status_code == 303
    response = client.get("/centre")
    assert response.status_code == 303 and response.location.endswith("/password/change")


def test_t02_a_disabled_centre_identity_no_longer_gets_in(app, client):
    account = as_centre(client, app)
    account.identities[0].status = "disabled"
    db.session.commit()
    assert client.get("/centre").status_code == 403


# --- queues ---------------------------------------------------------------------------------

def test_t02_queues_show_counts_and_pending_applications_of_the_district(app, client):
    as_centre(client, app, "310115")
    mine = enterprise_application("310115", 0, "浦东申大物业有限公司")
    enterprise_application("310104", 1, "徐汇物业有限公司")
    committee_application(make_area("和谐花园"))
    decided = enterprise_application("310115", 2, "已处理物业")
    decided.status = "approved"
    db.session.commit()

    page = client.get("/centre")
    assert page.status_code == 200
    for label in ("物管企业注册信息审核", "业委会审核", "关联申请审核"):
        assert label in page.text
    assert "物管企业注册信息审核<span class=\"count\">（1）</span>" in page.text
    assert "业委会审核<span class=\"count\">（1）</span>" in page.text
    assert "关联申请审核<span class=\"count\">（0）</span>" in page.text
    for column in ("申请类型", "单位名称", "所在区", "提交时间", "状态"):
        assert f"<th>{column}</th>" in page.text
    assert "浦东申大物业有限公司" in page.text and "浦东新区" in page.text
    assert "待审核" in page.text and f"/centre/applications/{mine.id}" in page.text
    assert "徐汇物业有限公司" not in page.text  # another district
    assert "已处理物业" not in page.text  # not pending

    committee = client.get("/centre?queue=committee")
    assert "和谐花园业主委员会筹备组" in committee.text and "业委会注册" in committee.text
    empty = client.get("/centre?queue=association")
    assert "暂无数据" in empty.text


def test_t02_district_isolation_a_310104_reviewer_sees_nothing_of_310115(app, client):
    """T02: another district's application is not listed and answers 404 (detail and both
    decisions), exactly like an unknown id; nothing changes."""
    other = enterprise_application("310115", 0)
    as_centre(client, app, "310104")
    assert "暂无数据" in client.get("/centre").text
    assert "浦东申大物业" not in client.get("/centre").text
    assert client.get(f"/centre/applications/{other.id}").status_code == 404
    assert client.get(f"/centre/applications/{other.id + 1000}").status_code == 404
    before = counts()
    for decision in ("approve", "return"):
        response = client.post(f"/centre/applications/{other.id}/{decision}",
                               data={"csrf_token": csrf(client), "reason": "资料不全"})
        assert response.status_code == 404
    assert counts() == before
    assert reload(other).status == "pending"
    assert events("review.approve") == [] and events("review.return") == []


def test_t02_the_city_centre_sees_every_district(app, client):
    enterprise_application("310115", 0, "浦东申大物业有限公司")
    xuhui = enterprise_application("310104", 1, "徐汇物业有限公司")
    as_centre(client, app, "310000")
    page = client.get("/centre")
    assert "浦东申大物业有限公司" in page.text and "徐汇物业有限公司" in page.text
    assert client.get(f"/centre/applications/{xuhui.id}").status_code == 200


def test_t02_queue_pages_by_20(app, client):
    as_centre(client, app)
    for i in range(21):
        enterprise_application("310115", 99, f"物业公司{i:02d}")
    first = client.get("/centre")
    assert first.text.count("物业公司") == 20 and "第 1 / 2 页" in first.text
    assert re.search(r'href="/centre\?[^"]*page=2[^"]*">下一页</a>', first.text)
    second = client.get("/centre?page=2")
    assert ">上一页</a>" in second.text and ">下一页</a>" not in second.text
    assert second.text.count("物业公司") == 1 and "物业公司20" in second.text
    for raw in ("abc", "-1", "0", "9" * 400, "２"):
        response = client.get(f"/centre?page={raw}")
        assert response.status_code == 200 and "物业公司00" in response.text
    assert client.get("/centre?page=99").text.count("物业公司") == 1  # past the end: last page
    assert client.get("/centre?queue=<script>").status_code == 200


# --- T02: enterprise registration -----------------------------------------------------------

def test_t02_detail_shows_the_submitted_data_in_readable_labels(app, client):
    as_centre(client, app)
    application = enterprise_application("310115", 0)
    audit.record("application.submit", application="not-a-number")  # never breaks the trail
    db.session.commit()
    page = client.get(f"/centre/applications/{application.id}")
    assert page.status_code == 200
    for text in ("物管企业注册", "物业服务企业", "浦东申大物业有限公司", "91110000600037341L",
                 "浦东新区", "上海市物业监管平台及招投标系统", "企业联系人姓名", "王五",
                 "居民身份证", "提交申请", "通过", "退回原因"):
        assert text in page.text, text
    assert f'action="/centre/applications/{application.id}/approve"' in page.text
    assert f'action="/centre/applications/{application.id}/return"' in page.text


def test_t02_approve_makes_the_account_and_identities_usable(app, client):
    reviewer = as_centre(client, app)
    application = enterprise_application()
    response = decide(client, application.id, "approve")
    assert response.status_code == 303
    assert response.location.endswith("/centre?queue=enterprise&done=approved")
    application = reload(application)
    assert application.status == "approved" and application.decided_by == reviewer.id
    org = db.session.get(Organisation, application.organisation_id)
    ukey = db.session.scalar(sa.select(Account).where(Account.organisation_id == org.id))
    assert org.status == "active" and ukey.status == "active"
    assert [i.status for i in ukey.identities] == ["active"]
    [event] = events("review.approve")
    assert event.account_id == reviewer.id and event.detail["application"] == application.id
    assert "已通过该申请" in client.get(response.location).text


def test_t02_return_stores_the_reason_and_leaves_everything_unusable(app, client):
    reviewer = as_centre(client, app)
    application = enterprise_application()
    response = decide(client, application.id, "return", "  营业执照  扫描件不清晰 ")
    assert response.status_code == 303
    application = reload(application)
    assert (application.status, application.reason) == ("returned", "营业执照 扫描件不清晰")
    org = db.session.get(Organisation, application.organisation_id)
    ukey = db.session.scalar(sa.select(Account).where(Account.organisation_id == org.id))
    assert org.status == "returned" and ukey.status == "pending"
    assert [i.status for i in ukey.identities] == ["pending"]
    [event] = events("review.return")
    assert event.account_id == reviewer.id and event.detail["reason"] == "营业执照 扫描件不清晰"
    assert "暂无数据" in client.get("/centre").text  # out of the queue until resubmitted

    # The applicant corrects and resubmits: back in the queue, the history shows the return.
    resubmit(application, {**application.data, "name": "浦东申大物业服务有限公司"}, ukey.id)
    db.session.commit()
    assert "浦东申大物业有限公司" in client.get("/centre").text
    detail = client.get(f"/centre/applications/{application.id}").text
    assert "营业执照 扫描件不清晰" in detail and "修改后重新提交" in detail


@pytest.mark.parametrize("first,second", [("approve", "approve"), ("approve", "return"),
                                          ("return", "approve"), ("return", "return")])
def test_t02_a_decided_application_cannot_be_decided_again(app, client, first, second):
    as_centre(client, app)
    application = enterprise_application()
    token = csrf(client, f"/centre/applications/{application.id}")
    data = {"csrf_token": token, "reason": "资料不全"}
    assert client.post(f"/centre/applications/{application.id}/{first}",
                       data=data).status_code == 303
    state = reload(application).status
    before = counts()
    response = client.post(f"/centre/applications/{application.id}/{second}", data=data)
    assert response.status_code == 409
    assert MSG_ALREADY_DECIDED in response.text
    assert counts() == before and reload(application).status == state
    assert len(events(f"review.{second}", "failure")) == 1


def test_t02_a_simultaneous_conflict_on_approval_is_a_409_not_a_500(app, client, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    import idp.console.centre as centre

    as_centre(client, app)
    application = enterprise_application()
    token = csrf(client, f"/centre/applications/{application.id}")

    def racing(found: Application, reviewer: Account) -> None:
        raise IntegrityError("INSERT INTO account …", {}, Exception("duplicate key"))

    monkeypatch.setattr(centre, "approve", racing)
    before = counts()
    response = client.post(f"/centre/applications/{application.id}/approve",
                           data={"csrf_token": token})
    assert response.status_code == 409 and centre.MSG_CONFLICT in response.text
    assert counts() == before and reload(application).status == "pending"
    assert len(events("review.approve", "failure")) == 1


# --- T04: committee registration and change -------------------------------------------------

def test_t04_approving_a_committee_creates_personal_handler_accounts_and_sms(app, client):
    as_centre(client, app)
    area = make_area("和谐花园")
    application = committee_application(area)
    detail = client.get(f"/centre/applications/{application.id}").text
    for text in ("业委会注册", "和谐花园（浦东新区）", "张三", "13800000011", "李四",
                 "临时（筹备组）", "2026-12-31", "上海市商品住房维修资金管理系统"):
        assert text in detail, text

    response = decide(client, application.id, "approve")
    assert response.status_code == 303
    assert response.location.endswith("/centre?queue=committee&done=approved")
    org = db.session.get(Organisation, reload(application).organisation_id)
    assert org.status == "active" and org.profile["attribute"] == "provisional"
    assert db.session.scalar(sa.select(AreaLink).where(
        AreaLink.organisation_id == org.id)).area_id == area.id
    passwords = {}
    for handler in HANDLERS:
        person = db.session.scalar(sa.select(Account).where(Account.phone == handler["phone"]))
        assert person.kind == "person" and person.name == handler["name"]
        assert person.must_change_password and person.status == "active"
        assert [(i.organisation_id, i.role, i.platform, i.status) for i in person.identities] \
            == [(org.id, "committee_handler", "repair_fund", "active")]
        [sms] = sms_messages(app, handler["phone"])
        assert "业委会经办人" in sms["text"] and "初始密码" in sms["text"]
        passwords[handler["phone"]] = re.search(r"初始密码(\S+?)，", sms["text"]).group(1)
    assert len(events("sms.initial_password", "success")) == 2
    # The initial password works and must be changed at the first login (T05, T06).
    other = app.test_client()
    first_login = login(other, app, HANDLERS[0]["phone"], passwords[HANDLERS[0]["phone"]])
    assert first_login.status_code == 303 and "/password/change" in first_login.location


def test_t04_a_handler_who_has_an_account_gets_no_new_password(app, client):
    as_centre(client, app)
    make_account(HANDLERS[0]["phone"], name="张三")
    application = committee_application(make_area("和谐花园"))
    assert decide(client, application.id, "approve").status_code == 303
    assert sms_messages(app, HANDLERS[0]["phone"]) == []  # keeps the password it has
    assert len(sms_messages(app, HANDLERS[1]["phone"])) == 1


def test_t04_sms_failure_after_approval_is_reported_not_a_500(app, client, monkeypatch):
    as_centre(client, app)
    application = committee_application(make_area("和谐花园"))
    token = csrf(client, f"/centre/applications/{application.id}")

    class Down:
        def send(self, to: str, text: str, code: str | None = None) -> None:
            raise SmsGatewayError("unreachable")

    monkeypatch.setattr(app.extensions["idp.sms"], "_gateway", Down())
    response = client.post(f"/centre/applications/{application.id}/approve",
                           data={"csrf_token": token})
    assert response.status_code == 200
    assert "初始密码短信发送失败" in response.text and "用户名查询" in response.text
    assert "138****0011" in response.text
    assert reload(application).status == "approved"  # the approval stands
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account).where(
        Account.phone.in_([h["phone"] for h in HANDLERS]))) == 2
    assert len(events("sms.initial_password", "failure")) == 2


def test_t04_committee_for_an_area_that_already_has_one_is_refused(app, client):
    as_centre(client, app)
    area = make_area("和谐花园")
    sitting = active_org("committee", "现任业委会")
    db.session.add(AreaLink(area_id=area.id, organisation_id=sitting.id, role="committee"))
    db.session.commit()
    application = committee_application(area)
    before = counts()
    response = decide(client, application.id, "approve")
    assert response.status_code == 400
    assert "该物业区域已有业主委员会" in response.text
    assert counts() == before and reload(application).status == "pending"
    assert sms_messages(app, HANDLERS[0]["phone"]) == []
    assert len(events("review.approve", "failure")) == 1


def test_t04_committee_change_applies_name_attribute_and_term(app, client):
    as_centre(client, app)
    committee = active_org("committee", "和谐花园业主委员会筹备组")
    committee.profile = {"attribute": "provisional"}
    db.session.commit()
    application = open_application("committee_change", committee, "310115", {
        "name": "和谐花园业主委员会", "attribute": "formal", "term_start": "2024-05-01",
        "term_end": "2029-04-30"})
    db.session.commit()
    detail = client.get(f"/centre/applications/{application.id}").text
    assert "业委会信息变更" in detail and "变更后名称" in detail
    assert "<dt>现属性</dt><dd>临时（筹备组）</dd>" in detail
    assert "<dt>业委会属性</dt><dd>正式</dd>" in detail
    assert "业委会审核" in client.get("/centre?queue=committee").text
    assert decide(client, application.id, "approve").status_code == 303
    committee = reload(committee)
    assert committee.name == "和谐花园业主委员会"
    assert committee.profile == {"attribute": "formal", "term_start": "2024-05-01",
                                 "term_end": "2029-04-30"}


# --- T08: associations ----------------------------------------------------------------------

def test_t08_approving_an_association_gives_the_target_the_area(app, client):
    as_centre(client, app)
    area = make_area("和谐花园")
    committee = active_org("committee", "和谐花园业主委员会")
    old = active_org("enterprise", "原物业公司")
    target = active_org("office", "和谐花园管理处")
    db.session.add_all([AreaLink(area_id=area.id, organisation_id=committee.id, role="committee"),
                        AreaLink(area_id=area.id, organisation_id=old.id, role="manager")])
    db.session.commit()
    application = open_application("association", committee, "310115",
                                   {"area_id": area.id, "target_id": target.id})
    db.session.commit()
    queue = client.get("/centre?queue=association").text
    assert "申请小区管理处关联" in queue and "和谐花园业主委员会" in queue
    detail = client.get(f"/centre/applications/{application.id}").text
    assert "和谐花园管理处（小区管理处）" in detail and "和谐花园（浦东新区）" in detail
    assert decide(client, application.id, "approve").status_code == 303
    managers = list(db.session.scalars(sa.select(AreaLink.organisation_id).where(
        AreaLink.area_id == area.id, AreaLink.role == "manager")))
    assert managers == [target.id]
    assert len(events("review.approve")) == 1


# --- bad input: decisions -------------------------------------------------------------------

@pytest.mark.parametrize("reason,status,message", [
    ("", 400, MSG_REASON),
    ("   \t ", 400, MSG_REASON),
    ("\u3000\u3000", 400, MSG_REASON),
    ("理" * 501, 400, MSG_REASON),
    ("<script>alert(1)</script>", 400, "退回原因不能包含<>"),
    ('"><img src=x onerror=alert(1)>', 400, "退回原因不能包含<>"),
    ("资料\x01不全", 400, None),
    ("\x00", 400, None),
    ("\u200b", 400, MSG_REASON),
    ("x" * 100_000, 400, MSG_REASON),
    (None, 400, MSG_REASON),
], ids=["empty", "blank", "fullwidth-blank", "overlong-501", "html-script", "html-attr",
        "control", "nul", "zero-width", "long-100k", "missing"])
def test_t02_bad_return_reason_changes_nothing(app, client, reason, status, message):
    as_centre(client, app)
    application = enterprise_application()
    before = counts()
    response = decide(client, application.id, "return", reason)
    assert response.status_code == status
    if message:
        assert f'<p class="field-error" id="reason-error" role="alert">{escape(message)}</p>' \
            in response.text
    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    assert counts() == before
    application = reload(application)
    assert application.status == "pending" and application.reason is None
    assert events("review.return") == []


def test_t02_reason_of_500_characters_is_accepted(app, client):
    as_centre(client, app)
    application = enterprise_application()
    assert decide(client, application.id, "return", "理" * 500).status_code == 303
    assert reload(application).reason == "理" * 500


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "9" * 400, "1.5", "%EF%BC%91", "1%20",
                                 "2147483648"],
                         ids=["letters", "negative", "zero", "huge", "float", "fullwidth",
                              "space", "int32-overflow"])
@pytest.mark.parametrize("action", ["", "/approve", "/return"])
def test_t02_bad_application_ids_answer_404(app, client, raw, action):
    as_centre(client, app)
    token = csrf(client)
    before = counts()
    if action:
        response = client.post(f"/centre/applications/{raw}{action}",
                               data={"csrf_token": token, "reason": "资料不全"})
    else:
        response = client.get(f"/centre/applications/{raw}")
    assert response.status_code == 404
    assert counts() == before


# --- T07: property areas in the console ------------------------------------------------------

def test_t07_areas_page_lists_the_districts_areas_with_search_and_paging(app, client):
    as_centre(client, app, "310115")
    for i in range(22):
        make_area(f"浦东花园{i:02d}", "310115")
    make_area("和谐家园", "310115")
    make_area("徐汇家园", "310104")
    page = client.get("/centre/areas")
    assert page.status_code == 200
    for label in ("物业区域名称", "所在区", "新名称", "保留区域", "合并区域"):
        assert label in page.text
    assert "徐汇家园" not in page.text and "第 1 / 2 页" in page.text
    assert page.text.count('name="merged"') == 20
    found = client.get("/centre/areas", query_string={"q": "家园"})
    assert "和谐家园" in found.text and "浦东花园" not in found.text
    assert "暂无数据" in client.get("/centre/areas", query_string={"q": "徐汇"}).text
    assert "暂无数据" not in client.get("/centre/areas", query_string={
        "q": "家园", "district": "310115"}).text
    # Another district in the filter is ignored, not honoured.
    assert "徐汇家园" not in client.get("/centre/areas?district=310104").text
    for q in ("%", "_", "' OR 1=1 --", "<script>alert(1)</script>", "x" * 200):
        response = client.get("/centre/areas", query_string={"q": q})
        assert response.status_code == 200 and "<script>alert" not in response.text
    assert "暂无数据" in client.get("/centre/areas", query_string={"q": "%"}).text


def test_t07_create_an_area(app, client):
    reviewer = as_centre(client, app, "310115")
    token = csrf(client, "/centre/areas")
    page = client.get("/centre/areas").text
    assert '<option value="310115">浦东新区</option>' in page
    assert '<option value="310104">' not in page.split('id="search-form"')[0]
    response = client.post("/centre/areas", data={"csrf_token": token, "name": " 阳光花苑 ",
                                                  "district": "310115"})
    assert response.status_code == 303
    area = db.session.scalar(sa.select(PropertyArea).where(PropertyArea.name == "阳光花苑"))
    assert area is not None and area.district == "310115"
    [event] = events("area.create")
    assert event.account_id == reviewer.id
    assert "物业区域已添加" in client.get(response.location).text

    before = counts()
    duplicate = client.post("/centre/areas", data={"csrf_token": token, "name": "阳光花苑",
                                                   "district": "310115"})
    assert duplicate.status_code == 400 and MSG_AREA_NAME_TAKEN in duplicate.text
    assert counts() == before


AREA_NAMES = [("", MSG_AREA_NAME), ("  ", MSG_AREA_NAME), ("园" * 101, MSG_AREA_NAME),
              ("<script>alert(1)</script>", MSG_AREA_NAME), ("和谐>花园", MSG_AREA_NAME),
              ("\u200b", MSG_AREA_NAME), ("x" * 10_000, MSG_AREA_NAME),
              ("和谐\x01花园", None)]
AREA_IDS = ["empty", "blank", "overlong-101", "html", "angle", "zero-width", "long-10k",
            "control"]


@pytest.mark.parametrize("name,message", AREA_NAMES, ids=AREA_IDS)
def test_t07_bad_area_names_on_create_write_nothing(app, client, name, message):
    as_centre(client, app)
    token = csrf(client, "/centre/areas")
    before = counts()
    response = client.post("/centre/areas", data={"csrf_token": token, "name": name,
                                                  "district": "310115"})
    assert response.status_code == 400
    if message:
        assert f'<p class="field-error" id="name-error" role="alert">{escape(message)}</p>' \
            in response.text
    assert "<script>alert" not in response.text
    assert counts() == before


@pytest.mark.parametrize("district", ["310104", "310000", "", "３１０１１５", "abc", "9" * 400,
                                      "<script>alert(1)</script>"])
def test_t07_create_in_a_district_not_ones_own_is_refused(app, client, district):
    as_centre(client, app, "310115")
    token = csrf(client, "/centre/areas")
    before = counts()
    response = client.post("/centre/areas", data={"csrf_token": token, "name": "阳光花苑",
                                                  "district": district})
    assert response.status_code == 400
    assert f'<p class="field-error" id="district-error" role="alert">{MSG_CHOICE}</p>' \
        in response.text
    assert counts() == before


def test_t07_rename_an_area_is_audited(app, client):
    as_centre(client, app)
    area = make_area("和偕花园")
    token = csrf(client, "/centre/areas")
    response = client.post(f"/centre/areas/{area.id}/rename",
                           data={"csrf_token": token, "name": "和谐花园"})
    assert response.status_code == 303
    assert reload(area).name == "和谐花园"
    [event] = events("area.rename")
    assert (event.detail["old"], event.detail["new"]) == ("和偕花园", "和谐花园")
    assert "物业区域名称已修改" in client.get(response.location).text


@pytest.mark.parametrize("name,message", AREA_NAMES, ids=AREA_IDS)
def test_t07_bad_new_names_write_nothing(app, client, name, message):
    as_centre(client, app)
    area = make_area("和谐花园")
    token = csrf(client, "/centre/areas")
    before = counts()
    response = client.post(f"/centre/areas/{area.id}/rename",
                           data={"csrf_token": token, "name": name})
    assert response.status_code == 400
    if message:
        assert (f'<p class="field-error" id="new-name-error" role="alert">{escape(message)}</p>'
                in response.text)
        assert "修改物业区域名称" in response.text
    assert counts() == before and reload(area).name == "和谐花园"
    assert events("area.rename") == []


def test_t07_other_district_areas_answer_404(app, client):
    as_centre(client, app, "310104")
    theirs = make_area("和谐花园", "310115")
    mine = make_area("徐汇花园", "310104")
    token = csrf(client, "/centre/areas")
    before = counts()
    assert client.post(f"/centre/areas/{theirs.id}/rename",
                       data={"csrf_token": token, "name": "改名"}).status_code == 404
    for survivor, merged in ((mine.id, theirs.id), (theirs.id, mine.id)):
        response = client.post("/centre/areas/merge", data={
            "csrf_token": token, "survivor": str(survivor), "merged": [str(merged)]})
        assert response.status_code == 404
    assert counts() == before
    assert reload(theirs).name == "和谐花园" and reload(theirs).status == "active"
    assert "和谐花园" not in client.get("/centre/areas").text


def test_t07_merge_in_the_console_moves_links(app, client):
    reviewer = as_centre(client, app)
    survivor, a, b = make_area("和谐花园"), make_area("和谐花园一期"), make_area("和谐花园二期")
    committee = active_org("committee", "和谐花园业主委员会")
    db.session.add(AreaLink(area_id=a.id, organisation_id=committee.id, role="committee"))
    db.session.commit()
    token = csrf(client, "/centre/areas")
    response = client.post("/centre/areas/merge", data={
        "csrf_token": token, "survivor": str(survivor.id), "merged": [str(a.id), str(b.id)]})
    assert response.status_code == 303
    assert db.session.scalar(sa.select(AreaLink.area_id).where(
        AreaLink.organisation_id == committee.id)) == survivor.id
    assert reload(a).status == "merged" and reload(b).merged_into_id == survivor.id
    [event] = events("area.merge")
    assert event.account_id == reviewer.id
    page = client.get(response.location).text
    assert "物业区域已合并" in page and "已合并（并入：和谐花园）" in page


def test_t07_merge_with_two_committees_is_refused_in_the_console(app, client):
    as_centre(client, app)
    survivor, other = make_area("和谐花园"), make_area("和谐花园二期")
    for area, name in ((survivor, "甲业委会"), (other, "乙业委会")):
        committee = active_org("committee", name)
        db.session.add(AreaLink(area_id=area.id, organisation_id=committee.id, role="committee"))
    db.session.commit()
    token = csrf(client, "/centre/areas")
    before = counts()
    response = client.post("/centre/areas/merge", data={
        "csrf_token": token, "survivor": str(survivor.id), "merged": [str(other.id)]})
    assert response.status_code == 400
    assert MSG_MERGE_COMMITTEES in response.text
    assert f'id="merged-{other.id}" aria-label="合并「和谐花园二期」" checked>' in response.text
    assert counts() == before
    assert reload(other).status == "active"
    assert sorted(db.session.scalars(sa.select(AreaLink.area_id))) == sorted(
        [survivor.id, other.id])


BAD_IDS = [("abc", "letters"), ("-1", "negative"), ("0", "zero"), ("9" * 400, "huge"),
           ("2147483648", "int32-overflow"), ("１", "fullwidth"), ("1.0", "float"),
           ("", "empty"), ("' OR 1=1 --", "sql"), ("<script>alert(1)</script>", "html")]


@pytest.mark.parametrize("raw", [v for v, _ in BAD_IDS], ids=[i for _, i in BAD_IDS])
@pytest.mark.parametrize("field", ["survivor", "merged"])
def test_t07_bad_merge_ids_write_nothing(app, client, raw, field):
    as_centre(client, app)
    survivor, other = make_area("和谐花园"), make_area("和谐花园二期")
    token = csrf(client, "/centre/areas")
    data = {"csrf_token": token, "survivor": str(survivor.id), "merged": [str(other.id)]}
    data[field] = raw if field == "survivor" else [raw]
    before = counts()
    response = client.post("/centre/areas/merge", data=data)
    assert response.status_code == 400
    assert re.search(rf'<p class="field-error" id="{field}-error" role="alert">[^<]+</p>',
                     response.text)
    assert "<script>alert" not in response.text
    assert counts() == before
    assert reload(other).status == "active"


@pytest.mark.parametrize("data,field", [
    ({}, "survivor"), ({"survivor": "SELF"}, "merged"), ({"merged": []}, "merged"),
], ids=["nothing", "self", "none-merged"])
def test_t07_incomplete_merges_are_refused(app, client, data, field):
    as_centre(client, app)
    survivor, other = make_area("和谐花园"), make_area("和谐花园二期")
    token = csrf(client, "/centre/areas")
    form: dict[str, Any] = {"csrf_token": token, "survivor": str(survivor.id),
                            "merged": [str(other.id)]}
    if not data:
        form = {"csrf_token": token}
    elif data.get("survivor") == "SELF":
        form["merged"] = [str(survivor.id)]
    else:
        form.update(data)
    before = counts()
    response = client.post("/centre/areas/merge", data=form)
    assert response.status_code == 400
    assert re.search(rf'<p class="field-error" id="{field}-error" role="alert">[^<]+</p>',
                     response.text)
    assert counts() == before


def test_t02_non_ascii_digits_in_the_path_name_nothing(app, client):
    as_centre(client, app)
    application = enterprise_application()
    area = make_area("和谐花园")
    assert client.get(f"/centre/applications/{application.id}").status_code == 200
    wide = str(application.id).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert client.get(f"/centre/applications/{wide}").status_code == 404
    token = csrf(client)
    wide_area = str(area.id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    before = counts()
    assert client.post(f"/centre/areas/{wide_area}/rename",
                       data={"csrf_token": token, "name": "新名"}).status_code == 404
    assert client.post(f"/centre/applications/{wide}/approve",
                       data={"csrf_token": token}).status_code == 404
    assert counts() == before and reload(application).status == "pending"


def test_t07_unknown_area_ids_answer_404(app, client):
    as_centre(client, app)
    area = make_area("和谐花园")
    token = csrf(client, "/centre/areas")
    assert client.post(f"/centre/areas/{area.id + 999}/rename",
                       data={"csrf_token": token, "name": "x"}).status_code == 404
    assert client.post("/centre/areas/merge", data={
        "csrf_token": token, "survivor": str(area.id),
        "merged": [str(area.id + 999)]}).status_code == 404
    for raw in ("abc", "-1", "9" * 400, "2147483648"):
        assert client.post(f"/centre/areas/{raw}/rename",
                           data={"csrf_token": token, "name": "x"}).status_code == 404
