"""The SSO session (S17): server-side data behind a random id, HttpOnly + SameSite=Lax cookie
(Secure with the __Host- prefix under TLS), a new id at login, idle timeout ≤ 30 minutes, an
absolute lifetime, logout, and forged cookies that get nobody anywhere."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.config import ConfigError, Settings
from idp.extensions import db
from idp.store import get_store
from idp.store.database import StoreEntry
from tests.conftest import csrf_from
from tests.factories import PASSWORD, login, make_account
from tests.unit.auth.helpers import PHONE, audit_events

COOKIE = "idp_session"


# --- helpers (local to this file) ---------------------------------------------------------------


def set_cookies(response: Any) -> dict[str, dict[str, str]]:
    """Set-Cookie headers as {name: {"value": …, "<attribute>": …}} (attribute names lowered)."""
    cookies: dict[str, dict[str, str]] = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        entry = {"value": value}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            entry[key.lower()] = val
        cookies[name] = entry
    return cookies


def session_key(sid: str) -> str:
    return "sess:" + hashlib.sha256(sid.encode()).hexdigest()


def cookie_value(client: FlaskClient, name: str = COOKIE) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, f"no cookie {name}"
    return cookie.value


def store_keys() -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.execute(sa.select(StoreEntry.key)).scalars())


def is_logged_in(client: FlaskClient) -> bool:
    response = client.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 303
    return False


def quick_login(app: Flask) -> FlaskClient:
    """Log in on ``app`` with the fewest requests between the session's birth and the login, for
    apps whose sessions live only a second."""
    sender = app.test_client()
    page = sender.get("/login")
    response = sender.post("/login/sms", data={"phone": PHONE, "csrf_token": csrf_from(page.text)},
                           headers={"Accept": "application/json"})
    assert response.status_code == 200
    code = json.loads(Path(app.config["IDP"].resolved_sms_outbox).read_text(
        encoding="utf-8").splitlines()[-1])["code"]
    client = app.test_client()
    page = client.get("/login")
    response = client.post("/login", data={"phone": PHONE, "password": PASSWORD, "sms_code": code,
                                           "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    return client


# --- the cookie ---------------------------------------------------------------------------------

def test_s17_session_cookie_is_httponly_and_samesite_lax(app, client):
    """S17: the session cookie is HttpOnly, SameSite=Lax, Path=/, host-only; it is a random id
    (256 bits), not data."""
    response = client.get("/login")
    cookie = set_cookies(response)[COOKIE]
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert "domain" not in cookie
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie["value"])
    assert "Cookie" in response.headers.get("Vary", "")


def test_s17_session_cookie_under_tls_is_secure_with_host_prefix(app, build_app):
    """S17: under TLS the cookie is ``__Host-idp_session``: Secure, HttpOnly, SameSite=Lax,
    Path=/ and no Domain (RFC 6265bis), so no subdomain can set or read it."""
    secure = build_app(issuer="https://localhost")
    client = secure.test_client()
    response = client.get("/login", base_url="https://localhost")
    assert response.status_code == 200
    cookies = set_cookies(response)
    assert COOKIE not in cookies
    cookie = cookies["__Host-" + COOKIE]
    assert "secure" in cookie and "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert "domain" not in cookie


def test_s17_session_id_changes_at_login(app, client):
    """S17: login gives the browser a new session id; the id it had before (which somebody could
    have planted) is dead afterwards."""
    make_account()
    client.get("/login")
    before = cookie_value(client)
    assert login(client, app).status_code == 303
    after = cookie_value(client)
    assert after != before
    keys = store_keys()
    assert session_key(after) in keys
    assert session_key(before) not in keys
    planted = app.test_client()
    planted.set_cookie(COOKIE, before)
    assert not is_logged_in(planted)
    assert is_logged_in(client)


def test_s17_session_data_lives_on_the_server(app, client):
    """S17: the cookie is only an id; the data is in the store under sess:<sha256(id)>."""
    account = make_account()
    assert login(client, app).status_code == 303
    sid = cookie_value(client)
    assert account.id not in sid and PHONE not in sid
    keys = store_keys()
    assert session_key(sid) in keys
    assert not any(sid in key for key in keys), "the raw id is not a store key"
    data = json.loads(get_store().get(session_key(sid)) or "{}")
    assert data["uid"] == account.id
    assert data["amr"] == ["pwd", "sms", "mfa"]
    assert data["pwchange"] is False


def test_s17_idle_timeout_is_at_most_30_minutes(app, client):
    """S17/DOMAIN (等保 level 3): the session lives at most 1800 s after the last activity, and
    the configuration cannot raise that."""
    make_account()
    assert login(client, app).status_code == 303
    ttl = get_store().ttl(session_key(cookie_value(client)))
    assert ttl is not None and 1700 < ttl <= 1800
    with pytest.raises(ConfigError, match="session_idle_seconds"):
        Settings().replace(session_idle_seconds=1801)


def test_s17_idle_session_expires(app, build_app):
    """S17: a session left idle longer than session_idle_seconds (1 s here) is gone."""
    make_account()
    other = build_app(session_idle_seconds=1)
    client = quick_login(other)
    assert is_logged_in(client)
    time.sleep(1.1)
    assert not is_logged_in(client)


def test_s17_absolute_lifetime_ends_the_session(app, build_app):
    """S17: after session_max_seconds (1 s here) the login is forgotten, activity or not."""
    make_account()
    other = build_app(session_max_seconds=1)
    client = quick_login(other)
    sid = cookie_value(client)
    assert is_logged_in(client)
    time.sleep(1.1)
    assert not is_logged_in(client)
    assert get_store().get(session_key(sid)) is None


def test_s17_logout_clears_the_session(app, client):
    """S17: logging out deletes the server-side session and the cookie; the old id is dead."""
    account = make_account()
    assert login(client, app).status_code == 303
    sid = cookie_value(client)
    page = client.get("/logout")
    assert page.status_code == 200
    response = client.post("/logout", data={"confirm": "1", "csrf_token": csrf_from(page.text)})
    assert response.status_code in (200, 303)
    cookie = set_cookies(response)[COOKIE]
    assert cookie["value"] in ("", '""')
    assert "expires" in cookie or cookie.get("max-age") == "0"
    assert session_key(sid) not in store_keys()
    assert not is_logged_in(client)
    replay = app.test_client()
    replay.set_cookie(COOKIE, sid)
    assert not is_logged_in(replay)
    events = audit_events("logout")
    assert [(e.account_id, e.result) for e in events] == [(account.id, "success")]


@pytest.mark.parametrize("forged", [
    "random", "store-key-hash", "store-key", "overlong", "sql", "signed-looking",
], ids=str)
def test_s17_forged_cookie_gives_an_anonymous_session(app, client, forged):
    """S17: a made-up cookie value, or one built from a store dump, is no session; the provider
    never adopts an id the browser chose."""
    make_account()
    assert login(client, app).status_code == 303
    real = cookie_value(client)
    value = {
        "random": secrets.token_urlsafe(32),
        "store-key-hash": hashlib.sha256(real.encode()).hexdigest(),
        "store-key": session_key(real),
        "overlong": real + "A" * 100,
        "sql": "x' OR '1'='1",
        "signed-looking": "eyJ1aWQiOiJhZG1pbiJ9.ZmFrZQ.c2lnbmF0dXJl",
    }[forged]
    attacker = app.test_client()
    attacker.set_cookie(COOKIE, value)
    assert not is_logged_in(attacker)
    response = attacker.get("/login")
    assert response.status_code == 200
    issued = set_cookies(response)[COOKIE]["value"]
    assert issued != value
    assert session_key(value) not in store_keys()
    assert is_logged_in(client), "the real session is untouched"
