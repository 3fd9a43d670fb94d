"""Owners' committees (T04, T06, T08) and account look-up (T05): thin views over
:mod:`idp.registration.committees` (parse → service → render)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from idp.accounts.models import Account
from idp.auth.sms import button_answer
from idp.auth.sso import current_account
from idp.console.staff import applications_for_phone
from idp.errors import FieldError, FormInvalid
from idp.orgs.models import Application, Organisation
from idp.orgs.review import KIND_LABELS, MSG_NOT_RETURNED, ROLE_LABELS
from idp.orgs.review import STATUS_LABELS as APPLICATION_STATUS
from idp.registration import committees as svc
from idp.registration.committee_forms import (
    AssociationForm,
    ChangeForm,
    CommitteeSmsForm,
    LookupForm,
    LookupSmsForm,
    RegistrationForm,
    ResubmitForm,
)
from idp.validators import DISTRICTS
from idp.web import PAGE_MESSAGES, wants_json

bp = Blueprint("committee", __name__)

COMMITTEE_KEY = "committee_id"  # which of the handler's committees the console shows
MSG_NOT_HANDLER = "您没有业委会经办人身份，无法使用业委会功能。"


def _show_errors(form: Any, errors: dict[str, str]) -> str | None:
    """Put each message beside its field; return the one for the page (if any)."""
    page: str | None = None
    for name, message in errors.items():
        field = form._fields.get(name) if name != svc.PAGE else None
        if field is None:
            page = page or message
        else:
            field.errors = [message]
    return page


def _sms(send_field: str, raw_phone: str, purpose: str) -> tuple[int, str, int]:
    """Send a code for ``purpose``; (status, message, seconds to wait)."""
    return button_answer(
        lambda: svc.send_verify_code(raw_phone, send_field, request.remote_addr or "-", purpose),
        int(current_app.config["IDP"].sms_resend_interval))


# --- 「业委会注册」 (T04, T06, T07) -----------------------------------------------------------

def _render_register(form: RegistrationForm, status: int = 200, *, page_error: str | None = None,
                     notice: str | None = None) -> tuple[str, int]:
    return render_template("committee/register.html", form=form, page_error=page_error,
                           notice=notice, action=url_for("committee.register"),
                           sms_action=url_for("committee.register_sms"),
                           application=None), status


@bp.get("/register/committee", endpoint="register")
def register_page() -> ResponseReturnValue:
    return _render_register(RegistrationForm(formdata=None))


@bp.post("/register/committee")
def register_submit() -> ResponseReturnValue:
    form = RegistrationForm()
    if not form.validate():
        return _render_register(form, 400, page_error=PAGE_MESSAGES[400])
    try:
        outcome = svc.register(request.form)
    except FormInvalid as exc:
        return _render_register(form, 400, page_error=_show_errors(form, exc.errors))
    return render_template("committee/submitted.html", outcome=outcome), 200


@bp.post("/register/committee/sms")
def register_sms() -> ResponseReturnValue:
    """The 【获取验证码】 button of the registration page: JSON for its script; without the
    script the whole form comes here, and the page is shown again with what was typed."""
    sms_form = CommitteeSmsForm()
    status, message, wait = _sms("handler1_phone", sms_form.handler1_phone.data or "",
                                svc.SMS_REGISTER)
    if wants_json():
        return jsonify({"ok": status == 200, "message": message, "wait": wait}), status
    form = RegistrationForm()
    form.sms_code.data = ""
    if status == 200:
        return _render_register(form, notice=message)
    form.handler1_phone.errors = [message]
    return _render_register(form, status)


def _lookup_registration(application_id: int) -> Application:
    phone = svc.lookup_phone()
    application = svc.registration_for(application_id, phone) if phone else None
    if application is None:
        abort(404)
    return application


@bp.route("/register/committee/<id:application_id>/resubmit", methods=["GET", "POST"])
def resubmit_registration(application_id: int) -> ResponseReturnValue:
    """「修改后重新提交」 of a returned registration, for the phone the look-up proved."""
    application = _lookup_registration(application_id)
    context: dict[str, Any] = {
        "action": url_for("committee.resubmit_registration", application_id=application.id),
        "sms_action": None, "application": application, "notice": None, "page_error": None}
    if request.method == "GET":
        form = ResubmitForm(formdata=None, data=svc.registration_prefill(application))
        if application.status != "returned":
            context["page_error"] = MSG_NOT_RETURNED
        return render_template("committee/register.html", form=form, **context), 200
    form = ResubmitForm()
    if not form.validate():
        context["page_error"] = PAGE_MESSAGES[400]
        return render_template("committee/register.html", form=form, **context), 400
    try:
        svc.resubmit_registration(application, request.form)
    except FormInvalid as exc:
        context["page_error"] = _show_errors(form, exc.errors)
        return render_template("committee/register.html", form=form, **context), 400
    return render_template("committee/resubmitted.html", application=application,
                           back=url_for("committee.lookup_result")), 200


# --- the committee console (T04 changes, T08 associations) ----------------------------------

def _handler() -> tuple[Account, Organisation, list[Organisation]]:
    """The logged-in handler, the committee shown and all of the handler's committees;
    anybody else gets the login page (not logged in) or a 403 page (no handler identity)."""
    account = current_account()
    if account is None:
        abort(redirect(url_for("auth.login"), code=303))
    committees = svc.handler_committees(account)
    if not committees:
        abort(make_response(render_template("error.html", status=403,
                                            message=MSG_NOT_HANDLER), 403))
    chosen = session.get(COMMITTEE_KEY)
    committee = next((c for c in committees if c.id == chosen), committees[0])
    return account, committee, committees


@bp.get("/committee")
def console() -> ResponseReturnValue:
    _, committee, committees = _handler()
    wanted = request.args.get("org")
    if wanted is not None:  # switching between the handler's own committees
        committee = next((c for c in committees if str(c.id) == wanted), None) or abort(404)
        session[COMMITTEE_KEY] = committee.id
    area = svc.committee_area(committee)
    applications = svc.committee_applications(committee)
    targets = {int(a.data["target_id"]) for a in applications
               if a.kind == "association" and str(a.data.get("target_id", "")).isdigit()}
    return render_template(
        "committee/console.html", committee=committee, committees=committees, area=area,
        managers=svc.area_managers(area) if area else [],
        handlers=svc.committee_handlers(committee), applications=applications,
        names=svc.organisation_names(targets), attributes=svc.ATTRIBUTES, kinds=KIND_LABELS,
        statuses=APPLICATION_STATUS, mask=svc.mask, sent=request.args.get("sent") == "1"), 200


def _render_change(form: ChangeForm, committee: Organisation, status: int = 200, *,
                   page_error: str | None = None,
                   application: Application | None = None) -> tuple[str, int]:
    action = (url_for("committee.resubmit_application", application_id=application.id)
              if application is not None else url_for("committee.change"))
    return render_template("committee/change.html", form=form, committee=committee,
                           page_error=page_error, action=action,
                           application=application), status


@bp.route("/committee/change", methods=["GET", "POST"])
def change() -> ResponseReturnValue:
    """「申请变更」: name, 属性, term — itself an application the district centre decides."""
    account, committee, _ = _handler()
    if request.method == "GET":
        form = ChangeForm(formdata=None, data=svc.change_prefill(committee))
        return _render_change(form, committee)
    form = ChangeForm()
    if not form.validate():
        return _render_change(form, committee, 400, page_error=PAGE_MESSAGES[400])
    try:
        svc.apply_change(account, committee, request.form)
    except FormInvalid as exc:
        return _render_change(form, committee, 400, page_error=_show_errors(form, exc.errors))
    return redirect(url_for("committee.console", sent="1"), code=303)


def _render_association(form: AssociationForm, committee: Organisation, status: int = 200, *,
                        choices: svc.AssociationChoices | None = None,
                        page_error: str | None = None,
                        application: Application | None = None) -> tuple[str, int]:
    action = (url_for("committee.resubmit_application", application_id=application.id)
              if application is not None else url_for("committee.association"))
    area = svc.committee_area(committee)
    return render_template("committee/association.html", form=form, committee=committee,
                           area=area, managers=svc.area_managers(area) if area else [],
                           choices=choices, page_error=page_error, action=action,
                           application=application), status


def _association_step(form: AssociationForm, committee: Organisation, account: Account,
                      application: Application | None) -> ResponseReturnValue:
    """Step 1 (USCC → the enterprise and its offices) or step 2 (the choice → application)."""
    if not form.validate():
        return _render_association(form, committee, 400, page_error=PAGE_MESSAGES[400],
                                   application=application)
    try:
        choices = svc.association_choices(form.uscc.data or "")
    except FieldError as exc:
        form.step.data = "1"
        return _render_association(form, committee, 400, page_error=_show_errors(
            form, {exc.field: exc.message}), application=application)
    form.uscc.data = choices.uscc
    if form.step.data != "2":
        form.step.data = "2"
        return _render_association(form, committee, choices=choices, application=application)
    try:
        if application is None:
            svc.apply_association(account, committee, request.form)
        else:
            svc.resubmit_association(account, committee, application, request.form)
    except FieldError as exc:
        return _render_association(form, committee, 400, choices=choices,
                                   page_error=_show_errors(form, {exc.field: exc.message}),
                                   application=application)
    return redirect(url_for("committee.console", sent="1"), code=303)


@bp.route("/committee/association", methods=["GET", "POST"])
def association() -> ResponseReturnValue:
    """「申请小区管理处关联」 (T08)."""
    account, committee, _ = _handler()
    if request.method == "GET":
        return _render_association(AssociationForm(formdata=None), committee)
    return _association_step(AssociationForm(), committee, account, None)


@bp.route("/committee/applications/<id:application_id>/resubmit", methods=["GET", "POST"])
def resubmit_application(application_id: int) -> ResponseReturnValue:
    """A returned change or association of the handler's own committee, corrected."""
    account, committee, _ = _handler()
    application = svc.own_application(committee, application_id)
    if application is None:
        abort(404)
    not_returned = MSG_NOT_RETURNED if application.status != "returned" else None
    if application.kind == "committee_change":
        if request.method == "GET":
            form = ChangeForm(formdata=None,
                              data=svc.change_prefill(committee, application.data))
            return _render_change(form, committee, page_error=not_returned,
                                  application=application)
        form = ChangeForm()
        if not form.validate():
            return _render_change(form, committee, 400, page_error=PAGE_MESSAGES[400],
                                  application=application)
        try:
            svc.resubmit_change(account, committee, application, request.form)
        except FormInvalid as exc:
            return _render_change(form, committee, 400, application=application,
                                  page_error=_show_errors(form, exc.errors))
        return redirect(url_for("committee.console", sent="1"), code=303)
    if request.method == "GET":
        assoc = AssociationForm(formdata=None)
        assoc.uscc.data = svc.association_prefill(application)
        return _render_association(assoc, committee, page_error=not_returned,
                                  application=application)
    return _association_step(AssociationForm(), committee, account, application)


# --- 「用户名查询」 (T05) ------------------------------------------------------------------------

def _render_lookup(form: LookupForm, status: int = 200, *, notice: str | None = None,
                   page_error: str | None = None) -> tuple[str, int]:
    return render_template("committee/lookup.html", form=form, notice=notice,
                           page_error=page_error), status


@bp.route("/lookup", methods=["GET", "POST"])
def lookup() -> ResponseReturnValue:
    if request.method == "GET":
        return _render_lookup(LookupForm(formdata=None))
    form = LookupForm()
    if not form.validate():
        return _render_lookup(form, 400, page_error=PAGE_MESSAGES[400])
    try:
        svc.verify_lookup(form.phone.data or "", form.sms_code.data or "")
    except FieldError as exc:
        _show_errors(form, {exc.field: exc.message})
        return _render_lookup(form, 400)
    return redirect(url_for("committee.lookup_result"), code=303)


@bp.post("/lookup/sms")
def lookup_sms() -> ResponseReturnValue:
    """The 【获取验证码】 button of 「用户名查询」: the same answer for every well-formed phone."""
    sms_form = LookupSmsForm()
    status, message, wait = _sms("phone", sms_form.phone.data or "", svc.SMS_LOOKUP)
    if wants_json():
        return jsonify({"ok": status == 200, "message": message, "wait": wait}), status
    form = LookupForm()
    form.sms_code.data = ""
    if status == 200:
        return _render_lookup(form, notice=message)
    form.phone.errors = [message]
    return _render_lookup(form, status)


@bp.get("/lookup/result")
def lookup_result() -> ResponseReturnValue:
    phone = svc.lookup_phone()
    if phone is None:
        return redirect(url_for("committee.lookup"), code=303)
    return render_template(
        "committee/lookup_result.html", result=svc.lookup_result(phone), roles=ROLE_LABELS,
        platform_label=svc.platform_label, kinds=KIND_LABELS, statuses=APPLICATION_STATUS,
        account_statuses=svc.STATUS_LABELS, districts=DISTRICTS,
        staff_applications=applications_for_phone(phone)), 200
