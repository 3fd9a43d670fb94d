"""SM2-with-SM3 signatures and SM2 certificates (D02: authentication by X.509 UKey client
certificate — 法人一证通 UKeys carry RSA or SM2 keys, and their CAs sign with SM2).

Known answers come from GB/T 32905 (SM3) and GM/T 0003.5-2012 / GB/T 32918.5-2017 Annex A (the
signature example on the recommended curve). Interoperability is checked against the real
OpenSSL 3 command line when it supports SM2: it verifies our signatures and certificates, we
verify its signatures and read its keys.
"""

from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import algos, keys
from asn1crypto import pem as asn1_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from gmssl import sm2 as gm_sm2

from idp.pki import sm2

# GM/T 0003.5-2012 Annex A: signature example on the SM2 recommended curve.
KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
KAT_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
KAT_Z = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
KAT_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
KAT_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
KAT_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
KAT_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
KAT_MESSAGE = b"message digest"

DATA = "统一认证登录平台 challenge 2026".encode()
NOW = datetime.datetime.now(datetime.UTC)
ROOT_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SM2 测试根 CA")])
LEAF_NAME = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "厦门国密测试物业有限公司"),
    x509.NameAttribute(NameOID.COMMON_NAME, "91350200MA2YJ1XR9G"),
])


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return b"\x02" + bytes([len(body)]) + body


def _der_pair(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _openssl_sm2() -> str | None:
    path = shutil.which("openssl")
    if path is None:
        return None
    listing = subprocess.run([path, "list", "-public-key-algorithms"], capture_output=True,
                             text=True, check=False)
    return path if "SM2" in listing.stdout else None


OPENSSL = _openssl_sm2()
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl with SM2")


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, check=False)


@pytest.fixture(scope="module")
def key() -> sm2.Sm2PrivateKey:
    return sm2.Sm2PrivateKey.generate()


@pytest.fixture(scope="module")
def signature(key: sm2.Sm2PrivateKey) -> bytes:
    return sm2.sign(key, DATA)


# --- SM3 and the curve ---------------------------------------------------------------------


@pytest.mark.parametrize(("message", "digest"), [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
])
def test_sm3_known_answers(message: bytes, digest: str) -> None:
    """D02: SM3 matches the GB/T 32905 Annex A examples."""
    assert sm2.sm3_digest(message).hex() == digest


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 1000])
def test_sm3_agrees_with_openssl_across_padding_boundaries(length: int) -> None:
    """D02: gmssl's SM3 and OpenSSL's (through cryptography) agree, and gmssl's in-place padding
    of its argument does not leak into the caller's bytes."""
    data = bytes(range(256)) * 4
    data = data[:length]
    reference = hashes.Hash(hashes.SM3())
    reference.update(data)
    assert sm2.sm3_digest(data) == reference.finalize()
    assert sm2.sm3_digest(data) == sm2.sm3_digest(data)


def test_curve_parameters_are_the_standard_ones_gmssl_uses() -> None:
    """D02: the module's constants are GM/T 0003.5's curve, and gmssl computes on the same one."""
    table = gm_sm2.default_ecc_table
    assert int(table["p"], 16) == sm2.P
    assert int(table["a"], 16) == sm2.A
    assert int(table["b"], 16) == sm2.B
    assert int(table["n"], 16) == sm2.N
    assert table["g"].lower() == f"{sm2.GX:064x}{sm2.GY:064x}"
    assert sm2.Sm2PublicKey(b"\x04" + sm2.GX.to_bytes(32, "big") + sm2.GY.to_bytes(32, "big"))


# --- Known answers -------------------------------------------------------------------------


def test_known_answer_public_key_z_and_digest() -> None:
    """D02: d·G, Z_A and e of the GM/T 0003.5 example, with the default signer id."""
    public = sm2.Sm2PrivateKey(KAT_D).public_key()
    assert public.point.hex().upper() == "04" + KAT_X + KAT_Y
    assert sm2.signer_z(public).hex().upper() == KAT_Z
    assert sm2.sm3_digest(sm2.signer_z(public) + KAT_MESSAGE).hex().upper() == KAT_E


def test_known_answer_signature() -> None:
    """D02: with the example's nonce, signing gives exactly the published (r, s)."""
    produced = sm2._sign_with_nonce(sm2.Sm2PrivateKey(KAT_D), KAT_MESSAGE,
                                    sm2.DEFAULT_SIGNER_ID, KAT_K)
    assert produced == _der_pair(KAT_R, KAT_S)


def test_known_answer_signature_verifies_in_both_encodings() -> None:
    """D02: the published signature verifies as DER and as raw r||s; not for other data."""
    public = sm2.Sm2PublicKey(bytes.fromhex("04" + KAT_X + KAT_Y))
    raw = KAT_R.to_bytes(32, "big") + KAT_S.to_bytes(32, "big")
    assert sm2.verify(public, KAT_MESSAGE, raw)
    assert sm2.verify(public, KAT_MESSAGE, _der_pair(KAT_R, KAT_S))
    assert not sm2.verify(public, b"message digesT", raw)
    assert not sm2.verify(public, KAT_MESSAGE, raw, signer_id=b"ALICE123@YAHOO.COM")


# --- Sign and verify -----------------------------------------------------------------------


def test_round_trip_der_and_raw(key: sm2.Sm2PrivateKey, signature: bytes) -> None:
    """D02: sign returns DER SEQUENCE{r, s}; verify accepts it and the raw 64-byte form."""
    parsed = algos.DSASignature.load(signature)
    r, s = parsed["r"].native, parsed["s"].native
    assert 1 <= r < sm2.N and 1 <= s < sm2.N
    assert sm2.verify(key.public_key(), DATA, signature)
    assert sm2.verify(key.public_key(), DATA, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert sm2.verify(key.public_key(), DATA, bytearray(signature))


def test_signatures_are_randomised(key: sm2.Sm2PrivateKey, signature: bytes) -> None:
    """D02: a fresh nonce per signature (a repeated nonce would reveal the private key)."""
    assert sm2.sign(key, DATA) != signature


def test_wrong_data_key_or_signer_id_fail(key: sm2.Sm2PrivateKey, signature: bytes) -> None:
    """D02: the signature binds the data, the key and the signer id (through Z)."""
    assert not sm2.verify(key.public_key(), DATA + b"!", signature)
    assert not sm2.verify(sm2.Sm2PrivateKey.generate().public_key(), DATA, signature)
    assert not sm2.verify(key.public_key(), DATA, signature, signer_id=b"")
    assert not sm2.verify(key.public_key(), DATA, signature, signer_id=b"ALICE123@YAHOO.COM")


def test_other_signer_ids(key: sm2.Sm2PrivateKey) -> None:
    """D02: any signer id up to 8191 bytes works when both sides use it; longer is refused."""
    for signer_id in (b"", b"ALICE123@YAHOO.COM", b"x" * 8191):
        assert sm2.verify(key.public_key(), DATA, sm2.sign(key, DATA, signer_id), signer_id)
    with pytest.raises(sm2.Sm2Error):
        sm2.sign(key, DATA, b"x" * 8192)


@pytest.mark.parametrize("secret", [6, 11])
def test_keys_gmssl_would_mangle_work(secret: int) -> None:
    """D02: d=6 and d=11 have X starting with hex '0' and '04'. gmssl's constructor strips them
    (``lstrip("04")``), which is why this module sets gmssl's public key itself."""
    public = sm2.Sm2PrivateKey(secret).public_key()
    assert public.point[1:].hex()[0] == "0"
    assert len(gm_sm2.CryptSM2(None, public.point.hex()).public_key) < 128  # gmssl's bug
    signature = sm2.sign(sm2.Sm2PrivateKey(secret), DATA)
    assert sm2.verify(public, DATA, signature)


def test_s_plus_n_is_refused_although_gmssl_accepts_it() -> None:
    """D02: signatures are not malleable through s + n. A key is constructed so that s = 1 for a
    chosen digest (d = (k + r)/(1 + r) - 1); then s + n still fits 256 bits, which gmssl's
    unchecked scalar multiplication treats like s."""
    digest, k = bytes(range(32)), 0x1234567
    x1 = int(sm2.Sm2PrivateKey(k).public_key().point[1:33].hex(), 16)
    r = (int.from_bytes(digest, "big") + x1) % sm2.N
    key = sm2.Sm2PrivateKey((k + r) * pow(1 + r, -1, sm2.N) % sm2.N - 1)
    assert sm2._sign_digest(key, digest, k) == (r, 1)
    public = key.public_key()
    assert sm2._verify_digest(public, digest, r, 1)
    assert not sm2._verify_digest(public, digest, r, 1 + sm2.N)
    unchecked = gm_sm2.CryptSM2(None, "")
    unchecked.public_key = public.point[1:].hex()
    assert unchecked.verify(f"{r:064x}{1 + sm2.N:064x}", digest)  # why the range check exists


def _rs(signature: bytes) -> tuple[int, int]:
    parsed = algos.DSASignature.load(signature)
    return parsed["r"].native, parsed["s"].native


GARBAGE: list[tuple[str, Callable[[bytes], object]]] = [
    ("empty", lambda sig: b""),
    ("one byte", lambda sig: b"\x30"),
    ("truncated", lambda sig: sig[:-1]),
    ("half", lambda sig: sig[: len(sig) // 2]),
    ("trailing byte", lambda sig: sig + b"\x00"),
    ("bit flipped", lambda sig: sig[:-1] + bytes([sig[-1] ^ 1])),
    ("r and s swapped", lambda sig: _der_pair(_rs(sig)[1], _rs(sig)[0])),
    ("r = 0", lambda sig: _der_pair(0, _rs(sig)[1])),
    ("s = 0", lambda sig: _der_pair(_rs(sig)[0], 0)),
    ("r = n", lambda sig: _der_pair(sm2.N, _rs(sig)[1])),
    ("s = n", lambda sig: _der_pair(_rs(sig)[0], sm2.N)),
    ("r + n", lambda sig: _der_pair(_rs(sig)[0] + sm2.N, _rs(sig)[1])),
    ("s + n", lambda sig: _der_pair(_rs(sig)[0], _rs(sig)[1] + sm2.N)),
    ("r + s = n", lambda sig: _der_pair(_rs(sig)[0], sm2.N - _rs(sig)[0])),
    ("negative r", lambda sig: _der_pair(-_rs(sig)[0], _rs(sig)[1])),
    ("non-minimal INTEGER", lambda sig: b"\x30" + bytes([sig[1] + 1]) + b"\x02"
        + bytes([sig[3] + 1]) + b"\x00" + sig[4:]),
    ("long-form length", lambda sig: b"\x30\x81" + sig[1:]),
    ("three integers", lambda sig: b"\x30" + bytes([sig[1] + 3]) + sig[2:] + b"\x02\x01\x01"),
    ("octet string", lambda sig: b"\x04" + sig[1:]),
    ("raw 63 bytes", lambda sig: bytes(63)),
    ("raw zeros", lambda sig: bytes(64)),
    ("raw 65 bytes", lambda sig: b"\x01" * 65),
    ("raw all ones", lambda sig: b"\xff" * 64),
    ("huge integer", lambda sig: b"\x30\x82\x01\xf7\x02\x82\x01\xf0" + b"\x01" * 496
        + b"\x02\x01\x01"),
    ("huge blob", lambda sig: b"\x30\x84\x00\x10\x00\x00" + b"\x00" * 0x100000),
    ("text", lambda sig: sig.hex().encode()),
    ("not bytes", lambda sig: sig.hex()),
    ("none", lambda sig: None),
]


@pytest.mark.parametrize("mangle", [g[1] for g in GARBAGE], ids=[g[0] for g in GARBAGE])
def test_malformed_signatures_are_false_never_an_exception(
        key: sm2.Sm2PrivateKey, signature: bytes, mangle: Callable[[bytes], object]) -> None:
    """D02: a client-supplied signature can be anything; the answer is always a plain False."""
    assert sm2.verify(key.public_key(), DATA, mangle(signature)) is False  # type: ignore[arg-type]


# --- Keys ----------------------------------------------------------------------------------


def test_key_validation() -> None:
    """D02: keys are checked when made: d in [1, n-2], the point on the curve, uncompressed."""
    for secret in (0, sm2.N - 1, sm2.N, -1):
        with pytest.raises(sm2.Sm2Error):
            sm2.Sm2PrivateKey(secret)
    assert sm2.Sm2PrivateKey(sm2.N - 2).public_key()
    good = sm2.Sm2PrivateKey(KAT_D).public_key().point
    for point in (good[:-1], b"\x02" + good[1:], good[:-1] + bytes([good[-1] ^ 1]), bytes(65)):
        with pytest.raises(sm2.Sm2Error):
            sm2.Sm2PublicKey(point)


def test_private_key_repr_hides_the_secret() -> None:
    """D02: a key that ends up in a log or traceback does not disclose d."""
    assert str(KAT_D) not in repr(sm2.Sm2PrivateKey(KAT_D))
    assert f"{KAT_D:x}" not in repr(sm2.Sm2PrivateKey(KAT_D)).lower()


def test_spki_round_trip_and_detection(key: sm2.Sm2PrivateKey) -> None:
    """D02: SPKI is id-ecPublicKey with the SM2 curve; it reads back, also compressed."""
    public = key.public_key()
    der = public.spki_der()
    info = keys.PublicKeyInfo.load(der)
    assert info["algorithm"]["algorithm"].dotted == "1.2.840.10045.2.1"
    assert info["algorithm"]["parameters"].chosen.dotted == sm2.SM2_CURVE_OID
    assert sm2.Sm2PublicKey.from_spki_der(der) == public
    assert sm2.is_sm2_certificate_key(der)
    compressed = bytes([2 + public.y % 2]) + public.point[1:33]
    spki = keys.PublicKeyInfo({"algorithm": info["algorithm"],
                               "public_key": keys.ECPointBitString(compressed)}).dump()
    assert sm2.Sm2PublicKey.from_spki_der(spki) == public


def _p256_spki() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("spki", [
    b"", b"\x30", b"\x30\x00", b"garbage", bytes(100), _p256_spki(),
    sm2.Sm2PrivateKey(KAT_D).public_key().spki_der() + b"\x00",
], ids=["empty", "one byte", "empty sequence", "text", "zeros", "P-256", "trailing"])
def test_spki_that_is_not_sm2(spki: bytes) -> None:
    """D02: other keys and garbage: not SM2, Sm2Error on reading, False when verifying."""
    assert not sm2.is_sm2_certificate_key(spki)
    with pytest.raises(sm2.Sm2Error):
        sm2.Sm2PublicKey.from_spki_der(spki)
    assert not sm2.signature_valid(DATA, sm2.SM2_SM3_SIGNATURE_OID, bytes(64), spki)


def test_spki_with_a_point_off_the_curve(key: sm2.Sm2PrivateKey) -> None:
    """D02: an SM2 SPKI whose point is off the curve (invalid-curve attacks) is refused; it is
    still recognised as claiming the SM2 curve, so it takes the SM2 path and fails there."""
    point = bytearray(key.public_key().point)
    point[-1] ^= 1
    info = keys.PublicKeyInfo.load(key.public_key().spki_der())
    spki = keys.PublicKeyInfo({"algorithm": info["algorithm"],
                               "public_key": keys.ECPointBitString(bytes(point))}).dump()
    assert sm2.is_sm2_certificate_key(spki)
    with pytest.raises(sm2.Sm2Error):
        sm2.Sm2PublicKey.from_spki_der(spki)


def test_pem_round_trip(key: sm2.Sm2PrivateKey) -> None:
    """D02: PKCS#8 "PRIVATE KEY" with the SM2 curve in the AlgorithmIdentifier."""
    text = key.to_pem()
    assert text.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert sm2.Sm2PrivateKey.from_pem(text) == key
    _, _, der = asn1_pem.unarmor(text)
    info = keys.PrivateKeyInfo.load(der)
    assert info["private_key_algorithm"]["parameters"].chosen.dotted == sm2.SM2_CURVE_OID
    assert len(info["private_key"].parsed["private_key"].contents) == 32


def _sec1(secret: int, *, curve: bool, label: str = "EC PRIVATE KEY",
          public: bytes | None = None) -> bytes:
    ec_key = keys.ECPrivateKey({"version": "ecPrivkeyVer1"})
    ec_key.set_key_size(32)
    ec_key["private_key"] = secret
    if curve:
        ec_key["parameters"] = keys.ECDomainParameters(name="named", value=sm2.SM2_CURVE_OID)
    if public is not None:
        ec_key["public_key"] = keys.ECPointBitString(public)
    armored: bytes = asn1_pem.armor(label, ec_key.dump())
    return armored


def test_sec1_pem() -> None:
    """D02: SEC1 keys of the SM2 curve ("EC PRIVATE KEY", or "SM2 PRIVATE KEY" as OpenSSL 3
    labels them) are read; without the curve they are ambiguous and refused."""
    expected = sm2.Sm2PrivateKey(KAT_D)
    assert sm2.Sm2PrivateKey.from_pem(_sec1(KAT_D, curve=True)) == expected
    assert sm2.Sm2PrivateKey.from_pem(_sec1(KAT_D, curve=True, label="SM2 PRIVATE KEY")) \
        == expected
    with pytest.raises(sm2.Sm2Error):
        sm2.Sm2PrivateKey.from_pem(_sec1(KAT_D, curve=False))


def _p256_pem(encryption: serialization.KeySerializationEncryption) -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _rsa_pem() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


@pytest.mark.parametrize("text", [
    b"", b"not a pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    _p256_pem(serialization.NoEncryption()),
    _p256_pem(serialization.BestAvailableEncryption(b"secret")),
    _rsa_pem(),
    _sec1(0, curve=True),
    _sec1(KAT_D, curve=True, public=sm2.Sm2PrivateKey(KAT_D + 1).public_key().point),
    asn1_pem.armor("PUBLIC KEY", sm2.Sm2PrivateKey(KAT_D).public_key().spki_der()),
], ids=["empty", "text", "bad DER", "P-256", "encrypted", "RSA", "d = 0",
        "public key of another key", "public key"])
def test_pem_that_is_not_an_sm2_private_key(text: bytes) -> None:
    """D02: anything but an unencrypted SM2 private key is an Sm2Error (a ValueError)."""
    with pytest.raises(sm2.Sm2Error):
        sm2.Sm2PrivateKey.from_pem(text)


# --- Certificates and CRLs -----------------------------------------------------------------


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _builder(subject: x509.Name, issuer: x509.Name, *, ca: bool,
             placeholder: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    public = placeholder.public_key()
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                           critical=False))


def _placeholder_signed(builder: x509.CertificateBuilder,
                        placeholder: ec.EllipticCurvePrivateKey) -> bytes:
    return _der(builder.sign(placeholder, hashes.SHA256()))


@pytest.fixture(scope="module")
def root_key() -> sm2.Sm2PrivateKey:
    return sm2.Sm2PrivateKey.generate()


@pytest.fixture(scope="module")
def placeholder() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def root(root_key: sm2.Sm2PrivateKey, placeholder: ec.EllipticCurvePrivateKey
         ) -> x509.Certificate:
    der = _placeholder_signed(_builder(ROOT_NAME, ROOT_NAME, ca=True, placeholder=placeholder),
                              placeholder)
    return x509.load_der_x509_certificate(
        sm2.resign_certificate(der, root_key, root_key.public_key()))


@pytest.fixture(scope="module")
def leaf_key() -> sm2.Sm2PrivateKey:
    return sm2.Sm2PrivateKey.generate()


@pytest.fixture(scope="module")
def leaf(root_key: sm2.Sm2PrivateKey, leaf_key: sm2.Sm2PrivateKey,
         placeholder: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    der = _placeholder_signed(_builder(LEAF_NAME, ROOT_NAME, ca=False, placeholder=placeholder),
                              placeholder)
    return x509.load_der_x509_certificate(
        sm2.resign_certificate(der, root_key, leaf_key.public_key()))


def _key_id(key: sm2.Sm2PrivateKey) -> bytes:
    """RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the point)."""
    return hashlib.sha1(key.public_key().point, usedforsecurity=False).digest()


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _aki(cert: x509.Certificate | x509.CertificateRevocationList) -> x509.AuthorityKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value


def test_sm2_root_and_leaf_certificates(root: x509.Certificate, leaf: x509.Certificate,
                                        root_key: sm2.Sm2PrivateKey,
                                        leaf_key: sm2.Sm2PrivateKey) -> None:
    """D02: an SM2 root CA and an enterprise certificate it issued load in cryptography, carry
    SM2-with-SM3 and the SM2 keys, and both signatures verify against the root's key."""
    root_spki = root_key.public_key().spki_der()
    for cert in (root, leaf):
        assert cert.signature_algorithm_oid.dotted_string == sm2.SM2_SM3_SIGNATURE_OID
        assert sm2.signature_valid(cert.tbs_certificate_bytes,
                                   cert.signature_algorithm_oid.dotted_string,
                                   cert.signature, root_spki)
    assert sm2.public_key_of_certificate(_der(root)) == root_key.public_key()
    assert sm2.public_key_of_certificate(_der(leaf)) == leaf_key.public_key()
    assert leaf.subject == LEAF_NAME and leaf.issuer == root.subject


def test_key_identifiers_follow_the_sm2_keys(root: x509.Certificate, leaf: x509.Certificate,
                                             root_key: sm2.Sm2PrivateKey,
                                             leaf_key: sm2.Sm2PrivateKey) -> None:
    """D02: SKI/AKI describe the SM2 keys (SHA-1 of the key bits), not the placeholder, so
    chain building by key identifier works."""
    root_id = _key_id(root_key)
    assert _ski(root) == root_id == _aki(root).key_identifier == _aki(leaf).key_identifier
    assert _ski(leaf) == _key_id(leaf_key)


def test_tampered_or_misattributed_certificates_fail(
        root: x509.Certificate, leaf: x509.Certificate, leaf_key: sm2.Sm2PrivateKey) -> None:
    """D02: a changed TBS, another issuer key, or another algorithm OID do not verify."""
    root_spki = sm2.public_key_of_certificate(_der(root)).spki_der()
    tbs = bytearray(leaf.tbs_certificate_bytes)
    tbs[len(tbs) // 2] ^= 1
    oid = sm2.SM2_SM3_SIGNATURE_OID
    assert not sm2.signature_valid(bytes(tbs), oid, leaf.signature, root_spki)
    assert not sm2.signature_valid(leaf.tbs_certificate_bytes, oid, leaf.signature,
                                   leaf_key.public_key().spki_der())
    assert not sm2.signature_valid(leaf.tbs_certificate_bytes,
                                   SignatureAlgorithmOID.ECDSA_WITH_SHA256.dotted_string,
                                   leaf.signature, root_spki)
    assert not sm2.signature_valid(leaf.tbs_certificate_bytes, oid, leaf.signature,
                                   _p256_spki())


def test_public_key_of_non_sm2_certificates(placeholder: ec.EllipticCurvePrivateKey) -> None:
    """D02: an ECDSA certificate, or bytes that are no certificate, are an Sm2Error."""
    ecdsa_cert = _placeholder_signed(
        _builder(LEAF_NAME, ROOT_NAME, ca=False, placeholder=placeholder), placeholder)
    for der in (ecdsa_cert, b"", b"\x30\x03\x02\x01\x01", ecdsa_cert[:-10]):
        with pytest.raises(sm2.Sm2Error):
            sm2.public_key_of_certificate(der)


def test_rsa_and_ec_issuers_can_certify_sm2_keys(leaf_key: sm2.Sm2PrivateKey,
                                                 placeholder: ec.EllipticCurvePrivateKey
                                                 ) -> None:
    """D02: a UKey SM2 key certified by an RSA or ECDSA CA: cryptography verifies the issuer's
    signature, the subject key stays SM2, AKI is the issuer's key id."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    for issuer_key, oid in ((rsa_key, SignatureAlgorithmOID.RSA_WITH_SHA256),
                            (ec_key, SignatureAlgorithmOID.ECDSA_WITH_SHA256)):
        public = issuer_key.public_key()
        issuer = (x509.CertificateBuilder().subject_name(ROOT_NAME).issuer_name(ROOT_NAME)
                  .public_key(public).serial_number(1)
                  .not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1))
                  .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
                  .sign(issuer_key, hashes.SHA256()))
        leaf_der = _placeholder_signed(
            _builder(LEAF_NAME, ROOT_NAME, ca=False, placeholder=placeholder), placeholder)
        cert = x509.load_der_x509_certificate(
            sm2.resign_certificate(leaf_der, issuer_key, leaf_key.public_key()))
        assert cert.signature_algorithm_oid == oid
        cert.verify_directly_issued_by(issuer)
        assert sm2.public_key_of_certificate(_der(cert)) == leaf_key.public_key()
        assert _aki(cert).key_identifier == _ski(issuer) == x509.SubjectKeyIdentifier \
            .from_public_key(issuer_key.public_key()).digest


def test_resign_without_key_identifiers_keeps_aki_issuer_and_serial(
        root_key: sm2.Sm2PrivateKey, placeholder: ec.EllipticCurvePrivateKey) -> None:
    """D02: no SKI/AKI in, none out; an AKI's issuer name and serial are kept."""
    bare = (x509.CertificateBuilder().subject_name(LEAF_NAME).issuer_name(ROOT_NAME)
            .public_key(placeholder.public_key()).serial_number(7)
            .not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1)))
    cert = x509.load_der_x509_certificate(
        sm2.resign_certificate(_placeholder_signed(bare, placeholder), root_key))
    assert len(cert.extensions) == 0
    aki = x509.AuthorityKeyIdentifier(b"\x00" * 20, [x509.DirectoryName(ROOT_NAME)], 42)
    with_aki = bare.add_extension(aki, critical=False)
    cert = x509.load_der_x509_certificate(
        sm2.resign_certificate(_placeholder_signed(with_aki, placeholder), root_key))
    assert _aki(cert) == x509.AuthorityKeyIdentifier(
        _key_id(root_key),
        [x509.DirectoryName(ROOT_NAME)], 42)
    assert sm2.signature_valid(cert.tbs_certificate_bytes, sm2.SM2_SM3_SIGNATURE_OID,
                               cert.signature, root_key.public_key().spki_der())


def test_sm2_crl(root_key: sm2.Sm2PrivateKey, root: x509.Certificate, leaf: x509.Certificate,
                 placeholder: ec.EllipticCurvePrivateKey) -> None:
    """D02: a CRL of the SM2 CA, re-signed with SM2, loads and verifies; tampering fails."""
    revoked = x509.RevokedCertificateBuilder().serial_number(leaf.serial_number) \
        .revocation_date(NOW).build()
    built = (x509.CertificateRevocationListBuilder().issuer_name(ROOT_NAME)
             .last_update(NOW).next_update(NOW + datetime.timedelta(days=1))
             .add_revoked_certificate(revoked)
             .add_extension(x509.CRLNumber(1), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 placeholder.public_key()), critical=False)
             .sign(placeholder, hashes.SHA256()))
    crl = x509.load_der_x509_crl(sm2.resign_crl(built.public_bytes(serialization.Encoding.DER),
                                                root_key))
    assert crl.signature_algorithm_oid.dotted_string == sm2.SM2_SM3_SIGNATURE_OID
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    assert _aki(crl).key_identifier == _ski(root)
    spki = root_key.public_key().spki_der()
    assert sm2.signature_valid(crl.tbs_certlist_bytes, sm2.SM2_SM3_SIGNATURE_OID,
                               crl.signature, spki)
    tampered = bytearray(crl.tbs_certlist_bytes)
    tampered[len(tampered) // 2] ^= 1
    assert not sm2.signature_valid(bytes(tampered), sm2.SM2_SM3_SIGNATURE_OID, crl.signature,
                                   spki)


# --- OpenSSL interoperability --------------------------------------------------------------


@needs_openssl
def test_openssl_reads_our_key_and_verifies_our_signatures(tmp_path: Path,
                                                           key: sm2.Sm2PrivateKey) -> None:
    """D02: OpenSSL derives the same public key from our PEM and accepts our signatures with
    the default id and another one (OpenSSL 3.0's own default distid is empty: pass it)."""
    derived = openssl("pkey", "-pubout", "-outform", "DER", stdin=key.to_pem())
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout == key.public_key().spki_der()
    (tmp_path / "pub.pem").write_bytes(asn1_pem.armor("PUBLIC KEY", key.public_key().spki_der()))
    (tmp_path / "data").write_bytes(DATA)
    for signer_id in (sm2.DEFAULT_SIGNER_ID, b"ALICE123@YAHOO.COM"):
        (tmp_path / "sig").write_bytes(sm2.sign(key, DATA, signer_id))
        result = openssl("pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
                         "-rawin", "-digest", "sm3", "-pkeyopt",
                         f"distid:{signer_id.decode()}", "-in", str(tmp_path / "data"),
                         "-sigfile", str(tmp_path / "sig"))
        assert result.returncode == 0, result.stdout + result.stderr


@needs_openssl
def test_we_read_openssl_keys_and_verify_its_signatures(tmp_path: Path) -> None:
    """D02: a key made by ``openssl genpkey -algorithm SM2`` (PKCS#8 and SEC1) loads, and an
    OpenSSL signature verifies here — with the signer id OpenSSL used, not another."""
    generated = openssl("genpkey", "-algorithm", "SM2")
    assert generated.returncode == 0, generated.stderr
    key = sm2.Sm2PrivateKey.from_pem(generated.stdout)
    sec1 = openssl("ec", stdin=generated.stdout)
    assert sm2.Sm2PrivateKey.from_pem(sec1.stdout) == key
    (tmp_path / "key.pem").write_bytes(generated.stdout)
    (tmp_path / "data").write_bytes(DATA)
    signed = openssl("pkeyutl", "-sign", "-inkey", str(tmp_path / "key.pem"), "-rawin",
                     "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
                     "-in", str(tmp_path / "data"))
    assert signed.returncode == 0, signed.stderr
    assert sm2.verify(key.public_key(), DATA, signed.stdout)
    assert not sm2.verify(key.public_key(), DATA, signed.stdout, signer_id=b"")


@needs_openssl
def test_openssl_verifies_our_certificate_chain(tmp_path: Path, root: x509.Certificate,
                                                leaf: x509.Certificate) -> None:
    """D02: ``openssl verify`` accepts the SM2 leaf under the SM2 root (signer id given, as
    OpenSSL 3.0 otherwise uses an empty one) and refuses the leaf as its own anchor."""
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    ok = openssl("verify", "-vfyopt", "distid:1234567812345678",
                 "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "leaf.pem"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = openssl("verify", "-vfyopt", "distid:1234567812345678",
                    "-CAfile", str(tmp_path / "leaf.pem"), str(tmp_path / "leaf.pem"))
    assert wrong.returncode != 0
