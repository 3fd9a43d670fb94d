"""``idp certs init|issue|revoke``: the development CA from the real console script (D02:
authentication by X.509 UKey client certificate — developers and the e2e tests get their UKey
certificates, the localhost TLS certificate and the trust list from these commands).

The installed ``idp`` script runs in a subprocess, in a temporary working directory, with no
``IDP_*`` variables but an empty configuration file, as a developer would run it. ``init`` runs
once per module (it makes RSA and SM2 keys); the tests read what it made. Each run of the script
costs about a second, so the runs that cannot disturb the CA under test (other directories,
usage errors, read-only look-ups) are started together in the background when the module begins
and their results are collected by the tests that need them; runs that write the CA's index
happen one at a time.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from idp.pki.devca import ISSUING_NAME, ROOT_NAME, SM2_ROOT_NAME
from idp.pki.trust import load_trust

IDP = Path(sys.executable).parent / "idp"
USCC = "91350100M000100Y43"
NAME = "福州测试物业有限公司"
OID_GMT0015 = "1.2.156.10260.4.1.4"
SM2_SM3 = "1.2.156.10197.1.501"
CA_DIR = "X"

EXPECTED_FILES = ["root.pem", "issuing.pem", "ca-bundle.pem", "server.pem", "server.key.pem",
                  "trust.toml", "crl/issuing.crl", "enterprises/demo.p12", "index.json"]


class Started:
    """A run of ``idp`` going on in the background; ``result`` waits for it (once)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._done: subprocess.CompletedProcess[str] | None = None

    def result(self) -> subprocess.CompletedProcess[str]:
        if self._done is None:
            out, err = self.process.communicate(timeout=60)
            self._done = subprocess.CompletedProcess(self.process.args, self.process.returncode,
                                                     out, err)
        return self._done

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.result()


class Workspace:
    """A working directory with its own (empty) configuration, where ``idp`` is run."""

    def __init__(self, root: Path) -> None:
        self.cwd = root
        config = root / "idp.toml"
        config.write_text("[idp]\n", encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        self.env["IDP_CONFIG"] = str(config)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(IDP), *args], cwd=self.cwd, env=self.env, text=True,
                              capture_output=True, timeout=60, check=False)

    def start(self, *args: str) -> Started:
        return Started(subprocess.Popen([str(IDP), *args], cwd=self.cwd, env=self.env,
                                        text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE))

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def path(self, *parts: str) -> Path:
        return self.cwd.joinpath(CA_DIR, *parts)


def assert_clean_failure(done: subprocess.CompletedProcess[str], *needles: str,
                         code: int | None = None) -> None:
    """A refusal a person can read: non-zero exit, the reason on stderr, no traceback."""
    assert done.returncode != 0, done.stdout
    if code is not None:
        assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for needle in needles:
        assert needle in done.stderr, done.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("devca-cli"))


OCCUPIED = {
    "occupied-files": {"mine.txt": "keep me"},
    "occupied-index": {"index.json": '{"mine": true}', "mine.txt": "keep me"},
}
BAD_OPTIONS = [("--key", "dsa"), ("--days", "0"), ("--oid", "9999")]
WITHOUT_INIT = {"issue": ("issue", "--uscc", USCC, "--name", NAME),
                "revoke": ("revoke", "1000")}


@pytest.fixture(scope="module")
def background(work: Workspace) -> Iterator[dict[str, Started]]:
    """The runs that touch neither the CA under test nor each other, started at once."""
    started: dict[str, Started] = {}
    for directory, files in OCCUPIED.items():
        (work.cwd / directory).mkdir()
        for name, text in files.items():
            (work.cwd / directory / name).write_text(text, encoding="utf-8")
        started[directory] = work.start("certs", "init", "--dir", directory)
    for option, value in BAD_OPTIONS:
        started[option] = work.start("certs", "issue", "--uscc", USCC, "--name", NAME, option,
                                     value, "--dir", CA_DIR)
    for command, args in WITHOUT_INIT.items():
        started[command] = work.start("certs", *args, "--dir", "missing-ca")
    yield started
    for run in started.values():
        run.stop()


@pytest.fixture(scope="module")
def first_init(work: Workspace, background: dict[str, Started]
               ) -> subprocess.CompletedProcess[str]:
    done = work.ok("certs", "init", "--dir", CA_DIR)
    background["revoke unknown"] = work.start("certs", "revoke", "ffffff", "--dir", CA_DIR)
    return done


@pytest.fixture(scope="module")
def issued_ec(work: Workspace, first_init: Any) -> dict[str, Any]:
    done = work.ok("certs", "issue", "--uscc", USCC, "--name", NAME, "--key", "ec", "--days",
                   "30", "--oid", "10260", "--dir", CA_DIR, "--json")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def load_pem(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def crl_signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return crl.is_signature_valid(key)


# --- init ------------------------------------------------------------------------------------

def test_init_creates_the_pki(work: Workspace, first_init: subprocess.CompletedProcess[str]
                              ) -> None:
    """D02: one command gives the CAs, the CRLs, the localhost TLS certificate with its private
    key readable by its owner only, the trust list and a demo PKCS#12 (password "demo")."""
    assert "created" in first_init.stdout
    for name in EXPECTED_FILES:
        assert work.path(name).is_file(), name
    assert stat.S_IMODE(work.path("server.key.pem").stat().st_mode) == 0o600
    key, cert, extra = pkcs12.load_key_and_certificates(
        work.path("enterprises", "demo.p12").read_bytes(), b"demo")
    assert key is not None and cert is not None
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "演示物业服务有限公司")
    assert [c.subject for c in extra] == [load_pem(work.path("issuing.pem")).subject]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(work.path("enterprises", "demo.p12").read_bytes(),
                                         b"wrong")
    index = json.loads(work.path("index.json").read_text(encoding="utf-8"))
    assert set(index["samples"]) == {"demo", "unregistered", "expired", "not-yet-valid",
                                     "revoked", "untrusted", "sm2"}
    names = {ca.name for ca in load_trust(work.path("trust.toml"))}
    assert names == {ROOT_NAME, ISSUING_NAME, SM2_ROOT_NAME}
    bundle = x509.load_pem_x509_certificates(work.path("ca-bundle.pem").read_bytes())
    assert [c.subject for c in bundle] == [load_pem(work.path(f)).subject
                                           for f in ("root.pem", "issuing.pem")]
    crl = x509.load_der_x509_crl(work.path("crl", "issuing.crl").read_bytes())
    assert crl_signed_by(crl, load_pem(work.path("issuing.pem")))
    assert not [p for p in work.cwd.iterdir() if p.name.startswith(f".{CA_DIR}.building")]


def test_second_init_creates_nothing_new(work: Workspace, first_init: Any) -> None:
    """D02: ``init`` is idempotent: a second run keeps the same root (developers have imported
    it) and makes no new files; it only re-publishes the CRLs."""
    before = sorted(p.relative_to(work.cwd) for p in work.path().rglob("*"))
    root = work.path("root.pem").read_bytes()
    server = work.path("server.pem").read_bytes()
    done = work.ok("certs", "init", "--dir", CA_DIR)
    assert "created" not in done.stdout
    assert "ready" in done.stdout
    assert sorted(p.relative_to(work.cwd) for p in work.path().rglob("*")) == before
    assert work.path("root.pem").read_bytes() == root
    assert work.path("server.pem").read_bytes() == server


# --- issue -----------------------------------------------------------------------------------

def test_issue_ec_with_json(work: Workspace, issued_ec: dict[str, Any]) -> None:
    """D02: ``issue --json`` prints where everything is; the certificate names the enterprise in
    O and CN and carries the USCC in the GM/T 0015 OrganizationCode extension when asked."""
    assert set(issued_ec) == {"serial", "certificate", "key", "pkcs12"}
    cert = load_pem(work.cwd / issued_ec["certificate"])
    assert format(cert.serial_number, "x") == issued_ec["serial"]
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        assert [a.value for a in cert.subject.get_attributes_for_oid(oid)] == [NAME]
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_GMT0015))
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert core.load(ext.value.value).native == USCC
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)
    assert cert.issuer == load_pem(work.path("issuing.pem")).subject
    assert (work.cwd / issued_ec["key"]).is_file()
    key, p12_cert, _ = pkcs12.load_key_and_certificates(
        (work.cwd / issued_ec["pkcs12"]).read_bytes(), b"demo")
    assert p12_cert == cert and key is not None


def test_issue_sm2(work: Workspace, first_init: Any) -> None:
    """D02: an SM2 certificate is signed SM2-with-SM3 by the SM2 root; no PKCS#12 (cryptography
    cannot write one for SM2 keys), said as null."""
    done = work.ok("certs", "issue", "--uscc", USCC, "--name", NAME, "--key", "sm2", "--dir",
                   CA_DIR, "--json")
    result = json.loads(done.stdout)
    assert result["pkcs12"] is None
    cert = load_pem(work.cwd / result["certificate"])
    assert cert.signature_algorithm_oid.dotted_string == SM2_SM3
    assert cert.issuer == load_pem(work.path("sm2-root.pem")).subject


# --- revoke ----------------------------------------------------------------------------------

def test_revoke_lists_the_serial_in_the_crl(work: Workspace, issued_ec: dict[str, Any]) -> None:
    """D02: after ``revoke`` the issuing CA's CRL (signed by it) lists the certificate."""
    serial = int(issued_ec["serial"], 16)
    before = x509.load_der_x509_crl(work.path("crl", "issuing.crl").read_bytes())
    assert before.get_revoked_certificate_by_serial_number(serial) is None
    done = work.ok("certs", "revoke", issued_ec["serial"], "--dir", CA_DIR)
    assert issued_ec["serial"] in done.stdout
    crl = x509.load_der_x509_crl(work.path("crl", "issuing.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert crl_signed_by(crl, load_pem(work.path("issuing.pem")))


def test_revoke_unknown_serial(background: dict[str, Started], first_init: Any) -> None:
    """D02: a serial the CA never issued is a clear refusal, not a traceback."""
    done = background["revoke unknown"].result()
    assert_clean_failure(done, "no certificate with serial ffffff", code=1)


# --- without a CA, with bad options ----------------------------------------------------------

@pytest.mark.parametrize("command", list(WITHOUT_INIT))
def test_commands_without_init(work: Workspace, background: dict[str, Started],
                               command: str) -> None:
    """D02: issue/revoke before ``init`` say what to do, exit non-zero, and create nothing."""
    assert_clean_failure(background[command].result(), "idp certs init", code=1)
    assert not (work.cwd / "missing-ca").exists()


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_bad_option_values_are_usage_errors(background: dict[str, Started], option: str,
                                            value: str) -> None:
    """D02: values outside the documented choices (key types, 1–3650 days, the four places of
    the USCC) are click usage errors (exit 2) naming the option; nothing is issued."""
    assert_clean_failure(background[option].result(), "Usage:", option, code=2)


@pytest.mark.parametrize("directory", list(OCCUPIED))
def test_init_never_touches_a_directory_it_did_not_make(
        work: Workspace, background: dict[str, Started], directory: str) -> None:
    """D02: ``init --dir`` pointed at an existing directory that is not a development CA (even
    one holding some other index.json) refuses with a clear message, deletes nothing, and leaves
    no half-built CA behind."""
    assert_clean_failure(background[directory].result(), directory)
    for name, text in OCCUPIED[directory].items():
        assert (work.cwd / directory / name).read_text(encoding="utf-8") == text
    assert not [p for p in work.cwd.iterdir() if p.name.startswith(f".{directory}.building")]


# --- the TLS server certificate ---------------------------------------------------------------

def test_server_certificate(work: Workspace, first_init: Any) -> None:
    """D02: the embedded TLS server presents a localhost certificate (SAN localhost and
    127.0.0.1, EKU serverAuth) that chains to root.pem; server.pem carries that chain."""
    chain = x509.load_pem_x509_certificates(work.path("server.pem").read_bytes())
    root = load_pem(work.path("root.pem"))
    server = chain[0]
    assert chain[1:] == [root]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1")]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(root)
    key_pem = work.path("server.key.pem").read_bytes()
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key() == server.public_key()
