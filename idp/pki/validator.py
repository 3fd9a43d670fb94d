"""``CertificateValidator``: the one place that decides whether an enterprise certificate may log
in, whatever carried it (embedded TLS, a trusted reverse proxy, or a signed challenge).

A certificate is accepted only when every one of these holds (issue 3, DOMAIN.md):
it is an end-entity certificate; it chains, by signature, to a configured trust anchor through
configured CAs only; it and its issuers are inside their validity windows (± a small clock skew);
its key usage allows digital signature and its extended key usage (if any) client authentication;
it is not revoked (CRL or OCSP, per CA, fail-closed unless that CA says otherwise); and it names
an enterprise by a USCC (or organisation code) that passes its check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from idp.pki.certs import (
    IDENTIFIER_OIDS,
    CertificateError,
    EnterpriseName,
    enterprise_of,
    load_certificate,
    thumbprint,
)
from idp.pki.revocation import RevocationChecker, RevocationUnavailable
from idp.pki.signatures import certificate_signed_by
from idp.pki.trust import TrustedCa

log = logging.getLogger(__name__)

MAX_CHAIN_DEPTH = 6
BEIJING = timedelta(hours=8)


@dataclass(frozen=True)
class ValidatedCertificate:
    certificate: x509.Certificate
    enterprise: EnterpriseName
    thumbprint: str  # x5t#S256
    issuer_name: str  # the CA entry's name
    chain: tuple[x509.Certificate, ...]  # leaf first, anchor last
    revocation_checked: bool  # False only when a fail-open CA could not be asked

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


def _beijing_date(moment: datetime) -> str:
    return (moment + BEIJING).strftime("%Y-%m-%d %H:%M")


def _is_ca(cert: x509.Certificate) -> tuple[bool, int | None]:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False, None
    return bc.ca, bc.path_length


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


class CertificateValidator:
    """Built once per application from the trust list; ``validate`` is thread-safe."""

    def __init__(self, cas: Sequence[TrustedCa], *, clock_skew: int = 300,
                 revocation: RevocationChecker | None = None) -> None:
        self._cas = tuple(cas)
        self._skew = timedelta(seconds=clock_skew)
        self._revocation = revocation or RevocationChecker(skew=self._skew)
        self._ca_prints = {thumbprint(ca.certificate) for ca in self._cas}

    @property
    def cas(self) -> tuple[TrustedCa, ...]:
        return self._cas

    def validate(self, data: bytes | str | x509.Certificate,
                 now: datetime | None = None) -> ValidatedCertificate:
        """Accept the certificate or raise ``CertificateError`` naming the reason."""
        now = now or datetime.now(UTC)
        cert = data if isinstance(data, x509.Certificate) else load_certificate(data)
        is_ca, _ = _is_ca(cert)
        if is_ca or thumbprint(cert) in self._ca_prints:
            raise CertificateError("ca_certificate")
        path = self._path(cert)
        self._check_critical_extensions(cert)
        self._check_times(cert, path, now)
        self._check_usage(cert)
        checked = self._check_revocation(cert, path, now)
        enterprise = enterprise_of(cert)
        return ValidatedCertificate(
            certificate=cert, enterprise=enterprise, thumbprint=thumbprint(cert),
            issuer_name=path[0].name, chain=(cert, *(ca.certificate for ca in path)),
            revocation_checked=checked,
        )

    # --- chain ---------------------------------------------------------------------------------
    def _path(self, leaf: x509.Certificate) -> list[TrustedCa]:
        """The configured CAs from the leaf's issuer up to an anchor, each verified by signature.

        Only configured CA certificates are candidates — never ones the client sends — so a
        client cannot bring its own intermediate. Depth-limited and loop-proof."""
        found = self._extend(leaf, [], set())
        if found is None:
            raise CertificateError("untrusted")
        return found

    def _extend(self, cert: x509.Certificate, path: list[TrustedCa],
                seen: set[str]) -> list[TrustedCa] | None:
        if len(path) >= MAX_CHAIN_DEPTH:
            return None
        for ca in self._cas:
            tp = thumbprint(ca.certificate)
            if tp in seen or ca.certificate.subject != cert.issuer:
                continue
            if not certificate_signed_by(cert, ca.certificate):
                continue
            is_ca, path_length = _is_ca(ca.certificate)
            usage = _key_usage(ca.certificate)
            if not is_ca or (usage is not None and not usage.key_cert_sign):
                continue
            # pathLenConstraint counts the CA certificates below this one, leaf excluded.
            if path_length is not None and len(path) > path_length:
                continue
            candidate = [*path, ca]
            if ca.anchor:
                return candidate
            deeper = self._extend(ca.certificate, candidate, seen | {tp})
            if deeper is not None:
                return deeper
        return None

    # --- time ------------------------------------------------------------------------------------
    def _check_times(self, cert: x509.Certificate, path: list[TrustedCa], now: datetime) -> None:
        if now + self._skew < cert.not_valid_before_utc:
            raise CertificateError("not_yet_valid", date=_beijing_date(cert.not_valid_before_utc))
        if now - self._skew > cert.not_valid_after_utc:
            raise CertificateError("expired", date=_beijing_date(cert.not_valid_after_utc))
        for ca in path:
            c = ca.certificate
            if not c.not_valid_before_utc - self._skew <= now <= c.not_valid_after_utc + self._skew:
                log.warning("CA certificate %s is outside its validity period", ca.name)
                raise CertificateError("untrusted")

    @staticmethod
    def _check_critical_extensions(cert: x509.Certificate) -> None:
        """RFC 5280 §4.2: a certificate with a critical extension we do not understand must
        be rejected; the identifier extensions we read are understood."""
        for ext in cert.extensions:
            if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension) and (
                    ext.oid.dotted_string not in IDENTIFIER_OIDS):
                raise CertificateError("critical_extension")

    # --- usage -----------------------------------------------------------------------------------
    @staticmethod
    def _check_usage(cert: x509.Certificate) -> None:
        usage = _key_usage(cert)
        if usage is not None and not usage.digital_signature:
            raise CertificateError("key_usage")
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return
        allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
        if not allowed.intersection(eku):
            raise CertificateError("key_usage")

    # --- revocation ------------------------------------------------------------------------------
    def _check_revocation(self, cert: x509.Certificate, path: list[TrustedCa],
                          now: datetime) -> bool:
        """Ask each issuer about the certificate below it (the anchor is trusted as configured).
        Returns False when a fail-open CA could not be asked (recorded in the audit trail)."""
        complete = True
        subjects = [cert, *(ca.certificate for ca in path[:-1])]
        for subject, issuer in zip(subjects, path, strict=True):
            if not issuer.check_revocation:
                continue
            try:
                revoked = self._revocation.is_revoked(subject, issuer, now)
            except RevocationUnavailable as exc:
                log.warning("revocation status from %s unavailable: %s", issuer.name, exc)
                if not issuer.fail_open:
                    raise CertificateError("revocation_unknown") from None
                complete = False
                continue
            if revoked:
                raise CertificateError("revoked" if subject is cert else "untrusted")
        return complete
