"""Discovery (OIDC Discovery 1.0, RFC 8414), the JWKS, keys at rest and key rotation — D01."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from werkzeug.exceptions import MethodNotAllowed

from idp.db import utcnow
from idp.extensions import db
from idp.oidc.keys import rotate_keys
from idp.oidc.models import SigningKey
from tests.factories import REDIRECT, basic, get_code, make_account, make_client

ISSUER = "http://localhost"
DISCOVERY_PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
ENDPOINTS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks.json",
    "end_session_endpoint": "/logout",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# --- helpers -------------------------------------------------------------------------------------

def id_token(client: FlaskClient, app: Flask, secret: str, client_id: str = "rp1") -> str:
    code, _ = get_code(client, app, client_id=client_id)
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
    }, headers=basic(client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json["id_token"])


def header_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, KeySet.import_key_set(
        {"keys": [k.public_jwk for k in db.session.scalars(sa.select(SigningKey))]})).header)


def jwks(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/jwks.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def kids(client: FlaskClient) -> set[str]:
    return {k["kid"] for k in jwks(client)["keys"]}


def verify(client: FlaskClient, token: str) -> dict[str, Any]:
    """Verify like a relying party does: against the published JWKS only."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks(client)))
    return dict(decoded.claims)


def active_key(alg: str) -> SigningKey:
    db.session.expire_all()
    row = db.session.scalar(sa.select(SigningKey).where(SigningKey.alg == alg,
                                                        SigningKey.retired_at.is_(None)))
    assert row is not None
    return row


def rotate(app: Flask, algs: tuple[str, ...] = ("ES256", "RS256"),
           keep_published: int = 900) -> list[SigningKey]:
    created = rotate_keys(db.session, app.config["IDP"].key_passphrase,
                          keep_published=keep_published, algs=algs)
    db.session.commit()
    return created


# --- discovery ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_d01_discovery_document(app, client, path):
    """D01: OIDC Discovery §3 / RFC 8414 §2 fields, with the security choices of RFC 9700."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.is_json
    doc = response.json
    assert doc["issuer"] == ISSUER
    for field, suffix in ENDPOINTS.items():
        assert doc[field] == ISSUER + suffix, field
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token",
                                                 "client_credentials"}
    assert "implicit" not in doc["grant_types_supported"]
    assert "password" not in doc["grant_types_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt"} <= set(
        doc["token_endpoint_auth_methods_supported"])
    assert "client_secret_jwt" not in doc["token_endpoint_auth_methods_supported"]
    # RFC 8414 §2: needed because private_key_jwt is supported; "none" is not allowed there.
    algs = doc["token_endpoint_auth_signing_alg_values_supported"]
    assert algs and "none" not in algs
    assert set(doc["id_token_signing_alg_values_supported"]) == {"ES256", "RS256"}
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert {"openid", "profile", "phone", "org", "roles"} <= set(doc["scopes_supported"])
    assert doc["subject_types_supported"] == ["public"]
    assert "introspection_endpoint_auth_methods_supported" in doc
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]


def test_d01_both_discovery_documents_are_identical(app, client):
    """D01: the OIDC and the RFC 8414 document say the same thing."""
    first, second = (client.get(p).json for p in DISCOVERY_PATHS)
    assert first == second


def test_d01_discovered_endpoints_exist(app, client):
    """D01: every advertised endpoint is routed (no 404) on this server."""
    doc = client.get(DISCOVERY_PATHS[0]).json
    for field in ENDPOINTS:
        path = doc[field].removeprefix(ISSUER)
        adapter = app.url_map.bind("localhost")
        try:  # NotFound propagates and fails the test
            adapter.match(path, method="GET")
        except MethodNotAllowed:
            adapter.match(path, method="POST")


@pytest.mark.parametrize("path", [*DISCOVERY_PATHS, "/jwks.json"])
def test_d01_discovery_and_jwks_wrong_method_is_json_405(app, client, path):
    """D01: the public documents answer POST with a JSON 405."""
    response = client.post(path)
    assert response.status_code == 405
    assert response.is_json


# --- JWKS and keys at rest -----------------------------------------------------------------------

def test_d01_jwks_has_es256_and_rs256_public_keys(app, client):
    """D01: one ES256 and one RS256 key, each with kid and use=sig, public members only."""
    keys = jwks(client)["keys"]
    by_alg = {k["alg"]: k for k in keys}
    assert set(by_alg) == {"ES256", "RS256"}
    assert len(keys) == 2
    assert by_alg["ES256"]["kty"] == "EC" and by_alg["ES256"]["crv"] == "P-256"
    assert by_alg["RS256"]["kty"] == "RSA"
    for key in keys:
        assert key["kid"] and key["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(key), key
    assert len({k["kid"] for k in keys}) == 2
    KeySet.import_key_set(jwks(client))  # a usable key set


def test_d01_private_keys_are_encrypted_at_rest(app):
    """D01: SigningKey.private_pem is PKCS#8 encrypted; only the passphrase opens it."""
    rows = list(db.session.scalars(sa.select(SigningKey)))
    assert {r.alg for r in rows} >= {"ES256", "RS256"}
    passphrase = app.config["IDP"].key_passphrase
    for row in rows:
        assert "ENCRYPTED PRIVATE KEY" in row.private_pem
        assert "BEGIN PRIVATE KEY" not in row.private_pem
        assert not PRIVATE_MEMBERS & set(row.public_jwk)
        cls = ECKey if row.alg == "ES256" else RSAKey
        with pytest.raises((JoseError, ValueError, TypeError)):
            cls.import_key(row.private_pem)
        with pytest.raises((JoseError, ValueError, TypeError)):
            cls.import_key(row.private_pem, password="wrong-passphrase")
        key = cls.import_key(row.private_pem, password=passphrase)
        assert key.is_private


def test_d01_default_id_token_is_es256_with_active_kid(app, client):
    """D01: ID tokens are signed ES256 by default with the active key's kid."""
    make_account()
    _rp, secret = make_client()
    assert secret is not None
    token = id_token(client, app, secret)
    header = header_of(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == active_key("ES256").kid
    assert verify(client, token)["aud"] == "rp1"


def test_d01_client_asking_rs256_gets_rs256_id_tokens(app, client):
    """D01: id_token_signed_response_alg=RS256 → RS256 ID tokens, verifiable with the JWKS."""
    make_account()
    _rp, secret = make_client(id_token_signed_response_alg="RS256")
    assert secret is not None
    token = id_token(client, app, secret)
    header = header_of(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == active_key("RS256").kid
    assert verify(client, token)["aud"] == "rp1"


# --- rotation -------------------------------------------------------------------------------------

def test_d01_rotation_new_key_signs_at_once_old_stays_published(app, client):
    """D01: after rotation the new kid signs the next ID token; the old kid stays in the JWKS
    until its unpublish_at has passed."""
    make_account()
    _rp, secret = make_client()
    assert secret is not None
    old_token = id_token(client, app, secret)
    old_kid = header_of(old_token)["kid"]
    old_rs256 = active_key("RS256").kid

    created = rotate(app, algs=("ES256",))
    assert [k.alg for k in created] == ["ES256"]
    new_kid = created[0].kid
    assert new_kid != old_kid

    new_token = id_token(client, app, secret)
    assert header_of(new_token)["kid"] == new_kid
    published = kids(client)
    assert {old_kid, new_kid, old_rs256} <= published
    verify(client, new_token)
    verify(client, old_token)  # RPs can still check tokens signed before the rotation
    assert active_key("RS256").kid == old_rs256  # only ES256 was rotated

    old = db.session.get(SigningKey, old_kid)
    assert old is not None and old.retired_at is not None and old.unpublish_at is not None
    assert old.unpublish_at >= utcnow() + timedelta(seconds=900)
    old.unpublish_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    published = kids(client)
    assert old_kid not in published
    assert {new_kid, old_rs256} <= published
    with pytest.raises(JoseError):
        verify(client, old_token)


def test_d01_rotation_of_both_algorithms(app, client):
    """D01: rotating both algorithms replaces both active keys, RS256 clients included."""
    make_account()
    _rp, secret = make_client(id_token_signed_response_alg="RS256")
    assert secret is not None
    before = kids(client)
    created = rotate(app)
    assert {k.alg for k in created} == {"ES256", "RS256"}
    new_kids = {k.kid for k in created}
    assert not new_kids & before
    assert before | new_kids <= kids(client)
    token = id_token(client, app, secret)
    assert header_of(token)["kid"] == active_key("RS256").kid
    assert header_of(token)["kid"] in new_kids
    verify(client, token)
    assert len(list(db.session.scalars(
        sa.select(SigningKey).where(SigningKey.retired_at.is_(None))))) == 2


def test_d01_rotation_keeps_retired_key_for_token_lifetime(app, client):
    """D01: a retired key's unpublish_at covers the longest ID-token lifetime plus skew."""
    ttl = app.config["IDP"].id_token_ttl
    old_kid = active_key("ES256").kid
    rotate(app, algs=("ES256",), keep_published=ttl)
    old = db.session.get(SigningKey, old_kid)
    assert old is not None and old.unpublish_at is not None
    assert old.unpublish_at - old.retired_at >= timedelta(seconds=ttl)
    assert old_kid in kids(client)
