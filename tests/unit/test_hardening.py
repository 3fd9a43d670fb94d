"""Findings of the security review, each proven: logout and password changes end grants, refresh
families have a fixed deadline, introspection follows the account, machine tokens carry no
person scopes, a stale ID token is no logout ticket, old-password guessing locks, forwarded
addresses are believed only from our own proxy, and a Redis outage is a clear 503."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import request

from idp.accounts.models import Account
from idp.extensions import db
from idp.oidc.clients import ClientSpec, upsert_client
from idp.oidc.models import Client, Token
from idp.store import get_store
from tests.conftest import csrf_from, make_app
from tests.factories import (
    PASSWORD,
    REDIRECT,
    basic,
    code_tokens,
    login,
    make_account,
    make_client,
)


def _userinfo(client: Any, access: str) -> int:
    return int(client.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
               .status_code)


def _refresh(client: Any, secret: str, refresh: str) -> Any:
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh},
                       headers=basic("rp1", secret))


def test_d01_logout_revokes_the_grants_of_that_session(app, client):
    """D01/D07: RP-initiated logout ends the grants made in the SSO session, not only the
    browser session: the refresh token and access token stop working."""
    make_account()
    _, secret = make_client()
    tokens = code_tokens(client, app, secret)
    response = client.get("/logout", query_string={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://rp.example.cn/"})
    assert response.status_code == 302
    assert _userinfo(client, tokens["access_token"]) == 401
    assert _refresh(client, secret, tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_t05_password_change_revokes_all_grants_of_the_account(app, client):
    """T05: a password change ends every grant made with the old password."""
    make_account()
    _, secret = make_client()
    tokens = code_tokens(client, app, secret)
    page = client.get("/password/change")
    response = client.post("/password/change", data={
        "old_password": PASSWORD, "new_password": "Brand-New-2026", "confirm_password":
        "Brand-New-2026", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert _userinfo(client, tokens["access_token"]) == 401
    assert _refresh(client, secret, tokens["refresh_token"]).status_code == 400


def test_t05_guessing_the_old_password_locks_and_logs_out(app, client):
    """T05: wrong old passwords on the self-service page count like failed logins; at the
    threshold the account is locked and the session ends."""
    make_account()
    login(client, app)
    for attempt in range(5):
        page = client.get("/password/change")
        response = client.post("/password/change", data={
            "old_password": f"Wrong-{attempt}-x", "new_password": "Brand-New-2026",
            "confirm_password": "Brand-New-2026", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 429
    assert "账号已锁定" in response.text
    assert client.get("/").status_code == 303  # logged out


def test_d01_rotation_keeps_the_family_deadline(app, client):
    """D01: refresh rotation does not extend the grant: every rotated token keeps the first
    refresh token's expiry, so a family has an absolute end."""
    make_account()
    _, secret = make_client()
    tokens = code_tokens(client, app, secret)
    first = db.session.scalar(sa.select(Token.refresh_expires_at).order_by(Token.id))
    rotated = _refresh(client, secret, tokens["refresh_token"])
    assert rotated.status_code == 200
    deadlines = set(db.session.scalars(sa.select(Token.refresh_expires_at)))
    assert deadlines == {first}


def test_d01_introspection_follows_the_account(app, client):
    """D01: tokens of a disabled account are inactive at introspection too."""
    account = make_account()
    _, secret = make_client()
    tokens = code_tokens(client, app, secret)
    db.session.get(Account, account.id).status = "disabled"
    db.session.commit()
    for value in (tokens["access_token"], tokens["refresh_token"]):
        response = client.post("/introspect", data={"token": value},
                               headers=basic("rp1", secret))
        assert response.json == {"active": False}


def test_d01_machine_tokens_carry_no_person_scopes(app, client):
    """D01: client_credentials never yields openid/profile/phone: no person is behind it."""
    _, secret = make_client()
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "scope": "openid profile phone org roles"},
                           headers=basic("rp1", secret))
    assert response.status_code == 200
    assert set(response.json["scope"].split()) == {"org", "roles"}


def test_d01_an_old_id_token_of_another_session_needs_confirmation(app, client):
    """D01: an ID token from an earlier session of the same user is no ticket to log the
    current session out without asking."""
    make_account()
    _, secret = make_client()
    old = code_tokens(client, app, secret)["id_token"]
    client.get("/logout", query_string={"id_token_hint": old})  # first session ends
    get_store().delete("sms:cool:login:13912345678")  # stands in for the 60 s resend wait
    code_tokens(client, app, secret)  # a new session
    response = client.get("/logout", query_string={"id_token_hint": old})
    assert response.status_code == 200 and "确认退出" in response.text


def test_d03_forwarded_address_believed_only_from_trusted_proxy(tmp_path: Path):
    """D03: per-IP SMS limits and the audit trail see the client's address behind our proxy,
    and a client cannot choose its address by sending X-Forwarded-For itself."""
    app = make_app(f"sqlite:///{tmp_path / 'p.db'}", tmp_path, trusted_proxies=("10.0.0.5",))
    with app.app_context():
        db.create_all()
        seen: list[str | None] = []

        @app.get("/_whoami")
        def whoami() -> str:
            seen.append(request.remote_addr)
            return "ok"

        client = app.test_client()
        client.get("/_whoami", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.9"},
                   environ_base={"REMOTE_ADDR": "10.0.0.5"})
        client.get("/_whoami", headers={"X-Forwarded-For": "203.0.113.9"},
                   environ_base={"REMOTE_ADDR": "198.51.100.7"})
        db.engine.dispose()
    assert seen == ["203.0.113.9", "198.51.100.7"]


def test_d03_redis_outage_is_a_clear_503(tmp_path: Path):
    """D03: with the Redis store down, pages answer 「服务暂时不可用，请稍后重试。」 (503), never
    a 500 or a trace."""
    app = make_app(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, store="redis",
                   redis_url="redis://127.0.0.1:1/0")
    with app.app_context():
        db.create_all()
        app.config["PROPAGATE_EXCEPTIONS"] = False
        client = app.test_client()
        client.set_cookie("idp_session", "some-session-id")
        response = client.get("/login")
        db.engine.dispose()
    assert response.status_code == 503
    assert "服务暂时不可用，请稍后重试。" in response.text


def test_d01_idp_init_keeps_a_rotated_client_secret(app):
    """D01: syncing config/clients.toml updates a client but never resets its secret."""
    make_client(secret="first-secret-of-at-least-32-chars-0001")
    spec = ClientSpec.from_mapping({"client_id": "rp1", "name": "改名", "redirect_uris":
                                    [REDIRECT], "secret": "file-secret-of-at-least-32-chars-002"})
    upsert_client(spec)
    db.session.commit()
    stored = db.session.get(Client, "rp1")
    assert stored.name == "改名"
    assert stored.check_client_secret("first-secret-of-at-least-32-chars-0001")
    assert not stored.check_client_secret("file-secret-of-at-least-32-chars-002")
