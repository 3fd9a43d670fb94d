"""Login pages: phone + password + SMS code (S17), UKey (S02), first-login and self-service
password change (T05), and the signed-in home page. Thin views over ``idp.auth.phone`` and
``idp.auth.ukey``."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from idp.accounts.models import PLATFORMS
from idp.auth import interactions, ukey
from idp.auth.forms import (
    PasswordChangeForm,
    PhoneLoginForm,
    SignedChallengeForm,
    SmsForm,
    UkeyLoginForm,
)
from idp.auth.phone import change_password, login_with_phone, send_login_code
from idp.auth.sms import button_answer
from idp.auth.sso import (
    current_account,
    end_sso,
    finish_password_change,
    pending_password_change,
    start_sso,
)
from idp.errors import FieldError, RateLimited, ServiceUnavailable
from idp.oidc.claims import ACR_PHONE, ACR_UKEY, AMR_PHONE, AMR_UKEY
from idp.pki import challenge
from idp.pki.certs import CertificateError
from idp.portal.views import platform_choices
from idp.registration import pending as registration
from idp.security import new_token
from idp.store import get_store, take_slot
from idp.validators import MSG_PHONE_FORMAT, normalize_phone
from idp.web import PAGE_MESSAGES, wants_json

bp = Blueprint("auth", __name__)


def _render_login(form: PhoneLoginForm, status: int = 200, notice: str | None = None,
                  sms_form: SmsForm | None = None, *, tab: str = "phone",
                  ukey_error: str | None = None, ukey_missing: bool = False) -> tuple[str, int]:
    settings = current_app.config["IDP"]
    ukey_form = UkeyLoginForm(formdata=None)
    ukey_form.interaction.data = form.interaction.data or ""
    return render_template(
        "login.html", form=form, sms_form=sms_form or SmsForm(formdata=None),
        ukey_form=ukey_form, tab=tab, ukey_error=ukey_error, ukey_missing=ukey_missing,
        client_tool_url=settings.ukey_client_tool_url,
        notice=notice, interaction=form.interaction.data or "",
        resend_seconds=settings.sms_resend_interval,
    ), status


def _render_ukey(uid: str, status: int, *, error: str | None = None,
                 missing: bool = False) -> tuple[str, int]:
    """The login page with the 「UKey登录」 tab open and the reason beside it."""
    form = PhoneLoginForm(formdata=None)
    form.interaction.data = uid if interactions.exists(uid) else ""
    return _render_login(form, status, tab="ukey", ukey_error=error, ukey_missing=missing)


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
        status, message, wait = button_answer(
            lambda: send_login_code(normalize_phone(sms_form.phone.data),
                                    request.remote_addr or "-"),
            current_app.config["IDP"].sms_resend_interval)
    if wants_json():
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


# --- UKey (S02, D02) -----------------------------------------------------------------------

@bp.post("/login/ukey")
def ukey_login() -> ResponseReturnValue:
    """【UKey登录】 over mutual TLS: the certificate came with the connection (embedded TLS or
    a trusted proxy); the form only proves it is this page asking (CSRF)."""
    form = UkeyLoginForm()
    uid = form.interaction.data or ""
    if not form.validate():
        return _render_ukey(uid, 400, error=PAGE_MESSAGES[400])
    transport = ukey.connection_transport()
    try:
        der = ukey.connection_certificate()
    except CertificateError as exc:  # a trusted proxy forwarded something unreadable
        ukey.record_refusal(exc.reason, transport)
        return _render_ukey(uid, 400, error=exc.message)
    if der is None:
        ukey.record_refusal("missing", transport)
        return _render_ukey(uid, 401, missing=True)
    return _login_with(der, transport, uid)


@bp.post("/login/ukey/challenge")
def ukey_challenge() -> ResponseReturnValue:
    """A one-time nonce for a UKey client tool to sign (JSON; CSRF header or field)."""
    settings = current_app.config["IDP"]
    store = get_store()
    wait = take_slot(store, f"ukey:nonce-ip:{request.remote_addr}", 60, 60)
    if wait is not None:
        return jsonify({"ok": False, "message": PAGE_MESSAGES[429], "wait": wait}), 429
    binding = session.setdefault("ukey_bind", new_token(16))
    nonce = challenge.issue_nonce(store, settings.secret_key, binding, settings.ukey_challenge_ttl)
    # The shape of every JSON answer to the page's script: ok, message, wait (+ the nonce).
    response = jsonify({"ok": True, "message": "", "wait": 0, "nonce": nonce,
                        "expires_in": settings.ukey_challenge_ttl, "formats": ["raw", "pkcs7"]})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/login/ukey/signed")
def ukey_signed() -> ResponseReturnValue:
    """The signed challenge posted by the page for the client tool: nonce, certificate and
    signature (raw or PKCS#7). Once the form is well-formed, the nonce is used up whatever the
    outcome: a wrong signature cannot be retried with the same nonce."""
    settings = current_app.config["IDP"]
    form = SignedChallengeForm()
    uid = form.interaction.data or ""
    if not form.validate():
        message = next((e[0] for e in form.errors.values() if e), PAGE_MESSAGES[400])
        ukey.record_refusal("bad_request", "challenge")
        return _render_ukey(uid, 400, error=str(message))
    binding = str(session.get("ukey_bind", ""))
    try:
        if not binding or not challenge.take_nonce(get_store(), settings.secret_key, binding,
                                                   form.nonce.data):
            raise CertificateError("challenge_expired")
        if form.format.data == "pkcs7":
            cert = challenge.verify_pkcs7(form.nonce.data, form.signature.data,
                                          form.certificate.data or "")
        else:
            cert = challenge.verify_raw(form.nonce.data, form.certificate.data or "",
                                        form.signature.data, form.hash.data or "sha256")
    except CertificateError as exc:
        ukey.record_refusal(exc.reason, "challenge")
        return _render_ukey(uid, 400 if exc.reason != "missing" else 401, error=exc.message)
    return _login_with(cert, "challenge", uid)


def _login_with(data: bytes | x509.Certificate, transport: str, uid: str) -> ResponseReturnValue:
    """Judge the certificate and log in, or show the refusal beside the UKey tab."""
    try:
        outcome = ukey.login_with_certificate(data, transport)
    except (CertificateError, ukey.CertificateLoginRefused) as exc:
        return _render_ukey(uid, 403, error=exc.message)
    except ServiceUnavailable as exc:
        return _render_ukey(uid, 503, error=exc.message)
    return _after_ukey(outcome, transport, uid)


def _after_ukey(outcome: ukey.UkeyOutcome, transport: str, uid: str) -> ResponseReturnValue:
    enterprise = outcome.validated.enterprise
    if outcome.account is None or outcome.account.status == "pending":
        # Registration continues from here (S03); the verified facts wait in the session so
        # that registration cannot be started with another enterprise's USCC.
        registration.remember(registration.PendingUkey(
            uscc=enterprise.uscc, org_code=enterprise.org_code, name=enterprise.name,
            x5t=outcome.validated.thumbprint, transport=transport,
            interaction=uid if interactions.exists(uid) else ""))
        if outcome.account is not None:  # registered, waiting for the centre's review
            return redirect(url_for("registration.status"), code=303)
        return render_template("ukey_unregistered.html", enterprise=enterprise,
                               registered_org=outcome.organisation), 200
    start_sso(outcome.account, amr=AMR_UKEY, acr=ACR_UKEY)
    ukey.bind_session(outcome.validated, transport)
    return redirect(interactions.next_url(uid or None), code=303)


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
                           choices=platform_choices(account),
                           changed=request.args.get("changed") == "1"), 200
