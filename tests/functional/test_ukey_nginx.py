"""UKey login (D02, S02) end to end through the production nginx configuration.

Real nginx runs ``deploy/nginx/idp.conf`` on loopback (``tests.services.Nginx``) in front of the
real provider (plain gunicorn, ``tests.live.LiveServer``), with the development PKI of
``idp certs init``. nginx terminates TLS, asks for an optional enterprise certificate and passes
it to the provider in ``X-SSL-Client-Cert``, connecting from ``127.0.0.2`` — the only address
listed in ``IDP_TRUSTED_PROXIES``. These tests prove the chain as deployed: a valid UKey logs in,
a revoked, expired or foreign one is refused with its reason in Chinese, and nobody but the
trusted proxy can hand the provider a certificate by header.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from idp.pki.devca import DevCA
from tests.conftest import csrf_from
from tests.live import LiveServer
from tests.services import Nginx, free_port

pytestmark = pytest.mark.live

PROXY_SOURCE = "127.0.0.2"  # nginx's proxy_bind: the one trusted proxy address
CLIENT_SOURCE = "127.0.0.1"  # anyone else on the host
ENTERPRISE = "演示物业服务有限公司"  # `idp init --demo`, the USCC of devca.sample("demo")

MSG_REVOKED = "证书已被吊销，请联系发证机构。"
MSG_EXPIRED_PREFIX = "证书已过期"
MSG_UNTRUSTED = "证书不是由受信任的证书颁发机构签发，无法登录。"
MSG_MALFORMED = "证书格式无效，无法识别。"
MSG_MISSING_PREFIX = "未检测到UKey证书"
CLIENT_TOOL = "协卡助手"

UKEY_ERROR_RE = re.compile(r'id="ukey-error">([^<]*)</p>')
TIMEOUT = 10


# --- the stack: nginx -> gunicorn, one of each for the module ------------------------------------

@dataclass
class Stack:
    live: LiveServer
    nginx: Nginx
    devca: DevCA

    @property
    def base_url(self) -> str:
        """The issuer: what browsers talk to."""
        return self.nginx.base_url

    @property
    def database(self) -> Path:
        return self.live.workdir / "idp.sqlite3"


@pytest.fixture(scope="module")
def stack(devca: DevCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """gunicorn on 127.0.0.1 trusting only 127.0.0.2, nginx in front of it, demo enterprise seeded.

    The issuer is nginx's URL (the provider builds absolute URLs and cookie flags from it), while
    LiveServer's health check still asks gunicorn directly on ``live.issuer`` (127.0.0.1)."""
    workdir = tmp_path_factory.mktemp("ukey-nginx")
    nginx_port = free_port()
    live = LiveServer(
        workdir=workdir / "idp", database_url=f"sqlite:///{workdir / 'idp' / 'idp.sqlite3'}",
        extra_env={"IDP_TRUSTED_PROXIES": PROXY_SOURCE,
                   "IDP_UKEY_TRUST": str(devca.trust_file),
                   "IDP_ISSUER": f"https://localhost:{nginx_port}"})
    nginx = Nginx(workdir=workdir / "nginx", upstream=f"127.0.0.1:{live.port}",
                  tls_cert=devca.server_cert, tls_key=devca.server_key,
                  client_ca=devca.bundle_file, proxy_source=PROXY_SOURCE, port=nginx_port)
    live.workdir.mkdir(parents=True)
    live.idp("init", "--demo", "--clients", str(live.workdir / "none.toml"))
    live.start()
    try:
        with nginx:
            yield Stack(live, nginx, devca)
    finally:
        live.stop()


# --- through nginx (requests over TLS, optional client certificate) ------------------------------

def browser(stack: Stack, sample: str | None) -> requests.Session:
    """A browser holding the UKey ``sample`` (a devca sample name), or none."""
    session = requests.Session()
    # Not the environment's settings: requests lets REQUESTS_CA_BUNDLE override Session.verify,
    # and a configured HTTP proxy must not sit between us and loopback nginx.
    session.trust_env = False
    session.verify = str(stack.devca.dir / "root.pem")
    if sample is not None:
        issued = stack.devca.sample(sample)
        session.cert = (str(issued.pem_path), str(issued.key_path))
    return session


def press_ukey_button(session: requests.Session, base_url: str,
                      headers: Mapping[str, str] | None = None) -> requests.Response:
    """GET /login, then POST the 「UKey登录」 form with its CSRF token, as the page does."""
    page = session.get(base_url + "/login", timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    return session.post(base_url + "/login/ukey", timeout=TIMEOUT, allow_redirects=False,
                        data={"csrf_token": csrf_from(page.text), "interaction": ""},
                        headers=dict(headers or {}))


def ukey_error(html: str) -> str:
    match = UKEY_ERROR_RE.search(html)
    assert match, "the page shows no UKey error"
    return match.group(1).strip()


def assert_signed_out(session: requests.Session, base_url: str) -> None:
    home = session.get(base_url + "/", timeout=TIMEOUT, allow_redirects=False)
    assert home.status_code == 303, home.text
    assert home.headers["Location"].endswith("/login")


# --- straight to gunicorn (plain HTTP from a chosen source address) ------------------------------

@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    text: str


@dataclass
class DirectClient:
    """HTTP to gunicorn, bypassing nginx, from ``source``; keeps cookies itself because the
    provider marks them Secure (its issuer is https) and a cookie jar would not send them over
    plain HTTP."""

    port: int
    source: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT,
                                          source_address=(self.source, 0))
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
        finally:
            conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = rest.strip()
        return Reply(response.status, response.headers, text)

    def press_ukey_button(self, headers: Mapping[str, str] | None = None) -> Reply:
        page = self.request("GET", "/login")
        assert page.status == 200, page.text
        return self.request("POST", "/login/ukey", headers=headers,
                            form={"csrf_token": csrf_from(page.text), "interaction": ""})

    def home(self) -> Reply:
        return self.request("GET", "/")


def demo_der(devca: DevCA) -> bytes:
    return devca.sample("demo").cert.public_bytes(serialization.Encoding.DER)


def nginx_style_header(devca: DevCA) -> str:
    """What nginx's ``$ssl_client_escaped_cert`` would carry: the URL-encoded PEM."""
    return quote(devca.sample("demo").pem_path.read_text(encoding="ascii"), safe="")


def rfc9440_header(der: bytes) -> str:
    return ":" + base64.b64encode(der).decode("ascii") + ":"


# --- audit trail ---------------------------------------------------------------------------------

def last_audit_id(stack: Stack) -> int:
    with sqlite3.connect(stack.database) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit_event").fetchone()[0])


def ukey_events_since(stack: Stack, after: int) -> list[dict[str, Any]]:
    """The ``login.ukey`` events recorded after audit id ``after``."""
    with sqlite3.connect(stack.database) as conn:
        rows = conn.execute(
            "SELECT result, ip, detail FROM audit_event WHERE event = 'login.ukey' AND id > ? "
            "ORDER BY id", (after,)).fetchall()
    return [{"result": result, "ip": ip, **json.loads(detail)} for result, ip, detail in rows]


# --- 1. a valid UKey through nginx ---------------------------------------------------------------

def test_demo_ukey_logs_in_through_nginx(stack: Stack) -> None:
    """D02/S02: the demo enterprise's certificate, presented to nginx in the TLS handshake and
    forwarded in X-SSL-Client-Cert from the trusted proxy, logs in to the enterprise account."""
    before = last_audit_id(stack)
    session = browser(stack, "demo")
    answer = press_ukey_button(session, stack.base_url)
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"] in ("/", stack.base_url + "/")
    home = session.get(stack.base_url + "/", timeout=TIMEOUT, allow_redirects=False)
    assert home.status_code == 200
    assert ENTERPRISE in home.text
    events = ukey_events_since(stack, before)
    assert [(e["result"], e["transport"]) for e in events] == [("success", "proxy")]
    assert events[0]["ip"] == CLIENT_SOURCE  # the browser's address, from nginx's X-Forwarded-For


# --- 2. revoked and expired: the reason, in Chinese ----------------------------------------------

def test_revoked_certificate_through_nginx_is_refused_with_reason(stack: Stack) -> None:
    """D02/S02: nginx does not check revocation (no ssl_crl); it forwards the certificate and the
    provider, checking the CA's CRL, refuses it with 「证书已被吊销」."""
    session = browser(stack, "revoked")
    answer = press_ukey_button(session, stack.base_url)
    assert answer.status_code == 403
    assert ukey_error(answer.text) == MSG_REVOKED
    assert_signed_out(session, stack.base_url)


def test_expired_certificate_through_nginx_is_refused_with_reason(stack: Stack) -> None:
    """D02/S02: nginx's own verification fails (495), its error_page hands the request to the
    provider unchanged with the certificate, and the page says 「证书已过期（有效期至…）」
    rather than nginx's bare 400 page."""
    session = browser(stack, "expired")
    answer = press_ukey_button(session, stack.base_url)
    assert answer.status_code == 403
    assert ukey_error(answer.text).startswith(MSG_EXPIRED_PREFIX)
    assert_signed_out(session, stack.base_url)


# --- 3. a certificate from a CA nobody trusts ----------------------------------------------------

def test_untrusted_certificate_through_nginx_does_not_log_in(stack: Stack) -> None:
    """D02/S02: a certificate issued by a CA outside the trust list is refused, whatever of it
    nginx lets through: the page shows the untrusted-CA reason (or, had nginx withheld it, the
    missing-certificate help), and the session stays signed out."""
    session = browser(stack, "untrusted")
    answer = press_ukey_button(session, stack.base_url)
    assert answer.status_code in (401, 403)
    message = ukey_error(answer.text)
    assert message == MSG_UNTRUSTED or message.startswith(MSG_MISSING_PREFIX), message
    assert_signed_out(session, stack.base_url)


# --- 4. forged certificate headers ---------------------------------------------------------------

@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "Client-Cert"])
def test_forged_header_straight_to_gunicorn_is_ignored(stack: Stack, header: str) -> None:
    """D02/S02: only the trusted proxy may hand over a certificate by header. A client reaching
    gunicorn directly from 127.0.0.1 with the demo certificate in X-SSL-Client-Cert (nginx's
    format) or RFC 9440 Client-Cert is treated as having no certificate: the missing-certificate
    help, and an audited failure with reason "missing"."""
    value = (nginx_style_header(stack.devca) if header == "X-SSL-Client-Cert"
             else rfc9440_header(demo_der(stack.devca)))
    client = DirectClient(stack.live.port, CLIENT_SOURCE)
    before = last_audit_id(stack)
    answer = client.press_ukey_button(headers={header: value})
    assert answer.status == 401, answer.text
    message = ukey_error(answer.text)
    assert message.startswith(MSG_MISSING_PREFIX) and CLIENT_TOOL in message
    home = client.home()
    assert home.status == 303 and home.headers["Location"].endswith("/login")
    events = ukey_events_since(stack, before)
    assert [(e["result"], e["reason"]) for e in events] == [("failure", "missing")]
    assert events[0]["ip"] == CLIENT_SOURCE
    # …and the operator can see the attempt in the server log.
    log = (stack.live.workdir / "gunicorn.log").read_text(encoding="utf-8", errors="replace")
    assert f"ignored a client certificate header from untrusted address {CLIENT_SOURCE}" in log


@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "Client-Cert"])
def test_forged_header_through_nginx_without_certificate_is_dropped(stack: Stack,
                                                                     header: str) -> None:
    """D02/S02: through nginx, a client without a UKey that sends its own certificate header
    gets nothing from it: nginx overwrites X-SSL-Client-Cert with the (empty) handshake
    certificate and removes Client-Cert, so the provider sees no certificate."""
    value = (nginx_style_header(stack.devca) if header == "X-SSL-Client-Cert"
             else rfc9440_header(demo_der(stack.devca)))
    session = browser(stack, None)
    before = last_audit_id(stack)
    answer = press_ukey_button(session, stack.base_url, headers={header: value})
    assert answer.status_code == 401, answer.text
    assert ukey_error(answer.text).startswith(MSG_MISSING_PREFIX)
    assert_signed_out(session, stack.base_url)
    events = ukey_events_since(stack, before)
    assert [(e["result"], e["reason"]) for e in events] == [("failure", "missing")]


# --- 5. RFC 9440 from the trusted proxy address --------------------------------------------------

def test_rfc9440_header_from_trusted_proxy_logs_in(stack: Stack) -> None:
    """D02/S02: another kind of reverse proxy may forward the certificate as RFC 9440
    Client-Cert (``:base64 DER:``); from the trusted address 127.0.0.2 it logs in."""
    client = DirectClient(stack.live.port, PROXY_SOURCE)
    before = last_audit_id(stack)
    forwarded = rfc9440_header(demo_der(stack.devca))
    answer = client.press_ukey_button(headers={"Client-Cert": forwarded})
    assert answer.status == 303, answer.text
    home = client.home()
    assert home.status == 200
    assert ENTERPRISE in home.text
    events = ukey_events_since(stack, before)
    assert [(e["result"], e["transport"]) for e in events] == [("success", "proxy")]


def test_malformed_rfc9440_header_from_trusted_proxy_is_refused(stack: Stack) -> None:
    """D02/S02: a Client-Cert from the trusted proxy that is not an RFC 8941 byte sequence of a
    certificate is refused as 「证书格式无效」 (400), not mistaken for no certificate."""
    client = DirectClient(stack.live.port, PROXY_SOURCE)
    before = last_audit_id(stack)
    answer = client.press_ukey_button(headers={"Client-Cert": ":not base64!:"})
    assert answer.status == 400, answer.text
    assert ukey_error(answer.text) == MSG_MALFORMED
    assert client.home().status == 303
    events = ukey_events_since(stack, before)
    assert [(e["result"], e["reason"]) for e in events] == [("failure", "malformed")]
