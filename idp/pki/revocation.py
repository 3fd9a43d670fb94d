"""Is a certificate revoked? Asked of the issuing CA by CRL (cached until its nextUpdate) or by
OCSP (RFC 6960), whichever the CA's trust entry names.

A CRL or OCSP answer is believed only when it is signed by the CA (or, for OCSP, by a responder
the CA delegated with id-kp-OCSPSigning) and is fresh. When no trustworthy answer can be had,
``RevocationUnavailable`` is raised and the CA's ``revocation_failure`` decides.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from idp.pki.signatures import certificate_signed_by, crl_signed_by
from idp.pki.trust import TrustedCa

log = logging.getLogger(__name__)

MAX_CRL_BYTES = 10 * 1024 * 1024
MAX_OCSP_BYTES = 64 * 1024
# RFC 6960 §3.2: thisUpdate must be "sufficiently recent". An answer without nextUpdate says
# nothing about how long it holds, so it is believed only this long after thisUpdate.
MAX_OCSP_AGE = timedelta(hours=1)


class RevocationUnavailable(Exception):
    """No trustworthy revocation answer could be had (network, parse, signature, staleness)."""


@dataclass
class _CachedCrl:
    crl: x509.CertificateRevocationList
    fresh_until: datetime


class RevocationChecker:
    """One per application; thread-safe. ``now`` is passed in so that tests and the validator's
    clock skew agree on the time."""

    def __init__(self, timeout: float = 5.0, skew: timedelta = timedelta(minutes=5)) -> None:
        self._timeout = timeout
        self._skew = skew
        self._crls: dict[str, _CachedCrl] = {}
        self._lock = threading.Lock()

    # --- the question ------------------------------------------------------------------------
    def is_revoked(self, cert: x509.Certificate, issuer: TrustedCa, now: datetime) -> bool:
        """True when revoked, False when known good; RevocationUnavailable otherwise."""
        errors: list[str] = []
        url = self._ocsp_url(cert, issuer)
        if url:
            try:
                return self._ocsp(cert, issuer, url, now)
            except RevocationUnavailable as exc:
                errors.append(f"OCSP: {exc}")
        if issuer.crl:
            try:
                crl = self._crl(issuer, now)
                return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
            except RevocationUnavailable as exc:
                errors.append(f"CRL: {exc}")
        raise RevocationUnavailable("; ".join(errors) or "no revocation source")

    # --- CRL ---------------------------------------------------------------------------------
    def _crl(self, ca: TrustedCa, now: datetime) -> x509.CertificateRevocationList:
        with self._lock:
            cached = self._crls.get(ca.crl)
        if cached is not None and now <= cached.fresh_until:
            return cached.crl
        crl = self._fetch_crl(ca, now)
        next_update = crl.next_update_utc
        assert next_update is not None  # checked in _fetch_crl
        with self._lock:
            self._crls[ca.crl] = _CachedCrl(crl, next_update)
        return crl

    def _fetch_crl(self, ca: TrustedCa, now: datetime) -> x509.CertificateRevocationList:
        data = self._read(ca.crl, MAX_CRL_BYTES)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                crl = x509.load_pem_x509_crl(data)
            else:
                crl = x509.load_der_x509_crl(data)
        except ValueError as exc:
            raise RevocationUnavailable(f"{ca.crl}: not a CRL ({exc})") from None
        if not crl_signed_by(crl, ca.certificate):
            raise RevocationUnavailable(f"{ca.crl}: not signed by {ca.name}")
        if crl.last_update_utc > now + self._skew:
            raise RevocationUnavailable(f"{ca.crl}: issued in the future")
        if crl.next_update_utc is None or crl.next_update_utc + self._skew < now:
            raise RevocationUnavailable(f"{ca.crl}: stale (nextUpdate {crl.next_update_utc})")
        return crl

    def _read(self, location: str, limit: int) -> bytes:
        if urlsplit(location).scheme in {"http", "https"}:  # urlsplit lower-cases the scheme
            data = self._download(urllib.request.Request(location), limit)  # noqa: S310 — scheme checked at load
        else:
            try:
                with Path(location).open("rb") as fh:
                    data = fh.read(limit + 1)
            except OSError as exc:
                raise RevocationUnavailable(f"{location}: {exc.strerror}") from None
        if len(data) > limit:
            raise RevocationUnavailable(f"{location}: larger than {limit} bytes")
        return data

    def _download(self, request: urllib.request.Request, limit: int) -> bytes:
        """At most ``limit + 1`` bytes, all within ``timeout`` seconds: the socket timeout alone
        bounds each read, not a server trickling one byte at a time. Broken HTTP is no answer."""
        deadline = time.monotonic() + self._timeout
        chunks: list[bytes] = []
        size = 0
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 — http(s) only
                while size <= limit:
                    if time.monotonic() > deadline:
                        raise RevocationUnavailable(f"{request.full_url}: too slow")
                    chunk: bytes = response.read1(min(64 * 1024, limit + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except (URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise RevocationUnavailable(f"{request.full_url}: {exc}") from None
        return b"".join(chunks)

    # --- OCSP (RFC 6960) -------------------------------------------------------------------
    @staticmethod
    def _ocsp_url(cert: x509.Certificate, ca: TrustedCa) -> str:
        if ca.ocsp != "aia":
            return ca.ocsp
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        except x509.ExtensionNotFound:
            return ""
        for desc in aia:
            if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                    desc.access_location, x509.UniformResourceIdentifier):
                url = desc.access_location.value
                if urlsplit(url).scheme in {"http", "https"}:
                    return url
        return ""

    def _ocsp(self, cert: x509.Certificate, ca: TrustedCa, url: str, now: datetime) -> bool:
        request = ocsp.OCSPRequestBuilder().add_certificate(
            cert, ca.certificate, hashes.SHA1()  # noqa: S303 — RFC 6960 CertID; SHA-1 is what responders index by
        ).build()
        body = request.public_bytes(serialization.Encoding.DER)
        http_request = urllib.request.Request(  # noqa: S310 — http(s) only, checked at load
            url, data=body, method="POST", headers={"Content-Type": "application/ocsp-request"})
        data = self._download(http_request, MAX_OCSP_BYTES)
        if len(data) > MAX_OCSP_BYTES:
            raise RevocationUnavailable(f"{url}: larger than {MAX_OCSP_BYTES} bytes")
        try:
            answer = ocsp.load_der_ocsp_response(data)
        except ValueError:
            raise RevocationUnavailable(f"{url}: not an OCSP response") from None
        if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RevocationUnavailable(f"{url}: {answer.response_status.name}")
        # RFC 6960 allows more SingleResponses than were asked for: find the one about ours.
        single = next((one for one in answer.responses
                       if one.serial_number == cert.serial_number
                       and one.issuer_key_hash == request.issuer_key_hash
                       and one.issuer_name_hash == request.issuer_name_hash), None)
        if single is None:
            raise RevocationUnavailable(f"{url}: answer is about another certificate")
        if not self._ocsp_signed(answer, ca, now):
            raise RevocationUnavailable(f"{url}: response not signed by {ca.name}")
        expires = single.next_update_utc or single.this_update_utc + MAX_OCSP_AGE
        if single.this_update_utc > now + self._skew or expires + self._skew < now:
            raise RevocationUnavailable(f"{url}: response not fresh")
        if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return False
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return True
        raise RevocationUnavailable(f"{url}: status unknown")

    @staticmethod
    def _ocsp_signed(answer: ocsp.OCSPResponse, ca: TrustedCa, now: datetime) -> bool:
        """Signed by the CA itself, or by a responder certificate the CA issued for OCSP."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

        candidates = [ca.certificate]
        for responder in answer.certificates:
            if not responder.not_valid_before_utc <= now <= responder.not_valid_after_utc:
                continue
            try:
                eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING in eku and certificate_signed_by(
                    responder, ca.certificate):
                candidates.append(responder)
        try:
            algorithm = answer.signature_hash_algorithm
        except UnsupportedAlgorithm:  # e.g. SM2-with-SM3, which cryptography cannot verify
            return False
        if algorithm is None:
            return False
        for signer in candidates:
            try:
                key = signer.public_key()
                if isinstance(key, rsa.RSAPublicKey):
                    key.verify(answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(),
                               algorithm)
                elif isinstance(key, ec.EllipticCurvePublicKey):
                    key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(algorithm))
                else:
                    continue
            except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
                continue
            return True
        return False
