"""Bearer tokens of the admin API and SCIM: who is calling, for which enterprise, with what scope.

Both interfaces take only ``Authorization: Bearer <access token>`` (RFC 6750 §2.1): never a
cookie, so no CSRF, and never the query string (§2.3 would put tokens into logs). A token is
good while it is neither revoked nor expired, its client is enabled and — for a token bound to
a TLS certificate (RFC 8705 §3) — the same certificate is presented, exactly as ``/userinfo``
checks it. The tenant follows from the token:

* a token issued to a person (``account_id``) acts for the enterprise that person administers
  (``tenant_of``: an active ``enterprise_admin`` identity), as the console would;
* a ``client_credentials`` token acts for the enterprise its client is bound to
  (``Client.tenant_id``, ``tenant_of_client``).

Failures answer as RFC 6750 §3 says: 401 with ``WWW-Authenticate: Bearer`` (and
``error="invalid_token"`` when a token was presented but is not good), 403 ``insufficient_scope``
naming the scope needed, 403 when the token speaks for no enterprise. Presented-but-refused
tokens are audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import request

from idp import audit
from idp.accounts.models import Account
from idp.console.tenant import Tenant, tenant_of, tenant_of_client
from idp.extensions import db
from idp.oidc import tokens
from idp.oidc.models import Client
from idp.pki.transport import presented_x5t
from idp.security import equal

READ = "console.read"
WRITE = "console.write"
SCIM = "scim"

MSG_NO_TOKEN = "缺少访问令牌，请在 Authorization 请求头中使用 Bearer 令牌"
MSG_BAD_TOKEN = "访问令牌无效、已过期或已被撤销"
MSG_SCOPE = "访问令牌的授权范围不足，需要 {scope}"
MSG_NO_TENANT = "访问令牌不代表任何物业企业（需要企业管理员或绑定企业的预配客户端）"

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*", re.ASCII)
MAX_TOKEN_CHARS = 512


class BearerError(Exception):
    """A request the bearer-token rules refuse; the interface renders it in its own format."""

    def __init__(self, status: int, error: str | None, message: str,
                 scope: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error  # None: no credentials at all (RFC 6750 §3.1: no error code)
        self.message = message
        self.scope = scope

    @property
    def code(self) -> str:
        """The ``error`` of a JSON body (a missing token is ``invalid_token`` there too)."""
        return self.error or "invalid_token"

    def www_authenticate(self) -> str | None:
        """RFC 6750 §3: the challenge, with the error code and the scope needed if any; None
        for a refusal that is not about the token (it speaks for no enterprise)."""
        if self.error not in (None, "invalid_token", "insufficient_scope"):
            return None
        parts = ['Bearer realm="idp"']
        if self.error:
            parts.append(f'error="{self.error}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return ", ".join(parts)


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    tenant: Tenant
    scopes: frozenset[str]
    client_id: str

    def audit(self, event: str, result: str = audit.SUCCESS, **detail: Any) -> None:
        """Every write names the client, the enterprise and (a person's token) the admin."""
        audit.record(event, result, account_id=self.tenant.actor_id, client_id=self.client_id,
                     organisation_id=self.tenant.id, **detail)


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None  # no credentials, or another scheme: "lacks authentication information"
    return value.strip() or None


def _refuse(status: int, error: str, message: str, *, reason: str,
            client_id: str | None = None, account_id: str | None = None,
            organisation_id: int | None = None, scope: str | None = None) -> BearerError:
    audit.record("api.auth", audit.FAILURE, account_id=account_id, client_id=client_id,
                 organisation_id=organisation_id, reason=reason, path=request.path[:200])
    db.session.commit()
    return BearerError(status, error, message, scope)


def authenticate(*accepted: str) -> Caller:
    """The caller of this request if its token carries one of the ``accepted`` scopes.

    Raises BearerError otherwise. The order is RFC 6750's: a bad token (401) before a scope
    that is too small (403), and that before asking which enterprise the token speaks for.
    """
    value = _presented_token()
    if value is None:
        raise BearerError(401, None, MSG_NO_TOKEN)
    if len(value) > MAX_TOKEN_CHARS or not _B64TOKEN.fullmatch(value):
        raise _refuse(401, "invalid_token", MSG_BAD_TOKEN, reason="malformed")
    row, kind = tokens.find_token(value, "access_token")
    if row is None or kind != "access_token":
        raise _refuse(401, "invalid_token", MSG_BAD_TOKEN, reason="unknown")
    if row.is_revoked() or row.is_expired():
        raise _refuse(401, "invalid_token", MSG_BAD_TOKEN, reason="expired_or_revoked",
                      client_id=row.client_id, account_id=row.account_id)
    if row.cnf_x5t:
        presented = presented_x5t(request.environ)
        if presented is None or not equal(presented, row.cnf_x5t):
            # RFC 8705 §3: a bound token is good only with the certificate it is bound to.
            raise _refuse(401, "invalid_token", MSG_BAD_TOKEN, reason="certificate_binding",
                          client_id=row.client_id, account_id=row.account_id)
    client = db.session.get(Client, row.client_id)
    if client is None or not client.enabled:
        raise _refuse(401, "invalid_token", MSG_BAD_TOKEN, reason="client_disabled",
                      client_id=row.client_id, account_id=row.account_id)
    account: Account | None = None
    if row.account_id is not None:
        account = db.session.get(Account, row.account_id)
        if account is None or not account.is_active:
            raise _refuse(401, "invalid_token", MSG_BAD_TOKEN, reason="account_inactive",
                          client_id=row.client_id, account_id=row.account_id)
    scopes = frozenset(row.scope.split())
    if not scopes & set(accepted):
        wanted = " ".join(accepted)
        raise _refuse(403, "insufficient_scope", MSG_SCOPE.format(scope=wanted),
                      reason="insufficient_scope", client_id=row.client_id,
                      account_id=row.account_id, scope=wanted)
    tenant = (tenant_of(account) if account is not None
              else tenant_of_client(client.tenant_id, client.client_id))
    if tenant is None:
        raise _refuse(403, "access_denied", MSG_NO_TENANT, reason="no_tenant",
                      client_id=row.client_id, account_id=row.account_id)
    return Caller(tenant=tenant, scopes=scopes, client_id=client.client_id)
