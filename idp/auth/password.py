"""Passwords: argon2id hashing, the policy of 等保 2.0 level 3, lockout after repeated failures.

Lockout counters are kept per phone number in the shared store, whether or not an account has
that number, so the lockout itself tells an attacker nothing about which numbers are registered.
"""

from __future__ import annotations

import string

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.config import Settings
from idp.errors import FieldError
from idp.store import Store

MIN_LENGTH = 8
MAX_LENGTH = 64

MSG_TOO_SHORT = f"密码长度至少{MIN_LENGTH}位"
MSG_TOO_LONG = f"密码长度不能超过{MAX_LENGTH}位"
MSG_CLASSES = "密码须包含大写字母、小写字母、数字、特殊字符中的至少三类"
MSG_HAS_PHONE = "密码不能包含手机号码"
MSG_SAME_AS_OLD = "新密码不能与原密码相同"
MSG_BAD_CHARS = "密码只能包含字母、数字和英文特殊字符"

_SPECIALS = set(string.punctuation)


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_cost,
            parallelism=settings.password_parallelism,
            type=Type.ID,
        )
        # Verified against when the phone has no account, so both cases cost the same time.
        self._dummy = self._hasher.hash("timing-equaliser")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    def check_policy(self, password: str, *, phone: str | None,
                     old_hashes: tuple[str | None, ...] = ()) -> None:
        """Raise FieldError('new_password', …) unless the password meets the policy."""
        if len(password) < MIN_LENGTH:
            raise FieldError("new_password", MSG_TOO_SHORT)
        if len(password) > MAX_LENGTH:
            raise FieldError("new_password", MSG_TOO_LONG)
        if not all(c.isascii() and c.isprintable() and c != " " for c in password):
            raise FieldError("new_password", MSG_BAD_CHARS)
        classes = [
            any(c.isupper() for c in password),
            any(c.islower() for c in password),
            any(c.isdigit() for c in password),
            any(c in _SPECIALS for c in password),
        ]
        if sum(classes) < 3:
            raise FieldError("new_password", MSG_CLASSES)
        if phone and phone in password:
            raise FieldError("new_password", MSG_HAS_PHONE)
        for old in old_hashes:
            if old and self.verify(old, password):
                raise FieldError("new_password", MSG_SAME_AS_OLD)


class Lockout:
    """N failures within the window lock the phone number for ``lockout_seconds``."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._threshold = settings.lockout_threshold
        self._seconds = settings.lockout_seconds

    def locked_for(self, phone: str) -> int:
        """Seconds left of a lock, 0 when not locked."""
        return self._store.ttl(f"lock:{phone}") or 0

    def fail(self, phone: str) -> int:
        """Count a failure; return the tries left (0 means the number is now locked)."""
        failures = self._store.incr(f"fail:{phone}", self._seconds)
        if failures >= self._threshold:
            self._store.set(f"lock:{phone}", "1", self._seconds)
            self._store.delete(f"fail:{phone}")
            return 0
        return self._threshold - failures

    def reset(self, phone: str) -> None:
        self._store.delete(f"fail:{phone}")
