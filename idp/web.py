"""Cross-cutting web behaviour: security headers, input guards, error pages.

Every error a client can provoke ends here as a clear answer: JSON with an OAuth-style
``error`` for the protocol endpoints, a Chinese page for people. Never a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, Response, jsonify, make_response, render_template, request, session
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map

from idp.extensions import db

log = logging.getLogger(__name__)

API_PREFIXES = ("/token", "/revoke", "/introspect", "/userinfo", "/jwks.json", "/.well-known/",
                "/api/", "/scim/")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

PAGE_MESSAGES = {
    400: "请求无效，请返回重试。",
    403: "没有访问权限。",
    404: "页面不存在。",
    405: "不支持该请求方式。",
    413: "提交的内容过大。",
    429: "请求过于频繁，请稍后再试。",
    503: "服务暂时不可用，请稍后重试。",
    500: "系统繁忙，请稍后再试。",
}
OAUTH_ERRORS = {400: "invalid_request", 401: "invalid_client", 404: "not_found",
                405: "invalid_request", 413: "invalid_request", 429: "slow_down",
                500: "server_error", 503: "temporarily_unavailable"}


MAX_ID = 2**31 - 1  # ids are 32-bit integer columns


def is_id(number: int) -> bool:
    """A number that can name a row: past 32 bits it names none (and SQLite cannot even bind
    it), so it is refused before any query."""
    return 0 < number <= MAX_ID


class IdConverter(IntegerConverter):
    """``<id:name>`` in a route: a database id, 1 … 2³¹−1; anything else is a 404 before the
    view runs (``<int:>`` alone would hand a view numbers no column can hold)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


def page_arg(max_page: int = 100_000) -> int:
    """The ``page`` query parameter of a list: anything odd is page 1, never an error."""
    raw = request.args.get("page", "")
    if raw.isascii() and raw.isdigit() and len(raw) <= 6:
        return min(max(int(raw), 1), max_page)
    return 1


def wants_json() -> bool:
    """A page's own script asking (the 「获取验证码」 buttons): JSON ``{ok, message, wait}``."""
    return request.accept_mimetypes.best == "application/json" or (
        request.headers.get("X-Requested-With") == "fetch")


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIXES)


SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # RFC 8259 has no NaN or Infinity


def strict_json(raw: bytes) -> Any:
    """A request body as RFC 8259 JSON (no NaN/Infinity); ValueError or RecursionError if not."""
    return json.loads(raw or b"null", parse_constant=_no_constant)


def error_response(status: int, description: str | None = None) -> Response | tuple[str, int]:
    if request.path.startswith("/scim/"):
        # RFC 7644 §3.12: every error of the SCIM interface in its own format, also those
        # raised before the scim blueprint (routing, input guards, body size).
        body = {"schemas": [SCIM_ERROR], "status": str(status),
                "detail": description or PAGE_MESSAGES.get(status, PAGE_MESSAGES[400])}
        response = Response(json.dumps(body, ensure_ascii=False), status=status,
                            mimetype="application/scim+json")
        response.headers["Cache-Control"] = "no-store"
        return response
    if is_api_request():
        body = {"error": OAUTH_ERRORS.get(status, "invalid_request")}
        if description:
            body["error_description"] = description
        response = jsonify(body)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response
    message = description or PAGE_MESSAGES.get(status, PAGE_MESSAGES[400])
    return render_template("error.html", message=message, status=status), status


MSG_FORM_EXPIRED = "页面已过期，请刷新页面后重试。"  # a form without (or with a stale) CSRF token
MSG_CONTROL_CHARACTERS = "提交的内容包含不可见的控制字符，请检查后重试。"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _has_control_chars(value: str) -> bool:
    return _CONTROL.search(value) is not None


class TrustedProxies:
    """WSGI middleware: behind our own reverse proxy, the client is who the proxy says.

    Only a request whose peer address is a configured proxy has its X-Forwarded-For (the last,
    proxy-appended entry) and X-Forwarded-Proto believed; from anyone else they are ignored, so
    per-IP limits and the audit trail cannot be steered by a client's headers.
    """

    def __init__(self, wsgi_app: Any, proxies: tuple[str, ...]) -> None:
        self.wsgi_app = wsgi_app
        self.proxies = frozenset(proxies)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") in self.proxies:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
            if forwarded:
                environ["REMOTE_ADDR"] = forwarded
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.wsgi_app(environ, start_response)


BEIJING = timezone(timedelta(hours=8))


def beijing(moment: datetime | None) -> str:
    """Times on pages are Beijing time (UTC+8, no daylight saving), labelled as such."""
    if moment is None:
        return ""
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") + "（北京时间）"


def init_app(app: Flask) -> None:
    settings = app.config["IDP"]
    app.add_template_filter(beijing, "beijing")
    if settings.trusted_proxies:
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]

    @app.before_request
    def store_unavailable() -> Response | tuple[str, int] | None:
        if getattr(session, "unavailable", False):
            return error_response(503)
        return None

    @app.before_request
    def ascii_paths_only() -> Response | tuple[str, int] | None:
        """Every route is ASCII. Werkzeug's ``<int:…>`` would read full-width or Arabic-Indic
        digits as numbers; what is typed is what gets checked, so such a path names nothing."""
        if not request.path.isascii():
            return error_response(404)
        return None

    @app.before_request
    def reject_control_characters() -> Response | tuple[str, int] | None:
        """NUL and other control characters have no place in any parameter we accept; some
        databases refuse them outright, so they are stopped before they reach any query."""
        for source in (request.args, request.form):
            for key, value in source.items(multi=True):
                if _has_control_chars(key) or _has_control_chars(value):
                    return error_response(400, "Request contains control characters."
                                          if is_api_request() else MSG_CONTROL_CHARACTERS)
        return None

    @app.after_request
    def end_transaction(response: Response) -> Response:
        """Views commit what they keep. Whatever is left open ends here, before the session is
        saved to the store: on SQLite an open write transaction would make that save wait."""
        db.session.rollback()
        return response

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if settings.uses_tls:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Response | tuple[str, int] | tuple[Response, int]:
        message = MSG_FORM_EXPIRED
        if request.accept_mimetypes.best == "application/json":  # the login page's script
            return jsonify({"ok": False, "message": message, "wait": 0}), 400
        return error_response(400, message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = make_response(error_response(error.code or 400))
        for name, value in error.get_headers():
            if name.lower() == "allow":  # RFC 9110 §15.5.6: a 405 names the allowed methods
                response.headers[name] = value
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(RedisError)
    def backend_unavailable(error: Exception) -> Response | tuple[str, int]:
        """The database or Redis went away (restart, network): a clear 503, no stack trace."""
        log.error("backend unavailable: %s", getattr(error, "orig", None) or error)
        db.session.rollback()
        return error_response(503)

    @app.errorhandler(UnicodeDecodeError)
    def undecodable(error: UnicodeDecodeError) -> Response | tuple[str, int]:
        return error_response(400, "Request is not valid UTF-8.")
