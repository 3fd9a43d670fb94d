"""The 操作员管理 service (``idp.console.operators``, S11–S15) without the web layer: filters,
scoping to the tenant, the checks of 增加 in their order (S14 before the billed carrier check,
S13 and the other carrier outcomes with nothing written), 修改 and 删除 with their cut-offs,
and S14 held by the database when two saves race."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from idp.accounts.models import Account, Identity
from idp.accounts.service import create_person
from idp.audit import AuditEvent
from idp.auth.password import Passwords
from idp.console import operators as service
from idp.console.models import Operator
from idp.console.operators import (
    MSG_ACCOUNT_DISABLED,
    MSG_CATEGORY,
    MSG_CHOICE,
    MSG_DELETED,
    MSG_DEPARTMENT,
    MSG_FILTER_ID,
    MSG_FILTER_TEXT,
    MSG_NO_CHANGE,
    MSG_OPERATOR_NAME,
    MSG_PHONE_BOUND,
    MSG_PHONE_OTHER_ACCOUNT,
    MSG_PHONE_REQUIRED,
    MSG_REMARK,
    MSG_REMARK_HTML,
    MSG_ROLE,
    MSG_STATUS,
    OperatorFilter,
    OperatorNotFound,
    PhoneCheckFailed,
    add_operator,
    check_new,
    delete_operator,
    get_operator,
    list_operators,
    phone_is_bound,
    update_operator,
)
from idp.console.tenant import Tenant, tenant_of, tenant_of_client
from idp.errors import FieldError
from idp.extensions import db
from idp.gateways.phone import MESSAGES, Outcome, Verification
from idp.oidc.models import Client, Token
from idp.orgs.models import Organisation
from idp.validators import MSG_PHONE_FORMAT
from tests.conftest import table_counts
from tests.factories import PASSWORD, make_client, make_enterprise, make_office, make_operator

EXEMPT = ("audit_event", "store_entry")
OTHER_USCC = "91350100M000100Y43"


class FakeVerifier:
    """A carrier that answers ``outcome`` and counts the questions."""

    def __init__(self, outcome: Outcome = Outcome.MATCH) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, str]] = []

    def verify(self, name: str, phone: str) -> Verification:
        self.calls.append((name, phone))
        return Verification(self.outcome, "中国移动", f"fake-{len(self.calls)}",
                            self.outcome is Outcome.MATCH)


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


def demo() -> tuple[Organisation, Tenant]:
    enterprise = make_enterprise()
    account = db.session.scalars(sa.select(Account).where(
        Account.organisation_id == enterprise.id)).one()
    tenant = tenant_of(account)
    assert tenant is not None and tenant.id == enterprise.id
    return enterprise, tenant


def other() -> tuple[Organisation, Tenant]:
    enterprise = make_enterprise(uscc=OTHER_USCC, name="和谐物业有限公司", ukey=False)
    tenant = tenant_of_client(enterprise.id, "scim-test")
    assert tenant is not None
    return enterprise, tenant


def new_for(tenant: Tenant, department: Organisation, **overrides: Any) -> Any:
    values: dict[str, Any] = {"name": "操作员一", "department_id": department.id,
                              "category": None, "phone": "13900000011", "role": None,
                              "remark": None}
    values.update(overrides)
    return check_new(tenant, **values)


def token_for(account_id: str, identity_id: int | None, n: int) -> Token:
    if db.session.get(Client, "rp1") is None:
        make_client()
    token = Token(grant_type="authorization_code", client_id="rp1", account_id=account_id,
                  identity_id=identity_id, access_token_hash=f"{n:064d}", expires_in=3600,
                  family_id=f"fam{n}")
    db.session.add(token)
    db.session.commit()
    return token


# --- OperatorFilter (S11) -------------------------------------------------------------------

def test_s11_filter_parse_normalises_good_values(app: Flask) -> None:
    filters, errors = OperatorFilter.parse({
        "operator_id": " 007 ", "name": "  操作员   一 ", "status": "disabled",
        "category": "office", "unit_code": "ma1fl0d34-001", "unit_name": " 玉兰 "})
    assert errors == {}
    assert filters == OperatorFilter(operator_id="7", name="操作员 一", status="disabled",
                                     category="office", unit_code="MA1FL0D34-001",
                                     unit_name="玉兰")
    assert filters.as_args() == {"operator_id": "7", "name": "操作员 一", "status": "disabled",
                                 "category": "office", "unit_code": "MA1FL0D34-001",
                                 "unit_name": "玉兰"}
    assert OperatorFilter.parse({}) == (OperatorFilter(), {})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("operator_id", "abc", MSG_FILTER_ID), ("operator_id", "0", MSG_FILTER_ID),
    ("operator_id", "１２", MSG_FILTER_ID), ("operator_id", "2147483648", MSG_FILTER_ID),
    ("operator_id", "9" * 5000, MSG_FILTER_ID), ("operator_id", "-1", MSG_FILTER_ID),
    ("name", "长" * 51, MSG_FILTER_TEXT), ("unit_name", "长" * 51, MSG_FILTER_TEXT),
    ("unit_code", "' OR 1=1", MSG_FILTER_TEXT), ("unit_code", "A" * 33, MSG_FILTER_TEXT),
    ("status", "gone", MSG_CHOICE), ("category", "committee", MSG_CHOICE),
])
def test_s11_filter_parse_names_unusable_values_and_drops_them(app: Flask, key: str,
                                                              value: str, message: str) -> None:
    filters, errors = OperatorFilter.parse({key: value})
    assert errors == {key: message}
    assert filters == OperatorFilter()


# --- list_operators, get_operator (S11, S15) ------------------------------------------------

def test_s11_list_is_scoped_to_the_tenant_and_ordered_by_id(app: Flask) -> None:
    enterprise, tenant = demo()
    foreign, foreign_tenant = other()
    mine = [make_operator(enterprise, f"1390000001{n}", f"操作员{'一二三'[n]}").id
            for n in range(3)]
    theirs = make_operator(foreign, "13900000019", "操作员九").id
    page = list_operators(tenant, OperatorFilter())
    assert [o.id for o in page.items] == mine and page.total == 3
    assert [o.id for o in list_operators(foreign_tenant, OperatorFilter()).items] == [theirs]
    # an id filter cannot reach across
    assert list_operators(tenant, OperatorFilter(operator_id=str(theirs))).items == []


def test_s11_paging_clamps_and_counts(app: Flask) -> None:
    enterprise, tenant = demo()
    ids = [make_operator(enterprise, f"139000001{n:02d}", f"操作员{chr(0x4e00 + n)}").id
           for n in range(25)]
    page = list_operators(tenant, OperatorFilter(), page=2, size=10)
    assert [o.id for o in page.items] == ids[10:20] and page.pages == 3
    assert page.first_number == 11
    assert [o.id for o in list_operators(tenant, OperatorFilter(), page=0, size=10).items] == \
        ids[:10]
    last = list_operators(tenant, OperatorFilter(), page=99, size=10)
    assert last.page == 3 and [o.id for o in last.items] == ids[20:]
    odd = list_operators(tenant, OperatorFilter(), size=7)  # not an offered size → 20
    assert odd.size == 20 and len(odd.items) == 20
    assert list_operators(tenant, OperatorFilter(status="deleted")).pages == 1


def test_s11_name_filter_is_a_prefix_with_wildcards_taken_literally(app: Flask) -> None:
    enterprise, tenant = demo()
    make_operator(enterprise, "13900000011", "操作员一")
    for text in ("%", "_", "操作员\\", "员"):
        assert list_operators(tenant, OperatorFilter(name=text)).items == [], text
    assert len(list_operators(tenant, OperatorFilter(name="操作")).items) == 1


def test_s11_unit_filters_resolve_to_the_tenants_departments(app: Flask) -> None:
    enterprise, tenant = demo()
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    in_office = make_operator(enterprise, "13900000011", "操作员一", department=office)
    make_operator(enterprise, "13900000012", "操作员二")
    foreign, _ = other()
    make_office(foreign, "和谐物业玉兰管理处")
    assert [o.id for o in list_operators(tenant, OperatorFilter(unit_name="玉兰")).items] == [
        in_office.id]
    assert [o.id for o in list_operators(
        tenant, OperatorFilter(unit_code=office.unit_code.upper())).items] == [in_office.id]
    assert list_operators(tenant, OperatorFilter(unit_code="NOPE")).items == []


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "9" * 5000, "１", "", "2147483648", None])
def test_s15_get_operator_refuses_what_names_no_row(app: Flask, raw: Any) -> None:
    _, tenant = demo()
    with pytest.raises(OperatorNotFound):
        get_operator(tenant, raw)


def test_s15_get_operator_of_another_tenant_is_not_found(app: Flask) -> None:
    enterprise, tenant = demo()
    foreign, foreign_tenant = other()
    theirs = make_operator(foreign, "13900000011", "操作员一")
    mine = make_operator(enterprise, "13900000012", "操作员二")
    assert get_operator(tenant, str(mine.id)).id == mine.id
    with pytest.raises(OperatorNotFound):
        get_operator(tenant, theirs.id)
    with pytest.raises(OperatorNotFound):
        get_operator(foreign_tenant, mine.id)


# --- check_new (S12) ------------------------------------------------------------------------

def test_s12_check_new_follows_the_department(app: Flask) -> None:
    enterprise, tenant = demo()
    office = make_office(enterprise, "演示物业玉兰花园管理处")
    new = new_for(tenant, enterprise, name="  操作员  一 ", phone="+86 139-0000-0011",
                  remark="  备 注 ")
    assert (new.name, new.department.id, new.category, new.role, new.phone, new.remark) == (
        "操作员 一", enterprise.id, "enterprise", "operator", "13900000011", "备 注")
    in_office = new_for(tenant, office, department_id=str(office.id))
    assert (in_office.category, in_office.role) == ("office", "office")


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"name": ""}, "name", MSG_OPERATOR_NAME),
    ({"name": "张三<b>"}, "name", MSG_OPERATOR_NAME),
    ({"name": "长" * 51}, "name", MSG_OPERATOR_NAME),
    ({"department_id": ""}, "department_id", MSG_DEPARTMENT),
    ({"department_id": "9" * 5000}, "department_id", MSG_DEPARTMENT),
    ({"department_id": "0"}, "department_id", MSG_DEPARTMENT),
    ({"department_id": 999999}, "department_id", MSG_DEPARTMENT),
    ({"category": "office"}, "category", MSG_CATEGORY),
    ({"category": "committee"}, "category", MSG_CHOICE),
    ({"role": "office"}, "role", MSG_ROLE),
    ({"role": "enterprise_admin"}, "role", MSG_CHOICE),
    ({"phone": ""}, "phone", MSG_PHONE_REQUIRED),
    ({"phone": "  "}, "phone", MSG_PHONE_REQUIRED),
    ({"phone": "１３９００００００１１"}, "phone", MSG_PHONE_FORMAT),
    ({"phone": "12900000011"}, "phone", MSG_PHONE_FORMAT),
    ({"remark": "长" * 201}, "remark", MSG_REMARK),
    ({"remark": "<b>x</b>"}, "remark", MSG_REMARK_HTML),
])
def test_s12_check_new_names_the_bad_field(app: Flask, overrides: dict[str, Any], field: str,
                                           message: str) -> None:
    enterprise, tenant = demo()
    with pytest.raises(FieldError) as caught:
        new_for(tenant, enterprise, **overrides)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_s12_only_the_tenant_and_its_live_offices_are_departments(app: Flask) -> None:
    enterprise, tenant = demo()
    closed = make_office(enterprise, "演示物业已撤销管理处")
    closed.status = "disabled"
    foreign, _ = other()
    foreign_office = make_office(foreign, "和谐物业某管理处")
    db.session.commit()
    for department in (closed, foreign, foreign_office):
        with pytest.raises(FieldError) as caught:
            new_for(tenant, department)
        assert caught.value.field == "department_id"
    assert [d.id for d in tenant.departments()] == [enterprise.id]


# --- add_operator (S12–S14) -----------------------------------------------------------------

def test_s12_add_creates_account_identity_operator_and_returns_the_password(app: Flask) -> None:
    enterprise, tenant = demo()
    carrier = FakeVerifier()
    operator, password = add_operator(tenant, new_for(tenant, enterprise), carrier)
    db.session.commit()
    assert carrier.calls == [("操作员一", "13900000011")]
    assert password is not None and len(password) == 12
    account = reload(operator.account)
    passwords: Passwords = app.extensions["idp.passwords"]
    assert passwords.verify(account.password_hash, password)
    assert account.must_change_password and account.kind == "person"
    assert operator.created_by == tenant.actor_id
    identity = db.session.get(Identity, operator.identity_id)
    assert identity and identity.platform == "repair_fund" and identity.role == "operator"
    created = events("operator.create", "success")[-1]
    assert created.detail["operator_id"] == operator.id and created.organisation_id == tenant.id
    check = events("operator.phone_check", "success")[-1]
    assert "13900000011" not in repr(check.detail) and "操作员一" not in repr(check.detail)


def test_s12_an_existing_account_is_reused_without_a_new_password(app: Flask) -> None:
    enterprise, tenant = demo()
    account = create_person("13900000011", "操作员一", PASSWORD, must_change=False)
    db.session.commit()
    operator, password = add_operator(tenant, new_for(tenant, enterprise), FakeVerifier())
    db.session.commit()
    assert password is None and operator.account_id == account.id
    assert not reload(account).must_change_password


def test_s12_a_deleted_account_comes_back_with_a_fresh_password(app: Flask) -> None:
    enterprise, tenant = demo()
    old = make_operator(enterprise, "13900000011", "操作员一")
    delete_operator(tenant, old)
    db.session.commit()
    assert reload(old.account).status == "deleted"
    operator, password = add_operator(tenant, new_for(tenant, enterprise), FakeVerifier())
    db.session.commit()
    account = reload(operator.account)
    assert password and account.status == "active" and account.must_change_password
    assert operator.id != old.id and operator.identity_id == old.identity_id  # identity revived
    assert reload(old).status == "deleted"  # the old row stays as it was


def test_s12_a_platform_disabled_account_is_not_revived(app: Flask) -> None:
    enterprise, tenant = demo()
    account = create_person("13900000011", "操作员一", PASSWORD, must_change=False)
    account.status = "disabled"
    db.session.commit()
    carrier = FakeVerifier()
    before = counts()
    with pytest.raises(FieldError) as caught:
        add_operator(tenant, new_for(tenant, enterprise), carrier)
    db.session.commit()
    assert caught.value.message == MSG_ACCOUNT_DISABLED and carrier.calls == []
    assert counts() == before


@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.MATCH])
def test_s13_a_failed_carrier_check_writes_nothing_but_the_audit(app: Flask,
                                                                outcome: Outcome) -> None:
    enterprise, tenant = demo()
    before = counts()
    with pytest.raises(PhoneCheckFailed) as caught:
        add_operator(tenant, new_for(tenant, enterprise), FakeVerifier(outcome))
    db.session.commit()
    assert caught.value.message == MESSAGES[outcome]
    assert caught.value.verification.outcome is outcome
    assert counts() == before
    assert events("operator.phone_check", "failure")[-1].detail["outcome"] == outcome.value


def test_s13_the_seed_message_for_a_mismatch(app: Flask) -> None:
    assert MESSAGES[Outcome.MISMATCH] == ("您填写的身份信息与手机号认证失败，"
                                          "请确认信息是否填写正确。")


def test_s14_a_bound_phone_is_refused_before_the_carrier_is_asked(app: Flask) -> None:
    enterprise, tenant = demo()
    foreign, _ = other()
    make_operator(foreign, "13900000011", "操作员一")
    carrier = FakeVerifier()
    before = counts()
    with pytest.raises(FieldError) as caught:
        add_operator(tenant, new_for(tenant, enterprise), carrier)
    db.session.commit()
    assert (caught.value.field, caught.value.message) == ("phone", MSG_PHONE_BOUND)
    assert caught.value.message == ("该手机号已绑定维修资金系统物业企业（含小区管理处）角色，"
                                    "请重新输入正确的手机号。")
    assert carrier.calls == [] and counts() == before
    assert events("operator.create", "failure")[-1].detail["reason"] == "phone_bound"


@pytest.mark.parametrize(("role", "platform", "status", "bound"), [
    ("enterprise_admin", "repair_fund", "active", True),
    ("operator", "repair_fund", "active", True),
    ("office", "repair_fund", "pending", True),
    ("office", "repair_fund", "deleted", False),
    ("operator", "supervision", "active", False),
    ("committee_handler", "repair_fund", "active", False),
])
def test_s14_which_identities_bind_a_phone(app: Flask, role: str, platform: str, status: str,
                                           bound: bool) -> None:
    enterprise, _ = demo()
    account = create_person("13900000011", "操作员一", PASSWORD, must_change=False)
    db.session.add(Identity(account_id=account.id, organisation_id=enterprise.id, role=role,
                            platform=platform, status=status))
    db.session.commit()
    assert phone_is_bound("13900000011") is bound
    assert phone_is_bound("13900000011", except_account=account.id) is False
    assert phone_is_bound("13900000099") is False


def test_s14_a_live_operator_binds_and_a_deleted_one_does_not(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000011", "操作员一")
    assert phone_is_bound("13900000011")
    delete_operator(tenant, operator)
    db.session.commit()
    assert not phone_is_bound("13900000011")


def test_s14_two_tenants_adding_one_phone_at_once_make_one_operator(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """S14 under concurrency, in the service: both pass ``phone_is_bound`` before either
    writes; the unique index / account.phone lets one through, the other gets S14."""
    first, _ = demo()
    second, _ = other()
    ids = [first.id, second.id]
    db.session.commit()
    barrier = threading.Barrier(2)
    original = service.phone_is_bound

    def racing(phone: str, *, except_account: str | None = None) -> bool:
        seen = original(phone, except_account=except_account)
        barrier.wait(timeout=15)
        return seen

    monkeypatch.setattr(service, "phone_is_bound", racing)
    outcomes: list[str] = []

    def worker(enterprise_id: int) -> None:
        with app.app_context():
            try:
                tenant = tenant_of_client(enterprise_id, "race")
                assert tenant is not None
                department = db.session.get(Organisation, enterprise_id)
                assert department is not None
                add_operator(tenant, new_for(tenant, department), FakeVerifier())
                db.session.commit()
                outcomes.append("created")
            except FieldError as exc:
                db.session.commit()
                outcomes.append(exc.message)
            except Exception as exc:  # noqa: BLE001  (a thread reports to the test)
                outcomes.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == sorted(["created", MSG_PHONE_BOUND]), outcomes
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Operator)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account).where(
        Account.phone == "13900000011")) == 1


# --- update_operator (S15) ------------------------------------------------------------------

def test_s15_phone_change_checks_the_carrier_and_ends_the_accounts_tokens(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000012", "操作员一")
    token = token_for(operator.account_id, None, 1)
    carrier = FakeVerifier()
    after = update_operator(tenant, operator, phone="13900000011", service=carrier)
    db.session.commit()
    after()
    assert carrier.calls == [("操作员一", "13900000011")]
    assert reload(operator.account).phone == "13900000011"
    assert reload(token).revoked_at is not None
    assert events("account.cut_off")[-1].detail["reason"] == "operator.phone_changed"


def test_s15_disabling_ends_only_that_identitys_tokens(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000011", "操作员一")
    other_identity = Identity(account_id=operator.account_id, organisation_id=enterprise.id,
                              role="committee_handler", platform="repair_fund")
    db.session.add(other_identity)
    db.session.commit()
    mine = token_for(operator.account_id, operator.identity_id, 1)
    elsewhere = token_for(operator.account_id, other_identity.id, 2)
    carrier = FakeVerifier()
    after = update_operator(tenant, operator, status="disabled", service=carrier)
    db.session.commit()
    after()
    assert carrier.calls == []  # the phone did not change
    assert reload(mine).revoked_at is not None and reload(elsewhere).revoked_at is None
    assert reload(operator).status == "disabled"
    assert events("operator.update")[-1].detail["changes"] == {"status": ["active", "disabled"]}


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({}, "phone", MSG_NO_CHANGE),
    ({"phone": "13900000011", "status": "active"}, "phone", MSG_NO_CHANGE),
    ({"status": "deleted"}, "status", MSG_STATUS),
    ({"status": "<script>"}, "status", MSG_STATUS),
    ({"phone": "１３９００００００１２"}, "phone", MSG_PHONE_FORMAT),
    ({"phone": "1390000001"}, "phone", MSG_PHONE_FORMAT),
])
def test_s15_update_refuses_bad_changes(app: Flask, kwargs: dict[str, Any], field: str,
                                        message: str) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000011", "操作员一")
    with pytest.raises(FieldError) as caught:
        update_operator(tenant, operator, service=FakeVerifier(), **kwargs)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_s15_s14_update_to_a_bound_or_used_phone_is_refused(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000012", "操作员二")
    foreign, _ = other()
    make_operator(foreign, "13900000011", "操作员一")
    create_person("13900000013", "路人", PASSWORD, must_change=False)
    db.session.commit()
    carrier = FakeVerifier()
    with pytest.raises(FieldError) as caught:
        update_operator(tenant, operator, phone="13900000011", service=carrier)
    assert caught.value.message == MSG_PHONE_BOUND
    with pytest.raises(FieldError) as caught:
        update_operator(tenant, operator, phone="13900000013", service=carrier)
    assert caught.value.message == MSG_PHONE_OTHER_ACCOUNT
    assert carrier.calls == []


def test_s15_s13_update_with_a_failed_check_changes_nothing(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000012", "操作员一")
    before = counts()
    with pytest.raises(PhoneCheckFailed):
        update_operator(tenant, operator, phone="13900000011", status="disabled",
                        service=FakeVerifier(Outcome.MISMATCH))
    db.session.commit()
    assert counts() == before
    assert reload(operator.account).phone == "13900000012"
    assert reload(operator).status == "active"


# --- delete_operator (S15) ------------------------------------------------------------------

def test_s15_delete_is_a_status_and_ends_everything(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000011", "操作员一")
    token = token_for(operator.account_id, operator.identity_id, 1)
    before = counts()
    after = delete_operator(tenant, operator)
    db.session.commit()
    after()
    assert counts() == before  # nothing erased
    assert reload(operator).status == "deleted"
    assert reload(operator.account).status == "deleted"
    assert db.session.get(Identity, operator.identity_id).status == "deleted"
    assert reload(token).revoked_at is not None
    assert events("operator.delete")[-1].detail["account_deleted"] is True
    with pytest.raises(FieldError) as caught:
        delete_operator(tenant, reload(operator))
    assert caught.value.message == MSG_DELETED
    with pytest.raises(FieldError) as caught:
        update_operator(tenant, reload(operator), status="active")
    assert caught.value.message == MSG_DELETED


def test_s15_delete_keeps_an_account_that_works_elsewhere(app: Flask) -> None:
    enterprise, tenant = demo()
    operator = make_operator(enterprise, "13900000011", "操作员一")
    handler = Identity(account_id=operator.account_id, organisation_id=enterprise.id,
                       role="committee_handler", platform="repair_fund")
    db.session.add(handler)
    db.session.commit()
    mine = token_for(operator.account_id, operator.identity_id, 1)
    elsewhere = token_for(operator.account_id, handler.id, 2)
    after = delete_operator(tenant, operator)
    db.session.commit()
    after()
    assert reload(operator.account).status == "active"
    assert reload(mine).revoked_at is not None and reload(elsewhere).revoked_at is None
