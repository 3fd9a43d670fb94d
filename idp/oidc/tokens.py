"""Token bookkeeping: save, look up, consume single-use credentials, revoke.

The two single-use rules of RFC 9700 live here: an authorization code is consumed by one
atomic UPDATE, and so is a refresh token. Whoever loses that race is presenting a credential
that was already used, which means it leaked: everything issued from it is revoked (§4.2.4 for
codes, §4.14.2 for refresh tokens).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from flask import current_app
from flask import request as flask_request

from idp import audit
from idp.db import table_of, utcnow
from idp.extensions import db
from idp.oidc.models import AuthorizationCode, Client, Token
from idp.pki.transport import presented_x5t
from idp.security import equal, token_hash

# A Core INSERT with its values passed as parameters: compiled once, and no ORM bulk machinery.
TOKEN_INSERT = sa.insert(table_of(Token))


@dataclass(frozen=True)
class AuthContext:
    """How and when the user authenticated, carried from the SSO session into codes/tokens."""

    account_id: str
    auth_time: int
    acr: str | None
    amr: list[str] = field(default_factory=list)
    sid: str | None = None
    identity_id: int | None = None


def find_code(code: str, client: Client) -> AuthorizationCode | None:
    return db.session.scalar(
        sa.select(AuthorizationCode).where(
            AuthorizationCode.code_hash == token_hash(code),
            AuthorizationCode.client_id == client.client_id,
        )
    )


def consume_code(row: AuthorizationCode) -> bool:
    """Mark the code used; False when it already was (a replay). The caller commits."""
    result = db.session.execute(
        sa.update(AuthorizationCode)
        .where(AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def revoke_where(*criteria: Any) -> int:
    result = db.session.execute(
        sa.update(Token)
        .where(Token.revoked_at.is_(None), *criteria)
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_family(token: Token) -> int:
    return revoke_where(Token.family_id == token.family_id)


def find_token(value: str, hint: str | None = None) -> tuple[Token | None, str | None]:
    """Find by access or refresh token; return the row and which kind matched."""
    digest = token_hash(value)
    order = ["refresh_token", "access_token"] if hint == "refresh_token" else [
        "access_token", "refresh_token"]
    for kind in order:
        column = Token.access_token_hash if kind == "access_token" else Token.refresh_token_hash
        row = db.session.scalar(sa.select(Token).where(column == digest))
        if row is not None:
            return row, kind
    return None, None


def find_refresh_token(value: str, client: Client) -> Token | None:
    """The live (unrevoked, unexpired) grant behind a refresh token of ``client``; used or not."""
    row = db.session.scalar(
        sa.select(Token).where(
            Token.refresh_token_hash == token_hash(value), Token.client_id == client.client_id
        )
    )
    if row is None or row.revoked_at is not None:
        return None
    if row.refresh_expires_at is None or row.refresh_expires_at <= utcnow():
        return None
    return row


def consume_refresh_token(row: Token) -> bool:
    """Exchange a refresh token once. A second exchange revokes the whole family."""
    claimed = db.session.execute(
        sa.update(Token)
        .where(Token.id == row.id, Token.refresh_used_at.is_(None))
        .values(refresh_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        revoked = revoke_family(row)
        audit.record("token.refresh_reuse", audit.FAILURE, account_id=row.account_id,
                     client_id=row.client_id, family=row.family_id, revoked=revoked)
        db.session.commit()
        return False
    return True  # committed with the new tokens (save_token); a racing exchange waits


def bound_certificate(parent: Token | None) -> str:
    """RFC 8705 §3: the x5t#S256 of the client certificate on this token request. A refresh
    must come with the certificate the refreshed token was bound to (§4)."""
    x5t = presented_x5t(flask_request.environ)
    if x5t is None:
        raise InvalidRequestError(
            "This client gets certificate-bound access tokens: present its TLS certificate.")
    if parent is not None and parent.cnf_x5t and not equal(parent.cnf_x5t, x5t):
        raise InvalidGrantError("The refresh token is bound to another certificate.")
    return x5t


def save_token(token: dict[str, Any], request: Any) -> None:
    """Persist a freshly generated token response (Authlib's ``save_token`` hook).

    Plain INSERTs (no ORM unit of work): this is the hottest write of the provider.
    """
    settings = current_app.config["IDP"]
    now = utcnow()
    client: Client = request.client
    code: AuthorizationCode | None = request.authorization_code
    parent: Token | None = request.refresh_token
    grant_type = request.payload.grant_type
    refresh = token.get("refresh_token")
    account_id = request.user.id if request.user is not None else None
    family = parent.family_id if parent else uuid.uuid4().hex
    row: dict[str, Any] = {
        "grant_type": grant_type,
        "client_id": client.client_id,
        "account_id": account_id,
        "scope": token.get("scope", ""),
        "access_token_hash": token_hash(token["access_token"]),
        "refresh_token_hash": token_hash(refresh) if refresh else None,
        "issued_at": now,
        "expires_in": int(token["expires_in"]),
        # A family keeps the deadline of its first refresh token: rotation does not extend it.
        "refresh_expires_at": (
            None if not refresh
            else parent.refresh_expires_at if parent is not None
            else now + timedelta(seconds=settings.refresh_token_ttl)),
        "family_id": family,
        "amr": [],
    }
    if client.tls_client_certificate_bound_access_tokens:
        row["cnf_x5t"] = bound_certificate(parent)
    source = code or parent
    if source is not None:
        row.update(
            identity_id=source.identity_id,
            code_id=code.id if code else parent.code_id if parent else None,
            sid=source.sid, auth_time=source.auth_time, acr=source.acr, amr=list(source.amr),
        )
    db.session.execute(TOKEN_INSERT, row)
    audit.record("token.issued", account_id=account_id, client_id=client.client_id,
                 grant_type=grant_type, family=family)
    db.session.commit()


def new_code_row(code: str, request: Any, ctx: AuthContext) -> AuthorizationCode:
    settings = current_app.config["IDP"]
    data = request.payload.data
    now = utcnow()
    return AuthorizationCode(
        code_hash=token_hash(code),
        client_id=request.client.client_id,
        account_id=ctx.account_id,
        identity_id=ctx.identity_id,
        redirect_uri=request.payload.redirect_uri,
        scope=request.scope or "",
        nonce=data.get("nonce") or None,
        code_challenge=data.get("code_challenge") or None,
        code_challenge_method=data.get("code_challenge_method") or None,
        auth_time=ctx.auth_time,
        acr=ctx.acr,
        amr=list(ctx.amr),
        sid=ctx.sid,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.code_ttl),
    )
