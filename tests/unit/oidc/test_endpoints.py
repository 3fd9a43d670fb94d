"""Userinfo (OIDC Core §5.3), revocation (RFC 7009) and introspection (RFC 7662) — D01."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.audit import AuditEvent
from idp.db import utcnow
from idp.extensions import db
from idp.oidc.models import Token
from idp.security import token_hash
from tests.factories import (
    REDIRECT,
    basic,
    code_tokens,
    get_code,
    make_account,
    make_client,
    pkce_pair,
    setup_rp,
)

ALL_SCOPES = "openid profile phone org roles"


# --- helpers -------------------------------------------------------------------------------------


def public_tokens(client: FlaskClient, app: Flask, client_id: str = "pub") -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code, _ = get_code(client, app, client_id=client_id, code_challenge=challenge,
                       code_challenge_method="S256")
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": client_id, "code_verifier": verifier,
    })
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json
    return body


def machine_token(client: FlaskClient, secret: str, **extra: str) -> str:
    response = client.post("/token", data={"grant_type": "client_credentials", **extra},
                           headers=basic("rp1", secret))
    assert response.status_code == 200, response.text
    return str(response.json["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def userinfo(client: FlaskClient, token: str) -> Any:
    return client.get("/userinfo", headers=bearer(token))


def refresh(client: FlaskClient, refresh_token: str, secret: str) -> Any:
    return client.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": refresh_token},
                       headers=basic("rp1", secret))


def revoke(client: FlaskClient, token: str, secret: str | None, client_id: str = "rp1",
           hint: str | None = None) -> Any:
    data = {"token": token}
    if hint is not None:
        data["token_type_hint"] = hint
    if secret is None:
        data["client_id"] = client_id
        return client.post("/revoke", data=data)
    return client.post("/revoke", data=data, headers=basic(client_id, secret))


def introspect(client: FlaskClient, token: str, secret: str, client_id: str = "rp1",
               hint: str | None = None) -> Any:
    data = {"token": token}
    if hint is not None:
        data["token_type_hint"] = hint
    return client.post("/introspect", data=data, headers=basic(client_id, secret))


def expire_all_tokens() -> None:
    for row in db.session.scalars(sa.select(Token)):
        row.issued_at = utcnow() - timedelta(seconds=row.expires_in + 1)
    db.session.commit()


def the_account() -> Account:
    account = db.session.scalar(sa.select(Account))
    assert account is not None
    return account


# --- userinfo ----------------------------------------------------------------------------------

def test_d01_userinfo_get_with_bearer_header(app, client):
    """D01: GET /userinfo with the Authorization header returns the claims, not cached."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    response = userinfo(client, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json["sub"] == the_account().id
    assert response.headers["Cache-Control"] == "no-store"
    lower = client.get("/userinfo", headers={"Authorization": f"bearer {tokens['access_token']}"})
    assert lower.status_code == 200


def test_d01_userinfo_post_with_form_token(app, client):
    """D01: POST /userinfo with access_token in the form body (RFC 6750 §2.2)."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    response = client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 200, response.text
    assert response.json["sub"] == the_account().id


def test_d01_userinfo_ignores_token_in_query_string(app, client):
    """D01: RFC 9700 §4.3.2 — never accept the access token from the URI query."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    response = client.get("/userinfo", query_string={"access_token": tokens["access_token"]})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_d01_userinfo_without_token_is_401_with_challenge(app, client, method):
    """D01: no token → 401 and a Bearer challenge (RFC 6750 §3)."""
    response = client.open("/userinfo", method=method)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.is_json


@pytest.mark.parametrize("token", [
    "garbage", "a" * 5000, "' OR '1'='1", "<script>alert(1)</script>", "令牌", "x" * 43,
], ids=["garbage", "huge", "sql", "html", "cjk", "unknown"])
def test_d01_userinfo_garbage_token_is_invalid_token(app, client, token):
    """D01: a string that is no access token → 401 invalid_token with a Bearer challenge."""
    response = userinfo(client, token)
    assert response.status_code == 401, response.text
    assert response.json["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_d01_userinfo_other_credentials_are_invalid_token(app, client):
    """D01: a refresh token, an ID token or a truncated access token is not an access token."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    for value in (tokens["refresh_token"], tokens["id_token"], tokens["access_token"][:-1]):
        response = userinfo(client, value)
        assert response.status_code == 401, response.text
        assert response.json["error"] == "invalid_token"
    assert userinfo(client, tokens["access_token"]).status_code == 200


def test_d01_userinfo_revoked_token_is_invalid_token(app, client):
    """D01: after revocation the access token no longer opens userinfo."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    assert revoke(client, tokens["access_token"], secret).status_code == 200
    response = userinfo(client, tokens["access_token"])
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_d01_userinfo_expired_token_is_invalid_token(app, client):
    """D01: an expired access token → 401 invalid_token."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    expire_all_tokens()
    response = userinfo(client, tokens["access_token"])
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_d01_userinfo_disabled_account_is_refused(app, client):
    """D01: a disabled account's tokens no longer return claims."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    account = the_account()
    account.status = "disabled"
    db.session.commit()
    assert userinfo(client, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("scope", [None, "openid", "openid profile"])
def test_d01_userinfo_refuses_client_credentials_token(app, client, scope):
    """D01: a machine token (no account, no openid) gets 403/401 at userinfo."""
    secret = setup_rp()
    token = machine_token(client, secret, **({"scope": scope} if scope else {}))
    response = userinfo(client, token)
    assert response.status_code in (401, 403), response.text
    assert response.json["error"] in {"insufficient_scope", "invalid_token"}
    assert "sub" not in response.json


@pytest.mark.parametrize("scope,expected", [
    ("openid", {"sub"}),
    ("openid profile", {"sub", "name"}),
    ("openid phone", {"sub", "phone_number", "phone_number_verified"}),
    ("openid org", {"sub", "org", "platform", "identity"}),
    ("openid roles", {"sub", "roles"}),
    (ALL_SCOPES, {"sub", "name", "phone_number", "phone_number_verified", "org", "platform",
                  "identity", "roles"}),
], ids=["openid", "profile", "phone", "org", "roles", "all"])
def test_d01_userinfo_claims_follow_scope(app, client, scope, expected):
    """D01 (DESIGN.md, Claims): each scope releases exactly its claims."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret, scope=scope)
    response = userinfo(client, tokens["access_token"])
    assert response.status_code == 200, response.text
    claims = response.json
    assert set(claims) == expected
    account = the_account()
    identity = db.session.scalar(sa.select(Identity))
    assert identity is not None
    assert claims["sub"] == account.id
    if "name" in expected:
        assert claims["name"] == "测试用户"
    if "phone_number" in expected:
        assert claims["phone_number"] == "+8613912345678"
        assert claims["phone_number_verified"] is True
    if "org" in expected:
        assert claims["platform"] == "repair_fund"
        assert claims["identity"] == str(identity.id)
        assert claims["org"]["type"] == "enterprise"
        assert claims["org"]["name"] == "上海申大物业有限公司"
    if "roles" in expected:
        assert claims["roles"] == ["operator"]


def test_d01_userinfo_wrong_method_is_json_405(app, client):
    """D01: PUT/DELETE on userinfo → JSON 405."""
    for method in ("PUT", "DELETE"):
        response = client.open("/userinfo", method=method)
        assert response.status_code == 405
        assert response.is_json


# --- revocation (RFC 7009) ------------------------------------------------------------------------

def test_d01_revoking_refresh_token_revokes_access_token(app, client):
    """D01: RFC 7009 §2.1 — revoking the refresh token also invalidates its access token."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    response = revoke(client, tokens["refresh_token"], secret, hint="refresh_token")
    assert response.status_code == 200, response.text
    assert userinfo(client, tokens["access_token"]).status_code == 401
    again = refresh(client, tokens["refresh_token"], secret)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    events = list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.event == "token.revoked")))
    assert len(events) == 1 and events[0].client_id == "rp1"


def test_d01_revoking_refreshed_token_revokes_the_family(app, client):
    """D01: revoking the newest refresh token ends the grant, older access tokens included."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    rotated = refresh(client, tokens["refresh_token"], secret).json
    assert revoke(client, rotated["refresh_token"], secret).status_code == 200
    assert userinfo(client, rotated["access_token"]).status_code == 401
    assert userinfo(client, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"],
                         ids=["no-hint", "hint-access", "hint-refresh"])
def test_d01_revocation_with_any_hint(app, client, kind, hint):
    """D01: RFC 7009 §2.1 — a wrong hint does not stop the server from finding the token."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    response = revoke(client, tokens[kind], secret, hint=hint)
    assert response.status_code == 200, response.text
    row = db.session.scalar(sa.select(Token).where(
        Token.access_token_hash == token_hash(tokens["access_token"])))
    assert row is not None and row.revoked_at is not None
    assert userinfo(client, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("hint", ["id_token", "garbage", "<x>"])
def test_d01_revocation_unsupported_hint(app, client, hint):
    """D01: RFC 7009 §2.2.1 — an unknown token_type_hint → unsupported_token_type."""
    secret = setup_rp()
    token = machine_token(client, secret)
    response = revoke(client, token, secret, hint=hint)
    # RFC 6749 §5.2 says 400; Authlib answers this error with 401. Either is a refusal.
    assert response.status_code in (400, 401)
    assert response.json["error"] == "unsupported_token_type"
    assert introspect(client, token, secret).json["active"] is True


@pytest.mark.parametrize("token", ["x" * 43, "a" * 5000, "' OR 1=1 --", "令牌"],
                         ids=["unknown", "huge", "sql", "cjk"])
def test_d01_revoking_unknown_token_is_200(app, client, token):
    """D01: RFC 7009 §2.2 — an invalid or unknown token still gets 200."""
    secret = setup_rp()
    response = revoke(client, token, secret)
    assert response.status_code == 200, response.text


def test_d01_revoking_another_clients_token_fails(app, client):
    """D01: a client cannot revoke another client's token; the token stays valid."""
    secret = setup_rp()
    _rp2, other = make_client(client_id="rp2")
    assert other is not None
    tokens = code_tokens(client, app, secret)
    response = revoke(client, tokens["refresh_token"], other, client_id="rp2")
    assert response.status_code in (400, 401, 403), response.text
    assert response.json["error"]
    assert userinfo(client, tokens["access_token"]).status_code == 200
    assert refresh(client, tokens["refresh_token"], secret).status_code == 200


def test_d01_public_client_revokes_with_client_id(app, client):
    """D01: a public client authenticates to /revoke with just its client_id (RFC 7009 §5)."""
    make_account()
    make_client(client_id="pub", public=True)
    tokens = public_tokens(client, app)
    response = revoke(client, tokens["refresh_token"], None, client_id="pub")
    assert response.status_code == 200, response.text
    assert userinfo(client, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("case", ["no-auth", "wrong-secret", "unknown-client",
                                  "confidential-without-secret"])
def test_d01_revocation_requires_client_authentication(app, client, case):
    """D01: /revoke authenticates the client; failures are invalid_client and revoke nothing."""
    secret = setup_rp()
    token = machine_token(client, secret)
    data = {"token": token}
    headers: dict[str, str] = {}
    if case == "wrong-secret":
        headers = basic("rp1", "x" * 43)
    elif case == "unknown-client":
        headers = basic("nobody", secret)
    elif case == "confidential-without-secret":
        data["client_id"] = "rp1"
    response = client.post("/revoke", data=data, headers=headers)
    assert response.status_code in (400, 401), response.text
    assert response.json["error"] == "invalid_client"
    assert introspect(client, token, secret).json["active"] is True


def test_d01_revocation_without_token_is_invalid_request(app, client):
    """D01: /revoke without ``token`` → invalid_request."""
    secret = setup_rp()
    response = client.post("/revoke", data={}, headers=basic("rp1", secret))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


# --- introspection (RFC 7662) ---------------------------------------------------------------------

def test_d01_introspect_active_access_token(app, client):
    """D01: RFC 7662 §2.2 — an active access token and its metadata."""
    secret = setup_rp()
    before = int(time.time())
    tokens = code_tokens(client, app, secret)
    response = introspect(client, tokens["access_token"], secret)
    assert response.status_code == 200, response.text
    body = response.json
    assert body["active"] is True
    assert body["sub"] == the_account().id
    assert body["client_id"] == "rp1"
    assert set(body["scope"].split()) == set(ALL_SCOPES.split())
    assert body["iss"] == "http://localhost"
    assert body["token_type"] == "Bearer"
    assert before - 2 <= body["iat"] <= int(time.time()) + 2
    assert body["exp"] == body["iat"] + tokens["expires_in"]
    assert response.headers["Cache-Control"] == "no-store"


def test_d01_introspect_refresh_token(app, client):
    """D01: a live refresh token is active with token_type refresh_token; once rotated, not."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    body = introspect(client, tokens["refresh_token"], secret, hint="refresh_token").json
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["client_id"] == "rp1" and body["sub"] == the_account().id
    assert body["exp"] > int(time.time()) + tokens["expires_in"]
    unhinted = introspect(client, tokens["refresh_token"], secret).json
    assert unhinted["active"] is True and unhinted["token_type"] == "refresh_token"
    assert refresh(client, tokens["refresh_token"], secret).status_code == 200
    assert introspect(client, tokens["refresh_token"], secret).json == {"active": False}


def test_d01_introspect_client_credentials_token(app, client):
    """D01: a machine token is active and has no ``sub``."""
    secret = setup_rp()
    token = machine_token(client, secret)
    body = introspect(client, token, secret).json
    assert body["active"] is True and body["client_id"] == "rp1"
    assert "sub" not in body


@pytest.mark.parametrize("case", ["revoked", "expired", "unknown", "huge"])
def test_d01_introspect_inactive_tokens(app, client, case):
    """D01: revoked, expired and unknown tokens → exactly {"active": false}."""
    secret = setup_rp()
    token = machine_token(client, secret)
    assert introspect(client, token, secret).json["active"] is True
    if case == "revoked":
        assert revoke(client, token, secret).status_code == 200
    elif case == "expired":
        expire_all_tokens()
    elif case == "unknown":
        token = "x" * 43
    elif case == "huge":
        token = "a" * 5000
    response = introspect(client, token, secret)
    assert response.status_code == 200, response.text
    assert response.json == {"active": False}


def test_d01_introspect_revoked_grant_is_inactive(app, client):
    """D01: after revoking the access token, neither it nor its refresh token is active."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    assert revoke(client, tokens["access_token"], secret).status_code == 200
    for value in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(client, value, secret).json == {"active": False}
    expired = code_tokens(client, app, secret)
    expire_all_tokens()
    assert introspect(client, expired["access_token"], secret).json == {"active": False}


def test_d01_introspect_another_clients_token_is_inactive(app, client):
    """D01: a client learns nothing about another client's tokens."""
    secret = setup_rp()
    _rp2, other = make_client(client_id="rp2")
    assert other is not None
    tokens = code_tokens(client, app, secret)
    for value in (tokens["access_token"], tokens["refresh_token"]):
        response = introspect(client, value, other, client_id="rp2")
        assert response.status_code == 200
        assert response.json == {"active": False}


def test_d01_public_client_cannot_introspect(app, client):
    """D01: introspection needs client authentication; a public client has none."""
    make_account()
    make_client(client_id="pub", public=True)
    tokens = public_tokens(client, app)
    response = client.post("/introspect", data={"token": tokens["access_token"],
                                                "client_id": "pub"})
    assert response.status_code in (400, 401), response.text
    assert response.json["error"] == "invalid_client"
    assert "active" not in response.json


@pytest.mark.parametrize("case", ["no-auth", "wrong-secret", "no-token", "bad-hint"])
def test_d01_introspection_bad_requests(app, client, case):
    """D01: unauthenticated or malformed introspection requests → protocol errors."""
    secret = setup_rp()
    data: dict[str, str] = {"token": "x" * 43}
    headers = basic("rp1", secret)
    expected = "invalid_request"
    if case == "no-auth":
        headers, expected = {}, "invalid_client"
    elif case == "wrong-secret":
        headers, expected = basic("rp1", "y" * 43), "invalid_client"
    elif case == "no-token":
        data = {}
    else:
        data["token_type_hint"] = "id_token"
        expected = "unsupported_token_type"
    response = client.post("/introspect", data=data, headers=headers)
    assert response.status_code in (400, 401), response.text
    assert response.json["error"] == expected


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
@pytest.mark.parametrize("header", [
    "Basic \xa0", "Basic " + base64.b64encode(b"rp1:\xff").decode(), "Basic !!!",
], ids=["nbsp", "non-utf8", "not-base64"])
def test_d01_malformed_basic_header_at_revoke_and_introspect(app, client, path, header):
    """D01: malformed client credentials → a JSON 4xx, never 500."""
    setup_rp()
    response = client.post(path, data={"token": "x" * 43}, headers={"Authorization": header})
    assert response.status_code in (400, 401), response.text
    assert response.json["error"] in {"invalid_client", "invalid_request"}


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_d01_revoke_and_introspect_get_is_json_405(app, client, path):
    """D01: only POST; GET → JSON 405."""
    response = client.get(path)
    assert response.status_code == 405
    assert response.is_json
