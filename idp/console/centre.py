"""The district centre's console: review queues and property areas (T02, T04, T07, T08).

Only centre staff (an active ``centre_reviewer`` identity of an active centre) get in, and each
sees only its districts: queries are built through ``idp.orgs.review.in_scope`` and
``idp.orgs.areas.areas_query``, so an id of another district answers 404 like an unknown one.
Views are thin: parse the form, call the service, commit, redirect (303) or re-render with the
message beside the field. Decisions and area changes are audited by the services; refusals of a
decision are audited here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVarTuple, cast

import sqlalchemy as sa
from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.models import PLATFORMS, Account
from idp.accounts.service import send_initial_passwords
from idp.auth.sso import admitted
from idp.console.forms import (
    MSG_PICK_MERGED,
    MSG_PICK_SURVIVOR,
    ApproveForm,
    AreaCreateForm,
    AreaMergeForm,
    AreaRenameForm,
    ReturnForm,
)
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.areas import (
    MAX_MERGE,
    MSG_MERGE_NONE,
    MSG_MERGE_TOO_MANY,
    AreaNotFound,
    area_for,
    areas_query,
    create_area,
    district_choices,
    merge_areas,
    rename_area,
)
from idp.orgs.models import CITY_DISTRICT, Application, Organisation, PropertyArea
from idp.orgs.review import (
    KIND_LABELS,
    MSG_ALREADY_DECIDED,
    ROLE_LABELS,
    STATUS_LABELS,
    approve,
    current_area,
    get_for_reviewer,
    in_scope,
    is_reviewer,
    return_application,
)
from idp.registration.committees import ATTRIBUTES
from idp.validators import DISTRICTS, ID_TYPES, QUALIFICATION_LEVELS
from idp.web import error_response, is_id, page_arg

bp = Blueprint("centre", __name__)

PAGE_SIZE = 20
MAX_PAGE = 100_000
MSG_CONFLICT = "数据已被他人同时修改，请刷新页面后重试。"


@dataclass(frozen=True)
class Queue:
    key: str
    label: str
    kinds: tuple[str, ...]


QUEUES = (
    Queue("enterprise", "物管企业注册信息审核", ("enterprise_registration",)),
    Queue("committee", "业委会审核", ("committee_registration", "committee_change")),
    Queue("association", "关联申请审核", ("association",)),
)
QUEUE_OF_KIND = {kind: q.key for q in QUEUES for kind in q.kinds}

ORG_TYPE_LABELS = {"enterprise": "物业服务企业", "office": "小区管理处", "committee": "业主委员会",
                   "centre": "区中心"}
PROFILE_LABELS = {
    "postcode": "邮政编码", "tel": "电话", "email": "邮箱", "fax": "传真",
    "legal_name": "法定代表人姓名", "legal_phone": "法定代表人手机号",
    "legal_id_type": "法人代表证件类型", "legal_id_number": "法人代表证件号",
    "contact_name": "企业联系人姓名", "contact_phone": "企业联系人手机号",
}
SUPERVISION_LABELS = {
    "reg_place": "注册地", "district": "注册所在区", "had_qualification": "原来是否有资质证书",
    "qualification_level": "原资质等级", "gm_name": "总经理姓名", "gm_phone": "总经理手机号",
    "gm_id_type": "总经理证件类型", "gm_id_number": "总经理证件号",
}
HISTORY_EVENTS = {"application.submit": "提交申请", "application.resubmit": "修改后重新提交",
                  "review.return": "退回", "review.approve": "通过"}
DONE = {"approved": "已通过该申请。", "returned": "已退回该申请，申请人下次登录时可看到退回原因。",
        "created": "物业区域已添加。", "renamed": "物业区域名称已修改。",
        "merged": "物业区域已合并。"}


# --- who may enter --------------------------------------------------------------------------

@bp.before_request
def require_centre_staff() -> None:
    """Only centre staff (``is_reviewer``) get in: ``admitted`` answers everybody else."""
    g.centre_account = admitted("centre.denied", lambda a: a if is_reviewer(a) else None)


def _reviewer() -> Account:
    return cast(Account, g.centre_account)


_Ts = TypeVarTuple("_Ts")


def _in_scope(query: sa.Select[*_Ts]) -> sa.Select[*_Ts]:
    """``idp.orgs.review.in_scope`` for the current reviewer."""
    return in_scope(query, _reviewer())


def district_label(code: str | None) -> str:
    if code == CITY_DISTRICT:
        return "上海市"
    return DISTRICTS.get(code or "", code or "—")


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


# --- review queues (T02, T04, T08) ----------------------------------------------------------

@bp.get("/centre")
def index() -> ResponseReturnValue:
    key = request.args.get("queue", "")
    queue = next((q for q in QUEUES if q.key == key), QUEUES[0])
    counted = db.session.execute(_in_scope(
        sa.select(Application.kind, sa.func.count()).where(Application.status == "pending")
        .group_by(Application.kind))).all()
    by_kind = {kind: int(n) for kind, n in counted}
    counts = {q.key: sum(by_kind.get(kind, 0) for kind in q.kinds) for q in QUEUES}
    pages = _pages(counts[queue.key])
    page = min(page_arg(MAX_PAGE), pages)
    rows = db.session.execute(_in_scope(
        sa.select(Application, Organisation.name)
        .join(Organisation, Organisation.id == Application.organisation_id)
        .where(Application.status == "pending", Application.kind.in_(queue.kinds))
        .order_by(Application.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))).all()
    return render_template(
        "centre/index.html", queues=QUEUES, queue=queue, counts=counts, rows=rows, page=page,
        pages=pages, kinds=KIND_LABELS, statuses=STATUS_LABELS, district_label=district_label,
        done=DONE.get(request.args.get("done", ""))), 200


def _scoped_application(application_id: int) -> Application | None:
    """For reading (no lock): the application if it is in the reviewer's districts."""
    return db.session.scalar(_in_scope(
        sa.select(Application).where(Application.id == application_id)))


@bp.get("/centre/applications/<id:application_id>")
def application(application_id: int) -> ResponseReturnValue:
    found = _scoped_application(application_id)
    if found is None:
        return error_response(404)
    return _render_application(found)


@bp.post("/centre/applications/<id:application_id>/approve")
def approve_view(application_id: int) -> ResponseReturnValue:
    account = _reviewer()
    found = get_for_reviewer(application_id, account)
    if found is None:  # unknown, or another district's: the same answer
        return error_response(404)
    form = ApproveForm()
    if not form.validate():
        return _render_application(found, status=400, error="请求无效，请刷新页面后重试。")
    try:
        approval = approve(found, account)
        db.session.commit()
    except FieldError as exc:
        return _refused("approve", application_id, exc)
    except IntegrityError:
        # A simultaneous change won (e.g. the same handler's account created by another
        # approval at the same moment): nothing of this one is kept; the reviewer retries.
        return _refused("approve", application_id, FieldError("decision", MSG_CONFLICT))
    failed = send_initial_passwords(approval.new_accounts, ROLE_LABELS["committee_handler"],
                                    by=_reviewer().id,
                                    application=application_id)
    if failed:
        return _render_application(found, sms_failed=failed)
    return redirect(url_for(".index", queue=QUEUE_OF_KIND[found.kind], done="approved"),
                    code=303)


@bp.post("/centre/applications/<id:application_id>/return")
def return_view(application_id: int) -> ResponseReturnValue:
    account = _reviewer()
    found = get_for_reviewer(application_id, account)
    if found is None:
        return error_response(404)
    form = ReturnForm()
    if not form.validate():
        return _render_application(found, status=400, return_form=form)
    try:
        return_application(found, account, form.reason.data or "")
    except FieldError as exc:
        if exc.field != "reason":
            return _refused("return", application_id, exc)
        db.session.rollback()
        form.reason.errors = [exc.message]
        return _render_application(found, status=400, return_form=form)
    db.session.commit()
    return redirect(url_for(".index", queue=QUEUE_OF_KIND[found.kind], done="returned"),
                    code=303)


def _refused(decision: str, application_id: int, exc: FieldError) -> ResponseReturnValue:
    """A decision that cannot be made (decided already, area gone …): nothing changes; the
    attempt is audited; 409 when somebody else decided or changed it first."""
    db.session.rollback()
    audit.record(f"review.{decision}", audit.FAILURE, account_id=_reviewer().id,
                 application=application_id, reason=exc.message)
    db.session.commit()
    found = _scoped_application(application_id)
    if found is None:
        return error_response(404)
    conflict = exc.message in (MSG_ALREADY_DECIDED, MSG_CONFLICT)
    return _render_application(found, status=409 if conflict else 400, error=exc.message)


def _render_application(found: Application, *, status: int = 200, error: str | None = None,
                        return_form: ReturnForm | None = None,
                        sms_failed: list[Account] | None = None) -> ResponseReturnValue:
    org = db.session.get(Organisation, found.organisation_id)
    return render_template(
        "centre/application.html", application=found, org=org,
        org_facts=_org_facts(org), facts=_application_facts(found, org),
        handlers=_handlers(found.data), history=_history(found.id),
        kinds=KIND_LABELS, statuses=STATUS_LABELS, district_label=district_label,
        queue=QUEUE_OF_KIND.get(found.kind, QUEUES[0].key), error=error,
        approve_form=ApproveForm(formdata=None),
        return_form=return_form or ReturnForm(formdata=None),
        sms_failed=sms_failed or [], already=MSG_ALREADY_DECIDED), status


# --- what the reviewer reads (readable labels for the submitted data) ------------------------

def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list | tuple):
        return "、".join(_text(v) for v in value) or "—"
    return str(value)


def _int(value: Any) -> int | None:
    text = str(value)
    if isinstance(value, bool) or not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    number = int(text)
    return number if is_id(number) else None


def _org_facts(org: Organisation | None) -> list[tuple[str, str]]:
    if org is None:
        return []
    facts = [("单位类型", ORG_TYPE_LABELS.get(org.type, org.type)), ("单位名称", org.name)]
    if org.uscc:
        facts += [("统一社会信用代码", org.uscc), ("组织机构代码", org.org_code or "—")]
    facts.append(("所在区", district_label(org.district)))
    profile = org.profile if isinstance(org.profile, dict) else {}
    facts += _labelled(profile, PROFILE_LABELS)
    supervision = profile.get("supervision")
    if isinstance(supervision, dict):
        facts += _labelled(supervision, SUPERVISION_LABELS)
    return facts


def _labelled(values: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, str]]:
    facts = []
    for key, label in labels.items():
        if key not in values:
            continue
        value = values[key]
        if key.endswith("_id_type"):
            value = ID_TYPES.get(str(value), value)
        elif key == "district":
            value = district_label(str(value)) if value else value
        elif key == "qualification_level":
            value = QUALIFICATION_LEVELS.get(str(value), value)
        facts.append((label, _text(value)))
    return facts


def _area_text(raw: Any) -> str:
    area_id = _int(raw)
    area = current_area(area_id) if area_id is not None else None
    if area is None:
        return "（该物业区域已不存在）"
    text = f"{area.name}（{district_label(area.district)}）"
    if area.id != area_id:
        original = db.session.get(PropertyArea, area_id)
        if original is not None:
            text += f"，原区域「{original.name}」已并入此区域"
    return text


def _application_facts(found: Application, org: Organisation | None) -> list[tuple[str, str]]:
    data = found.data if isinstance(found.data, dict) else {}
    facts: list[tuple[str, str]] = []
    if found.kind == "committee_change" and org is not None:
        # What changes, beside what it is now (T04: 临时 → 正式 with a term).
        current = org.profile if isinstance(org.profile, dict) else {}
        facts.append(("现名称", org.name))
        if "attribute" in current:
            facts.append(("现属性", ATTRIBUTES.get(str(current["attribute"]),
                                                      _text(current["attribute"]))))
        if current.get("term_start") or current.get("term_end"):
            facts.append(("现任期", f"{_text(current.get('term_start'))} 至 "
                                    f"{_text(current.get('term_end'))}"))
        if "name" in data:
            facts.append(("变更后名称", _text(data["name"])))
    elif "name" in data:
        facts.append(("申请名称", _text(data["name"])))
    if "area_id" in data:
        facts.append(("物业区域", _area_text(data["area_id"])))
    if "target_id" in data:
        target_id = _int(data["target_id"])
        target = db.session.get(Organisation, target_id) if target_id is not None else None
        facts.append(("申请关联单位", "（该单位已不存在）" if target is None else
                      f"{target.name}（{ORG_TYPE_LABELS.get(target.type, target.type)}）"))
    if "attribute" in data:
        facts.append(("业委会属性", ATTRIBUTES.get(str(data["attribute"]),
                                                    _text(data["attribute"]))))
    if "term_start" in data:
        facts.append(("任期开始", _text(data["term_start"])))
    if "term_end" in data:
        facts.append(("任期结束", _text(data["term_end"])))
    platforms = data.get("platforms")
    if isinstance(platforms, list):
        facts.append(("申请平台", _text([PLATFORMS.get(str(p), str(p)) for p in platforms])))
    return facts


def _handlers(data: Any) -> list[tuple[str, str]]:
    handlers = data.get("handlers") if isinstance(data, dict) else None
    if not isinstance(handlers, list):
        return []
    return [(_text(h.get("name")), _text(h.get("phone"))) for h in handlers
            if isinstance(h, dict)]


def _history(application_id: int) -> list[tuple[Any, str, str]]:
    """The application's trail from the audit log: submitted, returned (with the reason),
    resubmitted, approved."""
    key = audit.AuditEvent.detail["application"]
    # PostgreSQL compares the text (a cast to integer would fail on any event whose
    # "application" is not a number); SQLite's JSON_EXTRACT returns the number itself.
    same = (key.as_string() == str(application_id)
            if db.session.get_bind().dialect.name == "postgresql"
            else key.as_integer() == application_id)
    events = db.session.execute(
        sa.select(audit.AuditEvent.at, audit.AuditEvent.event, audit.AuditEvent.detail)
        .where(audit.AuditEvent.event.in_(tuple(HISTORY_EVENTS)),
               audit.AuditEvent.result == audit.SUCCESS, same)
        .order_by(audit.AuditEvent.id)).all()
    return [(at, HISTORY_EVENTS[event],
             str(detail.get("reason") or "") if isinstance(detail, dict) else "")
            for at, event, detail in events]


# --- property areas (T07) -------------------------------------------------------------------

def _district_options(account: Account) -> list[tuple[str, str]]:
    return [("", "请选择"), *district_choices(account).items()]


def _render_areas(*, status: int = 200, create_form: AreaCreateForm | None = None,
                  rename_form: AreaRenameForm | None = None,
                  rename_target: PropertyArea | None = None,
                  merge_form: AreaMergeForm | None = None,
                  error: str | None = None) -> ResponseReturnValue:
    account = _reviewer()
    options = district_choices(account)
    query = areas_query(account)
    q = " ".join(request.args.get("q", "").split())
    search_error = None
    if len(q) > 100 or not q.isprintable():
        search_error, q = "请输入1–100个字符的区域名称", ""
    if q:
        query = query.where(PropertyArea.name.contains(q, autoescape=True))
    district = request.args.get("district", "")
    if district not in options:
        district = ""
    if district:
        query = query.where(PropertyArea.district == district)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    pages = _pages(total)
    page = min(page_arg(MAX_PAGE), pages)
    active_first = sa.case((PropertyArea.status == "active", 0), else_=1)
    areas = list(db.session.scalars(
        query.order_by(active_first, PropertyArea.district, PropertyArea.name, PropertyArea.id)
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)))
    merged_into = {a.merged_into_id for a in areas if a.merged_into_id is not None}
    survivors = {a.id: a.name for a in db.session.scalars(
        sa.select(PropertyArea).where(PropertyArea.id.in_(merged_into)))} if merged_into else {}
    merge_form = merge_form or AreaMergeForm(formdata=None)
    if create_form is None:
        create_form = AreaCreateForm(formdata=None)
    create_form.district.choices = _district_options(account)
    return render_template(
        "centre/areas.html", areas=areas, survivors=survivors, q=q, district=district,
        options=options, page=page, pages=pages, total=total, search_error=search_error,
        create_form=create_form, rename_form=rename_form, rename_target=rename_target,
        merge_form=merge_form, error=error, picked_survivor=str(merge_form.survivor.data or ""),
        picked_merged={str(v) for v in merge_form.merged.data or []},
        district_label=district_label,
        done=DONE.get(request.args.get("done", ""))), status


@bp.get("/centre/areas")
def areas() -> ResponseReturnValue:
    return _render_areas()


@bp.post("/centre/areas")
def create_area_view() -> ResponseReturnValue:
    account = _reviewer()
    form = AreaCreateForm()
    form.district.choices = _district_options(account)
    if not form.validate():
        return _render_areas(status=400, create_form=form)
    try:
        area = create_area(form.name.data or "", form.district.data or "", account)
    except FieldError as exc:
        db.session.rollback()
        getattr(form, exc.field).errors = [exc.message]
        return _render_areas(status=400, create_form=form)
    db.session.commit()
    return redirect(url_for(".areas", q=area.name, done="created"), code=303)


@bp.post("/centre/areas/<id:area_id>/rename")
def rename_area_view(area_id: int) -> ResponseReturnValue:
    account = _reviewer()
    area = area_for(area_id, account, lock=True)
    if area is None:
        return error_response(404)
    form = AreaRenameForm()
    if not form.validate():
        return _render_areas(status=400, rename_form=form, rename_target=area)
    try:
        rename_area(area, form.name.data or "", account)
    except AreaNotFound:
        db.session.rollback()
        return error_response(404)
    except FieldError as exc:
        db.session.rollback()
        form.name.errors = [exc.message]
        return _render_areas(status=400, rename_form=form, rename_target=area)
    db.session.commit()
    return redirect(url_for(".areas", q=area.name, done="renamed"), code=303)


def _area_id(raw: str | None, field: str, message: str) -> int:
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not is_id(int(text)):
        raise FieldError(field, message)
    return int(text)


@bp.post("/centre/areas/merge")
def merge_areas_view() -> ResponseReturnValue:
    account = _reviewer()
    form = AreaMergeForm()
    if not form.validate():
        return _render_areas(status=400, merge_form=form)
    try:
        survivor_id = _area_id(form.survivor.data, "survivor", MSG_PICK_SURVIVOR)
        raw_merged = list(form.merged.data or [])
        if not raw_merged:
            raise FieldError("merged", MSG_MERGE_NONE)
        if len(raw_merged) > MAX_MERGE:
            raise FieldError("merged", MSG_MERGE_TOO_MANY)
        merged_ids = [_area_id(raw, "merged", MSG_PICK_MERGED) for raw in raw_merged]
    except FieldError as exc:
        getattr(form, exc.field).errors = [exc.message]
        return _render_areas(status=400, merge_form=form)
    wanted = sorted({survivor_id, *merged_ids})
    # Locked in id order, so two merges touching the same areas cannot deadlock.
    found = {a.id: a for a in db.session.scalars(
        areas_query(account).where(PropertyArea.id.in_(wanted))
        .order_by(PropertyArea.id).with_for_update())}
    if len(found) != len(wanted):
        db.session.rollback()
        return error_response(404)
    try:
        merge_areas(found[survivor_id], [found[i] for i in merged_ids], account)
    except AreaNotFound:
        db.session.rollback()
        return error_response(404)
    except FieldError as exc:
        db.session.rollback()
        getattr(form, exc.field).errors = [exc.message]
        return _render_areas(status=400, merge_form=form)
    db.session.commit()
    return redirect(url_for(".areas", done="merged"), code=303)
