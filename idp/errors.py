"""Typed errors. Views turn them into a message beside a form field or a protocol error;
nothing here becomes a 500."""

from __future__ import annotations


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
