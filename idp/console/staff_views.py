"""实名认证申请 (S16): staff apply to their enterprise; the admin decides in 用户审核.

Thin views over :mod:`idp.console.staff` (parse → service → render). The application form is
public (the applicant proves the phone by an SMS code); the 用户审核 pages are the tenant
console's: only the admin of an active enterprise gets in (``tenant_of``), anybody else logged
in gets a 403 that is audited, and every query starts from the tenant, so another enterprise's
application answers 404 like an unknown one.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from idp.accounts.service import send_initial_passwords
from idp.auth.sms import button_answer
from idp.console import staff as svc
from idp.console.models import APPLICATION_STATUSES, StaffApplication
from idp.console.operators import PhoneCheckFailed
from idp.console.tenant import Tenant, console_tenant, require_enterprise_admin
from idp.errors import FieldError
from idp.extensions import db
from idp.registration.forms import loose_select
from idp.validators import ID_CARD, ID_TYPES
from idp.web import PAGE_MESSAGES, page_arg, wants_json

bp = Blueprint("staff", __name__, url_prefix=None)

MSG_STALE = "请求无效，请刷新页面后重试。"
DONE = {"approved": "已通过该申请，操作员账号已开通。",
        "rejected": "已驳回该申请，申请人可通过「用户名查询」查看驳回原因。"}


class ApplyForm(FlaskForm):  # type: ignore[misc]
    """「实名认证申请」. Labels only and CSRF: the service judges every value."""

    uscc = StringField("所属企业统一社会信用代码")
    office = StringField("所属小区管理处（选填）")
    name = StringField("姓名")
    id_type = loose_select("证件类型", ID_TYPES, blank=None, default=ID_CARD)
    id_number = StringField("证件号码")
    phone = StringField("手机号码")
    sms_code = StringField("手机验证码")


class ApplySmsForm(FlaskForm):  # type: ignore[misc]
    phone = StringField("手机号码")


class DecisionForm(FlaskForm):  # type: ignore[misc]
    """【通过】: the decision carries only the CSRF token."""


class RejectForm(FlaskForm):  # type: ignore[misc]
    reason = TextAreaField("驳回原因")


# --- 「实名认证申请」 (public) -------------------------------------------------------------------

def _render_apply(form: ApplyForm, status: int = 200, *, notice: str | None = None,
                  page_error: str | None = None) -> tuple[str, int]:
    return render_template("staff/apply.html", form=form, notice=notice,
                           page_error=page_error), status


@bp.get("/staff/apply")
def apply_page() -> ResponseReturnValue:
    return _render_apply(ApplyForm(formdata=None))


@bp.post("/staff/apply")
def apply_submit() -> ResponseReturnValue:
    form = ApplyForm()
    if not form.validate():
        return _render_apply(form, 400, page_error=PAGE_MESSAGES[400])
    try:
        application = svc.submit(request.form)
    except svc.ApplicationInvalid as exc:
        for name, message in exc.errors.items():
            form[name].errors = [message]
        form.sms_code.data = ""
        return _render_apply(form, 400)
    return render_template("staff/submitted.html", message=svc.MSG_SUBMITTED,
                           application=application), 200


@bp.post("/staff/apply/sms")
def apply_sms() -> ResponseReturnValue:
    """The 【获取验证码】 button: JSON for its script; without the script the whole form comes
    here, and the page is shown again with what was typed."""
    sms_form = ApplySmsForm()
    status, message, wait = button_answer(
        lambda: svc.send_code(sms_form.phone.data or "", request.remote_addr or "-"),
        int(current_app.config["IDP"].sms_resend_interval))
    if wants_json():
        return jsonify({"ok": status == 200, "message": message, "wait": wait}), status
    form = ApplyForm()
    form.sms_code.data = ""
    if status == 200:
        return _render_apply(form, notice=message)
    form.phone.errors = [message]
    return _render_apply(form, status)


# --- 「用户审核」 (the enterprise admin) -----------------------------------------------------

def _admin_tenant() -> Tenant:
    """The console's guard for these routes (the blueprint also has the public 实名认证申请,
    so the guard is not a ``before_request`` here)."""
    require_enterprise_admin()
    return console_tenant()


@bp.get("/console/applications")
def applications() -> ResponseReturnValue:
    tenant = _admin_tenant()
    listing = svc.list_applications(tenant, request.args.get("status", ""), page_arg())
    return render_template("console/applications.html", tenant=tenant, listing=listing,
                           statuses=APPLICATION_STATUSES, id_types=ID_TYPES,
                           done=DONE.get(request.args.get("done", ""))), 200


def _render_detail(tenant: Tenant, application: StaffApplication, *, status: int = 200,
                   error: str | None = None, reject_form: RejectForm | None = None,
                   sms_failed: bool = False) -> ResponseReturnValue:
    context: dict[str, Any] = {
        "tenant": tenant, "application": application,
        "id_number": svc.id_number_of(application), "operator": svc.operator_of(application),
        "statuses": APPLICATION_STATUSES, "id_types": ID_TYPES, "error": error,
        "approve_form": DecisionForm(formdata=None),
        "reject_form": reject_form or RejectForm(formdata=None), "sms_failed": sms_failed}
    return render_template("console/applications_detail.html", **context), status


def _found(tenant: Tenant, application_id: int) -> StaffApplication:
    try:
        return svc.get_application(tenant, application_id)
    except svc.ApplicationNotFound:
        abort(404)


@bp.get("/console/applications/<id:application_id>")
def application_detail(application_id: int) -> ResponseReturnValue:
    tenant = _admin_tenant()
    return _render_detail(tenant, _found(tenant, application_id))


def _refused(tenant: Tenant, decision: str, application_id: int, message: str,
             status: int) -> ResponseReturnValue:
    """A decision that could not be made: only its audit event is kept; the page says why."""
    svc.refused(tenant, decision, application_id, message)
    return _render_detail(tenant, _found(tenant, application_id), status=status, error=message)


@bp.post("/console/applications/<id:application_id>/approve")
def approve(application_id: int) -> ResponseReturnValue:
    tenant = _admin_tenant()
    application = _found(tenant, application_id)
    if not DecisionForm().validate():
        return _render_detail(tenant, application, status=400, error=MSG_STALE)
    try:
        approved = svc.approve(tenant, application_id)
    except svc.ApplicationNotFound:
        abort(404)
    except svc.AlreadyDecided as exc:
        return _refused(tenant, "approve", application_id, exc.message, 409)
    except (FieldError, PhoneCheckFailed) as exc:
        return _refused(tenant, "approve", application_id, exc.message, 400)
    db.session.commit()
    failed: list[Any] = []
    if approved.initial_password:
        failed = send_initial_passwords([(approved.account, approved.initial_password)],
                                        approved.role_label, by=tenant.actor,
                                        application=application_id)
    if failed:
        return _render_detail(tenant, _found(tenant, application_id), sms_failed=True)
    return redirect(url_for(".applications", status="approved", done="approved"), code=303)


@bp.post("/console/applications/<id:application_id>/reject")
def reject(application_id: int) -> ResponseReturnValue:
    tenant = _admin_tenant()
    application = _found(tenant, application_id)
    form = RejectForm()
    if not form.validate():
        return _render_detail(tenant, application, status=400, error=MSG_STALE)
    try:
        svc.reject(tenant, application_id, form.reason.data)
    except svc.ApplicationNotFound:
        abort(404)
    except svc.AlreadyDecided as exc:
        return _refused(tenant, "reject", application_id, exc.message, 409)
    except FieldError as exc:
        db.session.rollback()
        form.reason.errors = [exc.message]
        return _render_detail(tenant, _found(tenant, application_id), status=400,
                              reject_form=form)
    db.session.commit()
    return redirect(url_for(".applications", status="rejected", done="rejected"), code=303)
