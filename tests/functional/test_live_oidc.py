"""A relying party built on a client library we did not write (Authlib's requests client) runs
the whole life of a login against the provider under gunicorn on loopback (D01, D03, S17, T05):
discovery → authorize → phone login with the SMS code from the outbox → forced password change →
code → tokens → ID token verified with the JWKS → userinfo → refresh (rotation) → revoke →
logout."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.live import LiveServer

pytestmark = pytest.mark.live

REDIRECT = "https://rp.example.test/callback"
POST_LOGOUT = "https://rp.example.test/"
PHONE = "13700001111"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
INTERACTION = re.compile(r'name="interaction"[^>]*value="([^"]*)"')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         pg_database_factory: Any) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp(f"live-{request.param}")
    url = (f"sqlite:///{workdir / 'idp.sqlite3'}" if request.param == "sqlite"
           else pg_database_factory())
    server = LiveServer(workdir=Path(workdir), database_url=url).start()
    try:
        yield server
    finally:
        server.stop()


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _form(html: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(html)
    assert match, "form field not found"
    return match.group(1)


def test_d01_full_login_life_with_authlib_client(live: LiveServer) -> None:
    """D01/D03/S17/T05: the complete flow through real HTTP with an outside client library."""
    # A client of no platform: the person made by `idp users add` has no identity on either
    # platform, and a platform's client would (rightly, S09) refuse them a code. Identities and
    # role selection are proven in tests/unit/portal/.
    creds = live.idp_json(
        "clients", "add", "--client-id", "rp-live", "--name", "测试业务系统",
        "--redirect-uri", REDIRECT, "--post-logout-redirect-uri", POST_LOGOUT, "--json",
    )
    user = live.idp_json("users", "add", "--phone", PHONE, "--name", "王芳", "--json")
    assert user["initial_password"]

    meta = requests.get(live.issuer + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == live.issuer
    rp = OAuth2Session(creds["client_id"], creds["client_secret"],
                       scope="openid profile phone org roles", redirect_uri=REDIRECT,
                       code_challenge_method="S256",
                       token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(48)
    nonce = secrets.token_urlsafe(16)
    authorize_url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    # --- the browser: authorize → login page → SMS → login → forced change → code ---
    browser = requests.Session()
    response = browser.get(authorize_url, allow_redirects=False, timeout=5)
    assert response.status_code == 303 and "/login" in response.headers["Location"]
    page = browser.get(live.issuer + response.headers["Location"], timeout=5)
    assert "手机号码" in page.text and "手机验证码" in page.text
    interaction = _form(page.text, INTERACTION)
    sent = browser.post(live.issuer + "/login/sms",
                        data={"phone": PHONE, "csrf_token": _form(page.text, CSRF)},
                        headers={"Accept": "application/json"}, timeout=5)
    assert sent.json() == {"ok": True, "message": "验证码已发送，请注意查收", "wait": 60}
    code = live.sms_codes(PHONE)[-1]
    response = browser.post(live.issuer + "/login", data={
        "phone": PHONE, "password": user["initial_password"], "sms_code": code,
        "interaction": interaction, "csrf_token": _form(page.text, CSRF),
    }, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/password/change")
    page = browser.get(live.issuer + response.headers["Location"], timeout=5)
    assert "首次登录需修改密码" in page.text
    response = browser.post(live.issuer + "/password/change", data={
        "new_password": "Xin-Mima-2026", "confirm_password": "Xin-Mima-2026",
        "interaction": _form(page.text, INTERACTION), "csrf_token": _form(page.text, CSRF),
    }, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    response = browser.get(live.issuer + response.headers["Location"], allow_redirects=False,
                           timeout=5)
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert callback.startswith(REDIRECT)
    assert _query(callback)["iss"] == live.issuer  # RFC 9207

    # --- the relying party: code → tokens, ID token against the JWKS ---
    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback,
                           code_verifier=verifier)
    assert _query(callback)["state"] == state
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["ES256", "RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": live.issuer},
        aud={"essential": True, "value": "rp-live"},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
    ).validate(id_token.claims)
    assert id_token.claims["amr"] == ["pwd", "sms", "mfa"]
    assert id_token.claims["sub"] == user["id"]

    info = rp.get(meta["userinfo_endpoint"], timeout=5).json()
    assert info["sub"] == user["id"] and info["name"] == "王芳"
    assert info["phone_number"] == f"+86{PHONE}"

    # --- refresh rotates; the old refresh token is dead ---
    first_refresh = token["refresh_token"]
    refreshed = rp.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert refreshed["access_token"] != token["access_token"]

    # --- revoke, then introspection says inactive ---
    rp.revoke_token(meta["revocation_endpoint"], token=refreshed["refresh_token"],
                    token_type_hint="refresh_token")
    introspected = requests.post(meta["introspection_endpoint"],
                                 data={"token": refreshed["access_token"]},
                                 auth=(creds["client_id"], creds["client_secret"]), timeout=5)
    assert introspected.json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        rp.refresh_token(meta["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"

    # --- RP-initiated logout ends the SSO session ---
    response = browser.get(meta["end_session_endpoint"], params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": POST_LOGOUT,
        "state": "bye"}, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == POST_LOGOUT + "?state=bye"
    home = browser.get(live.issuer + "/", allow_redirects=False, timeout=5)
    assert home.status_code == 303 and home.headers["Location"].endswith("/login")


def test_d01_two_workers_share_sessions_and_codes(live: LiveServer) -> None:
    """State lives in the database/store, never in a process: many requests over two gunicorn
    workers all see the same SSO session (DESIGN.md)."""
    live.idp_json("users", "add", "--phone", "13700002222", "--name", "李雷",
                  "--password", "Li-Lei-2026x", "--no-must-change", "--json")
    browser = requests.Session()
    page = browser.get(live.issuer + "/login", timeout=5)
    browser.post(live.issuer + "/login/sms", data={
        "phone": "13700002222", "csrf_token": _form(page.text, CSRF)},
        headers={"Accept": "application/json"}, timeout=5)
    response = browser.post(live.issuer + "/login", data={
        "phone": "13700002222", "password": "Li-Lei-2026x",
        "sms_code": live.sms_codes("13700002222")[-1], "csrf_token": _form(page.text, CSRF),
    }, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    for _ in range(20):  # new connections land on either worker
        home = requests.get(live.issuer + "/", cookies=browser.cookies, allow_redirects=False,
                            timeout=5)
        assert home.status_code == 200 and "您已登录" in home.text
