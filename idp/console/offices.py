"""小区管理处 (T03): the offices of an enterprise, managed by it without review.

The seed: an office is a branch of its enterprise, added by the enterprise under 「基础信息管理」
- 「小区管理处信息管理」 (新建 / 删除 / 修改 / 查看) and usable at once — no review. This is the
service the console pages (``idp.console.office_views``) and the admin API share.

* Tenant isolation lives in the query: every function takes the ``Tenant`` and finds offices
  only among ``parent_id == tenant.id``; another enterprise's office is ``OfficeNotFound`` like
  an unknown id, whatever a URL, a form or an API body says.
* Changes of one enterprise's offices are serialised by a row lock on the enterprise
  (``_lock``): the name check (「该管理处名称已存在」) and the next 管理处编码 would otherwise
  race between two simultaneous saves (the organisation table has no constraint on names).
* Deleting is a status (``disabled``): the row, its code and the audit trail stay, and the code
  is never given out again. An office's people are decided explicitly: with live operators the
  admin must choose to move them to the enterprise itself or to delete them (S15's delete);
  without a choice nothing changes (``OfficeHasOperators``).
* Services flush but never commit: the caller commits, then runs what a delete returns (the
  back-channel logout notices of the people cut off), so nothing waits on the network inside
  the transaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from idp import audit
from idp.accounts.models import Identity
from idp.accounts.service import cut_off
from idp.console.models import ROLE_OF_CATEGORY, Operator
from idp.console.operators import delete_operator
from idp.console.tenant import MAX_ID, Tenant
from idp.errors import FieldError, IdpError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.validators import normalize_name, normalize_tel

NAME_LIMIT = 100
CONTACT_NAME_LIMIT = 50
TEXT_LIMIT = 200  # 地址, 备注
MSG_NAME = "请输入管理处名称（1–100个字符，可含汉字、字母、数字和括号）"
MSG_NAME_TAKEN = "该管理处名称已存在"
MSG_CONTACT_NAME = "负责人姓名应为1–50个字符的姓名"
MSG_CONTACT_PHONE = "联系电话格式不正确（手机号或区号-电话号码）"
MSG_ADDRESS = "地址最多200个字符，不能包含 < > \" ' ; \\ ` 等符号"
MSG_REMARK = "备注最多200个字符，不能包含 < > \" ' ; \\ ` 等符号"
MSG_OPERATORS_CHOICE = "请选择如何处理这些操作员"
# 删除: what becomes of the office's live operators.
OPERATOR_CHOICES = {"move": "将这些操作员转到本企业", "delete": "同时删除这些操作员"}
OFFICE_STATUSES = {"active": "正常", "disabled": "已删除"}
PROFILE_KEYS = ("contact_name", "contact_phone", "address", "remark")
# Free text is shown back to people (and sent on to the relying parties): text, never markup
# or a fragment of a statement. Full-width ；＂ are ordinary Chinese punctuation and stay.
_FORBIDDEN_IN_TEXT = frozenset("<>\"';\\`")
_SUFFIX = re.compile(r"-(\d{1,9})$", re.ASCII)


class OfficeNotFound(IdpError):
    """No live office of this enterprise has that id (another enterprise's is not found either,
    nor is a deleted one)."""

    def __init__(self) -> None:
        super().__init__("小区管理处不存在")


class OfficeHasOperators(IdpError):
    """删除 without saying what becomes of the office's live operators: nothing changes."""

    def __init__(self, count: int) -> None:
        super().__init__(f"该管理处还有{count}名操作员，请选择如何处理这些操作员")
        self.count = count


@dataclass(frozen=True)
class OfficeForm:
    """A checked 新建 / 修改 form: the values as they will be stored."""

    name: str
    contact_name: str
    contact_phone: str
    address: str
    remark: str


# --- checking the form ----------------------------------------------------------------------

def _string(raw: object, field: str, message: str) -> str:
    """An API body may carry a number, a list or null where text belongs: refused as bad
    input of that field, never a 500."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise FieldError(field, message)
    return raw


def _free_text(raw: object, field: str, message: str) -> str:
    text = " ".join(_string(raw, field, message).split())
    if (len(text) > TEXT_LIMIT or not text.isprintable()
            or any(c in _FORBIDDEN_IN_TEXT for c in text)):
        raise FieldError(field, message)
    return text


def check_office(*, name: object, contact_name: object = "", contact_phone: object = "",
                 address: object = "", remark: object = "") -> OfficeForm:
    """Validate 新建 / 修改; the first bad field raises FieldError (in the form's order).

    管理处名称 follows the house rule for organisation names (letters, digits, brackets and a
    few separators; quotes, semicolons and angle brackets refused); 负责人 is a person's name;
    联系电话 a mobile or a landline. All but the name are optional."""
    clean_name = normalize_name(_string(name, "name", MSG_NAME), "name", NAME_LIMIT, MSG_NAME,
                                organisation=True)
    contact = " ".join(_string(contact_name, "contact_name", MSG_CONTACT_NAME).split())
    if contact:
        contact = normalize_name(contact, "contact_name", CONTACT_NAME_LIMIT, MSG_CONTACT_NAME)
    phone = _string(contact_phone, "contact_phone", MSG_CONTACT_PHONE).strip()
    if phone:
        try:
            phone = normalize_tel(phone, "contact_phone")
        except FieldError:
            raise FieldError("contact_phone", MSG_CONTACT_PHONE) from None
    return OfficeForm(name=clean_name, contact_name=contact, contact_phone=phone,
                      address=_free_text(address, "address", MSG_ADDRESS),
                      remark=_free_text(remark, "remark", MSG_REMARK))


def office_form_of(office: Organisation) -> OfficeForm:
    """What an office holds now, in the form's shape (修改's first values, 查看's facts)."""
    profile: dict[str, Any] = office.profile if isinstance(office.profile, dict) else {}

    def value(key: str) -> str:
        item = profile.get(key)
        return item if isinstance(item, str) else ""

    return OfficeForm(name=office.name, contact_name=value("contact_name"),
                      contact_phone=value("contact_phone"), address=value("address"),
                      remark=value("remark"))


def _name_key(name: str) -> str:
    """Names that differ only in width, case or blanks (「和谐花园１期」, 「和谐花园 1期」) are the
    same office to a person reading the list."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


# --- reading --------------------------------------------------------------------------------

def _offices(tenant: Tenant) -> sa.Select[Organisation]:
    """The tenant's live offices: the one place an office query starts."""
    return sa.select(Organisation).where(
        Organisation.type == "office", Organisation.parent_id == tenant.id,
        Organisation.status == "active")


def list_offices(tenant: Tenant) -> list[Organisation]:
    """Live offices of the tenant, oldest first (an enterprise has tens, not thousands)."""
    return list(db.session.scalars(_offices(tenant).order_by(Organisation.id)))


def get_office(tenant: Tenant, office_id: object) -> Organisation:
    text = str(office_id).strip() if isinstance(office_id, str | int) else ""
    if (isinstance(office_id, bool) or not text.isascii() or not text.isdigit()
            or len(text) > 10 or not 0 < int(text) <= MAX_ID):
        raise OfficeNotFound()
    office = db.session.scalar(_offices(tenant).where(Organisation.id == int(text)))
    if office is None:
        raise OfficeNotFound()
    return office


def _live_operators(tenant: Tenant, office: Organisation) -> sa.Select[Operator]:
    return sa.select(Operator).where(
        Operator.enterprise_id == tenant.id, Operator.department_id == office.id,
        Operator.status != "deleted")


def live_operator_count(tenant: Tenant, office: Organisation) -> int:
    """Operators of that office not deleted (正常使用 and 停用 both count)."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(
        _live_operators(tenant, office).subquery())) or 0


def live_operator_counts(tenant: Tenant, offices: Iterable[Organisation]) -> dict[int, int]:
    """操作员数 of each office of a list page, in one query (ix_operator_tenant_department)."""
    ids = [office.id for office in offices]
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(Operator.department_id, sa.func.count())
        .where(Operator.enterprise_id == tenant.id, Operator.department_id.in_(ids),
               Operator.status != "deleted")
        .group_by(Operator.department_id)).all()
    counted = {int(department): int(n) for department, n in rows}
    return {office_id: counted.get(office_id, 0) for office_id in ids}


# --- changing -------------------------------------------------------------------------------

def next_office_code(enterprise: Organisation) -> str:
    """管理处编码: the enterprise's organisation code and the office's number within it
    (``MA1FL0D34-001``), never reused (deleted offices keep theirs). The number follows the
    highest one given so far, not only the count, so a code typed in by hand or a row removed
    by a data fix cannot make it collide."""
    prefix = (enterprise.org_code or str(enterprise.id)) + "-"
    codes = list(db.session.scalars(sa.select(Organisation.code).where(
        Organisation.parent_id == enterprise.id, Organisation.type == "office")))
    highest = len(codes)
    for code in codes:
        match = _SUFFIX.search(code or "")
        if code and code.startswith(prefix) and match:
            highest = max(highest, int(match.group(1)))
    return f"{prefix}{highest + 1:03d}"


def _lock(tenant: Tenant) -> None:
    """Serialise the changes of one enterprise's offices (PostgreSQL row lock; SQLite has one
    writer at a time anyway). It also waits for an operator being added right now: inserting
    an ``operator`` row key-share-locks its enterprise (the foreign key), so a delete counts the
    office's operators only after that insert has committed or rolled back."""
    db.session.execute(sa.select(Organisation.id).where(Organisation.id == tenant.id)
                       .with_for_update())


def _relock(tenant: Tenant, office: Organisation) -> None:
    """After the lock: the office is still this tenant's and live (somebody may have deleted it
    between the page and the save)."""
    db.session.refresh(office)
    if (office.type != "office" or office.parent_id != tenant.id
            or office.status != "active"):
        raise OfficeNotFound()


def _check_unique(tenant: Tenant, name: str, except_id: int | None = None) -> None:
    key = _name_key(name)
    for other_id, other_name in db.session.execute(
            sa.select(Organisation.id, Organisation.name).where(
                Organisation.type == "office", Organisation.parent_id == tenant.id,
                Organisation.status == "active")):
        if other_id != except_id and _name_key(other_name) == key:
            raise FieldError("name", MSG_NAME_TAKEN)


def _profile(office: Organisation | None, form: OfficeForm) -> dict[str, Any]:
    """The office's profile with the form's facts; other keys (if any) are kept. A new dict, so
    that the JSON column sees the change."""
    profile = dict(office.profile) if office is not None and isinstance(office.profile,
                                                                         dict) else {}
    for key in PROFILE_KEYS:
        profile[key] = getattr(form, key)
    return profile


def create_office(tenant: Tenant, form: OfficeForm) -> Organisation:
    """新建 (T03): usable at once, no review. District of the enterprise; 管理处编码 next."""
    _lock(tenant)
    _check_unique(tenant, form.name)
    office = Organisation(type="office", name=form.name, parent_id=tenant.id, status="active",
                          district=tenant.enterprise.district,
                          code=next_office_code(tenant.enterprise),
                          profile=_profile(None, form))
    db.session.add(office)
    db.session.flush()
    audit.record("office.create", account_id=tenant.actor_id, organisation_id=tenant.id,
                 office_id=office.id, code=office.code, by=tenant.actor)
    return office


def update_office(tenant: Tenant, office: Organisation, form: OfficeForm) -> None:
    """修改: name and profile facts; the code stays. Audited with the names of the fields that
    changed (not their values: contact phones stay out of the trail); nothing changed, nothing
    recorded."""
    _lock(tenant)
    _relock(tenant, office)
    current = office_form_of(office)
    changed = [key for key in ("name", *PROFILE_KEYS)
               if getattr(current, key) != getattr(form, key)]
    if not changed:
        return
    if "name" in changed:
        _check_unique(tenant, form.name, except_id=office.id)
    office.name = form.name
    office.profile = _profile(office, form)
    db.session.flush()
    audit.record("office.update", account_id=tenant.actor_id, organisation_id=tenant.id,
                 office_id=office.id, changes=changed, by=tenant.actor)


def _move_to_enterprise(tenant: Tenant, operator: Operator) -> Callable[[], None]:
    """The operator now works for the enterprise itself: department, category and role of the
    operator row, and organisation and role of its identity. If the person already has that
    identity (an earlier, deleted operator of the enterprise), it is reused rather than
    duplicated (``uq_identity_account_org_role_platform``) and the office identity is retired.
    Tokens issued for the office identity carry the office as ``org``: they end now, and the
    next login gets the enterprise."""
    role = ROLE_OF_CATEGORY["enterprise"]
    identity = operator.identity
    old_identity_id = identity.id
    existing = db.session.scalar(sa.select(Identity).where(
        Identity.account_id == operator.account_id, Identity.organisation_id == tenant.id,
        Identity.role == role, Identity.platform == identity.platform,
        Identity.id != identity.id))
    if existing is None:
        identity.organisation_id = tenant.id
        identity.role = role
    else:
        existing.status = identity.status
        identity.status = "deleted"
        operator.identity = existing
    operator.department = tenant.enterprise
    operator.category = "enterprise"
    operator.role = role
    db.session.flush()
    return cut_off(operator.account_id, "office.moved", old_identity_id)


def delete_office(tenant: Tenant, office: Organisation, *,
                  operators: str = "") -> Callable[[], None]:
    """删除 (T03). ``operators``: "" (only when the office has no live operators: otherwise
    ``OfficeHasOperators`` and nothing changes), ``move`` (to the enterprise itself) or
    ``delete`` (as 操作员管理's 删除, S15). Identities of the office that no operator row stands
    for (made before the console) are disabled too: nobody keeps acting for a deleted office.
    The office becomes ``disabled``; rows and audit trail stay. Returns what to run after
    commit."""
    choice = operators.strip() if isinstance(operators, str) else None
    if choice is None or (choice and choice not in OPERATOR_CHOICES):
        raise FieldError("operators", MSG_OPERATORS_CHOICE)
    _lock(tenant)
    _relock(tenant, office)
    people = list(db.session.scalars(_live_operators(tenant, office).order_by(Operator.id)))
    if people and not choice:
        raise OfficeHasOperators(len(people))
    after: list[Callable[[], None]] = []
    for operator in people:
        if choice == "move":
            after.append(_move_to_enterprise(tenant, operator))
        else:
            after.append(delete_operator(tenant, operator))
    db.session.flush()
    strays = list(db.session.scalars(sa.select(Identity).where(
        Identity.organisation_id == office.id, Identity.status.in_(("active", "pending")))))
    for identity in strays:
        identity.status = "disabled"
        after.append(cut_off(identity.account_id, "office.deleted", identity.id))
    office.status = "disabled"
    db.session.flush()
    audit.record("office.delete", account_id=tenant.actor_id, organisation_id=tenant.id,
                 office_id=office.id, code=office.code, operators=choice or "none",
                 moved=len(people) if choice == "move" else 0,
                 deleted=len(people) if choice == "delete" else 0,
                 operator_ids=[operator.id for operator in people],
                 identities_disabled=len(strays), by=tenant.actor)

    def after_commit() -> None:
        for step in after:
            step()

    return after_commit
