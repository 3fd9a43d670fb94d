"""Forms of the committee pages (T04, T06, T08) and of 「用户名查询」 (T05).

They carry the labels, the values to show again and the CSRF token. The checks themselves are
in :mod:`idp.registration.committees`, which reports every bad field at once; no field here has
a validator of its own (select and radio values included: the service judges them).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField

from idp.registration.committees import ATTRIBUTES
from idp.registration.forms import choices, loose_select
from idp.validators import DISTRICTS


class RegistrationForm(FlaskForm):  # type: ignore[misc]
    """「业委会注册」. 经办人1 is the applicant, who proves the phone by the SMS code."""

    name = StringField("业委会名称")
    district = loose_select("所在区", DISTRICTS)
    area_name = StringField("物业区域")
    attribute = RadioField("属性", choices=choices(ATTRIBUTES, blank=None), validate_choice=False)
    term_start = StringField("本届起始日期")
    term_end = StringField("本届截止日期")
    handler1_name = StringField("经办人1姓名")
    handler1_phone = StringField("经办人1手机号")
    handler2_name = StringField("经办人2姓名")
    handler2_phone = StringField("经办人2手机号")
    handler3_name = StringField("经办人3姓名（选填）")
    handler3_phone = StringField("经办人3手机号（选填）")
    sms_code = StringField("手机验证码")


class ResubmitForm(RegistrationForm):
    """A returned registration, corrected: 经办人1's phone is the one the look-up proved."""

    handler1_phone = None
    sms_code = None


class CommitteeSmsForm(FlaskForm):  # type: ignore[misc]
    handler1_phone = StringField("经办人1手机号")


class ChangeForm(FlaskForm):  # type: ignore[misc]
    """「申请变更」: name, 属性 and the term of the committee."""

    name = StringField("业委会名称")
    attribute = RadioField("属性", choices=choices(ATTRIBUTES, blank=None), validate_choice=False)
    term_start = StringField("本届起始日期")
    term_end = StringField("本届截止日期")


class AssociationForm(FlaskForm):  # type: ignore[misc]
    """「申请小区管理处关联」: step 1 the enterprise by its USCC; step 2 it or one of its
    offices."""

    step = HiddenField(default="1")
    uscc = StringField("物业服务企业统一社会信用代码")
    target = RadioField("关联单位", choices=[], validate_choice=False)


class LookupForm(FlaskForm):  # type: ignore[misc]
    """「用户名查询」."""

    phone = StringField("手机号码")
    sms_code = StringField("手机验证码")


class LookupSmsForm(FlaskForm):  # type: ignore[misc]
    phone = StringField("手机号码")
