"""RP-initiated logout (D01; OpenID Connect RP-Initiated Logout 1.0): ``id_token_hint``, exact
``post_logout_redirect_uri``, ``state``, confirmation with CSRF protection, audit events."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey

from idp.audit import AuditEvent
from idp.extensions import db
from tests.conftest import csrf_from
from tests.factories import (
    REDIRECT,
    authorize_params,
    basic,
    login,
    make_account,
    make_client,
    query,
)

POST_LOGOUT = "https://rp.example.cn/"
OTHER_PHONE = "13812345678"


# --- helpers -----------------------------------------------------------------------------------


def id_token_for(client: Any, app: Any, secret: str, phone: str = "13912345678") -> str:
    """Log ``client`` in as ``phone`` through the code flow and return its ID token."""
    response = client.get("/authorize", query_string=authorize_params())
    if response.status_code == 303:
        interaction = query(response.location)["i"]
        done = login(client, app, phone=phone, interaction=interaction)
        assert done.status_code == 303, done.text
        response = client.get(done.location)
    assert response.status_code == 302, response.text
    code = query(response.location)["code"]
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
    }, headers=basic("rp1", secret))
    assert response.status_code == 200, response.text
    return str(response.json["id_token"])


def is_logged_in(client: Any) -> bool:
    response = client.get("/")
    if response.status_code == 200:
        return True
    assert response.status_code == 303 and response.location == "/login"
    return False


def logout_events(account_id: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == "logout")
    if account_id is not None:
        query = query.where(AuditEvent.account_id == account_id)
    return list(db.session.scalars(query))


def assert_page(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, (response.status_code, response.headers)
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert text in response.text


@pytest.fixture
def rp(app: Any) -> tuple[Any, str]:
    account = make_account()
    _, secret = make_client()
    assert secret is not None
    return account, secret


# --- with an id_token_hint ---------------------------------------------------------------------

def test_d01_logout_with_hint_redirects_with_state_and_ends_session(app, client, rp):
    """D01: id_token_hint of the logged-in user + registered post_logout_redirect_uri + state
    → 302 to that URI with the state; the SSO session is over; an audit event is written."""
    account, secret = rp
    hint = id_token_for(client, app, secret)
    assert is_logged_in(client)
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    assert response.status_code == 302
    parts = urlsplit(response.location)
    assert parts._replace(query="").geturl() == POST_LOGOUT
    assert parse_qs(parts.query) == {"state": ["ls-42"]}
    assert not is_logged_in(client)
    events = logout_events(account.id)
    assert len(events) == 1
    assert events[0].result == "success" and events[0].client_id == "rp1"


def test_d01_logout_with_hint_by_post_is_303(app, client, rp):
    """D01: a form-POSTed logout request is answered 303, never 307 (RFC 9700 §4.12): the same
    request as a GET, on which the SameSite=Lax session cookie travels; that GET logs out."""
    _, secret = rp
    hint = id_token_for(client, app, secret)
    response = client.post("/logout", data={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    assert response.status_code == 303
    assert response.location.startswith("/logout?")
    assert is_logged_in(client)  # nothing happens on the cookieless POST itself
    followed = client.get(response.location)
    assert followed.status_code == 302
    assert followed.location == POST_LOGOUT + "?state=ls-42"
    assert not is_logged_in(client)


def test_d01_logout_with_hint_without_redirect_uri_shows_logged_out_page(app, client, rp):
    """D01: no post_logout_redirect_uri: the session ends and our page says so."""
    account, secret = rp
    hint = id_token_for(client, app, secret)
    assert_page(client.get("/logout", query_string={"id_token_hint": hint}), 200, "您已安全退出")
    assert not is_logged_in(client)
    assert len(logout_events(account.id)) == 1


@pytest.mark.parametrize("uri", [
    "https://evil.example.com/",
    "https://rp.example.cn/other",
    "https://rp.example.cn",
    "https://RP.example.cn/",
    "https://rp.example.cn/?next=https://evil.example.com",
    "https://rp.example.cn/#frag",
    "http://rp.example.cn/",
    "https://rp2.example.cn/",
], ids=["foreign", "other-path", "no-slash", "case", "extra-query", "fragment", "http",
        "other-clients-uri"])
def test_d01_unregistered_post_logout_redirect_uri_is_not_followed(app, client, rp, uri):
    """D01: the post_logout_redirect_uri must exactly match one registered for the client named
    by the hint (RP-Initiated Logout §3); otherwise no redirect, our page instead."""
    make_client(client_id="rp2", redirect_uris=["https://rp2.example.cn/cb"],
                post_logout_redirect_uris=["https://rp2.example.cn/"])
    _, secret = rp
    hint = id_token_for(client, app, secret)
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": uri, "state": "ls-42",
    })
    assert_page(response, 200, "您已安全退出")
    assert "evil.example.com" not in response.text


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    return f"{header}.{_b64(claims)}.{signature}"


def _foreign(token: str) -> str:
    """The same claims signed by a key that is not ours."""
    claims = json.loads(base64.urlsafe_b64decode(
        token.split(".")[1] + "=" * (-len(token.split(".")[1]) % 4)))
    key = ECKey.generate_key("P-256")
    return jwt.encode({"alg": "ES256", "kid": "not-ours"}, claims, key)


def _unsigned(token: str) -> str:
    payload = token.split(".")[1]
    return f"{_b64({'alg': 'none'})}.{payload}."


BAD_HINTS = {
    "garbage": lambda _: "garbage",
    "three-dots": lambda _: "a.b.c",
    "tampered-payload": _tampered,
    "signed-by-other-key": _foreign,
    "alg-none": _unsigned,
    "html": lambda _: "<script>alert(1)</script>",
    "long": lambda _: "x" * 4000,
}


@pytest.mark.parametrize("make_hint", BAD_HINTS.values(), ids=BAD_HINTS.keys())
def test_d01_bad_id_token_hint_gets_error_page(app, client, rp, make_hint):
    """D01: an id_token_hint we did not issue (garbage, tampered, foreign key, alg=none) →
    a 400 page, no redirect, and the session is untouched (RP-Initiated Logout §2, §4)."""
    _, secret = rp
    hint = make_hint(id_token_for(client, app, secret))
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    assert_page(response, 400, "退出请求无效")
    assert "<script>alert" not in response.text
    assert is_logged_in(client)
    assert logout_events() == []


def test_d01_hint_client_id_mismatch_gets_error_page(app, client, rp):
    """D01: client_id and the hint's aud must agree (RP-Initiated Logout §2)."""
    make_client(client_id="rp2")
    _, secret = rp
    hint = id_token_for(client, app, secret)
    response = client.get("/logout", query_string={"id_token_hint": hint, "client_id": "rp2"})
    assert_page(response, 400, "退出请求无效")
    assert is_logged_in(client)


def test_d01_hint_of_another_user_asks_for_confirmation(app, client, rp):
    """D01: a valid hint that names somebody else is no proof for this session: the user is
    asked first, nobody is logged out, nothing is redirected."""
    _, secret = rp
    make_account(phone=OTHER_PHONE, name="另一个用户")
    other_browser = app.test_client()
    other_hint = id_token_for(other_browser, app, secret, phone=OTHER_PHONE)
    id_token_for(client, app, secret)
    response = client.get("/logout", query_string={
        "id_token_hint": other_hint, "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    assert_page(response, 200, "确认退出")
    assert is_logged_in(client)
    assert is_logged_in(other_browser)
    assert logout_events() == []


# --- without an id_token_hint: confirmation ----------------------------------------------------

def test_d01_logout_without_hint_asks_for_confirmation(app, client, rp):
    """D01: without a hint a third-party page cannot log the user out: a confirmation page."""
    _, secret = rp
    id_token_for(client, app, secret)
    response = client.get("/logout", query_string={
        "client_id": "rp1", "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    assert_page(response, 200, "确认退出")
    assert "测试业务系统" in response.text  # the client's name
    assert is_logged_in(client)
    assert logout_events() == []


def test_d01_confirmed_logout_with_csrf_logs_out_and_redirects(app, client, rp):
    """D01: POST confirm=1 with the page's CSRF token ends the session and (registered URI)
    redirects with 303 and the state."""
    account, secret = rp
    id_token_for(client, app, secret)
    page = client.get("/logout", query_string={
        "client_id": "rp1", "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    response = client.post("/logout", data={
        "confirm": "1", "csrf_token": csrf_from(page.text), "client_id": "rp1",
        "post_logout_redirect_uri": POST_LOGOUT, "state": "ls-42",
    })
    assert response.status_code == 303
    assert response.location == POST_LOGOUT + "?state=ls-42"
    assert not is_logged_in(client)
    assert len(logout_events(account.id)) == 1


def test_d01_confirmed_logout_without_redirect_uri_shows_logged_out_page(app, client, rp):
    """D01: confirmed, nothing to redirect to: the logged-out page."""
    _, secret = rp
    id_token_for(client, app, secret)
    page = client.get("/logout")
    response = client.post("/logout", data={"confirm": "1", "csrf_token": csrf_from(page.text)})
    assert_page(response, 200, "您已安全退出")
    assert not is_logged_in(client)


def test_d01_confirmed_logout_does_not_follow_unregistered_uri(app, client, rp):
    """D01: even a confirmed logout redirects only to a registered URI of the named client."""
    _, secret = rp
    id_token_for(client, app, secret)
    page = client.get("/logout")
    response = client.post("/logout", data={
        "confirm": "1", "csrf_token": csrf_from(page.text), "client_id": "rp1",
        "post_logout_redirect_uri": "https://evil.example.com/", "state": "ls-42",
    })
    assert_page(response, 200, "您已安全退出")
    assert not is_logged_in(client)


@pytest.mark.parametrize("csrf_token", [None, "", "forged-token"], ids=["missing", "empty",
                                                                        "forged"])
def test_d01_confirmed_logout_without_valid_csrf_is_refused(app, client, rp, csrf_token):
    """D01: a cross-site POST confirm=1 without the page's CSRF token → 400, still logged in."""
    _, secret = rp
    id_token_for(client, app, secret)
    data = {"confirm": "1", "client_id": "rp1", "post_logout_redirect_uri": POST_LOGOUT}
    if csrf_token is not None:
        data["csrf_token"] = csrf_token
    response = client.post("/logout", data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert is_logged_in(client)
    assert logout_events() == []


def test_d01_confirmation_page_escapes_parameters(app, client, rp):
    """D01: parameters carried through the confirmation form are escaped."""
    _, secret = rp
    id_token_for(client, app, secret)
    hostile = '"><script>alert(1)</script>'
    response = client.get("/logout", query_string={"client_id": "rp1", "state": hostile})
    assert_page(response, 200, "确认退出")
    assert hostile not in response.text


# --- not logged in -----------------------------------------------------------------------------

def test_d01_logout_when_not_logged_in_shows_logged_out_page(client, rp):
    """D01: nobody logged in: the logged-out page, no audit event."""
    response = client.get("/logout")
    assert_page(response, 200, "您已安全退出")
    assert logout_events() == []


def test_d01_logout_with_hint_after_session_ended_still_redirects(app, client, rp):
    """D01: an RP whose user already left may still send them back to its registered page."""
    _, secret = rp
    hint = id_token_for(client, app, secret)
    client.get("/logout", query_string={"id_token_hint": hint})
    assert not is_logged_in(client)
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT, "state": "again",
    })
    assert response.status_code == 302
    assert response.location == POST_LOGOUT + "?state=again"
    assert len(logout_events()) == 1  # no second event: no session ended
