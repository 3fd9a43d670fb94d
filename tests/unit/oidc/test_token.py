"""The token endpoint (D01): client authentication, codes, refresh rotation, client credentials.

RFC 6749 §3.2.1/§5.2, RFC 7523 (private_key_jwt), RFC 9700 §4.2.4 (code reuse) and §4.14.2
(refresh-token rotation and reuse detection).
"""

from __future__ import annotations

import base64
import secrets
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from werkzeug.datastructures import MultiDict

from idp.accounts.models import Account
from idp.audit import AuditEvent
from idp.db import utcnow
from idp.extensions import db
from idp.oidc.models import AuthorizationCode, Client, Token
from idp.security import token_hash
from tests.factories import (
    REDIRECT,
    basic,
    code_tokens,
    exchange,
    get_code,
    make_account,
    make_client,
    pkce_pair,
    setup_rp,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = "http://localhost/token"

# Keys of the private_key_jwt client, made once per module (RSA generation is slow).
EC_KEY = ECKey.generate_key("P-256", auto_kid=True)
RSA_KEY = RSAKey.generate_key(2048, auto_kid=True)
OTHER_EC_KEY = ECKey.generate_key("P-256", auto_kid=True)
PKJWT_JWKS = {"keys": [EC_KEY.as_dict(private=False), RSA_KEY.as_dict(private=False)]}


# --- helpers -------------------------------------------------------------------------------------


def refresh(client: FlaskClient, refresh_token: str, secret: str, client_id: str = "rp1",
            **extra: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    data.update(extra)
    return client.post("/token", data=data, headers=basic(client_id, secret))


def userinfo_status(client: FlaskClient, access_token: str) -> int:
    return client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"}).status_code


def audit_events(name: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == name)))


def assert_error(response: Any, error: str, statuses: tuple[int, ...] = (400,)) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.is_json, response.text
    assert response.json["error"] == error, response.json


def make_assertion(key: ECKey | RSAKey, client_id: str = "rpk", *, aud: Any = TOKEN_URL,
                   exp_in: int = 120, jti: str | None = None, kid: str | None = None,
                   **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + exp_in,
        "jti": jti or secrets.token_hex(16),
    }
    payload.update(claims)
    alg = "ES256" if isinstance(key, ECKey) else "RS256"
    return jwt.encode({"alg": alg, "kid": kid or key.kid}, payload, key, algorithms=[alg])


def setup_pkjwt(client_id: str = "rpk") -> None:
    make_account()
    _rp, secret = make_client(client_id=client_id, auth_method="private_key_jwt",
                              jwks=PKJWT_JWKS)
    assert secret is None


def pkjwt_post(client: FlaskClient, assertion: str, **data: str) -> Any:
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    form.update(data)
    return client.post("/token", data=form)


# --- client authentication -----------------------------------------------------------------------

def test_d01_client_secret_basic_authenticates(app, client):
    """D01: client_secret_basic (RFC 6749 §2.3.1) is accepted."""
    secret = setup_rp()
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic("rp1", secret))
    assert response.status_code == 200, response.text
    assert response.json["access_token"]


def test_d01_client_secret_post_authenticates(app, client):
    """D01: client_secret_post is accepted, for the code grant too."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": "rp1", "client_secret": secret,
    })
    assert response.status_code == 200, response.text
    assert response.json["id_token"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


BAD_CLIENT_AUTH = {
    "wrong-secret-basic": lambda s, o: ({"Authorization": f"Basic {_b64(b'rp1:' + b'x' * 43)}"},
                                        {}),
    "wrong-secret-post": lambda s, o: ({}, {"client_id": "rp1", "client_secret": "x" * 43}),
    "unknown-client-basic": lambda s, o: ({"Authorization": "Basic "
                                           + _b64(f"nobody:{s}".encode())}, {}),
    "unknown-client-post": lambda s, o: ({}, {"client_id": "nobody", "client_secret": s}),
    "missing-secret-basic": lambda s, o: ({"Authorization": f"Basic {_b64(b'rp1:')}"}, {}),
    "missing-secret-post": lambda s, o: ({}, {"client_id": "rp1"}),
    "empty-secret-post": lambda s, o: ({}, {"client_id": "rp1", "client_secret": ""}),
    "other-clients-secret-basic": lambda s, o: ({"Authorization": "Basic "
                                                 + _b64(f"rp1:{o}".encode())}, {}),
    "other-clients-secret-post": lambda s, o: ({}, {"client_id": "rp1", "client_secret": o}),
    "no-credentials": lambda s, o: ({}, {}),
    "basic-not-base64": lambda s, o: ({"Authorization": "Basic !!!not-base64!!!"}, {}),
    "basic-no-colon": lambda s, o: ({"Authorization": f"Basic {_b64(b'rp1')}"}, {}),
    "basic-sql-client-id": lambda s, o: ({"Authorization": "Basic "
                                          + _b64(f"rp1' OR '1'='1:{s}".encode())}, {}),
    "post-huge-client-id": lambda s, o: ({}, {"client_id": "a" * 5000, "client_secret": s}),
    "bearer-instead-of-basic": lambda s, o: ({"Authorization": f"Bearer {s}"}, {}),
}


@pytest.mark.parametrize("grant", ["client_credentials", "authorization_code", "refresh_token"])
@pytest.mark.parametrize("case", sorted(BAD_CLIENT_AUTH))
def test_d01_bad_client_authentication_is_invalid_client(app, client, case, grant):
    """D01: wrong, unknown, missing or borrowed credentials → invalid_client JSON, never 500."""
    secret = setup_rp()
    _rp2, other = make_client(client_id="rp2")
    headers, form = BAD_CLIENT_AUTH[case](secret, other)
    data = {"grant_type": grant, "code": "x" * 43, "redirect_uri": REDIRECT,
            "refresh_token": "y" * 43}
    data.update(form)
    response = client.post("/token", data=data, headers=headers)
    assert_error(response, "invalid_client", (400, 401))
    assert response.headers["Cache-Control"] == "no-store"
    assert not audit_events("token.issued")


@pytest.mark.parametrize("header", [
    "Basic " + _b64(b"rp1:\xff\xfe"), "Basic " + _b64(b"\xff:\xfe"), "Basic",
    "Basic \xa0",  # gunicorn keeps the NBSP; Authlib's split() then finds one part
    "Basic " + "A" * 5000, "Basic " + _b64(b"rp1:" + b"x" * 4000),
], ids=["non-utf8-secret", "non-utf8-both", "no-credentials", "nbsp", "huge-garbage",
        "huge-secret"])
def test_d01_malformed_basic_header_is_a_json_error(app, client, header):
    """D01: undecodable or oversized Basic credentials → invalid_client/invalid_request, no 500."""
    setup_rp()
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": header})
    assert response.status_code in (400, 401), response.text
    assert response.is_json
    assert response.json["error"] in {"invalid_client", "invalid_request"}
    assert not audit_events("token.issued")


def test_d01_client_secret_stored_hashed(app):
    """D01: client secrets are stored as sha256$… hashes, never in clear."""
    secret = setup_rp()
    row = db.session.get(Client, "rp1")
    assert row is not None and row.secret_hash is not None
    assert row.secret_hash.startswith("sha256$")
    assert secret not in row.secret_hash
    assert row.secret_hash == "sha256$" + token_hash(secret)


def test_d01_disabled_client_cannot_authenticate(app, client):
    """D01: a disabled client is an unknown client."""
    secret = setup_rp()
    row = db.session.get(Client, "rp1")
    assert row is not None
    row.enabled = False
    db.session.commit()
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic("rp1", secret))
    assert_error(response, "invalid_client", (401,))


# --- private_key_jwt ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [EC_KEY, RSA_KEY], ids=["ES256", "RS256"])
@pytest.mark.parametrize("aud", [TOKEN_URL, "http://localhost", [TOKEN_URL, "https://x.example"]],
                         ids=["token-url", "issuer", "list"])
def test_d01_private_key_jwt_client_credentials(app, client, key, aud):
    """D01: private_key_jwt (RFC 7523 §2.2) authenticates a client_credentials request."""
    setup_pkjwt()
    response = pkjwt_post(client, make_assertion(key, aud=aud), grant_type="client_credentials")
    assert response.status_code == 200, response.text
    assert response.json["token_type"] == "Bearer"
    assert "refresh_token" not in response.json


def test_d01_private_key_jwt_authorization_code_and_refresh(app, client):
    """D01: private_key_jwt authenticates the code exchange and the refresh."""
    setup_pkjwt()
    code, _ = get_code(client, app, client_id="rpk")
    response = pkjwt_post(client, make_assertion(EC_KEY), grant_type="authorization_code",
                          code=code, redirect_uri=REDIRECT)
    assert response.status_code == 200, response.text
    assert response.json["id_token"] and response.json["refresh_token"]
    again = pkjwt_post(client, make_assertion(RSA_KEY), grant_type="refresh_token",
                       refresh_token=response.json["refresh_token"])
    assert again.status_code == 200, again.text


def test_d01_private_key_jwt_jti_replay_rejected(app, client):
    """D01: an assertion's jti is accepted once; a replay is invalid_client."""
    setup_pkjwt()
    assertion = make_assertion(EC_KEY)
    first = pkjwt_post(client, assertion, grant_type="client_credentials")
    assert first.status_code == 200, first.text
    second = pkjwt_post(client, assertion, grant_type="client_credentials")
    assert_error(second, "invalid_client", (400, 401))
    same_jti = pkjwt_post(client, make_assertion(RSA_KEY, jti=_jti_of(assertion)),
                          grant_type="client_credentials")
    assert_error(same_jti, "invalid_client", (400, 401))


def _jti_of(assertion: str) -> str:
    return str(jwt.decode(assertion, EC_KEY).claims["jti"])


BAD_ASSERTIONS = {
    "other-key-same-kid": lambda: make_assertion(OTHER_EC_KEY, kid=EC_KEY.kid),
    "other-key-unknown-kid": lambda: make_assertion(OTHER_EC_KEY),
    "expired": lambda: make_assertion(EC_KEY, exp_in=-600),
    "wrong-aud": lambda: make_assertion(EC_KEY, aud="https://evil.example/token"),
    "aud-authorize-endpoint": lambda: make_assertion(EC_KEY, aud="http://localhost/authorize"),
    "no-aud": lambda: make_assertion(EC_KEY, aud=None),
    "iss-not-sub": lambda: make_assertion(EC_KEY, iss="rp1"),
    "sub-other-client": lambda: make_assertion(EC_KEY, sub="rp1", iss="rp1"),
    "unknown-client": lambda: make_assertion(EC_KEY, client_id="nobody"),
    "no-jti": lambda: _without_claim("jti"),
    "no-exp": lambda: _without_claim("exp"),
    "not-a-jwt": lambda: "not.a.jwt",
    "garbage": lambda: "%%%",
    "alg-none": lambda: _unsigned_assertion(),
    "hs256-with-public-key": lambda: _hs256_assertion(),
    "sub-not-string": lambda: make_assertion(EC_KEY, sub=123),
}


def _unsigned_assertion() -> str:
    def part(data: str) -> str:
        return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()

    now = int(time.time())
    return (part('{"alg":"none"}') + "."
            + part(f'{{"iss":"rpk","sub":"rpk","aud":"{TOKEN_URL}","exp":{now + 60},'
                   f'"jti":"{secrets.token_hex(8)}"}}') + ".")


def _hs256_assertion() -> str:
    """An HMAC over the client's public key (the classic algorithm-confusion attack)."""
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    signing_input = (part(b'{"alg":"HS256"}') + "." + part(
        f'{{"iss":"rpk","sub":"rpk","aud":"{TOKEN_URL}","exp":{now + 60},'
        f'"jti":"{secrets.token_hex(8)}"}}'.encode()))
    mac = hmac.new(EC_KEY.as_pem(private=False), signing_input.encode(), hashlib.sha256)
    return signing_input + "." + part(mac.digest())


@pytest.mark.parametrize("case", sorted(BAD_ASSERTIONS))
def test_d01_private_key_jwt_bad_assertion_is_invalid_client(app, client, case):
    """D01: a wrongly signed, expired, mis-addressed or malformed assertion → invalid_client."""
    setup_pkjwt()
    make_client(client_id="rp1")
    assertion = BAD_ASSERTIONS[case]()
    response = pkjwt_post(client, assertion, grant_type="client_credentials")
    assert_error(response, "invalid_client", (400, 401))
    assert not audit_events("token.issued")


def _without_claim(name: str) -> str:
    now = int(time.time())
    payload = {"iss": "rpk", "sub": "rpk", "aud": TOKEN_URL, "exp": now + 60,
               "jti": secrets.token_hex(8)}
    payload.pop(name)
    return jwt.encode({"alg": "ES256", "kid": EC_KEY.kid}, payload, EC_KEY)


def test_d01_secret_client_cannot_use_private_key_jwt_nor_pkjwt_client_a_secret(app, client):
    """D01: a secret client has no keys, and a private_key_jwt client has no secret."""
    secret = setup_rp()
    make_client(client_id="rpk", auth_method="private_key_jwt", jwks=PKJWT_JWKS)
    response = pkjwt_post(client, make_assertion(EC_KEY, client_id="rp1"),
                          grant_type="client_credentials")
    assert_error(response, "invalid_client", (400, 401))
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic("rpk", secret))
    assert_error(response, "invalid_client", (400, 401))


# --- authorization codes ------------------------------------------------------------------------

def test_d01_code_is_single_use_and_reuse_revokes_its_tokens(app, client):
    """D01 / RFC 9700 §4.2.4: a second exchange fails and revokes what the first one issued."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    first = exchange(client, code, secret)
    assert first.status_code == 200, first.text
    tokens = first.json
    assert userinfo_status(client, tokens["access_token"]) == 200

    second = exchange(client, code, secret)
    assert_error(second, "invalid_grant")
    assert userinfo_status(client, tokens["access_token"]) == 401
    assert_error(refresh(client, tokens["refresh_token"], secret), "invalid_grant")
    reuse = audit_events("token.code_reuse")
    assert len(reuse) == 1
    assert reuse[0].client_id == "rp1" and reuse[0].result == "failure"


def test_d01_code_reuse_revokes_tokens_refreshed_from_it(app, client):
    """D01: the revocation reaches the tokens that the code's refresh token produced."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    tokens = exchange(client, code, secret).json
    rotated = refresh(client, tokens["refresh_token"], secret)
    assert rotated.status_code == 200, rotated.text
    assert_error(exchange(client, code, secret), "invalid_grant")
    assert userinfo_status(client, rotated.json["access_token"]) == 401
    assert_error(refresh(client, rotated.json["refresh_token"], secret), "invalid_grant")


def test_d01_expired_code_is_invalid_grant(app, client):
    """D01: codes live ≤ 60 s; an expired code is refused."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    row = db.session.scalar(sa.select(AuthorizationCode))
    assert row is not None
    assert row.expires_at - row.created_at <= timedelta(seconds=60)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert_error(exchange(client, code, secret), "invalid_grant")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Token)) == 0


def test_d01_code_of_another_client_is_invalid_grant_and_not_burnt(app, client):
    """D01: a code presented by the wrong client fails and stays usable by its own client."""
    secret = setup_rp()
    _rp2, other = make_client(client_id="rp2")
    assert other is not None
    code, _ = get_code(client, app)
    assert_error(exchange(client, code, other, client_id="rp2"), "invalid_grant")
    response = exchange(client, code, secret)
    assert response.status_code == 200, response.text
    assert not audit_events("token.code_reuse")


@pytest.mark.parametrize("redirect_uri", [
    "https://rp.example.cn/other", "https://rp.example.cn/callback/", REDIRECT + "?x=1",
    "https://RP.example.cn/callback", "",
])
def test_d01_redirect_uri_mismatch_at_token_is_invalid_grant(app, client, redirect_uri):
    """D01: the redirect_uri at /token must equal the one of the authorization request."""
    secret = setup_rp(redirect_uris=[REDIRECT, "https://rp.example.cn/other"])
    code, _ = get_code(client, app)
    response = exchange(client, code, secret, redirect_uri=redirect_uri)
    assert response.status_code == 400, response.text
    assert response.json["error"] in ({"invalid_grant"} if redirect_uri
                                      else {"invalid_grant", "invalid_request"})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Token)) == 0


def _all_text() -> str:
    """Every row of every table as text: proof that a secret is not stored anywhere."""
    parts = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            parts.extend(str(tuple(row)) for row in conn.execute(sa.select(table)))
    return "\n".join(parts)


def test_d01_codes_and_tokens_stored_only_as_hashes(app, client):
    """D01: neither the code nor the tokens appear in the database, only their SHA-256."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    everything = _all_text()
    assert code not in everything
    assert token_hash(code) in everything
    tokens = exchange(client, code, secret).json
    everything = _all_text()
    for value in (code, tokens["access_token"], tokens["refresh_token"], secret):
        assert value not in everything
    row = db.session.scalar(sa.select(Token))
    assert row is not None
    assert row.access_token_hash == token_hash(tokens["access_token"])
    assert row.refresh_token_hash == token_hash(tokens["refresh_token"])


@pytest.mark.parametrize("code", ["", "x" * 43, "a" * 5000, "' OR 1=1 --", "<script>", "代码"],
                         ids=["empty", "unknown", "huge", "sql", "html", "cjk"])
def test_d01_bad_codes_are_invalid_grant(app, client, code):
    """D01: unknown, empty, oversized or hostile codes → invalid_grant/invalid_request, no 500."""
    secret = setup_rp()
    response = exchange(client, code, secret)
    assert response.status_code == 400, response.text
    assert response.json["error"] in ({"invalid_grant"} if code
                                      else {"invalid_grant", "invalid_request"})


def test_d01_code_of_disabled_account_is_refused(app, client):
    """D01: an account disabled between login and code exchange gets no tokens."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    account = db.session.scalar(sa.select(Account))
    assert account is not None
    account.status = "disabled"
    db.session.commit()
    assert_error(exchange(client, code, secret), "invalid_grant")


def test_d01_pkce_verifier_checked_at_token(app, client):
    """D01: with a challenge sent, a wrong or missing verifier fails (RFC 7636 §4.6)."""
    secret = setup_rp()
    verifier, challenge = pkce_pair()
    code, _ = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    other_verifier, _ = pkce_pair()
    assert_error(exchange(client, code, secret, code_verifier=other_verifier), "invalid_grant")
    code, _ = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    response = exchange(client, code, secret)
    assert response.status_code == 400
    assert response.json["error"] in {"invalid_request", "invalid_grant"}
    code, _ = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    assert exchange(client, code, secret, code_verifier=verifier).status_code == 200


# --- refresh tokens -----------------------------------------------------------------------------

def test_d01_refresh_rotates_and_reuse_revokes_the_chain(app, client):
    """D01 / RFC 9700 §4.14.2: each refresh rotates; reuse revokes the whole family."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    second = refresh(client, tokens["refresh_token"], secret)
    assert second.status_code == 200, second.text
    assert second.json["refresh_token"] != tokens["refresh_token"]
    assert second.json["access_token"] != tokens["access_token"]
    third = refresh(client, second.json["refresh_token"], secret)
    assert third.status_code == 200, third.text
    newest = third.json
    assert newest["refresh_token"] not in (tokens["refresh_token"], second.json["refresh_token"])
    assert userinfo_status(client, newest["access_token"]) == 200

    assert_error(refresh(client, tokens["refresh_token"], secret), "invalid_grant")
    assert userinfo_status(client, newest["access_token"]) == 401
    assert_error(refresh(client, newest["refresh_token"], secret), "invalid_grant")
    assert userinfo_status(client, tokens["access_token"]) == 401
    reuse = audit_events("token.refresh_reuse")
    assert len(reuse) == 1 and reuse[0].client_id == "rp1"


def test_d01_refresh_with_narrower_scope(app, client):
    """D01: a refresh may ask for fewer scopes (RFC 6749 §6)."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret, scope="openid profile phone")
    response = refresh(client, tokens["refresh_token"], secret, scope="openid profile")
    assert response.status_code == 200, response.text
    assert set(response.json.get("scope", "").split()) == {"openid", "profile"}
    info = client.get("/userinfo",
                      headers={"Authorization": f"Bearer {response.json['access_token']}"})
    assert info.status_code == 200
    assert "name" in info.json and "phone_number" not in info.json


@pytest.mark.parametrize("scope", ["openid profile phone", "openid org", "openid admin"])
def test_d01_refresh_with_wider_scope_is_invalid_scope(app, client, scope):
    """D01: a refresh cannot widen the grant (RFC 6749 §6)."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret, scope="openid profile")
    assert_error(refresh(client, tokens["refresh_token"], secret, scope=scope), "invalid_scope")


def test_d01_refresh_by_another_client_is_invalid_grant(app, client):
    """D01: a refresh token works only for the client it was issued to, and is not burnt."""
    secret = setup_rp()
    _rp2, other = make_client(client_id="rp2")
    assert other is not None
    tokens = code_tokens(client, app, secret)
    assert_error(refresh(client, tokens["refresh_token"], other, client_id="rp2"),
                 "invalid_grant")
    assert refresh(client, tokens["refresh_token"], secret).status_code == 200
    assert not audit_events("token.refresh_reuse")


def test_d01_refresh_for_disabled_account_fails(app, client):
    """D01: once the account is disabled its refresh tokens stop working."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    account = db.session.scalar(sa.select(Account))
    assert account is not None
    account.status = "disabled"
    db.session.commit()
    response = refresh(client, tokens["refresh_token"], secret)
    assert response.status_code == 400, response.text
    assert response.json["error"] == "invalid_grant"
    assert "access_token" not in response.json


def test_d01_expired_refresh_token_is_invalid_grant(app, client):
    """D01: a refresh token past refresh_expires_at is refused."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    row = db.session.scalar(sa.select(Token))
    assert row is not None
    row.refresh_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert_error(refresh(client, tokens["refresh_token"], secret), "invalid_grant")


@pytest.mark.parametrize("value", ["", "x" * 43, "a" * 5000, "' OR 1=1 --"],
                         ids=["empty", "unknown", "huge", "sql"])
def test_d01_bad_refresh_tokens_are_refused(app, client, value):
    """D01: unknown, empty or hostile refresh tokens → a protocol error, never 500."""
    secret = setup_rp()
    response = refresh(client, value, secret)
    assert response.status_code == 400, response.text
    assert response.json["error"] in ({"invalid_grant"} if value
                                      else {"invalid_grant", "invalid_request"})


# --- client credentials ---------------------------------------------------------------------------

def test_d01_client_credentials_for_confidential_client(app, client):
    """D01: client_credentials issues an access token and no refresh token (RFC 6749 §4.4.3)."""
    secret = setup_rp()
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic("rp1", secret))
    assert response.status_code == 200, response.text
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert "refresh_token" not in body and "id_token" not in body
    row = db.session.scalar(sa.select(Token))
    assert row is not None and row.account_id is None and row.refresh_token_hash is None


def test_d01_client_credentials_refused_for_public_client(app, client):
    """D01: a public client cannot use client_credentials, even if the grant is set in the DB."""
    make_account()
    make_client(client_id="pub", public=True)
    row = db.session.get(Client, "pub")
    assert row is not None
    row.grant_types = [*row.grant_types, "client_credentials"]
    db.session.commit()
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "client_id": "pub"})
    assert response.status_code in (400, 401), response.text
    assert response.json["error"] in {"unauthorized_client", "invalid_client"}
    assert not audit_events("token.issued")


def test_d01_client_credentials_refused_without_the_grant(app, client):
    """D01: a client not registered for client_credentials → unauthorized_client."""
    secret = setup_rp(grant_types=["authorization_code", "refresh_token"])
    response = client.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic("rp1", secret))
    assert response.status_code in (400, 401), response.text
    assert response.json["error"] in {"unauthorized_client", "invalid_client"}


def test_d01_refresh_refused_without_the_grant(app, client):
    """D01: a client not registered for refresh_token gets no refresh token."""
    secret = setup_rp(grant_types=["authorization_code"])
    tokens = code_tokens(client, app, secret)
    assert "refresh_token" not in tokens


# --- audit, headers, methods, grant types -----------------------------------------------------

def test_d01_every_token_issuance_is_audited(app, client):
    """D01: each issuance writes token.issued with account, client and grant type."""
    secret = setup_rp()
    tokens = code_tokens(client, app, secret)
    assert refresh(client, tokens["refresh_token"], secret).status_code == 200
    assert client.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic("rp1", secret)).status_code == 200
    events = audit_events("token.issued")
    assert [e.detail.get("grant_type") for e in sorted(events, key=lambda e: e.id)] == [
        "authorization_code", "refresh_token", "client_credentials"]
    account = db.session.scalar(sa.select(Account))
    assert account is not None
    assert all(e.client_id == "rp1" and e.result == "success" for e in events)
    assert [e.account_id for e in sorted(events, key=lambda e: e.id)] == [
        account.id, account.id, None]


def test_d01_token_responses_are_not_cached(app, client):
    """D01: token responses, success and error, carry Cache-Control: no-store (RFC 6749 §5.1)."""
    secret = setup_rp()
    code, _ = get_code(client, app)
    ok = exchange(client, code, secret)
    assert ok.status_code == 200
    assert ok.headers["Cache-Control"] == "no-store"
    rotated = refresh(client, ok.json["refresh_token"], secret)
    assert rotated.headers["Cache-Control"] == "no-store"
    machine = client.post("/token", data={"grant_type": "client_credentials"},
                          headers=basic("rp1", secret))
    assert machine.headers["Cache-Control"] == "no-store"
    failed = exchange(client, code, secret)
    assert failed.status_code == 400
    assert failed.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_d01_wrong_method_on_token_is_405_json(app, client, method):
    """D01: only POST; anything else is a JSON 405, not an HTML page."""
    response = client.open("/token", method=method)
    assert response.status_code == 405
    assert response.is_json and response.json["error"], response.text
    assert "<html" not in response.text.lower()


@pytest.mark.parametrize("grant_type", [
    "password", "implicit", "garbage", "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer", "<script>", "a" * 2000,
], ids=["password", "implicit", "garbage", "device_code", "jwt-bearer", "html", "huge"])
def test_d01_unsupported_grant_type(app, client, grant_type):
    """D01: password, implicit and unknown grants → unsupported_grant_type."""
    secret = setup_rp()
    response = client.post("/token", data={"grant_type": grant_type, "username": "13912345678",
                                           "password": "Passw0rd!"},
                           headers=basic("rp1", secret))
    assert_error(response, "unsupported_grant_type")
    assert not audit_events("token.issued")


@pytest.mark.parametrize("body,content_type", [
    ("", "application/x-www-form-urlencoded"),
    ('{"grant_type": "client_credentials"}', "application/json"),
    (b"grant_type=\xff\xfe", "application/x-www-form-urlencoded"),
], ids=["empty", "json", "non-utf8"])
def test_d01_malformed_token_requests_are_protocol_errors(app, client, body, content_type):
    """D01: empty, JSON or non-UTF-8 bodies → a JSON 4xx, never 500."""
    secret = setup_rp()
    response = client.post("/token", data=body, content_type=content_type,
                           headers=basic("rp1", secret))
    assert 400 <= response.status_code < 500, response.text
    assert response.is_json and response.json["error"]


@pytest.mark.parametrize("name,second", [
    ("grant_type", "client_credentials"), ("code", "x" * 43),
    ("redirect_uri", "https://evil.example/cb"), ("code_verifier", "y" * 43),
], ids=["grant_type", "code", "redirect_uri", "code_verifier"])
def test_d01_repeated_token_parameter_is_invalid_request(app, client, name, second):
    """D01: RFC 6749 §3.2/§5.2 — a parameter sent twice is invalid_request; nothing is issued."""
    secret = setup_rp()
    verifier, challenge = pkce_pair()
    code, _ = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    data = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT),
            ("code_verifier", verifier), (name, second)]
    response = client.post("/token", data=MultiDict(data), headers=basic("rp1", secret))
    assert_error(response, "invalid_request")
    assert not audit_events("token.issued")
