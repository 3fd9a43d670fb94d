"""Review by the district centre (T02, T04, T08): what needs it, and what a decision does.

An application is decided once. Approval makes what it asked for usable in the same
transaction (accounts, identities, links); a return leaves everything unusable and tells the
applicant why, and the applicant may correct and resubmit. Every decision is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVarTuple

import sqlalchemy as sa
from flask import current_app

from idp import audit
from idp.accounts.models import Account, Identity
from idp.accounts.service import ensure_person
from idp.db import utcnow
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import CITY_DISTRICT, Application, AreaLink, Organisation, PropertyArea

MSG_ALREADY_DECIDED = "该申请已处理，请刷新页面。"
MSG_REASON = "请填写退回原因（1–500个字符）"
MSG_AREA_TAKEN = "该物业区域已有业主委员会，请核实后再处理。"
MSG_AREA_GONE = "该物业区域已不存在。"
MSG_TARGET_GONE = "申请关联的单位已不存在或已停用。"
MSG_NOT_RETURNED = "只有被退回的申请可以修改后重新提交。"

KIND_LABELS = {
    "enterprise_registration": "物管企业注册",
    "committee_registration": "业委会注册",
    "committee_change": "业委会信息变更",
    "association": "申请小区管理处关联",
}
STATUS_LABELS = {"pending": "待审核", "returned": "已退回", "approved": "已通过"}
ROLE_LABELS = {
    "enterprise_admin": "物业企业管理员",
    "operator": "操作员",
    "office": "小区管理处",
    "committee_handler": "业委会经办人",
    "centre_reviewer": "区中心审核人员",
}
_Row = TypeVarTuple("_Row")
CENTRE_ROLE = "centre_reviewer"
CONSOLE_PLATFORM = "console"  # identities for the provider's own consoles, not for an RP


def needs_review(platform: str, kind: str) -> bool:
    """Config ``review_required`` (T02: a per-platform policy)."""
    return f"{platform}:{kind}" in current_app.config["IDP"].review_required


def open_application(kind: str, organisation: Organisation, district: str,
                     data: dict[str, Any], *, applicant_account_id: str | None = None,
                     applicant_phone: str | None = None) -> Application:
    application = Application(kind=kind, organisation_id=organisation.id, district=district,
                              data=data, applicant_account_id=applicant_account_id,
                              applicant_phone=applicant_phone, status="pending")
    db.session.add(application)
    db.session.flush()
    audit.record("application.submit", account_id=applicant_account_id,
                 application=application.id, kind=kind, organisation=organisation.id)
    return application


# --- who reviews what ------------------------------------------------------------------------

def reviewer_districts(account: Account) -> set[str] | None:
    """The districts whose queues ``account`` may see: its centres' districts; None for the
    city centre (every district); an empty set for anybody who is not centre staff."""
    districts: set[str] = set()
    for identity in account.identities:
        if (identity.status == "active" and identity.role == CENTRE_ROLE
                and identity.organisation.type == "centre" and identity.organisation.is_active):
            if identity.organisation.district == CITY_DISTRICT:
                return None
            if identity.organisation.district:
                districts.add(identity.organisation.district)
    return districts


def is_reviewer(account: Account) -> bool:
    return reviewer_districts(account) != set()


def in_scope(query: sa.Select[*_Row], account: Account) -> sa.Select[*_Row]:
    """Restrict an Application query to the reviewer's districts (tenant isolation at the data
    layer: a query built here cannot return another district's applications)."""
    districts = reviewer_districts(account)
    if districts is None:
        return query
    return query.where(Application.district.in_(sorted(districts)))


def get_for_reviewer(application_id: int, account: Account) -> Application | None:
    """The application if it exists *and* is in the reviewer's districts, locked for the
    decision; otherwise None (the caller answers 404, so ids of other districts leak nothing)."""
    query = in_scope(sa.select(Application).where(Application.id == application_id), account)
    found: Application | None = db.session.scalar(query.with_for_update())
    return found


# --- decisions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Approval:
    application: Application
    # Person accounts the approval created, with their initial passwords: SMS them once the
    # transaction has committed (T06: named handlers get personal accounts).
    new_accounts: list[tuple[Account, str]]


def approve(application: Application, reviewer: Account) -> Approval:
    """Approve (caller commits). FieldError('decision', …) when it cannot be."""
    if application.status != "pending":
        raise FieldError("decision", MSG_ALREADY_DECIDED)
    org = db.session.get(Organisation, application.organisation_id)
    assert org is not None
    new_accounts: list[tuple[Account, str]] = []
    if application.kind == "enterprise_registration":
        _approve_enterprise(org, application.data)
    elif application.kind == "committee_registration":
        new_accounts = _approve_committee(org, application.data)
    elif application.kind == "committee_change":
        _apply_committee_change(org, application.data)
    else:
        _approve_association(application.data)
    application.status = "approved"
    application.reason = None
    application.decided_by = reviewer.id
    application.decided_at = utcnow()
    audit.record("review.approve", account_id=reviewer.id, application=application.id,
                 kind=application.kind, organisation=org.id,
                 accounts_created=[a.id for a, _ in new_accounts])
    return Approval(application, new_accounts)


def return_application(application: Application, reviewer: Account, reason: str) -> None:
    """Send back with a reason the applicant will see (caller commits)."""
    reason = " ".join((reason or "").split())
    if not 0 < len(reason) <= 500 or not reason.isprintable():
        raise FieldError("reason", MSG_REASON)
    if application.status != "pending":
        raise FieldError("decision", MSG_ALREADY_DECIDED)
    application.status = "returned"
    application.reason = reason
    application.decided_by = reviewer.id
    application.decided_at = utcnow()
    org = db.session.get(Organisation, application.organisation_id)
    if org is not None and org.status == "pending":
        org.status = "returned"
    audit.record("review.return", account_id=reviewer.id, application=application.id,
                 kind=application.kind, organisation=application.organisation_id,
                 reason=reason)


def resubmit(application: Application, data: dict[str, Any], account_id: str | None) -> None:
    """The applicant's corrected version goes back into the queue (caller commits)."""
    if application.status != "returned":
        raise FieldError("decision", MSG_NOT_RETURNED)
    application.status = "pending"
    application.data = data
    org = db.session.get(Organisation, application.organisation_id)
    if org is not None and org.status == "returned":
        org.status = "pending"
    audit.record("application.resubmit", account_id=account_id, application=application.id,
                 kind=application.kind, organisation=application.organisation_id)


def _approve_enterprise(org: Organisation, data: dict[str, Any]) -> None:
    """The platforms asked for become usable; the registration's facts (as last corrected)
    become the enterprise's. An enterprise the centre has disabled stays disabled."""
    if org.status in ("pending", "returned"):
        org.status = "active"
    if data.get("name"):
        org.name = str(data["name"])
    if isinstance(data.get("profile"), dict):
        org.profile = {**org.profile, **data["profile"]}
    platforms = set(data.get("platforms", []))
    account = db.session.scalar(sa.select(Account).where(
        Account.organisation_id == org.id, Account.kind == "ukey"))
    if account is None:
        return
    if account.status == "pending":
        account.status = "active"
    account.name = org.name
    for identity in account.identities:
        if identity.platform in platforms and identity.status == "pending":
            identity.status = "active"


def current_area(area_id: int, *, lock: bool = False) -> PropertyArea | None:
    """The area, following merges to the surviving one (T07); None if it does not exist.
    ``lock``: the surviving row is locked (PostgreSQL), so that a merge cannot move it away
    while a decision links something to it."""
    area = db.session.get(PropertyArea, area_id)
    for _ in range(100):  # merges cannot form a loop, but never follow one forever
        if area is None:
            return None
        if area.status == "active":
            if not lock:
                return area
            locked = db.session.get(PropertyArea, area.id, with_for_update=True,
                                    populate_existing=True)
            return locked if locked is not None and locked.status == "active" else None
        area = db.session.get(PropertyArea, area.merged_into_id) if area.merged_into_id else None
    return None


def area_committee(area: PropertyArea, *, exclude: int | None = None) -> Organisation | None:
    """The committee (active or waiting for review) that represents ``area``."""
    query = (sa.select(Organisation).join(AreaLink, AreaLink.organisation_id == Organisation.id)
             .where(AreaLink.area_id == area.id, AreaLink.role == "committee",
                    Organisation.status.in_(("active", "pending", "returned"))))
    if exclude is not None:
        query = query.where(Organisation.id != exclude)
    return db.session.scalars(query.limit(1)).first()


def _approve_committee(org: Organisation, data: dict[str, Any]) -> list[tuple[Account, str]]:
    area = current_area(int(data["area_id"]), lock=True)
    if area is None:
        raise FieldError("decision", MSG_AREA_GONE)
    if area_committee(area, exclude=org.id) is not None:
        raise FieldError("decision", MSG_AREA_TAKEN)
    link = db.session.scalar(sa.select(AreaLink).where(
        AreaLink.organisation_id == org.id, AreaLink.role == "committee"))
    if link is None:
        db.session.add(AreaLink(area_id=area.id, organisation_id=org.id, role="committee"))
    else:
        link.area_id = area.id
    org.name = str(data.get("name", org.name))
    org.district = area.district
    org.profile = {**org.profile, **{k: data[k] for k in ("attribute", "term_start", "term_end")
                                     if k in data}}
    org.status = "active"
    created: list[tuple[Account, str]] = []
    for handler in data.get("handlers", []):
        account, initial = ensure_person(handler["phone"], handler["name"])
        if initial is not None:
            created.append((account, initial))
        for platform in data.get("platforms", ["repair_fund"]):
            exists = db.session.scalar(sa.select(Identity.id).where(
                Identity.account_id == account.id, Identity.organisation_id == org.id,
                Identity.role == "committee_handler", Identity.platform == platform))
            if exists is None:
                db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                                        role="committee_handler", platform=platform))
    db.session.flush()
    return created


def _apply_committee_change(org: Organisation, data: dict[str, Any]) -> None:
    if "name" in data:
        org.name = str(data["name"])
    profile = dict(org.profile)
    for key in ("attribute", "term_start", "term_end"):
        if key in data:
            profile[key] = data[key]
    org.profile = profile


def _approve_association(data: dict[str, Any]) -> None:
    area = current_area(int(data["area_id"]), lock=True)
    if area is None:
        raise FieldError("decision", MSG_AREA_GONE)
    target = db.session.get(Organisation, int(data["target_id"]))
    if target is None or not target.is_active or target.type not in ("enterprise", "office"):
        raise FieldError("decision", MSG_TARGET_GONE)
    # T08: approval gives that organisation the area; whoever managed it before no longer does.
    previous = db.session.scalars(sa.select(AreaLink.organisation_id).where(
        AreaLink.area_id == area.id, AreaLink.role == "manager")).all()
    db.session.execute(sa.delete(AreaLink).where(AreaLink.area_id == area.id,
                                                 AreaLink.role == "manager"))
    db.session.add(AreaLink(area_id=area.id, organisation_id=target.id, role="manager"))
    audit.record("area.manager", area=area.id, organisation_id=target.id,
                 previous=list(previous))
