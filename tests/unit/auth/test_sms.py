"""SMS codes (D03, S17): six digits, hashed at rest, five minutes, single use, five tries, resend
after the interval, per-phone and per-IP limits, the same answer for every well-formed number,
the messages of DOMAIN.md, and a clear 503 when the gateway fails.

Apps with other settings (short intervals, small limits, the HTTP gateway) are built with
``make_app`` on the same throw-away database as the ``app`` fixture, so they run on both backends
and are cleaned with it.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from idp.audit import AuditEvent
from idp.auth.sms import SmsCodes
from idp.config import Settings
from idp.errors import FieldError
from idp.extensions import db
from idp.gateways.sms import ConsoleSmsGateway
from idp.store import RedisStore
from idp.store.database import StoreEntry
from tests.conftest import (
    REDIS_URL,
    TEST_SETTINGS,
    csrf_from,
    last_code,
    sms_messages,
    table_counts,
)
from tests.factories import make_account
from tests.unit.auth.helpers import (
    PHONE,
    Page,
    audit_events,
    field_error,
    is_logged_in,
    other_code,
    post_login,
    send,
)

OTHER = "13812345678"

MSG_SENT = "验证码已发送，请注意查收"
MSG_WRONG = "验证码错误"
MSG_EXPIRED = "验证码已过期，请重新获取"
MSG_DAILY = "今日获取验证码次数已达上限"
MSG_TOO_MANY_TRIES = "验证码错误次数过多，请重新获取"
MSG_GATEWAY = "短信发送失败，请稍后重试"
MSG_PHONE_FORMAT = "手机号格式不正确"
MSG_CODE_FORMAT = "请输入6位数字验证码"
TOO_FREQUENT = re.compile(r"^发送过于频繁，请(\d+)秒后再试$")


# --- helpers (local to this file) ---------------------------------------------------------------


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# --- sending ------------------------------------------------------------------------------------

def test_d03_code_is_six_digits_and_reaches_outbox_as_one_json_line(app, client):
    """D03/S17: one JSON line {"to","text","code","sent_at"} per SMS; the code is six digits."""
    response = send(client, PHONE)
    assert response.status_code == 200
    assert response.json == {"ok": True, "message": MSG_SENT, "wait": 60}
    outbox = Path(app.config["IDP"].resolved_sms_outbox)
    lines = outbox.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    message = json.loads(lines[0])
    assert set(message) == {"to", "text", "code", "sent_at"}
    assert message["to"] == PHONE
    assert re.fullmatch(r"[0-9]{6}", message["code"])
    assert message["code"] in message["text"]
    assert "5分钟" in message["text"]
    sent_at = datetime.fromisoformat(message["sent_at"])
    assert sent_at.tzinfo is not None
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 60


def test_d03_code_is_not_stored_in_clear(app, client):
    """D03: the store (store_entry) and the audit trail hold no clear-text SMS code."""
    make_account()
    assert send(client, PHONE).status_code == 200
    code = last_code(app, PHONE)
    # A failed login writes audit events and counters: they must not carry the code either.
    assert post_login(client, code, password="Wrong#Pass1").status_code == 400
    standalone = re.compile(rf"(?<![0-9A-Za-z.]){code}(?![0-9A-Za-z.])")
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(StoreEntry.key, StoreEntry.value)).all()
        details = conn.execute(sa.select(AuditEvent.detail)).scalars().all()
    assert any(PHONE in key for key, _ in rows), "the code record should be in the store"
    for key, value in rows:
        assert not standalone.search(key), key
        assert not standalone.search(value or ""), (key, value)
    for detail in details:
        assert not standalone.search(json.dumps(detail, ensure_ascii=False)), detail


def test_s17_resend_within_interval_is_refused_with_seconds_to_wait(app, client):
    """D03/S17: a second code within 60 s → 429 「发送过于频繁，请N秒后再试」 with 0 < N ≤ 60."""
    assert send(client, PHONE).status_code == 200
    for spelling in (PHONE, "+86 139 1234 5678"):
        response = send(client, spelling)
        assert response.status_code == 429
        body = response.json
        match = TOO_FREQUENT.match(body["message"])
        assert match, body
        wait = int(match.group(1))
        assert 0 < wait <= 60
        assert body["ok"] is False and body["wait"] == wait
    assert len(sms_messages(app, PHONE)) == 1


def test_d03_resend_after_interval_and_per_phone_hourly_limit(app, build_app):
    """D03: after the resend interval a new code is sent and only the newest code is valid; per
    phone at most N codes an hour (default 5; here 2), whatever the interval."""
    assert Settings().sms_phone_hourly_limit == 5
    assert Settings().sms_resend_interval == 60
    make_account()
    other = build_app(sms_resend_interval=1, sms_phone_hourly_limit=2)
    client = other.test_client()
    assert send(client, PHONE).status_code == 200
    first = last_code(other, PHONE)
    response = send(client, PHONE)
    assert response.status_code == 429
    assert response.json["message"] == "发送过于频繁，请1秒后再试"
    time.sleep(1.1)
    assert send(client, PHONE).status_code == 200
    second = last_code(other, PHONE)
    if first != second:  # one chance in a million that they are equal
        response = post_login(client, first)
        assert response.status_code == 400
        assert field_error(response.text, "sms_code") == MSG_WRONG
    time.sleep(1.1)  # the resend interval is over: what refuses now is the hourly limit
    response = send(client, PHONE)
    assert response.status_code == 429
    match = TOO_FREQUENT.match(response.json["message"])
    assert match and 0 < int(match.group(1)) <= 3600
    assert len(sms_messages(other, PHONE)) == 2
    assert post_login(client, second).status_code == 303
    assert send(other.test_client(), OTHER).status_code == 200, "the limit is per phone"


def clear_of_beijing_midnight() -> None:
    """The daily limits count per Beijing calendar day (「今日」): a test that straddles
    16:00 UTC would see two days. Wait until the next few seconds stay inside one day."""
    left = 86400 - (int(time.time()) + 8 * 3600) % 86400
    if left < 10:
        time.sleep(left + 0.5)


def test_d03_per_phone_daily_limit(app, build_app):
    """D03: per phone at most N codes a day (default 10; here 1) →
    「今日获取验证码次数已达上限」."""
    assert Settings().sms_phone_daily_limit == 10
    clear_of_beijing_midnight()
    other = build_app(sms_resend_interval=1, sms_phone_daily_limit=1)
    client = other.test_client()
    assert send(client, PHONE).status_code == 200
    time.sleep(1.1)
    response = send(client, PHONE)
    assert response.status_code == 429
    assert response.json["message"] == MSG_DAILY
    assert response.json["ok"] is False
    assert len(sms_messages(other, PHONE)) == 1
    assert send(client, OTHER).status_code == 200, "the limit is per phone"


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"sms_ip_hourly_limit": 2}, TOO_FREQUENT),
    ({"sms_ip_daily_limit": 2}, re.compile(f"^{MSG_DAILY}$")),
], ids=["hourly", "daily"])
def test_d03_per_ip_limits(app, build_app, overrides, expected):
    """D03: one IP address cannot send codes to many numbers; another address still can."""
    clear_of_beijing_midnight()
    other = build_app(**overrides)
    client = other.test_client()
    phones = ["13900000001", "13900000002", "13900000003"]
    assert send(client, phones[0], ip="10.1.1.1").status_code == 200
    assert send(client, phones[1], ip="10.1.1.1").status_code == 200
    response = send(client, phones[2], ip="10.1.1.1")
    assert response.status_code == 429
    assert expected.match(response.json["message"]), response.json
    assert sms_messages(other, phones[2]) == []
    assert send(client, "13900000004", ip="10.1.1.2").status_code == 200, "the limit is per IP"


def test_d03_send_refused_for_the_ip_does_not_spend_the_numbers_interval_or_quota(app, build_app):
    """D03: when an address is over its limit, the refusal sends nothing and must not count
    against the number: otherwise a blocked address could still keep a victim's number in
    cooldown and use up its daily quota, locking its owner out of SMS login."""
    other = build_app(sms_ip_hourly_limit=1, sms_phone_daily_limit=1)
    client = other.test_client()
    assert send(client, "13900000001", ip="10.1.1.1").status_code == 200
    response = send(client, PHONE, ip="10.1.1.1")
    assert response.status_code == 429
    assert sms_messages(other, PHONE) == []
    response = send(client, PHONE, ip="10.1.1.2")  # the owner of the number, elsewhere
    assert response.status_code == 200, response.json
    assert len(sms_messages(other, PHONE)) == 1


# --- checking -----------------------------------------------------------------------------------

def test_d03_wrong_code_is_refused_beside_the_code_field(app, client):
    """D03/S17: a wrong code → 「验证码错误」 beside 「手机验证码」, no session."""
    make_account()
    send(client, PHONE)
    response = post_login(client, other_code(last_code(app, PHONE)))
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") == MSG_WRONG
    assert not is_logged_in(client)
    failures = audit_events("login")
    assert [(e.result, e.detail.get("reason")) for e in failures] == [("failure", "sms_code")]


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "１２３４５６", "12 456", "' OR 1"])
def test_d03_malformed_code_is_refused(app, client, code):
    """D03: a code that is not six ASCII digits → 「请输入6位数字验证码」."""
    make_account()
    send(client, PHONE)
    response = post_login(client, code)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") == MSG_CODE_FORMAT
    assert not is_logged_in(client)


def test_d03_five_wrong_tries_kill_the_code(app, build_app):
    """D03: after 5 wrong tries even the right code fails (「验证码错误次数过多，请重新获取」);
    a new code works again."""
    make_account()
    other = build_app(sms_resend_interval=1)
    client = other.test_client()
    assert send(client, PHONE).status_code == 200
    sent_at = time.monotonic()
    code = last_code(other, PHONE)
    for _ in range(5):
        response = post_login(client, other_code(code))
        assert response.status_code == 400
        assert field_error(response.text, "sms_code") == MSG_WRONG
    response = post_login(client, code)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") == MSG_TOO_MANY_TRIES
    response = post_login(client, code)
    assert response.status_code == 400, "a dead code stays dead"
    assert not is_logged_in(client)
    time.sleep(max(0.0, 1.1 - (time.monotonic() - sent_at)))
    assert send(client, PHONE).status_code == 200
    assert post_login(client, last_code(other, PHONE)).status_code == 303


def test_d03_expired_code_is_refused(app, build_app):
    """D03: a code past its lifetime → 「验证码已过期，请重新获取」 (lifetime 1 s here, 300 s by
    default)."""
    assert Settings().sms_code_ttl == 300
    make_account()
    other = build_app(sms_code_ttl=1)
    client = other.test_client()
    assert send(client, PHONE).status_code == 200
    code = last_code(other, PHONE)
    time.sleep(1.1)
    response = post_login(client, code)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") == MSG_EXPIRED
    assert not is_logged_in(client)


def test_d03_code_is_single_use(app, client):
    """D03: a code that logged somebody in cannot log in again (another browser, a replay)."""
    make_account()
    send(client, PHONE)
    code = last_code(app, PHONE)
    assert post_login(client, code).status_code == 303
    replay = app.test_client()
    response = post_login(replay, code)
    assert response.status_code == 400
    assert field_error(response.text, "sms_code") == MSG_EXPIRED
    assert not is_logged_in(replay)
    assert len([e for e in audit_events("login") if e.result == "success"]) == 1


# --- phone numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("phone", [
    "1391234567",                   # too short
    "1391234567a",                  # a letter
    "139123456789",                 # 12 digits
    "12912345678",                  # no mobile prefix starts with 12
    "１３９１２３４５６７８",          # full-width digits
    "13９１２３４５６７８",            # mixed full-width
    "<script>alert(1)</script>",    # HTML
    "13912345678' OR '1'='1",       # SQL
    "+1 3912345678",                # another country
    "1" * 40,                       # longer than the field allows
], ids=["short", "letter", "12-digits", "starts-12", "full-width", "mixed-width", "html", "sql",
        "foreign", "oversized"])
def test_d03_malformed_phone_is_refused(app, client, phone):
    """D03: a malformed number → 400 「手机号格式不正确」, no SMS, nothing written."""
    page = client.get("/login")
    before = table_counts()
    response = client.post("/login/sms", data={"phone": phone, "csrf_token": csrf_from(page.text)},
                           headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json == {"ok": False, "message": MSG_PHONE_FORMAT, "wait": 0}
    assert sms_messages(app) == []
    assert table_counts() == before


@pytest.mark.parametrize("phone", ["", "   "], ids=["empty", "blank"])
def test_d03_missing_phone_is_refused(app, client, phone):
    """D03: no number at all → 400 「请输入手机号码」, no SMS."""
    page = client.get("/login")
    response = client.post("/login/sms", data={"phone": phone, "csrf_token": csrf_from(page.text)},
                           headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["message"] == "请输入手机号码"
    assert sms_messages(app) == []


@pytest.mark.parametrize("spelling", [
    "+8613912345678", "+86 139 1234 5678", "0086 139-1234-5678", "0086-13912345678",
    "139 1234 5678", "139-1234-5678", " 13912345678 ",
])
def test_d03_phone_spellings_are_normalised(app, client, spelling):
    """D03: +86 / 0086 / spaces / dashes are dropped; the SMS goes to the 11-digit number and
    the login with the same spelling works."""
    make_account()
    response = send(client, spelling)
    assert response.status_code == 200, response.json
    messages = sms_messages(app)
    assert [m["to"] for m in messages] == [PHONE]
    response = post_login(client, messages[0]["code"], phone=spelling)
    assert response.status_code == 303, field_error(response.text, "phone")


def test_d03_same_answer_whether_or_not_the_phone_has_an_account(app):
    """D03/DOMAIN: sending, resending and a wrong password look the same for a registered and an
    unregistered number, so the form cannot be used to find out who has an account."""
    make_account()
    answers = {}
    for phone in (PHONE, OTHER):
        client = app.test_client()
        first = send(client, phone)
        again = send(client, phone)
        login = post_login(client, last_code(app, phone), phone=phone, password="Wrong#Pass1")
        answers[phone] = (
            first.status_code, first.json,
            again.status_code, bool(TOO_FREQUENT.match(again.json["message"])),
            login.status_code, field_error(login.text, "password"),
            field_error(login.text, "phone"), field_error(login.text, "sms_code"),
        )
    assert answers[PHONE] == answers[OTHER]
    assert answers[PHONE][0] == 200 and answers[PHONE][2] == 429 and answers[PHONE][3]
    assert answers[PHONE][4] == 400
    assert answers[PHONE][5] == "手机号码或密码错误，还可尝试4次"


# --- the gateway --------------------------------------------------------------------------------

def test_s17_gateway_failure_gives_503_and_a_clear_message(app, build_app):
    """S17: an unreachable SMS gateway → 503 「短信发送失败，请稍后重试」, never a 500; the user may
    try again at once (the resend interval is not spent on a failed send)."""
    other = build_app(sms_gateway="idp.gateways.sms:HttpSmsGateway",
                      sms_http_url=f"http://127.0.0.1:{closed_port()}/send",
                      sms_http_timeout=1.0)
    client = other.test_client()
    for _ in range(2):
        response = send(client, PHONE)
        assert response.status_code == 503
        assert response.json == {"ok": False, "message": MSG_GATEWAY, "wait": 0}
    page = client.get("/login")
    response = client.post("/login/sms", data={"phone": PHONE,
                                               "csrf_token": csrf_from(page.text)})
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert field_error(response.text, "phone") == MSG_GATEWAY


class _SmsApi(BaseHTTPRequestHandler):
    status = 200
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append({"body": json.loads(self.rfile.read(length)),
                              "authorization": self.headers.get("Authorization")})
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sms_api() -> Iterator[type[_SmsApi]]:
    """A small operator API on loopback that answers with the status the test chooses."""
    handler = type("Handler", (_SmsApi,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/send"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "attempts", "answer"), [
    (200, 1, 200), (500, 2, 503), (400, 1, 503),
], ids=["accepted", "5xx-retried-once", "4xx-final"])
def test_s17_http_gateway_posts_the_code_and_retries_once(app, build_app, sms_api, status,
                                                          attempts, answer):
    """S17: HttpSmsGateway posts {phone, template, sign, params.code, text} with the bearer
    token; one retry on a 5xx, none on a 4xx; a failure is a 503 with a clear message."""
    sms_api.status = status
    other = build_app(sms_gateway="idp.gateways.sms:HttpSmsGateway", sms_http_url=sms_api.url,
                      sms_http_token="op-token", sms_http_timeout=2.0)
    response = send(other.test_client(), "+86 139 1234 5678")
    assert response.status_code == answer
    assert response.json["message"] == (MSG_SENT if answer == 200 else MSG_GATEWAY)
    assert len(sms_api.received) == attempts
    request = sms_api.received[0]
    assert request["authorization"] == "Bearer op-token"
    body = request["body"]
    assert body["phone"] == PHONE
    assert body["template"] == "SMS_LOGIN_CODE"
    assert re.fullmatch(r"[0-9]{6}", body["params"]["code"])
    assert body["params"]["code"] in body["text"]


# --- the page without script --------------------------------------------------------------------

def test_s17_send_without_script_rerenders_the_login_page_with_the_notice(app, client):
    """S17: 「获取验证码」 as a plain form post (no JavaScript) re-renders the login page with
    「验证码已发送，请注意查收」 and the typed number kept."""
    page = client.get("/login")
    response = client.post("/login/sms", data={
        "phone": "139 1234 5678", "password": "typed", "sms_code": "",
        "csrf_token": csrf_from(page.text), "interaction": "",
    })
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = Page(response.text)
    assert html.by_id("sms-notice")["text"].strip() == MSG_SENT
    assert "hidden" not in html.by_id("sms-notice")["attrs"]
    assert html.by_id("phone", "input")["attrs"]["value"] == "139 1234 5678"
    assert field_error(response.text, "phone") == ""
    assert csrf_from(response.text)
    assert len(sms_messages(app, PHONE)) == 1


def test_s17_send_without_script_shows_errors_beside_the_phone_field(app, client):
    """S17: without JavaScript a bad number comes back beside 「手机号码」, HTML escaped."""
    page = client.get("/login")
    payload = "<script>alert(1)</script>"
    response = client.post("/login/sms", data={"phone": payload,
                                               "csrf_token": csrf_from(page.text)})
    assert response.status_code == 400
    assert field_error(response.text, "phone") == MSG_PHONE_FORMAT
    assert payload not in response.text
    assert Page(response.text).by_id("phone", "input")["attrs"]["value"] == payload
    assert sms_messages(app) == []


# --- the same rules on the Redis store ----------------------------------------------------------

def test_d03_codes_on_redis_are_hashed_single_use_limited_and_expire(tmp_path):
    """D03 on the Redis store: no clear code in Redis, single use, five tries, expiry."""
    settings = Settings().replace(**{**TEST_SETTINGS, "sms_outbox": str(tmp_path / "out.jsonl"),
                                     "instance_path": str(tmp_path), "sms_code_ttl": 1})
    store = RedisStore.from_url(REDIS_URL, prefix=f"idptest:{secrets.token_hex(8)}:")
    codes = SmsCodes(store, ConsoleSmsGateway(settings), settings)

    def code_for(phone: str) -> str:
        lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
        return str([json.loads(x) for x in lines if json.loads(x)["to"] == phone][-1]["code"])

    try:
        assert codes.send(PHONE, "10.0.0.1") == MSG_SENT
        code = code_for(PHONE)
        redis_client = store._r
        for key in redis_client.scan_iter(match=store._prefix + "*"):
            assert code not in key
            if redis_client.type(key) == "string":
                assert code not in (redis_client.get(key) or "")
        codes.check(PHONE, code)
        assert codes.consume(PHONE) is True
        assert codes.consume(PHONE) is False
        with pytest.raises(FieldError) as error:
            codes.check(PHONE, code)
        assert error.value.message == MSG_EXPIRED

        codes.send(OTHER, "10.0.0.1")
        code = code_for(OTHER)
        for _ in range(5):
            with pytest.raises(FieldError) as error:
                codes.check(OTHER, other_code(code))
            assert error.value.message == MSG_WRONG
        with pytest.raises(FieldError) as error:
            codes.check(OTHER, code)
        assert error.value.message == MSG_TOO_MANY_TRIES

        codes.send("13700000000", "10.0.0.1")
        code = code_for("13700000000")
        time.sleep(1.1)
        with pytest.raises(FieldError) as error:
            codes.check("13700000000", code)
        assert error.value.message == MSG_EXPIRED
    finally:
        store.clear_prefix()


def test_d03_sending_is_audited_with_refusals_and_a_masked_number(app, client):
    """D03: every 「获取验证码」 press leaves an audit event — sent, or refused with the reason —
    and the trail shows the number masked, never the code."""
    assert send(client, PHONE).status_code == 200
    assert send(client, PHONE).status_code == 429  # inside the resend interval
    events = audit_events("sms.send")
    assert [(e.result, e.detail.get("reason")) for e in events] == [
        ("success", None), ("failure", "rate_limited")]
    assert all(e.detail["phone"] == "139****5678" for e in events)
    code = last_code(app, PHONE)
    assert all(code not in str(e.detail) for e in events)
