"""实名认证申请 and 用户审核 (S16): a member of staff applies to their enterprise from a public
page; the enterprise's admin approves (the operator account and its identity are made) or
rejects with a reason the applicant reads in 「用户名查询」 (T05).

Who may act, decided at the data layer:

* applying: whoever proves the phone by an SMS code of its own purpose (``staff``), so that a
  code asked for on the login or look-up page cannot complete this form;
* deciding: the admin of the enterprise, through a ``Tenant`` (``idp.console.tenant``). Every
  query starts from ``tenant.id``: another enterprise's application is "not found" (404).

The order of the checks on submission matters:

1. every field is parsed first (all messages at once); nothing is looked up for a malformed
   form and the SMS code's tries are not spent on it;
2. the SMS code is checked (not yet used up) *before* S14 and the pending-application check, so
   the public form tells nobody whether a phone is bound unless they hold that phone;
3. the carrier check of name + phone (手机二要素) runs only for a proven phone — it is billed,
   and a public form must not become a free oracle of who owns which number. A failed check
   leaves the code alive, so the applicant can correct the name; the code's five tries bound
   the carrier calls a code can buy;
4. the code is used up, then the application is written. Store operations come before the
   first write of the transaction: on SQLite the store shares the database file, and the store
   must never wait for a lock this request holds.

The approval creates the operator through ``idp.console.operators`` (``check_new`` +
``add_operator``), so that S14, the partial unique index ``uq_operator_live_account`` and the
audit of 操作员管理 hold for approved applicants exactly as for operators an admin adds. That
runs the carrier check a second time, on purpose: days may pass between submission and
decision, mobile numbers are recycled, and the admin's decision should rest on the carrier's
answer of the day (the same rule S15 applies to a changed number). It costs one more billable
call per approval; a failed re-check leaves the application pending with the carrier's message,
and the admin rejects it with a reason.

The 证件号 is sealed (AES-GCM, purpose ``staff_id_number``): the admin reads it on the detail
page, lists show only a masked hint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app

from idp import audit
from idp.accounts.models import Account
from idp.auth.phone import sms_codes
from idp.auth.sms import MSG_EXPIRED
from idp.console.models import APPLICATION_STATUSES, OPERATOR_ROLES, Operator, StaffApplication
from idp.console.operators import (
    MSG_PHONE_BOUND,
    add_operator,
    check_new,
    phone_is_bound,
    verifier,
)
from idp.console.tenant import MAX_ID, Tenant
from idp.db import utcnow
from idp.errors import FieldChecker, FieldError, FormInvalid, IdpError
from idp.extensions import db
from idp.gateways.phone import PhoneVerifier, message_for
from idp.orgs.models import Organisation
from idp.registration.committees import mask, send_verify_code
from idp.security import seal, unseal
from idp.validators import (
    ID_TYPES,
    MSG_CHOICE,
    normalize_id_number,
    normalize_mobile,
    normalize_name,
    normalize_uscc,
)

SMS_STAFF = "staff"  # SMS code purpose of 「实名认证申请」
SEAL_PURPOSE = "staff_id_number"
PAGE_SIZE = 20
MAX_PAGE = 100_000
REASON_LIMIT = 500

MSG_SUBMITTED = "申请已提交，请等待企业管理员审核。审核结果可通过「用户名查询」查看。"
MSG_PENDING = "您已提交过申请，请等待企业管理员审核"
MSG_USCC_REQUIRED = "请输入所属企业统一社会信用代码"
MSG_ENTERPRISE_UNKNOWN = "未找到该统一社会信用代码对应的已注册物业服务企业，请核对后重新输入。"
MSG_OFFICE = "请输入小区管理处名称（1–100个字符，不含特殊符号），不属于管理处的可不填"
MSG_OFFICE_UNKNOWN = "所属企业没有该名称的小区管理处，请核对管理处名称（不属于管理处的可不填）"
MSG_OFFICE_AMBIGUOUS = "所属企业有多个同名的小区管理处，请联系企业管理员"
MSG_NAME = "请输入姓名（证件上的姓名，1–50个字符，不含数字和特殊符号）"
MSG_ID_NUMBER_REQUIRED = "请输入证件号码"
MSG_PHONE_REQUIRED = "请输入手机号码"
MSG_SMS_REQUIRED = "请输入手机验证码"
MSG_REASON = "请填写驳回原因（1–500个字符）"
MSG_REASON_HTML = "驳回原因不能包含<>"
MSG_DECIDED = "该申请已处理"
MSG_DEPARTMENT_GONE = "申请的小区管理处已删除或停用，无法通过该申请，请驳回并说明原因。"
MSG_NOT_FOUND = "申请不存在"


class ApplicationInvalid(FormInvalid):
    """Bad fields of the application form; ``errors`` maps each to its message."""


class ApplicationNotFound(IdpError):
    """No application of this enterprise has that id (another enterprise's is not found
    either)."""

    def __init__(self) -> None:
        super().__init__(MSG_NOT_FOUND)


class AlreadyDecided(IdpError):
    """Approved or rejected already (by this admin in another tab, or another admin)."""

    def __init__(self) -> None:
        super().__init__(MSG_DECIDED)


# --- what the applicant typed ---------------------------------------------------------------------

def _text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""


def _enterprise(raw: str) -> Organisation:
    if not raw.strip():
        raise FieldError("uscc", MSG_USCC_REQUIRED)
    uscc = normalize_uscc(raw, "uscc")
    enterprise = db.session.scalar(sa.select(Organisation).where(
        Organisation.uscc == uscc, Organisation.type == "enterprise",
        Organisation.status == "active"))
    if enterprise is None:
        raise FieldError("uscc", MSG_ENTERPRISE_UNKNOWN)
    return enterprise


def _office_name(raw: str) -> str:
    """管理处名称's shape: the house rule for organisation names."""
    return normalize_name(raw, "office", 100, MSG_OFFICE, organisation=True)


def _office(enterprise: Organisation, raw: str) -> Organisation:
    """The live 小区管理处 of ``enterprise`` with exactly that name."""
    name = _office_name(raw)
    offices = list(db.session.scalars(sa.select(Organisation).where(
        Organisation.type == "office", Organisation.parent_id == enterprise.id,
        Organisation.status == "active", Organisation.name == name).limit(2)))
    if not offices:
        raise FieldError("office", MSG_OFFICE_UNKNOWN)
    if len(offices) > 1:
        raise FieldError("office", MSG_OFFICE_AMBIGUOUS)
    return offices[0]


def _id_type(raw: str) -> str:
    value = raw.strip()
    if value not in ID_TYPES:
        raise FieldError("id_type", MSG_CHOICE)
    return value


def _id_number(id_type: str, raw: str) -> str:
    if not raw.strip():
        raise FieldError("id_number", MSG_ID_NUMBER_REQUIRED)
    return normalize_id_number(id_type, raw, "id_number")


def _phone(raw: str) -> str:
    if not raw.strip():
        raise FieldError("phone", MSG_PHONE_REQUIRED)
    return normalize_mobile(raw, "phone")


def mask_id_number(number: str) -> str:
    """The hint lists show: the first and last quarter (at most 4 each) of the number,
    e.g. 3101**********1234 for a 居民身份证."""
    keep = min(4, len(number) // 4)
    return number[:keep] + "*" * (len(number) - 2 * keep) + number[len(number) - keep:]


@dataclass(frozen=True)
class Facts:
    """A checked application form (everything but the SMS code's validity)."""

    enterprise: Organisation
    department: Organisation  # the enterprise itself, or the office named
    name: str
    id_type: str
    id_number: str
    phone: str
    sms_code: str


def parse_application(form: Mapping[str, Any]) -> Facts:
    """Judge every field; raise ApplicationInvalid with all the messages."""
    check = FieldChecker()
    enterprise = check.take(_enterprise, _text(form, "uscc"))
    department: Organisation | None = enterprise
    office_name = _text(form, "office")
    if office_name.strip() and enterprise is not None:
        department = check.take(_office, enterprise, office_name)
    elif office_name.strip():  # no enterprise to look in; the shape is still judged
        check.take(_office_name, office_name)
    name = check.take(normalize_name, _text(form, "name"), "name", 50, MSG_NAME)
    id_type = check.take(_id_type, _text(form, "id_type"))
    id_number = check.take(_id_number, id_type, _text(form, "id_number")) if id_type else None
    phone = check.take(_phone, _text(form, "phone"))
    code = _text(form, "sms_code").strip()
    if not code:
        check.fail("sms_code", MSG_SMS_REQUIRED)
    if check.errors:
        raise ApplicationInvalid(check.errors)
    assert enterprise is not None and department is not None and name is not None
    assert id_type is not None and id_number is not None and phone is not None
    return Facts(enterprise, department, name, id_type, id_number, phone, code)


# --- applying (public) ---------------------------------------------------------------------------

def send_code(raw_phone: str, ip: str) -> str:
    """The 【获取验证码】 button of the form: the same answer for every well-formed number."""
    return send_verify_code(raw_phone, "phone", ip, SMS_STAFF)


def _refuse(facts: Facts, field_name: str, message: str, reason: str) -> ApplicationInvalid:
    """Audit a refused application and return the error to raise. Only reads came before,
    so the commit keeps the audit trail and nothing else."""
    audit.record("staff.apply", audit.FAILURE, organisation_id=facts.enterprise.id,
                 phone=mask(facts.phone), reason=reason)
    db.session.commit()
    return ApplicationInvalid({field_name: message})


def has_pending(enterprise_id: int, phone: str) -> bool:
    return db.session.scalar(sa.select(StaffApplication.id).where(
        StaffApplication.enterprise_id == enterprise_id, StaffApplication.phone == phone,
        StaffApplication.status == "pending").limit(1)) is not None


def submit(form: Mapping[str, Any], service: PhoneVerifier | None = None) -> StaffApplication:
    """「实名认证申请」: a pending application, or ApplicationInvalid with nothing written but
    the audit trail. See the module's docstring for the order of the checks."""
    facts = parse_application(form)
    codes = sms_codes()
    try:
        codes.check(facts.phone, facts.sms_code, SMS_STAFF)
    except FieldError as exc:
        raise _refuse(facts, "sms_code", exc.message, "sms_code") from None
    if phone_is_bound(facts.phone):
        raise _refuse(facts, "phone", MSG_PHONE_BOUND, "phone_bound")
    if has_pending(facts.enterprise.id, facts.phone):
        raise _refuse(facts, "phone", MSG_PENDING, "pending")
    result = (service or verifier()).verify(facts.name, facts.phone)
    if not result.matched:
        audit.record("operator.phone_check", audit.FAILURE, organisation_id=facts.enterprise.id,
                     purpose="staff_apply", outcome=str(result.outcome), carrier=result.carrier,
                     request_id=result.request_id, billable=result.billable)
        raise _refuse(facts, "phone", message_for(result) or "", "phone_check")
    if not codes.consume(facts.phone, SMS_STAFF):  # a second submission used it first
        raise _refuse(facts, "sms_code", MSG_EXPIRED, "sms_code")
    audit.record("operator.phone_check", organisation_id=facts.enterprise.id,
                 purpose="staff_apply", outcome=str(result.outcome), carrier=result.carrier,
                 request_id=result.request_id, billable=result.billable)
    settings = current_app.config["IDP"]
    application = StaffApplication(
        enterprise_id=facts.enterprise.id, department_id=facts.department.id,
        phone=facts.phone, name=facts.name, id_type=facts.id_type,
        id_number_sealed=seal(settings.key_passphrase, SEAL_PURPOSE, facts.id_number),
        id_number_hint=mask_id_number(facts.id_number), status="pending")
    db.session.add(application)
    db.session.flush()
    audit.record("staff.apply", organisation_id=facts.enterprise.id, application=application.id,
                 department_id=facts.department.id, phone=mask(facts.phone))
    db.session.commit()
    return application


def applications_for_phone(phone: str) -> list[tuple[StaffApplication, str]]:
    """用户名查询 (T05): the phone's own applications with the enterprise's name — nothing of
    any other phone (the query is filtered by it)."""
    rows = db.session.execute(
        sa.select(StaffApplication, Organisation.name)
        .join(Organisation, Organisation.id == StaffApplication.enterprise_id)
        .where(StaffApplication.phone == phone)
        .order_by(StaffApplication.id.desc())).all()
    return [(application, name) for application, name in rows]


# --- 用户审核 (the enterprise admin) ---------------------------------------------------------

@dataclass
class ApplicationPage:
    status: str
    items: list[StaffApplication]
    counts: dict[str, int]
    page: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, math.ceil(self.counts.get(self.status, 0) / PAGE_SIZE))

    @property
    def first_number(self) -> int:
        """序号 of the first row of the page."""
        return (self.page - 1) * PAGE_SIZE + 1


def _scoped(tenant: Tenant) -> sa.Select[StaffApplication]:
    return sa.select(StaffApplication).where(StaffApplication.enterprise_id == tenant.id)


def list_applications(tenant: Tenant, status: str, page: int = 1) -> ApplicationPage:
    """One page of one tab (待审核 / 已通过 / 已驳回), oldest first for the queue, newest first
    for the decided ones; counts of every tab. Served by ``ix_staff_application_queue``."""
    status = status if status in APPLICATION_STATUSES else "pending"
    counted = db.session.execute(
        sa.select(StaffApplication.status, sa.func.count())
        .where(StaffApplication.enterprise_id == tenant.id)
        .group_by(StaffApplication.status)).all()
    counts = {key: 0 for key in APPLICATION_STATUSES}
    counts.update({key: int(n) for key, n in counted})
    pages = max(1, math.ceil(counts[status] / PAGE_SIZE))
    page = min(max(1, page), pages, MAX_PAGE)
    order = StaffApplication.id if status == "pending" else StaffApplication.id.desc()
    items = list(db.session.scalars(
        _scoped(tenant).where(StaffApplication.status == status).order_by(order)
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return ApplicationPage(status=status, items=items, counts=counts, page=page)


def get_application(tenant: Tenant, application_id: object, *,
                    lock: bool = False) -> StaffApplication:
    """The tenant's application ``application_id`` (locked for a decision when ``lock``)."""
    text = str(application_id)
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise ApplicationNotFound()
    query = _scoped(tenant).where(StaffApplication.id == int(text))
    if lock:  # the row as it is now, not as this request read it before waiting for the lock
        query = query.with_for_update(of=StaffApplication).execution_options(
            populate_existing=True)
    found = db.session.scalar(query)
    if found is None:
        raise ApplicationNotFound()
    return found


def id_number_of(application: StaffApplication) -> str | None:
    """The full 证件号 for the admin; None if it cannot be opened (the key was changed)."""
    try:
        return unseal(current_app.config["IDP"].key_passphrase, SEAL_PURPOSE,
                      application.id_number_sealed)
    except ValueError:
        return None


def operator_of(application: StaffApplication) -> Operator | None:
    if application.operator_id is None:
        return None
    return db.session.get(Operator, application.operator_id)


def _decide(tenant: Tenant, application: StaffApplication, **values: Any) -> None:
    """Set the decision only if the application is still pending — one UPDATE with the status
    in its WHERE, so two decisions at once (two tabs, two admins) cannot both land, on either
    database; the loser's transaction is rolled back whole."""
    done = db.session.execute(
        sa.update(StaffApplication)
        .where(StaffApplication.id == application.id,
               StaffApplication.enterprise_id == tenant.id,
               StaffApplication.status == "pending")
        .values(decided_by=tenant.actor_id, decided_at=utcnow(), **values)
        .execution_options(synchronize_session=False))
    if getattr(done, "rowcount", 0) != 1:
        db.session.rollback()
        raise AlreadyDecided()
    db.session.expire(application)


@dataclass(frozen=True)
class Approved:
    application: StaffApplication
    operator: Operator
    account: Account
    initial_password: str | None  # SMS it after commit (send_initial_passwords)
    role_label: str


def approve(tenant: Tenant, application_id: object,
            service: PhoneVerifier | None = None) -> Approved:
    """【通过】: the operator is made as 增加 (S12–S14) makes one, with the applicant's name
    and phone and the department applied for. Raises ApplicationNotFound, AlreadyDecided,
    FieldError (S14, a department gone) or PhoneCheckFailed; on those nothing but audit
    events has been written. The caller commits, then sends the initial password."""
    application = get_application(tenant, application_id, lock=True)
    if application.status != "pending":
        raise AlreadyDecided()
    try:
        new = check_new(tenant, name=application.name, department_id=application.department_id,
                        category=None, phone=application.phone, role=None,
                        remark=f"实名认证申请{application.id}审核通过")
    except FieldError as exc:
        if exc.field == "department_id":
            raise FieldError("decision", MSG_DEPARTMENT_GONE) from None
        raise FieldError("decision", exc.message) from None
    try:
        operator, initial = add_operator(tenant, new, service)
    except FieldError as exc:
        raise FieldError("decision", exc.message) from None
    _decide(tenant, application, status="approved", operator_id=operator.id, reason=None)
    audit.record("staff.approve", account_id=tenant.actor_id, organisation_id=tenant.id,
                 application=application.id, operator_id=operator.id,
                 subject=operator.account_id, by=tenant.actor)
    return Approved(application, operator, operator.account, initial,
                    OPERATOR_ROLES.get(new.role, new.role))


def parse_reason(raw: str | None) -> str:
    """驳回原因: shown to the applicant, so plain text — blanks collapse, 1–500 characters,
    no angle brackets (escaped on every page anyway, but a reason is not markup)."""
    reason = " ".join((raw or "").split())
    if not 0 < len(reason) <= REASON_LIMIT or not reason.isprintable():
        raise FieldError("reason", MSG_REASON)
    if "<" in reason or ">" in reason:
        raise FieldError("reason", MSG_REASON_HTML)
    return reason


def reject(tenant: Tenant, application_id: object, raw_reason: str | None) -> StaffApplication:
    """【驳回】 with a reason (caller commits). A decided application is AlreadyDecided before
    the reason is judged: there is nothing left to decide."""
    application = get_application(tenant, application_id, lock=True)
    if application.status != "pending":
        raise AlreadyDecided()
    reason = parse_reason(raw_reason)
    _decide(tenant, application, status="rejected", reason=reason)
    audit.record("staff.reject", account_id=tenant.actor_id, organisation_id=tenant.id,
                 application=application.id, reason=reason, by=tenant.actor)
    return application


def refused(tenant: Tenant, decision: str, application_id: int, message: str) -> None:
    """Audit a decision that could not be made (nothing else is kept) and commit that."""
    audit.record(f"staff.{decision}", audit.FAILURE, account_id=tenant.actor_id,
                 organisation_id=tenant.id, application=application_id, reason=message)
    db.session.commit()

