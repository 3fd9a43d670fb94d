"""The SSO session: who is logged in, since when, and how (RFC 8176 ``amr``).

A person whose password must change is half logged in (``pwchange``): they may change the
password and nothing else; no code is issued for them until they have.
"""

from __future__ import annotations

import time
from typing import Any

from flask import session

from idp import audit
from idp.accounts.models import Account
from idp.auth.session import StoreSession
from idp.extensions import db
from idp.oidc.models import Token
from idp.oidc.tokens import AuthContext, revoke_where
from idp.security import new_token


def start_sso(account: Account, *, amr: list[str], acr: str, pwchange: bool = False) -> None:
    """Begin a session for ``account``: a new session id, then the login facts."""
    keep = {k: v for k, v in session.items() if k == "interactions"}
    session.clear()
    if isinstance(session, StoreSession):
        session.regenerate()
    session.update(keep)
    session.update({
        "uid": account.id,
        "auth_time": time.time(),  # full precision: prompt=login and max_age compare it
        "amr": amr,
        "acr": acr,
        "sid": new_token(16),
        "pwchange": pwchange,
    })


def finish_password_change() -> None:
    session["pwchange"] = False


def pending_password_change() -> Account | None:
    if not session.get("uid") or not session.get("pwchange"):
        return None
    account = db.session.get(Account, session["uid"])
    return account if account is not None and account.is_active else None


def current_account() -> Account | None:
    """The fully logged-in account, or None (anonymous, disabled, or password change pending)."""
    uid = session.get("uid")
    if not uid or session.get("pwchange"):
        return None
    account = db.session.get(Account, uid)
    if account is None or not account.is_active:
        session.clear()
        return None
    return account


def auth_context(account: Account, identity_id: int | None) -> AuthContext:
    return AuthContext(
        account_id=account.id,
        auth_time=int(session["auth_time"]),
        acr=session.get("acr"),
        amr=list(session.get("amr", [])),
        sid=session.get("sid"),
        identity_id=identity_id,
    )


def end_sso(reason: str, **detail: Any) -> None:
    """End the SSO session and every grant made in it: logout means logged out everywhere."""
    uid = session.get("uid")
    if uid:
        revoked = revoke_where(Token.sid == session["sid"]) if session.get("sid") else 0
        audit.record("logout", account_id=uid, reason=reason, revoked=revoked, **detail)
        db.session.commit()
    session.clear()
