"""Reading an enterprise certificate: parse it, fingerprint it, find out whose it is.

Everything a client sends us here is hostile until proven otherwise: the parser is handed at most
``MAX_CERT_BYTES``, PEM armour is checked exactly, and every failure becomes a
``CertificateError`` with a reason code and the Chinese message the login page shows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509
from cryptography.x509.oid import NameOID

from idp.validators import org_code_is_valid, uscc_is_valid

MAX_CERT_BYTES = 16 * 1024  # real UKey certificates are 1–2 KB

# DOMAIN.md "Certificates of enterprises": where the enterprise identifier is, in this order.
OID_SHECA_USCC = "1.2.156.112570.11.210"  # SHECA (法人一证通): 统一社会信用代码
OID_GMT0015_ORG_CODE = "1.2.156.10260.4.1.4"  # GM/T 0015 OrganizationCode
OID_SUBJECT_UNIQUE_ID = "1.2.156.1.8888.148"  # non-一证通 subject unique id
IDENTIFIER_OIDS = (OID_SHECA_USCC, OID_GMT0015_ORG_CODE, OID_SUBJECT_UNIQUE_ID)

MESSAGES = {
    "missing": "未检测到UKey证书。请插入UKey，并确认已安装「协卡助手」。",
    "malformed": "证书格式无效，无法识别。",
    "expired": "证书已过期（有效期至{date}），请联系发证机构更新证书。",
    "not_yet_valid": "证书尚未生效（生效时间{date}），请稍后再试。",
    "revoked": "证书已被吊销，请联系发证机构。",
    "untrusted": "证书不是由受信任的证书颁发机构签发，无法登录。",
    "ca_certificate": "这是证书颁发机构的证书，不能用于登录。",
    "key_usage": "该证书的用途不包括身份认证，不能用于登录。",
    "no_identifier": "证书中未找到统一社会信用代码，无法识别企业。",
    "bad_identifier": "证书中的统一社会信用代码无效，无法识别企业。",
    "revocation_unknown": "暂时无法确认证书是否已被吊销，请稍后重试。",
    "bad_signature": "证书签名验证失败，请重新登录。",
    "challenge_expired": "登录验证已过期，请刷新页面后重新登录。",
    "critical_extension": "证书含有无法识别的关键扩展，不能用于登录。",
}


class CertificateError(ValueError):
    """A certificate we will not accept; ``reason`` is a code for the audit trail."""

    def __init__(self, reason: str, **fmt: str) -> None:
        self.reason = reason
        self.message = MESSAGES[reason].format(**fmt)
        super().__init__(self.message)


_PEM_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----")


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM text (several allowed, a chain) or one DER blob."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if not raw or len(raw) > MAX_CERT_BYTES * 4:
        raise CertificateError("malformed")
    try:
        if raw.lstrip().startswith(b"-----"):
            blocks = _PEM_RE.findall(raw)
            if not blocks:
                raise CertificateError("malformed")
            return [_load_der(base64.b64decode(b, validate=False)) for b in blocks]
        return [_load_der(raw)]
    except CertificateError:
        raise
    except (ValueError, TypeError):  # base64 of the PEM body
        raise CertificateError("malformed") from None


def load_certificate(data: bytes | str) -> x509.Certificate:
    """Exactly one certificate (the client's own), PEM or DER."""
    certs = load_certificates(data)
    if len(certs) != 1:
        raise CertificateError("malformed")
    return certs[0]


def _load_der(der: bytes) -> x509.Certificate:
    if not der or len(der) > MAX_CERT_BYTES:
        raise CertificateError("malformed")
    try:
        cert = x509.load_der_x509_certificate(der)
        # Touch the parts we rely on now, so a lazily-detected defect cannot surface later.
        cert.subject, cert.issuer, cert.extensions  # noqa: B018
        cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
    except (ValueError, x509.InvalidVersion, x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType):
        # cryptography reports these three as plain Exception subclasses, not ValueError.
        raise CertificateError("malformed") from None
    return cert


def der_of(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def x5t_s256(der: bytes) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url (no padding) SHA-256 of the DER certificate."""
    digest = hashlib.sha256(der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def thumbprint(cert: x509.Certificate) -> str:
    return x5t_s256(der_of(cert))


# --- whose certificate is it ---------------------------------------------------------------

@dataclass(frozen=True)
class EnterpriseName:
    """The enterprise the certificate names. ``uscc`` when the certificate carries one;
    otherwise ``org_code`` (an old 组织机构代码, which is USCC[8:17] of the same enterprise)."""

    uscc: str | None
    org_code: str
    name: str
    source: str  # the OID (or "serialNumber") the identifier was read from


def _decode_string(der: bytes, unwrap: bool = True) -> str | None:
    """The text of any ASN.1 string type (UTF8String, PrintableString, IA5String, BMPString,
    TeletexString, UniversalString …), also when wrapped once in an OCTET STRING (raw UTF-8
    there too). Contents that do not decode give None, never an exception, and nesting is not
    followed further: the caller reports "bad_identifier"."""
    try:
        value = core.load(der, strict=True)
        if isinstance(value, core.OctetString) and unwrap:
            raw: bytes = value.native
            inner = _decode_string(raw, unwrap=False)
            return inner if inner is not None else raw.decode("utf-8")
        if isinstance(value, core.AbstractString):
            text: str = value.native
            return text
    except (ValueError, TypeError):  # UnicodeDecodeError of a string type's contents included
        return None
    return None


def _normalise_identifier(text: str) -> tuple[str | None, str] | None:
    """(uscc, org_code) from an identifier value, or None when it is neither."""
    code = text.strip().replace("-", "").upper()
    if len(code) == 18:
        return (code, code[8:17]) if uscc_is_valid(code) else None
    if len(code) == 9:
        return (None, code) if org_code_is_valid(code) else None
    return None


def enterprise_of(cert: x509.Certificate) -> EnterpriseName:
    """The enterprise identifier, read in the order DOMAIN.md gives; the name from O, else CN.

    An extension that is present but holds no valid code is an error, not a reason to fall
    through to a weaker source: a certificate must not be able to choose which of its fields is
    believed.
    """
    found: tuple[str, str] | None = None
    for oid in IDENTIFIER_OIDS:
        try:
            ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
        except x509.ExtensionNotFound:
            continue
        value = ext.value
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        text = _decode_string(raw)
        found = (oid, text or "")
        break
    if found is None:
        serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        if serials:
            found = ("serialNumber", str(serials[0].value))
    if found is None:
        raise CertificateError("no_identifier")
    source, text = found
    parsed = _normalise_identifier(text)
    if parsed is None:
        raise CertificateError("bad_identifier")
    uscc, org_code = parsed
    return EnterpriseName(uscc=uscc, org_code=org_code, name=subject_name(cert), source=source)


def subject_name(cert: x509.Certificate) -> str:
    """The enterprise name as written in the certificate: subject O, else CN (exact UTF-8)."""
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if attrs:
            return str(attrs[0].value)
    return ""
