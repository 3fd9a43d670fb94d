"""Forms of the login pages. Labels are the seed's (S17); CSRF comes with FlaskForm."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from idp.auth.sms import MSG_FORMAT
from idp.pki.certs import MESSAGES as CERT_MESSAGES

MSG_REQUIRED_PHONE = "请输入手机号码"
MSG_REQUIRED_PASSWORD = "请输入密码"
MSG_REQUIRED_CODE = "请输入手机验证码"
MSG_REQUIRED_NEW = "请输入新密码"
MSG_REQUIRED_CONFIRM = "请再次输入新密码"
MSG_REQUIRED_OLD = "请输入原密码"
MSG_CHALLENGE = CERT_MESSAGES["challenge_expired"]
MSG_BAD_CERT = CERT_MESSAGES["malformed"]
MSG_BAD_SIGNATURE = CERT_MESSAGES["bad_signature"]


class SmsForm(FlaskForm):  # type: ignore[misc]
    phone = StringField("手机号码", validators=[DataRequired(MSG_REQUIRED_PHONE),
                                                Length(max=32, message="手机号格式不正确")])


class PhoneLoginForm(FlaskForm):  # type: ignore[misc]
    phone = StringField("手机号码", validators=[DataRequired(MSG_REQUIRED_PHONE),
                                                Length(max=32, message="手机号格式不正确")])
    password = PasswordField("密码", validators=[DataRequired(MSG_REQUIRED_PASSWORD),
                                                 Length(max=128, message="手机号码或密码错误")])
    sms_code = StringField("手机验证码", validators=[DataRequired(MSG_REQUIRED_CODE),
                                                     Length(min=6, max=6, message=MSG_FORMAT)])
    interaction = HiddenField()


class PasswordChangeForm(FlaskForm):  # type: ignore[misc]
    old_password = PasswordField("原密码", validators=[Length(max=128, message="原密码错误")])
    new_password = PasswordField("新密码", validators=[
        DataRequired(MSG_REQUIRED_NEW), Length(max=128, message="密码长度不能超过64位")])
    # No length rule here: the view compares it with 新密码, which has the length rules.
    confirm_password = PasswordField("确认新密码", validators=[DataRequired(MSG_REQUIRED_CONFIRM)])
    interaction = HiddenField()


class UkeyLoginForm(FlaskForm):  # type: ignore[misc]
    """【UKey登录】: the certificate comes with the connection, the form carries only CSRF."""

    interaction = HiddenField()


class SignedChallengeForm(FlaskForm):  # type: ignore[misc]
    """What a UKey client tool posts after signing the nonce. Never a PIN."""

    interaction = HiddenField()
    nonce = HiddenField(validators=[DataRequired(MSG_CHALLENGE),
                                    Length(max=64, message=MSG_CHALLENGE)])
    certificate = HiddenField(validators=[Length(max=24_000, message=MSG_BAD_CERT)])
    signature = HiddenField(validators=[DataRequired(MSG_BAD_SIGNATURE),
                                        Length(max=48_000, message=MSG_BAD_SIGNATURE)])
    format = HiddenField(default="raw", validators=[AnyOf(("raw", "pkcs7"), MSG_BAD_SIGNATURE)])
    hash = HiddenField(default="sha256", validators=[
        AnyOf(("", "sha256", "sha384", "sha512"), MSG_BAD_SIGNATURE)])
