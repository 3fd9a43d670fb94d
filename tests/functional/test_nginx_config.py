"""The production nginx configuration (deploy/nginx/idp.conf) under real nginx on loopback, with
a throw-away PKI and an echo upstream that shows exactly what the provider would receive.

D02 (UKey authentication by X.509 client certificate) and S02 (UKey login) rely on it: the
certificate reaches the provider only in headers nginx writes itself, every client-supplied copy
of those headers is overwritten or removed, and a certificate that fails nginx's verification
(expired, unknown CA) still reaches the provider — which explains the reason in Chinese — rather
than ending on nginx's bare 400 page.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.services import NGINX_TEMPLATE, Nginx, free_port, render_template

pytestmark = pytest.mark.live

PROXY_SOURCE = "127.0.0.2"
CERT_HEADER = "X-SSL-Client-Cert"
VERIFY_HEADER = "X-SSL-Client-Verify"


# --- a throw-away PKI ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _issue(directory: Path, stem: str, subject: x509.Name, issuer: Issued | None, *,
           ca: bool = False, days: tuple[int, int] = (-1, 365),
           extensions: tuple[tuple[x509.ExtensionType, bool], ...] = ()) -> Issued:
    """One certificate; self-signed when ``issuer`` is None. EC keys: quick to make."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert, key, cert_path, key_path)


def _ca_extensions() -> tuple[tuple[x509.ExtensionType, bool], ...]:
    return ((x509.KeyUsage(digital_signature=False, content_commitment=False,
                           key_encipherment=False, data_encipherment=False, key_agreement=False,
                           key_cert_sign=True, crl_sign=True, encipher_only=False,
                           decipher_only=False), True),)


def _leaf_extensions(eku: x509.ObjectIdentifier) -> tuple[tuple[x509.ExtensionType, bool], ...]:
    return ((x509.KeyUsage(digital_signature=True, content_commitment=False,
                           key_encipherment=False, data_encipherment=False, key_agreement=False,
                           key_cert_sign=False, crl_sign=False, encipher_only=False,
                           decipher_only=False), True),
            (x509.ExtendedKeyUsage([eku]), False))


@dataclass(frozen=True)
class Pki:
    root: Issued
    server: Issued
    client: Issued
    expired: Issued
    not_yet_valid: Issued
    foreign: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Root CA (trusted by nginx), server certificate for localhost/127.0.0.1, and enterprise
    certificates: valid, expired, not yet valid, and one issued by a CA nginx does not know."""
    d = tmp_path_factory.mktemp("pki")
    root = _issue(d, "root", _name("测试法人一证通根CA", "测试CA"), None, ca=True,
                  days=(-30, 3650), extensions=_ca_extensions())
    foreign_root = _issue(d, "foreign-root", _name("别的CA"), None, ca=True,
                          days=(-30, 3650), extensions=_ca_extensions())
    server_ext = (*_leaf_extensions(ExtendedKeyUsageOID.SERVER_AUTH),
                  (x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                x509.IPAddress(IPv4Address("127.0.0.1"))]), False))
    client_ext = _leaf_extensions(ExtendedKeyUsageOID.CLIENT_AUTH)
    enterprise = _name("测试物业维修中心", "测试物业维修中心")
    return Pki(
        root=root,
        server=_issue(d, "server", _name("localhost"), root, extensions=server_ext),
        client=_issue(d, "client", enterprise, root, extensions=client_ext),
        expired=_issue(d, "expired", enterprise, root, days=(-400, -1), extensions=client_ext),
        not_yet_valid=_issue(d, "not-yet-valid", enterprise, root, days=(2, 400),
                             extensions=client_ext),
        foreign=_issue(d, "foreign", enterprise, foreign_root, extensions=client_ext),
    )


# --- an echo upstream: what the provider would receive ------------------------------------------

class _Echo(BaseHTTPRequestHandler):
    """Answers 200 with a JSON account of the request as it arrived from nginx."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        payload = json.dumps({
            "peer": self.client_address[0],
            "method": self.command,
            "path": self.path,
            "headers": list(self.headers.items()),
            "body": body,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _echo

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output is for failures."""


def _address(server: ThreadingHTTPServer) -> str:
    return f"127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def nginx(pki: Pki, upstream: ThreadingHTTPServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with Nginx(workdir=tmp_path_factory.mktemp("nginx"), upstream=_address(upstream),
               tls_cert=pki.server.cert_path, tls_key=pki.server.key_path,
               client_ca=pki.root.cert_path, proxy_source=PROXY_SOURCE) as server:
        yield server


# --- a TLS client (standard library only) ---------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """What the upstream received, and what nginx answered."""

    status: int
    payload: dict[str, Any]

    def headers(self, name: str) -> list[str]:
        return [v for k, v in self.payload["headers"] if k.lower() == name.lower()]

    def header(self, name: str) -> str:
        """The single value of ``name``; "" when nginx sent none (it drops empty headers)."""
        values = self.headers(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else ""


def _tls_context(pki: Pki, client: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.root.cert_path))
    if client is not None:
        context.load_cert_chain(client.cert_path, client.key_path)
    return context


def _connect(nginx: Nginx, context: ssl.SSLContext,
             server_name: str = "localhost") -> http.client.HTTPSConnection:
    """Connect to 127.0.0.1 presenting ``server_name`` (SNI); Host is localhost:port."""
    conn = http.client.HTTPSConnection("localhost", nginx.port, context=context, timeout=5)
    raw = socket.create_connection(("127.0.0.1", nginx.port), timeout=5)
    conn.sock = context.wrap_socket(raw, server_hostname=server_name)
    return conn


def send(nginx: Nginx, pki: Pki, client: Issued | None = None, *, method: str = "GET",
         path: str = "/", headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Seen:
    """One request through nginx; headers may repeat (as an attacker might send them)."""
    conn = _connect(nginx, _tls_context(pki, client))
    try:
        conn.putrequest(method, path)
        for name, value in headers:
            conn.putheader(name, value)
        if body:
            conn.putheader("Content-Type", "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    is_json = response.getheader("Content-Type") == "application/json"
    return Seen(response.status, json.loads(data) if is_json else {"raw": data.decode()})


# --- tests ----------------------------------------------------------------------------------------

def test_d02_no_certificate_forwards_verify_none(nginx: Nginx, pki: Pki) -> None:
    """D02/S02: without a UKey the provider sees verify NONE and no certificate header."""
    seen = send(nginx, pki)
    assert seen.status == 200
    assert seen.header(CERT_HEADER) == ""
    assert seen.header(VERIFY_HEADER) == "NONE"
    assert seen.headers("Client-Cert") == []


def test_d02_valid_certificate_forwarded_as_escaped_pem(nginx: Nginx, pki: Pki) -> None:
    """D02/S02: a valid UKey certificate arrives as URL-encoded PEM, exactly the presented one."""
    seen = send(nginx, pki, pki.client)
    assert seen.status == 200
    assert seen.header(VERIFY_HEADER) == "SUCCESS"
    escaped = seen.header(CERT_HEADER)
    assert "\n" not in escaped and " " not in escaped  # a header-safe single line
    assert unquote(escaped) == pki.client.pem
    loaded = x509.load_pem_x509_certificate(unquote(escaped).encode())
    assert loaded == pki.client.cert


SPOOFED = (
    (CERT_HEADER, "forged"),
    (CERT_HEADER, "forged-twice"),
    ("x-ssl-client-cert", "forged-lowercase"),
    (VERIFY_HEADER, "SUCCESS"),
    ("Client-Cert", ":MIIBforged=:"),
    ("Client-Cert-Chain", ":MIIBforged=:"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Port", "1"),
    ("X-Real-IP", "203.0.113.7"),
    ("Forwarded", "for=203.0.113.7;proto=http"),
    ("X-Forwarded-Ssl", "off"),
    ("X_SSL_Client_Cert", "forged-underscore"),
)


@pytest.mark.parametrize("presents", ["none", "valid"])
def test_s02_client_cannot_inject_certificate_or_forwarding_headers(
        nginx: Nginx, pki: Pki, presents: str) -> None:
    """D02/S02: every copy of our headers sent by a client is overwritten; RFC 9440 headers and
    other spellings are removed, so only nginx speaks for the certificate and the client."""
    client = pki.client if presents == "valid" else None
    spoofed = (*SPOOFED, (CERT_HEADER, quote(pki.client.pem, safe="")))
    seen = send(nginx, pki, client, headers=spoofed)
    assert seen.status == 200
    if client is None:
        assert seen.header(CERT_HEADER) == ""
        assert seen.header(VERIFY_HEADER) == "NONE"
    else:
        assert unquote(seen.header(CERT_HEADER)) == pki.client.pem
        assert seen.header(VERIFY_HEADER) == "SUCCESS"
    assert seen.header("X-Forwarded-For") == "127.0.0.1"  # replaced, not appended to
    assert seen.header("X-Real-IP") == "127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "https"
    assert seen.header("X-Forwarded-Host") == "localhost"
    assert seen.header("X-Forwarded-Port") == str(nginx.port)
    for removed in ("Client-Cert", "Client-Cert-Chain", "Forwarded", "X-Forwarded-Ssl",
                    "X_SSL_Client_Cert"):
        assert seen.headers(removed) == [], removed


@pytest.mark.parametrize(("which", "reason"), [
    ("expired", "FAILED:certificate has expired"),
    ("not_yet_valid", "FAILED:certificate is not yet valid"),
    ("foreign", "FAILED:unable to verify the first certificate"),
])
def test_d02_failed_certificate_still_reaches_provider(nginx: Nginx, pki: Pki, which: str,
                                                       reason: str) -> None:
    """D02/S02: nginx's 495 goes to @client_cert_error, which proxies the unchanged request
    (method, path, query, body) with the certificate and nginx's FAILED reason, so the provider
    can explain it in Chinese; the provider's status code is kept."""
    cert: Issued = getattr(pki, which)
    seen = send(nginx, pki, cert, method="POST", path="/login/ukey?next=%2Fauthorize%3Fa%3D1",
                body=b"csrf_token=abc&go=1")
    assert seen.status == 200, seen.payload
    assert seen.header(VERIFY_HEADER) == reason
    assert unquote(seen.header(CERT_HEADER)) == cert.pem
    assert seen.payload["method"] == "POST"
    assert seen.payload["path"] == "/login/ukey?next=%2Fauthorize%3Fa%3D1"
    assert seen.payload["body"] == "csrf_token=abc&go=1"
    assert seen.payload["peer"] == PROXY_SOURCE
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.headers("Client-Cert") == []


ERROR_PAGE_LINE = "error_page 495 496 = @client_cert_error;"


def test_d02_without_error_page_nginx_would_answer_itself(
        pki: Pki, upstream: ThreadingHTTPServer, tmp_path: Path) -> None:
    """D02: the error_page line is what carries failed certificates to the provider; without it
    nginx ends the request on its own English "400 The SSL certificate error" page."""
    original = NGINX_TEMPLATE.read_text(encoding="utf-8")
    assert original.count(ERROR_PAGE_LINE) == 1
    template = tmp_path / "idp-without-error-page.conf"
    template.write_text(original.replace(ERROR_PAGE_LINE, ""), encoding="utf-8")
    with Nginx(workdir=tmp_path / "nginx", upstream=_address(upstream),
               tls_cert=pki.server.cert_path, tls_key=pki.server.key_path,
               client_ca=pki.root.cert_path, template=template) as bare:
        seen = send(bare, pki, pki.expired)
    assert seen.status == 400
    assert "The SSL certificate error" in seen.payload["raw"]


def test_d02_failed_certificate_cannot_smuggle_success(nginx: Nginx, pki: Pki) -> None:
    """D02: on the 495 path too, a client's own verify and certificate headers are replaced."""
    seen = send(nginx, pki, pki.expired, headers=SPOOFED)
    assert seen.header(VERIFY_HEADER) == "FAILED:certificate has expired"
    assert unquote(seen.header(CERT_HEADER)) == pki.expired.pem
    assert seen.headers("Client-Cert") == []
    assert seen.header("X-Forwarded-Proto") == "https"


def test_s02_upstream_sees_proxy_source_and_original_uri(nginx: Nginx, pki: Pki) -> None:
    """S02: the provider sees nginx's proxy_bind address (its IDP_TRUSTED_PROXIES entry) and the
    path and query byte for byte."""
    path = "/authorize?client_id=rp&scope=openid%20profile&state=%E4%B8%AD%2B&x=a+b"
    seen = send(nginx, pki, pki.client, path=path)
    assert seen.payload["peer"] == PROXY_SOURCE
    assert seen.payload["path"] == path
    assert seen.header("Host") == "localhost"


def test_s02_http_redirects_to_https(nginx: Nginx) -> None:
    """S02: plain HTTP only redirects, to the canonical name, keeping path and query."""
    conn = http.client.HTTPConnection("127.0.0.1", nginx.redirect_port, timeout=5)
    try:
        conn.request("GET", "/authorize?client_id=rp&state=s", headers={"Host": "evil.example"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 301
    assert response.getheader("Location") == (
        f"https://localhost:{nginx.port}/authorize?client_id=rp&state=s")


def test_s02_plain_http_on_https_port_redirects(nginx: Nginx) -> None:
    """S02: HTTP spoken to the HTTPS port gets the same redirect, not nginx's 400 page."""
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
    try:
        conn.request("GET", "/login?x=1", headers={"Host": f"localhost:{nginx.port}"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 301
    assert response.getheader("Location") == f"https://localhost:{nginx.port}/login?x=1"


def test_s02_unknown_server_name_is_refused(nginx: Nginx, pki: Pki) -> None:
    """S02: a TLS handshake for another name fails; a request for another Host never reaches
    the provider (the connection is closed without an answer)."""
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        _connect(nginx, _tls_context(pki, None), server_name="evil.example")
    conn = _connect(nginx, _tls_context(pki, pki.client))
    try:
        conn.request("GET", "/", headers={"Host": "evil.example"})
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()


def test_s02_oversized_body_refused_by_nginx(nginx: Nginx, pki: Pki) -> None:
    """S02: client_max_body_size 1m, the provider's own limit, is enforced at the edge."""
    conn = _connect(nginx, _tls_context(pki, None))
    try:
        conn.putrequest("POST", "/token")
        conn.putheader("Content-Length", str(2 * 1024 * 1024))
        conn.endheaders()
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 413


def test_template_placeholders_must_all_be_filled() -> None:
    """The drift guard: a token the tests do not fill, or fill but the file lacks, fails."""
    assert render_template("a @@X@@ b", {"X": "1"}) == "a 1 b"
    with pytest.raises(AssertionError, match="not filled"):
        render_template("a @@X@@ @@Y@@", {"X": "1"})
    with pytest.raises(AssertionError, match="unknown"):
        render_template("a @@X@@", {"X": "1", "Z": "2"})
