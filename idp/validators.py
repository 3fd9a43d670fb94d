"""Validators for identifiers users type. Each returns the normalised value or raises
``FieldError`` with the message shown beside the field."""

from __future__ import annotations

import re
import unicodedata

from idp.errors import FieldError

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$", re.ASCII)
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


def org_code_of(uscc: str) -> str:
    """DOMAIN.md: positions 9–17 of a USCC are its GB 11714 organisation code."""
    return uscc[8:17]


# --- people and contact details -------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# re.ASCII: \d must not match full-width or other scripts' digits (int() would read them).
_ID_RE = re.compile(r"^\d{17}[\dX]$", re.ASCII)
POSTCODE_RE = re.compile(r"^\d{6}$", re.ASCII)
# Deliberately plain: one @, a dot in the domain, no blanks or angle brackets. RFC 5322 allows
# far more, but these addresses are typed by clerks and read by clerks.
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")
LANDLINE_RE = re.compile(r"^(\+?86[\s\-]?)?(0\d{2,3}[\s\-]?)?\d{7,8}([\s\-]?(转|-)\d{1,6})?$",
                         re.ASCII)

MSG_ID_NUMBER = "证件号码格式不正确"
MSG_ID_CHECK = "居民身份证号码校验位不正确"
MSG_POSTCODE = "邮政编码应为6位数字"
MSG_EMAIL = "邮箱格式不正确"
MSG_TEL = "电话号码格式不正确"
MSG_NAME = "请输入姓名（1–50个字符）"
MSG_CHOICE = "请从列表中选择"

# 证件类型 (DOMAIN.md, GA/T 517 codes where they exist). Only 居民身份证 gets the GB 11643 check.
ID_TYPES = {
    "111": "居民身份证",
    "414": "普通护照",
    "516": "港澳居民来往内地通行证",
    "511": "台湾居民来往大陆通行证",
    "114": "军官证",
    "hmt_residence": "港澳台居民居住证",
    "foreign_permanent": "外国人永久居留身份证",
}
ID_CARD = "111"

# Shanghai's 16 districts (DOMAIN.md, Form lists).
DISTRICTS = {
    "310101": "黄浦区", "310104": "徐汇区", "310105": "长宁区", "310106": "静安区",
    "310107": "普陀区", "310109": "虹口区", "310110": "杨浦区", "310112": "闵行区",
    "310113": "宝山区", "310114": "嘉定区", "310115": "浦东新区", "310116": "金山区",
    "310117": "松江区", "310118": "青浦区", "310120": "奉贤区", "310151": "崇明区",
}
# 原资质等级: informational only, the qualification system was abolished in 2017–2018.
QUALIFICATION_LEVELS = {"1": "一级资质", "2": "二级资质", "3": "三级资质",
                        "provisional": "暂定资质"}


def id_number_is_valid(number: str) -> bool:
    """GB 11643 居民身份证号: 17 digits and a check (Σ digit×weight mod 11 indexes 10X98765432)."""
    if not _ID_RE.fullmatch(number):
        return False
    total = sum(int(d) * w for d, w in zip(number, _ID_WEIGHTS, strict=False))
    return number[17] == _ID_CHECK[total % 11]


def normalize_id_number(id_type: str, raw: str, field: str) -> str:
    """居民身份证 (and the residence permits that share its format) get the GB 11643 check;
    other documents only a sane shape: 4–30 ASCII letters, digits, or dashes."""
    number = (raw or "").strip().upper()
    if id_type in (ID_CARD, "hmt_residence"):
        if not _ID_RE.fullmatch(number):
            raise FieldError(field, MSG_ID_NUMBER)
        if not id_number_is_valid(number):
            raise FieldError(field, MSG_ID_CHECK)
        return number
    if not re.fullmatch(r"[A-Z0-9\-]{4,30}", number):
        raise FieldError(field, MSG_ID_NUMBER)
    return number


def normalize_postcode(raw: str, field: str = "postcode") -> str:
    code = (raw or "").strip()
    if not POSTCODE_RE.fullmatch(code) or not code.isascii():
        raise FieldError(field, MSG_POSTCODE)
    return code


def normalize_email(raw: str, field: str = "email") -> str:
    text = (raw or "").strip()
    if len(text) > 254 or not EMAIL_RE.fullmatch(text):
        raise FieldError(field, MSG_EMAIL)
    return text.lower()


def normalize_tel(raw: str, field: str = "tel") -> str:
    """A landline (区号-号码, optional 转 extension) or a mobile number."""
    text = (raw or "").strip()
    if not text.isascii() and "转" not in text:
        raise FieldError(field, MSG_TEL)
    try:
        return normalize_phone(text)
    except FieldError:
        pass
    if len(text) > 30 or not LANDLINE_RE.fullmatch(text):
        raise FieldError(field, MSG_TEL)
    return text


_PERSON_NAME_EXTRA = frozenset(" ·・•.-'")  # 阿依古丽·买买提, O'Neil
_ORG_NAME_EXTRA = frozenset(" ·・•()（）-—_、.,，&")


def normalize_name(raw: str, field: str = "name", limit: int = 50,
                   message: str = MSG_NAME, *, organisation: bool = False) -> str:
    """The one rule for names: of a person (letters of any script, combining marks, and the
    separators of 少数民族 and foreign names) or of an organisation or area (also digits and
    brackets: 上海第1物业（集团）有限公司, 阳光苑1期). At least one letter; blanks inside
    collapse. Quotes, semicolons, angle brackets and the like are refused, not stored."""
    text = " ".join((raw or "").split())
    classes = ("L", "M", "N") if organisation else ("L", "M")
    extra = _ORG_NAME_EXTRA if organisation else _PERSON_NAME_EXTRA
    if (not 0 < len(text) <= limit
            or not all(unicodedata.category(c)[0] in classes or c in extra for c in text)
            or not any(unicodedata.category(c)[0] == "L" for c in text)):
        raise FieldError(field, message)
    return text


def normalize_mobile(raw: str, field: str) -> str:
    """:func:`normalize_phone` with the error on the given field."""
    try:
        return normalize_phone(raw)
    except FieldError as exc:
        raise FieldError(field, exc.message) from None


def choice(raw: str, options: dict[str, str], field: str) -> str:
    value = (raw or "").strip()
    if value not in options:
        raise FieldError(field, MSG_CHOICE)
    return value
