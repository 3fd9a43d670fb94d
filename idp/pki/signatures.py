"""Is this certificate (or CRL) signed by that CA? RSA and ECDSA through ``cryptography``;
SM2-with-SM3 through ``idp.pki.sm2``, because ``cryptography`` parses SM2 but cannot verify it.
Every answer is a plain bool: a signature that cannot be checked is a signature that failed."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idp.pki import sm2


def spki_der(cert: x509.Certificate) -> bytes:
    """The SubjectPublicKeyInfo, also for keys ``cryptography`` cannot load (SM2)."""
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (UnsupportedAlgorithm, ValueError):
        return sm2.public_key_of_certificate(cert.public_bytes(Encoding.DER)).spki_der()


def _sm2_signed(tbs: bytes, oid: str, signature: bytes, issuer: x509.Certificate) -> bool:
    try:
        return sm2.signature_valid(tbs, oid, signature, spki_der(issuer))
    except (sm2.Sm2Error, ValueError):
        return False


def certificate_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    oid = cert.signature_algorithm_oid.dotted_string
    if oid == sm2.SM2_SM3_SIGNATURE_OID:
        return _sm2_signed(cert.tbs_certificate_bytes, oid, cert.signature, issuer)
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    if crl.issuer != issuer.subject:
        return False
    oid = crl.signature_algorithm_oid.dotted_string
    if oid == sm2.SM2_SM3_SIGNATURE_OID:
        return _sm2_signed(crl.tbs_certlist_bytes, oid, crl.signature, issuer)
    try:
        key = issuer.public_key()
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return False
        return crl.is_signature_valid(key)
    except (UnsupportedAlgorithm, ValueError, TypeError):
        return False


def data_signed_by(data: bytes, signature: bytes, cert: x509.Certificate,
                   hash_name: str = "sha256") -> bool:
    """A signature over ``data`` by the key of ``cert``: RSA PKCS#1 v1.5, ECDSA (DER) or SM2
    (DER or raw r‖s). Used for the signed login challenge."""
    from cryptography.hazmat.primitives import hashes

    algorithms: dict[str, hashes.HashAlgorithm] = {
        "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
    }
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        try:
            return sm2.verify(sm2.public_key_of_certificate(cert.public_bytes(Encoding.DER)),
                              data, signature)
        except (sm2.Sm2Error, ValueError):
            return False
    algorithm = algorithms.get(hash_name)
    if algorithm is None or len(signature) > 2048:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
