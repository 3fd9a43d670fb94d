"""The shared relying-party client against a fake provider whose keys the test holds:
ID-token validation (D08), third-party login's ``iss`` check, the authorization response's
``iss`` (RFC 9207), and Back-Channel Logout 1.0 (D07)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from relying_parties.common.app import rp_state
from relying_parties.common.models import LocalSession, utcnow
from relying_parties.common.oidc import BACKCHANNEL_EVENT, TokenError, half_hash
from relying_parties.common.settings import RPSettings
from relying_parties.repair_fund import create_app
from tests.unit.relying_parties.fakeop import FakeOP, running

CLIENT_ID = "repair_fund"


@pytest.fixture()
def op() -> Iterator[FakeOP]:
    with running(FakeOP()) as fake:
        yield fake


@pytest.fixture()
def rp(op: FakeOP, tmp_path: Path) -> Flask:
    settings = RPSettings(issuer=op.issuer, client_id=CLIENT_ID, client_secret="s" * 32,
                          base_url="http://127.0.0.1:9", secret_key="k" * 32,
                          database_url=f"sqlite:///{tmp_path / 'rp.sqlite3'}")
    return create_app(settings, testing=True)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    return f"{_b64(header or {'alg': 'none'})}.{_b64(claims)}."


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    return f"{head}.{_b64(claims)}.{sig}"


# --- ID tokens --------------------------------------------------------------------------------

def test_d08_valid_id_token_accepted_with_at_hash(rp: Flask, op: FakeOP) -> None:
    """D08: keys and issuer come from discovery; a good token passes every check."""
    provider = rp_state_of(rp).provider
    token = op.sign(op.id_claims(CLIENT_ID, "n1", at_hash=half_hash("access-1")))
    claims = provider.validate_id_token(token, nonce="n1", access_token="access-1")
    assert claims["sub"] == "acct-1"


def rp_state_of(app: Flask) -> Any:
    with app.app_context():
        return rp_state()


def _bad_id_tokens(op: FakeOP) -> dict[str, str]:
    now = int(time.time())
    good = op.id_claims(CLIENT_ID, "n1", at_hash=half_hash("access-1"))
    other = ECKey.generate_key("P-256", parameters={"kid": str(op.keys[-1].kid)})
    hmac_key = OctKey.import_key(json.dumps(op.keys[-1].as_dict(private=False)).encode())
    return {
        "tampered": _tamper(op.sign(good)),
        "wrong_nonce": op.sign({**good, "nonce": "n2"}),
        "no_nonce": op.sign({k: v for k, v in good.items() if k != "nonce"}),
        "wrong_iss": op.sign({**good, "iss": "https://evil.example"}),
        "wrong_aud": op.sign({**good, "aud": "supervision"}),
        "wrong_azp": op.sign({**good, "aud": [CLIENT_ID, "x"], "azp": "x"}),
        "multi_aud_no_azp": op.sign({**good, "aud": [CLIENT_ID, "x"]}),
        "expired": op.sign({**good, "exp": now - 3600, "iat": now - 7200}),
        "future_iat": op.sign({**good, "iat": now + 3600}),
        "wrong_at_hash": op.sign({**good, "at_hash": half_hash("other")}),
        "other_key_same_kid": op.sign(good, key=other),
        "alg_none": _unsigned(good),
        "hs256_confusion": jwt.encode({"alg": "HS256", "kid": op.keys[-1].kid}, good, hmac_key,
                                      algorithms=["HS256"]),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("case", [
    "tampered", "wrong_nonce", "no_nonce", "wrong_iss", "wrong_aud", "wrong_azp",
    "multi_aud_no_azp", "expired", "future_iat", "wrong_at_hash", "other_key_same_kid",
    "alg_none", "hs256_confusion", "garbage",
])
def test_d08_bad_id_token_rejected(rp: Flask, op: FakeOP, case: str) -> None:
    """D08: OIDC Core §3.1.3.7 — each broken token fails validation."""
    token = _bad_id_tokens(op)[case]
    with pytest.raises(TokenError):
        rp_state_of(rp).provider.validate_id_token(token, nonce="n1", access_token="access-1")


def test_d08_unknown_kid_refetches_jwks_once(rp: Flask, op: FakeOP) -> None:
    """D08: a rotated key is found by one refetch of the JWKS; an unknown one is refused."""
    provider = rp_state_of(rp).provider
    provider.validate_id_token(op.sign(op.id_claims(CLIENT_ID, "n")), nonce="n",
                               access_token=None)
    hits = op.jwks_hits
    op.new_key()  # rotation
    provider.validate_id_token(op.sign(op.id_claims(CLIENT_ID, "n")), nonce="n",
                               access_token=None)
    assert op.jwks_hits == hits + 1
    stranger = ECKey.generate_key("P-256", parameters={"kid": "stranger"})
    with pytest.raises(TokenError):
        provider.validate_id_token(op.sign(op.id_claims(CLIENT_ID, "n"), key=stranger),
                                   nonce="n", access_token=None)
    assert op.jwks_hits == hits + 2


# --- login and callback -----------------------------------------------------------------------

def test_d08_login_starts_pkce_request_from_discovery(rp: Flask, op: FakeOP) -> None:
    """D08/D07: /auth/login (and the initiate_login_uri with the right iss) redirects to the
    discovered authorization endpoint with PKCE S256, state and nonce."""
    client = rp.test_client()
    for query in ("", f"?iss={op.issuer}"):
        response = client.get("/auth/login" + query)
        assert response.status_code == 303
        location = response.headers["Location"]
        assert location.startswith(op.issuer + "/authorize?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["code_challenge_method"] == "S256" and params["code_challenge"]
        assert params["state"] and params["nonce"] and params["client_id"] == CLIENT_ID
        assert params["redirect_uri"] == "http://127.0.0.1:9/auth/callback"
        assert "openid" in params["scope"].split()


@pytest.mark.parametrize("iss", ["https://evil.example", "", "http://127.0.0.1:1"])
def test_d07_initiate_login_with_wrong_iss_refused(rp: Flask, iss: str) -> None:
    """D07 (OIDC Core §4): a third-party initiated login from another issuer starts nothing."""
    response = rp.test_client().get("/auth/login", query_string={"iss": iss})
    assert response.status_code == 400
    assert "未知的认证平台" in response.get_data(as_text=True)


def _pending_state(client: FlaskClient) -> str:
    location = client.get("/auth/login").headers["Location"]
    return parse_qs(urlsplit(location).query)["state"][0]


@pytest.mark.parametrize("iss", [None, "https://evil.example"])
def test_d08_callback_checks_rfc9207_iss(rp: Flask, op: FakeOP, iss: str | None) -> None:
    """RFC 9207 §2.4: a response without the issuer (when the provider promises it) or from
    another issuer is refused before the code is used (mix-up attacks)."""
    client = rp.test_client()
    state = _pending_state(client)
    query = {"code": "c", "state": state} | ({"iss": iss} if iss else {})
    response = client.get("/auth/callback", query_string=query)
    assert response.status_code == 400
    assert "未知的认证平台" in response.get_data(as_text=True)


@pytest.mark.parametrize(("target", "kept"), [
    ("http://127.0.0.1:9/reports?id=1", True),
    ("https://evil.example/phish", False),
    ("http://127.0.0.1:9.evil.example/", False),
    ("//evil.example/", False),
    ("http://127.0.0.1:9/" + "a" * 3000, False),
])
def test_d07_target_link_uri_only_to_own_pages(rp: Flask, op: FakeOP, target: str,
                                               kept: bool) -> None:
    """D07 (OIDC Core §4): the third party's target_link_uri is remembered for after the login
    only when it points into this relying party (no open redirector)."""
    client = rp.test_client()
    client.get("/auth/login", query_string={"iss": op.issuer, "target_link_uri": target})
    with client.session_transaction() as session:
        (pending,) = session["pending"].values()
    assert pending["next"] == (target if kept else None)


def test_d08_callback_with_unknown_state_refused(rp: Flask, op: FakeOP) -> None:
    client = rp.test_client()
    _pending_state(client)
    response = client.get("/auth/callback",
                          query_string={"code": "c", "state": "forged", "iss": op.issuer})
    assert response.status_code == 400
    assert "登录请求已失效" in response.get_data(as_text=True)


# --- back-channel logout ----------------------------------------------------------------------

def _add_session(app: Flask, sub: str = "acct-1", sid: str | None = "sid-1") -> str:
    row_id = uuid.uuid4().hex
    with app.app_context(), rp_state().sessions() as db:
        db.add(LocalSession(id=row_id, sub=sub, sid=sid, id_token="x", roles="", amr="",
                            expires_at=utcnow() + timedelta(hours=1)))
        db.commit()
    return row_id


def _session_ids(app: Flask) -> set[str]:
    with app.app_context(), rp_state().sessions() as db:
        return set(db.scalars(sa.select(LocalSession.id)))


def test_d07_backchannel_logout_ends_sessions_of_the_sid(rp: Flask, op: FakeOP) -> None:
    """D07 (Back-Channel Logout §2.7–§2.8): the sessions of that sid end, others stay;
    200 with Cache-Control: no-store; the same jti again is a replay (400)."""
    ended = _add_session(rp)
    kept = _add_session(rp, sid="sid-2")
    other = _add_session(rp, sub="acct-2", sid="sid-3")
    token = op.sign_logout(op.logout_claims(CLIENT_ID))
    response = rp.test_client().post("/auth/backchannel-logout", data={"logout_token": token})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert _session_ids(rp) == {kept, other}
    assert ended not in _session_ids(rp)
    replay = rp.test_client().post("/auth/backchannel-logout", data={"logout_token": token})
    assert replay.status_code == 400 and replay.headers["Cache-Control"] == "no-store"


def test_d07_backchannel_logout_by_sub_ends_all_of_the_sub(rp: Flask, op: FakeOP) -> None:
    """D07: without sid, every session of the subject ends."""
    _add_session(rp)
    _add_session(rp, sid="sid-2")
    other = _add_session(rp, sub="acct-2", sid="sid-3")
    claims = op.logout_claims(CLIENT_ID)
    del claims["sid"]
    response = rp.test_client().post("/auth/backchannel-logout",
                                     data={"logout_token": op.sign_logout(claims)})
    assert response.status_code == 200
    assert _session_ids(rp) == {other}


def _bad_logout_tokens(op: FakeOP) -> dict[str, str]:
    good = op.logout_claims(CLIENT_ID)
    now = int(time.time())
    stranger = ECKey.generate_key("P-256", parameters={"kid": str(op.keys[-1].kid)})
    return {
        "nonce": op.sign_logout({**good, "nonce": "n"}),
        "wrong_aud": op.sign_logout({**good, "aud": "supervision"}),
        "wrong_iss": op.sign_logout({**good, "iss": "https://evil.example"}),
        "alg_none": _unsigned(good),
        "unsigned_es256_header": _unsigned(good, {"alg": "ES256", "kid": op.keys[-1].kid}),
        "tampered": _tamper(op.sign_logout(good)),
        "other_key": op.sign_logout(good, key=stranger),
        "expired": op.sign_logout({**good, "iat": now - 3600, "exp": now - 3000}),
        "future_iat": op.sign_logout({**good, "iat": now + 3600, "exp": now + 3720}),
        "no_events": op.sign_logout({k: v for k, v in good.items() if k != "events"}),
        "wrong_event": op.sign_logout({**good, "events": {"http://example/other": {}}}),
        "event_not_object": op.sign_logout({**good, "events": {BACKCHANNEL_EVENT: "yes"}}),
        "no_sid_no_sub": op.sign_logout({k: v for k, v in good.items() if k not in ("sid", "sub")}),
        "no_jti": op.sign_logout({k: v for k, v in good.items() if k != "jti"}),
        "wrong_typ": op.sign(good, header={"typ": "JWT"}),
        "id_token": op.sign(op.id_claims(CLIENT_ID, "n")),
        "empty": "",
        "garbage": "x" * 50,
        "overlong": "a" * 9000,
    }


@pytest.mark.parametrize("case", [
    "nonce", "wrong_aud", "wrong_iss", "alg_none", "unsigned_es256_header", "tampered",
    "other_key", "expired", "future_iat", "no_events", "wrong_event", "event_not_object",
    "no_sid_no_sub", "no_jti", "wrong_typ", "id_token", "empty", "garbage", "overlong",
])
def test_d07_invalid_logout_token_rejected(rp: Flask, op: FakeOP, case: str) -> None:
    """D07 (Back-Channel Logout §2.6): any invalid logout token → 400, no session ends."""
    before = {_add_session(rp)}
    response = rp.test_client().post("/auth/backchannel-logout",
                                     data={"logout_token": _bad_logout_tokens(op)[case]})
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert _session_ids(rp) == before


def test_d07_backchannel_logout_is_post_only(rp: Flask) -> None:
    assert rp.test_client().get("/auth/backchannel-logout").status_code == 405


def test_d05_home_page_logged_out_offers_login(rp: Flask) -> None:
    """D05: the relying party's home page without a session invites a login."""
    page = rp.test_client().get("/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "上海市商品住房维修资金管理系统" in text and "/auth/login" in text


@pytest.mark.parametrize("token", ["", "forged", "<script>", "x" * 5000])
def test_d07_logout_without_valid_form_token_ends_nothing(rp: Flask, token: str) -> None:
    """D07: a cross-site POST cannot log the user out (form token), and nothing ends."""
    client = rp.test_client()
    row = _add_session(rp)
    with client.session_transaction() as session:
        session["lsid"] = row
        session["csrf"] = "right-token"
    response = client.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 400
    assert _session_ids(rp) == {row}


def test_d07_logout_ends_local_session_and_goes_to_provider(rp: Flask, op: FakeOP) -> None:
    """D07 (RP-Initiated Logout §2): local row gone, then the provider's end_session_endpoint
    with id_token_hint, post_logout_redirect_uri and client_id."""
    client = rp.test_client()
    row = _add_session(rp)
    with client.session_transaction() as session:
        session["lsid"] = row
        session["csrf"] = "right-token"
    response = client.post("/auth/logout", data={"csrf_token": "right-token"})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(op.issuer + "/logout?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params == {"id_token_hint": "x", "client_id": CLIENT_ID,
                      "post_logout_redirect_uri": "http://127.0.0.1:9/"}
    assert _session_ids(rp) == set()
    assert "您尚未登录" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("query", [
    {},
    {"state": ""},
    {"code": "c"},
    {"state": "s" * 5000, "code": "c"},
    {"error": "access_denied"},
    {"code": "<script>", "state": "<script>", "iss": "<script>"},
])
def test_d08_callback_bad_input_is_a_page_not_a_500(rp: Flask, query: dict[str, str]) -> None:
    """D08: any malformed authorization response is a 400 page; no local session appears."""
    client = rp.test_client()
    _pending_state(client)
    response = client.get("/auth/callback", query_string=query)
    assert response.status_code == 400
    assert "<script>" not in response.get_data(as_text=True)
    assert _session_ids(rp) == set()


def test_d08_callback_with_provider_error_shows_it(rp: Flask, op: FakeOP) -> None:
    """An error response from the right issuer (e.g. no identity on this platform) is shown."""
    client = rp.test_client()
    state = _pending_state(client)
    response = client.get("/auth/callback", query_string={
        "error": "access_denied", "state": state, "iss": op.issuer})
    assert response.status_code == 400
    assert "登录未完成：access_denied" in response.get_data(as_text=True)
    assert _session_ids(rp) == set()


def test_d07_jti_remembered_as_long_as_the_token_could_pass(rp: Flask, op: FakeOP) -> None:
    """D07 (§2.6 step 9): a logout token valid for an hour is refused as a replay for an hour."""
    from relying_parties.common.models import SeenLogoutToken

    now = int(time.time())
    claims = op.logout_claims(CLIENT_ID, exp=now + 3600)
    response = rp.test_client().post("/auth/backchannel-logout",
                                     data={"logout_token": op.sign_logout(claims)})
    assert response.status_code == 200
    with rp.app_context(), rp_state().sessions() as db:
        seen = db.get(SeenLogoutToken, claims["jti"])
        assert seen is not None and seen.expires_at > utcnow() + timedelta(seconds=3500)


@pytest.mark.parametrize(("prompt", "sent"), [
    ("select_account", "select_account"),
    ("none", None),
    ("login", None),
    ("consent select_account", None),
    ("<script>", None),
    ("", None),
])
def test_s09_switch_identity_asks_provider_with_select_account_only(
        rp: Flask, op: FakeOP, prompt: str, sent: str | None) -> None:
    """S09/S18: 「切换身份」 starts a login with ``prompt=select_account`` (the provider shows
    「选择登录身份」 again); any other ``prompt`` a link may carry is dropped, so a crafted link
    cannot turn the relying party's login into ``prompt=none`` or a forced re-login."""
    response = rp.test_client().get("/auth/login", query_string={"prompt": prompt})
    assert response.status_code == 303
    params = parse_qs(urlsplit(response.headers["Location"]).query)
    assert params.get("prompt") == ([sent] if sent else None)


def test_s09_logged_in_home_offers_switch_identity_and_logout(rp: Flask) -> None:
    """S09: the logged-in page links 「切换身份」 to a select_account login and keeps 【退出】."""
    client = rp.test_client()
    row = _add_session(rp)
    with client.session_transaction() as session:
        session["lsid"] = row
    text = client.get("/").get_data(as_text=True)
    assert 'href="/auth/login?prompt=select_account">切换身份</a>' in text
    assert ">退出</button>" in text


def test_d05_pages_styled_by_own_stylesheet_under_csp(rp: Flask) -> None:
    """D05: the pages link /rp.css, which is served as CSS from the relying party itself, so
    ``default-src 'self'`` (no inline styles) still leaves them styled."""
    client = rp.test_client()
    page = client.get("/")
    assert page.headers["Content-Security-Policy"] == "default-src 'self'"
    assert 'href="/rp.css"' in page.get_data(as_text=True)
    css = client.get("/rp.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert ".banner" in css.get_data(as_text=True)
