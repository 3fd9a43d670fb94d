"""Who may enter the platform admin console, and the second factor that lets them in.

等保 2.0 level 3 (GB/T 22239-2019, 8.1.4.1) wants two factors for administrators, at least one of
them cryptographic. The first is the ordinary login (phone + password + SMS code); the second is
a 动态口令, a TOTP code (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) from an authenticator
app whose seed is sealed in ``Account.totp_secret``. A UKey certificate would be the other
cryptographic factor that fits (a later option: a platform admin whose SSO session was started
by a UKey login could skip this page), but the team that runs the provider logs in as persons.

The verified flag lives in the server-side session, bound to the SSO session id (``sid``): it
ends with the session, with a new login, and after ``IDLE_SECONDS`` without an admin request.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import pyotp
import sqlalchemy as sa
from flask import current_app, session

from idp import audit
from idp.accounts.models import Account, Identity
from idp.accounts.service import create_person, random_initial_password
from idp.db import table_of
from idp.errors import FieldError, IdpError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.orgs.review import CONSOLE_PLATFORM
from idp.registration.legacy import MSG_OTP_USED, normalize_otp_code
from idp.security import seal, unseal
from idp.store import Store, get_store
from idp.validators import normalize_name, normalize_phone

ADMIN_ROLE = "platform_admin"
ADMIN_PLATFORM = CONSOLE_PLATFORM
PLATFORM_ORG_NAME = "统一认证登录平台运维"
TOTP_PURPOSE = "admin-totp"  # the seal's purpose: a legacy OTP seed cannot be unsealed as this
TOTP_ISSUER = "统一认证登录平台"
SESSION_KEY = "admin_mfa"
IDLE_SECONDS = 1800  # 等保 level 3: re-asked after at most 30 minutes without activity
TOUCH_SECONDS = 60  # the idle clock is moved at most once a minute (one session write)

MSG_WRONG_CODE = "动态口令错误"
MSG_TRIES_LEFT = "，还可尝试{left}次"
MSG_LOCKED = "动态口令错误次数过多，已锁定，请{minutes}分钟后再试。"
MSG_NO_TOTP = "您的账号尚未设置动态口令，请联系平台运维负责人重置动态口令后再试。"
MSG_NOT_ADMIN = "该手机号码不是平台管理员"
MSG_NOT_PERSON = "该手机号码的账号不是个人账号"

# Computed when the account has no usable seed, so that every refusal costs the same.
_DUMMY_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


class VerifyLocked(IdpError):
    """Too many wrong codes: no code is even looked at for ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- the role ---------------------------------------------------------------------------------

def is_platform_admin(account: Account) -> bool:
    """An active ``platform_admin`` identity on the console platform, of an active organisation
    of type ``platform`` (the team that runs the provider)."""
    return any(
        identity.status == "active" and identity.role == ADMIN_ROLE
        and identity.platform == ADMIN_PLATFORM and identity.organisation.type == "platform"
        and identity.organisation.is_active
        for identity in account.identities)


# --- the session flag -------------------------------------------------------------------------

def _idle_seconds() -> int:
    return min(IDLE_SECONDS, int(current_app.config["IDP"].session_idle_seconds))


def is_verified(account: Account) -> bool:
    """The second factor was given in this SSO session, by this account, recently enough.

    A flag of another account or another SSO session (``sid``) counts for nothing; an idle one
    is dropped, so the next request asks again."""
    flag = session.get(SESSION_KEY)
    if not isinstance(flag, dict):
        return False
    seen = flag.get("seen")
    if (flag.get("uid") != account.id or flag.get("sid") != session.get("sid")
            or not isinstance(seen, int | float) or isinstance(seen, bool)):
        session.pop(SESSION_KEY, None)
        return False
    now = time.time()
    if now - seen > _idle_seconds() or seen > now + TOUCH_SECONDS:
        session.pop(SESSION_KEY, None)
        return False
    if now - seen >= TOUCH_SECONDS:
        session[SESSION_KEY] = {**flag, "seen": now}
    return True


def mark_verified(account: Account) -> None:
    """The second factor passed: a new session id (OWASP: renew it when the privilege
    rises), then the mark, bound to this login's ``sid``."""
    from idp.auth.session import StoreSession

    if isinstance(session, StoreSession):
        session.regenerate(keep_created=True)
    now = time.time()
    session[SESSION_KEY] = {"uid": account.id, "sid": session.get("sid"), "at": now,
                            "seen": now}


def forget_verified() -> None:
    session.pop(SESSION_KEY, None)


# --- the TOTP check ---------------------------------------------------------------------------

class _Tries:
    """Wrong codes counted per account; ``lockout_threshold`` of them lock the second factor
    for ``lockout_seconds``, like the password lockout (idp.auth.password.Lockout)."""

    def __init__(self, store: Store, account_id: str) -> None:
        settings = current_app.config["IDP"]
        self._store = store
        self._limit = int(settings.lockout_threshold)
        self.seconds = int(settings.lockout_seconds)
        self._fail = f"admin-totp:fail:{account_id}"
        self._lock = f"admin-totp:lock:{account_id}"

    def locked_for(self) -> int:
        return self._store.ttl(self._lock) or 0

    def fail(self) -> int:
        """Count a wrong code; the tries left (0: now locked)."""
        count = self._store.incr(self._fail, self.seconds)
        if count >= self._limit:
            self._store.set(self._lock, "1", self.seconds)
            self._store.delete(self._fail)
            return 0
        return self._limit - count

    def reset(self) -> None:
        self._store.delete(self._fail)

    def clear(self) -> None:
        self._store.delete(self._fail)
        self._store.delete(self._lock)


def locked_for(account: Account) -> int:
    """Seconds left of a lock on the account's second factor, 0 when not locked."""
    return _Tries(get_store(), account.id).locked_for()


def locked_message(seconds: int) -> str:
    return MSG_LOCKED.format(minutes=max(1, math.ceil(seconds / 60)))


def _seed_of(account: Account) -> str | None:
    if not account.totp_secret:
        return None
    try:
        return unseal(current_app.config["IDP"].key_passphrase, TOTP_PURPOSE, account.totp_secret)
    except ValueError:  # sealed under another passphrase, or altered: unusable
        current_app.logger.error("platform admin %s: TOTP seed does not unseal with the current "
                                 "key_passphrase; run `idp admins reset-totp`", account.id)
        return None


def has_totp(account: Account) -> bool:
    return _seed_of(account) is not None


def matching_step(seed: str | None, code: str, now: float) -> int | None:
    """The time step (RFC 6238 §4) within ±1 of now whose code is ``code``, or None.

    ``pyotp.TOTP.verify`` answers only yes or no; single use needs *which* step matched, so
    the three codes are computed and all three compared in constant time, whatever matches."""
    totp = pyotp.TOTP(seed or _DUMMY_SECRET)
    current = totp.timecode(now)
    matched = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
            matched = step
    return matched if seed is not None else None


def _refuse(account: Account, reason: str, **detail: Any) -> None:
    """Audit a refused try on its own (whatever the try changed is rolled back first)."""
    db.session.rollback()
    audit.record("admin.verify", audit.FAILURE, account_id=account.id, reason=reason, **detail)
    db.session.commit()


def _wrong(account: Account, tries: _Tries, reason: str, message: str) -> NoReturn:
    db.session.rollback()  # the store may write on a connection of its own (SQLite: one writer)
    left = tries.fail()
    _refuse(account, reason, tries_left=left)
    if left <= 0:
        raise VerifyLocked(locked_message(tries.seconds), tries.seconds)
    raise FieldError("code", message + MSG_TRIES_LEFT.format(left=left))


def verify_code(account: Account, raw_code: str | None) -> None:
    """Check the admin's 动态口令; on success record it as used and audit it (committed).

    Raises ``FieldError`` (bad format, wrong, reused, no seed) or ``VerifyLocked``. Every try
    past the format check is audited as ``admin.verify``. A code is good once: the step it
    belongs to is written with a conditional UPDATE (only if later than the last one used), so
    of two requests with the same code exactly one gets in."""
    code = normalize_otp_code(raw_code, "code")
    tries = _Tries(get_store(), account.id)
    wait = tries.locked_for()
    if wait:
        _refuse(account, "locked")
        raise VerifyLocked(locked_message(wait), wait)
    seed = _seed_of(account)
    step = matching_step(seed, code, time.time())
    if seed is None:
        _refuse(account, "no_totp")
        raise FieldError("code", MSG_NO_TOTP)
    if step is None:
        _wrong(account, tries, "wrong_code", MSG_WRONG_CODE)
    table = table_of(Account)
    moved = db.session.execute(
        sa.update(table)
        .where(table.c.id == account.id,
               sa.or_(table.c.totp_last_step.is_(None), table.c.totp_last_step < step))
        .values(totp_last_step=step))
    if getattr(moved, "rowcount", 0) != 1:
        _wrong(account, tries, "code_reused", MSG_OTP_USED)
    audit.record("admin.verify", account_id=account.id)
    db.session.commit()
    tries.reset()


# --- provisioning (the `idp admins` commands) ---------------------------------------------------

@dataclass(frozen=True)
class Provisioned:
    account: Account
    otpauth_uri: str
    initial_password: str | None = None
    created: bool = False


def _fresh_seed(account: Account, seed: str | None = None) -> str:
    """A new 160-bit seed (pyotp.random_base32: 32 base32 characters), sealed; the step
    counter restarts. Returns the otpauth:// URI for the authenticator app (shown once).
    ``seed`` is given only by ``idp init --demo`` (its published development seed)."""
    seed = seed or pyotp.random_base32()
    account.totp_secret = seal(current_app.config["IDP"].key_passphrase, TOTP_PURPOSE, seed)
    account.totp_last_step = None
    return pyotp.TOTP(seed).provisioning_uri(name=account.phone or account.id,
                                             issuer_name=TOTP_ISSUER)


def _platform_org() -> Organisation:
    org = db.session.scalar(sa.select(Organisation).where(
        Organisation.type == "platform", Organisation.status == "active")
        .order_by(Organisation.id).limit(1))
    if org is None:
        org = Organisation(type="platform", name=PLATFORM_ORG_NAME, status="active")
        db.session.add(org)
        db.session.flush()
    return org


def provision_admin(phone: str, name: str, password: str | None = None, *,
                    seed: str | None = None) -> Provisioned:
    """Make ``phone`` a platform admin: its person account (created, or reused as it is), the
    platform organisation (created once), the ``platform_admin`` identity and a fresh TOTP seed.
    One transaction, committed here with the ``admin.provision`` audit event. ``FieldError``
    for a bad phone, name or password (nothing written)."""
    phone = normalize_phone(phone)
    password = password or None
    account = db.session.scalar(sa.select(Account).where(Account.phone == phone))
    initial: str | None = None
    created = account is None
    if account is None:
        name = normalize_name(name, "name")  # a person's name: no markup, no control characters
        initial = None if password else random_initial_password()
        account = create_person(phone, name, password or initial or "",
                                must_change=password is None)
    elif account.kind != "person":
        raise FieldError("phone", MSG_NOT_PERSON)
    org = _platform_org()
    identity = db.session.scalar(sa.select(Identity).where(
        Identity.account_id == account.id, Identity.organisation_id == org.id,
        Identity.role == ADMIN_ROLE, Identity.platform == ADMIN_PLATFORM))
    if identity is None:
        db.session.add(Identity(account_id=account.id, organisation_id=org.id, role=ADMIN_ROLE,
                                platform=ADMIN_PLATFORM, status="active"))
    else:
        identity.status = "active"
    uri = _fresh_seed(account, seed)
    audit.record("admin.provision", account_id=account.id, organisation_id=org.id,
                 created=created, by="cli")
    db.session.commit()
    _Tries(get_store(), account.id).clear()
    return Provisioned(account, uri, initial, created)


def reset_totp(phone: str) -> Provisioned:
    """A new TOTP seed for an existing platform admin (lost phone, new app): the old seed stops
    working at once, and a lock on the second factor is lifted."""
    phone = normalize_phone(phone)
    account = db.session.scalar(sa.select(Account).where(Account.phone == phone))
    if account is None or not is_platform_admin(account):
        raise FieldError("phone", MSG_NOT_ADMIN)
    uri = _fresh_seed(account)
    audit.record("admin.totp_reset", account_id=account.id, by="cli")
    db.session.commit()
    _Tries(get_store(), account.id).clear()
    return Provisioned(account, uri)
