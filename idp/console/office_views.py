"""小区管理处信息管理 in the tenant console (T03): 「基础信息管理」 - 「小区管理处信息管理」
with the seed's 新建 / 删除 / 修改 / 查看.

Who gets in: an enterprise admin (``idp.console.tenant.tenant_of``); anonymous → the login page,
a password change pending → that page, anybody else → 403, audited ``console.denied``. The
tenant comes from the session only, and the service finds offices through it, so another
enterprise's office id in a URL answers 404 like an unknown one.

How the list's buttons work without JavaScript (the CSP allows none inline, and a console must
work without any): as in the seed, a row is chosen (a radio button in the first column) and
【删除】【修改】【查看】 act on it. They are the submit buttons of a GET form on the list itself
(``action`` + ``office``); the list answers 303 to the office's page, which is a page of its own
with its own URL (bookmarkable, and where deleting is confirmed on a POST with CSRF). Choosing
no row gives 「请先选择一个管理处」. 【新建】 is a plain link; each name also links to 查看.

Views are thin: parse the form, call the service (``idp.console.offices``), commit, 303 with a
notice — or re-render with the message beside the field (400) and nothing written.
"""

from __future__ import annotations

import math

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from idp.console.offices import (
    CONTACT_NAME_LIMIT,
    NAME_LIMIT,
    OFFICE_STATUSES,
    OPERATOR_CHOICES,
    TEXT_LIMIT,
    OfficeForm,
    OfficeHasOperators,
    OfficeNotFound,
    check_office,
    create_office,
    delete_office,
    get_office,
    list_offices,
    live_operator_count,
    live_operator_counts,
    office_form_of,
    update_office,
)
from idp.console.tenant import console_tenant, require_enterprise_admin
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.web import error_response, page_arg

bp = Blueprint("offices", __name__, url_prefix="/console/offices")
bp.before_request(require_enterprise_admin)

PAGE_SIZE = 20
MAX_PAGE = 100_000
MSG_PICK_OFFICE = "请先选择一个管理处"
ACTIONS = {"view": "offices.view", "edit": "offices.edit", "delete": "offices.delete"}
DONE = {"created": "小区管理处已新建，无需审核即可使用。", "updated": "小区管理处信息已修改。",
        "deleted": "小区管理处已删除。"}
LIMITS = {"name": NAME_LIMIT, "contact_name": CONTACT_NAME_LIMIT, "contact_phone": 30,
          "address": TEXT_LIMIT, "remark": TEXT_LIMIT}


class OfficeFields(FlaskForm):  # type: ignore[misc]
    """新建 / 修改. CSRF comes with FlaskForm; the service judges every value and says what is
    wrong beside the field (so no validators here)."""

    name = StringField("管理处名称")
    contact_name = StringField("负责人")
    contact_phone = StringField("联系电话")
    address = StringField("地址")
    remark = TextAreaField("备注")


class DeleteFields(FlaskForm):  # type: ignore[misc]
    """删除's confirmation: what becomes of the office's operators (radio buttons)."""

    operators = StringField("操作员处理方式")


# --- who may enter --------------------------------------------------------------------------

def _render(template: str, status: int = 200, **context: object) -> ResponseReturnValue:
    return render_template(f"console/offices/{template}", statuses=OFFICE_STATUSES,
                           limits=LIMITS, tenant=console_tenant(), section="offices",
                           **context), status


# --- 列表 -----------------------------------------------------------------------------------

@bp.get("")
def index() -> ResponseReturnValue:
    tenant = console_tenant()
    action = request.args.get("action", "")
    pick_error = None
    if action:
        if action not in ACTIONS:
            return _render_list(400, pick_error="请从【删除】【修改】【查看】中选择一项操作")
        chosen = request.args.get("office", "").strip()
        if not chosen:
            pick_error = MSG_PICK_OFFICE
        else:
            try:
                office = get_office(tenant, chosen)
            except OfficeNotFound:
                return error_response(404)
            return redirect(url_for(ACTIONS[action], office_id=office.id), code=303)
    return _render_list(400 if pick_error else 200, pick_error=pick_error)


def _render_list(status: int, pick_error: str | None = None) -> ResponseReturnValue:
    tenant = console_tenant()
    offices = list_offices(tenant)
    pages = max(1, math.ceil(len(offices) / PAGE_SIZE))
    page = min(page_arg(MAX_PAGE), pages)
    rows = offices[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    return _render("index.html", status, rows=rows, total=len(offices), page=page, pages=pages,
                   first=(page - 1) * PAGE_SIZE + 1, counts=live_operator_counts(tenant, rows),
                   facts={o.id: office_form_of(o) for o in rows}, pick_error=pick_error,
                   done=DONE.get(request.args.get("done", "")))


# --- 新建 / 修改 -----------------------------------------------------------------------------

def _checked(form: OfficeFields) -> OfficeForm:
    """The service's check of the posted values (FieldError names the bad field)."""
    return check_office(name=form.name.data, contact_name=form.contact_name.data,
                        contact_phone=form.contact_phone.data, address=form.address.data,
                        remark=form.remark.data)


def _field_error(form: FlaskForm, exc: FieldError) -> None:
    field = getattr(form, exc.field, None) or form.name
    field.errors = [exc.message]


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    form = OfficeFields()
    if request.method == "GET" or not form.validate():
        return _render("form.html", 400 if form.errors else 200, form=form, office=None)
    try:
        office = create_office(console_tenant(), _checked(form))
    except FieldError as exc:
        db.session.rollback()
        _field_error(form, exc)
        return _render("form.html", 400, form=form, office=None)
    db.session.commit()
    return redirect(url_for(".view", office_id=office.id, done="created"), code=303)


def _office(office_id: int) -> Organisation | None:
    try:
        return get_office(console_tenant(), office_id)
    except OfficeNotFound:
        return None


@bp.get("/<id:office_id>")
def view(office_id: int) -> ResponseReturnValue:
    office = _office(office_id)
    if office is None:
        return error_response(404)
    return _render("view.html", office=office, facts=office_form_of(office),
                   count=live_operator_count(console_tenant(), office),
                   done=DONE.get(request.args.get("done", "")))


@bp.route("/<id:office_id>/edit", methods=["GET", "POST"])
def edit(office_id: int) -> ResponseReturnValue:
    tenant = console_tenant()
    office = _office(office_id)
    if office is None:
        return error_response(404)
    if request.method == "GET":
        form = OfficeFields(formdata=None, data=office_form_of(office).__dict__)
        return _render("form.html", form=form, office=office)
    form = OfficeFields()
    if not form.validate():
        return _render("form.html", 400, form=form, office=office)
    try:
        update_office(tenant, office, _checked(form))
    except OfficeNotFound:
        db.session.rollback()
        return error_response(404)
    except FieldError as exc:
        db.session.rollback()
        _field_error(form, exc)
        return _render("form.html", 400, form=form, office=office)
    db.session.commit()
    return redirect(url_for(".view", office_id=office_id, done="updated"), code=303)


# --- 删除 -----------------------------------------------------------------------------------

@bp.route("/<id:office_id>/delete", methods=["GET", "POST"])
def delete(office_id: int) -> ResponseReturnValue:
    tenant = console_tenant()
    office = _office(office_id)
    if office is None:
        return error_response(404)
    form = DeleteFields(formdata=None) if request.method == "GET" else DeleteFields()
    error = None
    if request.method == "POST" and form.validate():
        try:
            after = delete_office(tenant, office, operators=form.operators.data or "")
        except OfficeNotFound:
            db.session.rollback()
            return error_response(404)
        except OfficeHasOperators as exc:
            db.session.rollback()
            form.operators.errors = [exc.message]
        except FieldError as exc:
            db.session.rollback()
            form.operators.errors = [exc.message]
        else:
            db.session.commit()
            after()
            return redirect(url_for(".index", done="deleted"), code=303)
        office = _office(office_id)  # after the rollback: still there and live?
        if office is None:
            return error_response(404)
    elif request.method == "POST":
        error = "请求无效，请刷新页面后重试。"
    status = 400 if request.method == "POST" else 200
    return _render("delete.html", status, office=office, facts=office_form_of(office),
                   count=live_operator_count(tenant, office), form=form,
                   choices=OPERATOR_CHOICES, error=error,
                   chosen=form.operators.data if request.method == "POST" else "")
