"""Enterprise registration after a UKey login (S03–S07, T02) and adding a platform later.

The USCC is the certificate's (``idp.registration.pending``), never the form's. One
registration creates, in one transaction, the enterprise, its UKey account and an
``enterprise_admin`` identity per chosen platform; platforms whose policy asks for review
(``review_required``) get their identity pending and an application for the district centre.
Duplicates — the same USCC or the same 组织机构代码 (USCC[8:17]) already in the fund system — are
refused with the message of S07; the unique constraints on both make that hold when two
submissions race.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.models import PLATFORMS, Account, Identity
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import CITY_DISTRICT, Application, Organisation
from idp.orgs.review import needs_review, open_application, resubmit
from idp.registration.pending import PendingUkey
from idp.validators import (
    DISTRICTS,
    ID_TYPES,
    MSG_CHOICE,
    QUALIFICATION_LEVELS,
    choice,
    normalize_email,
    normalize_id_number,
    normalize_mobile,
    normalize_name,
    normalize_postcode,
    normalize_tel,
    normalize_uscc,
    org_code_of,
)

# S07, exactly.
MSG_DUPLICATE = ("维修资金系统已经存在统一社会信用代码（含组织机构代码）相同的物业管理企业，"
                 "申请失败！")
MSG_USCC_MISMATCH = "统一社会信用代码须与UKey证书一致"
MSG_PLATFORMS = "请选择注册平台"
MSG_ENTERPRISE_NAME = "请输入企业名称（1–100个字符）"
MSG_PERSON_NAME = "请输入姓名（1–50个字符）"
MSG_NO_NEW_PLATFORM = "请选择尚未注册的平台"
MSG_REQUIRED = "此项为必填项"
REG_PLACES = {"310000": "上海市"}
YES_NO = {"是": "是", "否": "否"}
# S06 names the platforms as the seed's example message does.
S06_PLATFORM_NAMES = {"repair_fund": "上海市商品住房维修资金管理系统",
                      "supervision": "上海市物业管理平台及招投标系统"}


def success_message(name: str, platforms: list[str]) -> str:
    """S06: 「<name>企业，您已注册成功,可使用Ukey通过…进入<platforms>。」 (the seed's own
    punctuation, half-width comma included)."""
    names = "和".join(S06_PLATFORM_NAMES[p] for p in PLATFORMS if p in platforms)
    return (f"{name}企业，您已注册成功,可使用Ukey通过上海市物业管理监督与服务统一认证登录平台"
            f"进入{names}。")


def review_message(name: str, platforms: list[str]) -> str:
    names = "和".join(PLATFORMS[p] for p in PLATFORMS if p in platforms)
    return f"{name}企业，您在{names}的注册申请已提交，请等待区中心审核，审核通过后即可使用。"


@dataclass
class EnterpriseForm:
    """The registration form of S05, parsed: ``values`` normalised, ``errors`` per field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def _run(self, name: str, check: Any, *args: Any) -> None:
        try:
            self.values[name] = check(*args)
        except FieldError as exc:
            self.errors[name] = exc.message


PERSON_FIELDS = ("legal", "gm")  # 法定代表人 / 法人代表, 总经理: name, phone, id_type, id_number


def parse_form(form: Mapping[str, Any], pending: PendingUkey | None, *,
               platforms_required: bool = True, fixed_platforms: list[str] | None = None,
               ) -> EnterpriseForm:
    """Every field of S05, each with its message; nothing is written here."""
    out = EnterpriseForm()

    def text(name: str) -> str:
        return str(form.get(name) or "")

    def optional(name: str, check: Any) -> None:
        if text(name).strip():
            out._run(name, check, text(name), name)
        else:
            out.values[name] = ""

    def required(name: str, check: Any, *args: Any) -> None:
        if not text(name).strip():
            out.errors[name] = MSG_REQUIRED
        else:
            out._run(name, check, text(name), *args)

    if pending is not None:
        required("uscc", _certificate_uscc, pending)
    required("name", lambda v, f: normalize_name(v, f, 100, MSG_ENTERPRISE_NAME,
                                                 organisation=True), "name")
    optional("postcode", normalize_postcode)
    optional("tel", normalize_tel)
    optional("email", normalize_email)
    optional("fax", normalize_tel)
    required("legal_name", normalize_name, "legal_name", 50, MSG_PERSON_NAME)
    required("legal_phone", normalize_mobile, "legal_phone")
    required("legal_id_type", choice, ID_TYPES, "legal_id_type")
    _id_number(out, form, "legal")
    required("contact_name", normalize_name, "contact_name", 50, MSG_PERSON_NAME)
    required("contact_phone", normalize_mobile, "contact_phone")

    if fixed_platforms is not None:
        chosen = list(fixed_platforms)
    else:
        raw = form.getlist("platforms") if hasattr(form, "getlist") else form.get("platforms", [])
        chosen = [p for p in PLATFORMS if p in raw]
        if len(set(raw)) != len(chosen) or (platforms_required and not chosen):
            out.errors["platforms"] = MSG_PLATFORMS if not chosen or not raw else MSG_CHOICE
    out.values["platforms"] = chosen
    if "supervision" in chosen:
        required("reg_place", choice, REG_PLACES, "reg_place")
        required("district", choice, DISTRICTS, "district")
        if text("had_qualification").strip():
            out._run("had_qualification", choice, text("had_qualification"), YES_NO,
                     "had_qualification")
        else:
            out.values["had_qualification"] = "否"
        if out.values.get("had_qualification") == "是":  # a claim the centre can check
            required("qualification_level", choice, QUALIFICATION_LEVELS, "qualification_level")
        else:
            out.values["qualification_level"] = ""
        required("gm_name", normalize_name, "gm_name", 50, MSG_PERSON_NAME)
        required("gm_phone", normalize_mobile, "gm_phone")
        required("gm_id_type", choice, ID_TYPES, "gm_id_type")
        _id_number(out, form, "gm")
    return out


def _id_number(out: EnterpriseForm, form: Mapping[str, Any], who: str) -> None:
    name = f"{who}_id_number"
    raw = str(form.get(name) or "")
    if not raw.strip():
        out.errors[name] = MSG_REQUIRED
    elif f"{who}_id_type" in out.values:  # the number is judged by its document type
        out._run(name, normalize_id_number, out.values[f"{who}_id_type"], raw, name)


def _certificate_uscc(raw: str, pending: PendingUkey) -> str:
    """The USCC must be the certificate's; a certificate with only a 组织机构代码 accepts the
    USCC that contains it."""
    uscc = normalize_uscc(raw)
    if pending.uscc is not None and uscc != pending.uscc:
        raise FieldError("uscc", MSG_USCC_MISMATCH)
    if pending.uscc is None and org_code_of(uscc) != pending.org_code:
        raise FieldError("uscc", MSG_USCC_MISMATCH)
    return uscc


def profile_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the enterprise's organisation keeps of the form (the USCC and name are columns)."""
    keys = ("postcode", "tel", "email", "fax", "legal_name", "legal_phone", "legal_id_type",
            "legal_id_number", "contact_name", "contact_phone")
    profile = {k: values.get(k, "") for k in keys}
    if "supervision" in values.get("platforms", []):
        profile["supervision"] = {k: values.get(k, "") for k in (
            "reg_place", "district", "had_qualification", "qualification_level", "gm_name",
            "gm_phone", "gm_id_type", "gm_id_number")}
    return profile


def _review_kind(platform: str, values: Mapping[str, Any]) -> str | None:
    """The policy entry that puts this platform's registration under review, if any."""
    if needs_review(platform, "enterprise"):
        return "enterprise"
    if (platform == "supervision" and values.get("had_qualification") == "否"
            and needs_review(platform, "enterprise_unqualified")):
        return "enterprise_unqualified"
    return None


def _district(uscc: str, values: Mapping[str, Any]) -> str:
    """The reviewing centre's district: 注册所在区, else the USCC's division code, else the city."""
    chosen = str(values.get("district") or "")
    if chosen in DISTRICTS:
        return chosen
    return uscc[2:8] if uscc[2:8] in DISTRICTS else CITY_DISTRICT


@dataclass(frozen=True)
class Registered:
    organisation: Organisation
    account: Account
    immediate: list[str]  # platforms usable now (S06)
    reviewed: list[str]  # platforms waiting for the district centre (T02)

    @property
    def message(self) -> str:
        parts = []
        if self.immediate:
            parts.append(success_message(self.organisation.name, self.immediate))
        if self.reviewed:
            parts.append(review_message(self.organisation.name, self.reviewed))
        return "".join(parts)


class DuplicateEnterprise(FieldError):
    """S07: the fund system already has an enterprise with this USCC or organisation code."""

    def __init__(self) -> None:
        super().__init__("uscc", MSG_DUPLICATE)


def duplicate_exists(uscc: str) -> bool:
    query = sa.select(Organisation.id).where(sa.or_(
        Organisation.uscc == uscc, Organisation.org_code == org_code_of(uscc))).limit(1)
    return db.session.scalar(query) is not None


def _split(platforms: list[str], values: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(immediate, reviewed): which of ``platforms`` the review policy holds back."""
    reviewed = [p for p in platforms if _review_kind(p, values) is not None]
    return [p for p in platforms if p not in reviewed], reviewed


def _grant(org: Organisation, account: Account, platforms: list[str], reviewed: list[str],
           district: str) -> None:
    """An ``enterprise_admin`` identity per platform — pending where reviewed, with one
    application for the centre covering those (caller commits)."""
    for platform in platforms:
        db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                                role="enterprise_admin", platform=platform,
                                status="pending" if platform in reviewed else "active"))
    if reviewed:
        open_application("enterprise_registration", org, district,
                         {"platforms": reviewed, "name": org.name, "uscc": org.uscc,
                          "profile": org.profile}, applicant_account_id=account.id)


def register(values: Mapping[str, Any]) -> Registered:
    """Create the enterprise, its UKey account and identities; commit. DuplicateEnterprise
    (S07) when it exists already — also when a simultaneous submission won the race."""
    uscc = str(values["uscc"])
    if duplicate_exists(uscc):
        audit.record("registration.enterprise", result="failure", reason="duplicate", uscc=uscc)
        db.session.commit()
        raise DuplicateEnterprise()
    platforms = list(values["platforms"])
    immediate, reviewed = _split(platforms, values)
    status = "active" if immediate else "pending"
    district = _district(uscc, values)
    try:
        org = Organisation(type="enterprise", name=str(values["name"]), uscc=uscc,
                           org_code=org_code_of(uscc), status=status, district=district,
                           profile=profile_of(values))
        db.session.add(org)
        db.session.flush()
        account = Account(kind="ukey", name=org.name, organisation_id=org.id, status=status)
        db.session.add(account)
        db.session.flush()
        _grant(org, account, platforms, reviewed, district)
        audit.record("registration.enterprise", account_id=account.id, organisation_id=org.id,
                     uscc=uscc, immediate=immediate, reviewed=reviewed)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        audit.record("registration.enterprise", result="failure", reason="duplicate_race",
                     uscc=uscc)
        db.session.commit()
        raise DuplicateEnterprise() from None
    return Registered(org, account, immediate, reviewed)


def add_platforms(account: Account, values: Mapping[str, Any]) -> Registered:
    """An enterprise registered for one platform adds the other (same rules, same review)."""
    org = db.session.get(Organisation, account.organisation_id)
    assert org is not None and org.uscc is not None
    have = {i.platform for i in account.identities if i.role == "enterprise_admin"}
    platforms = [p for p in values["platforms"] if p not in have]
    if not platforms:
        audit.record("registration.add_platform", result="failure", account_id=account.id,
                     organisation_id=org.id, reason="no_new_platform")
        db.session.commit()
        raise FieldError("platforms", MSG_NO_NEW_PLATFORM)
    immediate, reviewed = _split(platforms, values)
    if "supervision" in platforms:
        org.profile = {**org.profile, "supervision": profile_of(values)["supervision"]}
        org.district = _district(org.uscc, values)
    _grant(org, account, platforms, reviewed, org.district or CITY_DISTRICT)
    audit.record("registration.add_platform", account_id=account.id, organisation_id=org.id,
                 immediate=immediate, reviewed=reviewed)
    try:
        db.session.commit()
    except IntegrityError:  # the same platform added twice at once: one identity wins
        db.session.rollback()
        audit.record("registration.add_platform", result="failure", account_id=account.id,
                     organisation_id=org.id, reason="concurrent")
        db.session.commit()
        raise FieldError("platforms", MSG_NO_NEW_PLATFORM) from None
    return Registered(org, account, immediate, reviewed)


def applications_of(org: Organisation) -> list[Application]:
    return list(db.session.scalars(sa.select(Application).where(
        Application.organisation_id == org.id,
        Application.kind == "enterprise_registration").order_by(Application.id.desc())))


def resubmit_registration(application: Application, account: Account,
                          values: Mapping[str, Any]) -> None:
    """A returned registration, corrected, goes back to the centre (caller commits).

    The corrections travel in the application and take effect on approval: an enterprise
    already active on another platform is not renamed, nor its data changed, by an unreviewed
    resubmission. One that is not active anywhere yet takes them at once (nothing uses it)."""
    org = db.session.get(Organisation, application.organisation_id)
    assert org is not None and org.uscc is not None
    platforms = list(application.data.get("platforms", []))
    corrected = profile_of({**values, "platforms": platforms})
    district = _district(org.uscc, values)
    if org.status != "active":
        org.name = str(values["name"])
        org.profile = {**org.profile, **corrected}
        org.district = district
        account.name = org.name
    application.district = district
    data = {**application.data, "name": str(values["name"]), "profile": corrected}
    resubmit(application, data, account.id)
