"""The platform admin console: clients, signing keys, the audit log, organisations.

Who gets in (``guard``): a logged-in person (phone + password + SMS code) with an active
``platform_admin`` identity, who has also given the 动态口令 (TOTP) of ``/admin/verify`` in this
SSO session within the last 30 minutes (``idp.admin.access``). Anonymous → the login page;
anybody else → 403, audited as ``admin.denied``. Views are thin: parse the form, call the
service (which audits and commits), redirect (303) or re-render with the messages beside the
fields. Secrets of clients are shown once, in the answer to the POST that made them, and never
again (only their hash is stored) — that answer is a page, not a redirect, so the secret never
travels in a URL or rests in the session.
"""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, stream_with_context
from flask import url_for as flask_url_for
from flask.typing import ResponseReturnValue

from idp import audit
from idp.accounts.models import PLATFORMS, Account
from idp.admin import access, audit_log, orgs, service
from idp.admin.forms import ActionForm, ClientForm, KeyRotateForm, VerifyForm
from idp.auth.sso import admitted
from idp.db import utcnow
from idp.errors import FieldError
from idp.extensions import db
from idp.oidc.keys import ALGORITHMS
from idp.oidc.models import Client
from idp.web import BEIJING, error_response

bp = Blueprint("admin", __name__, url_prefix="/admin")

MSG_FORM_INVALID = "请求无效，请刷新页面后重试。"
DONE = {
    "updated": "客户端信息已保存。",
    "unchanged": "没有需要保存的修改。",
    "disabled": "客户端已停用，其令牌已全部吊销。",
    "enabled": "客户端已启用。",
    "rotated": "已生成新的签名密钥并立即用于签名；旧密钥在其签发的令牌过期前仍在 JWKS 中公布。",
}
DEFAULT_NEXT = "/admin/clients"


# --- who may enter --------------------------------------------------------------------------

_NEXT_PATH = re.compile(r"/admin(/[A-Za-z0-9_.~-]+)*")
_NEXT_QUERY = re.compile(r"[A-Za-z0-9_.~=&%+:-]*")


def _safe_next(raw: str | None) -> str:
    """Where to go after the 动态口令: only a page of this console (no open redirect, no dot
    segments, no other host), else the client list."""
    parts = urlsplit(raw or "")
    segments = parts.path.split("/")
    if (not parts.scheme and not parts.netloc and not parts.fragment
            and _NEXT_PATH.fullmatch(parts.path) and _NEXT_QUERY.fullmatch(parts.query)
            and not {".", ".."} & set(segments) and "%2e" not in (raw or "").lower()
            and len(raw or "") <= 300 and parts.path not in ("/admin", "/admin/verify")):
        return raw or DEFAULT_NEXT
    return DEFAULT_NEXT


@bp.before_request
def guard() -> ResponseReturnValue | None:
    account = admitted("admin.denied",
                       lambda a: a if access.is_platform_admin(a) else None,
                       method=request.method)
    g.admin = account
    if request.endpoint == "admin.verify":
        return None
    if not access.is_verified(account):
        wanted = request.full_path.rstrip("?") if request.method == "GET" else DEFAULT_NEXT
        return redirect(flask_url_for("admin.verify", next=_safe_next(wanted)), code=303)
    return None


def _admin() -> Account:
    return cast(Account, g.admin)


def _render(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    return render_template(template, admin=_admin(), **context), status


@bp.route("/verify", methods=["GET", "POST"])
def verify() -> ResponseReturnValue:
    """The second factor: the 6-digit 动态口令 of the admin's authenticator app."""
    account = _admin()
    target = _safe_next(request.values.get("next"))
    if request.method == "GET" and access.is_verified(account):
        return redirect(target, code=303)
    form = VerifyForm()
    if request.method == "GET":
        wait = access.locked_for(account)
        return _render("admin/verify.html", form=form, target=target,
                       no_totp=not access.has_totp(account),
                       locked=access.locked_message(wait) if wait else None)
    if not form.validate():
        return _render("admin/verify.html", 400, form=form, target=target, no_totp=False)
    try:
        access.verify_code(account, form.code.data)
    except access.VerifyLocked as exc:
        response = render_template("admin/verify.html", admin=account, form=form,
                                   target=target, no_totp=False, locked=exc.message)
        return response, 429, {"Retry-After": str(exc.retry_after)}
    except FieldError as exc:
        form.code.errors = [exc.message]
        return _render("admin/verify.html", 400, form=form, target=target, no_totp=False)
    access.mark_verified(account)
    return redirect(target, code=303)


@bp.get("")
def index() -> ResponseReturnValue:
    return redirect(flask_url_for("admin.clients"), code=303)


# --- clients --------------------------------------------------------------------------------

def _client_or_404(client_id: str) -> Client | None:
    return service.client_from_path(client_id)


@bp.get("/clients")
def clients() -> ResponseReturnValue:
    return _render("admin/clients.html", rows=service.list_clients(), platforms=PLATFORMS,
                   auth_methods=service.AUTH_METHOD_LABELS)


def _apply_errors(form: ClientForm, errors: dict[str, str]) -> str | None:
    """Put each message beside its field; a message for no field is returned for the page."""
    general = None
    for name, message in errors.items():
        if name in ClientForm.FIELDS:
            getattr(form, name).errors = [message]
        else:
            general = message
    return general


@bp.route("/clients/new", methods=["GET", "POST"])
def new_client() -> ResponseReturnValue:
    form = ClientForm()
    if request.method == "GET":
        return _render("admin/client_form.html", form=form, client=None)
    if not form.validate():
        service.refuse("admin.client.create", _admin(), "invalid",
                       fields=sorted(form.errors))
        return _render("admin/client_form.html", 400, form=form, client=None,
                       error=form.errors.get("csrf_token") and MSG_FORM_INVALID)
    try:
        client, secret = service.create_client(service.client_input(form.data), _admin())
    except service.InvalidInput as exc:
        general = _apply_errors(form, exc.errors)
        return _render("admin/client_form.html", 400, form=form, client=None, error=general)
    return _render("admin/client_secret.html", client=client, secret=secret, created=True)


@bp.route("/clients/<client_id>/edit", methods=["GET", "POST"])
def edit_client(client_id: str) -> ResponseReturnValue:
    client = _client_or_404(client_id)
    if client is None:
        return error_response(404)
    if request.method == "GET":
        form = ClientForm(formdata=None, data=vars(service.input_of(client)))
        return _render_edit(client, form)
    form = ClientForm()
    if not form.validate():
        service.refuse("admin.client.update", _admin(), "invalid", client_id=client.client_id,
                       fields=sorted(form.errors))
        return _render_edit(client, form, 400,
                            error=form.errors.get("csrf_token") and MSG_FORM_INVALID)
    try:
        changed = service.update_client(client, service.client_input(form.data), _admin())
    except service.InvalidInput as exc:
        general = _apply_errors(form, exc.errors)
        return _render_edit(client, form, 400, error=general)
    return redirect(flask_url_for("admin.edit_client", client_id=client.client_id,
                                  done="updated" if changed else "unchanged"), code=303)


def _render_edit(client: Client, form: ClientForm, status: int = 200,
                 error: str | None = None) -> ResponseReturnValue:
    return _render("admin/client_form.html", status, form=form, client=client,
                   tenant=service.tenant_of(client),
                   auth_methods=service.AUTH_METHOD_LABELS, error=error,
                   done=DONE.get(request.args.get("done", "")))


def _action(client_id: str, event: str) -> Client | ResponseReturnValue:
    """The client of a button's POST, once its CSRF token is checked."""
    client = _client_or_404(client_id)
    if client is None:
        return error_response(404)
    if not ActionForm().validate():
        service.refuse(event, _admin(), "invalid", client_id=client.client_id)
        return error_response(400, MSG_FORM_INVALID)
    return client


@bp.post("/clients/<client_id>/rotate-secret")
def rotate_secret(client_id: str) -> ResponseReturnValue:
    found = _action(client_id, "admin.client.rotate_secret")
    if not isinstance(found, Client):
        return found
    try:
        secret = service.rotate_secret(found, _admin())
    except service.ActionRefused as exc:
        form = ClientForm(formdata=None, data=vars(service.input_of(found)))
        return _render_edit(found, form, 400, error=exc.message)
    return _render("admin/client_secret.html", client=found, secret=secret, created=False)


@bp.post("/clients/<client_id>/disable")
def disable_client(client_id: str) -> ResponseReturnValue:
    found = _action(client_id, "admin.client.disable")
    if not isinstance(found, Client):
        return found
    service.set_enabled(found, False, _admin())
    return redirect(flask_url_for("admin.edit_client", client_id=found.client_id,
                                  done="disabled"), code=303)


@bp.post("/clients/<client_id>/enable")
def enable_client(client_id: str) -> ResponseReturnValue:
    found = _action(client_id, "admin.client.enable")
    if not isinstance(found, Client):
        return found
    service.set_enabled(found, True, _admin())
    return redirect(flask_url_for("admin.edit_client", client_id=found.client_id,
                                  done="enabled"), code=303)


# --- signing keys ---------------------------------------------------------------------------

def _render_keys(status: int = 200, form: KeyRotateForm | None = None,
                 error: str | None = None) -> ResponseReturnValue:
    return _render("admin/keys.html", status, keys=service.list_keys(),
                   states=service.KEY_STATES, form=form or KeyRotateForm(formdata=None),
                   error=error, done=DONE.get(request.args.get("done", "")))


@bp.get("/keys")
def keys() -> ResponseReturnValue:
    return _render_keys()


@bp.post("/keys/rotate")
def rotate_keys() -> ResponseReturnValue:
    form = KeyRotateForm()
    if not form.validate():
        service.refuse("admin.keys.rotate", _admin(), "invalid")
        return _render_keys(400, form, error=MSG_FORM_INVALID)
    alg = (form.alg.data or "").strip()
    if alg and alg not in ALGORITHMS:
        service.refuse("admin.keys.rotate", _admin(), "invalid")
        form.alg.errors = [orgs.MSG_CHOICE]
        return _render_keys(400, form)
    service.rotate_signing_keys((alg,) if alg else ALGORITHMS, _admin())
    return redirect(flask_url_for("admin.keys", done="rotated"), code=303)


# --- audit log ------------------------------------------------------------------------------

def _render_audit(filters: audit_log.AuditFilters) -> ResponseReturnValue:
    """The list; with bad filters no rows, the messages beside the fields and a 400."""
    if filters.errors:
        return _render("admin/audit.html", 400, filters=filters, page=None,
                       results=audit_log.RESULT_LABELS)
    page = audit_log.search(filters, before=audit_log.cursor(request.args.get("before")),
                            after=audit_log.cursor(request.args.get("after")))
    return _render("admin/audit.html", filters=filters, page=page,
                   results=audit_log.RESULT_LABELS)


@bp.get("/audit")
def audit_view() -> ResponseReturnValue:
    return _render_audit(audit_log.parse_filters(request.args))


@bp.get("/audit.csv")
def audit_csv() -> ResponseReturnValue:
    """The same filters as the list, as CSV (newest first, at most 100,000 rows), streamed.
    The export itself is audited: who took which part of the trail."""
    filters = audit_log.parse_filters(request.args)
    if filters.errors:
        return _render_audit(filters)
    audit.record("admin.audit.export", account_id=_admin().id, **filters.as_dict())
    db.session.commit()
    name = f"audit-{utcnow().astimezone(BEIJING):%Y%m%d-%H%M%S}.csv"
    return Response(stream_with_context(audit_log.export_csv(filters)),
                    mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


# --- organisations --------------------------------------------------------------------------

@bp.get("/orgs")
def orgs_view() -> ResponseReturnValue:
    filters = orgs.parse_filters(request.args)
    result = None if filters.errors else orgs.search(
        filters, orgs.page_number(request.args.get("page")))
    return _render("admin/orgs.html", 400 if filters.errors else 200, filters=filters,
                   result=result, types=orgs.TYPE_LABELS, statuses=orgs.STATUS_LABELS,
                   districts=orgs.DISTRICT_LABELS)
