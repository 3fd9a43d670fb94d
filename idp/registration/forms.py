"""Forms of enterprise registration. Labels are the seed's (S05) exactly; the required mark
(*) is drawn by the template. Validation lives in ``idp.registration.enterprise.parse_form``,
which judges every field at once; the form classes give CSRF, rendering and length caps."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from idp.accounts.models import PLATFORMS
from idp.validators import DISTRICTS, ID_TYPES, QUALIFICATION_LEVELS


class CheckboxesField(SelectMultipleField):  # type: ignore[misc]
    """Checkboxes; unknown values are judged by parse_form (validate_choice=False)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def choices(options: dict[str, str], blank: str | None = "请选择") -> list[SelectChoice]:
    """WTForms 3.3 wants SelectChoice objects (tuples are deprecated); ``blank`` first."""
    pairs = ([("", blank)] if blank is not None else []) + list(options.items())
    return [SelectChoice(value, label) for value, label in pairs]


def loose_select(label: str, options: dict[str, str], blank: str | None = "请选择",
                **kwargs: object) -> SelectField:
    """A select whose value is judged by the service (a value outside the list gets
    「请从列表中选择」 beside the field), not by WTForms."""
    return SelectField(label, choices=choices(options, blank), validate_choice=False, **kwargs)


class EnterpriseRegistrationForm(FlaskForm):  # type: ignore[misc]
    # 物业企业基本信息
    uscc = StringField("统一社会信用代码")
    name = StringField("企业名称")
    postcode = StringField("邮政编码")
    tel = StringField("电话")
    email = StringField("邮箱")
    fax = StringField("传真")
    # 物业企业相关人员信息
    legal_name = StringField("法定代表人姓名")
    legal_phone = StringField("法定代表人手机号")
    legal_id_type = loose_select("法人代表证件类型", ID_TYPES, default="111")
    legal_id_number = StringField("法人代表证件号")
    contact_name = StringField("企业联系人姓名")
    contact_phone = StringField("企业联系人手机号")
    # 请选择注册平台
    platforms = CheckboxesField("请选择注册平台", choices=choices(PLATFORMS, blank=None),
                                validate_choice=False)
    # 上海市物业管理监管与服务平台 (only with the supervision platform)
    reg_place = loose_select("注册地", {"310000": "上海市"}, blank=None, default="310000")
    district = loose_select("注册所在区", DISTRICTS)
    had_qualification = loose_select("原来是否有资质证书", {"是": "是", "否": "否"}, blank=None,
                                    default="是")
    qualification_level = loose_select("原资质等级", QUALIFICATION_LEVELS)
    gm_name = StringField("总经理姓名")
    gm_phone = StringField("总经理手机号")
    gm_id_type = loose_select("总经理证件类型", ID_TYPES, default="111")
    gm_id_number = StringField("总经理证件号")
