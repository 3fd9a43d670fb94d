"""Forms of the centre console (T02, T04, T07, T08). CSRF comes with FlaskForm; the services
(``idp.orgs.review``, ``idp.orgs.areas``) judge the values and say what is wrong beside the
field. The length caps here only keep absurd bodies from reaching them."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from idp.orgs.areas import MSG_AREA_NAME
from idp.orgs.review import MSG_REASON

MSG_REASON_HTML = "退回原因不能包含<>"
MSG_PICK_SURVIVOR = "请选择保留区域"
MSG_PICK_MERGED = "请选择要合并的区域"


def _no_angle_brackets(form: Any, field: Any) -> None:
    """The reason is shown to the applicant: text, never markup (escaped anyway)."""
    if any(c in (field.data or "") for c in "<>"):
        raise ValidationError(MSG_REASON_HTML)


class ApproveForm(FlaskForm):  # type: ignore[misc]
    """【通过】: the decision carries only the CSRF token."""


class ReturnForm(FlaskForm):  # type: ignore[misc]
    # The service collapses blanks and counts 1–500 characters; 2000 here is only a cap.
    reason = TextAreaField("退回原因", validators=[
        DataRequired(MSG_REASON), Length(max=2000, message=MSG_REASON), _no_angle_brackets])


class LooseSelect(SelectField):  # type: ignore[misc]
    def pre_validate(self, form: object) -> None:
        """A value outside the list gets 「请从列表中选择」 from the service, beside the field."""


class LooseMultiple(SelectMultipleField):  # type: ignore[misc]
    def pre_validate(self, form: object) -> None:
        """Ids are judged by the view (numbers) and the service (scope, status)."""


class AreaCreateForm(FlaskForm):  # type: ignore[misc]
    name = StringField("物业区域名称", validators=[Length(max=1000, message=MSG_AREA_NAME)])
    district = LooseSelect("所在区", choices=[])


class AreaRenameForm(FlaskForm):  # type: ignore[misc]
    # Its own id: the page also shows the create form, whose name field is ``name``.
    name = StringField("新名称", id="new-name",
                       validators=[Length(max=1000, message=MSG_AREA_NAME)])


class AreaMergeForm(FlaskForm):  # type: ignore[misc]
    survivor = StringField("保留区域", validators=[Length(max=32, message=MSG_PICK_SURVIVOR)])
    merged = LooseMultiple("合并区域", choices=[])


# --- 操作员管理 of the tenant console (S12, S15) ---------------------------------------------
# The choices are set by the view (the tenant's departments, the labels of
# ``idp.console.models``); ``idp.console.operators`` judges every value and names the field.


class OperatorCreateForm(FlaskForm):  # type: ignore[misc]
    """增加 (S12): 操作员信息添加."""

    name = StringField("操作员姓名")
    department_id = LooseSelect("部门名称", choices=[])
    category = LooseSelect("部门类别", choices=[])
    phone = StringField("手机号码")
    role = LooseSelect("角色", choices=[])
    remark = StringField("备注")


class OperatorEditForm(FlaskForm):  # type: ignore[misc]
    """修改 (S15): only the phone number and the status."""

    phone = StringField("手机号码")
    status = LooseSelect("操作员状态", choices=[])


class OperatorDeleteForm(FlaskForm):  # type: ignore[misc]
    """删除 (S15): the confirmation carries only the CSRF token."""
