"""Revocation of enterprise certificates by CRL and OCSP, and the trust file that configures it
(D02: authentication by X.509 UKey client certificate — a revoked UKey must not log in, and when
the CA cannot be asked the CA's ``revocation_failure`` decides).

Real CRLs and OCSP responses, signed by the development CAs, are served from a file or from a
small threaded HTTP server on 127.0.0.1 in this module (``LoopbackServer``); the OCSP responder
answers from the CertID in each request, as a real one does. Nothing leaves the loopback
interface. One ``DevCA`` is made per module (it takes seconds); each test issues its own
certificates and, where it needs particular CRL contents, its own CRL files in ``tmp_path``, so
the tests do not depend on their order.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from idp.config import ConfigError
from idp.pki import revocation
from idp.pki.certs import OID_SHECA_USCC, CertificateError
from idp.pki.devca import DEMO_NAME, DEMO_USCC, ISSUING_NAME, ROOT_NAME, DevCA, identifier_extension
from idp.pki.revocation import RevocationChecker
from idp.pki.trust import TrustedCa, load_trust
from idp.pki.validator import CertificateValidator, ValidatedCertificate
from tests.services import free_port

SKEW_SECONDS = 300
SKEW = timedelta(seconds=SKEW_SECONDS)
SM2_SM3_OID = "1.2.156.10197.1.501"

Status = ocsp.OCSPCertStatus


# --- a loopback HTTP server for CRLs and OCSP --------------------------------------------------

@dataclass
class Reply:
    """What the server does for one request."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/pkix-crl"
    delay: float = 0.0  # seconds to wait before answering: a server slower than the timeout
    raw: bytes | None = None  # written as-is instead of an HTTP response: a broken server
    drip: float = 0.0  # seconds between single bytes of ``body``, then hang up: a trickling one
    endless: bool = False  # advertise 1 GiB and stream zeros until the client hangs up


Route = Reply | Callable[[bytes], Reply]
ENDLESS_LENGTH = 1 << 30


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 answering per path; counts requests per path and how
    much of an endless body it managed to send before the client hung up."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.streamed = 0
        self.stream_ended = threading.Event()
        self.release = threading.Event()  # set at teardown: slow handlers stop waiting
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length", "0") or 0), 1 << 20)
        self._answer(self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on what matters."""

    def _answer(self, body: bytes) -> None:
        owner: LoopbackServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        owner.count(path)
        route = owner.routes.get(path)
        if route is None:
            self.send_error(404)
            return
        reply = route if isinstance(route, Reply) else route(body)
        try:
            self._send(owner, reply)
        except OSError:
            pass  # the client gave up (timeout, size limit): exactly what some tests provoke

    def _send(self, owner: LoopbackServer, reply: Reply) -> None:
        if reply.delay and owner.release.wait(reply.delay):
            return
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            return
        if reply.endless:
            self._send_endless(owner)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body) * (100 if reply.drip else 1)))
        self.end_headers()
        if not reply.drip:
            self.wfile.write(reply.body)
            return
        for byte in reply.body:
            self.wfile.write(bytes([byte]))
            if owner.release.wait(reply.drip):
                return

    def _send_endless(self, owner: LoopbackServer) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(ENDLESS_LENGTH))
        self.end_headers()
        chunk = bytes(64 * 1024)
        try:
            while owner.streamed < ENDLESS_LENGTH and not owner.release.is_set():
                self.wfile.write(chunk)
                owner.streamed += len(chunk)
        finally:
            owner.stream_ended.set()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    srv.start()
    yield srv
    srv.close()


# --- the CAs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Authority:
    """A CA certificate with its private key, to sign CRLs, OCSP answers and certificates."""

    cert: x509.Certificate
    key: Any

    @classmethod
    def load(cls, ca: DevCA, ca_id: str) -> Authority:
        cert = x509.load_pem_x509_certificate(ca.path(f"{ca_id}.pem").read_bytes())
        key = serialization.load_pem_private_key(ca.path(f"{ca_id}.key.pem").read_bytes(), None)
        return cls(cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    """One development PKI for the module: certificates are issued (and revoked) per test."""
    ca = DevCA(tmp_path_factory.mktemp("revocation") / "pki")
    ca.init()
    return ca


@pytest.fixture(scope="module")
def issuing(pki: DevCA) -> Authority:
    return Authority.load(pki, "issuing")


@pytest.fixture(scope="module")
def root(pki: DevCA) -> Authority:
    return Authority.load(pki, "root")


@pytest.fixture(scope="module")
def untrusted(pki: DevCA) -> Authority:
    return Authority.load(pki, "untrusted")


def issue(pki: DevCA) -> x509.Certificate:
    """A fresh enterprise certificate from the issuing CA (EC: quick to make)."""
    return pki.issue(DEMO_USCC, DEMO_NAME, key="ec").cert


def make_certificate(issuer: Authority, cn: str, *, eku: x509.ObjectIdentifier,
                     aia_ocsp: str | None = None, not_before: datetime | None = None,
                     days: int = 30) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate built directly: for an AIA OCSP URL or an OCSP responder's EKU, which
    ``DevCA.issue`` does not write."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(minutes=10)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, cn),
                                 x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(identifier_extension(OID_SHECA_USCC, DEMO_USCC), critical=False)
    )
    if aia_ocsp is not None:
        builder = builder.add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(aia_ocsp))]), critical=False)
    return builder.sign(issuer.key, hashes.SHA256()), key


# --- CRLs and trust files ----------------------------------------------------------------------

def snapshot_crl(pki: DevCA, dest: Path, days: int = 7) -> Path:
    """Publish the issuing CA's CRL now (listing everything revoked so far) and copy it to
    ``dest``, so that later publications by other tests do not change what this test reads."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki.publish_crl("issuing", days=days), dest)
    return dest


def make_crl(issuer: Authority, *, revoked: tuple[int, ...] = (),
             last_update: datetime | None = None, days: int = 7,
             name: x509.Name | None = None) -> bytes:
    """A CRL built directly: with another issuer name or times DevCA does not write."""
    start = last_update or datetime.now(UTC) - timedelta(minutes=1)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(name or issuer.cert.subject)
               .last_update(start)
               .next_update(start + timedelta(days=days)))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(start).build())
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _q(value: object) -> str:
    """A TOML basic string (JSON's string syntax is a subset of it)."""
    return json.dumps(str(value), ensure_ascii=False)


def trust(tmp_path: Path, pki: DevCA, *, crl: object = "", ocsp_url: str = "",
          failure: str = "closed", root_crl: object | None = None) -> list[TrustedCa]:
    """A trust file with the development root (its CRL from the DevCA unless given) and the
    issuing CA configured as the test needs; loaded through ``load_trust`` as the app does."""
    root_crl = pki.path("crl", "root.crl") if root_crl is None else root_crl
    text = (
        f"[[ca]]\nname = {_q(ROOT_NAME)}\ncertificate = {_q(pki.path('root.pem'))}\n"
        f"anchor = true\ncrl = {_q(root_crl)}\n\n"
        f"[[ca]]\nname = {_q(ISSUING_NAME)}\ncertificate = {_q(pki.path('issuing.pem'))}\n"
        f"crl = {_q(crl)}\nocsp = {_q(ocsp_url)}\nrevocation_failure = {_q(failure)}\n"
    )
    file = tmp_path / "trust.toml"
    file.write_text(text, encoding="utf-8")
    return load_trust(file)


def validator(cas: list[TrustedCa], timeout: float = 2.0) -> CertificateValidator:
    return CertificateValidator(cas, clock_skew=SKEW_SECONDS,
                                revocation=RevocationChecker(timeout=timeout, skew=SKEW))


def refusal(checker: CertificateValidator, cert: x509.Certificate,
            now: datetime | None = None) -> str:
    """The reason the validator gives for refusing ``cert``; fails the test if it accepts."""
    with pytest.raises(CertificateError) as info:
        checker.validate(cert, now=now)
    return info.value.reason


def accepted(checker: CertificateValidator, cert: x509.Certificate,
             now: datetime | None = None) -> ValidatedCertificate:
    result = checker.validate(cert, now=now)
    assert result.issuer_name == ISSUING_NAME
    return result


# --- CRL from a file ---------------------------------------------------------------------------

def test_crl_file_good_certificate_passes(pki: DevCA, tmp_path: Path) -> None:
    """D02: a certificate the issuing CA's CRL does not list logs in, revocation checked."""
    checker = validator(trust(tmp_path, pki, crl=snapshot_crl(pki, tmp_path / "issuing.crl")))

    assert accepted(checker, issue(pki)).revocation_checked is True


def test_crl_file_revoked_certificate_refused(pki: DevCA, tmp_path: Path) -> None:
    """D02: once the CA revokes a UKey certificate and re-publishes its CRL, it cannot log in."""
    cert = issue(pki)
    pki.revoke(cert.serial_number)  # re-publishes crl/issuing.crl
    checker = validator(trust(tmp_path, pki, crl=pki.path("crl", "issuing.crl")))

    assert refusal(checker, cert) == "revoked"
    assert refusal(checker, pki.sample("revoked").cert) == "revoked"


def test_crl_in_pem_form_is_read(pki: DevCA, tmp_path: Path) -> None:
    """D02: CAs publish CRLs in DER or PEM; a PEM CRL revokes just the same."""
    cert = issue(pki)
    pki.revoke(cert.serial_number)
    der = pki.path("crl", "issuing.crl").read_bytes()
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "issuing.pem.crl").write_bytes(pem)
    checker = validator(trust(tmp_path, pki, crl=tmp_path / "issuing.pem.crl"))

    assert refusal(checker, cert) == "revoked"
    accepted(checker, issue(pki))


def test_crl_is_cached_until_next_update(pki: DevCA, tmp_path: Path) -> None:
    """D02: the CRL is read once and believed until its nextUpdate; after that it is fetched
    again, and a revocation published in the meantime takes effect."""
    cert = issue(pki)
    crl_file = snapshot_crl(pki, tmp_path / "issuing.crl", days=1)
    next_update = x509.load_der_x509_crl(crl_file.read_bytes()).next_update_utc
    assert next_update is not None
    checker = validator(trust(tmp_path, pki, crl=crl_file))
    now = datetime.now(UTC)
    accepted(checker, cert, now=now)

    pki.revoke(cert.serial_number)
    shutil.copyfile(pki.path("crl", "issuing.crl"), crl_file)
    assert refusal(validator(checker.cas), cert, now=now) == "revoked"  # the new file lists it

    assert accepted(checker, cert, now=now).revocation_checked is True  # cached old CRL
    accepted(checker, cert, now=next_update - timedelta(minutes=1))
    assert refusal(checker, cert, now=next_update + timedelta(minutes=1)) == "revoked"


@pytest.mark.parametrize("source", ["untrusted CA's CRL", "issuing CA's name, another key"])
def test_crl_signed_by_another_key_is_not_believed(pki: DevCA, tmp_path: Path,
                                                  untrusted: Authority, source: str) -> None:
    """D02: a CRL counts only when the CA signed it; anyone could write an empty one."""
    crl_file = tmp_path / "issuing.crl"
    if source == "untrusted CA's CRL":
        shutil.copyfile(pki.path("crl", "untrusted.crl"), crl_file)
    else:
        issuing_name = x509.load_pem_x509_certificate(pki.path("issuing.pem").read_bytes()).subject
        crl_file.write_bytes(make_crl(untrusted, name=issuing_name))
    cert = issue(pki)

    assert refusal(validator(trust(tmp_path, pki, crl=crl_file)), cert) == "revocation_unknown"
    open_ = accepted(validator(trust(tmp_path, pki, crl=crl_file, failure="open")), cert)
    assert open_.revocation_checked is False


def test_stale_crl_is_unavailable(pki: DevCA, tmp_path: Path) -> None:
    """D02: a CRL past its nextUpdate (beyond the clock skew) may miss recent revocations, so it
    is no answer; within the skew it still counts."""
    crl_file = snapshot_crl(pki, tmp_path / "issuing.crl", days=1)
    next_update = x509.load_der_x509_crl(crl_file.read_bytes()).next_update_utc
    assert next_update is not None
    cas = trust(tmp_path, pki, crl=crl_file)
    cert = issue(pki)

    accepted(validator(cas), cert, now=next_update + SKEW - timedelta(minutes=1))
    late = next_update + SKEW + timedelta(minutes=1)
    assert refusal(validator(cas), cert, now=late) == "revocation_unknown"


def test_crl_issued_in_the_future_is_unavailable(pki: DevCA, tmp_path: Path,
                                                issuing: Authority) -> None:
    """D02: a CRL whose lastUpdate is beyond the clock skew ahead is not to be trusted."""
    crl_file = tmp_path / "issuing.crl"
    crl_file.write_bytes(make_crl(issuing, last_update=datetime.now(UTC) + timedelta(hours=2)))

    checker = validator(trust(tmp_path, pki, crl=crl_file))
    assert refusal(checker, issue(pki)) == "revocation_unknown"


def test_missing_crl_file_fail_closed_or_open(pki: DevCA, tmp_path: Path) -> None:
    """D02: with no CRL to read, a fail-closed CA (the default) refuses and a fail-open CA
    accepts but records that revocation was not checked."""
    missing = tmp_path / "nowhere" / "issuing.crl"
    cert = issue(pki)

    assert refusal(validator(trust(tmp_path, pki, crl=missing)), cert) == "revocation_unknown"
    result = accepted(validator(trust(tmp_path, pki, crl=missing, failure="open")), cert)
    assert result.revocation_checked is False


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "PEM armour around garbage"])
def test_unreadable_crl_file_is_unavailable(pki: DevCA, tmp_path: Path, kind: str) -> None:
    """D02: a CRL file that does not parse is no answer (fail-closed here)."""
    der = pki.path("crl", "issuing.crl").read_bytes()
    data = {
        "garbage": b"\x00\xffnot a CRL at all" * 10,
        "truncated": der[: len(der) // 2],
        "empty": b"",
        "PEM armour around garbage":
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    }[kind]
    crl_file = tmp_path / "issuing.crl"
    crl_file.write_bytes(data)

    checker = validator(trust(tmp_path, pki, crl=crl_file))
    assert refusal(checker, issue(pki)) == "revocation_unknown"


def test_revoked_intermediate_makes_its_certificates_untrusted(
        pki: DevCA, tmp_path: Path, root: Authority, issuing: Authority) -> None:
    """D02: the root's CRL is asked about the issuing CA; when the root revoked it, nothing
    that CA issued is trusted."""
    root_crl = tmp_path / "root.crl"
    root_crl.write_bytes(make_crl(root, revoked=(issuing.cert.serial_number,)))
    crl_file = snapshot_crl(pki, tmp_path / "issuing.crl")

    checker = validator(trust(tmp_path, pki, crl=crl_file, root_crl=root_crl))
    assert refusal(checker, issue(pki)) == "untrusted"


# --- CRL over HTTP -----------------------------------------------------------------------------

def test_crl_over_http_is_fetched_once_until_next_update(pki: DevCA, tmp_path: Path,
                                                        server: LoopbackServer) -> None:
    """D02: a CRL at an http URL is downloaded once and served from the cache until its
    nextUpdate, then downloaded again."""
    good, bad = issue(pki), issue(pki)
    pki.revoke(bad.serial_number)
    der = snapshot_crl(pki, tmp_path / "issuing.crl", days=1).read_bytes()
    next_update = x509.load_der_x509_crl(der).next_update_utc
    assert next_update is not None
    server.routes["/issuing.crl"] = Reply(body=der)
    checker = validator(trust(tmp_path, pki, crl=server.url("/issuing.crl")))

    accepted(checker, good)
    assert refusal(checker, bad) == "revoked"
    accepted(checker, good)
    assert server.hits["/issuing.crl"] == 1

    later = next_update + timedelta(minutes=1)
    server.routes["/issuing.crl"] = Reply(body=pki.publish_crl("issuing").read_bytes())
    accepted(checker, good, now=later)
    assert server.hits["/issuing.crl"] == 2


@pytest.mark.parametrize("failure", ["500", "404", "timeout", "connection refused", "not a CRL"])
def test_crl_http_failure_is_unavailable(pki: DevCA, tmp_path: Path, server: LoopbackServer,
                                         failure: str) -> None:
    """D02: a CRL server that errs, is slower than the timeout or is down gives no answer:
    fail-closed refuses (promptly), fail-open accepts unchecked."""
    url = server.url("/issuing.crl")
    if failure == "connection refused":
        url = f"http://127.0.0.1:{free_port()}/issuing.crl"
    server.routes["/issuing.crl"] = {
        "500": Reply(status=500, body=b"oops"),
        "404": Reply(status=404, body=b"gone"),
        "timeout": Reply(delay=3.0, body=pki.path("crl", "issuing.crl").read_bytes()),
        "connection refused": Reply(),
        "not a CRL": Reply(body=b"<html>captive portal</html>", content_type="text/html"),
    }[failure]
    cert = issue(pki)

    started = time.monotonic()
    assert refusal(validator(trust(tmp_path, pki, crl=url), timeout=0.5), cert) \
        == "revocation_unknown"
    assert time.monotonic() - started < 2.0
    open_ = validator(trust(tmp_path, pki, crl=url, failure="open"), timeout=0.5)
    assert accepted(open_, cert).revocation_checked is False


def test_oversized_crl_is_refused_without_reading_it_all(pki: DevCA, tmp_path: Path,
                                                        server: LoopbackServer) -> None:
    """D02: a CRL server sending without end (1 GiB advertised) cannot make us read or hold
    it all: beyond the limit the download stops and the CRL is unavailable."""
    server.routes["/issuing.crl"] = Reply(endless=True)
    checker = validator(trust(tmp_path, pki, crl=server.url("/issuing.crl")), timeout=2.0)

    assert refusal(checker, issue(pki)) == "revocation_unknown"
    assert server.stream_ended.wait(10)
    assert revocation.MAX_CRL_BYTES < server.streamed < 64 * 1024 * 1024


@pytest.mark.parametrize("broken", ["garbage status line", "truncated chunked body"])
@pytest.mark.parametrize("source", ["crl", "ocsp"])
def test_revocation_server_speaking_broken_http_is_unavailable(
        pki: DevCA, tmp_path: Path, server: LoopbackServer, broken: str, source: str) -> None:
    """D02: a revocation server that answers with broken HTTP is no answer: the CA's
    revocation_failure decides, and the login gets a reason rather than an internal error."""
    server.routes["/r"] = Reply(raw={
        "garbage status line": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        "truncated chunked body":
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + b"x" * 10,
    }[broken])
    where = {"crl": server.url("/r")} if source == "crl" else {"ocsp_url": server.url("/r")}
    cert = issue(pki)

    assert refusal(validator(trust(tmp_path, pki, **where)), cert) == "revocation_unknown"
    open_ = validator(trust(tmp_path, pki, failure="open", **where))
    assert accepted(open_, cert).revocation_checked is False


def test_trickling_crl_server_is_cut_off_at_the_timeout(pki: DevCA, tmp_path: Path,
                                                       server: LoopbackServer) -> None:
    """D02: ukey_revocation_timeout bounds one CRL download; a server trickling a byte at a
    time (each within the socket timeout) must not hold a login for longer."""
    server.routes["/issuing.crl"] = Reply(body=b"0123456789", drip=0.2)  # 2 s in all
    checker = validator(trust(tmp_path, pki, crl=server.url("/issuing.crl")), timeout=0.4)

    started = time.monotonic()
    assert refusal(checker, issue(pki)) == "revocation_unknown"
    assert time.monotonic() - started < 1.3


def test_crl_url_with_upper_case_scheme_is_fetched(pki: DevCA, tmp_path: Path,
                                                  server: LoopbackServer) -> None:
    """D02: load_trust accepts ``HTTP://…`` as a URL (schemes are case-insensitive), so the
    checker must download it, not look for a file of that name."""
    cert = issue(pki)
    pki.revoke(cert.serial_number)
    server.routes["/issuing.crl"] = Reply(body=pki.path("crl", "issuing.crl").read_bytes())
    url = f"HTTP://127.0.0.1:{server.port}/issuing.crl"
    cas = trust(tmp_path, pki, crl=url)
    assert cas[1].crl.lower() == url.lower()  # accepted as a URL

    assert refusal(validator(cas), cert) == "revoked"
    assert server.hits["/issuing.crl"] == 1


# --- OCSP --------------------------------------------------------------------------------------

@dataclass
class Responder:
    """An OCSP responder (RFC 6960): answers about the CertID in the request, signed by
    ``key`` with ``responder`` named as the signer and ``include`` sent along."""

    responder: x509.Certificate
    key: Any
    status: ocsp.OCSPCertStatus = Status.GOOD
    include: tuple[x509.Certificate, ...] = ()
    serial_offset: int = 0  # answer about another certificate
    key_hash: bytes | None = None  # answer about another issuer
    this_update: timedelta = timedelta(minutes=-1)
    next_update: timedelta | None = timedelta(hours=1)
    serials: list[int] = field(default_factory=list)

    def answer(self, request: ocsp.OCSPRequest) -> ocsp.OCSPResponse:
        now = datetime.now(UTC)
        self.serials.append(request.serial_number)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            request.issuer_name_hash, self.key_hash or request.issuer_key_hash,
            request.serial_number + self.serial_offset, request.hash_algorithm, self.status,
            now + self.this_update,
            None if self.next_update is None else now + self.next_update,
            now - timedelta(hours=1) if self.status == Status.REVOKED else None,
            x509.ReasonFlags.key_compromise if self.status == Status.REVOKED else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.responder)
        if self.include:
            builder = builder.certificates(list(self.include))
        return builder.sign(self.key, hashes.SHA256())

    def __call__(self, body: bytes) -> Reply:
        der = self.answer(ocsp.load_der_ocsp_request(body)).public_bytes(
            serialization.Encoding.DER)
        return Reply(body=der, content_type="application/ocsp-response")


def ocsp_trust(tmp_path: Path, pki: DevCA, server: LoopbackServer, responder: Route, *,
               crl: object = "", failure: str = "closed") -> list[TrustedCa]:
    server.routes["/ocsp"] = responder
    return trust(tmp_path, pki, ocsp_url=server.url("/ocsp"), crl=crl, failure=failure)


@pytest.mark.parametrize(("status", "outcome"), [
    (Status.GOOD, "accepted"), (Status.REVOKED, "revoked"), (Status.UNKNOWN, "revocation_unknown"),
])
def test_ocsp_answer_signed_by_the_ca(pki: DevCA, tmp_path: Path, server: LoopbackServer,
                                      issuing: Authority, status: ocsp.OCSPCertStatus,
                                      outcome: str) -> None:
    """D02: the CA's own OCSP answer decides: good logs in, revoked is refused, unknown (with
    no CRL to fall back on) is no answer."""
    responder = Responder(issuing.cert, issuing.key, status=status)
    checker = validator(ocsp_trust(tmp_path, pki, server, responder))
    cert = issue(pki)

    if outcome == "accepted":
        assert accepted(checker, cert).revocation_checked is True
    else:
        assert refusal(checker, cert) == outcome
    assert responder.serials == [cert.serial_number]


@pytest.mark.parametrize(("status", "outcome"), [
    (Status.GOOD, "accepted"), (Status.REVOKED, "revoked")])
def test_ocsp_answer_from_a_delegated_responder(pki: DevCA, tmp_path: Path,
                                                server: LoopbackServer, issuing: Authority,
                                                status: ocsp.OCSPCertStatus,
                                                outcome: str) -> None:
    """D02: a responder certificate the CA issued with id-kp-OCSPSigning may answer for it."""
    cert_, key = make_certificate(issuing, "OCSP responder",
                                  eku=ExtendedKeyUsageOID.OCSP_SIGNING)
    responder = Responder(cert_, key, status=status, include=(cert_,))
    checker = validator(ocsp_trust(tmp_path, pki, server, responder))

    if outcome == "accepted":
        accepted(checker, issue(pki))
    else:
        assert refusal(checker, issue(pki)) == outcome


@pytest.mark.parametrize("signer", [
    "unrelated key", "untrusted CA", "responder without OCSPSigning",
    "responder from the untrusted CA", "expired responder", "responder certificate not sent",
])
def test_ocsp_answer_from_an_unauthorised_signer_is_unavailable(
        pki: DevCA, tmp_path: Path, server: LoopbackServer, issuing: Authority,
        untrusted: Authority, signer: str) -> None:
    """D02: an OCSP "revoked" or "good" counts only when signed by the CA or a responder it
    delegated; otherwise it is no answer (here even a "good" one)."""
    ocsp_eku = ExtendedKeyUsageOID.OCSP_SIGNING
    if signer == "unrelated key":
        responder = Responder(issuing.cert, ec.generate_private_key(ec.SECP256R1()))
    elif signer == "untrusted CA":
        responder = Responder(untrusted.cert, untrusted.key)
    else:
        issuer, eku, start = issuing, ocsp_eku, None
        if signer == "responder without OCSPSigning":
            eku = ExtendedKeyUsageOID.CLIENT_AUTH
        elif signer == "responder from the untrusted CA":
            issuer = untrusted
        elif signer == "expired responder":
            start = datetime.now(UTC) - timedelta(days=40)
        cert_, key = make_certificate(issuer, "OCSP responder", eku=eku, not_before=start)
        sent = () if signer == "responder certificate not sent" else (cert_,)
        responder = Responder(cert_, key, include=sent)
    checker = validator(ocsp_trust(tmp_path, pki, server, responder))

    assert refusal(checker, issue(pki)) == "revocation_unknown"


@pytest.mark.parametrize("answer", ["another serial", "another issuer", "thisUpdate ahead",
                                    "nextUpdate passed"])
def test_ocsp_answer_about_something_else_is_unavailable(
        pki: DevCA, tmp_path: Path, server: LoopbackServer, issuing: Authority,
        answer: str) -> None:
    """D02: an OCSP answer counts only for the certificate asked about, and only while fresh."""
    responder = Responder(issuing.cert, issuing.key)
    if answer == "another serial":
        responder.serial_offset = 1
    elif answer == "another issuer":
        responder.key_hash = b"\x01" * 20
    elif answer == "thisUpdate ahead":
        responder.this_update = timedelta(hours=1)
    else:
        responder.this_update, responder.next_update = timedelta(hours=-3), timedelta(hours=-1)
    checker = validator(ocsp_trust(tmp_path, pki, server, responder))

    assert refusal(checker, issue(pki)) == "revocation_unknown"


def test_ocsp_answer_without_next_update_must_be_recent(pki: DevCA, tmp_path: Path,
                                                       server: LoopbackServer,
                                                       issuing: Authority) -> None:
    """D02: RFC 6960 §3.2 — thisUpdate must be "sufficiently recent". An answer without
    nextUpdate made a minute ago counts; a month-old one (replayed over plain http after the
    UKey was revoked) must not."""
    responder = Responder(issuing.cert, issuing.key, next_update=None)
    checker = validator(ocsp_trust(tmp_path, pki, server, responder))
    accepted(checker, issue(pki))

    responder.this_update = timedelta(days=-30)
    assert refusal(validator(checker.cas), issue(pki)) == "revocation_unknown"


@pytest.mark.parametrize("status", [
    ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.INTERNAL_ERROR,
    ocsp.OCSPResponseStatus.UNAUTHORIZED, ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
])
def test_ocsp_unsuccessful_response_is_unavailable(pki: DevCA, tmp_path: Path,
                                                   server: LoopbackServer,
                                                   status: ocsp.OCSPResponseStatus) -> None:
    """D02: a responder that says it cannot answer gives no answer."""
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER)
    checker = validator(ocsp_trust(tmp_path, pki, server, Reply(body=der)))

    assert refusal(checker, issue(pki)) == "revocation_unknown"


@pytest.mark.parametrize("failure", ["500", "timeout", "not OCSP", "connection refused"])
def test_ocsp_down_falls_back_to_the_crl(pki: DevCA, tmp_path: Path, server: LoopbackServer,
                                         failure: str) -> None:
    """D02: when the responder cannot be had and the CA also publishes a CRL, the CRL
    decides; with no CRL, fail-closed refuses and fail-open accepts unchecked."""
    good, bad = issue(pki), issue(pki)
    pki.revoke(bad.serial_number)
    crl_file = snapshot_crl(pki, tmp_path / "issuing.crl")
    server.routes["/ocsp"] = {
        "500": Reply(status=500), "timeout": Reply(delay=2.0),
        "not OCSP": Reply(body=b"<html>hello</html>", content_type="text/html"),
        "connection refused": Reply(),
    }[failure]
    url = server.url("/ocsp")
    if failure == "connection refused":
        url = f"http://127.0.0.1:{free_port()}/ocsp"

    checker = validator(trust(tmp_path, pki, ocsp_url=url, crl=crl_file), timeout=0.3)
    assert accepted(checker, good).revocation_checked is True
    assert refusal(checker, bad) == "revoked"

    only_ocsp = validator(trust(tmp_path, pki, ocsp_url=url), timeout=0.3)
    assert refusal(only_ocsp, good) == "revocation_unknown"
    open_ = validator(trust(tmp_path, pki, ocsp_url=url, failure="open"), timeout=0.3)
    assert accepted(open_, good).revocation_checked is False


def test_ocsp_is_asked_before_the_crl(pki: DevCA, tmp_path: Path, server: LoopbackServer,
                                      issuing: Authority) -> None:
    """D02: OCSP is the fresher source: its "revoked" stands though the CRL does not list the
    certificate yet, and its "unknown" defers to the CRL."""
    crl_file = snapshot_crl(pki, tmp_path / "issuing.crl")
    cert = issue(pki)

    revoked = Responder(issuing.cert, issuing.key, status=Status.REVOKED)
    assert refusal(validator(ocsp_trust(tmp_path, pki, server, revoked, crl=crl_file)), cert) \
        == "revoked"
    unknown = Responder(issuing.cert, issuing.key, status=Status.UNKNOWN)
    accepted(validator(ocsp_trust(tmp_path, pki, server, unknown, crl=crl_file)), cert)


def test_ocsp_url_from_the_certificate_aia(pki: DevCA, tmp_path: Path, server: LoopbackServer,
                                           issuing: Authority) -> None:
    """D02: with ``ocsp = "aia"`` each certificate names its responder (Authority Information
    Access); a certificate without one falls back to the CRL, or has no answer without one."""
    responder = Responder(issuing.cert, issuing.key, status=Status.REVOKED)
    server.routes["/aia-ocsp"] = responder
    with_aia, _ = make_certificate(issuing, DEMO_NAME, eku=ExtendedKeyUsageOID.CLIENT_AUTH,
                                   aia_ocsp=server.url("/aia-ocsp"))
    crl_file = snapshot_crl(pki, tmp_path / "issuing.crl")

    assert refusal(validator(trust(tmp_path, pki, ocsp_url="aia")), with_aia) == "revoked"
    assert responder.serials == [with_aia.serial_number]

    without_aia = issue(pki)
    accepted(validator(trust(tmp_path, pki, ocsp_url="aia", crl=crl_file)), without_aia)
    assert refusal(validator(trust(tmp_path, pki, ocsp_url="aia")), without_aia) \
        == "revocation_unknown"
    assert server.hits["/aia-ocsp"] == 1


def _rebuild(response: ocsp.OCSPResponse, signer: Authority, *, extra: list[Any] | None = None,
             algorithm: str | None = None) -> bytes:
    """Edit a signed BasicOCSPResponse where ``cryptography``'s builder cannot: add single
    responses (re-signing with ``signer``), or relabel the signature algorithm."""
    outer = asn1_ocsp.OCSPResponse.load(response.public_bytes(serialization.Encoding.DER))
    basic = outer["response_bytes"]["response"].parsed
    if extra is not None:
        data = basic["tbs_response_data"]
        data["responses"] = [*extra, *data["responses"]]
        tbs = data.dump(force=True)
        assert isinstance(signer.key, rsa.RSAPrivateKey)
        basic["signature"] = signer.key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        basic["tbs_response_data"] = asn1_ocsp.ResponseData.load(tbs)
    if algorithm is not None:
        basic["signature_algorithm"] = {"algorithm": algorithm}
    outer["response_bytes"]["response"] = basic
    der: bytes = outer.dump(force=True)
    return der


def test_ocsp_answer_with_several_single_responses(pki: DevCA, tmp_path: Path,
                                                  server: LoopbackServer,
                                                  issuing: Authority) -> None:
    """D02: RFC 6960 lets a responder send more SingleResponses than asked for; the one about
    our certificate counts (here "revoked"), and the others must not crash the login."""
    def respond(body: bytes) -> Reply:
        request = ocsp.load_der_ocsp_request(body)
        mine = Responder(issuing.cert, issuing.key, status=Status.REVOKED).answer(request)
        other = Responder(issuing.cert, issuing.key, serial_offset=1).answer(request)
        other_single = asn1_ocsp.OCSPResponse.load(other.public_bytes(
            serialization.Encoding.DER))["response_bytes"]["response"].parsed[
            "tbs_response_data"]["responses"][0]
        return Reply(body=_rebuild(mine, issuing, extra=[other_single]))

    checker = validator(ocsp_trust(tmp_path, pki, server, respond))
    assert refusal(checker, issue(pki)) == "revoked"


def test_ocsp_answer_signed_with_sm2_is_no_answer_not_a_crash(pki: DevCA, tmp_path: Path,
                                                             server: LoopbackServer,
                                                             issuing: Authority) -> None:
    """D02: 法人一证通 CAs sign with SM2-with-SM3, which ``cryptography`` cannot verify; such an
    OCSP answer (unless verified another way) is no answer — a reason, not an internal error."""
    def respond(body: bytes) -> Reply:
        answer = Responder(issuing.cert, issuing.key).answer(ocsp.load_der_ocsp_request(body))
        return Reply(body=_rebuild(answer, issuing, algorithm=SM2_SM3_OID))

    checker = validator(ocsp_trust(tmp_path, pki, server, respond))
    assert refusal(checker, issue(pki)) == "revocation_unknown"


# --- the trust file ----------------------------------------------------------------------------

def _entry(name: str, cert: object, **extra: object) -> str:
    lines = [f"[[ca]]\nname = {_q(name)}\ncertificate = {_q(cert)}"]
    lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n\n"


def _config_cases(pki: DevCA) -> dict[str, tuple[str | None, str]]:
    """Trust-file text (None: no file) and what the ConfigError must say."""
    root, issuing = pki.path("root.pem"), pki.path("issuing.pem")
    anchor = _entry(ROOT_NAME, root, anchor=True, crl="crl/root.crl")
    return {
        "missing file": (None, r"trust file .* not found"),
        "bad TOML": ("[[ca]\nname = ", r"is not valid TOML"),
        "no [[ca]]": ('title = "nothing"\n', r"lists no \[\[ca\]\]"),
        "unknown key": (anchor + _entry(ISSUING_NAME, issuing, crl="x.crl", colour="red"),
                        r"\[\[ca\]\] #2 key 'colour': unknown"),
        "non-CA certificate": (
            anchor + _entry(DEMO_NAME, pki.sample("demo").pem_path, crl="x.crl"),
            r"#2 key 'certificate': .*demo\.pem is not a CA certificate"),
        "certificate not found": (_entry(ROOT_NAME, "absent.pem", anchor=True, crl="x.crl"),
                                  r"#1 key 'certificate': absent\.pem not found"),
        "certificate not PEM": (_entry(ROOT_NAME, pki.path("crl", "root.crl"), anchor=True,
                                       crl="x.crl"), r"#1 key 'certificate': .* not a PEM"),
        "no anchor": (_entry(ISSUING_NAME, issuing, crl="x.crl"), r"no trust anchor"),
        "bad revocation_failure": (
            _entry(ROOT_NAME, root, anchor=True, crl="x.crl", revocation_failure="maybe"),
            r"#1 key 'revocation_failure': expected closed or open"),
        "crl ftp URL": (_entry(ROOT_NAME, root, anchor=True, crl="ftp://x"),
                        r"#1 key 'crl': only a file path or an http\(s\) URL"),
        "crl file URL": (_entry(ROOT_NAME, root, anchor=True, crl="file:///etc/x.crl"),
                         r"#1 key 'crl': only a file path"),
        "ocsp ftp URL": (_entry(ROOT_NAME, root, anchor=True, ocsp="ftp://x"),
                         r"#1 key 'ocsp': expected"),
        "neither crl nor ocsp": (_entry(ROOT_NAME, root, anchor=True),
                                 r"#1: give 'crl' or 'ocsp', or set check_revocation = false"),
        "anchor not a boolean": (_entry(ROOT_NAME, root, anchor="yes", crl="x.crl"),
                                 r"#1 key 'anchor': expected true or false"),
        "name missing": (f"[[ca]]\ncertificate = {_q(root)}\nanchor = true\ncrl = \"x\"\n",
                         r"#1 key 'name': required"),
    }


CONFIG_CASES = ["missing file", "bad TOML", "no [[ca]]", "unknown key", "non-CA certificate",
                "certificate not found", "certificate not PEM", "no anchor",
                "bad revocation_failure", "crl ftp URL", "crl file URL", "ocsp ftp URL",
                "neither crl nor ocsp", "anchor not a boolean", "name missing"]


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_trust_file_is_a_config_error_naming_the_place(pki: DevCA, tmp_path: Path,
                                                           case: str) -> None:
    """D02: the UKey trust list is security configuration; a mistake in it stops start-up
    with a message naming the file, the [[ca]] entry and the key."""
    text, message = _config_cases(pki)[case]
    file = tmp_path / "trust.toml"
    if text is not None:
        file.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=message) as info:
        load_trust(file)
    assert str(info.value).startswith("ukey_trust:")


def test_trust_file_locations(pki: DevCA, tmp_path: Path) -> None:
    """D02: CRL paths are relative to the trust file, URLs are kept, and a CA that publishes
    nothing may opt out of revocation checking explicitly."""
    text = (_entry(ROOT_NAME, pki.path("root.pem"), anchor=True, crl="crl/root.crl")
            + _entry(ISSUING_NAME, pki.path("issuing.pem"), crl="http://127.0.0.1:9/i.crl",
                     ocsp="aia", revocation_failure="open")
            + _entry("不发布的CA", pki.path("sm2-root.pem"), anchor=True, check_revocation=False))
    (tmp_path / "trust.toml").write_text(text, encoding="utf-8")

    root, issuing_, quiet = load_trust(tmp_path / "trust.toml")
    assert root.crl == str(tmp_path / "crl" / "root.crl") and root.anchor
    assert root.revocation_failure == "closed" and not root.fail_open
    assert issuing_.crl == "http://127.0.0.1:9/i.crl" and issuing_.ocsp == "aia"
    assert issuing_.fail_open and not issuing_.anchor
    assert quiet.check_revocation is False and quiet.crl == quiet.ocsp == ""
