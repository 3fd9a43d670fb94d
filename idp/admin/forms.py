"""Forms of the platform admin console. CSRF comes with FlaskForm (every POST carries it); the
values are judged by the services (``idp.admin.service``, ``idp.admin.access``), which say
what is wrong beside each field. The lengths here only keep absurd bodies from reaching them."""

from __future__ import annotations

from collections.abc import Iterable

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget

from idp.accounts.models import PLATFORMS
from idp.admin.service import (
    AUTH_METHOD_LABELS,
    GRANT_LABELS,
    MSG_CLIENT_ID,
    MSG_NAME,
    MSG_ONE_URI,
    MSG_TENANT_USCC,
)
from idp.oidc.keys import ALGORITHMS
from idp.registration.legacy import MSG_OTP_FORMAT

MSG_URIS_TOO_LONG = "地址内容过长"


def _choices(pairs: Iterable[tuple[str, str]]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class LooseSelect(SelectField):  # type: ignore[misc]
    def pre_validate(self, form: object) -> None:
        """A value outside the list gets 「请从列表中选择」 from the service, beside the field."""


class CheckBoxes(SelectMultipleField):  # type: ignore[misc]
    """Check boxes; values outside the list are judged by the service."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form: object) -> None:
        pass


class VerifyForm(FlaskForm):  # type: ignore[misc]
    code = StringField("动态口令", validators=[Length(max=100, message=MSG_OTP_FORMAT)])


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button (rotate, disable, enable): the CSRF token is all it carries."""


class KeyRotateForm(FlaskForm):  # type: ignore[misc]
    alg = LooseSelect("算法", choices=_choices(
        [("", "全部算法"), *((a, a) for a in ALGORITHMS)]))


class ClientForm(FlaskForm):  # type: ignore[misc]
    name = StringField("客户端名称", validators=[Length(max=1000, message=MSG_NAME)])
    client_id = StringField("客户端ID", validators=[Length(max=1000, message=MSG_CLIENT_ID)])
    platform = LooseSelect("所属平台", choices=_choices(
        [("", "（不属于业务平台）"), *PLATFORMS.items()]))
    auth_method = LooseSelect("客户端认证方式", choices=_choices(AUTH_METHOD_LABELS.items()),
                              default="client_secret_basic")
    grant_types = CheckBoxes("授权方式", choices=_choices(GRANT_LABELS.items()),
                             default=["authorization_code", "refresh_token"])
    redirect_uris = TextAreaField("回调地址（每行一个）", validators=[
        Length(max=20_000, message=MSG_URIS_TOO_LONG)])
    post_logout_redirect_uris = TextAreaField("登出后跳转地址（每行一个）", validators=[
        Length(max=20_000, message=MSG_URIS_TOO_LONG)])
    backchannel_logout_uri = StringField("后端通道登出地址（back-channel logout）", validators=[
        Length(max=1000, message=MSG_ONE_URI)])
    initiate_login_uri = StringField("第三方发起登录地址（initiate_login_uri）", validators=[
        Length(max=1000, message=MSG_ONE_URI)])
    tenant = StringField("绑定企业（统一社会信用代码，可选）", validators=[
        Length(max=100, message=MSG_TENANT_USCC)])

    FIELDS = ("name", "client_id", "platform", "auth_method", "grant_types", "redirect_uris",
              "post_logout_redirect_uris", "backchannel_logout_uri", "initiate_login_uri",
              "tenant")
