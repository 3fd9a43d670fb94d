"""Sending SMS: the protocol and its two implementations.

``ConsoleSmsGateway`` is for development and tests: it appends one JSON line per message to the
outbox file (DESIGN.md, Interfaces), which tools and tests read. ``HttpSmsGateway`` posts to the
operator's HTTP API in production.
"""

from __future__ import annotations

import fcntl
import json
import logging
from datetime import UTC, datetime
from typing import Protocol

import requests

from idp.config import ConfigError, Settings

log = logging.getLogger(__name__)


class SmsGatewayError(Exception):
    """The message could not be handed to the operator."""


class SmsGateway(Protocol):
    def send(self, to: str, text: str, code: str | None = None) -> None:
        """Send ``text`` to the mobile number ``to``; raise SmsGatewayError on failure."""


class ConsoleSmsGateway:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.resolved_sms_outbox

    def send(self, to: str, text: str, code: str | None = None) -> None:
        line = json.dumps(
            {"to": to, "text": text, "code": code,
             "sent_at": datetime.now(UTC).isoformat(timespec="seconds")},
            ensure_ascii=False,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # several workers append to one file
                fh.write(line + "\n")
        except OSError as exc:
            raise SmsGatewayError(f"cannot write outbox {self.path}: {exc}") from exc


class HttpSmsGateway:
    """POST ``{"phone", "template", "sign", "params": {"code"}, "text"}`` as JSON with a bearer
    token. One retry on a connection error, a timeout or a 5xx; 4xx is final."""

    def __init__(self, settings: Settings) -> None:
        if not settings.sms_http_url:
            raise ConfigError("sms_http_url: required by HttpSmsGateway")
        self.url = settings.sms_http_url
        self.token = settings.sms_http_token
        self.template = settings.sms_http_template
        self.sign = settings.sms_sign_name
        self.timeout = settings.sms_http_timeout
        self.session = requests.Session()

    def send(self, to: str, text: str, code: str | None = None) -> None:
        body = {"phone": to, "template": self.template, "sign": self.sign,
                "params": {"code": code} if code else {}, "text": text}
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        last = "no attempt"
        for attempt in (1, 2):
            try:
                response = self.session.post(self.url, json=body, headers=headers,
                                             timeout=self.timeout)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}"
                log.warning("SMS gateway attempt %d failed: %s", attempt, last)
                continue
            if response.status_code < 300:
                return
            last = f"HTTP {response.status_code}"
            log.warning("SMS gateway attempt %d answered %s", attempt, last)
            if response.status_code < 500:
                break
        raise SmsGatewayError(last)
