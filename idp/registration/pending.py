"""The verified facts of a UKey login whose enterprise has no account yet (S03).

The UKey views keep them in the session (``PENDING_KEY``) after the certificate has been
validated; registration and legacy binding read them from there, never from the form, so that
nobody can register or bind another enterprise's USCC. They expire: a certificate judged an
hour ago is no proof that the UKey is still in the computer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import session

from idp.accounts.models import Account
from idp.auth import ukey
from idp.auth.sso import start_sso
from idp.oidc.claims import ACR_UKEY, AMR_UKEY

PENDING_KEY = "ukey_pending"
PENDING_TTL = 900  # seconds from the certificate check to the end of registration


@dataclass(frozen=True)
class PendingUkey:
    uscc: str | None  # None: the certificate carried only a 组织机构代码
    org_code: str
    name: str
    x5t: str
    transport: str
    interaction: str  # the authorization request waiting for this login ("" if none)


def remember(pending: PendingUkey) -> None:
    session[PENDING_KEY] = {
        "uscc": pending.uscc, "org_code": pending.org_code, "name": pending.name,
        "x5t": pending.x5t, "transport": pending.transport,
        "interaction": pending.interaction, "at": time.time()}


def pending_ukey() -> PendingUkey | None:
    """The pending facts, or None when there are none or they are too old."""
    data = session.get(PENDING_KEY)
    if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > PENDING_TTL:
        return None
    return PendingUkey(uscc=data.get("uscc"), org_code=str(data.get("org_code", "")),
                       name=str(data.get("name", "")), x5t=str(data.get("x5t", "")),
                       transport=str(data.get("transport", "")),
                       interaction=str(data.get("interaction", "")))


def log_in(account: Account, pending: PendingUkey) -> None:
    """Registration or binding is done: the enterprise is logged in with the UKey that was
    checked (the session remembers its thumbprint as after any UKey login)."""
    start_sso(account, amr=AMR_UKEY, acr=ACR_UKEY)
    session[ukey.SESSION_X5T] = pending.x5t
    session[ukey.SESSION_X5T_TRANSPORT] = pending.transport
