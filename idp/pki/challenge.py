"""Signed-challenge login, for UKey client tools such as 协卡助手 (DOMAIN.md).

The page asks for a nonce; the tool signs it with the UKey's private key (the PIN stays between
the user and the UKey); the page posts the certificate and the signature. The nonce is random,
lives ``ukey_challenge_ttl`` seconds, is bound to the browser session that asked for it, and is
taken from the store exactly once, so a signature can never be replayed.

Two signature formats are accepted:
- ``raw``: the signature value over the UTF-8 nonce (RSA PKCS#1 v1.5, ECDSA DER, SM2 DER or r‖s),
  with the certificate posted beside it;
- ``pkcs7``: a CMS SignedData (RFC 5652), attached or detached, whose content is the nonce; the
  signer's certificate is taken from the SignedData when the page does not post one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from asn1crypto import cms
from cryptography import x509

from idp.pki import sm2
from idp.pki.certs import CertificateError, load_certificate, load_certificates
from idp.pki.signatures import data_signed_by
from idp.security import equal, keyed_hash, new_token
from idp.store import Store

MAX_SIGNATURE_BYTES = 32 * 1024
_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def issue_nonce(store: Store, secret: str, session_binding: str, ttl: int) -> str:
    nonce = new_token(24)
    store.set(f"ukey:nonce:{nonce}", keyed_hash(secret, "ukey-nonce", session_binding), ttl)
    return nonce


def take_nonce(store: Store, secret: str, session_binding: str, nonce: str) -> bool:
    """Use the nonce up; True only if it was issued to this session and had not been used."""
    if not nonce or len(nonce) > 64 or not nonce.replace("-", "").replace("_", "").isalnum():
        return False
    bound = store.take(f"ukey:nonce:{nonce}")
    return bound is not None and equal(bound, keyed_hash(secret, "ukey-nonce", session_binding))


def _b64(text: str) -> bytes:
    cleaned = "".join(text.split())
    if not cleaned or len(cleaned) > MAX_SIGNATURE_BYTES * 2:
        raise CertificateError("bad_signature")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("bad_signature") from None


def verify_raw(nonce: str, certificate: str, signature: str,
               hash_name: str = "sha256") -> x509.Certificate:
    """The certificate whose key signed ``nonce``; CertificateError otherwise."""
    if not certificate.strip():
        raise CertificateError("missing")
    cert = _certificate_from_text(certificate)
    if not data_signed_by(nonce.encode("utf-8"), _b64(signature), cert, hash_name):
        raise CertificateError("bad_signature")
    return cert


def _certificate_from_text(text: str) -> x509.Certificate:
    stripped = text.strip()
    if stripped.startswith("-----"):
        return load_certificate(stripped)
    try:
        der = base64.b64decode("".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("malformed") from None
    return load_certificate(der)


def verify_pkcs7(nonce: str, signature: str, certificate: str = "") -> x509.Certificate:
    """RFC 5652 SignedData over ``nonce``; the signer's certificate; CertificateError otherwise."""
    der = _b64(signature)
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise CertificateError("bad_signature")
        signed: cms.SignedData = info["content"]
        signers = signed["signer_infos"]
        if len(signers) != 1:
            raise CertificateError("bad_signature")
        signer: cms.SignerInfo = signers[0]
        content = signed["encap_content_info"]["content"]
        if content.native is not None and content.native != nonce.encode("utf-8"):
            raise CertificateError("bad_signature")
        cert = (_certificate_from_text(certificate) if certificate.strip()
                else _signer_certificate(signed, signer))
        data = nonce.encode("utf-8")
        digest_name = signer["digest_algorithm"]["algorithm"].native
        attrs = signer["signed_attrs"]
        if attrs.native is not None:
            digest = _digest(digest_name, data)
            digests = [a["values"][0].native for a in attrs
                       if a["type"].native == "message_digest"]
            if len(digests) != 1 or not hmac.compare_digest(digests[0], digest):
                raise CertificateError("bad_signature")
            # The signature covers the attributes, DER-encoded as a SET (RFC 5652 §5.4).
            data = attrs.untag().dump(force=True)
        value = signer["signature"].native
    except (ValueError, TypeError, KeyError):
        raise CertificateError("bad_signature") from None
    hash_name = digest_name if digest_name in _HASHES else "sha256"
    if not data_signed_by(data, value, cert, hash_name):
        raise CertificateError("bad_signature")
    return cert


def _digest(name: str, data: bytes) -> bytes:
    if name in _HASHES:
        return _HASHES[name](data).digest()
    if name in {"1.2.156.10197.1.401", "sm3"}:
        return sm2.sm3_digest(data)
    raise CertificateError("bad_signature")


def _signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    """The certificate the SignerInfo names, by issuer and serial or by key identifier."""
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            if (cert.issuer == sid.chosen["issuer"]
                    and cert.serial_number == sid.chosen["serial_number"].native):
                return load_certificates(cert.dump())[0]
        elif cert.key_identifier == sid.chosen.native:
            return load_certificates(cert.dump())[0]
    raise CertificateError("missing")
