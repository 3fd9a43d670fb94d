"""What the platform admins do to clients and signing keys.

Client metadata is judged by the rules every registration path shares (``ClientSpec.validate``
and ``check_uri`` of ``idp.oidc.clients``; RFC 9700 §4.1: absolute https redirect URIs without
fragment, plain http only for this machine), and new clients go through ``register_client``
itself, so a client registered here is exactly one ``idp clients add`` would make. On top of
that the form's input is checked field by field, so each message stands beside its field, in
Chinese, with the line of a bad URI. Every change is audited with the acting admin, in the
same transaction as the change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.models import PLATFORMS, Account
from idp.db import utcnow
from idp.errors import IdpError
from idp.extensions import db
from idp.oidc.clients import ClientSpec, check_uri, register_client
from idp.oidc.keys import ALGORITHMS, rotate_keys
from idp.oidc.models import (
    API_SCOPES,
    GRANT_TYPES,
    LOGIN_SCOPES,
    SECRET_METHODS,
    Client,
    SigningKey,
    Token,
)
from idp.oidc.server import CLIENT_ID_RE
from idp.oidc.tokens import revoke_where
from idp.orgs.models import Organisation
from idp.security import hash_client_secret, new_token
from idp.validators import MSG_CHOICE, USCC_ALPHABET, normalize_name

# --- messages -----------------------------------------------------------------------------------

MSG_CLIENT_ID = "客户端ID应为1–64位字母、数字或 . _ ~ -"
MSG_CLIENT_ID_TAKEN = "该客户端ID已注册"
MSG_NAME = "客户端名称应为1–100个字符的文字、数字或括号"
MSG_URI = "第{line}行：地址须为不含 # 片段的 https 绝对地址（http 仅限本机），最长500个字符"
MSG_ONE_URI = "地址须为不含 # 片段的 https 绝对地址（http 仅限本机），最长500个字符"
MSG_INITIATE_HTTPS = "第三方发起登录地址须使用 https（http 仅限本机）"
MSG_TOO_MANY_URIS = "最多填写{limit}个地址"
MSG_REDIRECT_REQUIRED = "使用 authorization_code 授权方式时至少填写一个回调地址"
MSG_GRANT_REQUIRED = "请至少选择一种授权方式"
MSG_PUBLIC_CC = "公开客户端不能使用 client_credentials 授权方式"
MSG_TENANT_USCC = "请输入正确的统一社会信用代码，或留空"
MSG_TENANT_UNKNOWN = "未找到该统一社会信用代码的物业服务企业（须已注册且状态正常）"
MSG_TENANT_GRANTS = "绑定企业的接口客户端只能使用 client_credentials 授权方式"
MSG_TENANT_PUBLIC = "绑定企业的接口客户端须使用客户端密钥认证"
MSG_NO_SECRET = "该客户端不使用客户端密钥（公开客户端或 private_key_jwt），无法重置密钥。"
MSG_INVALID = "提交的客户端信息不正确，请检查后重试。"

MAX_URIS = 20
AUTH_METHOD_LABELS = {
    "client_secret_basic": "客户端密钥（HTTP Basic）",
    "client_secret_post": "客户端密钥（表单提交）",
    "none": "公开客户端（无密钥，PKCE）",
}
GRANT_LABELS = {
    "authorization_code": "授权码（authorization_code）",
    "refresh_token": "刷新令牌（refresh_token）",
    "client_credentials": "客户端凭证（client_credentials，用于 /api 和 /scim）",
}
# RFC 3986 §2: the characters a URI may hold; anything else (blanks, quotes, angle brackets,
# non-ASCII) is refused here rather than stored and later percent-encoded by somebody.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_USCC_RE = re.compile(f"[{USCC_ALPHABET}]{{18}}")


class InvalidInput(IdpError):
    """Bad values for one or more fields: ``errors`` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(next(iter(errors.values()), MSG_INVALID))
        self.errors = errors


class ActionRefused(IdpError):
    """The action does not apply to this object (e.g. a secret for a public client)."""


def client_from_path(client_id: str) -> Client | None:
    """The client a URL names, or None for anything that cannot be a client id: the same rule
    as registration (``CLIENT_ID_RE``: ASCII, 1–64 of A–Z a–z 0–9 . _ ~ -), matched in full —
    ``$`` alone would let a trailing newline through."""
    if not isinstance(client_id, str) or not CLIENT_ID_RE.fullmatch(client_id):
        return None
    return db.session.get(Client, client_id)


# --- the client form --------------------------------------------------------------------------

@dataclass
class AdminClientSpec(ClientSpec):
    """``ClientSpec`` with the enterprise a provisioning client acts for (``Client.tenant_id``),
    set by ``apply`` so that ``register_client`` writes it in its own transaction."""

    tenant_id: int | None = None

    def apply(self, client: Client, *, keep_secret: bool = False) -> None:
        super().apply(client, keep_secret=keep_secret)
        client.tenant_id = self.tenant_id


@dataclass
class ClientInput:
    """The form's raw values (strings as posted; lists for the check boxes)."""

    name: str = ""
    client_id: str = ""
    platform: str = ""
    auth_method: str = "client_secret_basic"
    redirect_uris: str = ""
    post_logout_redirect_uris: str = ""
    backchannel_logout_uri: str = ""
    initiate_login_uri: str = ""
    grant_types: list[str] = field(default_factory=list)
    tenant: str = ""


def _uri_ok(uri: str) -> bool:
    if not _URI_CHARS.fullmatch(uri):
        return False
    try:
        check_uri(uri, "uri")
    except ValueError:
        return False
    return True


def _uri_lines(raw: str, name: str, errors: dict[str, str]) -> list[str]:
    lines = [line.strip() for line in (raw or "").splitlines()]
    uris: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        if not _uri_ok(line):
            errors.setdefault(name, MSG_URI.format(line=number))
        elif line not in uris:
            uris.append(line)
    if len(uris) > MAX_URIS:
        errors.setdefault(name, MSG_TOO_MANY_URIS.format(limit=MAX_URIS))
    return uris


def _one_uri(raw: str, name: str, errors: dict[str, str]) -> str | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not _uri_ok(text):
        errors[name] = MSG_ONE_URI
        return None
    return text


def _tenant(raw: str, errors: dict[str, str]) -> int | None:
    text = (raw or "").strip().upper()
    if not text:
        return None
    if not _USCC_RE.fullmatch(text):
        errors["tenant"] = MSG_TENANT_USCC
        return None
    org_id = db.session.scalar(sa.select(Organisation.id).where(
        Organisation.uscc == text, Organisation.type == "enterprise",
        Organisation.status == "active"))
    if org_id is None:
        errors["tenant"] = MSG_TENANT_UNKNOWN
    return org_id


# ValueError texts of ClientSpec.validate (English, for the CLI) → the form field they concern.
_SPEC_FIELDS = (
    ("client_id:", "client_id", MSG_CLIENT_ID),
    ("name:", "name", MSG_NAME),
    ("grant_types: a public", "grant_types", MSG_PUBLIC_CC),
    ("grant_types:", "grant_types", MSG_CHOICE),
    ("redirect_uri: at least", "redirect_uris", MSG_REDIRECT_REQUIRED),
    ("redirect_uri:", "redirect_uris", MSG_ONE_URI),
    ("post_logout_redirect_uri:", "post_logout_redirect_uris", MSG_ONE_URI),
    ("backchannel_logout_uri:", "backchannel_logout_uri", MSG_ONE_URI),
    ("initiate_login_uri: must", "initiate_login_uri", MSG_INITIATE_HTTPS),
    ("initiate_login_uri:", "initiate_login_uri", MSG_ONE_URI),
    ("platform:", "platform", MSG_CHOICE),
    ("auth_method:", "auth_method", MSG_CHOICE),
)


def _spec_error(exc: ValueError) -> dict[str, str]:
    text = str(exc)
    for prefix, name, message in _SPEC_FIELDS:
        if text.startswith(prefix):
            return {name: message}
    return {"form": MSG_INVALID}


def build_spec(data: ClientInput, existing: Client | None = None) -> AdminClientSpec:
    """The validated spec of a new client (``existing`` None) or of ``existing`` changed by the
    form. An edit keeps what the form does not show (client id, authentication method, JWKS,
    scope, ID-token algorithm, certificate binding). ``InvalidInput`` names every bad field."""
    errors: dict[str, str] = {}
    try:
        name = normalize_name(data.name, "name", 100, MSG_NAME, organisation=True)
    except IdpError:
        errors["name"], name = MSG_NAME, ""
    if existing is None:
        client_id = (data.client_id or "").strip()
        if not CLIENT_ID_RE.fullmatch(client_id):
            errors["client_id"] = MSG_CLIENT_ID
        auth_method = (data.auth_method or "").strip()
        if auth_method not in AUTH_METHOD_LABELS:
            errors["auth_method"] = MSG_CHOICE
    else:
        client_id, auth_method = existing.client_id, existing.token_endpoint_auth_method
    platform = (data.platform or "").strip() or None
    if platform is not None and platform not in PLATFORMS:
        errors["platform"] = MSG_CHOICE
    grant_types: list[str] = []
    for grant in data.grant_types:
        if grant not in GRANT_TYPES:
            errors["grant_types"] = MSG_CHOICE
        elif grant not in grant_types:
            grant_types.append(grant)
    if not grant_types:
        errors.setdefault("grant_types", MSG_GRANT_REQUIRED)
    redirect_uris = _uri_lines(data.redirect_uris, "redirect_uris", errors)
    post_logout = _uri_lines(data.post_logout_redirect_uris, "post_logout_redirect_uris", errors)
    backchannel = _one_uri(data.backchannel_logout_uri, "backchannel_logout_uri", errors)
    initiate = _one_uri(data.initiate_login_uri, "initiate_login_uri", errors)
    tenant_id = _tenant(data.tenant, errors)
    if (data.tenant or "").strip():
        if grant_types and grant_types != ["client_credentials"]:
            errors.setdefault("grant_types", MSG_TENANT_GRANTS)
        if auth_method == "none":
            errors.setdefault("auth_method", MSG_TENANT_PUBLIC)
    if "authorization_code" in grant_types and not redirect_uris:
        errors.setdefault("redirect_uris", MSG_REDIRECT_REQUIRED)
    if auth_method == "none" and "client_credentials" in grant_types:
        errors.setdefault("grant_types", MSG_PUBLIC_CC)
    if errors:
        raise InvalidInput(errors)
    values: dict[str, Any] = {
        "client_id": client_id, "name": name, "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout, "backchannel_logout_uri": backchannel,
        "initiate_login_uri": initiate, "platform": platform, "grant_types": grant_types,
        "public": auth_method == "none",
    }
    if auth_method != "none":
        values["auth_method"] = auth_method
    if existing is not None:
        values.update(jwks=existing.jwks, scope=existing.scope,
                      id_token_signed_response_alg=existing.id_token_signed_response_alg,
                      tls_client_certificate_bound_access_tokens=bool(
                          existing.tls_client_certificate_bound_access_tokens))
    # A provisioning client is for the API (console.*, scim); unbound, it loses those scopes.
    scopes = set(str(values.get("scope") or "").split())
    if tenant_id is not None and not scopes & set(API_SCOPES):
        values["scope"] = " ".join(API_SCOPES)
    elif tenant_id is None and scopes & set(API_SCOPES):
        values["scope"] = " ".join(LOGIN_SCOPES)
    spec = AdminClientSpec(**values, tenant_id=tenant_id)
    try:
        spec.validate()  # the rules of every registration path (ClientSpec.from_mapping)
    except ValueError as exc:
        raise InvalidInput(_spec_error(exc)) from None
    return spec


def input_of(client: Client) -> ClientInput:
    """The edit form's values for ``client`` as it is."""
    tenant = db.session.get(Organisation, client.tenant_id) if client.tenant_id else None
    return ClientInput(
        name=client.name, client_id=client.client_id, platform=client.platform or "",
        auth_method=client.token_endpoint_auth_method,
        redirect_uris="\n".join(client.redirect_uris or []),
        post_logout_redirect_uris="\n".join(client.post_logout_redirect_uris or []),
        backchannel_logout_uri=client.backchannel_logout_uri or "",
        initiate_login_uri=client.initiate_login_uri or "",
        grant_types=list(client.grant_types or []),
        tenant=(tenant.uscc or "") if tenant is not None else "")


def refuse(event: str, actor: Account, reason: str, *, client_id: str | None = None,
           **detail: Any) -> None:
    """Audit a refused admin action on its own (what the try changed is rolled back)."""
    db.session.rollback()
    audit.record(event, audit.FAILURE, account_id=actor.id, client_id=client_id, reason=reason,
                 **detail)
    db.session.commit()


# --- client actions ---------------------------------------------------------------------------

def create_client(data: ClientInput, actor: Account) -> tuple[Client, str | None]:
    """Register a client through ``register_client`` (which commits, together with the audit
    event recorded first in the same transaction). Returns the client and its secret — the
    only time the secret exists in clear; only its hash is stored."""
    try:
        spec = build_spec(data)
    except InvalidInput as exc:
        refuse("admin.client.create", actor, "invalid", fields=sorted(exc.errors))
        raise
    audit.record("admin.client.create", account_id=actor.id, client_id=spec.client_id,
                 organisation_id=spec.tenant_id, grant_types=spec.grant_types,
                 auth_method=spec.auth_method, platform=spec.platform)
    try:
        secret = register_client(spec)
    except (ValueError, IntegrityError):  # the id is taken (also: taken a moment ago)
        refuse("admin.client.create", actor, "client_id_taken", client_id=spec.client_id)
        raise InvalidInput({"client_id": MSG_CLIENT_ID_TAKEN}) from None
    client = db.session.get(Client, spec.client_id)
    assert client is not None
    return client, secret


def update_client(client: Client, data: ClientInput, actor: Account) -> list[str]:
    """Change the client's metadata (not its id, authentication method or secret); returns the
    names of what changed, which the audit event lists too."""
    try:
        spec = build_spec(data, client)
    except InvalidInput as exc:
        refuse("admin.client.update", actor, "invalid", client_id=client.client_id,
               fields=sorted(exc.errors))
        raise
    watched = ("name", "platform", "redirect_uris", "post_logout_redirect_uris",
               "backchannel_logout_uri", "initiate_login_uri", "grant_types", "tenant_id")
    before = {name: getattr(client, name) for name in watched}
    spec.apply(client, keep_secret=True)
    changed = [name for name in watched if getattr(client, name) != before[name]]
    if "tenant_id" in changed:
        # Tokens issued for the old enterprise must not act for the new one (or for none).
        revoke_where(Token.client_id == client.client_id)
    audit.record("admin.client.update", account_id=actor.id, client_id=client.client_id,
                 organisation_id=client.tenant_id, changed=changed)
    db.session.commit()
    return changed


def rotate_secret(client: Client, actor: Account) -> str:
    """A new secret at once: the old hash is replaced in the same UPDATE, so the old secret is
    refused from the next request on. Tokens already issued stay valid until they expire or
    the client is disabled."""
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        refuse("admin.client.rotate_secret", actor, "no_secret", client_id=client.client_id)
        raise ActionRefused(MSG_NO_SECRET)
    secret = new_token(32)
    client.secret_hash = hash_client_secret(secret)
    audit.record("admin.client.rotate_secret", account_id=actor.id, client_id=client.client_id,
                 organisation_id=client.tenant_id)
    db.session.commit()
    return secret


def set_enabled(client: Client, enabled: bool, actor: Account) -> int:
    """Enable or disable. A disabled client is unknown to /authorize and /token
    (``query_client``) and every token it holds is revoked in the same transaction; returns
    how many were revoked."""
    client.enabled = enabled
    revoked = 0 if enabled else revoke_where(Token.client_id == client.client_id)
    audit.record("admin.client.enable" if enabled else "admin.client.disable",
                 account_id=actor.id, client_id=client.client_id,
                 organisation_id=client.tenant_id, revoked=revoked)
    db.session.commit()
    return revoked


@dataclass(frozen=True)
class ClientRow:
    client: Client
    tenant_name: str | None


def list_clients() -> list[ClientRow]:
    """Every client (a provider has a handful) with the enterprise a provisioning client acts
    for."""
    rows = db.session.execute(
        sa.select(Client, Organisation.name)
        .outerjoin(Organisation, Organisation.id == Client.tenant_id)
        .order_by(Client.client_id)).all()
    return [ClientRow(client, tenant) for client, tenant in rows]


def tenant_of(client: Client) -> Organisation | None:
    return db.session.get(Organisation, client.tenant_id) if client.tenant_id else None


# --- signing keys -----------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyRow:
    """What the console shows of a key: never its private half."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    retired_at: datetime | None
    unpublish_at: datetime | None


KEY_STATES = {"active": "当前签名", "published": "已停用（仍在 JWKS 中公布）",
              "retired": "已下线"}


def list_keys() -> list[KeyRow]:
    now = utcnow()
    rows = db.session.execute(
        sa.select(SigningKey.kid, SigningKey.alg, SigningKey.created_at, SigningKey.retired_at,
                  SigningKey.unpublish_at)
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)).all()
    result = []
    for kid, alg, created_at, retired_at, unpublish_at in rows:
        if retired_at is None:
            state = "active"
        elif unpublish_at is None or unpublish_at > now:
            state = "published"
        else:
            state = "retired"
        result.append(KeyRow(kid, alg, state, created_at, retired_at, unpublish_at))
    return result


def rotate_signing_keys(algs: tuple[str, ...], actor: Account) -> list[str]:
    """As ``idp keys rotate``: new keys sign at once; the retired ones stay in the JWKS until
    every ID token they signed has expired. Returns the new key ids."""
    settings = current_app.config["IDP"]
    created = rotate_keys(db.session, settings.key_passphrase, settings.id_token_ttl,
                          algs or ALGORITHMS)
    kids = [key.kid for key in created]
    audit.record("admin.keys.rotate", account_id=actor.id, kids=kids, algs=list(algs or
                                                                              ALGORITHMS))
    db.session.commit()
    return kids


def client_input(values: Mapping[str, Any]) -> ClientInput:
    """A ``ClientInput`` from a form's ``data`` (None → empty)."""
    def text(name: str) -> str:
        value = values.get(name)
        return value if isinstance(value, str) else ""

    grants = values.get("grant_types") or []
    return ClientInput(
        name=text("name"), client_id=text("client_id"), platform=text("platform"),
        auth_method=text("auth_method"), redirect_uris=text("redirect_uris"),
        post_logout_redirect_uris=text("post_logout_redirect_uris"),
        backchannel_logout_uri=text("backchannel_logout_uri"),
        initiate_login_uri=text("initiate_login_uri"),
        grant_types=[g for g in grants if isinstance(g, str)], tenant=text("tenant"))
