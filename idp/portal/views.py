"""The role-selection page of an authorization (S09) and the platform choice on the home page
(S18): thin views over ``idp.portal.selection``.

Entering a platform from here is third-party initiated login (OpenID Connect Core §4): the
provider sends the browser to the client's ``initiate_login_uri`` with ``iss``; the relying
party then starts an ordinary authorization request, which finds the SSO session.
"""

from __future__ import annotations

import sqlalchemy as sa
from authlib.common.urls import add_params_to_uri
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from idp import audit
from idp.accounts.models import PLATFORMS, Account
from idp.auth import interactions
from idp.auth.sso import current_account
from idp.extensions import db
from idp.oidc.models import Client
from idp.orgs.review import ROLE_LABELS
from idp.portal import selection
from idp.web import MSG_FORM_EXPIRED

bp = Blueprint("portal", __name__)

MSG_CHOOSE_IDENTITY = "请选择登录身份"
MSG_CHOOSE_PLATFORM = "请选择要进入的平台"
MSG_EXPIRED = "登录请求已过期，请从业务系统重新进入。"


class CsrfForm(FlaskForm):  # type: ignore[misc]
    """The fields are read by the views; the form brings the CSRF token."""


def _waiting_client(uid: str) -> Client | None:
    params = interactions.params(uid)
    client_id = params.get("client_id", "") if params is not None else ""
    client = db.session.get(Client, client_id) if 0 < len(client_id) <= 64 else None
    return client if client is not None and client.enabled and client.platform else None


@bp.route("/select-identity", methods=["GET", "POST"])
def select_identity() -> ResponseReturnValue:
    """S09: an account with several identities on the platform picks one; the authorization
    then continues with it (and the tokens carry it)."""
    account = current_account()
    uid = request.values.get("i", "")
    if account is None:
        return redirect(url_for("auth.login"), code=303)
    client = _waiting_client(uid)
    if client is None or client.platform is None:
        return render_template("error.html", status=400, message=MSG_EXPIRED), 400
    platform = client.platform
    form = CsrfForm()
    error = None
    if request.method == "POST":
        if not form.validate():
            error = MSG_FORM_EXPIRED
        else:
            identity = selection.candidate(account, platform, request.form.get("identity", ""))
            if identity is not None:
                selection.remember(identity)
                audit.record("identity.select", account_id=account.id, identity=identity.id,
                             platform=platform, client_id=client.client_id)
                db.session.commit()
                return redirect(interactions.next_url(uid), code=303)
            error = MSG_CHOOSE_IDENTITY
    return render_template(
        "portal/select_identity.html", form=form, uid=uid, error=error, client=client,
        platform=PLATFORMS.get(platform, platform), roles=ROLE_LABELS,
        identities=account.identities_for(platform)), 200 if error is None else 400


def portal_clients() -> dict[str, Client]:
    """Per platform, the enabled client that third-party initiated login can enter."""
    found: dict[str, Client] = {}
    for client in db.session.scalars(sa.select(Client).where(
            Client.enabled.is_(True), Client.platform.is_not(None),
            Client.initiate_login_uri.is_not(None)).order_by(Client.client_id)):
        if client.platform and client.initiate_login_uri:
            found.setdefault(client.platform, client)
    return found


def platform_choices(account: Account) -> list[tuple[str, str]]:
    """The platforms the account has an active identity on and that can be entered (S18)."""
    clients = portal_clients()
    have = {i.platform for i in account.identities if i.status == "active"}
    return [(code, name) for code, name in PLATFORMS.items() if code in have and code in clients]


@bp.post("/portal/enter")
def enter() -> ResponseReturnValue:
    """S18: 【确认选择】 — into the chosen platform by third-party initiated login (OIDC Core
    §4): the relying party's login URI with our issuer; it comes back through /authorize."""
    account = current_account()
    if account is None:
        return redirect(url_for("auth.login"), code=303)
    form = CsrfForm()
    platform = request.form.get("platform", "")
    if not form.validate():
        return render_template("error.html", status=400, message=MSG_FORM_EXPIRED), 400
    if platform not in dict(platform_choices(account)):
        return render_template("error.html", status=400, message=MSG_CHOOSE_PLATFORM), 400
    client = portal_clients()[platform]
    assert client.initiate_login_uri is not None
    audit.record("portal.enter", account_id=account.id, platform=platform,
                 client_id=client.client_id)
    db.session.commit()
    target = add_params_to_uri(client.initiate_login_uri,
                               [("iss", current_app.config["IDP"].issuer)])
    return redirect(target, code=303)
