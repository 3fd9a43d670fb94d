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
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form: object) -> None:
        """Unknown values are judged by parse_form, with a message beside the field."""


def _choices(options: dict[str, str], blank: bool = True) -> list[SelectChoice]:
    """WTForms 3.3 wants SelectChoice objects (tuples are deprecated)."""
    pairs = ([("", "请选择")] if blank else []) + list(options.items())
    return [SelectChoice(value, label) for value, label in pairs]


class LooseSelect(SelectField):  # type: ignore[misc]
    def pre_validate(self, form: object) -> None:
        """As above: a value outside the list gets 「请从列表中选择」 from parse_form."""


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
    legal_id_type = LooseSelect("法人代表证件类型", choices=_choices(ID_TYPES), default="111")
    legal_id_number = StringField("法人代表证件号")
    contact_name = StringField("企业联系人姓名")
    contact_phone = StringField("企业联系人手机号")
    # 请选择注册平台
    platforms = CheckboxesField("请选择注册平台", choices=_choices(PLATFORMS, blank=False))
    # 上海市物业管理监管与服务平台 (only with the supervision platform)
    reg_place = LooseSelect("注册地", choices=_choices({"310000": "上海市"}, blank=False),
                           default="310000")
    district = LooseSelect("注册所在区", choices=_choices(DISTRICTS))
    had_qualification = LooseSelect("原来是否有资质证书", default="是",
                                    choices=_choices({"是": "是", "否": "否"}, blank=False))
    qualification_level = LooseSelect("原资质等级", choices=_choices(QUALIFICATION_LEVELS))
    gm_name = StringField("总经理姓名")
    gm_phone = StringField("总经理手机号")
    gm_id_type = LooseSelect("总经理证件类型", choices=_choices(ID_TYPES), default="111")
    gm_id_number = StringField("总经理证件号")
