"""Server-side sessions in the shared store.

The cookie carries only a random id; the data lives in the store under the id's SHA-256, so a
dump of the store holds no usable session id and the browser holds no session data. Idle
timeout is the store TTL
(refreshed at most once a minute to spare writes); the absolute lifetime is checked on read.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.datastructures import CallbackDict

from idp.config import Settings
from idp.security import new_token, token_hash

TOUCH_INTERVAL = 60


class StoreSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.previous_sid: str | None = None
        self.unavailable = False  # the store could not be read: the request gets a 503

    def regenerate(self, *, keep_created: bool = False) -> None:
        """New id, same data: called at login so a planted session id is worthless, and when
        the privilege rises within a login (the admin's second factor) — then the absolute
        lifetime keeps counting from the login (``keep_created``)."""
        if self.sid is not None:
            self.previous_sid = self.sid
        self.sid = None
        self.new = True
        if not keep_created:
            self.pop("_created", None)
        self.modified = True


def _key(sid: str) -> str:
    return "sess:" + token_hash(sid)


def live_key(sso_sid: str) -> str:
    """Present while the SSO session ``sso_sid`` (the ``sid`` claim) lives: refresh tokens of
    a session that expired or ended stop working, so relying parties learn of it (D07)."""
    return "sso:live:" + token_hash(sso_sid)


def sso_alive(store: Any, sso_sid: str) -> bool:
    return store.get(live_key(sso_sid)) is not None


class StoreSessionInterface(SessionInterface):
    def cookie_name(self, app: Flask) -> str:
        settings: Settings = app.config["IDP"]
        # RFC 6265bis __Host- prefix: Secure, no Domain, Path=/ — cannot be set by a subdomain.
        return ("__Host-" if settings.uses_tls else "") + settings.session_cookie_name

    def open_session(self, app: Flask, request: Request) -> StoreSession:
        sid = request.cookies.get(self.cookie_name(app))
        if sid and len(sid) <= 100:
            store = app.extensions["idp.store"]
            try:
                raw = store.get(_key(sid))
            except (RedisError, OperationalError, InterfaceError):
                # Errors here happen before any error handler can answer; idp.web turns the
                # flag into a clear 503.
                session = StoreSession()
                session.unavailable = True
                return session
            if raw:
                data = json.loads(raw)
                age = time.time() - float(data.get("_created", 0))
                if age < app.config["IDP"].session_max_seconds:
                    return StoreSession(data, sid=sid)
                store.delete(_key(sid))
        return StoreSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, StoreSession) or session.unavailable:
            return
        settings = app.config["IDP"]
        store = app.extensions["idp.store"]
        name = self.cookie_name(app)
        if session.previous_sid is not None:
            store.delete(_key(session.previous_sid))
            session.previous_sid = None
        if not session:
            if session.sid is not None:
                store.delete(_key(session.sid))
                response.delete_cookie(name, path="/", secure=settings.uses_tls,
                                       httponly=True, samesite="Lax")
            return
        now = time.time()
        if session.sid is None:
            session.sid = new_token()
            session["_created"] = now
        if session.modified or now - float(session.get("_seen", 0)) > TOUCH_INTERVAL:
            session["_seen"] = now
            left = settings.session_max_seconds - (now - float(session["_created"]))
            ttl = max(1, int(min(settings.session_idle_seconds, left)))
            store.set(_key(session.sid), json.dumps(dict(session)), ttl)
            if session.get("uid") and session.get("sid"):
                store.set(live_key(str(session["sid"])), "1", ttl)
        if session.new:
            response.set_cookie(name, session.sid, path="/", secure=settings.uses_tls,
                                httponly=True, samesite="Lax")
            response.vary.add("Cookie")
