"""Enterprise registration after a UKey login (S03–S07, T02): the pages, the seed's texts, the
transaction, the duplicate rule under concurrency, review, resubmission, adding a platform."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.audit import AuditEvent
from idp.extensions import db
from idp.orgs.models import Application, Organisation
from idp.orgs.review import return_application
from idp.pki.devca import SAMPLES, DevCA
from idp.registration import enterprise
from idp.validators import USCC_ALPHABET
from tests.conftest import csrf_from, table_counts
from tests.factories import make_centre, make_enterprise, ukey_login

USCC, CERT_NAME = SAMPLES["unregistered"]
S06_BOTH = ("测试物业维修中心2企业，您已注册成功,可使用Ukey通过"
            "上海市物业管理监督与服务统一认证登录平台"
            "进入上海市商品住房维修资金管理系统和"
            "上海市物业管理平台及招投标系统。")
S07 = "维修资金系统已经存在统一社会信用代码（含组织机构代码）相同的物业管理企业，申请失败！"
S04 = "您所在企业是否在维修资金系统已有物业企业身份账号（OTP或密钥）？"

BASE: dict[str, Any] = {
    "uscc": USCC, "name": "测试物业维修中心2", "postcode": "200120", "tel": "021-58881234",
    "email": "office@example.cn", "fax": "",
    "legal_name": "杜晨", "legal_phone": "17648830890", "legal_id_type": "111",
    "legal_id_number": "11010519491231002X", "contact_name": "杜晨",
    "contact_phone": "17648830890", "platforms": ["repair_fund"],
}
SUPERVISION: dict[str, Any] = {
    "reg_place": "310000", "district": "310115", "had_qualification": "是",
    "qualification_level": "1", "gm_name": "王建国", "gm_phone": "13912340000",
    "gm_id_type": "111", "gm_id_number": "11010519491231002X",
}


def pem_of(devca: DevCA, sample: str = "unregistered") -> bytes:
    return devca.sample(sample).pem_path.read_bytes()


def start(client: FlaskClient, devca: DevCA, sample: str = "unregistered") -> str:
    """UKey login of the unregistered enterprise, then S04 「否」: the form's CSRF token."""
    response = ukey_login(client, pem_of(devca, sample))
    assert response.status_code == 200, response.text
    page = client.get("/register/enterprise")
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def submit(client: FlaskClient, csrf: str, **changes: Any) -> Any:
    data = {**BASE, **changes, "csrf_token": csrf}
    return client.post("/register/enterprise", data=data)


def enterprise_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Organisation).where(
        Organisation.type == "enterprise")) or 0


def other_uscc_with_same_org_code(uscc: str) -> str:
    """A valid USCC of another registration authority with the same 组织机构代码 (S07)."""
    body = "93" + uscc[2:17]
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + USCC_ALPHABET[(31 - total % 31) % 31]


# --- S03, S04 ------------------------------------------------------------------------------

def test_s03_unregistered_ukey_login_offers_enterprise_registration_and_next_step(
        client: FlaskClient, devca: DevCA) -> None:
    """S03: after a UKey login of an unregistered enterprise: 「物业企业注册」, 【下一步】."""
    page = ukey_login(client, pem_of(devca))
    assert page.status_code == 200
    assert "物业企业注册" in page.text and ">下一步</button>" in page.text
    assert CERT_NAME in page.text and USCC in page.text
    following = client.get("/register/prompt", query_string={"kind": "enterprise"})
    assert following.status_code == 200


def test_s04_prompt_asks_for_an_existing_fund_account_with_yes_and_no(
        client: FlaskClient, devca: DevCA) -> None:
    """S04: the prompt, exactly; 「是」 leads to binding, 「否」 to the registration form."""
    ukey_login(client, pem_of(devca))
    page = client.get("/register/prompt")
    assert S04 in page.text
    assert 'href="/register/bind"' in page.text and ">是</a>" in page.text
    assert 'href="/register/enterprise"' in page.text and ">否</a>" in page.text


@pytest.mark.parametrize("path", ["/register", "/register/prompt", "/register/enterprise",
                                  "/register/status"])
def test_registration_pages_need_a_fresh_ukey_check(client: FlaskClient, path: str) -> None:
    """Without a checked certificate there is nothing to register: back to the UKey login."""
    page = client.get(path)
    assert page.status_code == 401
    assert "UKey验证已过期或尚未完成" in page.text


# --- S05 ------------------------------------------------------------------------------------

S05_LABELS = ["统一社会信用代码", "企业名称", "邮政编码", "电话", "邮箱", "传真",
              "法定代表人姓名", "法定代表人手机号", "法人代表证件类型", "法人代表证件号",
              "企业联系人姓名", "企业联系人手机号", "注册地", "注册所在区",
              "原来是否有资质证书", "原资质等级", "总经理姓名", "总经理手机号",
              "总经理证件类型", "总经理证件号"]
S05_REQUIRED = ["统一社会信用代码", "企业名称", "法定代表人姓名", "法定代表人手机号",
                "法人代表证件类型", "法人代表证件号", "企业联系人姓名", "企业联系人手机号",
                "注册地", "注册所在区", "总经理姓名", "总经理手机号", "总经理证件类型",
                "总经理证件号"]


def test_s05_form_has_the_seed_labels_required_marks_and_the_certificate_uscc(
        client: FlaskClient, devca: DevCA) -> None:
    """S05: every label as in the seed, * on the required ones, the platforms, the supervision
    section (上海市物业管理监管与服务平台) hidden by CSS unless its platform is ticked."""
    ukey_login(client, pem_of(devca))
    html = client.get("/register/enterprise").text
    for label in S05_LABELS:
        assert f"{label}:</label>" in html, label
    for label in S05_REQUIRED:
        assert f'<span class="required" aria-hidden="true">*</span> {label}:' in html, label
    for label in set(S05_LABELS) - set(S05_REQUIRED):
        assert f'</span> {label}:' not in html, label
    assert "上海市商品住房维修资金管理系统" in html and "上海市物业监管平台及招投标系统" in html
    assert "<legend>上海市物业管理监管与服务平台</legend>" in html
    assert f'value="{USCC}"' in html and "readonly" in html
    assert ">注册</button>" in html and ">取消</a>" in html
    css = client.get("/static/registration.css").text
    assert "#platforms-supervision:not(:checked)) #supervision-section" in css


# --- S06 ------------------------------------------------------------------------------------

def test_s06_both_platforms_give_the_seed_message_and_create_everything(
        client: FlaskClient, devca: DevCA) -> None:
    """S06: the seed's message exactly; enterprise, UKey account and one enterprise_admin
    identity per platform created; the enterprise is logged in."""
    csrf = start(client, devca)
    response = submit(client, csrf, platforms=["repair_fund", "supervision"], **SUPERVISION)
    assert response.status_code == 303, response.text
    done = client.get(response.location)
    assert S06_BOTH in done.text and ">确定</a>" in done.text
    org = db.session.scalar(sa.select(Organisation).where(Organisation.uscc == USCC))
    assert org is not None and org.status == "active" and org.org_code == USCC[8:17]
    assert org.district == "310115"
    assert org.profile["supervision"]["gm_name"] == "王建国"
    account = db.session.scalar(sa.select(Account).where(Account.organisation_id == org.id))
    assert account is not None and account.kind == "ukey" and account.is_active
    assert sorted((i.role, i.platform, i.status) for i in account.identities) == [
        ("enterprise_admin", "repair_fund", "active"),
        ("enterprise_admin", "supervision", "active")]
    home = client.get("/")
    assert home.status_code == 200 and "测试物业维修中心2" in home.text
    assert db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.event == "registration.enterprise", AuditEvent.result == "success"))


@pytest.mark.parametrize(("platform", "named", "not_named"), [
    ("repair_fund", "上海市商品住房维修资金管理系统", "招投标系统"),
    ("supervision", "上海市物业管理平台及招投标系统", "上海市商品住房维修资金管理系统"),
])
def test_s06_one_platform_names_only_that_platform(client: FlaskClient, devca: DevCA,
                                                   platform: str, named: str,
                                                   not_named: str) -> None:
    """S06 (one platform: only that platform is named); the other gets no identity."""
    csrf = start(client, devca)
    response = submit(client, csrf, platforms=[platform], **SUPERVISION)
    text = client.get(response.location).text
    assert ("测试物业维修中心2企业，您已注册成功,可使用Ukey通过"
            f"上海市物业管理监督与服务统一认证登录平台进入{named}。") in text
    assert not_named not in text.split("registration-message")[1].split("</p>")[0]
    platforms = db.session.scalars(sa.select(Identity.platform)).all()
    assert platforms == [platform]


def test_s06_supervision_section_is_ignored_without_its_platform(
        client: FlaskClient, devca: DevCA) -> None:
    """The hidden section's fields do not count when the platform is not ticked."""
    csrf = start(client, devca)
    response = submit(client, csrf, platforms=["repair_fund"], gm_id_number="<b>x</b>")
    assert response.status_code == 303
    org = db.session.scalar(sa.select(Organisation).where(Organisation.uscc == USCC))
    assert org is not None and "supervision" not in org.profile


def test_s05_supervision_section_is_required_when_ticked(client: FlaskClient,
                                                          devca: DevCA) -> None:
    csrf = start(client, devca)
    before = table_counts()
    response = submit(client, csrf, platforms=["supervision"])
    assert response.status_code == 400
    for name in ("district", "gm_name", "gm_phone", "gm_id_number"):
        assert f'id="{name}-error" role="alert">此项为必填项</p>' in response.text, name
    assert _without_logs(table_counts()) == _without_logs(before)


# --- S07 ------------------------------------------------------------------------------------

def _without_logs(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k not in ("audit_event", "store_entry")}


@pytest.mark.parametrize("existing", ["same_uscc", "same_org_code"])
def test_s07_duplicate_uscc_or_org_code_fails_with_the_seed_message(
        client: FlaskClient, devca: DevCA, existing: str) -> None:
    """S07: the fund system already has the USCC, or another USCC with the same 组织机构代码."""
    csrf = start(client, devca)  # the enterprise is unknown at login …
    uscc = USCC if existing == "same_uscc" else other_uscc_with_same_org_code(USCC)
    make_enterprise(uscc=uscc, name="已有物业", ukey=False)  # … and is registered meanwhile
    before = table_counts()
    response = submit(client, csrf)
    assert response.status_code == 409
    assert S07 in response.text
    assert _without_logs(table_counts()) == _without_logs(before)


def test_s07_two_simultaneous_registrations_create_one_enterprise(app: Flask) -> None:
    """S07 under concurrency: two submissions of one USCC at the same moment → one enterprise
    and one clear S07 error (the unique constraints decide, not a check-then-insert)."""
    values = enterprise.parse_form(_multi(BASE), None).values
    values["uscc"] = USCC
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    original = enterprise.duplicate_exists

    def racing_check(uscc: str) -> bool:
        seen = original(uscc)
        barrier.wait(timeout=10)  # both have looked before either inserts
        return seen

    def worker() -> None:
        with app.app_context():
            try:
                enterprise.register(values)
                outcomes.append("created")
            except enterprise.DuplicateEnterprise as exc:
                outcomes.append(exc.message)
            finally:
                db.session.remove()

    enterprise.duplicate_exists = racing_check  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        enterprise.duplicate_exists = original  # type: ignore[assignment]
    assert sorted(outcomes) == sorted(["created", S07])
    db.session.rollback()
    assert enterprise_count() == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == 1


def _multi(data: dict[str, Any]) -> Any:
    from werkzeug.datastructures import MultiDict

    pairs = []
    for key, value in data.items():
        pairs += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return MultiDict(pairs)


def test_s05_uscc_cannot_be_changed_to_another_enterprises(client: FlaskClient,
                                                           devca: DevCA) -> None:
    """The USCC comes from the certificate: posting another (valid) one registers nothing."""
    csrf = start(client, devca)
    response = submit(client, csrf, uscc="91310115MA1FL0D34W")
    assert response.status_code == 400
    assert "统一社会信用代码须与UKey证书一致" in response.text
    assert enterprise_count() == 0


# --- bad input -------------------------------------------------------------------------------

HOSTILE = [("html", "<script>alert(1)</script>"), ("blank", "   "), ("empty", ""),
           ("overlong", "长" * 300), ("sql", "' OR '1'='1"), ("control", "a\x1b[31m"),
           ("fullwidth", "１３９１２３４５６７８")]
BAD_VALUES: dict[str, list[tuple[str, str]]] = {
    "uscc": [("wrong-check", USCC[:-1] + ("0" if USCC[-1] != "0" else "1")),
             ("lowercase-other", "91310115ma1fl0d34w"), ("short", USCC[:17]),
             ("forbidden-letter", USCC[:10] + "I" + USCC[11:])],
    "name": [],
    "postcode": [("five", "20012"), ("letters", "20012A"), ("spaced", "200 120")],
    "tel": [("letters", "021-abc"), ("too-long", "021-" + "1" * 40)],
    "email": [("no-at", "office.example.cn"), ("two-at", "a@b@c.cn"), ("space", "a b@c.cn")],
    "fax": [("letters", "fax")],
    "legal_name": [],
    "legal_phone": [("landline", "02158881234"), ("ten-digits", "1764883089"),
                    ("prefix-12", "12648830890")],
    "legal_id_type": [("unknown", "999")],
    "legal_id_number": [("wrong-check", "110105194912310021"), ("seventeen", "11010519491231002"),
                        ("letter-inside", "1101051949123100AX")],
    "contact_name": [],
    "contact_phone": [("landline", "021-58881234")],
    "platforms": [("unknown", "tendering")],
    "district": [("not-shanghai", "110101")],
    "reg_place": [("beijing", "110000")],
    "gm_id_number": [("wrong-check", "110105194912310021")],
    "gm_phone": [("short", "139")],
    "had_qualification": [("maybe", "可能")],
    "qualification_level": [("unknown", "9")],
}
OPTIONAL = {"postcode", "tel", "email", "fax", "had_qualification", "qualification_level"}
CASES = [(name, label, value) for name, extra in BAD_VALUES.items()
         for label, value in [*HOSTILE, *extra]
         if not (name in OPTIONAL and label in ("blank", "empty"))
         and (name, label) != ("name", "fullwidth")]  # 「上海第１物业」 is a possible name


@pytest.mark.parametrize(("name", "label", "value"), CASES,
                         ids=[f"{n}-{lbl}" for n, lbl, _ in CASES])
def test_s05_bad_input_gets_a_message_beside_the_field_and_writes_nothing(
        client: FlaskClient, devca: DevCA, name: str, label: str, value: str) -> None:
    """S05: every field validated (USCC check character, phone, 身份证 check digit, e-mail,
    postcode …) with a message next to the field; nothing is written."""
    csrf = start(client, devca)
    before = _without_logs(table_counts())
    fields = {**BASE, "platforms": ["repair_fund", "supervision"], **SUPERVISION}
    fields[name] = [value] if name == "platforms" else value
    response = client.post("/register/enterprise", data={**fields, "csrf_token": csrf})
    assert response.status_code == 400, (name, label, response.status_code)
    if label == "control":  # stopped before any view: the page says why
        assert "提交的内容包含不可见的控制字符" in response.text
        assert _without_logs(table_counts()) == before
        return
    error_id = "platforms-error" if name == "platforms" else f"{name}-error"
    message = response.text.split(f'id="{error_id}" role="alert">')[1].split("</p>")[0]
    assert message.strip(), (name, label)
    assert "<script>alert" not in response.text
    assert _without_logs(table_counts()) == before


def test_s05_no_platform_chosen(client: FlaskClient, devca: DevCA) -> None:
    csrf = start(client, devca)
    response = submit(client, csrf, platforms=[])
    assert response.status_code == 400 and "请选择注册平台</p>" in response.text


def test_s05_missing_csrf_writes_nothing(client: FlaskClient, devca: DevCA) -> None:
    start(client, devca)
    response = client.post("/register/enterprise", data={**BASE})
    assert response.status_code == 400 and enterprise_count() == 0


# --- T02: review by policy, return with a reason, resubmission --------------------------------

def test_t02_unqualified_supervision_registration_waits_for_review(
        client: FlaskClient, devca: DevCA) -> None:
    """T02: policy "supervision:enterprise_unqualified" (the default) — the account and its
    identity are not usable until the centre approves; the applicant sees the state."""
    csrf = start(client, devca)
    response = submit(client, csrf, platforms=["supervision"],
                      **{**SUPERVISION, "had_qualification": "否", "qualification_level": ""})
    assert response.status_code == 303
    text = client.get(response.location).text
    assert "注册申请已提交，请等待区中心审核" in text
    account = db.session.scalar(sa.select(Account).where(Account.kind == "ukey"))
    assert account is not None and account.status == "pending"
    assert [i.status for i in account.identities] == ["pending"]
    application = db.session.scalar(sa.select(Application))
    assert application is not None and application.district == "310115"
    assert client.get("/").status_code == 303  # not logged in
    # The next UKey login lands on the status page, not inside.
    client.delete_cookie("idp_session")
    again = ukey_login(client, pem_of(devca))
    assert again.status_code == 303 and again.location.endswith("/register/status")
    assert "待审核" in client.get("/register/status").text


def test_t02_returned_registration_shows_the_reason_and_can_be_resubmitted(
        client: FlaskClient, devca: DevCA, app: Flask) -> None:
    csrf = start(client, devca)
    submit(client, csrf, platforms=["supervision"],
           **{**SUPERVISION, "had_qualification": "否", "qualification_level": ""})
    reviewer = make_centre(district="310115")
    application = db.session.scalar(sa.select(Application))
    assert application is not None
    return_application(application, reviewer, "总经理证件号与营业执照不一致")
    db.session.commit()
    client.delete_cookie("idp_session")
    ukey_login(client, pem_of(devca))
    status = client.get("/register/status").text
    assert "已退回" in status and "总经理证件号与营业执照不一致" in status
    form = client.get(f"/register/enterprise/resubmit/{application.id}")
    assert form.status_code == 200 and 'value="王建国"' in form.text
    fields = {**BASE, **SUPERVISION, "had_qualification": "否", "qualification_level": "",
              "gm_name": "李建党", "csrf_token": csrf_from(form.text)}
    fields.pop("platforms")
    response = client.post(f"/register/enterprise/resubmit/{application.id}", data=fields)
    assert response.status_code == 303, response.text
    db.session.expire_all()
    application = db.session.get(Application, application.id)
    assert application is not None and application.status == "pending"
    assert application.data["profile"]["supervision"]["gm_name"] == "李建党"
    org = db.session.get(Organisation, application.organisation_id)
    assert org is not None and org.status == "pending"


def test_t02_another_enterprises_application_is_not_found(client: FlaskClient,
                                                          devca: DevCA) -> None:
    other = make_enterprise(uscc="91350100M000100Y43", name="别家物业", status="pending")
    application = Application(kind="enterprise_registration", organisation_id=other.id,
                              district="310115", data={"platforms": ["supervision"]},
                              status="returned", reason="x")
    db.session.add(application)
    db.session.commit()
    csrf = start(client, devca)
    submit(client, csrf, platforms=["supervision"],
           **{**SUPERVISION, "had_qualification": "否", "qualification_level": ""})
    client.delete_cookie("idp_session")
    ukey_login(client, pem_of(devca))
    assert client.get(f"/register/enterprise/resubmit/{application.id}").status_code == 404


# --- adding the other platform later ----------------------------------------------------------

def test_s06_enterprise_registered_for_one_platform_adds_the_other(
        client: FlaskClient, devca: DevCA) -> None:
    csrf = start(client, devca)
    submit(client, csrf, platforms=["repair_fund"])
    page = client.get("/register/platforms")
    assert page.status_code == 200 and "（已注册）" in page.text
    fields = {**BASE, **SUPERVISION, "platforms": ["supervision"],
              "csrf_token": csrf_from(page.text)}
    response = client.post("/register/platforms", data=fields)
    assert response.status_code == 303, response.text
    text = client.get(response.location).text
    assert "进入上海市物业管理平台及招投标系统。" in text
    platforms = sorted(db.session.scalars(sa.select(Identity.platform)).all())
    assert platforms == ["repair_fund", "supervision"]
    again = client.post("/register/platforms", data={**fields, "platforms": ["repair_fund"]})
    assert again.status_code == 400 and "请选择尚未注册的平台" in again.text


@pytest.mark.parametrize("path", ["/register/enterprise/resubmit/2147483648",
                                  "/register/enterprise/resubmit/0",
                                  "/register/enterprise/resubmit/９",
                                  "/register/enterprise/resubmit/99999999999999999999"])
def test_ids_no_column_can_hold_are_not_found(client: FlaskClient, devca: DevCA,
                                              path: str) -> None:
    """Ids past 32 bits, zero, or in other scripts' digits name nothing: 404, never a 500."""
    csrf = start(client, devca)
    submit(client, csrf)
    assert client.get(path).status_code == 404


def test_t02_a_former_qualification_must_name_its_level(client: FlaskClient,
                                                         devca: DevCA) -> None:
    """Answering 是 to 原来是否有资质证书 (which skips the unqualified review) needs 原资质等级."""
    csrf = start(client, devca)
    response = submit(client, csrf, platforms=["supervision"],
                      **{**SUPERVISION, "qualification_level": ""})
    assert response.status_code == 400
    assert 'id="qualification_level-error" role="alert">此项为必填项</p>' in response.text


def test_t02_resubmission_does_not_change_an_active_enterprise_before_approval(
        client: FlaskClient, devca: DevCA) -> None:
    """Active on repair_fund, supervision returned: the corrected name and district wait in
    the application (and its queue moves to the new district) until the centre approves."""
    csrf = start(client, devca)
    submit(client, csrf, platforms=["repair_fund", "supervision"],
           **{**SUPERVISION, "had_qualification": "否", "qualification_level": ""})
    reviewer = make_centre(district="310115")
    application = db.session.scalar(sa.select(Application))
    assert application is not None
    return_application(application, reviewer, "请补充材料")
    db.session.commit()
    form = client.get(f"/register/enterprise/resubmit/{application.id}")
    fields = {**BASE, **SUPERVISION, "had_qualification": "否", "qualification_level": "",
              "name": "改名物业", "district": "310101", "csrf_token": csrf_from(form.text)}
    fields.pop("platforms")
    assert client.post(f"/register/enterprise/resubmit/{application.id}",
                       data=fields).status_code == 303
    db.session.expire_all()
    org = db.session.get(Organisation, application.organisation_id)
    application = db.session.get(Application, application.id)
    assert org is not None and application is not None
    assert (org.name, org.district) == ("测试物业维修中心2", "310115")
    assert application.district == "310101" and application.data["name"] == "改名物业"
    from idp.orgs.review import approve
    approve(application, make_centre(phone="13600000002", district="310101"))
    db.session.commit()
    assert org.name == "改名物业"
    assert org.profile["supervision"]["district"] == "310101"


def test_t02_approval_does_not_revive_a_disabled_enterprise(client: FlaskClient,
                                                            devca: DevCA) -> None:
    csrf = start(client, devca)
    submit(client, csrf, platforms=["supervision"],
           **{**SUPERVISION, "had_qualification": "否", "qualification_level": ""})
    application = db.session.scalar(sa.select(Application))
    assert application is not None
    org = db.session.get(Organisation, application.organisation_id)
    assert org is not None
    org.status = "disabled"
    db.session.commit()
    from idp.orgs.review import approve
    approve(application, make_centre())
    db.session.commit()
    assert org.status == "disabled"
