"""Helpers of the platform admin console tests: a platform admin with a known TOTP seed, its
login through the real pages, and the 动态口令 it types."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.admin.access import provision_admin
from idp.audit import AuditEvent
from idp.extensions import db
from tests.conftest import csrf_from, table_counts
from tests.factories import PASSWORD, login

ADMIN_PHONE = "13700000001"
EXEMPT = ("audit_event", "store_entry")


def counts() -> dict[str, int]:
    """Rows per table, except the two that failures write on purpose."""
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


def events(name: str, result: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == name)
    if result:
        query = query.where(AuditEvent.result == result)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def make_admin(phone: str = ADMIN_PHONE, name: str = "平台管理员") -> tuple[Any, str]:
    """A platform admin (person account, platform organisation, identity, TOTP seed) as
    `idp admins add` makes one; returns the account and the seed."""
    provisioned = provision_admin(phone, name, PASSWORD)
    seed = pyotp.parse_uri(provisioned.otpauth_uri).secret
    return provisioned.account, seed


def code_at(seed: str, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(seed)
    return totp.generate_otp(totp.timecode(time.time()) + offset_steps)


def wrong_code(seed: str) -> str:
    """A 6-digit code that is none of the three codes accepted now."""
    accepted = {code_at(seed, k) for k in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(0, 1_000_000, 111_111))
                if c not in accepted)


def relogin(client: FlaskClient, app: Flask, phone: str = ADMIN_PHONE) -> Any:
    """Another phone login of the same number (the 60-second resend interval skipped)."""
    from idp.store import get_store

    get_store().delete(f"sms:cool:login:{phone}")
    return login(client, app, phone, PASSWORD)


def post_code(client: FlaskClient, code: str, next_url: str = "") -> Any:
    page = client.get("/password/change")  # any page of the session carries its CSRF token
    data = {"csrf_token": csrf_from(page.text), "code": code}
    if next_url:
        data["next"] = next_url
    return client.post("/admin/verify", data=data)


def as_admin(client: FlaskClient, app: Flask, *, verified: bool = True,
             phone: str = ADMIN_PHONE) -> tuple[Any, str]:
    """Log in as a platform admin (phone + password + SMS) and, unless told not to, give the
    动态口令. Returns the account and the TOTP seed."""
    account, seed = make_admin(phone)
    response = login(client, app, phone, PASSWORD)
    assert response.status_code == 303, response.text
    if verified:
        response = post_code(client, code_at(seed))
        assert response.status_code == 303, response.text
    return account, seed


def csrf(client: FlaskClient, url: str = "/admin/clients/new") -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)
