"""Typed errors. Views turn them into a message beside a form field or a protocol error;
nothing here becomes a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class IdpError(Exception):
    """Base of the provider's own errors; ``message`` is fit to show a user (Chinese)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FieldError(IdpError):
    """Bad input for one form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class RateLimited(FieldError):
    """Too many attempts; ``retry_after`` seconds until the next one may succeed."""

    def __init__(self, field: str, message: str, retry_after: int) -> None:
        super().__init__(field, message)
        self.retry_after = retry_after


class ServiceUnavailable(IdpError):
    """An outside service (SMS gateway …) failed; the user may try again later."""


class FormInvalid(IdpError):
    """Several fields may be wrong at once; ``errors`` maps each to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(next(iter(errors.values())))
        self.errors = errors


class FieldChecker:
    """Collects the FieldErrors of a form, so that the page shows every problem at once."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def take(self, parse: Callable[..., T], *args: Any) -> T | None:
        """``parse(*args)``, or None with its message noted when it raises FieldError."""
        try:
            return parse(*args)
        except FieldError as exc:
            self.errors.setdefault(exc.field, exc.message)
            return None

    def fail(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def done(self) -> None:
        """Raise FormInvalid with every message noted, if any."""
        if self.errors:
            raise FormInvalid(self.errors)
