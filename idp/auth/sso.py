"""The SSO session: who is logged in, since when, and how (RFC 8176 ``amr``).

A person whose password must change is half logged in (``pwchange``): they may change the
password and nothing else; no code is issued for them until they have.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, make_response, redirect, request, session

from idp import audit
from idp.accounts.models import Account
from idp.auth.session import StoreSession, live_key
from idp.extensions import db
from idp.oidc import backchannel
from idp.oidc.models import Token
from idp.oidc.tokens import AuthContext, revoke_where
from idp.security import new_token
from idp.store import get_store

T = TypeVar("T")


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


def _usable(account: Account | None) -> bool:
    """The session's account is active and was not cut off after this session logged in."""
    if account is None or not account.is_active:
        return False
    cut = account.sessions_cut_at
    return cut is None or float(session.get("auth_time", 0)) > cut.timestamp()


def pending_password_change() -> Account | None:
    if not session.get("uid") or not session.get("pwchange"):
        return None
    account = db.session.get(Account, session["uid"])
    return account if _usable(account) else None


def current_account() -> Account | None:
    """The fully logged-in account, or None (anonymous, disabled, or password change pending)."""
    uid = session.get("uid")
    if not uid or session.get("pwchange"):
        return None
    account = db.session.get(Account, uid)
    if account is None or not _usable(account):
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
    """End the SSO session and every grant made in it: logout means logged out everywhere —
    the tokens are revoked, and every relying party that received some is told by a
    back-channel logout notice (``idp.oidc.backchannel``), owed in the same transaction."""
    uid = session.get("uid")
    if uid:
        sid = session.get("sid")
        owed = backchannel.schedule(sid, uid) if sid else []
        revoked = revoke_where(Token.sid == sid) if sid else 0
        audit.record("logout", account_id=uid, reason=reason, revoked=revoked,
                     notify=[row.client_id for row in owed], **detail)
        db.session.commit()
        if owed:
            backchannel.deliver(owed)
        if sid:
            get_store().delete(live_key(sid))
    session.clear()


def admitted(denied_event: str, admit: Callable[[Account], T | None], **detail: Any) -> T:
    """The door of a console (district centre, tenant, platform admin): anonymous → the login
    page (a forced password change first); logged in but not admitted → 403, audited as
    ``denied_event`` (somebody tried a console that is not theirs); else what ``admit`` found
    for the account (itself, its tenant …). Aborts with the answer, so it serves as a
    ``before_request`` as well as inside a view."""
    from idp.web import error_response

    account = current_account()
    if account is None:
        target = "/password/change" if pending_password_change() is not None else "/login"
        abort(redirect(target, code=303))
    found = admit(account)
    if found is None:
        audit.record(denied_event, audit.FAILURE, account_id=account.id, path=request.path,
                     **detail)
        db.session.commit()
        abort(make_response(error_response(403)))
    return found
