"""D02 / RFC 8705: a relying party's API accepts a certificate-bound access token only on a
connection with the certificate the token is bound to (``relying_parties.common.mtls``), using
what the provider's introspection endpoint really answers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from flask.testing import FlaskClient

from idp.pki.devca import DevCA
from relying_parties.common.mtls import certificate_binding_ok, x5t_s256
from tests.factories import (
    REDIRECT,
    authorize_params,
    basic,
    make_client,
    make_enterprise,
    ukey_login,
    via_proxy,
)


def test_d02_rp_accepts_bound_token_only_with_its_certificate(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: introspection of a bound token names the RP's certificate; the RP-side check
    passes with that certificate and fails with another or none."""
    make_enterprise()
    _, secret = make_client(tls_client_certificate_bound_access_tokens=True)
    rp_cert = devca.issue("91310115MA1FL0D34W", "业务系统客户端", key="ec")
    demo = devca.sample("demo")
    assert ukey_login(client, demo.pem_path.read_bytes()).status_code == 303
    response = client.get("/authorize", query_string=authorize_params(),
                          **via_proxy(demo.pem_path.read_bytes()))
    code = parse_qs(urlsplit(response.location).query)["code"][0]
    options = via_proxy(rp_cert.pem_path.read_bytes())
    options["headers"].update(basic("rp1", secret or ""))
    tokens = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": REDIRECT}, **options)
    assert tokens.status_code == 200, tokens.text
    answer = client.post("/introspect", data={"token": tokens.json["access_token"]},
                         headers=basic("rp1", secret or "")).json
    rp_der = rp_cert.cert.public_bytes(Encoding.DER)
    assert answer["cnf"] == {"x5t#S256": x5t_s256(rp_der)}
    assert certificate_binding_ok(answer, rp_der)
    assert not certificate_binding_ok(answer, demo.cert.public_bytes(Encoding.DER))
    assert not certificate_binding_ok(answer, None)


@pytest.mark.parametrize(("answer", "presented", "ok"), [
    ({"active": True}, None, True),
    ({"active": True}, b"any", True),
    ({"active": False}, None, False),
    ({}, None, False),
    ({"active": True, "cnf": "x"}, b"any", False),
    ({"active": True, "cnf": {}}, b"any", False),
    ({"active": True, "cnf": {"x5t#S256": 5}}, b"any", False),
    ({"active": True, "cnf": {"x5t#S256": x5t_s256(b"cert")}}, b"cert", True),
    ({"active": True, "cnf": {"x5t#S256": x5t_s256(b"cert")}}, b"other", False),
], ids=["unbound-none", "unbound-cert", "inactive", "empty", "cnf-string", "cnf-empty",
        "cnf-number", "bound-match", "bound-mismatch"])
def test_d02_binding_check_fails_closed(answer: dict[str, object], presented: bytes | None,
                                        ok: bool) -> None:
    """D02: malformed ``cnf`` values never pass."""
    assert certificate_binding_ok(answer, presented) is ok
