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


# --- organisation identifiers (DOMAIN.md) ----------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CODE_RE = re.compile(r"^[0-9A-Z]{8}[0-9X]$")

MSG_USCC_FORMAT = "统一社会信用代码格式不正确"


def uscc_is_valid(code: str) -> bool:
    """GB 32100-2015: 18 symbols of a 31-symbol alphabet, the last one a weighted check.

    Positions 9–17 are an organisation code (GB 11714) and must pass its own check too.
    """
    if len(code) != 18 or any(ch not in USCC_ALPHABET for ch in code):
        return False
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(code, _USCC_WEIGHTS, strict=False))
    check = (31 - total % 31) % 31
    return code[17] == USCC_ALPHABET[check] and org_code_is_valid(code[8:17])


def org_code_is_valid(code: str) -> bool:
    """GB 11714-1997 组织机构代码: 8 body symbols (A=10 … Z=35) and a check, 10 → X, 11 → 0."""
    if not _ORG_CODE_RE.fullmatch(code):
        return False
    total = sum(int(ch, 36) * w for ch, w in zip(code, _ORG_CODE_WEIGHTS, strict=False))
    check = 11 - total % 11
    expected = {10: "X", 11: "0"}.get(check, str(check))
    return code[8] == expected


def normalize_uscc(raw: str, field: str = "uscc") -> str:
    """What a person typed: surrounding blanks dropped, letters upper-cased, then GB 32100."""
    code = (raw or "").strip().upper()
    if not uscc_is_valid(code):
        raise FieldError(field, MSG_USCC_FORMAT)
    return code
