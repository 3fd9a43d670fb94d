"""HTTP endpoints of the provider. Thin: parse, call the Authlib server, render."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oidc.core.errors import AccountSelectionRequiredError, LoginRequiredError
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as web_session
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from idp.accounts.models import PLATFORMS, Account
from idp.auth import interactions
from idp.auth.sso import auth_context, current_account, pending_password_change
from idp.auth.ukey import certificate_still_present
from idp.extensions import csrf, db
from idp.oidc import tokens
from idp.oidc.claims import ACR_PHONE, ACR_UKEY, CLAIMS_SUPPORTED, user_claims
from idp.oidc.keys import ALGORITHMS, KeyRing
from idp.oidc.models import AUTH_METHODS, GRANT_TYPES, SCOPES, Client
from idp.oidc.server import ALL_AUTH, SECRET_AUTH, IdpRequest, get_server, max_age_of
from idp.pki.transport import presented_x5t
from idp.portal import selection
from idp.security import equal

# The protocol endpoints are exempt from the form CSRF check as a blueprint: /token, /revoke,
# /introspect and /userinfo authenticate the client or the bearer token instead of a cookie, and
# /logout checks the token itself when (and only when) a confirmation form was posted.
bp = Blueprint("oidc", __name__)


def _issuer() -> str:
    issuer: str = current_app.config["IDP"].issuer
    return issuer.rstrip("/")


def _public(response: Response, max_age: int = 300) -> Response:
    """Discovery and keys are public documents: cacheable, readable from any origin."""
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery() -> Response:
    """OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 in one document."""
    base = _issuer()
    return _public(jsonify({
        "issuer": current_app.config["IDP"].issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/jwks.json",
        "end_session_endpoint": f"{base}/logout",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": ALL_AUTH,
        "introspection_endpoint_auth_methods_supported": SECRET_AUTH,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "acr_values_supported": [ACR_PHONE, ACR_UKEY],
        "prompt_values_supported": ["none", "login", "select_account"],
        "authorization_response_iss_parameter_supported": True,
        "tls_client_certificate_bound_access_tokens": True,  # RFC 8705 §3.3
        "backchannel_logout_supported": True,  # Back-Channel Logout 1.0 §2.1
        "backchannel_logout_session_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "ui_locales_supported": ["zh-CN"],
    }))


@bp.get("/jwks.json")
def jwks() -> Response:
    return _public(jsonify(KeyRing.jwks(db.session)), max_age=60)


# --- authorization endpoint ------------------------------------------------------------------

def _with_issuer(response: Response) -> Response:
    """RFC 9207 §2: every authorization response, errors included, names the issuer."""
    if response.location:
        response.location = add_params_to_uri(
            response.location, [("iss", current_app.config["IDP"].issuer)]
        )
    return response


def _authorization_error(req: IdpRequest, error: OAuth2Error) -> ResponseReturnValue:
    """Redirect only to a redirect URI already validated for the client; otherwise a page."""
    error.state = req.payload.state
    if error.redirect_uri:
        return _with_issuer(get_server().handle_error_response(req, error))
    return render_template(
        "error.html", status=400, message="授权请求无效，请从业务系统重新进入。",
        detail=error.description or error.error,
    ), 400


MAX_REQUEST_CHARS = 8192


def _as_get(endpoint: str, form: MultiDict[str, str]) -> ResponseReturnValue:
    """303 to the same endpoint with the posted fields as the query string."""
    query = urlencode(list(form.items(multi=True)))
    return redirect(url_for(endpoint) + ("?" + query if query else ""), code=303)


def run_authorization(params: MultiDict[str, str], started_at: float) -> ResponseReturnValue:
    """Validate through the grant, then either send the user to log in or issue the code."""
    server = get_server()
    req = IdpRequest("GET", server.public_uri(), params, request.headers)
    if sum(len(k) + len(v) for k, v in params.items(multi=True)) > MAX_REQUEST_CHARS:
        # It is kept in the session while the user logs in: no room for megabytes.
        return render_template("error.html", status=400,
                               message="授权请求过长，请从业务系统重新进入。"), 400
    account = current_account()
    try:
        grant = server.get_consent_grant(req, end_user=account)
        prompts = set(params.get("prompt", "").split())
        max_age = max_age_of(params)  # validated by the grant
        # Judged against the moment the request first arrived, so that the login it led to
        # satisfies it (no loop), while any earlier login does not (OIDC Core §3.1.2.1).
        auth_time = float(web_session.get("auth_time", 0))
        need_login = (
            account is None
            or ("login" in prompts and auth_time < started_at)
            or (isinstance(max_age, int) and auth_time < started_at - max_age)
            or not certificate_still_present(account.id)
        )
        if need_login and "none" in prompts:
            raise LoginRequiredError(redirect_uri=grant.redirect_uri)
        client: Client = grant.request.client
        chosen = None if need_login or account is None else selection.select(
            account, client, prompts, started_at)
        if chosen is not None and chosen.missing and "none" in prompts:
            raise AccessDeniedError(redirect_uri=grant.redirect_uri)
        if chosen is not None and chosen.choose and "none" in prompts:
            raise AccountSelectionRequiredError(redirect_uri=grant.redirect_uri)
    except OAuth2Error as error:
        return _authorization_error(req, error)

    if need_login:
        uid = interactions.save(params, started_at)
        if pending_password_change() is not None:
            return redirect(interactions.url("auth.change_password", uid), code=303)
        return redirect(interactions.url("auth.login", uid,
                                         login_hint=params.get("login_hint")), code=303)

    assert account is not None and chosen is not None
    if chosen.missing:  # S09: no identity on this platform, no code (and a way forward)
        return render_template("portal/no_identity.html", account=account,
                               platform=PLATFORMS.get(client.platform or "", client.name),
                               client=client), 403
    if chosen.choose:  # S09: several identities: the role-selection page first
        uid = interactions.save(params, started_at)
        return redirect(interactions.url("portal.select_identity", uid), code=303)
    req.auth = auth_context(account, chosen.identity_id)
    response = server.create_authorization_response(req, grant_user=account, grant=grant)
    return _with_issuer(response)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """OIDC Core §3.1.2. A POST (§3.1.2.1) is turned into the same GET (303): our session
    cookie is SameSite=Lax, so a browser sends it on a top-level GET but not on a cross-site
    POST, and without it the user would look logged out."""
    if request.method == "POST":
        return _as_get("oidc.authorize", request.form)
    return run_authorization(MultiDict(request.args), time.time())


@bp.get("/authorize/resume/<uid>")
def resume(uid: str) -> ResponseReturnValue:
    """Continue an authorization request that was interrupted by the login pages."""
    saved = interactions.pop(uid)
    if saved is None:
        return render_template("error.html", status=400,
                               message="登录请求已过期，请从业务系统重新进入。"), 400
    params, started_at = saved
    return run_authorization(params, started_at)


# --- token, revocation, introspection ---------------------------------------------------------

@bp.post("/token")
def token() -> Response:
    response: Response = get_server().create_token_response()
    return response


@bp.post("/revoke")
def revoke() -> Response:
    response: Response = get_server().create_endpoint_response("revocation")
    return response


@bp.post("/introspect")
def introspect() -> Response:
    response: Response = get_server().create_endpoint_response("introspection")
    return response


# --- userinfo ----------------------------------------------------------------------------------

def _bearer_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["WWW-Authenticate"] = (
        f'Bearer realm="idp", error="{error}", error_description="{description}"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_token() -> str | None:
    """RFC 6750 §2.1 (header) and §2.2 (form body); never the query string."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token") or None
    return None


def _presents_bound_certificate(x5t: str) -> bool:
    presented = presented_x5t(request.environ)
    return presented is not None and equal(presented, x5t)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OIDC Core §5.3."""
    value = _bearer_token()
    if value is None:
        response = _bearer_error(401, "invalid_request", "Missing access token.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="idp"'
        return response
    row, kind = tokens.find_token(value[:512], "access_token")
    if row is None or kind != "access_token" or row.is_revoked() or row.is_expired():
        return _bearer_error(401, "invalid_token", "The access token is invalid.")
    if row.cnf_x5t and not _presents_bound_certificate(row.cnf_x5t):
        # RFC 8705 §3: a bound token is good only with the certificate it is bound to.
        return _bearer_error(401, "invalid_token", "The access token is certificate-bound.")
    if "openid" not in row.scope.split() or row.account_id is None:
        return _bearer_error(403, "insufficient_scope", "The token has no 'openid' scope.")
    account = db.session.get(Account, row.account_id)
    if account is None or not account.is_active:
        return _bearer_error(401, "invalid_token", "The account is no longer active.")
    response = jsonify(user_claims(account, row.scope, row.identity_id))
    response.headers["Cache-Control"] = "no-store"
    return response


# --- RP-initiated logout -------------------------------------------------------------------------

LOGOUT_PARAMS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state",
                 "logout_hint", "ui_locales")


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> ResponseReturnValue:
    """OIDC RP-Initiated Logout 1.0 §2–§3. Without a hint that names the logged-in user, the
    user confirms first (a CSRF-protected form), so a third-party page cannot log people out."""
    confirmed = request.method == "POST" and request.form.get("confirm") == "1"
    if confirmed:
        csrf.protect()
    elif request.method == "POST":  # an RP's form post: continue as GET, cookie and all
        return _as_get("oidc.end_session", request.form)
    server = get_server()
    params: MultiDict[str, str] = MultiDict(
        [(k, str(v)) for k, v in request.values.items(multi=True) if k in LOGOUT_PARAMS])
    req = IdpRequest(request.method, server.public_uri(), params, request.headers)
    req.confirmed = confirmed
    try:
        validated = server.validate_endpoint_request("end_session", req)
    except OAuth2Error as error:
        return render_template("error.html", status=400, message="退出请求无效。",
                               detail=error.description), 400

    hint: dict[str, Any] | None = validated.id_token_claims
    logged_in = web_session.get("uid")
    same_session = (hint is not None and hint.get("sub") == logged_in
                    and hint.get("sid") == web_session.get("sid"))
    if logged_in and not confirmed and not same_session:
        client: Client | None = validated.client
        return render_template("logout_confirm.html", params=params,
                               client_name=client.name if client else None)
    response: Response | None = server.create_endpoint_response("end_session", validated)
    if response is not None:
        if request.method == "POST":
            response.status_code = 303  # RFC 9700 §4.12: never 307 after a POST
        return response
    return render_template("logged_out.html")
