"""Owners' committees (业委会) from the applicant's side — registration (T04, T06, T07), changes
and associations (T08) — and account look-up (T05).

The district centre decides every application with :mod:`idp.orgs.review`; nothing asked for
here is usable before that. What the applicant typed is checked here, all of it, before
anything is written, so bad input leaves the database as it was.

Who may act, decided at the data layer (every query below is built from it):

* registering: whoever proves by an SMS code the phone of 经办人1, the applicant;
* the committee console: a fully logged-in person with an active ``committee_handler``
  identity on an active committee — queries start from that identity, never from an id that
  came with the form;
* resubmitting a returned registration: whoever proved the applicant's phone in the look-up
  within the last ten minutes (the applicant has no account before approval).

Review policy: ``review_required`` (config) names the platforms whose committee registrations
the district centre reviews; by default it does for every platform committees use. Should a
deployment switch it off, a registration is approved at once, with the applicant's own (new)
account as the decider of record — the audit trail says ``reviewed: false``.

SMS codes live in the store, which on SQLite shares the database file: every store operation
(checking, consuming) happens before the first write of the request's transaction, so the
store never waits for a lock this request holds.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import session

from idp import audit
from idp.accounts.models import PLATFORMS, Account, Identity
from idp.accounts.service import ensure_person, send_initial_passwords
from idp.auth.phone import sms_codes
from idp.auth.session import StoreSession
from idp.auth.sms import MSG_EXPIRED
from idp.errors import (
    FieldChecker,
    FieldError,
    FormInvalid,
    RateLimited,
    ServiceUnavailable,
)
from idp.extensions import db
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.orgs.review import (
    CONSOLE_PLATFORM,
    MSG_NOT_RETURNED,
    ROLE_LABELS,
    approve,
    area_committee,
    current_area,
    needs_review,
    open_application,
    resubmit,
)
from idp.validators import DISTRICTS, normalize_mobile, normalize_name, normalize_uscc
from idp.web import is_id

log = logging.getLogger(__name__)

# 属性 of a committee (T04): a 筹备组 registers as 临时, and becomes 正式 (with its term) by a
# change.
ATTRIBUTES = {"provisional": "临时（筹备组）", "formal": "正式"}
COMMITTEE_PLATFORMS = ("repair_fund",)  # the platform(s) committee handlers work on
HANDLER_ROLE = "committee_handler"
MAX_HANDLERS = 3
LOOKUP_KEY = "lookup_phone"
SMS_REGISTER = "committee"  # SMS code purposes (idp.auth.sms.TEXTS)
SMS_LOOKUP = "lookup"
LOOKUP_TTL = 600  # seconds a look-up's proof of the phone lasts (resubmission uses it)
OPEN_STATUSES = ("pending", "returned")
PAGE = "_page"  # the "field" of errors that belong to the whole page
EARLIEST, LATEST = date(1990, 1, 1), date(2099, 12, 31)

MSG_NAME = "请输入业委会名称（1–100个字符，不含特殊符号）"
MSG_DISTRICT = "请选择所在区"
MSG_AREA_NAME = "请输入物业区域名称（1–100个字符，不含特殊符号）"
MSG_AREA_MISSING = "该物业区域在系统中不存在，无法注册。"
MSG_AREA_MERGED = "该物业区域已合并至“{name}”，请按合并后的物业区域“{name}”注册。"
MSG_AREA_AMBIGUOUS = "系统中有多个同名的物业区域，请联系市管理中心更正物业区域名称后再注册。"
MSG_AREA_TAKEN = "该物业区域已有业主委员会或待审核的业委会注册申请，不能重复注册。"
MSG_ATTRIBUTE = "请选择属性"
MSG_DATE = "请输入有效日期，格式如2025-01-31"
MSG_DATE_REQUIRED = {"term_start": "属性为正式时，请填写本届起始日期",
                     "term_end": "属性为正式时，请填写本届截止日期"}
MSG_DATE_ORDER = "本届截止日期须晚于本届起始日期"
MSG_HANDLER_NAME = "请输入经办人姓名（1–50个字符，不含数字和特殊符号）"
MSG_HANDLER_PHONE = "请输入经办人手机号"
MSG_HANDLER_DUPLICATE = "经办人手机号不能重复，每位经办人使用本人的手机号"
MSG_SMS_REQUIRED = "请输入手机验证码"
MSG_NO_CHANGE = "没有修改任何信息。"
MSG_CHANGE_OPEN = ("已有一项变更申请尚未办结（待审核或已退回），请等待审核结果，"
                   "或修改后重新提交被退回的申请。")
MSG_ASSOCIATION_OPEN = ("已有一项关联申请尚未办结（待审核或已退回），请等待审核结果，"
                        "或修改后重新提交被退回的申请。")
MSG_ENTERPRISE_UNKNOWN = "未找到该统一社会信用代码对应的已注册物业服务企业。"
MSG_TARGET = "请选择企业本部或该企业的一个小区管理处"
MSG_TARGET_INVALID = "所选单位不是该企业本部或其正常使用的小区管理处，请重新选择。"
MSG_ALREADY_MANAGED = "该物业区域已由所选单位管理，无需申请。"
MSG_NO_AREA = "本业委会没有对应的物业区域，请联系区中心。"
MSG_PHONE_REQUIRED = "请输入手机号码"

STATUS_LABELS = {"active": "正常使用", "pending": "待审核", "returned": "已退回",
                 "disabled": "停用", "deleted": "已删除"}
PLATFORM_CONSOLE_LABEL = "统一认证登录平台（管理控制台）"


# --- what people type ---------------------------------------------------------------------------

def _text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value if isinstance(value, str) else ""


def organisation_name(raw: str, field: str = "name", message: str = MSG_NAME) -> str:
    return normalize_name(raw, field, 100, message, organisation=True)


def person_name(raw: str, field: str) -> str:
    return normalize_name(raw, field, 50, MSG_HANDLER_NAME)


def _district(raw: str) -> str:
    value = raw.strip()
    if value not in DISTRICTS:
        raise FieldError("district", MSG_DISTRICT)
    return value


_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # [0-9]: \d would take full-width digits


def parse_date(raw: str, field: str) -> date:
    """An ISO date (what <input type=date> sends), a real one (no 2025-02-30), 1990–2099."""
    text = raw.strip()
    if not (text.isascii() and _DATE_RE.fullmatch(text)):
        raise FieldError(field, MSG_DATE)
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise FieldError(field, MSG_DATE) from None
    if not EARLIEST <= value <= LATEST:
        raise FieldError(field, MSG_DATE)
    return value


def _terms(form: Mapping[str, Any],
           check: FieldChecker) -> tuple[str | None, str | None, str | None]:
    """属性 and the term: a 正式 committee has both dates, start before end; a 临时 one none
    (whatever the form sent for them is dropped)."""
    attribute = _text(form, "attribute").strip()
    if attribute not in ATTRIBUTES:
        check.fail("attribute", MSG_ATTRIBUTE)
        return None, None, None
    if attribute == "provisional":
        return attribute, None, None
    dates: dict[str, date | None] = {}
    for field in ("term_start", "term_end"):
        raw = _text(form, field)
        if not raw.strip():
            check.fail(field, MSG_DATE_REQUIRED[field])
            dates[field] = None
        else:
            dates[field] = check.take(parse_date, raw, field)
    start, end = dates["term_start"], dates["term_end"]
    if start is not None and end is not None and start >= end:
        check.fail("term_end", MSG_DATE_ORDER)
    return (attribute, start.isoformat() if start else None,
            end.isoformat() if end else None)


def _phone(raw: str, field: str) -> str:
    if not raw.strip():
        raise FieldError(field, MSG_HANDLER_PHONE)
    return normalize_mobile(raw, field)


@dataclass(frozen=True)
class Handler:
    name: str
    phone: str


def _handlers(form: Mapping[str, Any], check: FieldChecker,
              applicant_phone: str | None) -> list[Handler]:
    """T06: named handlers, personal accounts — 经办人1 and 经办人2 required, 经办人3 optional,
    every phone a different person's. ``applicant_phone``: 经办人1's phone is already proven
    (a resubmission) and is not taken from the form."""
    handlers: list[Handler] = []
    seen: set[str] = set()
    for i in range(1, MAX_HANDLERS + 1):
        name_key, phone_key = f"handler{i}_name", f"handler{i}_phone"
        raw_name = _text(form, name_key)
        raw_phone = applicant_phone if i == 1 and applicant_phone else _text(form, phone_key)
        if i > 2 and not raw_name.strip() and not raw_phone.strip():
            continue
        name = check.take(person_name, raw_name, name_key)
        phone = check.take(_phone, raw_phone, phone_key)
        if phone is not None and phone in seen:
            check.fail(phone_key, MSG_HANDLER_DUPLICATE)
        elif phone is not None and name is not None:
            handlers.append(Handler(name, phone))
        if phone is not None:
            seen.add(phone)
    return handlers


def mask(phone: str | None) -> str:
    return phone[:3] + "****" + phone[-4:] if phone else "-"


# --- property areas (T07) ----------------------------------------------------------------------

def find_area(district: str, name: str, *, lock: bool = False) -> PropertyArea:
    """The active area of ``district`` called exactly ``name``. A merged-away name is answered
    with the name of the area it now belongs to, so that the applicant can correct it."""
    query = sa.select(PropertyArea).where(PropertyArea.district == district,
                                          PropertyArea.name == name,
                                          PropertyArea.status == "active").limit(2)
    if lock:  # registrations of one area one after the other (PostgreSQL; SQLite: one writer)
        query = query.with_for_update()
    areas = list(db.session.scalars(query))
    if len(areas) > 1:
        raise FieldError("area_name", MSG_AREA_AMBIGUOUS)
    if areas:
        return areas[0]
    merged = db.session.scalar(sa.select(PropertyArea.id).where(
        PropertyArea.district == district, PropertyArea.name == name,
        PropertyArea.status == "merged").limit(1))
    survivor = current_area(merged) if merged is not None else None
    if survivor is not None:
        raise FieldError("area_name", MSG_AREA_MERGED.format(name=survivor.name))
    raise FieldError("area_name", MSG_AREA_MISSING)


def area_taken(area: PropertyArea, *, exclude: Application | None = None) -> bool:
    """The area has a committee, or an open registration asks for it. The link to a committee
    is made only on approval, so open registrations are found by their data (few at a time;
    merged areas are followed so that a registration of a merged-away area counts too)."""
    if area_committee(area, exclude=exclude.organisation_id if exclude else None) is not None:
        return True
    query = sa.select(Application).where(Application.status.in_(OPEN_STATUSES),
                                         Application.kind == "committee_registration")
    if exclude is not None:
        query = query.where(Application.id != exclude.id)
    for application in db.session.scalars(query):
        asked = _area_of(application.data)
        if asked is not None and asked.id == area.id:
            return True
    return False


def _area_of(data: Mapping[str, Any]) -> PropertyArea | None:
    try:
        return current_area(int(data.get("area_id") or 0))
    except (TypeError, ValueError):
        return None


# --- registration (T04, T06, T07) --------------------------------------------------------------

@dataclass(frozen=True)
class CommitteeFacts:
    name: str
    district: str
    area: PropertyArea
    attribute: str
    term_start: str | None
    term_end: str | None
    handlers: tuple[Handler, ...]

    def profile(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "term_start": self.term_start,
                "term_end": self.term_end}

    def data(self) -> dict[str, Any]:
        """The application's data (what review.approve reads)."""
        return {"name": self.name, "area_id": self.area.id, **self.profile(),
                "handlers": [{"name": h.name, "phone": h.phone} for h in self.handlers],
                "platforms": list(COMMITTEE_PLATFORMS)}


def parse_registration(form: Mapping[str, Any], *, applicant_phone: str | None = None,
                       exclude: Application | None = None) -> CommitteeFacts:
    """Every field of the 「业委会注册」 form, checked; FormInvalid names each bad one."""
    check = FieldChecker()
    name = check.take(organisation_name, _text(form, "name"))
    district = check.take(_district, _text(form, "district"))
    area_name = check.take(organisation_name, _text(form, "area_name"), "area_name",
                           MSG_AREA_NAME)
    attribute, start, end = _terms(form, check)
    handlers = _handlers(form, check, applicant_phone)
    area = None
    if district is not None and area_name is not None:
        area = check.take(find_area, district, area_name)
        if area is not None and area_taken(area, exclude=exclude):
            check.fail("area_name", MSG_AREA_TAKEN)
    check.done()
    assert name is not None and district is not None and area is not None
    assert attribute is not None and len(handlers) >= 2
    return CommitteeFacts(name=name, district=district, area=area, attribute=attribute,
                          term_start=start, term_end=end, handlers=tuple(handlers))


@dataclass(frozen=True)
class Registered:
    application: Application
    organisation: Organisation
    area_name: str
    approved: bool  # the review policy let it through at once
    passwords_sent: bool  # initial passwords of the handlers went out (approved only)


def send_verify_code(raw_phone: str, field: str, ip: str, purpose: str) -> str:
    """The 【获取验证码】 button of these pages: the same answer for every well-formed number,
    whether or not it belongs to anybody. Audited like login codes. ``purpose`` (``committee``
    or ``lookup``) keeps a code asked for on one page from completing the other."""
    if not (raw_phone or "").strip():
        raise FieldError(field, MSG_PHONE_REQUIRED)
    phone = normalize_mobile(raw_phone, field)
    try:
        message = sms_codes().send(phone, ip, purpose=purpose)
    except (RateLimited, ServiceUnavailable) as exc:
        audit.record("sms.send", audit.FAILURE, phone=mask(phone), purpose=purpose,
                     reason="rate_limited" if isinstance(exc, RateLimited) else "gateway")
        db.session.commit()
        if isinstance(exc, RateLimited):
            raise RateLimited(field, exc.message, exc.retry_after) from None
        raise
    audit.record("sms.send", phone=mask(phone), purpose=purpose)
    db.session.commit()
    return message


def _use_code(phone: str, raw_code: str, event: str, purpose: str,
              field: str = "sms_code") -> None:
    """Check and use up the ``purpose`` code of ``phone``; a failure is audited (with nothing
    else: the caller has written nothing yet) and raised as FieldError(field)."""
    code = (raw_code or "").strip()
    try:
        if not code:
            raise FieldError("sms_code", MSG_SMS_REQUIRED)
        sms_codes().check(phone, code, purpose)
        if not sms_codes().consume(phone, purpose):
            raise FieldError("sms_code", MSG_EXPIRED)
    except FieldError as exc:
        db.session.rollback()
        audit.record(event, audit.FAILURE, phone=mask(phone), reason="sms_code")
        db.session.commit()
        raise FieldError(field, exc.message) from None


def register(form: Mapping[str, Any]) -> Registered:
    """「业委会注册」: a pending committee and its application, in one transaction. The SMS code
    is used up only when everything else is right."""
    try:
        facts = parse_registration(form)
    except FormInvalid as exc:
        if not _text(form, "sms_code").strip():
            exc.errors.setdefault("sms_code", MSG_SMS_REQUIRED)
        raise
    applicant = facts.handlers[0]
    try:
        _use_code(applicant.phone, _text(form, "sms_code"), "committee.register",
                  SMS_REGISTER)
    except FieldError as exc:
        raise FormInvalid({exc.field: exc.message}) from None
    # The area's row lock: two registrations of one area cannot both pass the check above.
    find_area(facts.district, facts.area.name, lock=True)
    if area_taken(facts.area):
        raise FormInvalid({"area_name": MSG_AREA_TAKEN})
    org = Organisation(type="committee", name=facts.name, district=facts.district,
                       status="pending", profile=facts.profile())
    db.session.add(org)
    db.session.flush()
    application = open_application("committee_registration", org, facts.district, facts.data(),
                                   applicant_phone=applicant.phone)
    reviewed = any(needs_review(p, "committee") for p in COMMITTEE_PLATFORMS)
    new_accounts: list[tuple[Account, str]] = []
    if not reviewed:
        account, initial = ensure_person(applicant.phone, applicant.name)
        try:
            approval = approve(application, account)
        except FieldError as exc:  # the area went away in between: nothing is kept
            db.session.rollback()
            raise FormInvalid({"area_name": exc.message}) from None
        new_accounts = ([(account, initial)] if initial else []) + approval.new_accounts
    audit.record("committee.register", application=application.id, organisation_id=org.id,
                 area=facts.area.id, phone=mask(applicant.phone), reviewed=reviewed)
    db.session.commit()
    return Registered(application, org, facts.area.name, not reviewed,
                      not send_initial_passwords(new_accounts, ROLE_LABELS[HANDLER_ROLE],
                                                 application=application.id))


def registration_for(application_id: int, phone: str) -> Application | None:
    """The committee registration ``application_id`` if ``phone`` applied for it (the look-up
    proved that phone); otherwise None, and the caller answers 404."""
    return db.session.scalar(sa.select(Application).where(
        Application.id == application_id, Application.kind == "committee_registration",
        Application.applicant_phone == phone))


def registration_prefill(application: Application) -> dict[str, str]:
    """The registration form as it was submitted (the area by its current name)."""
    data = application.data
    area = _area_of(data)
    values = {"name": str(data.get("name", "")),
              "district": area.district if area else application.district,
              "area_name": area.name if area else "",
              "attribute": str(data.get("attribute") or ""),
              "term_start": str(data.get("term_start") or ""),
              "term_end": str(data.get("term_end") or "")}
    for i, handler in enumerate(data.get("handlers", [])[:MAX_HANDLERS], start=1):
        values[f"handler{i}_name"] = str(handler.get("name", ""))
        values[f"handler{i}_phone"] = str(handler.get("phone", ""))
    return values


def resubmit_registration(application: Application, form: Mapping[str, Any]) -> None:
    """The corrected registration goes back to the district centre. 经办人1 stays the
    applicant whose phone the look-up proved."""
    application = _locked(application)
    if application.status != "returned":
        raise FormInvalid({PAGE: MSG_NOT_RETURNED})
    assert application.applicant_phone is not None
    facts = parse_registration(form, applicant_phone=application.applicant_phone,
                               exclude=application)
    find_area(facts.district, facts.area.name, lock=True)
    org = db.session.get(Organisation, application.organisation_id)
    assert org is not None
    org.name, org.district, org.profile = facts.name, facts.district, facts.profile()
    application.district = facts.district  # the queue of the area's district centre
    resubmit(application, facts.data(), None)
    db.session.commit()


def _locked(application: Application) -> Application:
    """The application re-read under a row lock, so that one decision or resubmission at a
    time touches it (PostgreSQL; SQLite has one writer anyway)."""
    db.session.refresh(application, with_for_update=True)
    return application


# --- the committee console (T04 changes, T08 associations) -----------------------------------

def handler_committees(account: Account) -> list[Organisation]:
    """The active committees ``account`` is an active handler of."""
    mine = sa.select(Identity.organisation_id).where(
        Identity.account_id == account.id, Identity.role == HANDLER_ROLE,
        Identity.status == "active")
    return list(db.session.scalars(sa.select(Organisation).where(
        Organisation.id.in_(mine), Organisation.type == "committee",
        Organisation.status == "active").order_by(Organisation.id)))


def committee_area(org: Organisation) -> PropertyArea | None:
    link = db.session.scalar(sa.select(AreaLink.area_id).where(
        AreaLink.organisation_id == org.id, AreaLink.role == "committee").limit(1))
    return current_area(link) if link is not None else None


def area_managers(area: PropertyArea) -> list[Organisation]:
    return list(db.session.scalars(
        sa.select(Organisation).join(AreaLink, AreaLink.organisation_id == Organisation.id)
        .where(AreaLink.area_id == area.id, AreaLink.role == "manager")
        .order_by(Organisation.id)))


def committee_handlers(org: Organisation) -> list[Account]:
    handling = sa.select(Identity.account_id).where(
        Identity.organisation_id == org.id, Identity.role == HANDLER_ROLE,
        Identity.status == "active")
    return list(db.session.scalars(sa.select(Account).where(
        Account.id.in_(handling)).order_by(Account.name, Account.id)))


def committee_applications(org: Organisation) -> list[Application]:
    return list(db.session.scalars(sa.select(Application).where(
        Application.organisation_id == org.id).order_by(Application.id.desc())))


def own_application(org: Organisation, application_id: int) -> Application | None:
    """A change or association of ``org`` (the handler's own committee); None otherwise."""
    return db.session.scalar(sa.select(Application).where(
        Application.id == application_id, Application.organisation_id == org.id,
        Application.kind.in_(("committee_change", "association"))))


def organisation_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = db.session.execute(sa.select(Organisation.id, Organisation.name).where(
        Organisation.id.in_(sorted(ids))))
    return {row.id: row.name for row in rows}


def _open(org: Organisation, kind: str, exclude: Application | None) -> bool:
    query = sa.select(Application.id).where(
        Application.organisation_id == org.id, Application.kind == kind,
        Application.status.in_(OPEN_STATUSES))
    if exclude is not None:
        query = query.where(Application.id != exclude.id)
    return db.session.scalar(query.limit(1)) is not None


def _lock_org(org: Organisation) -> None:
    """One open application of a kind per committee: checks and inserts one after the other."""
    db.session.refresh(org, with_for_update=True)


def change_prefill(org: Organisation, data: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The change form: the committee as it is, with ``data`` (a returned change) on top."""
    values: dict[str, Any] = {"name": org.name, **{k: org.profile.get(k) for k in
                                                   ("attribute", "term_start", "term_end")}}
    values.update(data or {})
    return {k: str(v or "") for k, v in values.items()}


def parse_change(org: Organisation, form: Mapping[str, Any]) -> dict[str, Any]:
    """「申请变更」: the changed fields only (name, 属性, term). Moving to 临时 drops the term."""
    check = FieldChecker()
    name = check.take(organisation_name, _text(form, "name"))
    attribute, start, end = _terms(form, check)
    check.done()
    wanted = {"name": name, "attribute": attribute, "term_start": start, "term_end": end}
    current = {"name": org.name, **{k: org.profile.get(k) for k in
                                    ("attribute", "term_start", "term_end")}}
    changed = {k: v for k, v in wanted.items() if v != current[k]}
    if not changed:
        raise FormInvalid({PAGE: MSG_NO_CHANGE})
    return changed


def apply_change(account: Account, org: Organisation, form: Mapping[str, Any]) -> Application:
    changed = parse_change(org, form)
    _lock_org(org)
    if _open(org, "committee_change", None):
        raise FormInvalid({PAGE: MSG_CHANGE_OPEN})
    application = open_application("committee_change", org, _district_of(org), changed,
                                   applicant_account_id=account.id,
                                   applicant_phone=account.phone)
    db.session.commit()
    return application


def resubmit_change(account: Account, org: Organisation, application: Application,
                    form: Mapping[str, Any]) -> None:
    application = _locked(application)
    if application.status != "returned":
        raise FormInvalid({PAGE: MSG_NOT_RETURNED})
    changed = parse_change(org, form)
    resubmit(application, changed, account.id)
    db.session.commit()


def _district_of(org: Organisation) -> str:
    area = committee_area(org)
    district = org.district or (area.district if area else None)
    assert district is not None, "a committee always has a district"
    return district


@dataclass(frozen=True)
class AssociationChoices:
    """Step 1 of 「申请小区管理处关联」: the enterprise of a USCC and its offices."""

    uscc: str
    enterprise: Organisation
    offices: list[Organisation]


def association_choices(raw_uscc: str) -> AssociationChoices:
    uscc = normalize_uscc(raw_uscc, "uscc")
    enterprise = db.session.scalar(sa.select(Organisation).where(
        Organisation.uscc == uscc, Organisation.type == "enterprise",
        Organisation.status == "active"))
    if enterprise is None:
        raise FieldError("uscc", MSG_ENTERPRISE_UNKNOWN)
    offices = list(db.session.scalars(sa.select(Organisation).where(
        Organisation.type == "office", Organisation.parent_id == enterprise.id,
        Organisation.status == "active").order_by(Organisation.name, Organisation.id)))
    return AssociationChoices(uscc, enterprise, offices)


def parse_target(raw: str) -> int:
    text = (raw or "").strip()
    if not text:
        raise FieldError("target", MSG_TARGET)
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and is_id(int(text))):
        raise FieldError("target", MSG_TARGET_INVALID)
    return int(text)


def _association(org: Organisation, form: Mapping[str, Any],
                 exclude: Application | None) -> tuple[PropertyArea, dict[str, Any]]:
    """Step 2: the chosen organisation must be this enterprise itself or one of its active
    offices — decided by the query, whatever id the form carried."""
    choices = association_choices(_text(form, "uscc"))
    target_id = parse_target(_text(form, "target"))
    enterprise = choices.enterprise
    target = db.session.scalar(sa.select(Organisation).where(
        Organisation.id == target_id, Organisation.status == "active",
        sa.or_(sa.and_(Organisation.type == "enterprise", Organisation.id == enterprise.id),
               sa.and_(Organisation.type == "office",
                       Organisation.parent_id == enterprise.id))))
    if target is None:
        raise FieldError("target", MSG_TARGET_INVALID)
    area = committee_area(org)
    if area is None:
        raise FieldError(PAGE, MSG_NO_AREA)
    _lock_org(org)
    if _open(org, "association", exclude):
        raise FieldError(PAGE, MSG_ASSOCIATION_OPEN)
    if any(m.id == target.id for m in area_managers(area)):
        raise FieldError("target", MSG_ALREADY_MANAGED)
    return area, {"area_id": area.id, "target_id": target.id}


def apply_association(account: Account, org: Organisation,
                      form: Mapping[str, Any]) -> Application:
    """「申请小区管理处关联」 (T08): approval makes the target manage the committee's area."""
    area, data = _association(org, form, None)
    application = open_application("association", org, area.district, data,
                                   applicant_account_id=account.id,
                                   applicant_phone=account.phone)
    db.session.commit()
    return application


def resubmit_association(account: Account, org: Organisation, application: Application,
                         form: Mapping[str, Any]) -> None:
    application = _locked(application)
    if application.status != "returned":
        raise FieldError(PAGE, MSG_NOT_RETURNED)
    area, data = _association(org, form, application)
    application.district = area.district
    resubmit(application, data, account.id)
    db.session.commit()


def association_prefill(application: Application) -> str:
    """The USCC of the enterprise a returned association asked for (itself or its office's)."""
    try:
        target = db.session.get(Organisation, int(application.data.get("target_id") or 0))
    except (TypeError, ValueError):
        return ""
    if target is not None and target.type == "office" and target.parent_id is not None:
        target = db.session.get(Organisation, target.parent_id)
    return target.uscc or "" if target is not None else ""


# --- account look-up (T05, 用户名查询) ----------------------------------------------------------

def verify_lookup(raw_phone: str, raw_code: str) -> str:
    """Prove the phone by its SMS code (purpose ``lookup``); the look-up then shows only what
    belongs to that phone. Remembered in the session for ``LOOKUP_TTL`` seconds."""
    if not (raw_phone or "").strip():
        raise FieldError("phone", MSG_PHONE_REQUIRED)
    phone = normalize_mobile(raw_phone, "phone")
    _use_code(phone, raw_code, "account.lookup", SMS_LOOKUP)
    found = db.session.scalar(sa.select(Account.id).where(Account.phone == phone))
    audit.record("account.lookup", account_id=found, phone=mask(phone), found=found is not None)
    db.session.commit()
    if isinstance(session, StoreSession):
        session.regenerate()  # a planted session id must not inherit the proof
    session[LOOKUP_KEY] = {"phone": phone, "at": time.time()}
    return phone


def lookup_phone() -> str | None:
    """The phone the look-up proved in this session within the last ten minutes."""
    data = session.get(LOOKUP_KEY)
    if not isinstance(data, dict):
        return None
    phone, at = data.get("phone"), data.get("at")
    if not isinstance(phone, str) or not isinstance(at, int | float):
        return None
    if not 0 <= time.time() - at <= LOOKUP_TTL:
        session.pop(LOOKUP_KEY, None)
        return None
    return phone


@dataclass(frozen=True)
class LookupResult:
    phone: str
    account: Account | None
    identities: list[Identity]
    applications: list[Application]
    names: dict[int, str]  # organisation id → name, for the applications


def lookup_result(phone: str) -> LookupResult:
    """Everything of ``phone`` — and nothing else: every query is filtered by it."""
    account = db.session.scalar(sa.select(Account).where(Account.phone == phone))
    identities = list(account.identities) if account is not None else []
    applications = list(db.session.scalars(sa.select(Application).where(
        Application.applicant_phone == phone).order_by(Application.id.desc())))
    names = organisation_names({a.organisation_id for a in applications})
    return LookupResult(phone, account, identities, applications, names)


def platform_label(platform: str) -> str:
    if platform == CONSOLE_PLATFORM:
        return PLATFORM_CONSOLE_LABEL
    return PLATFORMS.get(platform, platform)
