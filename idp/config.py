"""Typed settings: built-in defaults < ``config/idp.toml`` < ``IDP_*`` environment variables.

Settings are read once, validated, and frozen: a bad value stops the process at start-up with a
message that names the key, instead of failing later in the middle of somebody's login. This is
the only module that reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

ENV_PREFIX = "IDP_"
REVIEW_PLATFORMS = ("repair_fund", "supervision")
REVIEW_KINDS = ("enterprise", "enterprise_unqualified", "committee")


class ConfigError(ValueError):
    """A setting is missing, unknown or has a value of the wrong kind; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the provider. Field names are the TOML keys; ``IDP_<NAME>`` overrides."""

    # --- identity of this provider -------------------------------------------------------
    issuer: str = "http://localhost:5000"
    instance_path: str = "instance"
    secret_key: str = ""  # empty: generated once into <instance>/secret_key (development)
    key_passphrase: str = ""  # encrypts signing keys at rest; empty: derived from secret_key

    # --- storage --------------------------------------------------------------------------
    database_url: str = ""  # empty: SQLite file <instance>/idp.sqlite3
    redis_url: str = ""  # empty: shared state lives in the database
    redis_prefix: str = "idp:"  # key prefix, so that several deployments can share a Redis
    store: str = "auto"  # auto | database | redis

    # --- carrier check of name + phone (手机二要素, S12) ------------------------------------
    phone_verifier: str = "idp.gateways.phone:SandboxPhoneVerifier"
    phone_sandbox_file: str = "config/phone-sandbox.toml"  # relative: to the working directory
    phone_http_url: str = ""
    phone_http_token: str = ""
    phone_http_timeout: float = 5.0
    phone_http_hash: str = ""  # "" (plain) | "md5" | "sha256": how name and phone are sent

    # --- SMS -------------------------------------------------------------------------------
    sms_gateway: str = "idp.gateways.sms:ConsoleSmsGateway"
    sms_outbox: str = ""  # empty: <instance>/sms-outbox.jsonl
    sms_http_url: str = ""
    sms_http_token: str = ""
    sms_http_template: str = "SMS_LOGIN_CODE"
    sms_http_timeout: float = 5.0
    sms_sign_name: str = "统一认证登录平台"
    sms_code_ttl: int = 300
    sms_resend_interval: int = 60
    sms_max_attempts: int = 5
    sms_phone_hourly_limit: int = 5
    sms_phone_daily_limit: int = 10
    sms_ip_hourly_limit: int = 30
    sms_ip_daily_limit: int = 100

    # --- passwords (argon2id) and lockout --------------------------------------------------
    password_time_cost: int = 3
    password_memory_cost: int = 65536  # KiB
    password_parallelism: int = 4
    lockout_threshold: int = 5
    lockout_seconds: int = 900

    # --- SSO session -------------------------------------------------------------------------
    session_cookie_name: str = "idp_session"
    session_idle_seconds: int = 1800
    session_max_seconds: int = 43200

    # --- tokens --------------------------------------------------------------------------------
    signing_alg: str = "ES256"  # default for clients that do not ask for RS256
    code_ttl: int = 60
    access_token_ttl: int = 900
    id_token_ttl: int = 900
    refresh_token_ttl: int = 28800
    private_key_jwt_leeway: int = 60
    # OpenID Connect Back-Channel Logout 1.0: seconds to wait for a relying party's answer
    # (logout itself never waits longer), and how many times an unanswered notice is sent.
    backchannel_logout_timeout: float = 2.0
    backchannel_logout_attempts: int = 5

    # --- web --------------------------------------------------------------------------------------
    max_content_length: int = 1_048_576
    trusted_hosts: tuple[str, ...] = field(default_factory=tuple)
    # Reverse proxies (their own addresses) whose X-Forwarded-For / -Proto are believed, and
    # whose forwarded client certificate (client_cert_header, or RFC 9440 Client-Cert) is read.
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    client_cert_header: str = "X-SSL-Client-Cert"

    # --- UKey (enterprise X.509 certificates) -----------------------------------------------
    ukey_trust: str = ""  # TOML file of trusted CAs (idp/pki/trust.py); empty: UKey login off
    ukey_clock_skew: int = 300  # seconds of tolerance on validity periods
    ukey_revocation_timeout: float = 5.0  # seconds for one CRL download or OCSP request
    ukey_challenge_ttl: int = 120  # seconds a signed-challenge nonce lives
    ukey_client_tool_url: str = "https://www.sheca.com/"  # where 「客户端工具」 (协卡助手) is got

    # --- registration and review (T02) ---------------------------------------------------------
    # "<platform>:<kind>" pairs whose registrations the district centre reviews before anything
    # becomes usable; every other registration is immediate (Shanghai: S06). Kinds: enterprise,
    # enterprise_unqualified (原来是否有资质证书 = 否), committee. Committee changes and
    # associations (T04, T08) are always reviewed.
    review_required: tuple[str, ...] = (
        "supervision:enterprise_unqualified", "repair_fund:committee", "supervision:committee")
    legacy_bind_max_tries: int = 5  # wrong OTP codes or keys before binding is locked

    # --- embedded TLS (`idp serve`) ------------------------------------------------------------
    tls_cert: str = ""  # PEM chain; with tls_key, `idp serve` speaks HTTPS itself
    tls_key: str = ""
    tls_client_ca: str = ""  # CA bundle asked for client certificates; empty: from ukey_trust

    # ------------------------------------------------------------------------------------------
    @property
    def instance_dir(self) -> Path:
        return Path(self.instance_path).resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.instance_dir / 'idp.sqlite3'}"

    @property
    def resolved_sms_outbox(self) -> Path:
        return Path(self.sms_outbox) if self.sms_outbox else self.instance_dir / "sms-outbox.jsonl"

    @property
    def resolved_phone_sandbox_file(self) -> Path:
        """Relative: from the working directory if there, else from the source checkout (so
        that ``idp serve`` started elsewhere, as the tests do, finds ``config/``)."""
        path = Path(self.phone_sandbox_file)
        if path.is_absolute() or path.exists():
            return path
        return Path(__file__).resolve().parents[1] / path

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.issuer).scheme == "https"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed, validated like the original."""
        return _validated(dataclasses.replace(self, **changes))


_TYPES: dict[str, Any] = get_type_hints(Settings)
_NAMES = {f.name for f in fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a TOML or environment value into the field's type, or say which key is wrong."""
    kind = _TYPES[name]
    where = f"{source} key '{name}'" if source != "environment" else f"{ENV_PREFIX}{name.upper()}"
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool | float):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind == tuple[str, ...]:
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except ValueError:
        expected = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
        wanted = expected.get(kind, "a list of strings")
        raise ConfigError(f"{where}: expected {wanted}, got {value!r}") from None


def _validated(settings: Settings) -> Settings:
    """Cross-field checks that a type alone cannot express."""
    parts = urlsplit(settings.issuer)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"issuer: must be an http(s) URL without query or fragment, got "
                          f"{settings.issuer!r}")
    if parts.scheme == "http" and parts.hostname not in {"localhost", "127.0.0.1", "::1"}:
        raise ConfigError("issuer: plain http is allowed only for localhost (RFC 9700 §2.6)")
    if settings.store not in {"auto", "database", "redis"}:
        raise ConfigError(f"store: expected auto, database or redis, got {settings.store!r}")
    if settings.store == "redis" and not settings.redis_url:
        raise ConfigError("store: 'redis' needs redis_url")
    if settings.signing_alg not in {"ES256", "RS256"}:
        raise ConfigError(f"signing_alg: expected ES256 or RS256, got {settings.signing_alg!r}")
    if settings.secret_key and len(settings.secret_key) < 32:
        raise ConfigError("secret_key: must be at least 32 characters")
    if ":" not in settings.sms_gateway:
        raise ConfigError("sms_gateway: expected 'module:ClassName'")
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            raise ConfigError(f"trusted_proxies: {proxy!r} is not an IP address") from None
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("tls_key: tls_cert and tls_key go together")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,63}", settings.client_cert_header):
        raise ConfigError("client_cert_header: must be an HTTP header name")
    if settings.sms_gateway.endswith(":HttpSmsGateway") and not settings.sms_http_url:
        raise ConfigError("sms_http_url: required when sms_gateway is HttpSmsGateway")
    positive = [
        "sms_code_ttl", "sms_resend_interval", "sms_max_attempts", "sms_phone_hourly_limit",
        "sms_phone_daily_limit", "sms_ip_hourly_limit", "sms_ip_daily_limit",
        "password_time_cost", "password_memory_cost", "password_parallelism",
        "lockout_threshold", "lockout_seconds", "session_idle_seconds", "session_max_seconds",
        "code_ttl", "access_token_ttl", "id_token_ttl", "refresh_token_ttl", "max_content_length",
        "ukey_challenge_ttl", "ukey_revocation_timeout", "legacy_bind_max_tries",
        "backchannel_logout_timeout", "backchannel_logout_attempts",
    ]
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name}: must be greater than 0")
    for entry in settings.review_required:
        platform, _, kind = entry.partition(":")
        if platform not in REVIEW_PLATFORMS or kind not in REVIEW_KINDS:
            raise ConfigError(f"review_required: {entry!r} is not '<platform>:<kind>' with "
                              f"platform in {REVIEW_PLATFORMS} and kind in {REVIEW_KINDS}")
    if settings.code_ttl > 60:
        raise ConfigError("code_ttl: authorization codes live at most 60 seconds")
    if not 0 <= settings.ukey_clock_skew <= 900:
        raise ConfigError("ukey_clock_skew: expected 0 to 900 seconds")
    if settings.sms_http_timeout <= 0:
        raise ConfigError("sms_http_timeout: must be greater than 0")
    if ":" not in settings.phone_verifier:
        raise ConfigError("phone_verifier: expected 'module:ClassName'")
    if settings.phone_verifier.endswith(":HttpPhoneVerifier") and not settings.phone_http_url:
        raise ConfigError("phone_http_url: required when phone_verifier is HttpPhoneVerifier")
    if settings.phone_http_timeout <= 0:
        raise ConfigError("phone_http_timeout: must be greater than 0")
    if settings.phone_http_hash not in ("", "md5", "sha256"):
        raise ConfigError("phone_http_hash: expected '', 'md5' or 'sha256'")
    if settings.session_idle_seconds > 1800:
        raise ConfigError("session_idle_seconds: 等保 level 3 allows at most 1800 seconds")
    if settings.password_memory_cost < 8 * settings.password_parallelism:
        raise ConfigError("password_memory_cost: must be at least 8 × password_parallelism KiB")
    return settings


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from the three layers, then apply ``overrides`` (used by tests).

    ``config_file`` defaults to ``$IDP_CONFIG`` or ``config/idp.toml`` when it exists.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    explicit = config_file or env.get("IDP_CONFIG")
    path = Path(explicit or "config/idp.toml")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        table = data.get("idp", data)
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [idp] must be a table")
        for key, value in table.items():
            if key not in _NAMES:
                raise ConfigError(f"{path} key '{key}': unknown setting")
            values[key] = _coerce(key, value, str(path))
    elif explicit:
        raise ConfigError(f"IDP_CONFIG: configuration file {path} not found")

    for env_key, raw in env.items():
        if not env_key.startswith(ENV_PREFIX) or env_key == "IDP_CONFIG":
            continue
        name = env_key[len(ENV_PREFIX):].lower()
        if name not in _NAMES:
            raise ConfigError(f"{env_key}: unknown setting")
        values[name] = _coerce(name, raw, "environment")

    for key, value in (overrides or {}).items():
        if key not in _NAMES:
            raise ConfigError(f"override '{key}': unknown setting")
        values[key] = value

    return _validated(Settings(**values))


def ensure_secret_key(settings: Settings) -> Settings:
    """Development convenience: keep a generated secret in the instance folder.

    Production sets ``IDP_SECRET_KEY`` (all processes must share it); a missing key there would
    log everybody out on every restart, so the generated one is persisted with mode 0600.
    """
    if settings.secret_key:
        return settings
    path = settings.instance_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return settings.replace(secret_key=path.read_text().strip())
