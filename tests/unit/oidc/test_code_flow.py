"""The authorization code flow through the provider's pages and endpoints (D01, D03, S17)."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.factories import REDIRECT, basic, get_code, make_account, make_client, pkce_pair


def test_d01_code_flow_issues_verifiable_id_token(app, client):
    """D01: authorize → phone login → code → tokens; the ID token verifies against the JWKS."""
    make_account()
    _, secret = make_client()
    verifier, challenge = pkce_pair()
    code, params = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    response = client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }, headers=basic("rp1", secret))
    assert response.status_code == 200, response.text
    body = response.json
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    keys = KeySet.import_key_set(client.get("/jwks.json").json)
    token = jwt.decode(body["id_token"], keys)
    claims = token.claims
    assert claims["iss"] == "http://localhost"
    assert claims["aud"] == "rp1"
    assert claims["nonce"] == params["nonce"]
    assert claims["amr"] == ["pwd", "sms", "mfa"]
    assert claims["platform"] == "repair_fund"
    assert claims["roles"] == ["operator"]
    assert claims["org"]["type"] == "enterprise"
    assert claims["phone_number"] == "+8613912345678"
    assert token.header["alg"] == "ES256"
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json["sub"] == claims["sub"]
