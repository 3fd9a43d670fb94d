"""The tenant console of an enterprise admin (S10–S15, D09): 操作员管理.

Only an account that administers an active enterprise (``tenant_of``) gets in; the ``Tenant``
is kept in ``g`` and handed to every call of ``idp.console.operators``, which builds its
queries from it, so another enterprise's operator id answers 404 like an unknown one.
Views are thin: parse the form, call the service, commit, redirect (303) or re-render with the
message beside the field (400). 用户审核 (S16) and 小区管理处 (T03) have their own blueprints;
this one shares only the navigation (``console/_nav.html``).

The list works without JavaScript. A row is chosen with a radio button that belongs to a small
GET form (``operator-actions``, the HTML ``form`` attribute ties the radios in the table to it);
its buttons 增加/查询/修改/删除 send ``action`` to ``/console/operators/go``, which redirects to
the chosen operator's page. A per-row ``formaction`` cannot follow the chosen radio without a
script, and GET is right: choosing only navigates; 删除 asks for confirmation on its own page
and deletes with a POST carrying the CSRF token.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.service import send_initial_passwords
from idp.console.forms import OperatorCreateForm, OperatorDeleteForm, OperatorEditForm
from idp.console.models import CATEGORIES, OPERATOR_ROLES, OPERATOR_STATUSES, Operator
from idp.console.operators import (
    EDITABLE_STATUSES,
    MSG_DELETED,
    MSG_PHONE_BOUND,
    MSG_PHONE_REQUIRED,
    OperatorFilter,
    OperatorNotFound,
    PhoneCheckFailed,
    add_operator,
    check_new,
    delete_operator,
    get_operator,
    list_operators,
    update_operator,
)
from idp.console.tenant import console_tenant, require_enterprise_admin
from idp.errors import FieldError
from idp.extensions import db
from idp.web import page_arg

bp = Blueprint("console", __name__, url_prefix="/console")
bp.before_request(require_enterprise_admin)

PAGE_SIZE = 20
MAX_PAGE = 100_000
MSG_PICK = "请先选择一个操作员"
MSG_ALREADY_DELETED = "该操作员已删除，无需再次删除。"
DONE = {
    "created": "保存成功，初始密码已通过短信发送至操作员手机。",
    "created_sms_failed": "保存成功，但初始密码短信发送失败。请删除该操作员后重新增加，"
                          "系统将重新生成初始密码并以短信发送。",
    "created_existing": "保存成功。该手机号已有统一认证登录平台账号，操作员使用原密码登录。",
    "updated": "修改成功",
    "deleted": "删除成功",
}
ACTIONS = {"view": ".operator", "edit": ".edit_operator", "delete": ".delete_operator"}


# --- who may enter --------------------------------------------------------------------------

def _operator(operator_id: object) -> Operator:
    """The tenant's operator, or 404 (another enterprise's id is not found either)."""
    try:
        return get_operator(console_tenant(), operator_id)
    except OperatorNotFound:
        abort(404)


def _done() -> str | None:
    return DONE.get(request.args.get("done", ""))


# --- S11: the list --------------------------------------------------------------------------

def _render_list(*, pick_error: str | None = None) -> ResponseReturnValue:
    filters, errors = OperatorFilter.parse(request.args)
    result = list_operators(console_tenant(), filters, page_arg(MAX_PAGE), PAGE_SIZE)
    raw = {key: request.args.get(key, "") for key in
           ("operator_id", "name", "status", "category", "unit_code", "unit_name")}
    status = 400 if errors or pick_error else 200
    return render_template(
        "console/operators.html", tenant=console_tenant(), result=result, filters=filters,
        errors=errors, raw=raw, statuses=OPERATOR_STATUSES, categories=CATEGORIES,
        pick_error=pick_error, done=_done()), status


@bp.get("/operators")
def operators() -> ResponseReturnValue:
    return _render_list()


@bp.get("/operators/go")
def go() -> ResponseReturnValue:
    """The list's buttons without JavaScript: 增加, or 查询/修改/删除 of the chosen row."""
    action = request.args.get("action", "")
    if action == "new":
        return redirect(url_for(".new_operator"), code=303)
    if action not in ACTIONS:
        filters, _ = OperatorFilter.parse(request.args)
        args: dict[str, Any] = dict(filters.as_args())
        return redirect(url_for(".operators", **args), code=303)
    raw = request.args.get("operator", "").strip()
    if not raw:
        return _render_list(pick_error=MSG_PICK)
    operator = _operator(raw)  # the service checks the text: not a number → 404
    return redirect(url_for(ACTIONS[action], operator_id=operator.id), code=303)


# --- S12–S14: 增加 --------------------------------------------------------------------------

def _create_choices(form: OperatorCreateForm) -> None:
    form.department_id.choices = [("", "选择")] + [
        (str(d.id), f"{d.name}（{'小区管理处' if d.type == 'office' else '物业企业'}）")
        for d in console_tenant().departments()]
    form.category.choices = [("", "请选择"), *CATEGORIES.items()]
    form.role.choices = [("", "请选择"), *OPERATOR_ROLES.items()]


def _render_new(form: OperatorCreateForm, status: int = 200,
                alert: str | None = None) -> ResponseReturnValue:
    return render_template("console/operator_new.html", tenant=console_tenant(), form=form,
                           alert=alert), status


def _field_error(form: OperatorCreateForm | OperatorEditForm, exc: FieldError) -> None:
    field = getattr(form, exc.field, None) or form.phone
    field.errors = [exc.message]


@bp.route("/operators/new", methods=["GET", "POST"])
def new_operator() -> ResponseReturnValue:
    tenant = console_tenant()
    form = OperatorCreateForm()
    _create_choices(form)
    if request.method == "GET":
        return _render_new(form)
    if not form.validate():
        return _render_new(form, 400)
    try:
        new = check_new(tenant, name=form.name.data or "",
                        department_id=form.department_id.data or "",
                        category=form.category.data, phone=form.phone.data or "",
                        role=form.role.data, remark=form.remark.data)
    except FieldError as exc:
        db.session.rollback()
        _field_error(form, exc)
        return _render_new(form, 400)
    try:
        operator, password = add_operator(tenant, new)
        db.session.commit()
    except PhoneCheckFailed as exc:
        # Nothing is saved; the session holds only the audit event of the carrier check.
        db.session.commit()
        return _render_new(form, 400, alert=exc.message)
    except FieldError as exc:
        # S14 (also lost to a simultaneous save): the writes were in a savepoint, rolled back;
        # what is left is the audit trail of the attempt.
        db.session.commit()
        _field_error(form, exc)
        return _render_new(form, 400)
    except IntegrityError:
        db.session.rollback()
        audit.record("operator.create", audit.FAILURE, account_id=tenant.actor_id,
                     organisation_id=tenant.id, reason="phone_bound")
        db.session.commit()
        form.phone.errors = [MSG_PHONE_BOUND]
        return _render_new(form, 400)
    done = "created_existing"
    if password is not None:
        failed = send_initial_passwords([(operator.account, password)],
                                        OPERATOR_ROLES.get(operator.role, operator.role),
                                        by=tenant.actor, operator_id=operator.id)
        done = "created_sms_failed" if failed else "created"
    return redirect(url_for(".operator", operator_id=operator.id, done=done), code=303)


# --- S15: 查询, 修改, 删除 -------------------------------------------------------------------

@bp.get("/operators/<id:operator_id>")
def operator(operator_id: int) -> ResponseReturnValue:
    return render_template("console/operator.html", tenant=console_tenant(),
                           operator=_operator(operator_id), done=_done()), 200


def _render_edit(operator: Operator, form: OperatorEditForm | None, status: int = 200,
                 alert: str | None = None) -> ResponseReturnValue:
    return render_template("console/operator_edit.html", tenant=console_tenant(), operator=operator,
                           form=form, alert=alert, deleted=MSG_DELETED), status


def _edit_choices(form: OperatorEditForm) -> None:
    form.status.choices = [(s, OPERATOR_STATUSES[s]) for s in EDITABLE_STATUSES]


@bp.route("/operators/<id:operator_id>/edit", methods=["GET", "POST"])
def edit_operator(operator_id: int) -> ResponseReturnValue:
    tenant = console_tenant()
    operator = _operator(operator_id)
    if operator.status == "deleted":
        return _render_edit(operator, None, 409)
    if request.method == "GET":
        form = OperatorEditForm(formdata=None, phone=operator.account.phone,
                                status=operator.status)
        _edit_choices(form)
        return _render_edit(operator, form)
    form = OperatorEditForm()
    _edit_choices(form)
    if not form.validate():
        return _render_edit(operator, form, 400)
    phone = (form.phone.data or "").strip()
    try:
        if not phone:
            raise FieldError("phone", MSG_PHONE_REQUIRED)
        after = update_operator(tenant, operator, phone=phone, status=form.status.data or "")
        db.session.commit()
    except PhoneCheckFailed as exc:
        db.session.commit()  # nothing changed yet: only the audit event of the check
        return _render_edit(operator, form, 400, alert=exc.message)
    except FieldError as exc:
        db.session.rollback()
        _field_error(form, exc)
        return _render_edit(operator, form, 400)
    except IntegrityError:  # the new phone was taken at the same moment
        db.session.rollback()
        form.phone.errors = [MSG_PHONE_BOUND]
        return _render_edit(operator, form, 400)
    after()
    return redirect(url_for(".operator", operator_id=operator.id, done="updated"), code=303)


# The endpoint is "console.delete_operator"; the function's own name would hide the service's.
@bp.route("/operators/<id:operator_id>/delete", methods=["GET", "POST"],
          endpoint="delete_operator")
def delete_operator_view(operator_id: int) -> ResponseReturnValue:
    tenant = console_tenant()
    operator = _operator(operator_id)
    form = OperatorDeleteForm()
    if operator.status == "deleted":
        return render_template("console/operator_delete.html", tenant=tenant,
                               operator=operator, form=form,
                               error=MSG_ALREADY_DELETED), 409
    if request.method == "GET":
        return render_template("console/operator_delete.html", tenant=tenant,
                               operator=operator, form=form, error=None), 200
    if not form.validate():
        return render_template("console/operator_delete.html", tenant=tenant,
                               operator=operator, form=form, error=None), 400
    after = delete_operator(tenant, operator)
    db.session.commit()
    after()
    return redirect(url_for(".operators", done="deleted"), code=303)

