"""SM2 signatures with SM3 (GB/T 32918.2, GM/T 0003) for X.509 certificates and CRLs.

法人一证通 UKeys of Chinese enterprises carry RSA or SM2 keys, and the CAs behind them sign with
SM2-with-SM3. ``cryptography`` parses such certificates but cannot verify or make an SM2
signature, so this module does it with the pure-Python ``gmssl`` (curve arithmetic and SM3) and
``asn1crypto`` (DER), and offers what the development CA needs to make SM2 test certificates.

gmssl is used below its convenience layer on purpose. ``CryptSM2.sign_with_sm3`` hard-codes the
signer id ``1234567812345678``, draws ``k`` from :mod:`random`, and the constructor mangles one
public key in eight (``public_key.lstrip("04")`` also strips leading ``0``/``4`` digits of X).
``CryptSM2.verify`` has no range checks on ``r``/``s`` (its scalar multiplication returns the
base point for 0) and crashes on the point at infinity. So this module computes Z and the
digest itself, draws ``k`` from :mod:`secrets`, sets the public key after construction, checks
every range, and hands gmssl only the plain equations on validated numbers.

Signing is not hardened against timing side channels (pure Python); it is meant for development
and test CAs. Verification only handles public data.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from asn1crypto import algos, core, crl, keys, pem, x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gmssl import sm2 as gm_sm2
from gmssl import sm3 as gm_sm3

SM2_CURVE_OID: Final = "1.2.156.10197.1.301"
SM2_SM3_SIGNATURE_OID: Final = "1.2.156.10197.1.501"
EC_PUBLIC_KEY_OID: Final = "1.2.840.10045.2.1"
DEFAULT_SIGNER_ID: Final = b"1234567812345678"  # GM/T 0009-2012 default user id

# The SM2 recommended curve (GB/T 32918.5 / GM/T 0003.5), y^2 = x^3 + ax + b over F_p.
P: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B: Final = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX: Final = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY: Final = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

_SIZE: Final = 32  # bytes of a coordinate, a scalar, r and s
_MAX_SIGNER_ID: Final = 0x1FFF  # ENTL is the id's length in *bits* in two bytes
_MAX_DER_SIGNATURE: Final = 2 + 2 * (2 + _SIZE + 1)  # SEQUENCE of two INTEGERs of <= 33 bytes
_BASE_POINT_HEX: Final = f"{GX:064x}{GY:064x}"
# What asn1crypto raises on malformed DER; parsing is lazy, so any field access may raise them.
_ASN1_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError)

# asn1crypto needs the key size of a named curve to encode an ECPrivateKey in PKCS#8; this is
# its documented way to add a curve, and it is idempotent.
keys.NamedCurve.register("sm2p256v1", SM2_CURVE_OID, _SIZE)


class Sm2Error(ValueError):
    """A key, certificate or encoding that is not usable SM2 material."""


def sm3_digest(data: bytes) -> bytes:
    """SM3 (GB/T 32905) of ``data``. gmssl pads the list it is given in place: pass a fresh one."""
    return bytes.fromhex(gm_sm3.sm3_hash(list(data)))


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _uncompressed(point: bytes) -> bytes:
    """``point`` as 0x04||X||Y; compressed points (0x02/0x03||X) are expanded (p ≡ 3 mod 4)."""
    if len(point) == 1 + _SIZE and point[0] in (2, 3):
        x = int.from_bytes(point[1:], "big")
        alpha = (x * x * x + A * x + B) % P
        y = pow(alpha, (P + 1) // 4, P)
        if y * y % P != alpha or x >= P:
            raise Sm2Error("compressed SM2 point is not on the curve")
        if y % 2 != point[0] % 2:
            y = P - y
        return b"\x04" + x.to_bytes(_SIZE, "big") + y.to_bytes(_SIZE, "big")
    return point


@dataclass(frozen=True)
class Sm2PublicKey:
    """An SM2 public key; constructing one checks the point is on the curve (cofactor is 1)."""

    point: bytes  # 0x04||X||Y, 65 bytes

    def __post_init__(self) -> None:
        if not isinstance(self.point, bytes) or len(self.point) != 1 + 2 * _SIZE \
                or self.point[0] != 4:
            raise Sm2Error("an SM2 public key is an uncompressed point of 65 bytes")
        if not _on_curve(self.x, self.y):
            raise Sm2Error("the point is not on the SM2 curve")

    @property
    def x(self) -> int:
        return int.from_bytes(self.point[1:1 + _SIZE], "big")

    @property
    def y(self) -> int:
        return int.from_bytes(self.point[1 + _SIZE:], "big")

    def spki_der(self) -> bytes:
        """SubjectPublicKeyInfo: id-ecPublicKey with the SM2 named curve (GM/T 0015)."""
        info = keys.PublicKeyInfo({
            "algorithm": keys.PublicKeyAlgorithm({"algorithm": "ec", "parameters": _curve()}),
            "public_key": keys.ECPointBitString(self.point),
        })
        der: bytes = info.dump()
        return der

    @classmethod
    def from_spki_der(cls, der: bytes) -> Sm2PublicKey:
        try:
            info = keys.PublicKeyInfo.load(bytes(der), strict=True)
            if not _is_sm2_algorithm(info["algorithm"]):
                raise Sm2Error("not an SM2 public key (id-ecPublicKey with the SM2 curve)")
            point = bytes(info["public_key"].native)
        except Sm2Error:
            raise
        except _ASN1_ERRORS as exc:
            raise Sm2Error(f"malformed SubjectPublicKeyInfo: {exc}") from exc
        return cls(_uncompressed(point))


@dataclass(frozen=True)
class Sm2PrivateKey:
    """An SM2 private key d in [1, n-2] (n-1 is excluded: signing inverts 1+d)."""

    secret: int = field(repr=False)  # never in logs or tracebacks

    def __post_init__(self) -> None:
        if not isinstance(self.secret, int) or not 1 <= self.secret <= N - 2:
            raise Sm2Error("an SM2 private key is an integer in [1, n-2]")

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        return cls(secrets.randbelow(N - 2) + 1)

    def public_key(self) -> Sm2PublicKey:
        # gmssl has no public API for d·G; _kg is its scalar multiplication (affine hex out).
        xy: str = _gmssl(None, "")._kg(self.secret, _BASE_POINT_HEX)
        return Sm2PublicKey(b"\x04" + bytes.fromhex(xy))

    def to_pem(self) -> bytes:
        """PKCS#8 "PRIVATE KEY": id-ecPublicKey, SM2 curve, ECPrivateKey with the public key —
        the layout OpenSSL 3 writes for SM2 keys."""
        info = keys.PrivateKeyInfo({
            "version": 0,
            "private_key_algorithm": keys.PrivateKeyAlgorithm(
                {"algorithm": "ec", "parameters": _curve()}),
            "private_key": self._ec_private_key(),
        })
        armored: bytes = pem.armor("PRIVATE KEY", info.dump())
        return armored

    @classmethod
    def from_pem(cls, data: bytes) -> Sm2PrivateKey:
        """Reads unencrypted PKCS#8 "PRIVATE KEY", or SEC1 "EC PRIVATE KEY" / "SM2 PRIVATE KEY"
        (what ``openssl ec`` writes for SM2), of the SM2 curve."""
        try:
            kind, headers, der = pem.unarmor(bytes(data))
            if headers:
                raise Sm2Error("encrypted PEM private keys are not supported")
            if kind == "PRIVATE KEY":
                info = keys.PrivateKeyInfo.load(der, strict=True)
                if not _is_sm2_algorithm(info["private_key_algorithm"]):
                    raise Sm2Error("not an SM2 private key")
                return cls._from_ec_private_key(info["private_key"].parsed, curve_required=False)
            if kind in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):  # SEC1; OpenSSL 3 says "SM2"
                return cls._from_ec_private_key(keys.ECPrivateKey.load(der, strict=True),
                                                curve_required=True)
        except Sm2Error:
            raise
        except _ASN1_ERRORS as exc:
            raise Sm2Error(f"malformed private key PEM: {exc}") from exc
        raise Sm2Error(f"unsupported PEM type {kind!r}")

    @classmethod
    def _from_ec_private_key(cls, ec_key: Any, *, curve_required: bool) -> Sm2PrivateKey:
        parameters = ec_key["parameters"]
        if isinstance(parameters, core.Void):
            if curve_required:
                raise Sm2Error("EC PRIVATE KEY without curve parameters")
        elif not _is_sm2_curve(parameters):
            raise Sm2Error("the EC private key is not on the SM2 curve")
        key = cls(int(ec_key["private_key"].native))
        embedded = ec_key["public_key"]
        if not isinstance(embedded, core.Void) \
                and _uncompressed(bytes(embedded.native)) != key.public_key().point:
            raise Sm2Error("the embedded public key does not belong to the private key")
        return key

    def _ec_private_key(self) -> Any:
        """ECPrivateKey without parameters: in PKCS#8 the curve is in the AlgorithmIdentifier."""
        ec_key = keys.ECPrivateKey({"version": "ecPrivkeyVer1"})
        ec_key.set_key_size(_SIZE)  # a fixed 32-byte octet string, even with leading zeros
        ec_key["private_key"] = self.secret
        ec_key["public_key"] = keys.ECPointBitString(self.public_key().point)
        return ec_key


def _curve() -> Any:
    return keys.ECDomainParameters(name="named", value=SM2_CURVE_OID)


def _is_sm2_curve(parameters: Any) -> bool:
    return bool(parameters.name == "named" and parameters.chosen.dotted == SM2_CURVE_OID)


def _is_sm2_algorithm(algorithm: Any) -> bool:
    return bool(algorithm["algorithm"].dotted == EC_PUBLIC_KEY_OID
                and isinstance(algorithm["parameters"], keys.ECDomainParameters)
                and _is_sm2_curve(algorithm["parameters"]))


def _gmssl(secret: int | None, public_xy_hex: str) -> Any:
    """A gmssl CryptSM2 on the SM2 curve. The public key is assigned after construction because
    the constructor's ``lstrip("04")`` would eat leading 0/4 hex digits of X."""
    crypt = gm_sm2.CryptSM2(private_key=None if secret is None else f"{secret:064x}",
                            public_key="")
    crypt.public_key = public_xy_hex
    return crypt


def signer_z(public_key: Sm2PublicKey, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), binding signer id and key."""
    if len(signer_id) > _MAX_SIGNER_ID:
        raise Sm2Error("the SM2 signer id is limited to 8191 bytes")
    parts = (A, B, GX, GY, public_key.x, public_key.y)
    return sm3_digest((len(signer_id) * 8).to_bytes(2, "big") + signer_id
                      + b"".join(v.to_bytes(_SIZE, "big") for v in parts))


def _digest(public_key: Sm2PublicKey, data: bytes, signer_id: bytes) -> bytes:
    return sm3_digest(signer_z(public_key, signer_id) + data)


def _encode_signature(r: int, s: int) -> bytes:
    der: bytes = algos.DSASignature({"r": r, "s": s}).dump()
    return der


def _sign_digest(key: Sm2PrivateKey, digest: bytes, k: int) -> tuple[int, int] | None:
    """The SM2 equations for one nonce; None when gmssl rejects k (r = 0, r + k = n, s = 0)."""
    if not 1 <= k < N:
        raise Sm2Error("the SM2 nonce must be in [1, n-1]")
    signature: str | None = _gmssl(key.secret, "").sign(digest, f"{k:064x}")
    if signature is None:
        return None
    return int(signature[:64], 16), int(signature[64:], 16)


def _sign_with_nonce(key: Sm2PrivateKey, data: bytes, signer_id: bytes, k: int) -> bytes | None:
    """Deterministic signing for known-answer tests only; production code uses :func:`sign`."""
    rs = _sign_digest(key, _digest(key.public_key(), data, signer_id), k)
    return None if rs is None else _encode_signature(*rs)


def sign(key: Sm2PrivateKey, data: bytes, signer_id: bytes = DEFAULT_SIGNER_ID) -> bytes:
    """SM2-with-SM3 over ``data``: DER SEQUENCE { INTEGER r, INTEGER s }."""
    digest = _digest(key.public_key(), data, signer_id)
    while True:  # a rejected nonce has probability ~2^-255; draw another
        rs = _sign_digest(key, digest, secrets.randbelow(N - 1) + 1)
        if rs is not None:
            return _encode_signature(*rs)


def _signature_candidates(signature: bytes) -> list[tuple[int, int]]:
    """(r, s) pairs ``signature`` may stand for: canonical DER, and raw r||s when 64 bytes.
    Both are tried because a raw pair can, rarely, also be valid DER."""
    if not isinstance(signature, bytes | bytearray | memoryview):
        return []
    raw = bytes(signature)
    candidates: list[tuple[int, int]] = []
    if len(raw) <= _MAX_DER_SIGNATURE:
        try:
            parsed = algos.DSASignature.load(raw, strict=True)
            r, s = int(parsed["r"].native), int(parsed["s"].native)
            if _encode_signature(r, s) == raw:  # DER only: no BER, no malleable re-encodings
                candidates.append((r, s))
        except _ASN1_ERRORS:
            pass
    if len(raw) == 2 * _SIZE:
        candidates.append((int.from_bytes(raw[:_SIZE], "big"), int.from_bytes(raw[_SIZE:], "big")))
    return candidates


def _verify_digest(key: Sm2PublicKey, digest: bytes, r: int, s: int) -> bool:
    if not (1 <= r < N and 1 <= s < N) or (r + s) % N == 0:
        return False
    crypt = _gmssl(None, key.point[1:].hex())
    try:
        result: object = crypt.verify(f"{r:064x}{s:064x}", digest)
    except TypeError:  # gmssl slices None when s·G + t·P is the point at infinity
        return False
    return result is True


def verify(key: Sm2PublicKey, data: bytes, signature: bytes,
           signer_id: bytes = DEFAULT_SIGNER_ID) -> bool:
    """Whether ``signature`` (DER or raw r||s) is an SM2-with-SM3 signature of ``data`` by
    ``key``. Malformed signatures are False, never an exception; a signer id over 8191 bytes
    is a programming error and raises :class:`Sm2Error`."""
    candidates = _signature_candidates(signature)
    if not candidates:
        return False
    digest = _digest(key, data, signer_id)
    return any(_verify_digest(key, digest, r, s) for r, s in candidates)


def is_sm2_certificate_key(spki_der: bytes) -> bool:
    """Whether a SubjectPublicKeyInfo names the SM2 curve (the point itself is not checked)."""
    try:
        info = keys.PublicKeyInfo.load(bytes(spki_der), strict=True)
        return _is_sm2_algorithm(info["algorithm"])
    except _ASN1_ERRORS:
        return False


def public_key_of_certificate(cert_der: bytes) -> Sm2PublicKey:
    try:
        cert = x509.Certificate.load(bytes(cert_der), strict=True)
        spki = cert["tbs_certificate"]["subject_public_key_info"].dump()
    except _ASN1_ERRORS as exc:
        raise Sm2Error(f"malformed certificate: {exc}") from exc
    return Sm2PublicKey.from_spki_der(spki)


def signature_valid(tbs: bytes, signature_oid: str, signature: bytes,
                    issuer_spki_der: bytes) -> bool:
    """Whether a certificate's or CRL's TBS bytes carry a valid SM2-with-SM3 signature by the
    issuer; any other algorithm, or an issuer key that is not SM2, is False."""
    if signature_oid != SM2_SM3_SIGNATURE_OID:
        return False
    try:
        key = Sm2PublicKey.from_spki_der(issuer_spki_der)
    except Sm2Error:
        return False
    return verify(key, tbs, signature)


# --- Re-signing certificates and CRLs made by cryptography's builders (development CA, tests) --

IssuerKey = Sm2PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _signature_algorithm(issuer_key: IssuerKey) -> Any:
    """A fresh AlgorithmIdentifier (asn1crypto values must not be shared between parents)."""
    if isinstance(issuer_key, Sm2PrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": SM2_SM3_SIGNATURE_OID})
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    raise TypeError(f"unsupported issuer key {type(issuer_key).__name__}")


def _sign_tbs(issuer_key: IssuerKey, tbs_der: bytes) -> bytes:
    if isinstance(issuer_key, Sm2PrivateKey):
        return sign(issuer_key, tbs_der)
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        return issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
    return issuer_key.sign(tbs_der, ec.ECDSA(hashes.SHA256()))


def _issuer_spki(issuer_key: IssuerKey) -> Any:
    if isinstance(issuer_key, Sm2PrivateKey):
        der = issuer_key.public_key().spki_der()
    else:
        der = issuer_key.public_key().public_bytes(Encoding.DER,
                                                   PublicFormat.SubjectPublicKeyInfo)
    return keys.PublicKeyInfo.load(der)


def _refresh_key_identifiers(extensions: Any, subject_spki: Any, issuer_spki: Any) -> None:
    """Recompute SubjectKeyIdentifier and the keyIdentifier of AuthorityKeyIdentifier, where
    present, as SHA-1 of the public key bits (RFC 5280 4.2.1.2 method 1, as cryptography's
    ``from_public_key``): the builder computed them for the placeholder keys."""
    if isinstance(extensions, core.Void):
        return
    for extension in extensions:
        name = extension["extn_id"].native
        if name == "key_identifier" and subject_spki is not None:
            extension["extn_value"] = core.OctetString(subject_spki.sha1)
        elif name == "authority_key_identifier":
            old = extension["extn_value"].parsed
            new = x509.AuthorityKeyIdentifier({"key_identifier": issuer_spki.sha1})
            for kept in ("authority_cert_issuer", "authority_cert_serial_number"):
                if not isinstance(old[kept], core.Void):
                    new[kept] = old[kept]
            extension["extn_value"] = new


def resign_certificate(cert_der: bytes, issuer_key: IssuerKey,
                       subject_key: Sm2PublicKey | None = None) -> bytes:
    """Turn a certificate made by ``cryptography.x509.CertificateBuilder`` (signed by any
    placeholder key) into one signed by ``issuer_key``.

    With ``subject_key`` its SubjectPublicKeyInfo becomes that SM2 key. SubjectKeyIdentifier and
    AuthorityKeyIdentifier are recomputed when present (never added). The signature algorithm,
    inside the TBS and outside, becomes SM2-with-SM3, sha256WithRSAEncryption or
    ecdsa-with-SHA256 after the issuer key.
    """
    cert = x509.Certificate.load(bytes(cert_der), strict=True)
    tbs = cert["tbs_certificate"]
    if subject_key is not None:
        tbs["subject_public_key_info"] = keys.PublicKeyInfo.load(subject_key.spki_der())
    tbs["signature"] = _signature_algorithm(issuer_key)
    _refresh_key_identifiers(tbs["extensions"], tbs["subject_public_key_info"],
                             _issuer_spki(issuer_key))
    tbs_der: bytes = tbs.dump()
    signed = x509.Certificate({
        "tbs_certificate": x509.TbsCertificate.load(tbs_der),
        "signature_algorithm": _signature_algorithm(issuer_key),
        "signature_value": _sign_tbs(issuer_key, tbs_der),
    })
    der: bytes = signed.dump()
    return der


def resign_crl(crl_der: bytes, issuer_key: IssuerKey) -> bytes:
    """The same for a CRL made by ``cryptography.x509.CertificateRevocationListBuilder``: the
    AuthorityKeyIdentifier (if present) and the signature follow ``issuer_key``."""
    crl_list = crl.CertificateList.load(bytes(crl_der), strict=True)
    tbs = crl_list["tbs_cert_list"]
    tbs["signature"] = _signature_algorithm(issuer_key)
    _refresh_key_identifiers(tbs["crl_extensions"], None, _issuer_spki(issuer_key))
    tbs_der: bytes = tbs.dump()
    signed = crl.CertificateList({
        "tbs_cert_list": crl.TbsCertList.load(tbs_der),
        "signature_algorithm": _signature_algorithm(issuer_key),
        "signature": _sign_tbs(issuer_key, tbs_der),
    })
    der: bytes = signed.dump()
    return der
