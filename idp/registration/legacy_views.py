"""Binding a legacy fund-system account to the UKey (S04 「是」).

``/register/bind`` is reached from the S04 prompt after a UKey login of an enterprise that has
no UKey account yet. The enterprise is the certificate's (``pending_ukey``), never the form's:
the form names only the fund-system account and its proof (OTP code or key). Thin view: parse,
``idp.registration.legacy.bind``, render.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, SelectChoice, StringField

from idp.auth import interactions
from idp.auth.sso import current_account
from idp.errors import FieldError
from idp.registration import legacy
from idp.registration.pending import PendingUkey, pending_ukey
from idp.web import MSG_FORM_EXPIRED

bp = Blueprint("legacy", __name__)

DONE_KEY = "legacy_bound"
METHODS = {"otp": "OTP动态口令", "key": "密钥"}
MSG_METHOD = "请选择验证方式"


class LooseRadio(RadioField):  # type: ignore[misc]
    def pre_validate(self, form: object) -> None:
        """A value outside the list gets 「请选择验证方式」 from the view, beside the field."""


class BindForm(FlaskForm):  # type: ignore[misc]
    """Labels as on the page; checks live in ``idp.registration.legacy`` (one rule for the
    import and the page), the form gives CSRF and rendering."""

    legacy_id = StringField("维修资金系统账号")
    method = LooseRadio("验证方式", default="otp",
                        choices=[SelectChoice(v, label) for v, label in METHODS.items()])
    otp_code = StringField("动态口令")
    key = PasswordField("密钥")


def _render(form: BindForm, pending: PendingUkey, status: int,
            error: str | None = None) -> tuple[str, int]:
    return render_template("registration/bind.html", form=form, pending=pending,
                           error=error), status


def _key(raw: str) -> str:
    if not raw.strip():
        raise FieldError("key", legacy.MSG_KEY_REQUIRED)
    return legacy.normalize_key(raw)


def _parse(form: BindForm) -> dict[str, str] | None:
    """Every field judged at once (messages beside each); None when one is wrong."""
    method = str(form.method.data or "")
    values: dict[str, str] = {"method": method}
    if method not in METHODS:
        form.method.errors = [MSG_METHOD]
    checks: list[tuple[str, Callable[[str], str], str | None]] = [
        ("legacy_id", legacy.normalize_legacy_id, form.legacy_id.data)]
    if method == "otp":
        checks.append(("otp_code", legacy.normalize_otp_code, form.otp_code.data))
    elif method == "key":
        checks.append(("key", _key, form.key.data))
    for name, check, raw in checks:
        try:
            values[name] = check(raw or "")
        except FieldError as exc:
            getattr(form, exc.field).errors = [exc.message]
    return None if any(f.errors for f in form) else values


@bp.route("/register/bind", methods=["GET", "POST"], endpoint="bind")
def bind_view() -> ResponseReturnValue:
    """S04 「是」: 维修资金系统账号 + 动态口令 (or 密钥) → the UKey is bound, logged in."""
    pending = pending_ukey()
    if pending is None:  # no certificate checked (or too long ago): back to the UKey login
        return redirect(url_for("auth.login") + "#panel-ukey", code=303)
    form = BindForm()
    if not form.is_submitted():
        return _render(form, pending, 200)
    if not form.validate():  # CSRF
        return _render(form, pending, 400, error=MSG_FORM_EXPIRED)
    values = _parse(form)
    if values is None:
        return _render(form, pending, 400)
    try:
        account = legacy.bind(
            pending, values["legacy_id"],
            otp_code=values["otp_code"] if values["method"] == "otp" else None,
            key=values["key"] if values["method"] == "key" else None)
    except legacy.BindLocked as exc:
        return _render(form, pending, 429, error=exc.message)
    except legacy.BindRefused as exc:
        return _render(form, pending, 403, error=exc.message)
    except FieldError as exc:
        getattr(form, exc.field).errors = [exc.message]
        return _render(form, pending, 400)
    # bind() logged the enterprise in (a new session): what the result page shows goes there.
    session[DONE_KEY] = {"name": account.name or "", "interaction": pending.interaction}
    return redirect(url_for("legacy.done"), code=303)


@bp.get("/register/bind/done")
def done() -> ResponseReturnValue:
    """「绑定成功」 naming the enterprise, 【确定】 → the waiting authorization or the home page."""
    data = session.get(DONE_KEY)
    if current_account() is None or not isinstance(data, dict):
        return redirect(url_for("auth.home"), code=303)
    uid = str(data.get("interaction") or "")
    return render_template("registration/bind_done.html", name=str(data.get("name", "")),
                           next_url=interactions.next_url(uid or None)), 200
