"""Configuration: defaults < config/idp.toml < IDP_* environment, validated at start-up with an
error naming the bad key (D10: the project's foundation; D01: a provider that refuses an unsafe
issuer or code lifetime)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from idp.config import ConfigError, Settings, load_settings

IDP_COMMAND = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "idp"


def _toml(tmp_path: Path, text: str, name: str = "idp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- layering ----------------------------------------------------------------------------------

def test_d10_defaults_when_file_and_environment_are_empty(tmp_path):
    """D10: with an empty file and no IDP_* variables the built-in defaults apply."""
    settings = load_settings(config_file=_toml(tmp_path, ""), environ={})
    assert settings == Settings()
    assert settings.sms_code_ttl == 300
    assert settings.code_ttl == 60
    assert settings.session_idle_seconds == 1800
    assert settings.store == "auto"
    assert settings.trusted_hosts == ()


@pytest.mark.parametrize("text", [
    '[idp]\nsms_code_ttl = 120\nissuer = "https://login.example.cn"\n'
    'trusted_hosts = ["login.example.cn"]\nsms_http_timeout = 2.5\n',
    # the [idp] table is optional: top-level keys work too
    'sms_code_ttl = 120\nissuer = "https://login.example.cn"\n'
    'trusted_hosts = ["login.example.cn"]\nsms_http_timeout = 2.5\n',
], ids=["idp-table", "top-level"])
def test_d10_toml_overrides_defaults(tmp_path, text):
    """D10: a value in the TOML file beats the built-in default; untouched keys keep theirs."""
    settings = load_settings(config_file=_toml(tmp_path, text), environ={})
    assert settings.sms_code_ttl == 120
    assert settings.issuer == "https://login.example.cn"
    assert settings.trusted_hosts == ("login.example.cn",)
    assert settings.sms_http_timeout == 2.5
    assert settings.sms_resend_interval == Settings().sms_resend_interval


def test_d10_environment_overrides_toml(tmp_path):
    """D10: IDP_* beats the TOML file, with the value converted to the setting's type."""
    path = _toml(tmp_path, '[idp]\nsms_code_ttl = 120\nsms_resend_interval = 30\n'
                           'trusted_hosts = ["a.example.cn"]\n')
    settings = load_settings(config_file=path, environ={
        "IDP_SMS_CODE_TTL": "90",
        "IDP_TRUSTED_HOSTS": "b.example.cn, c.example.cn",
        "IDP_SMS_HTTP_TIMEOUT": "1.5",
        "IDP_ISSUER": "https://idp.example.cn",
        "PATH": "/usr/bin",  # not ours: ignored
    })
    assert settings.sms_code_ttl == 90
    assert settings.sms_resend_interval == 30  # from the file, no variable
    assert settings.trusted_hosts == ("b.example.cn", "c.example.cn")
    assert settings.sms_http_timeout == 1.5
    assert settings.issuer == "https://idp.example.cn"


def test_d10_overrides_beat_environment(tmp_path):
    """D10: explicit overrides (tests, create_app(...)) beat the environment."""
    settings = load_settings({"sms_code_ttl": 60}, config_file=_toml(tmp_path, ""),
                             environ={"IDP_SMS_CODE_TTL": "90"})
    assert settings.sms_code_ttl == 60


def test_d10_idp_config_variable_selects_the_file(tmp_path):
    """D10: IDP_CONFIG names the TOML file when no config_file is given."""
    path = _toml(tmp_path, "[idp]\nlockout_threshold = 7\n", name="elsewhere.toml")
    settings = load_settings(environ={"IDP_CONFIG": str(path)})
    assert settings.lockout_threshold == 7


def test_d10_idp_config_naming_a_missing_file_is_an_error(tmp_path):
    """D10: an IDP_CONFIG that points nowhere must stop start-up, not silently fall back to
    development defaults (SQLite, http://localhost:5000)."""
    missing = tmp_path / "etc" / "idp.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"IDP_CONFIG": str(missing)})
    assert str(missing) in str(info.value)


def test_d10_replace_validates_like_load(tmp_path):
    """D10: Settings.replace applies the same cross-field checks."""
    settings = load_settings(config_file=_toml(tmp_path, ""), environ={})
    with pytest.raises(ConfigError, match="code_ttl"):
        settings.replace(code_ttl=61)


# --- bad values: each names its key ----------------------------------------------------------

BAD_TOML = [
    ("unknown-key", "[idp]\nsms_code_tll = 300\n", "sms_code_tll"),
    ("bool-for-int", "[idp]\nsms_code_ttl = true\n", "sms_code_ttl"),
    ("text-for-int", '[idp]\nsms_code_ttl = "five minutes"\n', "sms_code_ttl"),
    ("float-for-int", "[idp]\nlockout_threshold = 2.5\n", "lockout_threshold"),
    ("int-for-str", "[idp]\nissuer = 5\n", "issuer"),
    ("text-for-float", '[idp]\nsms_http_timeout = "fast"\n', "sms_http_timeout"),
    ("bool-for-float", "[idp]\nsms_http_timeout = true\n", "sms_http_timeout"),
    ("ints-for-list", "[idp]\ntrusted_hosts = [1, 2]\n", "trusted_hosts"),
    ("invalid-toml", "[idp\nissuer = \n", "not valid TOML"),
    ("idp-not-a-table", "idp = 5\n", "[idp] must be a table"),
]


@pytest.mark.parametrize(("text", "named"), [c[1:] for c in BAD_TOML],
                         ids=[c[0] for c in BAD_TOML])
def test_d10_bad_toml_is_refused_naming_the_key(tmp_path, text, named):
    """D10: a bad file stops start-up with a ConfigError that names the key (and the file)."""
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path, environ={})
    assert named in str(info.value)
    assert str(path) in str(info.value)


def test_d10_invalid_utf8_toml_is_refused(tmp_path):
    """D10: a file that is not UTF-8 is a configuration error, not a crash."""
    path = tmp_path / "idp.toml"
    path.write_bytes("[idp]\nsms_sign_name = '登录'\n".encode("gbk"))  # not UTF-8
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=path, environ={})


def test_d10_missing_config_file_is_refused(tmp_path):
    """D10: an explicitly named file that does not exist is an error naming it."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=missing, environ={})
    assert str(missing) in str(info.value)


BAD_ENV: list[tuple[str, dict[str, str], str]] = [
    ("unknown-variable", {"IDP_SMS_CODE_TLL": "300"}, "IDP_SMS_CODE_TLL"),
    ("text-for-int", {"IDP_SMS_CODE_TTL": "abc"}, "IDP_SMS_CODE_TTL"),
    ("bool-for-int", {"IDP_SMS_CODE_TTL": "true"}, "IDP_SMS_CODE_TTL"),
    ("float-for-int", {"IDP_CODE_TTL": "30.5"}, "IDP_CODE_TTL"),
    ("empty-for-int", {"IDP_LOCKOUT_SECONDS": ""}, "IDP_LOCKOUT_SECONDS"),
    ("text-for-float", {"IDP_SMS_HTTP_TIMEOUT": "soon"}, "IDP_SMS_HTTP_TIMEOUT"),
    ("http-issuer-remote", {"IDP_ISSUER": "http://login.example.cn"}, "issuer"),
    ("issuer-with-query", {"IDP_ISSUER": "https://login.example.cn/?a=1"}, "issuer"),
    ("issuer-with-fragment", {"IDP_ISSUER": "https://login.example.cn/#x"}, "issuer"),
    ("issuer-not-http", {"IDP_ISSUER": "ftp://login.example.cn"}, "issuer"),
    ("issuer-no-host", {"IDP_ISSUER": "https://"}, "issuer"),
    ("code-ttl-over-60", {"IDP_CODE_TTL": "61"}, "code_ttl"),
    ("code-ttl-zero", {"IDP_CODE_TTL": "0"}, "code_ttl"),
    ("idle-over-1800", {"IDP_SESSION_IDLE_SECONDS": "1801"}, "session_idle_seconds"),
    ("negative-sms-ttl", {"IDP_SMS_CODE_TTL": "-1"}, "sms_code_ttl"),
    ("zero-http-timeout", {"IDP_SMS_HTTP_TIMEOUT": "0"}, "sms_http_timeout"),
    ("redis-without-url", {"IDP_STORE": "redis"}, "redis_url"),
    ("unknown-store", {"IDP_STORE": "memcached"}, "store"),
    ("short-secret-key", {"IDP_SECRET_KEY": "x" * 31}, "secret_key"),
    ("unknown-signing-alg", {"IDP_SIGNING_ALG": "HS256"}, "signing_alg"),
    ("gateway-not-dotted", {"IDP_SMS_GATEWAY": "ConsoleSmsGateway"}, "sms_gateway"),
    ("argon2-memory-too-small", {"IDP_PASSWORD_MEMORY_COST": "16",
                                 "IDP_PASSWORD_PARALLELISM": "4"}, "password_memory_cost"),
    # UKey / TLS (D02)
    ("tls-cert-without-key", {"IDP_TLS_CERT": "server.pem"}, "tls_key"),
    ("tls-key-without-cert", {"IDP_TLS_KEY": "server.key.pem"}, "tls_key"),
    ("cert-header-not-a-name", {"IDP_CLIENT_CERT_HEADER": "X-Cert: evil"}, "client_cert_header"),
    ("cert-header-empty", {"IDP_CLIENT_CERT_HEADER": ""}, "client_cert_header"),
    ("clock-skew-negative", {"IDP_UKEY_CLOCK_SKEW": "-1"}, "ukey_clock_skew"),
    ("clock-skew-too-large", {"IDP_UKEY_CLOCK_SKEW": "901"}, "ukey_clock_skew"),
    ("challenge-ttl-zero", {"IDP_UKEY_CHALLENGE_TTL": "0"}, "ukey_challenge_ttl"),
    ("revocation-timeout-zero", {"IDP_UKEY_REVOCATION_TIMEOUT": "0"},
     "ukey_revocation_timeout"),
    ("proxy-not-an-address", {"IDP_TRUSTED_PROXIES": "nginx.local"}, "trusted_proxies"),
]


@pytest.mark.parametrize(("environ", "named"), [c[1:] for c in BAD_ENV],
                         ids=[c[0] for c in BAD_ENV])
def test_d10_bad_environment_is_refused_naming_the_key(tmp_path, environ, named):
    """D10/D01: a bad IDP_* value stops start-up with a ConfigError that names the key."""
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=_toml(tmp_path, ""), environ=environ)
    assert named in str(info.value)


@pytest.mark.parametrize("issuer", [
    "http://localhost", "http://127.0.0.1:5000", "http://[::1]:8080", "https://login.example.cn",
])
def test_d01_issuer_plain_http_only_on_this_machine(tmp_path, issuer):
    """D01: http issuers are accepted for the local machine; https anywhere."""
    settings = load_settings(config_file=_toml(tmp_path, ""), environ={"IDP_ISSUER": issuer})
    assert settings.issuer == issuer
    assert settings.uses_tls is issuer.startswith("https")


def test_d10_boundaries_are_accepted(tmp_path):
    """D10: the limits themselves are allowed (code_ttl 60, idle 1800, secret of 32)."""
    settings = load_settings(config_file=_toml(tmp_path, ""), environ={
        "IDP_CODE_TTL": "60", "IDP_SESSION_IDLE_SECONDS": "1800", "IDP_SECRET_KEY": "k" * 32,
        "IDP_STORE": "redis", "IDP_REDIS_URL": "redis://127.0.0.1:6379/0",
    })
    assert (settings.code_ttl, settings.session_idle_seconds) == (60, 1800)
    assert settings.store == "redis"


def test_d10_unknown_override_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="nonsense"):
        load_settings({"nonsense": 1}, config_file=_toml(tmp_path, ""), environ={})


# --- the console command ----------------------------------------------------------------------

def _clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(extra)
    return env


CONSOLE_CASES: list[tuple[str, dict[str, str], str]] = [
    ("text-for-int", {"IDP_SMS_CODE_TTL": "abc"}, "IDP_SMS_CODE_TTL"),
    ("unknown-variable", {"IDP_SMS_CODE_TLL": "300"}, "IDP_SMS_CODE_TLL"),
    # errors found while building the app (the gateway), not by load_settings alone
    ("http-gateway-without-url", {"IDP_SMS_GATEWAY": "idp.gateways.sms:HttpSmsGateway"},
     "sms_http_url"),
    ("gateway-class-missing", {"IDP_SMS_GATEWAY": "idp.gateways.sms:NoSuchGateway"},
     "sms_gateway"),
]


@pytest.mark.parametrize(("extra", "named"), [c[1:] for c in CONSOLE_CASES],
                         ids=[c[0] for c in CONSOLE_CASES])
def test_d10_console_command_exits_2_naming_the_bad_key(tmp_path, extra, named):
    """D10: `idp` with a bad setting prints one clear line naming the key and exits with 2
    (no traceback)."""
    result = subprocess.run(
        [str(IDP_COMMAND), "keys", "list"], cwd=tmp_path, env=_clean_environ(**extra),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_d10_console_command_reads_config_file_from_cwd(tmp_path):
    """D10: config/idp.toml in the working directory is read; a bad key in it is named."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "idp.toml").write_text("[idp]\ncode_ttl = 300\n", encoding="utf-8")
    result = subprocess.run(
        [str(IDP_COMMAND), "keys", "list"], cwd=tmp_path, env=_clean_environ(),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "code_ttl" in result.stderr


def test_d02_missing_trust_file_stops_create_app_naming_the_key(tmp_path):
    """D02: ``ukey_trust`` naming a file that is not there stops start-up with the key named."""
    from idp import create_app

    with pytest.raises(ConfigError) as info:
        create_app({"instance_path": str(tmp_path), "secret_key": "s" * 40,
                    "ukey_trust": str(tmp_path / "nowhere.toml")})
    assert "ukey_trust" in str(info.value) and "nowhere.toml" in str(info.value)
