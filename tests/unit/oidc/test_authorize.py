"""The authorization endpoint (D01): exact redirect-URI matching, error responses with ``iss``
(RFC 9207), PKCE (RFC 7636 / RFC 9700 §2.1.1), ``prompt``, ``max_age``, ``login_hint``, nonce
replay, resuming an interrupted request, and disabled clients."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.extensions import db
from idp.store import get_store
from tests.conftest import csrf_from, last_code
from tests.factories import (
    PASSWORD,
    REDIRECT,
    authorize_params,
    exchange,
    get_code,
    login,
    make_account,
    make_client,
    pkce_pair,
    query,
)

ISSUER = "http://localhost"
PHONE = "13912345678"
LOOPBACK = "http://127.0.0.1/cb"
GOOD_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B


# --- helpers -----------------------------------------------------------------------------------

def _multi_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def assert_error_page(response: Any) -> None:
    """An error the user sees on our own page: never a redirect to an unvalidated URI."""
    assert response.status_code == 400, (response.status_code, response.headers.get("Location"))
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert "授权请求无效" in response.text or "登录请求已过期" in response.text


def assert_error_redirect(response: Any, error: str, state: str | None = "st-123",
                          redirect_uri: str = REDIRECT) -> dict[str, list[str]]:
    """An authorization error response (RFC 6749 §4.1.2.1) naming the issuer (RFC 9207 §2)."""
    assert response.status_code == 302, response.text
    location = response.location
    parts = urlsplit(location)
    assert parts._replace(query="").geturl() == redirect_uri
    params = _multi_query(location)
    assert params["error"] == [error], params
    assert params["iss"] == [ISSUER]
    assert "code" not in params
    if state is None:
        assert "state" not in params
    else:
        assert params["state"] == [state]
    return params


def assert_code_redirect(response: Any, state: str | None = "st-123",
                         redirect_uri: str = REDIRECT) -> str:
    assert response.status_code == 302, response.text
    parts = urlsplit(response.location)
    assert parts._replace(query="").geturl() == redirect_uri
    params = _multi_query(response.location)
    expected = {"code", "iss"} | ({"state"} if state is not None else set())
    assert set(params) == expected, params
    assert params["iss"] == [ISSUER]
    if state is not None:
        assert params["state"] == [state]
    assert len(params["code"]) == 1 and len(params["code"][0]) >= 32
    return params["code"][0]


def as_login_redirect(response: Any) -> str:
    """The authorize endpoint sent the browser to the login page; return the interaction id."""
    assert response.status_code == 303, (response.status_code, response.headers.get("Location"))
    assert urlsplit(response.location).path == "/login"
    return query(response.location)["i"]


def login_again(client: Any, app: Any, interaction: str, phone: str = PHONE) -> Any:
    """Log in once more (already logged in) through the login page of ``interaction``."""
    get_store().delete(f"sms:cool:login:{phone}")  # the 60-second resend interval has passed
    page = client.get(f"/login?i={interaction}")
    assert page.status_code == 200, "the login page must show although a session exists"
    token = csrf_from(page.text)
    sent = client.post("/login/sms", data={"phone": phone, "csrf_token": token},
                       headers={"Accept": "application/json"})
    assert sent.status_code == 200, sent.text
    return client.post("/login", data={
        "phone": phone, "password": PASSWORD, "sms_code": last_code(app, phone),
        "csrf_token": token, "interaction": interaction,
    })


def backdate_login(client: Any, seconds: int) -> None:
    """Pretend the SSO login happened ``seconds`` ago (edits the server-side session)."""
    with client.session_transaction() as session:
        assert session.get("uid"), "not logged in"
        session["auth_time"] = session["auth_time"] - seconds


def logged_in(client: Any, app: Any) -> None:
    """Log in through a first, ordinary authorization."""
    get_code(client, app)


@pytest.fixture
def rp(app: Any) -> tuple[Any, str | None]:
    make_account()
    return make_client()


# --- exact redirect-URI matching ---------------------------------------------------------------

BAD_REQUESTS = {
    "unregistered": {"redirect_uri": "https://evil.example.com/callback"},
    "prefix-of-registered": {"redirect_uri": "https://rp.example.cn/call"},
    "longer-path": {"redirect_uri": REDIRECT + "/evil"},
    "suffix-chars": {"redirect_uri": REDIRECT + "x"},
    "trailing-slash": {"redirect_uri": REDIRECT + "/"},
    "host-case": {"redirect_uri": "https://RP.example.cn/callback"},
    "path-case": {"redirect_uri": "https://rp.example.cn/Callback"},
    "http-scheme": {"redirect_uri": "http://rp.example.cn/callback"},
    "explicit-port": {"redirect_uri": "https://rp.example.cn:443/callback"},
    "userinfo": {"redirect_uri": "https://rp.example.cn@evil.example.com/callback"},
    "extra-query": {"redirect_uri": REDIRECT + "?next=https://evil.example.com"},
    "fragment": {"redirect_uri": REDIRECT + "#frag"},
    "encoded": {"redirect_uri": "https%3A%2F%2Frp.example.cn%2Fcallback"},
    "missing-redirect-uri": {"redirect_uri": None},
    "empty-redirect-uri": {"redirect_uri": ""},
    "unknown-client": {"client_id": "nobody"},
    "missing-client": {"client_id": None},
    "hostile-client-id": {"client_id": "rp1' OR '1'='1"},
    "unsupported-response-type-and-bad-uri": {"response_type": "token",
                                              "redirect_uri": "https://evil.example.com/cb"},
    "prompt-none-and-bad-uri": {"prompt": "none", "redirect_uri": "https://evil.example.com/cb"},
}


@pytest.mark.parametrize("overrides", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_d01_unvalidated_redirect_uri_gets_error_page(client, rp, overrides):
    """D01: a redirect URI that is not exactly a registered one (or no client to check it
    against) gets an error page, never a redirect (RFC 9700 §4.1.3, RFC 6749 §4.1.2.1)."""
    response = client.get("/authorize", query_string=authorize_params(**overrides))
    assert_error_page(response)
    assert "evil.example.com" not in response.headers.get("Location", "")


def test_d01_unvalidated_redirect_uri_gets_error_page_when_logged_in(app, client, rp):
    """D01: a session makes no difference: no code travels to an unregistered URI."""
    logged_in(client, app)
    response = client.get("/authorize", query_string=authorize_params(
        redirect_uri="https://evil.example.com/callback"))
    assert_error_page(response)


def test_d01_repeated_redirect_uri_gets_error_page(client, rp):
    """D01: two redirect_uri parameters (even both registered) are refused with a page."""
    params = authorize_params()
    params_multi = {**params, "redirect_uri": [REDIRECT, REDIRECT]}
    response = client.get("/authorize", query_string=params_multi)
    assert_error_page(response)


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:53412/cb",
    "http://127.0.0.1:8080/cb",
    "http://127.0.0.1/cb",
])
def test_d01_loopback_redirect_uri_any_port(app, client, redirect_uri):
    """D01: RFC 8252 §7.3: a registered loopback IP redirect URI matches on any port."""
    make_account()
    make_client(client_id="native", public=True, redirect_uris=[LOOPBACK])
    verifier, challenge = pkce_pair()
    params = authorize_params("native", redirect_uri=redirect_uri, code_challenge=challenge,
                              code_challenge_method="S256")
    interaction = as_login_redirect(client.get("/authorize", query_string=params))
    done = login(client, app, interaction=interaction)
    code = assert_code_redirect(client.get(done.location), redirect_uri=redirect_uri)
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": "native", "code_verifier": verifier,
    })
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:53412/other",
    "http://127.0.0.1:53412/cb/",
    "http://127.0.0.1:53412/cb?x=1",
    "http://127.0.0.2:53412/cb",
    "http://localhost:53412/cb",
    "https://127.0.0.1:53412/cb",
    "http://127.0.0.1:notaport/cb",
    "http://evil.example.com@127.0.0.1:53412/cb",
], ids=["other-path", "trailing-slash", "query", "other-ip", "localhost-name", "https",
        "non-numeric-port", "userinfo"])
def test_d01_loopback_redirect_uri_only_port_may_differ(app, client, redirect_uri):
    """D01: for loopback only the port is free (RFC 8252 §7.3); path, host, scheme and
    everything else must match exactly."""
    make_client(client_id="native", public=True, redirect_uris=[LOOPBACK])
    params = authorize_params("native", redirect_uri=redirect_uri,
                              code_challenge=GOOD_CHALLENGE, code_challenge_method="S256")
    assert_error_page(client.get("/authorize", query_string=params))


# --- errors after the redirect URI is validated ------------------------------------------------

REDIRECTED_ERRORS = {
    "response-type-token": ({"response_type": "token"}, "unsupported_response_type"),
    "response-type-id-token": ({"response_type": "id_token"}, "unsupported_response_type"),
    "response-type-code-id-token": ({"response_type": "code id_token"},
                                    "unsupported_response_type"),
    "response-type-missing": ({"response_type": None}, "unsupported_response_type"),
    "max-age-negative": ({"max_age": "-1"}, "invalid_request"),
    "max-age-text": ({"max_age": "abc"}, "invalid_request"),
    "max-age-fraction": ({"max_age": "1.5"}, "invalid_request"),
    "max-age-fullwidth": ({"max_age": "１２"}, "invalid_request"),
    "max-age-huge": ({"max_age": "99999999999999999999"}, "invalid_request"),
    "prompt-none-with-login": ({"prompt": "none login"}, "invalid_request"),
    "pkce-plain": ({"code_challenge": GOOD_CHALLENGE, "code_challenge_method": "plain"},
                   "invalid_request"),
    "pkce-missing-method": ({"code_challenge": GOOD_CHALLENGE}, "invalid_request"),
    "pkce-lowercase-method": ({"code_challenge": GOOD_CHALLENGE,
                               "code_challenge_method": "s256"}, "invalid_request"),
    "pkce-method-without-challenge": ({"code_challenge_method": "S256"}, "invalid_request"),
    "pkce-challenge-too-short": ({"code_challenge": "abc", "code_challenge_method": "S256"},
                                 "invalid_request"),
    "pkce-challenge-too-long": ({"code_challenge": "a" * 129, "code_challenge_method": "S256"},
                                "invalid_request"),
    "pkce-challenge-bad-chars": ({"code_challenge": "a" * 42 + "+",
                                  "code_challenge_method": "S256"}, "invalid_request"),
    "pkce-challenge-padded": ({"code_challenge": GOOD_CHALLENGE + "=",
                               "code_challenge_method": "S256"}, "invalid_request"),
    "nonce-too-long": ({"nonce": "n" * 256}, "invalid_request"),
}


@pytest.mark.parametrize(("overrides", "error"), REDIRECTED_ERRORS.values(),
                         ids=REDIRECTED_ERRORS.keys())
def test_d01_errors_after_redirect_uri_validation_are_redirected_with_iss(
        client, rp, overrides, error):
    """D01: once the redirect URI is validated, errors go back to it with ``error``, the
    ``state`` echoed and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207 §2)."""
    response = client.get("/authorize", query_string=authorize_params(**overrides))
    assert_error_redirect(response, error)


def test_d01_error_redirect_without_state_has_no_state(client, rp):
    """D01: no ``state`` sent, none returned; ``iss`` still is."""
    response = client.get("/authorize", query_string=authorize_params(
        response_type="token", state=None))
    assert_error_redirect(response, "unsupported_response_type", state=None)


def test_d01_unknown_scopes_are_never_granted(app, client, rp):
    """D01: scopes the provider does not know (or the client may not have) are dropped; the
    token carries only the known ones (RFC 6749 §3.3)."""
    _, secret = rp
    code, _ = get_code(client, app, scope="openid admin superuser profile")
    response = exchange(client, code, secret)
    assert response.status_code == 200, response.text
    assert set(response.json["scope"].split()) == {"openid", "profile"}


def test_d01_client_scope_limits_granted_scope(app, client):
    """D01: a client registered for fewer scopes never gets more than it is registered for."""
    make_account()
    _, secret = make_client(scope="openid profile")
    code, _ = get_code(client, app, scope="openid profile phone roles")
    response = exchange(client, code, secret)
    assert response.status_code == 200, response.text
    assert set(response.json["scope"].split()) == {"openid", "profile"}


# --- successful responses ----------------------------------------------------------------------

@pytest.mark.parametrize("state", ["st-123", "x" * 200, None], ids=["state", "long", "none"])
def test_d01_success_response_has_code_state_and_iss(app, client, rp, state):
    """D01: the authorization response is code + state + iss=http://localhost (RFC 9207)."""
    logged_in(client, app)
    response = client.get("/authorize", query_string=authorize_params(state=state))
    assert_code_redirect(response, state=state)


def test_d01_success_after_login_has_code_state_and_iss(app, client, rp):
    """D01: the response after the login pages (the resumed request) has iss and state too."""
    interaction = as_login_redirect(client.get("/authorize", query_string=authorize_params()))
    done = login(client, app, interaction=interaction)
    assert done.status_code == 303 and done.location == f"/authorize/resume/{interaction}"
    assert_code_redirect(client.get(done.location))


# --- PKCE --------------------------------------------------------------------------------------

@pytest.fixture
def spa(app: Any) -> Any:
    make_account()
    client, secret = make_client(client_id="spa", public=True)
    assert secret is None and client.is_public
    return client


def test_d01_public_client_without_code_challenge_is_refused(client, spa):
    """D01: a public client must use PKCE (RFC 9700 §2.1.1): no challenge, an error redirect."""
    response = client.get("/authorize", query_string=authorize_params("spa"))
    params = assert_error_redirect(response, "invalid_request")
    assert "PKCE" in params["error_description"][0]


def test_d01_public_client_s256_end_to_end(app, client, spa):
    """D01: public client + S256: code exchanged at /token with the verifier and no secret."""
    verifier, challenge = pkce_pair()
    code, params = get_code(client, app, client_id="spa", code_challenge=challenge,
                            code_challenge_method="S256")
    response = exchange(client, code, client_id="spa", code_verifier=verifier)
    assert response.status_code == 200, response.text
    body = response.json
    assert body["access_token"] and body["id_token"]
    keys = KeySet.import_key_set(client.get("/jwks.json").json)
    claims = jwt.decode(body["id_token"], keys).claims
    assert claims["aud"] == "spa" and claims["nonce"] == params["nonce"]


def test_d01_public_client_code_needs_verifier(app, client, spa):
    """D01: a public client's code is useless without the verifier."""
    _, challenge = pkce_pair()
    code, _ = get_code(client, app, client_id="spa", code_challenge=challenge,
                       code_challenge_method="S256")
    response = exchange(client, code, client_id="spa")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


PKCE_TOKEN_CASES = {
    # (send a challenge?, verifier to send: None | "right" | "wrong" | literal, expected error)
    "verifier-without-challenge": (False, "right", "invalid_request"),
    "wrong-verifier": (True, "wrong", "invalid_grant"),
    "missing-verifier": (True, None, "invalid_request"),
    "malformed-verifier": (True, "short", "invalid_request"),
}


@pytest.mark.parametrize(("with_challenge", "verifier_kind", "error"),
                         PKCE_TOKEN_CASES.values(), ids=PKCE_TOKEN_CASES.keys())
def test_d01_pkce_enforced_at_token_endpoint(app, client, rp, with_challenge, verifier_kind,
                                              error):
    """D01: a challenge, once sent, is enforced even for confidential clients; a verifier
    without a challenge is refused (RFC 9700 §4.8); a wrong verifier is invalid_grant."""
    _, secret = rp
    verifier, challenge = pkce_pair()
    extra = {"code_challenge": challenge, "code_challenge_method": "S256"} if with_challenge \
        else {}
    code, _ = get_code(client, app, **extra)
    sent = {"right": verifier, "wrong": pkce_pair()[0], None: None}.get(verifier_kind,
                                                                       verifier_kind)
    response = exchange(client, code, secret, **({"code_verifier": sent} if sent else {}))
    assert response.status_code == 400, response.text
    assert response.json["error"] == error
    assert "access_token" not in response.json


def test_d01_confidential_client_with_challenge_and_verifier_works(app, client, rp):
    """D01: the positive counterpart of the cases above."""
    _, secret = rp
    verifier, challenge = pkce_pair()
    code, _ = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    response = exchange(client, code, secret, code_verifier=verifier)
    assert response.status_code == 200, response.text


# --- prompt ------------------------------------------------------------------------------------

def test_d01_prompt_none_without_session_is_login_required(client, rp):
    """D01: prompt=none and nobody logged in → error=login_required at the client, with iss
    and state; no login page (OIDC Core §3.1.2.6)."""
    response = client.get("/authorize", query_string=authorize_params(prompt="none"))
    assert_error_redirect(response, "login_required")


def test_d01_prompt_none_with_session_issues_code(app, client, rp):
    """D01: prompt=none with a session → a code at once, no login page."""
    logged_in(client, app)
    response = client.get("/authorize", query_string=authorize_params(prompt="none"))
    assert_code_redirect(response)


def test_d01_prompt_none_with_too_old_login_is_login_required(app, client, rp):
    """D01: prompt=none cannot satisfy max_age by showing a login: login_required."""
    logged_in(client, app)
    backdate_login(client, 600)
    response = client.get("/authorize", query_string=authorize_params(prompt="none",
                                                                      max_age="60"))
    assert_error_redirect(response, "login_required")


def test_d01_prompt_login_with_session_forces_login_without_loop(app, client, rp):
    """D01: prompt=login sends a logged-in user to the login page; after logging in again the
    resumed request gets a code and does not bounce back to login."""
    logged_in(client, app)
    backdate_login(client, 5)
    response = client.get("/authorize", query_string=authorize_params(prompt="login"))
    interaction = as_login_redirect(response)
    done = login_again(client, app, interaction)
    assert done.status_code == 303
    assert done.location == f"/authorize/resume/{interaction}"
    assert_code_redirect(client.get(done.location))


def test_d01_prompt_login_right_after_a_login_still_forces_login(app, client, rp):
    """D01: prompt=login asks for a new login even when the session's login happened moments
    (in the same second) before the request."""
    logged_in(client, app)
    with client.session_transaction() as session:
        session["auth_time"] = int(time.time())  # as a login completing this second writes it
    response = client.get("/authorize", query_string=authorize_params(prompt="login"))
    as_login_redirect(response)


# --- max_age -----------------------------------------------------------------------------------

def test_d01_large_max_age_needs_no_new_login(app, client, rp):
    """D01: a login younger than max_age is enough."""
    logged_in(client, app)
    backdate_login(client, 30)
    assert_code_redirect(client.get("/authorize", query_string=authorize_params(
        max_age="3600")))


@pytest.mark.parametrize("max_age", ["0", "10"])
def test_d01_max_age_older_login_forces_login_without_loop(app, client, rp, max_age):
    """D01: a login older than max_age forces a new login (OIDC Core §3.1.2.1); after it the
    resumed request gets a code: the new login satisfies max_age, no loop."""
    logged_in(client, app)
    backdate_login(client, 30)
    response = client.get("/authorize", query_string=authorize_params(max_age=max_age))
    interaction = as_login_redirect(response)
    done = login_again(client, app, interaction)
    assert done.status_code == 303
    assert done.location == f"/authorize/resume/{interaction}"
    code = assert_code_redirect(client.get(done.location))
    _, secret = rp
    tokens = exchange(client, code, secret)
    assert tokens.status_code == 200, tokens.text
    keys = KeySet.import_key_set(client.get("/jwks.json").json)
    claims = jwt.decode(tokens.json["id_token"], keys).claims
    assert claims["auth_time"] >= int(time.time()) - 5  # the new login, not the old one


# --- login_hint --------------------------------------------------------------------------------

PHONE_INPUT_RE = re.compile(r'<input[^>]*\bname="phone"[^>]*>')


def phone_value(html: str) -> str:
    tag = PHONE_INPUT_RE.search(html)
    assert tag, "no phone field"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return value.group(1) if value else ""


@pytest.mark.parametrize("hint", ["13912345678", "+86 139-1234-5678"])
def test_d01_login_hint_prefills_phone(client, rp, hint):
    """D01: login_hint with a phone number fills the 「手机号码」 field of the login page."""
    response = client.get("/authorize", query_string=authorize_params(login_hint=hint))
    as_login_redirect(response)
    page = client.get(response.location)
    assert page.status_code == 200
    assert phone_value(page.text) == PHONE


@pytest.mark.parametrize("hint", [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "13912345678\"><svg onload=alert(1)>",
    "1' OR '1'='1",
    "1" * 5000,
    "测" * 2000,
], ids=["script", "attr-break", "phone-then-html", "sql", "long-digits", "long-cjk"])
def test_d01_hostile_login_hint_is_not_reflected(client, rp, hint):
    """D01: a hostile login_hint never reaches the page unescaped, and is not pre-filled."""
    response = client.get("/authorize", query_string=authorize_params(login_hint=hint))
    as_login_redirect(response)
    page = client.get(response.location)
    assert page.status_code == 200
    assert hint not in page.text
    assert "onerror=alert" not in page.text and "<svg" not in page.text
    assert "<script>alert" not in page.text
    assert phone_value(page.text) == ""


# --- nonce replay ------------------------------------------------------------------------------

def test_d01_nonce_replay_is_refused(app, client, rp):
    """D01: a nonce that already produced a code for this client is a replay (OIDC Core
    §3.1.2.1): error redirect; the same nonce for another client is fine."""
    make_client(client_id="rp2")
    get_code(client, app, nonce="nonce-once")
    again = client.get("/authorize", query_string=authorize_params(nonce="nonce-once"))
    assert_error_redirect(again, "invalid_request")
    other = client.get("/authorize", query_string=authorize_params("rp2", nonce="nonce-once"))
    assert_code_redirect(other)


# --- resume ------------------------------------------------------------------------------------

@pytest.mark.parametrize("uid", [
    "unknown", "A" * 16, "A" * 300, "' OR 1=1 --", "%3Cscript%3Ealert(1)",
], ids=["short", "well-formed", "long", "sql", "html"])
def test_d01_unknown_resume_id_gets_error_page(client, rp, uid):
    """D01: /authorize/resume/<unknown> → a 400 page, nothing else."""
    client.get("/authorize", query_string=authorize_params())  # a real pending one exists
    response = client.get(f"/authorize/resume/{uid}")
    assert_error_page(response)
    assert "<script>alert" not in response.text


def test_d01_resume_id_is_single_use(app, client, rp):
    """D01: a resume id works once; the second use is an error page, not a second code."""
    interaction = as_login_redirect(client.get("/authorize", query_string=authorize_params()))
    done = login(client, app, interaction=interaction)
    assert_code_redirect(client.get(done.location))
    assert_error_page(client.get(done.location))


def test_d01_resume_id_belongs_to_its_browser(app, client, rp):
    """D01: a resume id is bound to the session that started it; another browser gets 400."""
    interaction = as_login_redirect(client.get("/authorize", query_string=authorize_params()))
    other = app.test_client()
    assert_error_page(other.get(f"/authorize/resume/{interaction}"))


# --- POST /authorize ---------------------------------------------------------------------------

def post_as_get(client, data):
    """A POSTed authorization request is answered 303 with the same request as a GET (the
    SameSite=Lax session cookie travels only on the GET); follow it like a browser."""
    response = client.post("/authorize", data=data)
    assert response.status_code == 303
    assert urlsplit(response.location).path == "/authorize"
    assert query(response.location) == {k: v for k, v in data.items()}
    return client.get(response.location)


def test_d01_post_authorize_works_like_get(app, client, rp):
    """D01: OIDC Core §3.1.2.1: the authorization request may be a form POST."""
    _, secret = rp
    response = post_as_get(client, authorize_params())
    interaction = as_login_redirect(response)
    done = login(client, app, interaction=interaction)
    code = assert_code_redirect(client.get(done.location))
    assert exchange(client, code, secret).status_code == 200
    again = post_as_get(client, authorize_params())
    assert_code_redirect(again)


@pytest.mark.parametrize(("overrides", "expect"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"prompt": "none"}, "login_required"),
    ({"redirect_uri": "https://evil.example.com/callback"}, None),
], ids=["redirected-error", "login-required", "bad-redirect-uri"])
def test_d01_post_authorize_errors_like_get(client, rp, overrides, expect):
    """D01: a POSTed request gets the same error handling as a GET one."""
    response = post_as_get(client, authorize_params(**overrides))
    if expect is None:
        assert_error_page(response)
    else:
        assert_error_redirect(response, expect)


# --- disabled client ---------------------------------------------------------------------------

@pytest.mark.parametrize("with_session", [False, True], ids=["anonymous", "logged-in"])
def test_d01_disabled_client_gets_error_page(app, client, rp, with_session):
    """D01: a disabled client can start no authorization: an error page, no redirect."""
    if with_session:
        logged_in(client, app)
    rp_client, _ = rp
    rp_client.enabled = False
    db.session.commit()
    assert_error_page(client.get("/authorize", query_string=authorize_params()))
    assert_error_page(client.get("/authorize", query_string=authorize_params(prompt="none")))
