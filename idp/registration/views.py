"""Enterprise registration after a UKey login (S03–S07) and adding a platform later.

S03 (「物业企业注册」 → 【下一步】) is the page a UKey login of an unregistered enterprise ends on;
S04 asks whether the fund system knows the enterprise already (「是」 → legacy binding, 「否」 →
the form of S05); S06/S07 answer the form. Everything here acts on the enterprise of the
certificate that was checked (``pending_ukey``) or of the logged-in UKey account, never on an
enterprise named by the request.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from idp.accounts.models import PLATFORMS, Account
from idp.auth import interactions
from idp.auth.sso import current_account
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import Application, Organisation
from idp.orgs.review import STATUS_LABELS
from idp.registration import enterprise
from idp.registration.forms import EnterpriseRegistrationForm
from idp.registration.pending import PENDING_KEY, PendingUkey, log_in, pending_ukey
from idp.validators import DISTRICTS, ID_TYPES, QUALIFICATION_LEVELS
from idp.web import MSG_FORM_EXPIRED

bp = Blueprint("registration", __name__)

DONE_KEY = "registration_done"


def _no_pending() -> ResponseReturnValue:
    """The certificate check is missing or too old: start again at the UKey login."""
    return render_template("registration/expired.html"), 401


@bp.get("/register")
def choose() -> ResponseReturnValue:
    """S03: 「物业企业注册」, 【下一步】."""
    pending = pending_ukey()
    if pending is None:
        return _no_pending()
    return render_template("ukey_unregistered.html", enterprise=pending), 200


@bp.get("/register/prompt")
def prompt() -> ResponseReturnValue:
    """S04: 「您所在企业是否在维修资金系统已有物业企业身份账号（OTP或密钥）？」 是 / 否."""
    if pending_ukey() is None:
        return _no_pending()
    return render_template("registration/prompt.html"), 200


def _render_form(form: EnterpriseRegistrationForm, pending: PendingUkey | None, status: int,
                 *, error: str | None = None, action: str | None = None,
                 fixed_platforms: list[str] | None = None, title: str = "物业企业注册",
                 have_platforms: list[str] | None = None) -> tuple[str, int]:
    return render_template(
        "registration/enterprise.html", form=form, pending=pending, error=error,
        action=action or url_for("registration.enterprise_form"), title=title,
        fixed_platforms=fixed_platforms, have_platforms=have_platforms or [],
        platforms=PLATFORMS), status


def _apply_errors(form: EnterpriseRegistrationForm, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        getattr(form, name).errors = [message]


@bp.route("/register/enterprise", methods=["GET", "POST"], endpoint="enterprise_form")
def enterprise_form() -> ResponseReturnValue:
    """S05 → S06 (success) or S07 (duplicate)."""
    pending = pending_ukey()
    if pending is None:
        return _no_pending()
    form = EnterpriseRegistrationForm()
    if request.method == "GET":
        form.uscc.data = pending.uscc or ""
        form.name.data = pending.name
        return _render_form(form, pending, 200)
    if not form.validate():  # CSRF
        return _render_form(form, pending, 400, error=MSG_FORM_EXPIRED)
    parsed = enterprise.parse_form(request.form, pending)
    if parsed.errors:
        _apply_errors(form, parsed.errors)
        return _render_form(form, pending, 400)
    try:
        registered = enterprise.register(parsed.values)
    except enterprise.DuplicateEnterprise as exc:
        return _render_form(form, pending, 409, error=exc.message)
    session.pop(PENDING_KEY, None)
    if registered.immediate:
        log_in(registered.account, pending)
    session[DONE_KEY] = {"message": registered.message, "interaction": pending.interaction,
                         "logged_in": bool(registered.immediate)}
    return redirect(url_for("registration.done"), code=303)


@bp.get("/register/done")
def done() -> ResponseReturnValue:
    """S06: the message in a 「提示」 box and 【确定】."""
    data = session.get(DONE_KEY)
    if not isinstance(data, dict):
        return redirect(url_for("auth.home"), code=303)
    uid = str(data.get("interaction") or "")
    if data.get("logged_in") and uid and interactions.exists(uid):
        next_url = interactions.next_url(uid)
    else:
        next_url = url_for("auth.home") if data.get("logged_in") else url_for("auth.login")
    return render_template("registration/done.html", message=data.get("message", ""),
                           next_url=next_url), 200


# --- the enterprise's own registration: status, resubmission, another platform ---------------

def _own_enterprise() -> tuple[Organisation, Account] | None:
    """The enterprise this browser acts for: the logged-in UKey account's, or — for a
    registration still under review — the one of the certificate just checked."""
    account = current_account()
    if account is None or account.kind != "ukey":
        pending = pending_ukey()
        if pending is None:
            return None
        query = sa.select(Account).join(Organisation, Organisation.id == Account.organisation_id)
        if pending.uscc:
            query = query.where(Organisation.uscc == pending.uscc)
        else:
            query = query.where(Organisation.org_code == pending.org_code)
        account = db.session.scalar(query.where(Account.kind == "ukey"))
        if account is None or account.status != "pending":
            return None
    org = db.session.get(Organisation, account.organisation_id)
    return (org, account) if org is not None else None


@bp.get("/register/status")
def status() -> ResponseReturnValue:
    """Where the enterprise's registrations stand; a returned one shows the centre's reason
    and 【修改后重新提交】 (T02)."""
    own = _own_enterprise()
    if own is None:
        return _no_pending()
    org, account = own
    return render_template("registration/status.html", org=org, account=account,
                           applications=enterprise.applications_of(org),
                           labels=STATUS_LABELS, platforms=PLATFORMS), 200


def _own_application(application_id: int, org: Organisation) -> Application:
    """The enterprise's own registration application (scoped in the query, locked for the
    resubmission); anything else is a 404."""
    application = db.session.scalar(sa.select(Application).where(
        Application.id == application_id, Application.organisation_id == org.id,
        Application.kind == "enterprise_registration").with_for_update())
    if application is None:
        abort(404)
    return application


def _form_from_profile(form: EnterpriseRegistrationForm, org: Organisation) -> None:
    profile: dict[str, Any] = dict(org.profile)
    profile.update(profile.pop("supervision", {}) or {})
    for name, value in profile.items():
        if hasattr(form, name) and name != "platforms":
            getattr(form, name).data = value
    form.uscc.data = org.uscc
    form.name.data = org.name


@bp.route("/register/enterprise/resubmit/<id:application_id>", methods=["GET", "POST"])
def resubmit(application_id: int) -> ResponseReturnValue:
    own = _own_enterprise()
    if own is None:
        return _no_pending()
    org, account = own
    application = _own_application(application_id, org)
    platforms = [p for p in PLATFORMS if p in application.data.get("platforms", [])]
    form = EnterpriseRegistrationForm()
    action = url_for("registration.resubmit", application_id=application_id)

    def render(status: int, error: str | None = None) -> tuple[str, int]:
        return _render_form(form, None, status, error=error, action=action,
                            fixed_platforms=platforms, title="修改注册信息")

    if application.status != "returned":
        return render(409, "只有被退回的申请可以修改后重新提交。")
    if request.method == "GET":
        _form_from_profile(form, org)
        return render(200)
    if not form.validate():
        return render(400, MSG_FORM_EXPIRED)
    parsed = enterprise.parse_form(request.form, None, fixed_platforms=platforms)
    if parsed.errors:
        _apply_errors(form, parsed.errors)
        form.uscc.data = org.uscc
        return render(400)
    enterprise.resubmit_registration(application, account, parsed.values)
    db.session.commit()
    return redirect(url_for("registration.status"), code=303)


@bp.route("/register/platforms", methods=["GET", "POST"])
def add_platform() -> ResponseReturnValue:
    """An enterprise registered for one platform adds the other."""
    account = current_account()
    if account is None or account.kind != "ukey" or account.organisation_id is None:
        return redirect(url_for("auth.login"), code=303)
    org = db.session.get(Organisation, account.organisation_id)
    assert org is not None
    have = [i.platform for i in account.identities if i.role == "enterprise_admin"]
    form = EnterpriseRegistrationForm()
    action = url_for("registration.add_platform")

    def render(status: int, error: str | None = None) -> tuple[str, int]:
        return _render_form(form, None, status, error=error, action=action,
                            title="增加注册平台", have_platforms=have)

    if request.method == "GET":
        _form_from_profile(form, org)
        return render(200)
    if not form.validate():
        return render(400, MSG_FORM_EXPIRED)
    parsed = enterprise.parse_form(request.form, None)
    if parsed.errors:
        _apply_errors(form, parsed.errors)
        form.uscc.data = org.uscc
        return render(400)
    try:
        registered = enterprise.add_platforms(account, parsed.values)
    except FieldError as exc:
        _apply_errors(form, {exc.field: exc.message})
        form.uscc.data = org.uscc
        return render(400)
    session[DONE_KEY] = {"message": registered.message, "interaction": "", "logged_in": True}
    return redirect(url_for("registration.done"), code=303)


@bp.app_context_processor
def _lists() -> dict[str, Any]:
    return {"DISTRICTS": DISTRICTS, "ID_TYPES": ID_TYPES,
            "QUALIFICATION_LEVELS": QUALIFICATION_LEVELS}
