"""``create_rp_app``: the OIDC client both demo relying parties share.

Authorization code + PKCE S256 + state + nonce (OIDC Core §3.1), RFC 9207 ``iss`` checked on the
response, third-party initiated login (§4) on ``/auth/login``, RP-initiated logout and
Back-Channel Logout 1.0. Sessions are server-side rows (``local_session``) so that the provider
can end them from its back channel; the browser holds only a random id in a signed cookie.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from jinja2 import DictLoader
from requests import RequestException
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from relying_parties.common.models import Base, LocalSession, SeenLogoutToken, utcnow
from relying_parties.common.oidc import Provider, ProviderError, TokenError
from relying_parties.common.provisioning import provision
from relying_parties.common.settings import RPSettings
from relying_parties.common.templates import STYLESHEET, TEMPLATES

log = logging.getLogger("relying_parties.auth")

ROLE_LABELS = {
    "enterprise_admin": "物业企业管理员",
    "operator": "操作员",
    "office": "小区管理处",
    "committee_handler": "业委会经办人",
    "centre_reviewer": "区中心审核人员",
}
AMR_LABELS = {"hwk": "UKey数字证书登录", "pwd": "手机号码+密码+短信验证码登录"}
LOCAL_SESSION_TTL = timedelta(hours=8)
PENDING_LIMIT = 5  # authorization requests in flight per browser (several tabs)

Menus = list[tuple[str, list[tuple[str, list[tuple[str, str]]]]]]
MenuBuilder = Callable[["CurrentUser", str], Menus]


@dataclass(frozen=True)
class CurrentUser:
    sub: str
    name: str | None
    org: dict[str, Any]
    roles: list[str]
    amr: list[str]
    platform: str | None
    id_token: str

    @property
    def org_name(self) -> str:
        return str(self.org.get("name") or "")

    @property
    def display_name(self) -> str:
        """A person's name, or for the enterprise's own UKey its name."""
        return self.name or self.org_name

    @property
    def role_label(self) -> str:
        return "、".join(ROLE_LABELS.get(r, r) for r in self.roles)

    @property
    def amr_label(self) -> str:
        for code, label in AMR_LABELS.items():
            if code in self.amr:
                return label
        return "、".join(self.amr)


@dataclass
class RPState:
    settings: RPSettings
    provider: Provider
    sessions: sessionmaker[Session]
    title: str
    menus: MenuBuilder


def rp_state() -> RPState:
    state: RPState = current_app.extensions["relying_party"]
    return state


def _error(message: str, status: int = 400) -> ResponseReturnValue:
    return render_template("error.html", title=rp_state().title, message=message), status


def _client() -> OAuth2Session:
    st = rp_state()
    client = OAuth2Session(st.settings.client_id, st.settings.client_secret,
                           scope=st.settings.scope, redirect_uri=st.settings.redirect_uri,
                           code_challenge_method="S256",
                           token_endpoint_auth_method="client_secret_basic")  # noqa: S106
    client.verify = st.settings.verify
    client.trust_env = False  # RP_CA_BUNDLE decides whom we trust, not REQUESTS_CA_BUNDLE
    return client


# --- local sessions -----------------------------------------------------------------------------

def _end_local(row_id: str | None) -> None:
    if not row_id:
        return
    with rp_state().sessions() as db:
        db.execute(sa.delete(LocalSession).where(LocalSession.id == row_id))
        db.commit()


def _refresh(db: Session, row: LocalSession) -> bool:
    """Use the refresh token once the access token has expired. A refusal means the provider
    session ended or was revoked, and so does ours (issue 5: expiry/revocation reach the RPs)."""
    if not row.refresh_token:
        return False
    st = rp_state()
    try:
        token = _client().refresh_token(st.provider.endpoint("token_endpoint"),
                                        refresh_token=row.refresh_token,
                                        timeout=st.settings.http_timeout)
    except (OAuthError, RequestException, ProviderError, ValueError) as exc:
        log.info("refresh failed for local session of %s: %s", row.sub, exc)
        return False
    row.access_token = token.get("access_token")
    row.refresh_token = token.get("refresh_token") or row.refresh_token
    expires_in = int(token.get("expires_in") or 300)
    row.access_expires_at = utcnow() + timedelta(seconds=expires_in)
    return True


def current_user() -> CurrentUser | None:
    """The logged-in user of this request, or None (the row was ended or could not refresh)."""
    row_id = session.get("lsid")
    if not isinstance(row_id, str):
        return None
    with rp_state().sessions() as db:
        row = db.get(LocalSession, row_id)
        if row is None:
            session.pop("lsid", None)
            return None
        now = utcnow()
        alive = row.expires_at > now
        if alive and row.access_expires_at is not None and row.access_expires_at <= now:
            alive = _refresh(db, row)
        if not alive:
            db.delete(row)
            db.commit()
            session.pop("lsid", None)
            return None
        db.commit()
        return CurrentUser(sub=row.sub, name=row.name, org=json.loads(row.org or "{}"),
                           roles=row.roles.split(), amr=row.amr.split(),
                           platform=row.platform, id_token=row.id_token)


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


# --- the auth blueprint -------------------------------------------------------------------------

bp = Blueprint("rp_auth", __name__, url_prefix="/auth")


def _own_target(target: str | None) -> str | None:
    """OIDC Core §4 ``target_link_uri``: followed after login only when it is one of our own
    pages (an open redirector otherwise)."""
    base = rp_state().settings.base_url + "/"
    if not target or len(target) > 2048 or not target.startswith(base):
        return None
    return target


@bp.get("/login")
def login() -> ResponseReturnValue:
    """SP-initiated login, and the ``initiate_login_uri`` (OIDC Core §4): a third party may send
    the browser here with ``iss``; we start a login only at the issuer we are configured for."""
    st = rp_state()
    try:
        issuer = st.provider.issuer
        authorization_endpoint = st.provider.endpoint("authorization_endpoint")
    except ProviderError as exc:
        log.warning("provider unavailable: %s", exc)
        return _error("统一认证登录平台暂时无法访问，请稍后再试。", 503)
    iss = request.args.get("iss")
    if iss is not None and iss.rstrip("/") != issuer.rstrip("/"):
        return _error("登录请求来自未知的认证平台。")
    verifier = generate_token(48)
    nonce = secrets.token_urlsafe(24)
    extra: dict[str, str] = {}
    hint = request.args.get("login_hint")
    if hint and len(hint) <= 255:
        extra["login_hint"] = hint
    if request.args.get("prompt") == "select_account":  # 「切换身份」: ask the provider again
        extra["prompt"] = "select_account"
    url, state = _client().create_authorization_url(
        authorization_endpoint, code_verifier=verifier, nonce=nonce, **extra)
    pending = dict(session.get("pending") or {})
    pending[state] = {"nonce": nonce, "verifier": verifier, "at": time.time(),
                      "next": _own_target(request.args.get("target_link_uri"))}
    session["pending"] = dict(sorted(pending.items(), key=lambda kv: kv[1]["at"])[-PENDING_LIMIT:])
    return redirect(url, code=303)


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    """OIDC Core §3.1.2.5–§3.1.3.7 with RFC 9207 §2.4 (the issuer of the response)."""
    st = rp_state()
    state = request.args.get("state", "")
    pending = dict(session.get("pending") or {})
    started = pending.pop(state, None) if state else None
    session["pending"] = pending
    if started is None:
        return _error("登录请求已失效，请重新登录。")
    try:
        issuer = st.provider.issuer
        iss_required = bool(st.provider.metadata.get(
            "authorization_response_iss_parameter_supported"))
    except ProviderError:
        return _error("统一认证登录平台暂时无法访问，请稍后再试。", 503)
    iss = request.args.get("iss")
    if (iss is not None or iss_required) and iss != issuer:
        log.warning("authorization response from wrong issuer %r", iss)
        return _error("登录响应来自未知的认证平台。")
    if "error" in request.args:
        return _error("登录未完成：" + request.args.get("error", "")[:100])
    code = request.args.get("code")
    if not code:
        return _error("登录响应无效。")
    try:
        token = _client().fetch_token(st.provider.endpoint("token_endpoint"),
                                      grant_type="authorization_code", code=code,
                                      code_verifier=started["verifier"],
                                      timeout=st.settings.http_timeout)
        id_token = str(token.get("id_token") or "")
        claims = st.provider.validate_id_token(
            id_token, nonce=started["nonce"], access_token=token.get("access_token"))
    except (OAuthError, RequestException, ProviderError, ValueError) as exc:
        log.warning("token request failed: %s", exc)
        return _error("登录未完成，请重新登录。")
    except TokenError as exc:
        log.warning("ID token rejected: %s", exc)
        return _error("身份令牌无效，请重新登录。")
    organisation_id = provision(st.sessions, claims)
    row_id = secrets.token_urlsafe(32)
    expires_in = int(token.get("expires_in") or 300)
    roles = _strings(claims.get("roles"))
    amr = _strings(claims.get("amr"))
    org = claims.get("org") if isinstance(claims.get("org"), dict) else {}
    with st.sessions() as db:
        db.add(LocalSession(
            id=row_id, sub=claims["sub"], sid=claims.get("sid"), name=claims.get("name"),
            organisation_id=organisation_id, org=json.dumps(org, ensure_ascii=False),
            platform=claims.get("platform"), roles=" ".join(roles),
            amr=" ".join(amr),
            identity=str(claims["identity"]) if claims.get("identity") else None,
            id_token=id_token, access_token=token.get("access_token"),
            refresh_token=token.get("refresh_token"),
            access_expires_at=utcnow() + timedelta(seconds=expires_in),
            expires_at=utcnow() + LOCAL_SESSION_TTL))
        db.commit()
    _end_local(session.get("lsid"))  # a new login replaces the old one in this browser
    session.pop("csrf", None)  # a fresh form token for the new login
    session["lsid"] = row_id
    return redirect(started.get("next") or url_for("rp_home"), code=303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """OIDC RP-Initiated Logout 1.0 §2: end here, then at the provider (which tells the others
    by back channel)."""
    sent = request.form.get("csrf_token", "")
    if not hmac.compare_digest(sent.encode(), _csrf_token().encode()):
        return _error("请求已失效，请刷新页面后重试。")
    st = rp_state()
    user = current_user()
    _end_local(session.get("lsid"))
    session.clear()
    if user is None:
        return redirect(url_for("rp_home"), code=303)
    try:
        end_session = st.provider.endpoint("end_session_endpoint")
    except ProviderError:
        return redirect(url_for("rp_home"), code=303)
    query = urlencode({"id_token_hint": user.id_token,
                       "post_logout_redirect_uri": st.settings.post_logout_redirect_uri,
                       "client_id": st.settings.client_id})
    return redirect(f"{end_session}?{query}", code=303)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/backchannel-logout")
def backchannel_logout() -> Response:
    """Back-Channel Logout 1.0 §2.5–§2.8: validate, refuse a replay, end the sessions."""
    st = rp_state()
    raw = request.form.get("logout_token", "")
    try:
        if not raw or len(raw) > 8192:
            raise TokenError("no logout_token")
        claims = st.provider.validate_logout_token(raw)
    except (TokenError, ProviderError) as exc:
        log.warning("logout token rejected: %s", exc)
        return _no_store(Response(json.dumps({"error": "invalid_request"}), status=400,
                                  mimetype="application/json"))
    with st.sessions() as db:
        now = utcnow()
        db.execute(sa.delete(SeenLogoutToken).where(SeenLogoutToken.expires_at < now))
        # Remembered until the token itself could no longer pass (exp + leeway): a replay any
        # time before that is refused.
        until = float(claims["exp"]) + st.settings.leeway - time.time()
        db.add(SeenLogoutToken(jti=str(claims["jti"])[:255],
                               expires_at=now + timedelta(seconds=max(until, 0.0))))
        try:
            db.flush()
        except IntegrityError:
            db.rollback()
            log.warning("logout token replayed: jti %s", claims["jti"])
            return _no_store(Response(json.dumps({"error": "invalid_request"}), status=400,
                                      mimetype="application/json"))
        query = sa.select(LocalSession)
        if claims.get("sid"):
            query = query.where(LocalSession.sid == claims["sid"])
            if claims.get("sub"):
                query = query.where(LocalSession.sub == claims["sub"])
        else:
            query = query.where(LocalSession.sub == claims["sub"])
        rows = db.scalars(query).all()
        for row in rows:
            db.delete(row)
        ended = len(rows)
        db.commit()
    log.info("back-channel logout: sub=%s sid=%s ended %s local session(s)",
             claims.get("sub"), claims.get("sid"), ended)
    return _no_store(Response("", status=200))


# --- the factory --------------------------------------------------------------------------------

def no_menus(user: CurrentUser, issuer: str) -> Menus:
    return []


def create_rp_app(settings: RPSettings, *, import_name: str, title: str,
                  menus: MenuBuilder = no_menus, instance_path: str | None = None,
                  testing: bool = False) -> Flask:
    app = Flask(import_name, instance_path=instance_path, instance_relative_config=True)
    app.config.update(SECRET_KEY=settings.secret_key, TESTING=testing,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
                      SESSION_COOKIE_NAME=f"rp_{settings.client_id}")
    app.jinja_loader = DictLoader(TEMPLATES)
    url = settings.database_url
    if not url:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(app.instance_path) / (settings.client_id + '.sqlite3')}"
    engine = sa.create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    app.extensions["relying_party"] = RPState(
        settings=settings, provider=Provider(settings),
        sessions=sessionmaker(engine, expire_on_commit=False), title=title, menus=menus)
    app.register_blueprint(bp)

    @app.get("/", endpoint="rp_home")
    def home() -> ResponseReturnValue:
        st = rp_state()
        user = current_user()
        menus_: Sequence[Any] = st.menus(user, st.settings.issuer) if user else []
        return render_template("home.html", title=st.title, user=user, menus=menus_,
                               csrf_token=_csrf_token())

    @app.get("/rp.css", endpoint="rp_css")
    def stylesheet() -> ResponseReturnValue:
        """The pages' only style sheet: the CSP (``default-src 'self'``) forbids inline styles."""
        response = Response(STYLESHEET, mimetype="text/css")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'")
        if request.path.startswith("/auth/") or request.path == "/":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
