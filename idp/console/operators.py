"""操作员管理 (S11–S15): the enterprise admin's people, as a service the console views, the
admin API and SCIM share.

Every function takes the ``Tenant`` and finds rows only through it (``_scoped``), so another
enterprise's operator is "not found" whatever id is asked for. Adding runs the carrier check of
name + phone (手机二要素, a ``PhoneVerifier`` chosen in config) before anything is written;
S14 ("one enterprise or office role per phone") is checked first for a clear message and then
held by the partial unique index ``uq_operator_live_account`` against simultaneous saves.
Deleting is a status (S15): the row, the identity and the audit trail stay; the account's
tokens and sessions end at once (``cut_off``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.models import Account, Identity
from idp.accounts.service import cut_off, random_initial_password
from idp.auth.password import Passwords
from idp.console.models import (
    CATEGORIES,
    OPERATOR_PLATFORM,
    OPERATOR_ROLES,
    OPERATOR_STATUSES,
    ROLE_OF_CATEGORY,
    Operator,
)
from idp.console.tenant import MAX_ID, Tenant
from idp.errors import FieldError, IdpError
from idp.extensions import db
from idp.gateways.phone import PhoneVerifier, Verification, message_for
from idp.orgs.models import Organisation
from idp.validators import normalize_mobile, normalize_name

MSG_PHONE_BOUND = "该手机号已绑定维修资金系统物业企业（含小区管理处）角色，请重新输入正确的手机号。"
MSG_PHONE_OTHER_ACCOUNT = "该手机号已被其他账号使用，请重新输入正确的手机号。"
MSG_PHONE_SHARED = "该操作员的账号还用于其他单位或身份，不能在此修改手机号，请联系平台管理员。"
MSG_OPERATOR_NAME = "请输入操作员姓名（身份证上的姓名，1–50个字符）"
MSG_DEPARTMENT = "请选择部门（本企业或所属小区管理处）"
MSG_CATEGORY = "部门类别与所选部门不一致"
MSG_ROLE = "角色与部门类别不一致"
MSG_REMARK = "备注最多200个字符"
MSG_REMARK_HTML = "备注不能包含<>"
MSG_PHONE_REQUIRED = "请输入手机号码"
MSG_ACCOUNT_DISABLED = "该手机号的账号已被平台停用，请联系平台管理员。"
MSG_CHOICE = "请从列表中选择"
MSG_STATUS = "请选择操作员状态"
MSG_NO_CHANGE = "没有需要保存的修改"
MSG_DELETED = "该操作员已删除，不能修改"
MSG_FILTER_ID = "操作员ID应为数字"
MSG_FILTER_TEXT = "请输入不超过50个字符的查询条件"
# Roles an account may hold on the fund system that make its phone "bound" (S14).
BOUND_ROLES = ("enterprise_admin", "operator", "office")
EDITABLE_STATUSES = ("active", "disabled")  # 修改: 正常使用 ⇄ 停用; 删除 is its own action
PAGE_SIZES = (10, 20, 50)
MAX_PAGE = 100_000
_CODE = re.compile(r"[0-9A-Za-z-]{1,32}", re.ASCII)


class OperatorNotFound(IdpError):
    """No operator of this enterprise has that id (another enterprise's is not found either)."""

    def __init__(self) -> None:
        super().__init__("操作员不存在")


class PhoneCheckFailed(IdpError):
    """The carrier did not confirm name + phone (S13 and the other outcomes): nothing saved."""

    def __init__(self, verification: Verification) -> None:
        super().__init__(message_for(verification) or "")
        self.verification = verification


@dataclass(frozen=True)
class OperatorFilter:
    """The list's filters (S11): 操作员ID, 操作员姓名 (starts with), 操作员状态, 操作员类别,
    所属单位编码, 所属单位名称 (contains)."""

    operator_id: str = ""
    name: str = ""
    status: str = ""
    category: str = ""
    unit_code: str = ""
    unit_name: str = ""

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> tuple[OperatorFilter, dict[str, str]]:
        """Filters from a query string; unusable ones are dropped and named in ``errors``."""
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        raw_id = (args.get("operator_id") or "").strip()
        if raw_id:
            if _is_id_text(raw_id):
                values["operator_id"] = str(int(raw_id))
            else:
                errors["operator_id"] = MSG_FILTER_ID
        for key in ("name", "unit_name"):
            text = " ".join((args.get(key) or "").split())
            if text:
                if len(text) <= 50 and text.isprintable():
                    values[key] = text
                else:
                    errors[key] = MSG_FILTER_TEXT
        code = (args.get("unit_code") or "").strip()
        if code:
            if _CODE.fullmatch(code):
                values["unit_code"] = code.upper()
            else:
                errors["unit_code"] = MSG_FILTER_TEXT
        for key, options in (("status", OPERATOR_STATUSES), ("category", CATEGORIES)):
            value = (args.get(key) or "").strip()
            if value:
                if value in options:
                    values[key] = value
                else:
                    errors[key] = MSG_CHOICE
        return cls(**values), errors

    def as_args(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class OperatorPage:
    items: list[Operator]
    total: int
    page: int
    size: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, math.ceil(self.total / self.size))

    @property
    def first_number(self) -> int:
        """序号 of the first row of the page."""
        return (self.page - 1) * self.size + 1


def _is_id_text(text: str) -> bool:
    """ASCII digits naming a possible row. The length is checked before ``int``: Python refuses
    to convert more than 4300 digits (a ValueError, a 500), and ten digits are past any id."""
    return (0 < len(text) <= 10 and text.isascii() and text.isdigit()
            and 0 < int(text) <= MAX_ID)


def _scoped(tenant: Tenant) -> sa.Select[Operator]:
    return sa.select(Operator).where(Operator.enterprise_id == tenant.id)


def list_operators(tenant: Tenant, filters: OperatorFilter, page: int = 1,
                   size: int = 20) -> OperatorPage:
    """One page of the tenant's operators, oldest ID first. Each filter meets an index that
    starts with the tenant (``ix_operator_tenant_*``); the unit filters resolve to the few
    departments of this enterprise first."""
    query = _scoped(tenant)
    if filters.operator_id:
        query = query.where(Operator.id == int(filters.operator_id))
    if filters.name:
        escaped = filters.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Operator.name.like(escaped + "%", escape="\\"))
    if filters.status:
        query = query.where(Operator.status == filters.status)
    if filters.category:
        query = query.where(Operator.category == filters.category)
    if filters.unit_code or filters.unit_name:
        departments = [d for d in tenant.departments()
                       if (not filters.unit_code or d.unit_code.upper() == filters.unit_code)
                       and (not filters.unit_name or filters.unit_name in d.name)]
        query = query.where(Operator.department_id.in_([d.id for d in departments] or [-1]))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    size = size if size in PAGE_SIZES else 20
    pages = max(1, math.ceil(total / size))
    page = min(max(1, page), pages, MAX_PAGE)
    items = list(db.session.scalars(
        query.order_by(Operator.id).offset((page - 1) * size).limit(size)))
    return OperatorPage(items=items, total=total, page=page, size=size)


def get_operator(tenant: Tenant, operator_id: object) -> Operator:
    text = str(operator_id)
    if not _is_id_text(text):
        raise OperatorNotFound()
    row = db.session.scalar(_scoped(tenant).where(Operator.id == int(text)))
    if row is None:
        raise OperatorNotFound()
    return row


def phone_is_bound(phone: str, *, except_account: str | None = None) -> bool:
    """S14: the phone's account is a live operator somewhere, or holds an enterprise or office
    role on the fund system (an enterprise's admins, operators made before the console)."""
    account_id = db.session.scalar(sa.select(Account.id).where(Account.phone == phone))
    if account_id is None or account_id == except_account:
        return False
    live = db.session.scalar(sa.select(Operator.id).where(
        Operator.account_id == account_id, Operator.status != "deleted").limit(1))
    if live is not None:
        return True
    role = db.session.scalar(sa.select(Identity.id).where(
        Identity.account_id == account_id, Identity.platform == OPERATOR_PLATFORM,
        Identity.role.in_(BOUND_ROLES), Identity.status.in_(("active", "pending"))).limit(1))
    return role is not None


def verifier() -> PhoneVerifier:
    service: PhoneVerifier = current_app.extensions["idp.phone_verifier"]
    return service


def _check_carrier(tenant: Tenant, name: str, phone: str, purpose: str,
                   service: PhoneVerifier | None) -> None:
    """手机二要素校验; audited with its outcome (never the name or phone in the detail)."""
    result = (service or verifier()).verify(name, phone)
    audit.record("operator.phone_check", audit.SUCCESS if result.matched else audit.FAILURE,
                 account_id=tenant.actor_id, organisation_id=tenant.id, purpose=purpose,
                 outcome=str(result.outcome), carrier=result.carrier,
                 request_id=result.request_id, billable=result.billable)
    if not result.matched:
        raise PhoneCheckFailed(result)


def _remark(raw: str | None) -> str:
    """Free text, shown escaped; markup is refused rather than stored (it also reaches the
    relying parties through the admin API)."""
    text = " ".join((raw or "").split())
    if len(text) > 200 or not text.isprintable():
        raise FieldError("remark", MSG_REMARK)
    if "<" in text or ">" in text:
        raise FieldError("remark", MSG_REMARK_HTML)
    return text


@dataclass(frozen=True)
class NewOperator:
    """A checked 增加 form (S12)."""

    name: str
    department: Organisation
    category: str
    role: str
    phone: str
    remark: str


def check_new(tenant: Tenant, *, name: str, department_id: object, category: str | None,
              phone: str, role: str | None, remark: str | None) -> NewOperator:
    """Validate the 增加 form; the first bad field raises FieldError. 部门类别 and 角色 follow
    the department when left empty, and must agree with it when given (the seed: one account
    cannot be both an enterprise's and an office's)."""
    clean_name = normalize_name(name, "name", 50, MSG_OPERATOR_NAME)
    raw_department = str(department_id or "").strip()
    department = tenant.department(raw_department) if _is_id_text(raw_department) else None
    if department is None:
        raise FieldError("department_id", MSG_DEPARTMENT)
    kind = "office" if department.type == "office" else "enterprise"
    category = (category or "").strip() or kind
    if category not in CATEGORIES:
        raise FieldError("category", MSG_CHOICE)
    if category != kind:
        raise FieldError("category", MSG_CATEGORY)
    role = (role or "").strip() or ROLE_OF_CATEGORY[kind]
    if role not in OPERATOR_ROLES:
        raise FieldError("role", MSG_CHOICE)
    if role != ROLE_OF_CATEGORY[kind]:
        raise FieldError("role", MSG_ROLE)
    if not (phone or "").strip():
        raise FieldError("phone", MSG_PHONE_REQUIRED)
    clean_phone = normalize_mobile(phone, "phone")
    return NewOperator(name=clean_name, department=department, category=category, role=role,
                       phone=clean_phone, remark=_remark(remark))


def add_operator(tenant: Tenant, new: NewOperator,
                 service: PhoneVerifier | None = None) -> tuple[Operator, str | None]:
    """增加 (S12–S14). Returns the operator and, when a person account was created (or a
    deleted one brought back), its initial password — for the caller to SMS after commit
    (``send_initial_passwords``); it is never shown and never stored in clear. Raises
    FieldError (S14 on ``phone``) or PhoneCheckFailed (S13 …) with nothing written."""
    if phone_is_bound(new.phone):
        # Audited like the race below: a refusal an admin may ask about later.
        audit.record("operator.create", audit.FAILURE, account_id=tenant.actor_id,
                     organisation_id=tenant.id, reason="phone_bound")
        raise FieldError("phone", MSG_PHONE_BOUND)
    if db.session.scalar(sa.select(Account.status).where(Account.phone == new.phone)) == "disabled":
        raise FieldError("phone", MSG_ACCOUNT_DISABLED)  # before the (billed) carrier check
    _check_carrier(tenant, new.name, new.phone, "create", service)
    # The department must still be live (an office deleted since the form was shown), and stay
    # so until we commit: offices.delete_office waits for this transaction (see its _lock).
    if db.session.scalar(sa.select(Organisation.id).where(
            Organisation.id == new.department.id, Organisation.status == "active")
            .with_for_update(read=True)) is None:
        raise FieldError("department_id", MSG_DEPARTMENT)
    passwords: Passwords = current_app.extensions["idp.passwords"]
    initial: str | None = None
    try:
        with db.session.begin_nested():
            account = db.session.scalar(sa.select(Account).where(Account.phone == new.phone))
            if account is None:
                initial = random_initial_password()
                account = Account(kind="person", phone=new.phone, name=new.name,
                                  password_hash=passwords.hash(initial),
                                  must_change_password=True)
                db.session.add(account)
                db.session.flush()
                audit.record("account.create", account_id=account.id, kind="person",
                             by=tenant.actor, organisation_id=tenant.id)
            elif account.status == "disabled":
                # Blocked by the platform's administrators: not an enterprise admin's to undo.
                raise FieldError("phone", MSG_ACCOUNT_DISABLED)
            elif account.status == "deleted":
                # A person deleted before (S15) is added again: same account, fresh password.
                initial = random_initial_password()
                account.status = "active"
                account.password_hash = passwords.hash(initial)
                account.must_change_password = True
            identity = db.session.scalar(sa.select(Identity).where(
                Identity.account_id == account.id,
                Identity.organisation_id == new.department.id,
                Identity.role == new.role, Identity.platform == OPERATOR_PLATFORM))
            if identity is None:
                identity = Identity(account_id=account.id, organisation_id=new.department.id,
                                    role=new.role, platform=OPERATOR_PLATFORM)
                db.session.add(identity)
            identity.status = "active"
            db.session.flush()
            operator = Operator(enterprise_id=tenant.id, department_id=new.department.id,
                                account_id=account.id, identity_id=identity.id,
                                name=new.name, category=new.category, role=new.role,
                                remark=new.remark, status="active",
                                created_by=tenant.actor)
            db.session.add(operator)
            db.session.flush()
    except IntegrityError:
        # Another save of this phone won the race (uq_operator_live_account, account.phone).
        audit.record("operator.create", audit.FAILURE, account_id=tenant.actor_id,
                     organisation_id=tenant.id, reason="phone_bound")
        raise FieldError("phone", MSG_PHONE_BOUND) from None
    audit.record("operator.create", account_id=tenant.actor_id, organisation_id=tenant.id,
                 operator_id=operator.id, subject=account.id, department_id=new.department.id,
                 role=new.role, by=tenant.actor)
    return operator, initial


def update_operator(tenant: Tenant, operator: Operator, *, phone: str | None = None,
                    status: str | None = None,
                    service: PhoneVerifier | None = None) -> Callable[[], None]:
    """修改 (S15): only the phone number and the status. A new phone passes S14 and the carrier
    check with the operator's name; 停用 ends the operator's tokens at once. Returns what to do
    after commit (the back-channel notices)."""
    if operator.status == "deleted":
        raise FieldError("status", MSG_DELETED)
    account = operator.account
    new_phone = normalize_mobile(phone, "phone") if phone else account.phone
    new_status = (status or "").strip() or operator.status
    if new_status not in EDITABLE_STATUSES:
        raise FieldError("status", MSG_STATUS)
    if new_phone == account.phone and new_status == operator.status:
        raise FieldError("phone", MSG_NO_CHANGE)
    after: list[Callable[[], None]] = []
    changes: dict[str, object] = {}
    if new_phone != account.phone:
        assert new_phone is not None
        # The phone is the person's login everywhere: an enterprise may change it only for an
        # account that works for it alone (not a committee handler's or an admin's).
        if db.session.scalar(sa.select(Identity.id).where(
                Identity.account_id == account.id, Identity.id != operator.identity_id,
                Identity.status.in_(("active", "pending"))).limit(1)) is not None:
            raise FieldError("phone", MSG_PHONE_SHARED)
        if phone_is_bound(new_phone, except_account=account.id):
            raise FieldError("phone", MSG_PHONE_BOUND)
        if db.session.scalar(sa.select(Account.id).where(
                Account.phone == new_phone, Account.id != account.id)) is not None:
            raise FieldError("phone", MSG_PHONE_OTHER_ACCOUNT)
        _check_carrier(tenant, operator.name, new_phone, "change_phone", service)
        try:
            with db.session.begin_nested():
                account.phone = new_phone
                db.session.flush()
        except IntegrityError:
            raise FieldError("phone", MSG_PHONE_BOUND) from None
        changes["phone"] = "changed"  # the numbers stay out of the audit detail
        # The old number may be in someone else's hands now: end what it logged in.
        after.append(cut_off(account.id, "operator.phone_changed"))
    if new_status != operator.status:
        changes["status"] = [operator.status, new_status]
        operator.status = new_status
        operator.identity.status = new_status
        if new_status == "disabled":
            after.append(cut_off(account.id, "operator.disabled", operator.identity_id))
    audit.record("operator.update", account_id=tenant.actor_id, organisation_id=tenant.id,
                 operator_id=operator.id, subject=account.id, changes=changes, by=tenant.actor)

    def after_commit() -> None:
        for step in after:
            step()

    return after_commit


def delete_operator(tenant: Tenant, operator: Operator) -> Callable[[], None]:
    """删除 (S15): the operator and its identity become ``deleted``; the account too, unless it
    still works elsewhere (a committee handler, say). Its tokens and sessions end at once."""
    if operator.status == "deleted":
        raise FieldError("status", MSG_DELETED)
    operator.status = "deleted"
    operator.identity.status = "deleted"
    account = operator.account
    others = db.session.scalar(sa.select(sa.func.count()).select_from(Identity).where(
        Identity.account_id == account.id, Identity.id != operator.identity_id,
        Identity.status.in_(("active", "pending"))))
    if not others:
        account.status = "deleted"
    audit.record("operator.delete", account_id=tenant.actor_id, organisation_id=tenant.id,
                 operator_id=operator.id, subject=account.id,
                 account_deleted=not others, by=tenant.actor)
    return cut_off(account.id, "operator.deleted",
                   None if not others else operator.identity_id)
