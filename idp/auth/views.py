"""Login pages: phone + password + SMS code (S17), first-login and self-service password change
(T05), and the signed-in home page. Thin views over ``idp.auth.phone``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue

from idp.accounts.models import PLATFORMS
from idp.auth import interactions
from idp.auth.forms import PasswordChangeForm, PhoneLoginForm, SmsForm
from idp.auth.phone import change_password, login_with_phone, send_login_code
from idp.auth.sso import (
    current_account,
    end_sso,
    finish_password_change,
    pending_password_change,
    start_sso,
)
from idp.errors import FieldError, RateLimited, ServiceUnavailable
from idp.oidc.claims import ACR_PHONE, AMR_PHONE
from idp.validators import MSG_PHONE_FORMAT, normalize_phone

bp = Blueprint("auth", __name__)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or (
        request.headers.get("X-Requested-With") == "fetch"
    )


def _render_login(form: PhoneLoginForm, status: int = 200, notice: str | None = None,
                  sms_form: SmsForm | None = None) -> tuple[str, int]:
    return render_template(
        "login.html", form=form, sms_form=sms_form or SmsForm(formdata=None),
        notice=notice, interaction=form.interaction.data or "",
        resend_seconds=current_app.config["IDP"].sms_resend_interval,
    ), status


@bp.get("/login")
def login() -> ResponseReturnValue:
    uid = request.args.get("i")
    if current_account() is not None and not interactions.exists(uid):
        return redirect("/", code=303)
    form = PhoneLoginForm(formdata=None)
    form.interaction.data = uid if interactions.exists(uid) else ""
    hint = request.args.get("login_hint", "")
    try:
        form.phone.data = normalize_phone(hint) if hint else ""
    except FieldError:
        form.phone.data = ""
    return _render_login(form)


@bp.post("/login/sms")
def send_sms() -> ResponseReturnValue:
    """The 「获取验证码」 button: JSON for the page's script, a re-rendered page without it."""
    sms_form = SmsForm()
    status, message, wait = 200, "", 0
    if not sms_form.validate():
        status = 400
        message = next(iter(sms_form.phone.errors or []), MSG_PHONE_FORMAT)
    else:
        try:
            phone = normalize_phone(sms_form.phone.data)
            message = send_login_code(phone, request.remote_addr or "-")
            wait = current_app.config["IDP"].sms_resend_interval
        except RateLimited as exc:
            status, message, wait = 429, exc.message, exc.retry_after
        except FieldError as exc:
            status, message = 400, exc.message
        except ServiceUnavailable as exc:
            status, message = 503, exc.message
    if _wants_json():
        return jsonify({"ok": status == 200, "message": message, "wait": wait}), status
    form = PhoneLoginForm(formdata=None)
    form.phone.data = sms_form.phone.data or ""
    form.interaction.data = request.form.get("interaction", "")
    if status == 200:
        return _render_login(form, notice=message)
    form.phone.errors = [message]
    return _render_login(form, status)


@bp.post("/login")
def login_submit() -> ResponseReturnValue:
    form = PhoneLoginForm()
    if not form.validate():
        return _render_login(form, 400)
    try:
        phone = normalize_phone(form.phone.data)
        result = login_with_phone(phone, form.password.data, form.sms_code.data.strip())
    except RateLimited as exc:
        getattr(form, exc.field).errors = [exc.message]
        return _render_login(form, 429)
    except FieldError as exc:
        getattr(form, exc.field).errors = [exc.message]
        return _render_login(form, 400)
    start_sso(result.account, amr=AMR_PHONE, acr=ACR_PHONE,
              pwchange=result.must_change_password)
    uid = form.interaction.data or None
    if result.must_change_password:
        return redirect(interactions.url("auth.change_password", uid or ""), code=303)
    return redirect(interactions.next_url(uid), code=303)


@bp.route("/password/change", methods=["GET", "POST"], endpoint="change_password")
def change_password_view() -> ResponseReturnValue:
    forced = pending_password_change()
    account = forced or current_account()
    if account is None:
        return redirect("/login", code=303)
    form = PasswordChangeForm()
    context: dict[str, Any] = {"form": form, "forced": forced is not None}
    if request.method == "GET":
        form.interaction.data = request.args.get("i", "")
        return render_template("password_change.html", **context), 200
    if not form.validate():
        return render_template("password_change.html", **context), 400
    old = None if forced is not None else (form.old_password.data or "")
    try:
        change_password(account, form.new_password.data, form.confirm_password.data, old)
    except RateLimited as exc:  # too many wrong old passwords: the account is locked, log out
        end_sso(reason="lockout")
        return render_template("error.html", status=429, message=exc.message), 429
    except FieldError as exc:
        getattr(form, exc.field).errors = [exc.message]
        return render_template("password_change.html", **context), 400
    finish_password_change()
    uid = form.interaction.data or None
    if uid and interactions.exists(uid):
        return redirect(interactions.next_url(uid), code=303)
    return redirect("/?changed=1", code=303)


@bp.get("/")
def home() -> ResponseReturnValue:
    account = current_account()
    if account is None:
        if pending_password_change() is not None:
            return redirect("/password/change", code=303)
        return redirect("/login", code=303)
    return render_template("home.html", account=account, platforms=PLATFORMS,
                           changed=request.args.get("changed") == "1"), 200
