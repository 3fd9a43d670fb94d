"""Reading enterprise certificates: identifier checks, parsing hostile input, and finding the
enterprise a certificate names (D02: authentication by X.509 UKey client certificate; the USCC
check of ``idp.validators`` is also T02/S05).

Expected check characters are computed here by the algorithms written in DOMAIN.md, never by
calling the function under test. Certificates are built with ``cryptography`` and signed by a
throwaway EC key: who signed them does not matter to the parser or to ``enterprise_of`` (the
chain is the validator's business, see test_validator.py).
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from idp.errors import FieldError
from idp.pki.certs import (
    MAX_CERT_BYTES,
    MESSAGES,
    OID_GMT0015_ORG_CODE,
    OID_SHECA_USCC,
    OID_SUBJECT_UNIQUE_ID,
    CertificateError,
    enterprise_of,
    load_certificate,
    load_certificates,
    thumbprint,
    x5t_s256,
)
from idp.validators import MSG_USCC_FORMAT, normalize_uscc, org_code_is_valid, uscc_is_valid

# --- the algorithms of DOMAIN.md, written out independently --------------------------------

DOMAIN_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DOMAIN_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
DOMAIN_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
FULL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # GB 11714: A=10 … Z=35

VALID_USCCS = ["91110000600037341L", "91350100M000100Y43", "91440101MA5CJQ4N59",
               "91350200MA2YJ1XR9G"]
INVALID_USCC = "91310115MA1H8R7C6D"
DEMO_USCC = "91310115MA1FL0D34W"


def gb11714_check(body: str) -> str:
    """GB 11714-1997 check character of an 8-symbol body (DOMAIN.md)."""
    total = sum(FULL_ALPHABET.index(ch) * w for ch, w in zip(body, DOMAIN_ORG_WEIGHTS,
                                                              strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def gb32100_check(first17: str) -> str:
    """GB 32100-2015 check character of the first 17 symbols (DOMAIN.md)."""
    total = sum(DOMAIN_USCC_ALPHABET.index(ch) * w
                for ch, w in zip(first17, DOMAIN_USCC_WEIGHTS, strict=True))
    return DOMAIN_USCC_ALPHABET[(31 - total % 31) % 31]


def test_reference_algorithms_reproduce_domain_examples() -> None:
    """D02, T02/S05: the test's own GB 32100 / GB 11714 code agrees with DOMAIN.md's examples,
    so that the expectations computed with it below mean something."""
    for code in [*VALID_USCCS, DEMO_USCC]:
        assert gb32100_check(code[:17]) == code[17]
        assert gb11714_check(code[8:16]) == code[16]
    assert gb32100_check(INVALID_USCC[:17]) != INVALID_USCC[17]


# --- uscc_is_valid ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", [*VALID_USCCS, DEMO_USCC])
def test_uscc_valid_examples(code: str) -> None:
    """D02, T02/S05: DOMAIN.md's valid USCCs (and the demo enterprise's) pass GB 32100."""
    assert uscc_is_valid(code)


@pytest.mark.parametrize("code", [
    INVALID_USCC,
    *(c[:17] + DOMAIN_USCC_ALPHABET[(DOMAIN_USCC_ALPHABET.index(c[17]) + 1) % 31]
      for c in VALID_USCCS),
])
def test_uscc_wrong_check_character(code: str) -> None:
    """D02, T02/S05: DOMAIN.md's invalid example and every valid one with its check character
    changed fail."""
    assert not uscc_is_valid(code)


@pytest.mark.parametrize("code", [c.lower() for c in VALID_USCCS] + ["91350100m000100Y43"])
def test_uscc_lower_case_is_not_valid(code: str) -> None:
    """D02, T02/S05: the check is on the canonical upper-case form; only ``normalize_uscc``
    upper-cases what a person typed."""
    assert not uscc_is_valid(code)


@pytest.mark.parametrize("code", ["", "9", VALID_USCCS[0][:17], VALID_USCCS[0] + "0",
                                  VALID_USCCS[0] * 2, " " + VALID_USCCS[0][1:],
                                  VALID_USCCS[0][:17] + " "])
def test_uscc_wrong_length(code: str) -> None:
    """D02, T02/S05: exactly 18 symbols."""
    assert not uscc_is_valid(code)


@pytest.mark.parametrize("letter", list("IOSVZ"))
@pytest.mark.parametrize("position", [1, 8, 12, 17])
def test_uscc_letters_outside_the_alphabet(letter: str, position: int) -> None:
    """D02, T02/S05: I, O, S, V and Z are not in the 31-symbol alphabet, wherever they are."""
    code = VALID_USCCS[2]
    assert not uscc_is_valid(code[:position] + letter + code[position + 1:])


def test_uscc_full_width_and_non_ascii() -> None:
    """D02, T02/S05: full-width digits are not silently accepted as digits."""
    wide = "".join(chr(ord(ch) + 0xFEE0) if ch.isdigit() else ch for ch in VALID_USCCS[1])
    assert not uscc_is_valid(wide)
    assert not uscc_is_valid("９" + VALID_USCCS[1][1:])


def test_uscc_whose_organisation_code_fails_gb11714() -> None:
    """D02, T02/S05: positions 9–17 must pass GB 11714 on their own, even when the GB 32100
    check character is right for the whole."""
    body = "MA1FL0D3"
    good = gb11714_check(body)
    assert good == "4"
    for wrong in "0123456789X":
        if wrong == good:
            continue
        first17 = "91310115" + body + wrong
        code = first17 + gb32100_check(first17)
        assert not uscc_is_valid(code), code
    first17 = "91310115" + body + good
    assert uscc_is_valid(first17 + gb32100_check(first17))


# --- org_code_is_valid -----------------------------------------------------------------------

ORG_BODIES = ["MA1FL0D3", "60003734", "M000100Y", "MA5CJQ4N", "MA2YJ1XR", "00000000",
              "12345678", "IOSVZ123", "ZZZZZZZZ", "D2143569"]


@pytest.mark.parametrize("body", ORG_BODIES)
def test_org_code_valid_examples(body: str) -> None:
    """D02, T02/S05: GB 11714 codes with the check computed here are valid; every other check
    character is not. The body takes the full alphabet (I, O, S, V, Z too)."""
    good = gb11714_check(body)
    assert org_code_is_valid(body + good)
    for other in "0123456789XY":
        if other != good:
            assert not org_code_is_valid(body + other)


def test_org_code_check_values_10_and_11() -> None:
    """D02, T02/S05: check value 10 is written X and 11 is written 0 (DOMAIN.md)."""
    seen: dict[str, str] = {}
    for n in range(2000):
        body = f"{n:08d}"
        seen.setdefault(gb11714_check(body), body)
        if "X" in seen and "0" in seen:
            break
    assert org_code_is_valid(seen["X"] + "X")
    assert org_code_is_valid(seen["0"] + "0")
    assert not org_code_is_valid(seen["X"] + "10")


@pytest.mark.parametrize("code", ["", "MA1FL0D3", "MA1FL0D344", "ma1fl0d34", "MA1FL0D3-4",
                                  "MA1FL0D3x", " MA1FL0D34", "MA1FL0D3４"])
def test_org_code_malformed(code: str) -> None:
    """D02, T02/S05: exactly 8 upper-case body symbols and a digit or X; no dashes (callers
    strip them), no lower case."""
    assert not org_code_is_valid(code)


# --- normalize_uscc --------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("91350100M000100Y43", "91350100M000100Y43"),
    ("  91350100m000100y43\t", "91350100M000100Y43"),
    ("91310115ma1fl0d34w", DEMO_USCC),
])
def test_normalize_uscc_accepts(raw: str, expected: str) -> None:
    """D02, T02/S05: blanks around and lower case are what people type; both are forgiven."""
    assert normalize_uscc(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", INVALID_USCC, "9135 0100M000100Y43",
                                 "91350100-M000100Y43", VALID_USCCS[0][:17]])
def test_normalize_uscc_rejects_with_the_field_message(raw: str) -> None:
    """D02, T02/S05: a bad code gives the message shown beside the field, on that field."""
    with pytest.raises(FieldError) as info:
        normalize_uscc(raw)
    assert info.value.field == "uscc"
    assert info.value.message == MSG_USCC_FORMAT == "统一社会信用代码格式不正确"
    with pytest.raises(FieldError) as other:
        normalize_uscc(raw, field="org_uscc")
    assert other.value.field == "org_uscc"


# --- building certificates -----------------------------------------------------------------

SIGNER = ec.generate_private_key(ec.SECP256R1())


def make_name(org: str | None = "福州测试物业有限公司", cn: str | None = "福州测试物业有限公司",
              serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if org is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def make_cert(subject: x509.Name | None = None,
              extensions: Sequence[tuple[str, bytes]] = ()) -> x509.Certificate:
    """A leaf certificate with the given subject and raw (DER) extension values by OID."""
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject if subject is not None else make_name())
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "测试CA")]))
        .public_key(SIGNER.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    for oid, value in extensions:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(SIGNER, hashes.SHA256())


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def utf8(value: str) -> bytes:
    encoded: bytes = core.UTF8String(value).dump()
    return encoded


# --- load_certificate(s) ---------------------------------------------------------------------

CERT_A = make_cert(extensions=[(OID_SHECA_USCC, utf8(VALID_USCCS[0]))])
CERT_B = make_cert(extensions=[(OID_SHECA_USCC, utf8(VALID_USCCS[1]))])
CERT_C = make_cert(extensions=[(OID_SHECA_USCC, utf8(VALID_USCCS[2]))])


def test_load_pem_and_der() -> None:
    """D02: a UKey certificate arrives as PEM (nginx, Client-Cert header after decoding) or DER
    (embedded TLS, signed challenge); bytes or text."""
    assert load_certificate(pem(CERT_A)) == CERT_A
    assert load_certificate(pem(CERT_A).decode("ascii")) == CERT_A
    assert load_certificate(der(CERT_A)) == CERT_A
    assert load_certificates(der(CERT_A)) == [CERT_A]


def test_load_pem_with_crlf_and_surrounding_blanks() -> None:
    """D02: Windows tools (协卡助手) write CRLF; leading blank lines and a trailing newline are
    harmless."""
    crlf = pem(CERT_A).replace(b"\n", b"\r\n")
    assert load_certificate(crlf) == CERT_A
    assert load_certificate(b"\r\n  \n" + crlf + b"\r\n") == CERT_A
    assert load_certificate(crlf.decode("ascii")) == CERT_A


def test_load_several_pems() -> None:
    """D02: ``load_certificates`` reads a chain in order; ``load_certificate`` wants exactly the
    client's own certificate, so a chain is "malformed" there."""
    chain = pem(CERT_A) + pem(CERT_B) + b"\n" + pem(CERT_C)
    assert load_certificates(chain) == [CERT_A, CERT_B, CERT_C]
    assert load_certificates(chain.replace(b"\n", b"\r\n")) == [CERT_A, CERT_B, CERT_C]
    with pytest.raises(CertificateError) as info:
        load_certificate(chain)
    assert info.value.reason == "malformed"
    assert info.value.message == MESSAGES["malformed"] == "证书格式无效，无法识别。"


def _huge_certificate() -> x509.Certificate:
    """A well-formed certificate larger than MAX_CERT_BYTES (real UKey ones are 1–2 KB)."""
    filler = core.OctetString(b"\x00" * (MAX_CERT_BYTES + 1024)).dump()
    return make_cert(extensions=[("1.2.3.4.5", filler)])


def _pem_block(body: bytes, label: str = "CERTIFICATE") -> bytes:
    b64 = base64.encodebytes(body)
    return f"-----BEGIN {label}-----\n".encode() + b64 + f"-----END {label}-----\n".encode()


def _with_version(data: bytes, version: int) -> bytes:
    """The DER with its X.509 version field ([0] INTEGER 2 = v3) replaced."""
    marker = bytes.fromhex("a003020102")
    assert marker in data
    return data.replace(marker, bytes.fromhex("a0030201") + bytes([version]), 1)


def _with_duplicate_extension(data: bytes) -> bytes:
    """The DER with its first extension repeated (RFC 5280 §4.2 forbids it). The signature no
    longer matches, which the parser does not look at."""
    parsed = asn1_x509.Certificate.load(data)
    extensions = parsed["tbs_certificate"]["extensions"]
    extensions.append(extensions[0].copy())
    out: bytes = parsed.dump(force=True)
    return out


def _with_x400_alt_name() -> bytes:
    """subjectAltName holding an x400Address, a GeneralName ``cryptography`` refuses to read."""
    raw = bytes.fromhex("3002a300")  # SEQUENCE { [3] {} }
    return der(make_cert(extensions=[(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,
                                      raw)]))


def _private_key_pem() -> bytes:
    return SIGNER.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())


def _csr() -> x509.CertificateSigningRequest:
    return (x509.CertificateSigningRequestBuilder().subject_name(make_name())
            .sign(SIGNER, hashes.SHA256()))


HOSTILE: dict[str, Callable[[], bytes | str]] = {
    "empty bytes": lambda: b"",
    "empty text": lambda: "",
    "blanks": lambda: b" \r\n\t ",
    "NULs": lambda: b"\x00" * 512,
    "random bytes": lambda: random.Random(20260101).randbytes(1500),
    "random after a DER header": lambda: b"\x30\x82\x05\xdc" + random.Random(7).randbytes(1500),
    "non-UTF-8": lambda: b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1" * 64,
    "Chinese text": lambda: "这不是证书，这是一段中文。",
    "NUL inside PEM": lambda: pem(CERT_A).replace(b"\n", b"\n\x00", 3),
    "non-ASCII inside PEM text": lambda: pem(CERT_A).decode().replace("M", "证", 1),
    "armour X509 CERTIFICATE": lambda: _pem_block(der(CERT_A), "X509 CERTIFICATE"),
    "armour TRUSTED CERTIFICATE": lambda: _pem_block(der(CERT_A), "TRUSTED CERTIFICATE"),
    "armour lower case": lambda: pem(CERT_A).lower(),
    "BEGIN/END mismatch": lambda: pem(CERT_A).replace(b"END CERTIFICATE", b"END X509 CRL"),
    "private key only": _private_key_pem,
    "private key with bad label": lambda: _private_key_pem().replace(b"PRIVATE KEY",
                                                                     b"CERTIFICATE"),
    "CSR PEM": lambda: _csr().public_bytes(serialization.Encoding.PEM),
    "CSR DER": lambda: _csr().public_bytes(serialization.Encoding.DER),
    "truncated DER": lambda: der(CERT_A)[: len(der(CERT_A)) // 2],
    "DER minus one byte": lambda: der(CERT_A)[:-1],
    "DER with trailing garbage": lambda: der(CERT_A) + b"\x00\x01",
    "truncated PEM": lambda: pem(CERT_A)[:-40],
    "PEM without END": lambda: pem(CERT_A).replace(b"-----END CERTIFICATE-----", b""),
    "PEM bad base64 padding": lambda: b"-----BEGIN CERTIFICATE-----\nQUJDR\n"
                                      b"-----END CERTIFICATE-----\n",
    "PEM of garbage": lambda: _pem_block(random.Random(5).randbytes(900)),
    "PEM of empty body": lambda: b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    "PEM of private key DER": lambda: _pem_block(SIGNER.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())),
    "huge DER": lambda: der(_huge_certificate()),
    "huge PEM": lambda: pem(_huge_certificate()),
    "over 64 KB of PEM": lambda: pem(CERT_A) * (4 * MAX_CERT_BYTES // len(pem(CERT_A)) + 1),
    "over 64 KB of NULs": lambda: b"\x00" * (4 * MAX_CERT_BYTES + 1),
    "invalid X.509 version": lambda: _with_version(der(CERT_A), 7),
    "invalid X.509 version in PEM": lambda: _pem_block(_with_version(der(CERT_A), 7)),
    "duplicate extension": lambda: _with_duplicate_extension(der(CERT_A)),
    "x400Address alt name": _with_x400_alt_name,
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_malformed_and_nothing_else(case: str) -> None:
    """D02: whatever a client sends as its certificate, the answer is CertificateError
    "malformed" with its message — never another exception (which would be a 500 on the login
    page, or worse, let a caller's ``except ValueError`` fall through)."""
    data = HOSTILE[case]()
    for loader in (load_certificate, load_certificates):
        with pytest.raises(CertificateError) as info:
            loader(data)
        assert info.value.reason == "malformed"
        assert info.value.message == MESSAGES["malformed"]


def test_size_limit_applies_to_a_single_certificate() -> None:
    """D02: the parser is never handed more than MAX_CERT_BYTES of DER, and the limit is not
    so tight that a chain of more than 16 KB of ordinary certificates is refused."""
    assert len(der(_huge_certificate())) > MAX_CERT_BYTES
    copies = MAX_CERT_BYTES // len(pem(CERT_A)) + 2
    chain = pem(CERT_A) * copies
    assert MAX_CERT_BYTES < len(chain) < 4 * MAX_CERT_BYTES
    assert load_certificates(chain) == [CERT_A] * copies


# --- thumbprint ------------------------------------------------------------------------------

def test_thumbprint_is_base64url_sha256_of_der_without_padding() -> None:
    """D02: the x5t#S256 of RFC 8705 §3.1 binds tokens to the certificate."""
    for cert in (CERT_A, CERT_B):
        expected = base64.urlsafe_b64encode(hashlib.sha256(der(cert)).digest()).decode()
        expected = expected.rstrip("=")
        assert thumbprint(cert) == expected == x5t_s256(der(cert))
        assert len(expected) == 43
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", thumbprint(cert))
    assert thumbprint(CERT_A) != thumbprint(CERT_B)
    assert thumbprint(load_certificate(pem(CERT_A))) == thumbprint(CERT_A)


# --- enterprise_of: where the identifier is --------------------------------------------------

USCC_1, USCC_2, USCC_3, USCC_4 = VALID_USCCS


@pytest.mark.parametrize(("places", "expected_uscc", "expected_source"), [
    ({"sheca", "gmt", "unique", "serial"}, USCC_1, OID_SHECA_USCC),
    ({"sheca", "serial"}, USCC_1, OID_SHECA_USCC),
    ({"sheca", "unique"}, USCC_1, OID_SHECA_USCC),
    ({"gmt", "unique", "serial"}, USCC_2, OID_GMT0015_ORG_CODE),
    ({"unique", "serial"}, USCC_3, OID_SUBJECT_UNIQUE_ID),
    ({"serial"}, USCC_4, "serialNumber"),
])
def test_identifier_read_in_domain_order(places: set[str], expected_uscc: str,
                                         expected_source: str) -> None:
    """D02: DOMAIN.md's order — SHECA extension, GM/T 0015 OrganizationCode, subject unique
    id, subject serialNumber — and the first one present wins."""
    extensions = []
    if "sheca" in places:
        extensions.append((OID_SHECA_USCC, utf8(USCC_1)))
    if "gmt" in places:
        extensions.append((OID_GMT0015_ORG_CODE, core.PrintableString(USCC_2).dump()))
    if "unique" in places:
        extensions.append((OID_SUBJECT_UNIQUE_ID, utf8(USCC_3)))
    subject = make_name(serial=USCC_4 if "serial" in places else None)
    enterprise = enterprise_of(make_cert(subject, extensions))
    assert enterprise.uscc == expected_uscc
    assert enterprise.org_code == expected_uscc[8:17]
    assert enterprise.source == expected_source


STRING_TYPES: dict[str, Callable[[str], bytes]] = {
    "UTF8String": lambda v: core.UTF8String(v).dump(),
    "PrintableString": lambda v: core.PrintableString(v).dump(),
    "IA5String": lambda v: core.IA5String(v).dump(),
    "BMPString": lambda v: core.BMPString(v).dump(),
    "TeletexString": lambda v: core.TeletexString(v).dump(),
    "UniversalString": lambda v: core.UniversalString(v).dump(),
    "VisibleString": lambda v: core.VisibleString(v).dump(),
    "OCTET STRING of UTF8String": lambda v: core.OctetString(core.UTF8String(v).dump()).dump(),
    "OCTET STRING of PrintableString": lambda v: core.OctetString(
        core.PrintableString(v).dump()).dump(),
    "OCTET STRING of raw UTF-8": lambda v: core.OctetString(v.encode("utf-8")).dump(),
}


@pytest.mark.parametrize("kind", list(STRING_TYPES))
@pytest.mark.parametrize("oid", [OID_SHECA_USCC, OID_GMT0015_ORG_CODE, OID_SUBJECT_UNIQUE_ID])
def test_every_asn1_string_type_decodes(kind: str, oid: str) -> None:
    """D02: CAs write the identifier as PrintableString or UTF8String, some as other string
    types or wrapped in an OCTET STRING; all of them are read."""
    enterprise = enterprise_of(make_cert(extensions=[(oid, STRING_TYPES[kind](USCC_2))]))
    assert (enterprise.uscc, enterprise.org_code, enterprise.source) == (
        USCC_2, USCC_2[8:17], oid)


@pytest.mark.parametrize("value", ["MA1FL0D3-4", "MA1FL0D34", " ma1fl0d3-4 "])
def test_organisation_code_with_dash(value: str) -> None:
    """D02: an old 组织机构代码, often written with its dash, gives the org code and no USCC."""
    cert = make_cert(extensions=[(OID_GMT0015_ORG_CODE, core.PrintableString(value).dump())])
    enterprise = enterprise_of(cert)
    assert enterprise.uscc is None
    assert enterprise.org_code == "MA1FL0D34"
    assert enterprise.source == OID_GMT0015_ORG_CODE


def test_lower_case_and_blanks_around_the_uscc_are_forgiven() -> None:
    """D02: the value is normalised (case, surrounding blanks) before the check."""
    cert = make_cert(extensions=[(OID_SHECA_USCC, utf8(f" {USCC_3.lower()} "))])
    assert enterprise_of(cert).uscc == USCC_3


def _nested_octets(inner: bytes, depth: int) -> bytes:
    for _ in range(depth):
        inner = core.OctetString(inner).dump()
    return inner


INVALID_VALUES: dict[str, bytes] = {
    "wrong check character": utf8(INVALID_USCC),
    "bad organisation code": core.PrintableString("MA1FL0D3-5").dump(),
    "wrong length": utf8(USCC_1[:16]),
    "empty string": utf8(""),
    "blank string": utf8("   "),
    "an INTEGER": core.Integer(913101).dump(),
    "a NULL": core.Null().dump(),
    "not DER at all": USCC_1.encode("ascii"),
    "empty value": b"",
    "UTF8String of invalid UTF-8": bytes.fromhex("0c02fffe"),
    "BMPString of odd length": bytes.fromhex("1e03004100"),
    "UniversalString of bad length": bytes.fromhex("1c03000000"),
    "IA5String of non-ASCII": bytes.fromhex("1602e4b8"),
    "OCTET STRING of invalid UTF8String": bytes.fromhex("04040c02fffe"),
    "OCTET STRING of non-UTF-8": core.OctetString(b"\xff\xfe").dump(),
    "deeply nested OCTET STRINGs": _nested_octets(utf8(USCC_1), 3000),
}


@pytest.mark.parametrize("case", list(INVALID_VALUES))
@pytest.mark.parametrize("oid", [OID_SHECA_USCC, OID_GMT0015_ORG_CODE, OID_SUBJECT_UNIQUE_ID])
def test_present_but_invalid_identifier_does_not_fall_through(case: str, oid: str) -> None:
    """D02: an identifier extension that is present but holds no valid code is
    "bad_identifier", even when the subject serialNumber (or a later extension) holds a valid
    USCC: a certificate must not choose which of its fields is believed. Undecodable contents
    are the same error, never a UnicodeDecodeError or RecursionError."""
    extensions = [(oid, INVALID_VALUES[case])]
    if oid != OID_SUBJECT_UNIQUE_ID:
        extensions.append((OID_SUBJECT_UNIQUE_ID, utf8(USCC_2)))
    cert = make_cert(make_name(serial=USCC_1), extensions)
    with pytest.raises(CertificateError) as info:
        enterprise_of(cert)
    assert info.value.reason == "bad_identifier"
    assert info.value.message == MESSAGES["bad_identifier"] == (
        "证书中的统一社会信用代码无效，无法识别企业。")


@pytest.mark.parametrize("serial", [INVALID_USCC, "12345", "MA1FL0D3-5", ""])
def test_invalid_subject_serial_number(serial: str) -> None:
    """D02: the last place, when it is the only one, must hold a valid code too."""
    cert = make_cert(make_name(serial=serial))
    with pytest.raises(CertificateError) as info:
        enterprise_of(cert)
    assert info.value.reason == "bad_identifier"


def test_no_identifier_anywhere() -> None:
    """D02: a certificate that names no enterprise number at all (only a name) is refused with
    its own message; other unknown extensions do not count."""
    cert = make_cert(extensions=[("1.2.156.112570.11.999", utf8(USCC_1))])
    with pytest.raises(CertificateError) as info:
        enterprise_of(cert)
    assert info.value.reason == "no_identifier"
    assert info.value.message == MESSAGES["no_identifier"] == (
        "证书中未找到统一社会信用代码，无法识别企业。")


# --- enterprise_of: the name -----------------------------------------------------------------

@pytest.mark.parametrize(("subject", "expected"), [
    (make_name(org="上海某某物业管理有限公司", cn="张三"), "上海某某物业管理有限公司"),
    (make_name(org=None, cn="上海仅有CN物业有限公司"), "上海仅有CN物业有限公司"),
    (make_name(org="𠀀物业有限公司", cn="other"), "𠀀物业有限公司"),
    (make_name(org=None, cn="𠀀𪚥物业（上海）有限公司"), "𠀀𪚥物业（上海）有限公司"),
    (x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]),
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "物业部"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "多值RDN物业有限公司"),
        ]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "经办人")]),
    ]), "多值RDN物业有限公司"),
    (make_name(org=None, cn=None), ""),
])
def test_name_from_o_else_cn_exact(subject: x509.Name, expected: str) -> None:
    """D02: the enterprise name is subject O, else CN, exactly as written (UTF-8, characters
    outside the BMP, an O inside a multi-valued RDN), also after a DER round trip."""
    cert = make_cert(subject, [(OID_SHECA_USCC, utf8(USCC_1))])
    reparsed = load_certificate(der(cert))
    assert enterprise_of(cert).name == expected
    assert enterprise_of(reparsed).name == expected
    assert enterprise_of(reparsed).name.encode("utf-8") == expected.encode("utf-8")
