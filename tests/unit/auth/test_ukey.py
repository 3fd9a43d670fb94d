"""UKey login (S02, S08, D02): the 「UKey登录」 tab, every way a certificate is refused, the
unregistered-enterprise hand-over, the SSO session bound to the certificate, the signed
challenge, and certificate-bound access tokens (RFC 8705).

The certificate reaches the app as nginx hands it over (the test client plays the trusted proxy,
``tests.factories.via_proxy``); the embedded-TLS and real-nginx transports have their own
functional tests.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Certificate
from idp.audit import AuditEvent
from idp.extensions import db
from idp.pki import sm2
from idp.pki.devca import SAMPLES, DevCA, Issued
from tests.conftest import csrf_from
from tests.factories import (
    REDIRECT,
    authorize_params,
    basic,
    make_client,
    make_enterprise,
    pkce_pair,
    ukey_login,
    via_proxy,
)

MSG_REVOKED = "证书已被吊销，请联系发证机构。"
MSG_UNTRUSTED = "证书不是由受信任的证书颁发机构签发，无法登录。"
MSG_MALFORMED = "证书格式无效，无法识别。"
MSG_CA = "这是证书颁发机构的证书，不能用于登录。"
MSG_USAGE = "该证书的用途不包括身份认证，不能用于登录。"
MSG_NO_USCC = "证书中未找到统一社会信用代码，无法识别企业。"
MSG_BAD_SIGNATURE = "证书签名验证失败，请重新登录。"
MSG_CHALLENGE = "登录验证已过期，请刷新页面后重新登录。"


def pem(issued: Issued) -> bytes:
    return issued.pem_path.read_bytes()


def ukey_events(result: str | None = None) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.event == "login.ukey").order_by(AuditEvent.id)
    events = list(db.session.scalars(query))
    return [e for e in events if result is None or e.result == result]


def ukey_error(html: str) -> str:
    start = html.index('id="ukey-error">') + len('id="ukey-error">')
    return html[start:html.index("</p>", start)]


def logged_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


# --- the page -------------------------------------------------------------------------------

def test_s02_login_page_has_the_ukey_tab_with_client_tool_link(app: Flask,
                                                               client: FlaskClient) -> None:
    """S02: the login page offers 「UKey登录」 with 「协卡助手」 and the 「客户端工具」 link (URL
    from config), and a form that works without JavaScript."""
    html = client.get("/login").text
    assert 'id="tab-ukey"' in html and ">UKey登录</a>" in html
    assert 'id="ukey-button">UKey登录</button>' in html
    assert "「协卡助手」" in html
    assert f'href="{app.config["IDP"].ukey_client_tool_url}" id="client-tool"' in html
    assert '>客户端工具</a>' in html


def test_s02_no_certificate_explains_client_tool(app: Flask, client: FlaskClient) -> None:
    """S02: no certificate presented → the page says the UKey must be inserted and 「协卡助手」
    installed, with the 「客户端工具」 link; nothing logged in; the attempt is audited."""
    response = ukey_login(client, None)
    assert response.status_code == 401
    message = ukey_error(response.text)
    assert "未检测到UKey证书" in message and "「协卡助手」" in message
    assert 'id="client-tool"' in response.text
    assert not logged_in(client)
    [event] = ukey_events("failure")
    assert event.detail["reason"] == "missing"


# --- success --------------------------------------------------------------------------------------

def test_s02_d02_valid_certificate_of_registered_enterprise_logs_in(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """S02/D02: a valid certificate of a registered enterprise starts an SSO session with
    amr ["hwk","pin"]; the certificate is remembered and the login audited with its facts."""
    org = make_enterprise()
    demo = devca.sample("demo")
    response = ukey_login(client, pem(demo))
    assert response.status_code == 303 and response.location.endswith("/")
    home = client.get("/")
    assert home.status_code == 200
    assert 'id="enterprise-name">演示物业服务有限公司</dd>' in home.text
    assert "UKey（法人一证通）" in home.text and "修改密码" not in home.text
    with client.session_transaction() as session:
        assert session["amr"] == ["hwk", "pin"]
        assert session["x5t"] == devca_thumbprint(demo)
    account = db.session.scalar(sa.select(Account).where(Account.organisation_id == org.id))
    assert account is not None and account.last_login_at is not None
    [seen] = db.session.scalars(sa.select(Certificate)).all()
    assert seen.account_id == account.id and seen.serial == demo.serial_hex
    assert seen.uscc == "91310115MA1FL0D34W" and seen.subject == "演示物业服务有限公司"
    [event] = ukey_events("success")
    assert event.account_id == account.id and event.ip == "192.0.2.1"
    assert event.detail["uscc"] == "91310115MA1FL0D34W"
    assert event.detail["transport"] == "proxy" and event.detail["revocation_checked"] is True
    # A second login with the same certificate updates, never duplicates, the record.
    assert ukey_login(app.test_client(), pem(demo)).status_code == 303
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Certificate)) == 1


def devca_thumbprint(issued: Issued) -> str:
    from idp.pki.certs import thumbprint

    return thumbprint(issued.cert)


@pytest.mark.parametrize("key", ["ec", "sm2"])
def test_d02_ec_and_sm2_certificates_log_in(app: Flask, client: FlaskClient, devca: DevCA,
                                            key: str) -> None:
    """D02: EC and SM2 (SM2-with-SM3, verified with gmssl) enterprise certificates work too."""
    uscc = "91350200MA2YJ1XR9G"
    make_enterprise(uscc=uscc, name="厦门国密测试物业有限公司")
    issued = devca.issue(uscc, "厦门国密测试物业有限公司", key=key,
                         ca="sm2-root" if key == "sm2" else "issuing")
    assert ukey_login(client, pem(issued)).status_code == 303
    assert logged_in(client)


@pytest.mark.parametrize("oid", ["10260", "8888", "serial"])
def test_d02_uscc_from_each_place_a_certificate_may_carry_it(
        app: Flask, client: FlaskClient, devca: DevCA, oid: str) -> None:
    """D02 (DOMAIN.md): the USCC read from GM/T 0015, the 8888 subject id, or subject
    serialNumber finds the same enterprise as the SHECA extension does."""
    make_enterprise()
    issued = devca.issue("91310115MA1FL0D34W", "演示物业服务有限公司", oid=oid, key="ec")
    assert ukey_login(client, pem(issued)).status_code == 303


def test_d02_organisation_code_only_certificate_finds_its_enterprise(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: an old certificate carrying only the 组织机构代码 (with its dash) in GM/T 0015 finds
    the enterprise whose USCC contains it (USCC[8:17])."""
    make_enterprise()
    issued = devca.issue("MA1FL0D3-4", "演示物业服务有限公司", oid="10260", key="ec")
    assert ukey_login(client, pem(issued)).status_code == 303


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sample", "starts"), [
    ("expired", "证书已过期（有效期至"),
    ("not-yet-valid", "证书尚未生效（生效时间"),
    ("revoked", MSG_REVOKED),
    ("untrusted", MSG_UNTRUSTED),
])
def test_s02_bad_certificates_are_refused_with_the_reason(
        app: Flask, client: FlaskClient, devca: DevCA, sample: str, starts: str) -> None:
    """S02/D02: expired, not yet valid, revoked or untrusted → a Chinese message naming the
    reason, status 403, no session, and an audit event with the reason code."""
    make_enterprise()
    response = ukey_login(client, pem(devca.sample(sample)))
    assert response.status_code == 403
    assert ukey_error(response.text).startswith(starts)
    assert 'class="panel active" role="tabpanel" aria-labelledby="tab-ukey"' in response.text
    assert not logged_in(client)
    [event] = ukey_events("failure")
    assert event.detail["reason"] == sample.replace("-", "_")
    assert event.detail["serial"] == devca.sample(sample).serial_hex
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Certificate)) == 0


def test_d02_expired_message_names_the_date_in_beijing_time(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: the expiry date shown is the certificate's notAfter in Beijing time."""
    make_enterprise()
    expired = devca.sample("expired")
    shown = (expired.cert.not_valid_after_utc + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    message = ukey_error(ukey_login(client, pem(expired)).text)
    assert message == f"证书已过期（有效期至{shown}），请联系发证机构更新证书。"


def test_d02_ca_and_wrong_usage_certificates_are_refused(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: a CA certificate (the issuing CA itself, or one issued as a CA) and a certificate
    whose extended key usage is server authentication only cannot log in."""
    make_enterprise()
    for data, message in [
        (devca.path("issuing.pem").read_bytes(), MSG_CA),
        (pem(devca.issue("91310115MA1FL0D34W", "演示物业服务有限公司", usage="ca",
                         key="ec")), MSG_CA),
        (pem(devca.issue("91310115MA1FL0D34W", "演示物业服务有限公司", usage="server",
                         key="ec")), MSG_USAGE),
    ]:
        response = ukey_login(client, data)
        assert response.status_code == 403
        assert ukey_error(response.text) == message
    assert not logged_in(client)


@pytest.mark.parametrize(("uscc", "message"), [
    ("91310115MA1H8R7C6D", "证书中的统一社会信用代码无效，无法识别企业。"),  # check char wrong
    ("not-a-code", "证书中的统一社会信用代码无效，无法识别企业。"),
])
def test_d02_certificate_with_invalid_uscc_is_refused(
        app: Flask, client: FlaskClient, devca: DevCA, uscc: str, message: str) -> None:
    """D02: the identifier must pass GB 32100 (or GB 11714 for an organisation code)."""
    response = ukey_login(client, pem(devca.issue(uscc, "某公司", key="ec")))
    assert response.status_code == 403 and ukey_error(response.text) == message


@pytest.mark.parametrize(("label", "value"), [
    ("garbage", "not a certificate"),
    ("truncated-pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ("wrong-armour", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"),
    ("not-base64", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
    ("huge", "-----BEGIN CERTIFICATE-----\n" + "QUFB" * 3000 + "\n-----END CERTIFICATE-----\n"),
])
def test_d02_unreadable_forwarded_certificate(app: Flask, client: FlaskClient, label: str,
                                              value: str) -> None:
    """D02: a trusted proxy forwarding something that is not a certificate → 「证书格式无效」,
    400, audited as malformed; never a 500."""
    response = ukey_login(client, value)
    assert response.status_code in (400, 403)
    assert ukey_error(response.text) == MSG_MALFORMED
    assert ukey_events("failure")[-1].detail["reason"] == "malformed"


def test_d02_truncated_der_is_malformed(app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: a DER certificate cut short (valid PEM armour around it) is malformed."""
    der = devca.sample("demo").cert.public_bytes(serialization.Encoding.DER)[:-40]
    text = ("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode()
            + "-----END CERTIFICATE-----\n")
    response = ukey_login(client, text)
    assert ukey_error(response.text) == MSG_MALFORMED


def test_d02_disabled_enterprise_account_cannot_log_in(app: Flask, client: FlaskClient,
                                                       devca: DevCA) -> None:
    """D02: a valid certificate whose UKey account is disabled is refused, and audited."""
    make_enterprise(status="disabled")
    response = ukey_login(client, pem(devca.sample("demo")))
    assert response.status_code == 403
    assert ukey_error(response.text) == "该企业账号已停用，请联系所在区中心。"
    assert ukey_events("failure")[-1].detail["reason"] == "account_disabled"


def test_s03_unregistered_enterprise_is_handed_to_registration(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """S02→S03: a valid certificate of an enterprise that is not registered gets a clear page
    naming it (not a login); the verified facts wait in the session for registration."""
    unregistered = devca.sample("unregistered")
    response = ukey_login(client, pem(unregistered))
    assert response.status_code == 200
    assert "广州未注册物业服务有限公司" in response.text
    assert "统一社会信用代码 91440101MA5CJQ4N59" in response.text
    assert "尚未在统一认证登录平台注册" in response.text
    assert not logged_in(client)
    with client.session_transaction() as session:
        assert session["ukey_pending"]["uscc"] == "91440101MA5CJQ4N59"
    assert ukey_events("unregistered")


def test_d02_ukey_not_configured_is_a_clear_503(tmp_path: Any, database_url: str,
                                                devca: DevCA) -> None:
    """D02: a provider without a trust list says UKey login is unavailable (no 500)."""
    from tests.conftest import make_app

    other = make_app(database_url, tmp_path, ukey_trust="", trusted_proxies=("192.0.2.1",))
    with other.app_context():
        response = ukey_login(other.test_client(), pem(devca.sample("demo")))
    assert response.status_code == 503
    assert "UKey登录暂不可用" in response.text


# --- spoofing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "Client-Cert"])
def test_d02_certificate_header_from_untrusted_address_is_ignored(
        app: Flask, client: FlaskClient, devca: DevCA, header: str) -> None:
    """D02: the forwarded-certificate headers are read only from trusted proxies; from anyone
    else they are dropped unread (the user sees the no-certificate help)."""
    make_enterprise()
    der = devca.sample("demo").cert.public_bytes(serialization.Encoding.DER)
    value = (":" + base64.b64encode(der).decode() + ":" if header == "Client-Cert"
             else pem(devca.sample("demo")).decode())
    options = via_proxy(value, header)
    options["environ_base"] = {"REMOTE_ADDR": "203.0.113.9"}
    page = client.get("/login", **options)
    response = client.post("/login/ukey", data={"csrf_token": csrf_from(page.text)}, **options)
    assert response.status_code == 401
    assert "未检测到UKey证书" in ukey_error(response.text)
    assert not logged_in(client)


def test_d02_rfc9440_client_cert_from_trusted_proxy(app: Flask, client: FlaskClient,
                                                    devca: DevCA) -> None:
    """D02: RFC 9440 ``Client-Cert: :base64 DER:`` from a trusted proxy logs in."""
    make_enterprise()
    der = devca.sample("demo").cert.public_bytes(serialization.Encoding.DER)
    value = ":" + base64.b64encode(der).decode() + ":"
    page = client.get("/login", **via_proxy(value, "Client-Cert"))
    response = client.post("/login/ukey", data={"csrf_token": csrf_from(page.text)},
                           **via_proxy(value, "Client-Cert"))
    assert response.status_code == 303


# --- the session follows the UKey ----------------------------------------------------------------

def authorize(client: FlaskClient, pem_data: bytes | None, **params: Any) -> Any:
    return client.get("/authorize", query_string=authorize_params(**params),
                      **via_proxy(pem_data))


def test_d02_session_requires_the_same_certificate_on_later_authorizations(
        app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: after a UKey login, an authorization request over a connection with the same
    certificate gets a code; with another certificate, or none, the user must log in again
    (the UKey was swapped or pulled out); prompt=none then answers login_required."""
    make_enterprise()
    make_client()
    demo = pem(devca.sample("demo"))
    assert ukey_login(client, demo).status_code == 303
    same = authorize(client, demo)
    assert same.status_code == 302 and "code" in parse_qs(urlsplit(same.location).query)
    other = pem(devca.issue("91310115MA1FL0D34W", "演示物业服务有限公司", key="ec"))
    for presented in (other, None):
        response = authorize(client, presented)
        assert response.status_code == 303 and "/login?i=" in response.location
    silent = authorize(client, None, prompt="none")
    assert parse_qs(urlsplit(silent.location).query)["error"] == ["login_required"]
    changed = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.event == "sso.certificate_changed")).all()
    assert len(changed) == 3


# --- signed challenge ---------------------------------------------------------------------------

def challenge(client: FlaskClient) -> tuple[str, str]:
    page = client.get("/login")
    token = csrf_from(page.text)
    response = client.post("/login/ukey/challenge", data={"csrf_token": token})
    assert response.status_code == 200, response.text
    body = response.json
    assert body["ok"] is True and 0 < body["expires_in"] <= 120
    assert response.headers["Cache-Control"] == "no-store"
    return body["nonce"], token


def load_key(issued: Issued) -> Any:
    data = issued.key_path.read_bytes()
    try:
        return serialization.load_pem_private_key(data, password=None)
    except Exception:  # noqa: BLE001 - SM2 keys are ours to load
        return sm2.Sm2PrivateKey.from_pem(data)


def sign_raw(issued: Issued, data: bytes) -> bytes:
    key = load_key(issued)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return sm2.sign(key, data)


def post_signed(client: FlaskClient, token: str, nonce: str, **fields: str) -> Any:
    data = {"csrf_token": token, "nonce": nonce, "format": "raw", "hash": "sha256",
            "interaction": ""}
    data.update(fields)
    return client.post("/login/ukey/signed", data=data)


@pytest.mark.parametrize("sample", ["demo", "sm2"])
def test_d02_signed_challenge_raw_signature_logs_in_once(
        app: Flask, client: FlaskClient, devca: DevCA, sample: str) -> None:
    """D02: the client tool signs the one-time nonce with the UKey's key; the page posts
    certificate + raw signature (RSA; SM2 with SM3) → logged in with amr hwk+pin. The same
    nonce and signature a second time are refused (single use)."""
    issued = devca.sample(sample)
    uscc, name = SAMPLES[sample]
    make_enterprise(uscc=uscc, name=name)
    nonce, token = challenge(client)
    signature = base64.b64encode(sign_raw(issued, nonce.encode())).decode()
    response = post_signed(client, token, nonce, certificate=pem(issued).decode(),
                           signature=signature)
    assert response.status_code == 303, response.text
    with client.session_transaction() as session:
        assert session["amr"] == ["hwk", "pin"] and session["x5t_transport"] == "challenge"
    assert ukey_events("success")[-1].detail["transport"] == "challenge"
    client = app.test_client()
    page = client.get("/login")
    replay = post_signed(client, csrf_from(page.text), nonce,
                         certificate=pem(issued).decode(), signature=signature)
    assert replay.status_code == 400 and ukey_error(replay.text) == MSG_CHALLENGE


@pytest.mark.parametrize("attached", [True, False])
def test_d02_signed_challenge_pkcs7(app: Flask, client: FlaskClient, devca: DevCA,
                                    attached: bool) -> None:
    """D02: a PKCS#7/CMS SignedData over the nonce (attached or detached, with signed
    attributes), the certificate taken from inside it, logs in."""
    make_enterprise()
    demo = devca.sample("demo")
    nonce, token = challenge(client)
    options = [] if attached else [pkcs7.PKCS7Options.DetachedSignature]
    der = (pkcs7.PKCS7SignatureBuilder().set_data(nonce.encode())
           .add_signer(demo.cert, load_key(demo), hashes.SHA256())
           .sign(serialization.Encoding.DER, options))
    response = post_signed(client, token, nonce, format="pkcs7",
                           signature=base64.b64encode(der).decode())
    assert response.status_code == 303, response.text


def test_d02_pkcs7_over_another_nonce_is_refused(app: Flask, client: FlaskClient,
                                                 devca: DevCA) -> None:
    """D02: a SignedData whose content is not this nonce is refused."""
    make_enterprise()
    demo = devca.sample("demo")
    nonce, token = challenge(client)
    der = (pkcs7.PKCS7SignatureBuilder().set_data(b"another nonce")
           .add_signer(demo.cert, load_key(demo), hashes.SHA256())
           .sign(serialization.Encoding.DER, []))
    info = cms.ContentInfo.load(der)
    assert info["content"]["encap_content_info"]["content"].native == b"another nonce"
    response = post_signed(client, token, nonce, format="pkcs7",
                           signature=base64.b64encode(der).decode())
    assert response.status_code == 400 and ukey_error(response.text) == MSG_BAD_SIGNATURE


def test_d02_signed_challenge_refusals(app: Flask, client: FlaskClient, devca: DevCA) -> None:
    """D02: a signature by another key, a nonce never issued, a nonce issued to another
    browser session, and a revoked certificate with a good signature are all refused."""
    make_enterprise()
    demo, revoked = devca.sample("demo"), devca.sample("revoked")
    nonce, token = challenge(client)
    wrong = base64.b64encode(sign_raw(revoked, nonce.encode())).decode()
    response = post_signed(client, token, nonce, certificate=pem(demo).decode(), signature=wrong)
    assert response.status_code == 400 and ukey_error(response.text) == MSG_BAD_SIGNATURE
    # That nonce is used up even though the signature was wrong.
    good = base64.b64encode(sign_raw(demo, nonce.encode())).decode()
    response = post_signed(client, token, nonce, certificate=pem(demo).decode(), signature=good)
    assert ukey_error(response.text) == MSG_CHALLENGE
    invented = "A" * 32
    response = post_signed(client, token, invented, certificate=pem(demo).decode(),
                           signature=base64.b64encode(sign_raw(demo, invented.encode())).decode())
    assert ukey_error(response.text) == MSG_CHALLENGE
    # Issued to another browser: useless here.
    other_nonce, _ = challenge(app.test_client())
    response = post_signed(client, token, other_nonce, certificate=pem(demo).decode(),
                           signature=base64.b64encode(sign_raw(demo, other_nonce.encode()))
                           .decode())
    assert ukey_error(response.text) == MSG_CHALLENGE
    nonce, token = challenge(client)
    response = post_signed(client, token, nonce, certificate=pem(revoked).decode(),
                           signature=base64.b64encode(sign_raw(revoked, nonce.encode())).decode())
    assert response.status_code == 403 and ukey_error(response.text) == MSG_REVOKED
    assert not logged_in(client)


def test_d02_signed_challenge_nonce_expires(app: Flask, build_app: Any, devca: DevCA) -> None:
    """D02: a nonce is short-lived (ukey_challenge_ttl)."""
    import time

    make_enterprise()
    other = build_app(ukey_challenge_ttl=1)
    client = other.test_client()
    demo = devca.sample("demo")
    nonce, token = challenge(client)
    time.sleep(1.2)
    response = post_signed(client, token, nonce, certificate=pem(demo).decode(),
                           signature=base64.b64encode(sign_raw(demo, nonce.encode())).decode())
    assert ukey_error(response.text) == MSG_CHALLENGE


def test_d02_no_pin_field_exists(app: Flask, client: FlaskClient) -> None:
    """D02 (DOMAIN.md): the server never asks for, nor accepts, a UKey PIN."""
    html = client.get("/login").text
    assert "pin" not in [name.lower() for name in _input_names(html)]


def _input_names(html: str) -> list[str]:
    import re

    return re.findall(r'<input[^>]*name="([^"]+)"', html)


# --- certificate-bound access tokens (RFC 8705) ------------------------------------------------

def test_d02_certificate_bound_access_tokens(app: Flask, client: FlaskClient,
                                             devca: DevCA) -> None:
    """D02/RFC 8705: a client registered for bound tokens gets access tokens carrying the
    thumbprint of the TLS certificate it used at the token endpoint; introspection returns
    ``cnf``; userinfo accepts the token only with that certificate; without a certificate the
    token endpoint refuses."""
    make_enterprise()
    rp, secret = make_client(tls_client_certificate_bound_access_tokens=True)
    assert rp.tls_client_certificate_bound_access_tokens is True
    rp_cert = pem(devca.issue("91310115MA1FL0D34W", "业务系统客户端", key="ec"))
    demo = pem(devca.sample("demo"))
    assert ukey_login(client, demo).status_code == 303
    verifier, code_challenge = pkce_pair()
    response = authorize(client, demo, code_challenge=code_challenge,
                         code_challenge_method="S256")
    code = parse_qs(urlsplit(response.location).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    refused = client.post("/token", data=form, headers=basic("rp1", secret or ""))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_request"
    response = authorize(client, demo, code_challenge=code_challenge,
                         code_challenge_method="S256")
    form["code"] = parse_qs(urlsplit(response.location).query)["code"][0]
    options = via_proxy(rp_cert)
    options["headers"].update(basic("rp1", secret or ""))
    tokens = client.post("/token", data=form, **options)
    assert tokens.status_code == 200, tokens.text
    access = tokens.json["access_token"]
    introspection = client.post("/introspect", data={"token": access},
                                headers=basic("rp1", secret or ""))
    from idp.pki.certs import load_certificate, thumbprint

    assert introspection.json["cnf"] == {"x5t#S256": thumbprint(load_certificate(rp_cert))}
    bearer = {"Authorization": f"Bearer {access}"}
    assert client.get("/userinfo", headers=bearer).status_code == 401
    other = via_proxy(demo)
    other["headers"].update(bearer)
    assert client.get("/userinfo", **other).status_code == 401
    bound = via_proxy(rp_cert)
    bound["headers"].update(bearer)
    assert client.get("/userinfo", **bound).status_code == 200
    # Refreshing needs the same certificate too.
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens.json["refresh_token"]}
    moved = via_proxy(demo)
    moved["headers"].update(basic("rp1", secret or ""))
    assert client.post("/token", data=refresh, **moved).json["error"] == "invalid_grant"


def test_d02_clock_skew_tolerance(app: Flask, devca: DevCA) -> None:
    """D02: validity is judged with the configured clock skew (default 300 s) and not beyond."""
    from idp.pki.certs import CertificateError
    from idp.pki.validator import CertificateValidator

    validator: CertificateValidator = app.extensions["idp.ukey"]
    cert = devca.sample("demo").cert
    before = cert.not_valid_before_utc
    validator.validate(cert, now=before - timedelta(seconds=299))
    with pytest.raises(CertificateError) as caught:
        validator.validate(cert, now=before - timedelta(seconds=301))
    assert caught.value.reason == "not_yet_valid"
    assert datetime.now(UTC) > before
