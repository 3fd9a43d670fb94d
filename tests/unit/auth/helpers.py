"""Helpers shared by the auth tests: the page parser, the login steps, audit look-ups."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from idp.audit import AuditEvent
from idp.extensions import db
from tests.conftest import csrf_from
from tests.factories import PASSWORD

PHONE = "13912345678"

class Page(HTMLParser):
    """Elements of a page with their attributes and text, to find a field's error message."""

    VOID = frozenset({"input", "meta", "link", "br", "img", "hr", "source", "area", "base",
                      "col", "embed", "param", "track", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index]["tag"] == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def by_id(self, element_id: str, tag: str | None = None) -> dict[str, Any]:
        found = [e for e in self.elements
                 if e["attrs"].get("id") == element_id and tag in (None, e["tag"])]
        assert len(found) == 1, f"expected one element #{element_id}, found {len(found)}"
        return found[0]


def field_error(html: str, field: str) -> str:
    return str(Page(html).by_id(f"{field}-error")["text"]).strip()


def send(client: FlaskClient, phone: str, ip: str | None = None) -> Any:
    """The 「获取验证码」 button as the page's script presses it (JSON answer)."""
    page = client.get("/login")
    environ = {"REMOTE_ADDR": ip} if ip else {}
    return client.post("/login/sms", data={"phone": phone, "csrf_token": csrf_from(page.text)},
                       headers={"Accept": "application/json"}, environ_base=environ)


def post_login(client: FlaskClient, code: str, phone: str = PHONE,
               password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"phone": phone, "password": password, "sms_code": code,
                                       "csrf_token": csrf_from(page.text), "interaction": ""})


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def is_logged_in(client: FlaskClient) -> bool:
    response = client.get("/")
    return response.status_code == 200


def audit_events(event: str) -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)))
