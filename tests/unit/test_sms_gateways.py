"""SMS gateways (D03, S17): the console outbox used in development and tests, and the HTTP
gateway of production against a real HTTP server on loopback (one retry, clear failures)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from idp.config import Settings, load_settings
from idp.gateways.sms import ConsoleSmsGateway, HttpSmsGateway, SmsGatewayError
from tests.http_stub import StubServer, stub_server

TEXT = "【统一认证登录平台】您的登录验证码为123456，5分钟内有效。如非本人操作，请忽略本短信。"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    return load_settings(overrides, environ={}, config_file=empty)


# --- console gateway -----------------------------------------------------------------------------

def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_d03_console_gateway_appends_one_json_line_per_message(tmp_path):
    """D03: one JSON line {to, text, code, sent_at} per message, Chinese kept readable."""
    outbox = tmp_path / "out" / "sms-outbox.jsonl"  # the folder does not exist yet
    gateway = ConsoleSmsGateway(_settings(tmp_path, sms_outbox=str(outbox)))
    gateway.send("13800138000", TEXT, "123456")
    gateway.send("13900139000", "初始密码：Abcdef1!", None)

    raw = outbox.read_bytes().decode("utf-8")
    lines = _lines(outbox)
    assert len(lines) == 2
    assert "统一认证登录平台" in raw and "\\u" not in raw  # UTF-8, not \u escapes
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"to", "text", "code", "sent_at"}
    assert first["to"] == "13800138000"
    assert first["text"] == TEXT
    assert first["code"] == "123456"
    sent_at = datetime.fromisoformat(first["sent_at"])
    assert sent_at.utcoffset() is not None and sent_at.utcoffset().total_seconds() == 0
    assert second["to"] == "13900139000" and second["code"] is None


def test_d03_console_gateway_default_outbox_is_in_instance(tmp_path):
    """D03: without sms_outbox the messages go to <instance>/sms-outbox.jsonl."""
    instance = tmp_path / "instance"
    gateway = ConsoleSmsGateway(_settings(tmp_path, instance_path=str(instance)))
    gateway.send("13800138000", TEXT, "654321")
    assert json.loads(_lines(instance / "sms-outbox.jsonl")[0])["code"] == "654321"


def test_d03_console_gateway_concurrent_appends_stay_whole_lines(tmp_path):
    """D03: several threads (as several workers) appending never interleave within a line."""
    outbox = tmp_path / "sms-outbox.jsonl"
    gateway = ConsoleSmsGateway(_settings(tmp_path, sms_outbox=str(outbox)))
    threads_n, per_thread = 8, 25
    barrier = threading.Barrier(threads_n, timeout=10)
    long_text = TEXT * 40  # several KiB per line, larger than one small write

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            gateway.send(f"139{n:04d}{i:04d}", long_text, f"{n:02d}{i:04d}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    messages = [json.loads(line) for line in _lines(outbox)]
    assert len(messages) == threads_n * per_thread
    assert {m["code"] for m in messages} == {
        f"{n:02d}{i:04d}" for n in range(threads_n) for i in range(per_thread)}
    assert all(m["text"] == long_text for m in messages)


def test_d03_console_gateway_unwritable_outbox_raises_gateway_error(tmp_path):
    """D03: an outbox that cannot be written is an SmsGatewayError, not an OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    gateway = ConsoleSmsGateway(_settings(tmp_path, sms_outbox=str(blocker / "outbox.jsonl")))
    with pytest.raises(SmsGatewayError):
        gateway.send("13800138000", TEXT, "123456")


# --- HTTP gateway against a real server --------------------------------------------------------

@pytest.fixture
def sms_server() -> Iterator[StubServer]:
    with stub_server("/api/send", (200, {"ok": True}, 0.0)) as server:
        yield server


def _http_gateway(tmp_path: Path, url: str, **overrides: Any) -> HttpSmsGateway:
    settings = _settings(tmp_path, sms_gateway="idp.gateways.sms:HttpSmsGateway",
                         sms_http_url=url, sms_http_token="tok-123",
                         sms_http_template="SMS_LOGIN_CODE", **overrides)
    return HttpSmsGateway(settings)


def test_d03_http_gateway_posts_json_with_bearer_token(tmp_path, sms_server):
    """D03: phone, template, params.code as JSON with the bearer token; 200 → sent."""
    _http_gateway(tmp_path, sms_server.url).send("13800138000", TEXT, "123456")
    assert len(sms_server.received) == 1
    request = sms_server.received[0]
    assert request["path"] == "/api/send"
    assert request["headers"]["Authorization"] == "Bearer tok-123"
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = json.loads(request["body"].decode("utf-8"))
    assert body["phone"] == "13800138000"
    assert body["template"] == "SMS_LOGIN_CODE"
    assert body["params"] == {"code": "123456"}
    assert body["text"] == TEXT
    assert body["sign"] == "统一认证登录平台"


def test_d03_http_gateway_without_token_sends_no_authorization(tmp_path, sms_server):
    settings = _settings(tmp_path, sms_http_url=sms_server.url)
    HttpSmsGateway(settings).send("13800138000", TEXT, "123456")
    assert "Authorization" not in sms_server.received[0]["headers"]


def test_d03_http_gateway_retries_once_after_5xx(tmp_path, sms_server):
    """D03: a 500 then a 200 → one retry, and the message is sent."""
    sms_server.script = [(500, {}, 0.0)]
    _http_gateway(tmp_path, sms_server.url).send("13800138000", TEXT, "123456")
    assert len(sms_server.received) == 2
    assert sms_server.received[0]["body"] == sms_server.received[1]["body"]


@pytest.mark.parametrize(("script", "attempts", "named"), [
    ([(500, {}, 0.0), (500, {}, 0.0)], 2, "500"),
    # only one retry, never a third try
    ([(503, {}, 0.0), (502, {}, 0.0), (200, {}, 0.0)], 2, "502"),
    ([(400, {}, 0.0)], 1, "400"),  # 4xx is final: no retry
    ([(401, {}, 0.0)], 1, "401"),
    ([(302, {}, 0.0)], 1, "302"),
], ids=["500-twice", "5xx-no-third-try", "400-no-retry", "401-no-retry", "redirect"])
def test_d03_http_gateway_failures_raise_gateway_error(tmp_path, sms_server, script, attempts,
                                                       named):
    """D03: failing answers end in SmsGatewayError after at most one retry (none for 4xx)."""
    sms_server.script = list(script)
    with pytest.raises(SmsGatewayError) as info:
        _http_gateway(tmp_path, sms_server.url).send("13800138000", TEXT, "123456")
    assert named in str(info.value)
    assert len(sms_server.received) == attempts


def test_d03_http_gateway_timeout_fails_within_two_timeouts(tmp_path, sms_server):
    """D03: a gateway slower than sms_http_timeout → SmsGatewayError after about 2×timeout
    (two attempts), so a login page is never stuck."""
    timeout = 0.5
    sms_server.script = [(200, {}, 5.0), (200, {}, 5.0)]
    gateway = _http_gateway(tmp_path, sms_server.url, sms_http_timeout=timeout)
    started = time.monotonic()
    with pytest.raises(SmsGatewayError):
        gateway.send("13800138000", TEXT, "123456")
    elapsed = time.monotonic() - started
    assert 2 * timeout * 0.9 <= elapsed < 2 * timeout + 0.75, elapsed
    assert len(sms_server.received) == 2


def test_d03_http_gateway_slow_first_then_fast_succeeds(tmp_path, sms_server):
    """D03: a timeout counts as a failed attempt; the retry can still deliver."""
    sms_server.script = [(200, {}, 5.0)]
    _http_gateway(tmp_path, sms_server.url, sms_http_timeout=0.4).send(
        "13800138000", TEXT, "123456")
    assert len(sms_server.received) == 2


def test_d03_http_gateway_connection_refused_raises_gateway_error(tmp_path):
    """D03: nobody listening → SmsGatewayError quickly, not a requests exception."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the port is closed again: connecting to it is refused
    gateway = _http_gateway(tmp_path, f"http://127.0.0.1:{port}/api/send", sms_http_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(SmsGatewayError):
        gateway.send("13800138000", TEXT, "123456")
    assert time.monotonic() - started < 2.0


def test_d03_http_gateway_needs_a_url(tmp_path):
    """D03: HttpSmsGateway without sms_http_url is a configuration error naming the key."""
    from idp.config import ConfigError

    with pytest.raises(ConfigError, match="sms_http_url"):
        HttpSmsGateway(_settings(tmp_path))
