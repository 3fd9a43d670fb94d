"""The carrier check of name + phone (手机二要素校验, S12/S13): the sandbox used in development
and tests, read from config/phone-sandbox.toml, and the HTTP verifier of production against a
real HTTP server on loopback. Every outcome of DOMAIN.md is a value, never an exception."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from idp.config import ConfigError, Settings, load_settings
from idp.gateways import load_service
from idp.gateways.phone import (
    MESSAGES,
    HttpPhoneVerifier,
    Outcome,
    PhoneVerifier,
    SandboxPhoneVerifier,
    Verification,
    carrier_by_prefix,
    message_for,
)
from tests.http_stub import StubServer, stub_server

ROOT = Path(__file__).resolve().parents[3]
SANDBOX = ROOT / "config" / "phone-sandbox.toml"
S13_MESSAGE = "您填写的身份信息与手机号认证失败，请确认信息是否填写正确。"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    return load_settings(overrides, environ={}, config_file=empty)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> SandboxPhoneVerifier:
    """The shipped config/phone-sandbox.toml, whatever the working directory."""
    settings = _settings(tmp_path_factory.mktemp("phone"), phone_sandbox_file=str(SANDBOX))
    return SandboxPhoneVerifier(settings)


# --- outcomes and messages ----------------------------------------------------------------------

def test_s13_every_failed_outcome_has_a_chinese_message():
    """S13: the mismatch text is exactly REQUIREMENTS' 「…」; every other failure has its own."""
    assert set(MESSAGES) == set(Outcome) - {Outcome.MATCH}
    assert MESSAGES[Outcome.MISMATCH] == S13_MESSAGE
    assert len(set(MESSAGES.values())) == len(MESSAGES)
    for outcome in MESSAGES:
        verification = Verification(outcome, None, "r-1", False)
        assert not verification.matched
        assert message_for(verification) == MESSAGES[outcome]
    match = Verification(Outcome.MATCH, "中国移动", "r-2", True)
    assert match.matched and message_for(match) is None


def test_s12_outcome_values_are_the_wire_strings():
    assert [o.value for o in Outcome] == [
        "match", "mismatch", "no_record", "invalid_input", "unsupported", "rate_limited",
        "provider_error"]
    assert Outcome("no_record") is Outcome.NO_RECORD and Outcome.MATCH == "match"


# --- sandbox --------------------------------------------------------------------------------------

SANDBOX_CASES = [
    ("张三", "13900000001", Outcome.MATCH, "中国移动", True),
    ("李四", "13900000002", Outcome.MATCH, "中国移动", True),
    ("王芳", "17589662060", Outcome.MATCH, "中国联通", True),
    ("曹伟仙", "13343586601", Outcome.MATCH, "中国电信", True),
    ("测试操作员", "13900000009", Outcome.MATCH, "中国移动", True),
    ("张叁", "13900000003", Outcome.MATCH, "中国移动", True),
    ("张三", "13900000003", Outcome.MISMATCH, "中国移动", True),
    ("赵六", "13900000004", Outcome.NO_RECORD, "中国移动", True),
    ("钱七", "13900000005", Outcome.UNSUPPORTED, "中国移动", False),
    ("孙八", "13900000006", Outcome.RATE_LIMITED, "中国移动", False),
    ("周九", "13900000007", Outcome.PROVIDER_ERROR, "中国移动", False),
    ("吴十", "13900000008", Outcome.INVALID_INPUT, "中国移动", False),
    *[(f"操作员{n}", f"1390000001{i}", Outcome.MATCH, "中国移动", True)
      for i, n in enumerate("一二三四五六七八九", start=1)],
]


@pytest.mark.parametrize(("name", "phone", "outcome", "carrier", "billable"), SANDBOX_CASES,
                         ids=[f"{c[0]}-{c[2].value}" for c in SANDBOX_CASES])
def test_s12_sandbox_answers_every_outcome_of_the_file(sandbox, name, phone, outcome, carrier,
                                                       billable):
    """S12/S13: the pairs tests and demos rely on give their outcome, carrier and billing."""
    result = sandbox.verify(name, phone)
    assert result.outcome is outcome
    assert result.carrier == carrier
    assert result.billable is billable
    assert result.matched is (outcome is Outcome.MATCH)
    assert result.request_id.startswith("sandbox-") and len(result.request_id) == 8 + 32


def test_s12_sandbox_request_ids_are_unique(sandbox):
    ids = {sandbox.verify("张三", "13900000001").request_id for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize(("name", "phone"), [
    ("李四", "13900000001"),  # 张三's number
    ("张三", "13900000002"),  # 李四's number
    ("王 芳", "17589662060"),
    ("操作员二", "13900000011"),
], ids=["other-name-1", "other-name-2", "inner-space", "operator-swap"])
def test_s13_sandbox_listed_phone_with_another_name_is_mismatch(sandbox, name, phone):
    """S13: the carrier knows the number under another name → mismatch (and it is billed)."""
    result = sandbox.verify(name, phone)
    assert result.outcome is Outcome.MISMATCH and result.billable
    assert message_for(result) == S13_MESSAGE


@pytest.mark.parametrize(("phone", "outcome"), [
    ("13900000004", Outcome.NO_RECORD),
    ("13900000005", Outcome.UNSUPPORTED),
    ("13900000006", Outcome.RATE_LIMITED),
    ("13900000007", Outcome.PROVIDER_ERROR),
])
def test_s12_sandbox_number_outcomes_do_not_depend_on_the_name(sandbox, phone, outcome):
    """S12: no record, an unsupported range or a failing provider concern the number alone."""
    assert sandbox.verify("陌生人", phone).outcome is outcome


@pytest.mark.parametrize(("name", "phone"), [
    ("", "13900000001"),
    ("   ", "13900000001"),
    ("张三", "1390000000"),  # 10 digits
    ("张三", "139000000011"),  # 12 digits
    ("张三", "１３９００００００１"),  # full-width digits
    ("<script>", "13900000001"),
    ("张三<script>alert(1)</script>", "13900000001"),
    ("张" * 200, "13900000001"),
    ("张三", "139 0000 0001"),
    ("张三", " 13900000001"),
    ("张三", "23900000001"),  # does not start with 1
    ("张三", "1390000000a"),
    ("张三", ""),
    ("张三", "13900000001\n"),
    ("张三1", "13900000001"),
    ("张三;", "13900000001"),
], ids=["empty-name", "blank-name", "10-digits", "12-digits", "full-width", "script",
        "script-inside", "200-chars", "spaces", "leading-space", "not-1", "letter", "empty-phone",
        "newline", "digit-in-name", "semicolon"])
def test_s12_sandbox_invalid_input(sandbox, name, phone):
    """S12: malformed name or phone → invalid_input, not billed, no carrier guessed."""
    result = sandbox.verify(name, phone)
    assert result.outcome is Outcome.INVALID_INPUT
    assert result.billable is False and result.carrier is None
    assert message_for(result) == MESSAGES[Outcome.INVALID_INPUT]


@pytest.mark.parametrize("name", ["阿依古丽·买买提", "John Smith", "O'Neil"])
def test_s12_sandbox_accepts_minority_and_foreign_names(sandbox, name):
    """S12: the separators of 少数民族 and foreign names are names, not invalid input."""
    assert sandbox.verify(name, "13800000000").outcome is Outcome.NO_RECORD


@pytest.mark.parametrize(("phone", "carrier"), [
    ("13800000000", "中国移动"),
    ("15012345678", "中国移动"),
    ("19812345678", "中国移动"),
    ("13012345678", "中国联通"),
    ("16612345678", "中国联通"),
    ("18612345678", "中国联通"),
    ("13312345678", "中国电信"),
    ("17712345678", "中国电信"),
    ("19912345678", "中国电信"),
    ("19212345678", "中国广电"),
    ("17012345678", None),  # virtual operators: unknown
    ("12012345678", None),
])
def test_s12_sandbox_unlisted_phone_is_no_record_with_carrier_by_prefix(sandbox, phone, carrier):
    """S12: an unlisted well-formed phone → no_record (billed), carrier by the number's prefix."""
    result = sandbox.verify("张三", phone)
    assert result.outcome is Outcome.NO_RECORD and result.billable is True
    assert result.carrier == carrier
    assert carrier_by_prefix(phone) == carrier


def test_s12_carrier_by_prefix_of_a_malformed_number_is_none():
    assert carrier_by_prefix("139") is None
    assert carrier_by_prefix("１３９００００００１") is None


def test_s12_sandbox_is_a_phone_verifier(sandbox):
    verifier: PhoneVerifier = sandbox
    assert verifier.verify("张三", "13900000001").matched


def test_s12_load_service_builds_the_sandbox_by_default(tmp_path, monkeypatch):
    """S12: the default phone_verifier setting is the sandbox with config/phone-sandbox.toml,
    relative to the working directory."""
    monkeypatch.chdir(ROOT)
    settings = _settings(tmp_path)
    assert settings.phone_verifier == "idp.gateways.phone:SandboxPhoneVerifier"
    verifier = load_service(settings.phone_verifier, settings, "phone_verifier")
    assert isinstance(verifier, SandboxPhoneVerifier)
    assert verifier.verify("张三", "13900000001").matched


def test_s12_load_service_builds_the_http_verifier(tmp_path):
    settings = _settings(tmp_path, phone_verifier="idp.gateways.phone:HttpPhoneVerifier",
                         phone_http_url="http://127.0.0.1:9/check")
    assert isinstance(load_service(settings.phone_verifier, settings, "phone_verifier"),
                      HttpPhoneVerifier)


def test_s12_load_service_with_a_bad_class_is_a_config_error(tmp_path):
    settings = _settings(tmp_path, phone_verifier="idp.gateways.phone:NoSuchVerifier")
    with pytest.raises(ConfigError, match="phone_verifier"):
        load_service(settings.phone_verifier, settings, "phone_verifier")


# --- a bad sandbox file stops start-up ------------------------------------------------------------

GOOD_PAIR = '[[pair]]\nname = "张三"\nphone = "13900000001"\noutcome = "match"\n'


@pytest.mark.parametrize(("text", "named"), [
    (None, "not found"),
    ("[[pair]\nname = ", "not valid TOML"),
    (b"\xff\xfe[[pair]]", "not valid TOML"),
    ('[[pair]]\nname = "张三"\nphone = "13900000001"\noutcome = "maybe"\n', "maybe"),
    ('[[pair]]\nname = "张三"\nphone = "13900000001"\n', "outcome"),
    ('[[pair]]\nphone = "13900000001"\noutcome = "match"\n', "'name'"),
    ('[[pair]]\nname = "张三"\nphone = 13900000001\noutcome = "match"\n', "'phone'"),
    ('[[pair]]\nname = "张三"\nphone = "1390000000"\noutcome = "match"\n', "malformed"),
    ('[[pair]]\nname = "<b>"\nphone = "13900000001"\noutcome = "match"\n', "malformed"),
    (GOOD_PAIR + 'carrier = "中国移东"\n', "中国移东"),
    (GOOD_PAIR + 'billable = "yes"\n', "billable"),
    (GOOD_PAIR + 'nmae = "x"\n', "nmae"),
    (GOOD_PAIR + GOOD_PAIR, "twice"),
    ('pair = "x"\n', "array of tables"),
    ('[pairs]\nname = "x"\n', "pairs"),
], ids=["missing", "invalid-toml", "not-utf8", "unknown-outcome", "no-outcome", "no-name",
        "phone-not-string", "bad-phone", "bad-name", "unknown-carrier", "billable-not-bool",
        "unknown-key", "duplicate", "pair-not-table", "unknown-table"])
def test_s12_bad_sandbox_file_is_a_config_error(tmp_path, text, named):
    """S12: a broken sandbox file fails at construction with a message naming the setting."""
    path = tmp_path / "sandbox.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="phone_sandbox_file") as info:
        SandboxPhoneVerifier(_settings(tmp_path, phone_sandbox_file=str(path)))
    assert named in str(info.value)


def test_s12_unreadable_sandbox_file_is_a_config_error(tmp_path):
    """S12: a directory where the file should be is a configuration error, not an OSError."""
    with pytest.raises(ConfigError, match="phone_sandbox_file"):
        SandboxPhoneVerifier(_settings(tmp_path, phone_sandbox_file=str(tmp_path)))


def test_s12_sandbox_pair_overrides_carrier_and_billable(tmp_path):
    path = tmp_path / "sandbox.toml"
    path.write_text(GOOD_PAIR + 'carrier = "中国广电"\nbillable = false\n', encoding="utf-8")
    verifier = SandboxPhoneVerifier(_settings(tmp_path, phone_sandbox_file=str(path)))
    result = verifier.verify("张三", "13900000001")
    assert (result.outcome, result.carrier, result.billable) == (Outcome.MATCH, "中国广电", False)


def test_s12_empty_sandbox_file_knows_nobody(tmp_path):
    path = tmp_path / "sandbox.toml"
    path.write_text("# nobody\n", encoding="utf-8")
    verifier = SandboxPhoneVerifier(_settings(tmp_path, phone_sandbox_file=str(path)))
    assert verifier.verify("张三", "13900000001").outcome is Outcome.NO_RECORD


def test_s12_sandbox_file_is_read_once(tmp_path):
    """S12: construction reads the file; later edits do not change a running verifier."""
    path = tmp_path / "sandbox.toml"
    path.write_text(GOOD_PAIR, encoding="utf-8")
    verifier = SandboxPhoneVerifier(_settings(tmp_path, phone_sandbox_file=str(path)))
    path.unlink()
    assert verifier.verify("张三", "13900000001").matched


# --- HTTP verifier against a real server ----------------------------------------------------------

@pytest.fixture
def provider() -> Iterator[StubServer]:
    with stub_server("/v1/mobile/check", (200, {"result": "match"}, 0.0)) as server:
        yield server


def _http(tmp_path: Path, url: str, **overrides: Any) -> HttpPhoneVerifier:
    settings = _settings(tmp_path, phone_verifier="idp.gateways.phone:HttpPhoneVerifier",
                         phone_http_url=url, **overrides)
    return HttpPhoneVerifier(settings)


@pytest.mark.parametrize(("result", "billable"), [
    ("match", True), ("mismatch", True), ("no_record", True), ("invalid_input", False),
    ("unsupported", False),
])
def test_s12_http_verifier_reads_each_result(tmp_path, provider, result, billable):
    """S12/S13: the provider's result, carrier, request id and billing are passed through."""
    provider.answer = (200, {"result": result, "carrier": "中国移动",
                             "request_id": f"req-{result}", "billable": billable}, 0.0)
    verification = _http(tmp_path, provider.url).verify("张三", "13900000001")
    assert verification == Verification(Outcome(result), "中国移动", f"req-{result}", billable)
    assert verification.matched is (result == "match")
    assert provider.body() == {"name": "张三", "phone": "13900000001", "hash": ""}
    request = provider.received[0]
    assert request["path"] == "/v1/mobile/check"
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert "Authorization" not in request["headers"]


def test_s12_http_verifier_defaults_for_a_sparse_answer(tmp_path, provider):
    """S12: without carrier, request id or billable: no carrier, a local id, billing by result."""
    provider.answer = (200, {"result": "mismatch", "carrier": 7, "billable": "yes"}, 0.0)
    verification = _http(tmp_path, provider.url).verify("张三", "13900000001")
    assert verification.outcome is Outcome.MISMATCH
    assert verification.carrier is None and verification.billable is True
    assert verification.request_id.startswith("local-")


def test_s12_http_verifier_sends_the_bearer_token(tmp_path, provider):
    _http(tmp_path, provider.url, phone_http_token="tok-secret").verify("张三", "13900000001")
    assert provider.received[0]["headers"]["Authorization"] == "Bearer tok-secret"


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_s12_http_verifier_hashed_mode_never_sends_the_clear_inputs(tmp_path, provider,
                                                                    algorithm):
    """S12: with phone_http_hash the provider gets lowercase hex digests of the UTF-8 only."""
    verifier = _http(tmp_path, provider.url, phone_http_hash=algorithm)
    assert verifier.verify("张三", "13900000001").matched
    raw = provider.received[0]["body"]
    assert b"13900000001" not in raw
    assert "张三".encode() not in raw and b"\\u5f20" not in raw
    assert provider.body() == {
        "name": hashlib.new(algorithm, "张三".encode()).hexdigest(),
        "phone": hashlib.new(algorithm, b"13900000001").hexdigest(),
        "hash": algorithm,
    }


@pytest.mark.parametrize(("status", "payload", "outcome"), [
    (429, {"error": "too many"}, Outcome.RATE_LIMITED),
    (500, {"error": "boom"}, Outcome.PROVIDER_ERROR),
    (503, b"<html>busy</html>", Outcome.PROVIDER_ERROR),
    (401, {"error": "bad token"}, Outcome.PROVIDER_ERROR),
    (302, b"", Outcome.PROVIDER_ERROR),
    (200, b"not json {", Outcome.PROVIDER_ERROR),
    (200, b"", Outcome.PROVIDER_ERROR),
    (200, ["match"], Outcome.PROVIDER_ERROR),
    (200, {"result": "maybe", "request_id": "req-x"}, Outcome.PROVIDER_ERROR),
    (200, {"result": "rate_limited"}, Outcome.PROVIDER_ERROR),
    (200, {"carrier": "中国移动"}, Outcome.PROVIDER_ERROR),
], ids=["429", "500", "503-html", "401", "redirect", "invalid-json", "empty", "json-list",
        "unknown-result", "result-not-in-protocol", "no-result"])
def test_s12_http_verifier_failures_are_outcomes_not_exceptions(tmp_path, provider, caplog,
                                                                status, payload, outcome):
    """S12: 429 → rate_limited; any other failure → provider_error, a warning in the log that
    never holds the name or the phone, and nothing billed."""
    provider.answer = (status, payload, 0.0)
    with caplog.at_level(logging.WARNING, logger="idp.gateways.phone"):
        verification = _http(tmp_path, provider.url).verify("张三", "13900000001")
    assert verification.outcome is outcome
    assert verification.billable is False and verification.carrier is None
    assert message_for(verification) == MESSAGES[outcome]
    assert caplog.records, "a failure is logged"
    assert verification.request_id in caplog.text
    assert "张三" not in caplog.text and "13900000001" not in caplog.text


def test_s12_http_verifier_timeout_is_provider_error_quickly(tmp_path, provider, caplog):
    """S12: a provider slower than phone_http_timeout → provider_error within about a second,
    so an operator's 【保存】 is never stuck."""
    provider.answer = (200, {"result": "match"}, 5.0)
    verifier = _http(tmp_path, provider.url, phone_http_timeout=0.3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="idp.gateways.phone"):
        verification = verifier.verify("张三", "13900000001")
    elapsed = time.monotonic() - started
    assert verification.outcome is Outcome.PROVIDER_ERROR
    assert 0.25 <= elapsed < 1.0, elapsed
    assert "Timeout" in caplog.text and "13900000001" not in caplog.text


def test_s12_http_verifier_connection_refused_is_provider_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = _http(tmp_path, f"http://127.0.0.1:{port}/check", phone_http_timeout=2.0)
    started = time.monotonic()
    verification = verifier.verify("张三", "13900000001")
    assert verification.outcome is Outcome.PROVIDER_ERROR and not verification.billable
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("name", "phone"), [
    ("", "13900000001"), ("<script>", "13900000001"), ("张三", "１３９００００００１"),
    ("张三", "139 0000 0001"), ("张" * 200, "13900000001"),
], ids=["empty-name", "script", "full-width", "spaces", "200-chars"])
def test_s12_http_verifier_refuses_invalid_input_without_asking(tmp_path, provider, name, phone):
    """S12: malformed input is invalid_input locally: nothing is sent, nothing billed."""
    verification = _http(tmp_path, provider.url).verify(name, phone)
    assert verification.outcome is Outcome.INVALID_INPUT and not verification.billable
    assert provider.received == []


def test_s12_http_verifier_needs_a_url(tmp_path):
    """S12: HttpPhoneVerifier without phone_http_url is a configuration error naming the key."""
    with pytest.raises(ConfigError, match="phone_http_url"):
        HttpPhoneVerifier(_settings(tmp_path))
