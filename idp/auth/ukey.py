"""UKey login (S02, D02): a validated enterprise certificate logs in to its enterprise's
``ukey`` account.

The certificate arrives by one of three transports (``idp.pki.transport`` for TLS and a trusted
proxy, ``idp.pki.challenge`` for a client tool's signature); from here on they are the same:
the validator judges it, the USCC inside names the enterprise, and every outcome — success,
every kind of refusal, an unregistered enterprise — is written to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from flask import current_app, request, session

from idp import audit
from idp.accounts.models import Account, Certificate
from idp.db import utcnow
from idp.errors import ServiceUnavailable
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.pki.certs import CertificateError, load_certificate, thumbprint
from idp.pki.transport import ENV_CERT, ENV_CERT_MALFORMED, ENV_CERT_SOURCE, presented_x5t
from idp.pki.validator import CertificateValidator, ValidatedCertificate
from idp.security import equal

MSG_NOT_CONFIGURED = "UKey登录暂不可用，请使用手机号登录或联系系统管理员。"
MSG_DISABLED = "该企业账号已停用，请联系所在区中心。"


@dataclass(frozen=True)
class UkeyOutcome:
    validated: ValidatedCertificate
    account: Account | None  # None: the enterprise is not registered yet
    organisation: Organisation | None


def get_validator() -> CertificateValidator:
    validator: CertificateValidator | None = current_app.extensions.get("idp.ukey")
    if validator is None:
        raise ServiceUnavailable(MSG_NOT_CONFIGURED)
    return validator


def connection_certificate() -> bytes | None:
    """The certificate presented on this connection (TLS or trusted proxy), as DER."""
    if request.environ.get(ENV_CERT_MALFORMED):
        raise CertificateError("malformed")
    der: bytes | None = request.environ.get(ENV_CERT)
    return der


def connection_transport() -> str:
    return str(request.environ.get(ENV_CERT_SOURCE) or "none")


def record_refusal(reason: str, transport: str) -> None:
    """Audit a UKey attempt that ended before a certificate could be judged."""
    audit.record("login.ukey", result="failure", reason=reason, transport=transport)
    db.session.commit()


def login_with_certificate(data: bytes | x509.Certificate, transport: str) -> UkeyOutcome:
    """Validate and look up; audits the outcome and commits it. CertificateError on refusal."""
    detail: dict[str, Any] = {"transport": transport}
    try:
        cert = data if isinstance(data, x509.Certificate) else load_certificate(data)
        detail.update(serial=format(cert.serial_number, "x"), x5t=thumbprint(cert))
        validated = get_validator().validate(cert)
    except CertificateError as exc:
        audit.record("login.ukey", result="failure", reason=exc.reason, **detail)
        db.session.commit()
        raise
    org = find_enterprise(validated)
    account = None
    if org is not None:
        account = db.session.scalar(sa.select(Account).where(
            Account.organisation_id == org.id, Account.kind == "ukey"))
    facts = {**detail, "ca": validated.issuer_name,
             "uscc": validated.enterprise.uscc or validated.enterprise.org_code,
             "revocation_checked": validated.revocation_checked}
    if account is None:
        audit.record("login.ukey", result="unregistered", **facts)
        db.session.commit()
        return UkeyOutcome(validated, None, org)
    if account.status == "pending":  # registered, waiting for review: the status page says so
        audit.record("login.ukey", result="pending_review", account_id=account.id, **facts)
        db.session.commit()
        return UkeyOutcome(validated, account, org)
    if not account.is_active:
        audit.record("login.ukey", result="failure", reason="account_disabled",
                     account_id=account.id, **facts)
        db.session.commit()
        raise CertificateLoginRefused(MSG_DISABLED)
    _remember(account, validated)
    audit.record("login.ukey", result="success", account_id=account.id, **facts)
    db.session.commit()
    return UkeyOutcome(validated, account, org)


class CertificateLoginRefused(Exception):
    """A valid certificate whose account may not log in (disabled); ``message`` is shown."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def find_enterprise(validated: ValidatedCertificate) -> Organisation | None:
    """The enterprise by USCC; a certificate with only an organisation code (GM/T 0015) finds
    the enterprise whose USCC contains it (DOMAIN.md: USCC[8:17] is the organisation code)."""
    name = validated.enterprise
    query = sa.select(Organisation).where(Organisation.type == "enterprise")
    if name.uscc:
        return db.session.scalar(query.where(Organisation.uscc == name.uscc))
    matches = db.session.scalars(query.where(
        sa.func.substr(Organisation.uscc, 9, 9) == name.org_code).limit(2)).all()
    return matches[0] if len(matches) == 1 else None


def _remember(account: Account, validated: ValidatedCertificate) -> None:
    now = utcnow()
    account.last_login_at = now
    seen = db.session.scalar(sa.select(Certificate).where(
        Certificate.thumbprint == validated.thumbprint))
    if seen is None:
        cert = validated.certificate
        db.session.add(Certificate(
            account_id=account.id, thumbprint=validated.thumbprint,
            serial=validated.serial_hex, issuer=validated.issuer_name[:200],
            subject=validated.enterprise.name[:200], uscc=validated.enterprise.uscc,
            not_after=cert.not_valid_after_utc, last_used_at=now))
    else:
        seen.last_used_at = now


# --- the SSO session remembers which certificate logged in ------------------------------------

SESSION_X5T = "x5t"
SESSION_X5T_TRANSPORT = "x5t_transport"


def bind_session(validated: ValidatedCertificate, transport: str) -> None:
    session[SESSION_X5T] = validated.thumbprint
    session[SESSION_X5T_TRANSPORT] = transport


def certificate_still_present(account_id: str) -> bool:
    """False (and audited) when the UKey that logged this session in has been pulled out or
    swapped: the connection now carries another certificate, or none although the login was
    over TLS; the caller then asks for a new login.

    A session begun by a signed challenge has no certificate on its connections; only a
    *different* one counts against it. Sessions of phone logins have no x5t: always True."""
    expected = session.get(SESSION_X5T)
    if not expected:
        return True
    if request.environ.get(ENV_CERT_MALFORMED):
        still = False
    else:
        presented = presented_x5t(request.environ)
        still = (session.get(SESSION_X5T_TRANSPORT) == "challenge" if presented is None
                 else equal(presented, str(expected)))
    if not still:
        audit.record("sso.certificate_changed", account_id=account_id)
        db.session.commit()
    return still
