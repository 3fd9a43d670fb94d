"""Phone + password + SMS code login (S17, D03) and password changes (T05).

The order of checks matters: lockout first (no oracle while locked), then the SMS code (proof
of the phone), then the password (argon2, also run for unknown numbers so the timing is the
same). The SMS code is consumed only by a complete success.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from idp import audit
from idp.accounts.models import Account
from idp.auth.password import Lockout, Passwords
from idp.auth.sms import MSG_EXPIRED, SmsCodes
from idp.db import utcnow
from idp.errors import FieldError, RateLimited, ServiceUnavailable
from idp.extensions import db
from idp.oidc.models import Token
from idp.oidc.tokens import revoke_where
from idp.store import get_store

MSG_BAD_CREDENTIALS = "手机号码或密码错误，还可尝试{n}次"
MSG_LOCKED = "密码错误次数过多，账号已锁定，请{m}分钟后再试"
MSG_DISABLED = "账号已停用，请联系所在单位管理员"
MSG_OLD_PASSWORD = "原密码错误"
MSG_CONFIRM = "两次输入的新密码不一致"


@dataclass(frozen=True)
class LoginResult:
    account: Account
    must_change_password: bool


def passwords() -> Passwords:
    service: Passwords = current_app.extensions["idp.passwords"]
    return service


def sms_codes() -> SmsCodes:
    service: SmsCodes = current_app.extensions["idp.sms"]
    return service


def send_login_code(phone: str, ip: str) -> str:
    """Send a login code (the 「获取验证码」 button) and audit the outcome, refusals included:
    they are how an SMS-pumping or enumeration attempt shows up in the trail."""
    try:
        message = sms_codes().send(phone, ip)
    except (RateLimited, ServiceUnavailable) as exc:
        audit.record("sms.send", audit.FAILURE, phone=_mask(phone),
                     reason="rate_limited" if isinstance(exc, RateLimited) else "gateway")
        db.session.commit()
        raise
    audit.record("sms.send", phone=_mask(phone))
    db.session.commit()
    return message


def _lockout() -> Lockout:
    return Lockout(get_store(), current_app.config["IDP"])


def _locked_error(seconds: int, field: str = "password") -> RateLimited:
    return RateLimited(field, MSG_LOCKED.format(m=max(1, -(-seconds // 60))), seconds)


def login_with_phone(phone: str, password: str, code: str) -> LoginResult:
    """Authenticate; raise FieldError naming the field to blame. Audits every outcome."""
    lockout = _lockout()
    locked = lockout.locked_for(phone)
    if locked:
        _audit_failure(phone, "locked")
        raise _locked_error(locked)

    try:
        sms_codes().check(phone, code)
    except FieldError:
        _audit_failure(phone, "sms_code")
        raise

    account = db.session.scalar(
        sa.select(Account).where(Account.phone == phone, Account.kind == "person")
    )
    stored = account.password_hash if account is not None else None
    if not passwords().verify(stored, password) or account is None:
        left = lockout.fail(phone)
        if left == 0:
            audit.record("login.lockout", audit.FAILURE,
                         account_id=account.id if account else None, phone=_mask(phone))
            _audit_failure(phone, "password", account)
            raise _locked_error(current_app.config["IDP"].lockout_seconds)
        _audit_failure(phone, "password", account)
        raise FieldError("password", MSG_BAD_CREDENTIALS.format(n=left))

    if not account.is_active:
        _audit_failure(phone, "disabled", account)
        raise FieldError("phone", MSG_DISABLED)

    if not sms_codes().consume(phone):
        _audit_failure(phone, "sms_code_raced", account)
        raise FieldError("sms_code", MSG_EXPIRED)
    lockout.reset(phone)
    if passwords().needs_rehash(stored or ""):
        account.password_hash = passwords().hash(password)
    account.last_login_at = utcnow()
    audit.record("login", account_id=account.id, method="phone",
                 must_change=account.must_change_password)
    db.session.commit()
    return LoginResult(account, account.must_change_password)


def change_password(account: Account, new_password: str, confirm: str,
                    old_password: str | None) -> None:
    """Self-service change (old password required) or the forced change after first login."""
    service = passwords()
    if old_password is not None and not service.verify(account.password_hash, old_password):
        # Guessing the old password from a live session counts like a failed login.
        left = _lockout().fail(account.phone) if account.phone else 1
        audit.record("password.change", audit.FAILURE, account_id=account.id, reason="old")
        db.session.commit()
        if left == 0:
            raise _locked_error(current_app.config["IDP"].lockout_seconds, "old_password")
        raise FieldError("old_password", MSG_OLD_PASSWORD)
    service.check_policy(new_password, phone=account.phone,
                         old_hashes=(account.password_hash, account.previous_password_hash))
    if new_password != confirm:
        raise FieldError("confirm_password", MSG_CONFIRM)
    account.previous_password_hash = account.password_hash
    account.password_hash = service.hash(new_password)
    account.must_change_password = False
    account.password_changed_at = utcnow()
    # Grants made with the old password end with it (a thief's refresh token among them).
    revoked = revoke_where(Token.account_id == account.id)
    audit.record("password.change", account_id=account.id,
                 forced=old_password is None, revoked=revoked)
    db.session.commit()


def _mask(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


def _audit_failure(phone: str, reason: str, account: Account | None = None) -> None:
    audit.record("login", audit.FAILURE, account_id=account.id if account else None,
                 method="phone", reason=reason, phone=_mask(phone))
    db.session.commit()
