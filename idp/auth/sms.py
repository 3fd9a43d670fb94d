"""One-time SMS codes: six digits, hashed, five minutes, single use, five tries, rate limited.

Sending never looks at accounts: every well-formed number gets the same answer after the same
work, so the button cannot be used to find out who is registered (DOMAIN.md). The per-number and
per-IP limits are what keep that from becoming an SMS cannon.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable

from idp.config import Settings
from idp.errors import FieldError, RateLimited, ServiceUnavailable
from idp.gateways.sms import SmsGateway, SmsGatewayError
from idp.security import equal, keyed_hash
from idp.store import Store, take_slot

log = logging.getLogger(__name__)

MSG_SENT = "验证码已发送，请注意查收"
MSG_WRONG = "验证码错误"
MSG_EXPIRED = "验证码已过期，请重新获取"
MSG_NOT_SENT = "请先获取验证码"
MSG_TOO_FREQUENT = "发送过于频繁，请{n}秒后再试"
MSG_DAILY_LIMIT = "今日获取验证码次数已达上限"
MSG_TOO_MANY_TRIES = "验证码错误次数过多，请重新获取"
MSG_GATEWAY_DOWN = "短信发送失败，请稍后重试"
MSG_FORMAT = "请输入6位数字验证码"

TEXTS = {
    "login": "【{sign}】您的登录验证码为{code}，{minutes}分钟内有效。"
             "请勿泄露给他人，如非本人操作请忽略本短信。",
    # Proof that the phone is the person's: 业委会注册, and 用户名查询 (T05). One purpose each,
    # so that a code asked for on one page cannot complete the other.
    "committee": "【{sign}】您的业委会注册验证码为{code}，{minutes}分钟内有效。"
                 "请勿泄露给他人，如非本人操作请忽略本短信。",
    "lookup": "【{sign}】您的用户名查询验证码为{code}，{minutes}分钟内有效。"
              "请勿泄露给他人，如非本人操作请忽略本短信。",
    "staff": "【{sign}】您的实名认证申请验证码为{code}，{minutes}分钟内有效。"
             "请勿泄露给他人，如非本人操作请忽略本短信。",
}
MSG_INITIAL_PASSWORD = ("【{sign}】您的统一认证登录平台账号已开通（{role}）。登录手机号{phone}，"
                        "初始密码{password}，首次登录须修改密码。")


class SmsCodes:
    def __init__(self, store: Store, gateway: SmsGateway, settings: Settings) -> None:
        self._store = store
        self._gateway = gateway
        self._s = settings

    # --- sending ------------------------------------------------------------------------------
    def send(self, phone: str, ip: str, purpose: str = "login") -> str:
        """Send a fresh code to ``phone`` (already normalised); return the message to show."""
        s, store = self._s, self._store
        # The sender's address is judged first, so that a blocked address cannot spend a
        # victim's resend interval or daily quota.
        self._within_limits(f"ip:{ip}", s.sms_ip_hourly_limit, s.sms_ip_daily_limit)
        cooldown = f"sms:cool:{purpose}:{phone}"
        if not store.add(cooldown, "1", s.sms_resend_interval):
            wait = store.ttl(cooldown) or s.sms_resend_interval
            raise RateLimited("phone", MSG_TOO_FREQUENT.format(n=wait), wait)
        try:
            self._within_limits(f"p:{phone}", s.sms_phone_hourly_limit,
                                s.sms_phone_daily_limit)
        except RateLimited:
            store.delete(cooldown)
            raise

        code = f"{secrets.randbelow(1_000_000):06d}"
        record = {"h": keyed_hash(s.secret_key, purpose, phone, code)}
        store.set(f"sms:code:{purpose}:{phone}", json.dumps(record), s.sms_code_ttl)
        store.delete(f"sms:tries:{purpose}:{phone}")
        text = TEXTS[purpose].format(sign=s.sms_sign_name, code=code,
                                     minutes=max(1, s.sms_code_ttl // 60))
        try:
            self._gateway.send(phone, text, code)
        except SmsGatewayError as exc:
            log.error("SMS gateway failed for purpose %s: %s", purpose, exc)
            store.delete(f"sms:code:{purpose}:{phone}")
            store.delete(cooldown)
            raise ServiceUnavailable(MSG_GATEWAY_DOWN) from exc
        store.set(f"sms:sent:{purpose}:{phone}", "1", 86400)  # tells "expired" from "never sent"
        return MSG_SENT

    def notify(self, phone: str, text: str) -> None:
        """Send a message that is not a code (an initial password). No limits: only the
        provider's own processes call this, never a visitor's button."""
        try:
            self._gateway.send(phone, text.replace("{sign}", self._s.sms_sign_name), None)
        except SmsGatewayError as exc:
            log.error("SMS gateway failed for a notice: %s", exc)
            raise ServiceUnavailable(MSG_GATEWAY_DOWN) from exc

    def _within_limits(self, subject: str, hourly: int, daily: int) -> None:
        """Count one send for ``subject`` in the last hour (rolling) and in its Beijing calendar
        day (the message says 「今日」); raise past either limit."""
        wait = take_slot(self._store, f"sms:h:{subject}", hourly, 3600)
        if wait is not None:
            raise RateLimited("phone", MSG_TOO_FREQUENT.format(n=wait), wait)
        now = int(time.time())
        day = (now + 8 * 3600) // 86400
        if self._store.incr(f"sms:d:{subject}:{day}", 86400) > daily:
            raise RateLimited("phone", MSG_DAILY_LIMIT, 86400 - (now + 8 * 3600) % 86400)

    # --- checking -----------------------------------------------------------------------------
    def check(self, phone: str, code: str, purpose: str = "login") -> None:
        """Raise FieldError('sms_code', …) unless ``code`` is the live code; does not consume."""
        store = self._store
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise FieldError("sms_code", MSG_FORMAT)
        raw = store.get(f"sms:code:{purpose}:{phone}")
        if raw is None:
            sent = store.get(f"sms:sent:{purpose}:{phone}")
            raise FieldError("sms_code", MSG_EXPIRED if sent else MSG_NOT_SENT)
        tries = store.incr(f"sms:tries:{purpose}:{phone}", self._s.sms_code_ttl)
        if tries > self._s.sms_max_attempts:
            store.delete(f"sms:code:{purpose}:{phone}")
            raise FieldError("sms_code", MSG_TOO_MANY_TRIES)
        expected = json.loads(raw)["h"]
        if not equal(keyed_hash(self._s.secret_key, purpose, phone, code), expected):
            raise FieldError("sms_code", MSG_WRONG)

    def consume(self, phone: str, purpose: str = "login") -> bool:
        """Use the code up; False if somebody else used it first (two tabs, a replay)."""
        self._store.delete(f"sms:tries:{purpose}:{phone}")
        return self._store.take(f"sms:code:{purpose}:{phone}") is not None


def button_answer(send: Callable[[], str], resend_interval: int) -> tuple[int, str, int]:
    """What every 「获取验证码」 button answers: (HTTP status, message, seconds to wait before
    the next try), from ``send`` (which sends a code and returns the message to show)."""
    try:
        message = send()
    except RateLimited as exc:
        return 429, exc.message, exc.retry_after
    except FieldError as exc:
        return 400, exc.message, 0
    except ServiceUnavailable as exc:
        return 503, exc.message, 0
    return 200, message, resend_interval
