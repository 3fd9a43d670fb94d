"""Validators for identifiers users type. Each returns the normalised value or raises
``FieldError`` with the message shown beside the field."""

from __future__ import annotations

import re

from idp.errors import FieldError

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_PHONE_NOISE = re.compile(r"[\s\-－—()（）]")

MSG_PHONE_FORMAT = "手机号格式不正确"


def normalize_phone(raw: str) -> str:
    """Mainland mobile numbers: drop +86/0086, spaces and dashes; then ``^1[3-9]\\d{9}$``.

    Full-width digits are not silently converted: what the user typed is what gets checked.
    """
    text = _PHONE_NOISE.sub("", raw or "")
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    if not MOBILE_RE.fullmatch(text) or not text.isascii():
        raise FieldError("phone", MSG_PHONE_FORMAT)
    return text
