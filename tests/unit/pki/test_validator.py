"""``CertificateValidator``: which enterprise certificates may log in (D02: authentication by
X.509 UKey client certificate).

The sample certificates of the development CA (session fixture ``devca``) give the everyday
answers; certificates the DevCA cannot make (foreign keys under a trusted name, chain loops,
constrained or expired CAs, odd key usages) are built here with ``cryptography`` and signed by the
development CA keys. Where revocation is not the point the trust file written here says
``check_revocation = false``, so that the answer depends only on what the test is about.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from idp.config import ConfigError
from idp.pki.certs import MESSAGES, OID_SHECA_USCC, CertificateError
from idp.pki.devca import (
    DEMO_NAME,
    DEMO_USCC,
    ISSUING_NAME,
    ROOT_NAME,
    SAMPLES,
    SM2_ROOT_NAME,
    DevCA,
    identifier_extension,
)
from idp.pki.trust import load_trust
from idp.pki.validator import CertificateValidator, ValidatedCertificate

BEIJING = timedelta(hours=8)
MSG_REVOKED = "证书已被吊销，请联系发证机构。"
MSG_UNTRUSTED = "证书不是由受信任的证书颁发机构签发，无法登录。"
MSG_CA = "这是证书颁发机构的证书，不能用于登录。"
MSG_KEY_USAGE = "该证书的用途不包括身份认证，不能用于登录。"


# --- building blocks -------------------------------------------------------------------------

@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @property
    def name(self) -> x509.Name:
        return self.cert.subject


def devca_authority(devca: DevCA, ca_id: str) -> Authority:
    cert = x509.load_pem_x509_certificate(devca.path(f"{ca_id}.pem").read_bytes())
    key = serialization.load_pem_private_key(devca.path(f"{ca_id}.key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return Authority(cert, key)


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ca_name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "测试数字证书认证中心"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca_key_usage(key_cert_sign: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not key_cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
        crl_sign=True, encipher_only=False, decipher_only=False)


def make_ca(cn: str, signer: Authority | None, *, path_length: int | None = None,
            key_usage: x509.KeyUsage | None = None, with_key_usage: bool = True,
            not_before: datetime | None = None, not_after: datetime | None = None,
            issuer_name: x509.Name | None = None, key: ec.EllipticCurvePrivateKey | None = None,
            signing_key: CertificateIssuerPrivateKeyTypes | None = None) -> Authority:
    """A CA certificate (EC key) signed by ``signer`` (None: self-signed)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = not_before or now_s() - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(ca_name(cn))
        .issuer_name(issuer_name or (signer.name if signer else ca_name(cn)))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    )
    if with_key_usage:
        builder = builder.add_extension(key_usage or ca_key_usage(), critical=True)
    signer_key = signing_key or (signer.key if signer else key)
    cert = builder.sign(signer_key, hashes.SHA256())
    return Authority(cert, key)


LEAF_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=True, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False)


def make_leaf(issuer: Authority, *, key_usage: x509.KeyUsage | None = LEAF_USAGE,
              eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
              not_before: datetime | None = None, not_after: datetime | None = None,
              issuer_name: x509.Name | None = None,
              signing_key: CertificateIssuerPrivateKeyTypes | None = None
              ) -> x509.Certificate:
    """An enterprise certificate of the demo enterprise (USCC in the SHECA extension)."""
    start = not_before or now_s() - timedelta(minutes=10)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_NAME),
                                 x509.NameAttribute(NameOID.COMMON_NAME, DEMO_NAME)]))
        .issuer_name(issuer_name or issuer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(identifier_extension(OID_SHECA_USCC, DEMO_USCC), critical=False)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(signing_key or issuer.key, hashes.SHA256())


@dataclass(frozen=True)
class Entry:
    name: str
    cert: x509.Certificate
    anchor: bool = False
    crl: Path | None = None  # None: check_revocation = false


def write_trust(directory: Path, *entries: Entry) -> Path:
    """A trust file listing exactly ``entries`` (PEM files written beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, entry in enumerate(entries):
        pem = directory / f"ca-{i}.pem"
        pem.write_bytes(entry.cert.public_bytes(serialization.Encoding.PEM))
        text = (f'[[ca]]\nname = "{entry.name}"\ncertificate = "{pem.name}"\n'
                f"anchor = {'true' if entry.anchor else 'false'}\n")
        text += f'crl = "{entry.crl}"\n' if entry.crl else "check_revocation = false\n"
        parts.append(text)
    path = directory / "trust.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def validator_for(directory: Path, *entries: Entry, clock_skew: int = 300) -> CertificateValidator:
    return CertificateValidator(load_trust(write_trust(directory, *entries)),
                                clock_skew=clock_skew)


def refused(validator: CertificateValidator, cert: x509.Certificate | bytes | str,
            now: datetime | None = None) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        validator.validate(cert, now=now)
    return info.value


def beijing(moment: datetime) -> str:
    return (moment + BEIJING).strftime("%Y-%m-%d %H:%M")


@pytest.fixture(scope="module")
def validator(devca: DevCA) -> CertificateValidator:
    """What the application builds from ``idp certs init``'s trust.toml (CRLs checked)."""
    return CertificateValidator(load_trust(devca.trust_file))


@pytest.fixture(scope="module")
def root(devca: DevCA) -> Authority:
    return devca_authority(devca, "root")


@pytest.fixture(scope="module")
def issuing(devca: DevCA) -> Authority:
    return devca_authority(devca, "issuing")


@pytest.fixture
def root_and_issuing(root: Authority, issuing: Authority) -> tuple[Entry, Entry]:
    return Entry(ROOT_NAME, root.cert, anchor=True), Entry(ISSUING_NAME, issuing.cert)


# --- the samples of the development CA -------------------------------------------------------

@pytest.mark.parametrize(("sample", "issuer", "depth"), [
    ("demo", ISSUING_NAME, 3), ("unregistered", ISSUING_NAME, 3), ("sm2", SM2_ROOT_NAME, 2)])
def test_good_samples_are_accepted(devca: DevCA, validator: CertificateValidator, sample: str,
                                   issuer: str, depth: int) -> None:
    """D02: the demo, unregistered and SM2 samples chain to a configured anchor, are in date,
    not revoked (CRL checked) and name their enterprise. Registration is not the validator's
    business: "unregistered" passes here and is refused by the login."""
    issued = devca.sample(sample)
    for data in (issued.pem_path.read_bytes(), issued.cert):
        result = validator.validate(data)
        assert isinstance(result, ValidatedCertificate)
        uscc, name = SAMPLES[sample]
        assert (result.enterprise.uscc, result.enterprise.name) == (uscc, name)
        assert result.issuer_name == issuer
        assert len(result.chain) == depth and result.chain[0] == issued.cert
        assert result.revocation_checked is True
        assert result.serial_hex == issued.serial_hex


def test_expired_sample(devca: DevCA, validator: CertificateValidator) -> None:
    """D02: an expired UKey certificate is refused with its end date in Beijing time."""
    cert = devca.sample("expired").cert
    error = refused(validator, cert)
    assert error.reason == "expired"
    date = beijing(cert.not_valid_after_utc)
    assert error.message == MESSAGES["expired"].format(date=date)
    assert error.message == f"证书已过期（有效期至{date}），请联系发证机构更新证书。"


def test_not_yet_valid_sample(devca: DevCA, validator: CertificateValidator) -> None:
    """D02: a certificate whose validity starts later is refused with its start in Beijing
    time."""
    cert = devca.sample("not-yet-valid").cert
    error = refused(validator, cert)
    assert error.reason == "not_yet_valid"
    date = beijing(cert.not_valid_before_utc)
    assert error.message == f"证书尚未生效（生效时间{date}），请稍后再试。"


def test_revoked_sample(devca: DevCA, validator: CertificateValidator) -> None:
    """D02: the revoked sample is in the issuing CA's CRL."""
    error = refused(validator, devca.sample("revoked").pem_path.read_bytes())
    assert (error.reason, error.message) == ("revoked", MSG_REVOKED)
    assert error.message == MESSAGES["revoked"]


def test_untrusted_sample(devca: DevCA, validator: CertificateValidator) -> None:
    """D02: a certificate from a CA nobody configured is refused."""
    error = refused(validator, devca.sample("untrusted").cert)
    assert (error.reason, error.message) == ("untrusted", MSG_UNTRUSTED)
    assert error.message == MESSAGES["untrusted"]


# --- the chain: configured CAs only, verified by signature -----------------------------------

@pytest.mark.parametrize("signer", ["fresh key", "root key"])
def test_issuer_name_without_issuer_signature_is_untrusted(
        validator: CertificateValidator, issuing: Authority, root: Authority,
        signer: str) -> None:
    """D02: naming the issuing CA as issuer is not enough; the signature must be its key's
    (a forger can copy the name, and even the root's key is the wrong key for this name)."""
    key = ec.generate_private_key(ec.SECP256R1()) if signer == "fresh key" else root.key
    cert = make_leaf(issuing, signing_key=key)
    assert cert.issuer == issuing.name
    assert refused(validator, cert).reason == "untrusted"
    assert validator.validate(make_leaf(issuing)).issuer_name == ISSUING_NAME


def test_intermediate_without_anchor_fails_at_load(tmp_path: Path, issuing: Authority) -> None:
    """D02: a trust list without a trust anchor is a configuration error, found at start-up."""
    path = write_trust(tmp_path, Entry(ISSUING_NAME, issuing.cert, anchor=False))
    with pytest.raises(ConfigError, match="anchor"):
        load_trust(path)


def test_issuing_ca_as_anchor_alone(tmp_path: Path, devca: DevCA, issuing: Authority,
                                    root: Authority) -> None:
    """D02: an operator may anchor trust at the issuing CA (partial chain by configuration):
    its certificates are accepted, the chain stops there, and the unlisted root's other
    certificates are not trusted through it."""
    v = CertificateValidator(load_trust(write_trust(
        tmp_path, Entry(ISSUING_NAME, issuing.cert, anchor=True,
                        crl=devca.path("crl", "issuing.crl")))))
    result = v.validate(devca.sample("demo").cert)
    assert result.chain == (devca.sample("demo").cert, issuing.cert)
    assert result.issuer_name == ISSUING_NAME
    assert result.revocation_checked is True
    assert refused(v, devca.sample("revoked").cert).reason == "revoked"
    assert refused(v, make_leaf(root)).reason == "untrusted"


def test_chain_loop_is_untrusted_and_terminates(tmp_path: Path, root: Authority) -> None:
    """D02: two configured CAs that name each other as issuer (each signature valid) lead
    nowhere; the search stops quickly instead of looping."""
    key_a = ec.generate_private_key(ec.SECP256R1())
    key_b = ec.generate_private_key(ec.SECP256R1())
    name_a, name_b = ca_name("环路CA甲"), ca_name("环路CA乙")
    ca_a = make_ca("环路CA甲", None, key=key_a, issuer_name=name_b, signing_key=key_b)
    ca_b = make_ca("环路CA乙", None, key=key_b, issuer_name=name_a, signing_key=key_a)
    self_loop = make_ca("自签非锚CA", None)
    v = validator_for(tmp_path, Entry("甲", ca_a.cert), Entry("乙", ca_b.cert),
                      Entry("自签", self_loop.cert), Entry(ROOT_NAME, root.cert, anchor=True))
    for issuer in (ca_a, ca_b, self_loop):
        started = time.monotonic()
        assert refused(v, make_leaf(issuer)).reason == "untrusted"
        assert time.monotonic() - started < 2


def test_issuing_ca_path_length_zero_is_respected(tmp_path: Path, root: Authority,
                                                  issuing: Authority,
                                                  root_and_issuing: tuple[Entry, Entry]) -> None:
    """D02: the issuing CA has pathLenConstraint 0, so a CA below it cannot issue usable
    certificates even when the operator listed that sub-CA."""
    assert issuing.cert.extensions.get_extension_for_class(
        x509.BasicConstraints).value.path_length == 0
    sub = make_ca("违规下级CA", issuing)
    v = validator_for(tmp_path, *root_and_issuing, Entry("下级", sub.cert))
    assert refused(v, make_leaf(sub)).reason == "untrusted"
    assert v.validate(make_leaf(issuing)).issuer_name == ISSUING_NAME


@pytest.mark.parametrize(("path_length", "accepted"), [(0, False), (1, True), (None, True)])
def test_path_length_constraint(tmp_path: Path, root: Authority, path_length: int | None,
                                accepted: bool) -> None:
    """D02: pathLenConstraint counts the CA certificates below, the leaf excluded: with 0 a
    CA may issue only leaves, with 1 one more level, without a constraint any."""
    mid = make_ca("中级CA", root, path_length=path_length)
    sub = make_ca("下级CA", mid, path_length=0)
    v = validator_for(tmp_path, Entry(ROOT_NAME, root.cert, anchor=True), Entry("中级", mid.cert),
                      Entry("下级", sub.cert))
    assert v.validate(make_leaf(mid)).issuer_name == "中级"  # leaves are always fine
    if accepted:
        result = v.validate(make_leaf(sub))
        assert [c.subject for c in result.chain[1:]] == [sub.name, mid.name, root.name]
    else:
        assert refused(v, make_leaf(sub)).reason == "untrusted"


@pytest.mark.parametrize(("key_cert_sign", "with_key_usage", "accepted"), [
    (False, True, False), (True, True, True), (True, False, True)])
@pytest.mark.parametrize("as_anchor", [False, True])
def test_ca_without_key_cert_sign_cannot_issue(tmp_path: Path, root: Authority,
                                               key_cert_sign: bool, with_key_usage: bool,
                                               accepted: bool, as_anchor: bool) -> None:
    """D02: a CA certificate whose KeyUsage lacks keyCertSign may not sign certificates, as an
    intermediate or as an anchor (a CA without KeyUsage is unrestricted, RFC 5280 §4.2.1.3)."""
    ca = make_ca("无签发用途CA", None if as_anchor else root,
                 key_usage=ca_key_usage(key_cert_sign), with_key_usage=with_key_usage)
    entries = [Entry("CA", ca.cert, anchor=as_anchor)]
    if not as_anchor:
        entries.append(Entry(ROOT_NAME, root.cert, anchor=True))
    v = validator_for(tmp_path, *entries)
    if accepted:
        assert v.validate(make_leaf(ca)).issuer_name == "CA"
    else:
        assert refused(v, make_leaf(ca)).reason == "untrusted"


@pytest.mark.parametrize("window", ["expired", "not yet valid"])
@pytest.mark.parametrize("as_anchor", [False, True])
def test_ca_outside_its_validity_is_untrusted(tmp_path: Path, root: Authority, window: str,
                                              as_anchor: bool) -> None:
    """D02: every CA on the path must be inside its validity window, the leaf's own being fine:
    the user sees "untrusted" (the CA's problem, not the UKey's)."""
    now = now_s()
    if window == "expired":
        start, end = now - timedelta(days=400), now - timedelta(days=1)
    else:
        start, end = now + timedelta(days=1), now + timedelta(days=400)
    ca = make_ca("过期中级CA", None if as_anchor else root, not_before=start, not_after=end)
    leaf = make_leaf(ca, not_before=now - timedelta(days=1), not_after=now + timedelta(days=30))
    entries = [Entry("CA", ca.cert, anchor=as_anchor), Entry(ROOT_NAME, root.cert, anchor=True)]
    v = validator_for(tmp_path, *entries)
    assert refused(v, leaf).reason == "untrusted"
    good = make_ca("有效中级CA", None if as_anchor else root)
    v = validator_for(tmp_path / "good", Entry("CA", good.cert, anchor=as_anchor),
                      Entry(ROOT_NAME, root.cert, anchor=True))
    assert v.validate(make_leaf(good, not_before=now - timedelta(days=1))).issuer_name == "CA"


# --- usage -----------------------------------------------------------------------------------

NO_SIGNATURE = x509.KeyUsage(
    digital_signature=False, content_commitment=True, key_encipherment=True,
    data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False)


@pytest.mark.parametrize(("key_usage", "eku"), [
    (NO_SIGNATURE, (ExtendedKeyUsageOID.CLIENT_AUTH,)),
    (LEAF_USAGE, (ExtendedKeyUsageOID.SERVER_AUTH,)),
    (LEAF_USAGE, (ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CODE_SIGNING)),
    (NO_SIGNATURE, None),
], ids=["no digitalSignature", "serverAuth only", "email+codeSigning", "no signature, no EKU"])
def test_wrong_usage_is_refused(validator: CertificateValidator, issuing: Authority,
                                key_usage: x509.KeyUsage,
                                eku: Sequence[x509.ObjectIdentifier] | None) -> None:
    """D02: login proves possession by a signature, so KeyUsage must allow digitalSignature and
    an ExtendedKeyUsage, when present, clientAuth (or anyExtendedKeyUsage)."""
    error = refused(validator, make_leaf(issuing, key_usage=key_usage, eku=eku))
    assert (error.reason, error.message) == ("key_usage", MSG_KEY_USAGE)
    assert error.message == MESSAGES["key_usage"]


def test_server_certificate_from_devca_is_refused(devca: DevCA,
                                                  validator: CertificateValidator) -> None:
    """D02: a TLS server certificate (EKU serverAuth only) is not a UKey."""
    issued = devca.issue(DEMO_USCC, DEMO_NAME, key="ec", usage="server")
    assert refused(validator, issued.cert).reason == "key_usage"


@pytest.mark.parametrize(("key_usage", "eku"), [
    (LEAF_USAGE, None),
    (LEAF_USAGE, (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,)),
    (LEAF_USAGE, (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)),
    (None, (ExtendedKeyUsageOID.CLIENT_AUTH,)),
    (None, None),
], ids=["EKU absent", "anyExtendedKeyUsage", "serverAuth+clientAuth", "KeyUsage absent",
        "neither"])
def test_acceptable_usage(validator: CertificateValidator, issuing: Authority,
                          key_usage: x509.KeyUsage | None,
                          eku: Sequence[x509.ObjectIdentifier] | None) -> None:
    """D02: no EKU means no restriction (RFC 5280 §4.2.1.12), as does anyExtendedKeyUsage; no
    KeyUsage means any usage."""
    result = validator.validate(make_leaf(issuing, key_usage=key_usage, eku=eku))
    assert result.enterprise.uscc == DEMO_USCC


@pytest.mark.parametrize("ca_id", ["root", "issuing", "sm2-root", "untrusted"])
def test_ca_certificates_cannot_log_in(devca: DevCA, validator: CertificateValidator,
                                       ca_id: str) -> None:
    """D02: the configured CA certificates themselves (and any CA certificate) are refused as
    login certificates."""
    error = refused(validator, devca.path(f"{ca_id}.pem").read_bytes())
    assert (error.reason, error.message) == ("ca_certificate", MSG_CA)


def test_issued_ca_certificate_cannot_log_in(devca: DevCA,
                                             validator: CertificateValidator) -> None:
    """D02: a CA certificate carrying an enterprise's USCC is still a CA certificate."""
    issued = devca.issue(DEMO_USCC, DEMO_NAME, key="ec", usage="ca")
    assert refused(validator, issued.cert).reason == "ca_certificate"


# --- clock skew ------------------------------------------------------------------------------

@pytest.mark.parametrize("skew", [0, 300, 900])
def test_clock_skew_boundaries(tmp_path: Path, root_and_issuing: tuple[Entry, Entry],
                               issuing: Authority, skew: int) -> None:
    """D02: the validity window is widened by exactly the configured skew on both sides (300 s
    by default): one second further is refused."""
    start = now_s() + timedelta(hours=1)
    end = start + timedelta(hours=2)
    leaf = make_leaf(issuing, not_before=start, not_after=end)
    entries = write_trust(tmp_path, *root_and_issuing)
    if skew == 300:
        v = CertificateValidator(load_trust(entries))
    else:
        v = CertificateValidator(load_trust(entries), clock_skew=skew)
    margin = timedelta(seconds=skew)
    second = timedelta(seconds=1)
    assert v.validate(leaf, now=start - margin).enterprise.uscc == DEMO_USCC
    assert v.validate(leaf, now=end + margin).enterprise.uscc == DEMO_USCC
    early = refused(v, leaf, now=start - margin - second)
    assert early.reason == "not_yet_valid"
    assert early.message == MESSAGES["not_yet_valid"].format(date=beijing(start))
    late = refused(v, leaf, now=end + margin + second)
    assert late.reason == "expired"
    assert late.message == MESSAGES["expired"].format(date=beijing(end))


# --- messages --------------------------------------------------------------------------------

def test_every_reason_has_its_exact_message() -> None:
    """D02: the login page shows MESSAGES verbatim; the texts users know are asserted
    literally, the others by the table."""
    date = "2026-01-01 08:00"
    for reason, text in MESSAGES.items():
        error = CertificateError(reason, date=date)
        assert error.reason == reason
        assert error.message == str(error) == text.format(date=date)
        assert "{" not in error.message
    assert MESSAGES["revoked"] == MSG_REVOKED
    assert MESSAGES["untrusted"] == MSG_UNTRUSTED
    assert MESSAGES["ca_certificate"] == MSG_CA
    assert MESSAGES["key_usage"] == MSG_KEY_USAGE
    assert MESSAGES["malformed"] == "证书格式无效，无法识别。"


def test_malformed_input_through_the_validator(validator: CertificateValidator) -> None:
    """D02: what the transport hands over unparsed is parsed once, by the same hostile-input
    rules (see test_certs.py)."""
    for data in (b"", b"\x00" * 64, "不是证书", b"-----BEGIN CERTIFICATE-----\nQQ==\n"
                 b"-----END CERTIFICATE-----\n"):
        error = refused(validator, data)
        assert (error.reason, error.message) == ("malformed", MESSAGES["malformed"])


@pytest.mark.parametrize(("critical", "accepted"), [(True, False), (False, True)])
def test_unknown_critical_extension_is_refused(tmp_path: Path, root: Authority,
                                               issuing: Authority, critical: bool,
                                               accepted: bool) -> None:
    """D02 (RFC 5280 §4.2): a certificate with a critical extension we do not understand is
    refused; the same extension marked non-critical is ignored."""
    start = now_s() - timedelta(minutes=10)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_NAME)]))
        .issuer_name(issuing.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .add_extension(identifier_extension(OID_SHECA_USCC, DEMO_USCC), critical=False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"),
                       critical=critical)
        .sign(issuing.key, hashes.SHA256())
    )
    validator = validator_for(tmp_path, Entry("root", root.cert, anchor=True),
                              Entry("issuing", issuing.cert))
    if accepted:
        assert validator.validate(cert).enterprise.uscc == DEMO_USCC
    else:
        error = refused(validator, cert)
        assert error.reason == "critical_extension"
        assert error.message == "证书含有无法识别的关键扩展，不能用于登录。"
