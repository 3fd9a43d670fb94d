"""Creating and changing accounts."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app

from idp import audit
from idp.accounts.models import Account
from idp.auth.password import Passwords
from idp.errors import FieldError
from idp.extensions import db
from idp.validators import normalize_phone

MSG_PHONE_TAKEN = "该手机号码已有账号"
MSG_NAME = "请输入姓名（1–50个字符）"


def random_initial_password() -> str:
    """12 characters with every class, so it always meets the policy."""
    pools = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*-_=+"]
    chars = [secrets.choice(pool) for pool in pools]
    chars += [secrets.choice("".join(pools)) for _ in range(8)]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def create_person(phone: str, name: str, password: str, *, must_change: bool = True) -> Account:
    """Add a person account to the session (caller commits). Raises FieldError on bad input."""
    phone = normalize_phone(phone)
    name = (name or "").strip()
    if not 0 < len(name) <= 50 or not name.isprintable():
        raise FieldError("name", MSG_NAME)
    service: Passwords = current_app.extensions["idp.passwords"]
    service.check_policy(password, phone=phone)
    if db.session.scalar(sa.select(Account.id).where(Account.phone == phone)) is not None:
        raise FieldError("phone", MSG_PHONE_TAKEN)
    account = Account(kind="person", phone=phone, name=name,
                      password_hash=service.hash(password), must_change_password=must_change)
    db.session.add(account)
    db.session.flush()
    audit.record("account.create", account_id=account.id, kind="person")
    return account


def ensure_person(phone: str, name: str) -> tuple[Account, str | None]:
    """The person account of ``phone``, created (with a random initial password that must be
    changed) when there is none. Returns the account and the initial password if one was made;
    the caller sends it by SMS after committing (T06: every handler has a personal account)."""
    phone = normalize_phone(phone)
    account = db.session.scalar(sa.select(Account).where(Account.phone == phone))
    if account is not None:
        return account, None
    initial = random_initial_password()
    return create_person(phone, name, initial, must_change=True), initial


def send_initial_passwords(created: list[tuple[Account, str]], role: str,
                           **detail: Any) -> list[Account]:
    """SMS each new person's initial password, once the transaction that created them has
    committed. A gateway failure cannot undo that: every send is audited, the failures are
    returned for the page to name, and the transaction of the audit events is committed."""
    from idp.errors import ServiceUnavailable

    failed: list[Account] = []
    for account, password in created:
        try:
            send_initial_password(account, password, role)
        except ServiceUnavailable:
            failed.append(account)
            audit.record("sms.initial_password", audit.FAILURE, account_id=account.id,
                         reason="gateway", **detail)
        else:
            audit.record("sms.initial_password", account_id=account.id, **detail)
    db.session.commit()
    return failed


def send_initial_password(account: Account, password: str, role: str) -> None:
    """SMS the initial password (never shown on a page, never stored in clear)."""
    from idp.auth.phone import sms_codes
    from idp.auth.sms import MSG_INITIAL_PASSWORD

    assert account.phone is not None
    sms_codes().notify(account.phone, MSG_INITIAL_PASSWORD.replace("{phone}", account.phone)
                       .replace("{password}", password).replace("{role}", role))


def cut_off(account_id: str, reason: str, identity_id: int | None = None) -> Callable[[], None]:
    """End what an account (or only one identity of it) holds, at once (S15): its access and
    refresh tokens are revoked and its unused codes expire, every relying party that got tokens
    in one of its sessions is owed a back-channel logout notice, and — for the whole account —
    its browser sessions end (``sessions_cut_at``) and its SSO sessions stop being alive
    (refresh refused). The caller commits, then calls the returned function, which
    sends the notices and removes the liveness keys (nothing waits on the network inside the
    transaction)."""
    from idp.auth.session import live_key
    from idp.db import utcnow
    from idp.oidc import backchannel
    from idp.oidc.models import AuthorizationCode, Token
    from idp.oidc.tokens import revoke_where
    from idp.store import get_store

    criteria: list[Any] = [Token.account_id == account_id]
    codes: list[Any] = [AuthorizationCode.account_id == account_id,
                        AuthorizationCode.used_at.is_(None)]
    if identity_id is not None:
        criteria.append(Token.identity_id == identity_id)
        codes.append(AuthorizationCode.identity_id == identity_id)
    sids = [sid for sid in db.session.scalars(
        sa.select(Token.sid).where(*criteria, Token.sid.is_not(None)).distinct()) if sid]
    owed = [row for sid in sids for row in backchannel.schedule(sid, account_id)]
    revoked = revoke_where(*criteria)
    # A code issued a moment ago must not turn into tokens for what was just cut off.
    db.session.execute(sa.update(AuthorizationCode).where(*codes).values(expires_at=utcnow())
                       .execution_options(synchronize_session=False))
    if identity_id is None:
        # Browser sessions too: any login older than now is over (idp.auth.sso._usable).
        account = db.session.get(Account, account_id)
        if account is not None:
            account.sessions_cut_at = utcnow()
    audit.record("account.cut_off", account_id=account_id, reason=reason,
                 identity_id=identity_id, revoked=revoked, sessions=len(sids))

    def after_commit() -> None:
        if owed:
            backchannel.deliver(owed)
        if identity_id is None:
            store = get_store()
            for sid in sids:
                store.delete(live_key(sid))

    return after_commit
