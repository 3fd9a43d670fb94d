"""Authorization requests waiting for the user to log in.

The request's parameters are kept in the user's own session under a random id; the login pages
carry only that id, and after login ``/authorize/resume/<id>`` replays the request once. The
time the request first arrived is kept too: ``prompt=login`` and ``max_age`` are judged
against it, so a login that happened after it satisfies them and no loop can form.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import session, url_for
from werkzeug.datastructures import MultiDict

from idp.security import new_token

MAX_PENDING = 5
MAX_AGE_SECONDS = 1800
UID_RE = re.compile(r"^[A-Za-z0-9_-]{16,32}$")


def save(params: MultiDict[str, str], started_at: float) -> str:
    pending: dict[str, Any] = dict(session.get("interactions", {}))
    now = time.time()
    pending = {k: v for k, v in pending.items() if now - v["t"] < MAX_AGE_SECONDS}
    while len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda k: pending[k]["t"]))
    uid = new_token(12)
    pending[uid] = {"p": list(params.items(multi=True)), "t": started_at}
    session["interactions"] = pending
    return uid


def exists(uid: str | None) -> bool:
    return bool(uid) and UID_RE.match(uid or "") is not None and uid in session.get(
        "interactions", {})


def params(uid: str) -> MultiDict[str, str] | None:
    """The waiting request's parameters, left waiting (the role-selection page reads them)."""
    if not exists(uid) or time.time() - session["interactions"][uid]["t"] >= MAX_AGE_SECONDS:
        return None
    return MultiDict([tuple(pair) for pair in session["interactions"][uid]["p"]])


def pop(uid: str) -> tuple[MultiDict[str, str], float] | None:
    if not exists(uid):
        return None
    pending = dict(session["interactions"])
    item = pending.pop(uid)
    session["interactions"] = pending
    if time.time() - item["t"] >= MAX_AGE_SECONDS:
        return None
    return MultiDict([tuple(pair) for pair in item["p"]]), float(item["t"])


def url(endpoint: str, uid: str, **extra: str | None) -> str:
    args: dict[str, Any] = {k: v for k, v in extra.items() if v}
    args["i"] = uid
    return url_for(endpoint, **args)


def next_url(uid: str | None) -> str:
    """Where to go after a completed login: the waiting authorization, else the home page."""
    if uid and exists(uid):
        return url_for("oidc.resume", uid=uid)
    return url_for("auth.home")
