"""The identifier and contact checks of registration forms (DOMAIN.md; S05, S07, T04): each
returns the normalised value or raises FieldError with the message shown beside the field."""

from __future__ import annotations

import pytest

from idp.errors import FieldError
from idp.validators import (
    DISTRICTS,
    ID_TYPES,
    choice,
    id_number_is_valid,
    normalize_email,
    normalize_id_number,
    normalize_mobile,
    normalize_name,
    normalize_postcode,
    normalize_tel,
    normalize_uscc,
    org_code_is_valid,
    org_code_of,
    uscc_is_valid,
)


@pytest.mark.parametrize("code", ["91110000600037341L", "91350100M000100Y43",
                                  "91440101MA5CJQ4N59", "91350200MA2YJ1XR9G"])
def test_s05_valid_usccs_of_domain_md(code: str) -> None:
    assert uscc_is_valid(code) and org_code_is_valid(org_code_of(code))
    assert normalize_uscc(" " + code.lower() + " ") == code


@pytest.mark.parametrize("code", ["91310115MA1H8R7C6D", "91440101MA5CJQ4N5", "91440101MA5CJQ4N590",
                                  "9144010IMA5CJQ4N59", "91440101MA5CJQ4N5Ｙ", ""])
def test_s05_invalid_usccs_are_refused(code: str) -> None:
    """Wrong check character, wrong length, a letter outside the alphabet (I), full width."""
    assert not uscc_is_valid(code)
    with pytest.raises(FieldError) as err:
        normalize_uscc(code)
    assert err.value.message == "统一社会信用代码格式不正确"


def test_s07_organisation_code_is_positions_9_to_17() -> None:
    assert org_code_of("91350100M000100Y43") == "M000100Y4"
    assert org_code_is_valid("M000100Y4") and not org_code_is_valid("M000100Y5")


@pytest.mark.parametrize(("number", "valid"), [
    ("11010519491231002X", True), ("110105194912310021", False), ("11010519491231002x", False),
    ("1101051949123100", False), ("11010519491231002XX", False), ("１１010519491231002X", False),
])
def test_s05_gb11643_id_number_check_digit(number: str, valid: bool) -> None:
    assert id_number_is_valid(number) is valid


def test_s05_id_number_check_applies_to_the_resident_id_card_only() -> None:
    assert normalize_id_number("111", " 11010519491231002x ", "f") == "11010519491231002X"
    with pytest.raises(FieldError, match="校验位"):
        normalize_id_number("111", "110105194912310021", "f")
    assert normalize_id_number("414", "E12345678", "f") == "E12345678"  # passport: shape only
    with pytest.raises(FieldError):
        normalize_id_number("414", "<script>", "f")
    assert "111" in ID_TYPES and ID_TYPES["111"] == "居民身份证"


@pytest.mark.parametrize("raw", ["20012", "2001200", "２００１２０", "2001 0", "abcdef"])
def test_s05_postcode_is_six_ascii_digits(raw: str) -> None:
    with pytest.raises(FieldError, match="邮政编码"):
        normalize_postcode(raw)
    assert normalize_postcode(" 200120 ") == "200120"


@pytest.mark.parametrize("raw", ["a@b", "a b@c.cn", "a@b@c.cn", "<a>@b.cn", "@b.cn", "a@.cn"])
def test_s05_email_is_plain(raw: str) -> None:
    with pytest.raises(FieldError, match="邮箱"):
        normalize_email(raw)
    assert normalize_email(" Office@Example.CN ") == "office@example.cn"


def test_s05_telephone_accepts_landlines_with_extension_and_mobiles() -> None:
    for raw in ("021-58881234", "02158881234", "021-58881234转802", "17648830890"):
        assert normalize_tel(raw)
    for raw in ("tel", "021-abc", "1" * 40, "０２１-58881234", "０２１-58881234转1"):
        with pytest.raises(FieldError, match="电话"):
            normalize_tel(raw)


def test_s05_mobile_error_names_the_field() -> None:
    with pytest.raises(FieldError) as err:
        normalize_mobile("12345", "legal_phone")
    assert err.value.field == "legal_phone" and err.value.message == "手机号格式不正确"
    assert normalize_mobile("+86 176-4883-0890", "x") == "17648830890"


@pytest.mark.parametrize(("raw", "organisation", "ok"), [
    ("杜晨", False, True), ("阿依古丽·买买提", False, True), ("O'Neil Smith", False, True),
    ("张3", False, False), ("' OR '1'='1", False, False), ("<b>x</b>", False, False),
    ("测试物业维修中心2", True, True), ("上海申大物业（集团）有限公司", True, True),
    ("x" * 51, False, False), ("   ", False, False), ("a\u200bb", False, False),
])
def test_s05_names(raw: str, organisation: bool, ok: bool) -> None:
    if ok:
        assert normalize_name(raw, "n", organisation=organisation) == raw
    else:
        with pytest.raises(FieldError):
            normalize_name(raw, "n", organisation=organisation)


def test_s05_choices_come_from_the_lists() -> None:
    assert len(DISTRICTS) == 16 and DISTRICTS["310115"] == "浦东新区"
    assert choice(" 310115 ", DISTRICTS, "district") == "310115"
    with pytest.raises(FieldError, match="请从列表中选择"):
        choice("110101", DISTRICTS, "district")
