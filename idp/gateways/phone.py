"""The carrier check of name + phone (手机二要素校验, S12/S13): a protocol, two implementations.

A provider compares the name on record for a mobile number with the name typed in the form and
answers one of a few outcomes (DOMAIN.md). They are modelled as values, not exceptions: the
carrier's answer, a busy provider or a broken connection are all ordinary results that the
caller turns into the message beside the field (``message_for``), and a login or a 【保存】 is never
turned into a 500 by an outside service.

``SandboxPhoneVerifier`` answers from a TOML file of (name, phone, outcome) pairs, for
development, tests and demos. ``HttpPhoneVerifier`` posts to the provider's HTTP API in
production, optionally with hashed inputs so that the provider never sees them in clear.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import tomllib
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from idp.config import ConfigError, Settings
from idp.errors import FieldError
from idp.validators import normalize_name

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"  # the carrier has another name for this number
    NO_RECORD = "no_record"  # the carrier has no real-name record for this number
    INVALID_INPUT = "invalid_input"
    UNSUPPORTED = "unsupported"  # number range not covered by the provider
    RATE_LIMITED = "rate_limited"
    PROVIDER_ERROR = "provider_error"


# Answers that cost money with the usual providers: the carrier was actually asked.
BILLABLE_BY_DEFAULT = frozenset({Outcome.MATCH, Outcome.MISMATCH, Outcome.NO_RECORD})

# Answers about the number alone: the name typed does not change them.
_NUMBER_OUTCOMES = frozenset({Outcome.NO_RECORD, Outcome.UNSUPPORTED, Outcome.RATE_LIMITED,
                              Outcome.PROVIDER_ERROR})

_OUTCOMES = {outcome.value: outcome for outcome in Outcome}

CARRIERS = ("中国移动", "中国联通", "中国电信", "中国广电")


@dataclass(frozen=True)
class Verification:
    """One answer. ``request_id`` is the provider's (kept in the audit trail, never the inputs);
    ``billable`` says whether the call is charged, for the monthly reconciliation."""

    outcome: Outcome
    carrier: str | None
    request_id: str
    billable: bool

    @property
    def matched(self) -> bool:
        return self.outcome is Outcome.MATCH


MESSAGES: dict[Outcome, str] = {
    Outcome.MISMATCH: "您填写的身份信息与手机号认证失败，请确认信息是否填写正确。",  # S13
    Outcome.NO_RECORD: "运营商未查到该手机号的实名信息，请确认手机号码是否填写正确。",
    Outcome.INVALID_INPUT: "姓名或手机号格式不正确，请检查后重新输入。",
    Outcome.UNSUPPORTED: "暂不支持该号段手机号的实名认证，请更换手机号码。",
    Outcome.RATE_LIMITED: "手机号实名认证请求过于频繁，请稍后再试。",
    Outcome.PROVIDER_ERROR: "手机号实名认证服务暂时不可用，请稍后再试。",
}


def message_for(verification: Verification) -> str | None:
    """The text shown beside the field for a failed check; None when the check matched."""
    if verification.matched:
        return None
    return MESSAGES[verification.outcome]


class PhoneVerifier(Protocol):
    def verify(self, name: str, phone: str) -> Verification:
        """Ask the carrier whether ``name`` is the real name on record for ``phone``.

        Never raises for the carrier's answers or the provider's failures: the outcome says so.
        """


# --- input rules and carriers --------------------------------------------------------------------

_PHONE_RE = re.compile(r"1[0-9]{10}", re.ASCII)


def input_is_valid(name: str, phone: str) -> bool:
    """What any provider refuses before asking a carrier: the phone must be 11 ASCII digits
    starting with 1, the name a person's name (the one rule of ``idp.validators``, at most 50
    characters, already normalised). Checked locally so that garbage is never sent, nor paid."""
    if not _PHONE_RE.fullmatch(phone or ""):
        return False
    try:
        return normalize_name(name) == name
    except FieldError:
        return False


_PREFIXES: dict[str, tuple[str, ...]] = {
    "中国移动": ("134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157",
                 "158", "159", "178", "182", "183", "184", "187", "188", "198"),
    "中国联通": ("130", "131", "132", "145", "155", "156", "166", "175", "176", "185", "186"),
    "中国电信": ("133", "149", "153", "173", "177", "180", "181", "189", "190", "191", "193",
                 "199"),
    "中国广电": ("192",),
}
_CARRIER_OF_PREFIX = {prefix: carrier for carrier, prefixes in _PREFIXES.items()
                      for prefix in prefixes}


def carrier_by_prefix(phone: str) -> str | None:
    """A rough guess from the first three digits (ported numbers keep their prefix)."""
    return _CARRIER_OF_PREFIX.get(phone[:3]) if _PHONE_RE.fullmatch(phone or "") else None


def _local_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


# --- sandbox -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pair:
    outcome: Outcome
    carrier: str | None
    billable: bool


class SandboxPhoneVerifier:
    """Answers from ``phone_sandbox_file``: ``[[pair]]`` tables with ``name``, ``phone``,
    ``outcome`` and optionally ``carrier`` and ``billable``.

    An exact (name, phone) pair gives its outcome. A listed phone with another name gives
    MISMATCH, as a carrier would, unless the phone's outcome is about the number alone (no
    record, unsupported range, rate limited, provider error), which any name gets. Malformed
    input is INVALID_INPUT and an unlisted phone NO_RECORD. The file is read once, and a broken
    file stops start-up instead of failing on somebody's 【保存】.
    """

    def __init__(self, settings: Settings) -> None:
        self.path = settings.resolved_phone_sandbox_file
        self.pairs: dict[tuple[str, str], _Pair] = {}
        self.number_outcomes: dict[str, _Pair] = {}
        self._load()

    def _load(self) -> None:
        where = f"phone_sandbox_file {self.path}"
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: file not found") from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: not valid TOML: {exc}") from None
        unknown = set(data) - {"pair"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected [[pair]]")
        entries = data.get("pair", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{where}: 'pair' must be an array of tables ([[pair]])")
        for number, entry in enumerate(entries, start=1):
            self._add(f"{where} pair #{number}", entry)

    def _add(self, where: str, entry: dict[str, Any]) -> None:
        unknown = set(entry) - {"name", "phone", "outcome", "carrier", "billable"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        name, phone, value = entry.get("name"), entry.get("phone"), entry.get("outcome")
        if not isinstance(name, str) or not isinstance(phone, str):
            raise ConfigError(f"{where}: 'name' and 'phone' are required strings")
        if not input_is_valid(name, phone):
            raise ConfigError(f"{where}: name or phone is malformed (an 11-digit mobile number "
                              f"starting with 1 and a person's name are expected)")
        if not isinstance(value, str) or value not in _OUTCOMES:
            raise ConfigError(f"{where}: outcome {value!r} is not one of {sorted(_OUTCOMES)}")
        outcome = _OUTCOMES[value]
        carrier = entry.get("carrier", carrier_by_prefix(phone))
        if carrier is not None and carrier not in CARRIERS:
            raise ConfigError(f"{where}: carrier {carrier!r} is not one of {list(CARRIERS)}")
        billable = entry.get("billable", outcome in BILLABLE_BY_DEFAULT)
        if not isinstance(billable, bool):
            raise ConfigError(f"{where}: 'billable' must be true or false")
        if (name, phone) in self.pairs:
            raise ConfigError(f"{where}: the pair ({name}, {phone}) is listed twice")
        pair = _Pair(outcome, carrier, billable)
        self.pairs[(name, phone)] = pair
        if outcome in _NUMBER_OUTCOMES:
            self.number_outcomes[phone] = pair
        else:
            self.number_outcomes.setdefault(phone, _Pair(
                Outcome.MISMATCH, carrier, Outcome.MISMATCH in BILLABLE_BY_DEFAULT))

    def verify(self, name: str, phone: str) -> Verification:
        if not input_is_valid(name, phone):
            return Verification(Outcome.INVALID_INPUT, None, _local_id("sandbox"), False)
        pair = self.pairs.get((name, phone)) or self.number_outcomes.get(phone)
        if pair is None:
            return Verification(Outcome.NO_RECORD, carrier_by_prefix(phone),
                                _local_id("sandbox"), Outcome.NO_RECORD in BILLABLE_BY_DEFAULT)
        return Verification(pair.outcome, pair.carrier, _local_id("sandbox"), pair.billable)


# --- HTTP provider -------------------------------------------------------------------------------

_PROVIDER_RESULTS = frozenset({Outcome.MATCH, Outcome.MISMATCH, Outcome.NO_RECORD,
                               Outcome.INVALID_INPUT, Outcome.UNSUPPORTED})


class HttpPhoneVerifier:
    """POST ``{"name", "phone", "hash"}`` as JSON (bearer token if configured) and read
    ``{"result", "carrier", "request_id", "billable"}``.

    With ``phone_http_hash`` = md5 or sha256, name and phone travel as lowercase hex digests of
    their UTF-8 and ``hash`` names the algorithm; otherwise ``hash`` is "" and they are plain.
    HTTP 429 is RATE_LIMITED; every other failure (5xx, other statuses, timeout, connection
    error, a body that is not the expected JSON) is PROVIDER_ERROR with a warning in the log.
    The log names only the request id and the status, never the name or the phone.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.phone_http_url:
            raise ConfigError("phone_http_url: required by HttpPhoneVerifier")
        self.url = settings.phone_http_url
        self.token = settings.phone_http_token
        self.timeout = settings.phone_http_timeout
        self.hash = settings.phone_http_hash
        self.session = requests.Session()

    def _encode(self, value: str) -> str:
        if not self.hash:
            return value
        # The provider's wire format, not a protection of ours: weak md5 is its choice.
        return hashlib.new(self.hash, value.encode("utf-8"), usedforsecurity=False).hexdigest()

    def verify(self, name: str, phone: str) -> Verification:
        if not input_is_valid(name, phone):
            return Verification(Outcome.INVALID_INPUT, None, _local_id("local"), False)
        body = {"name": self._encode(name), "phone": self._encode(phone), "hash": self.hash}
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        local_id = _local_id("local")
        try:
            response = self.session.post(self.url, json=body, headers=headers,
                                         timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            log.warning("phone verifier %s: %s", local_id, type(exc).__name__)
            return Verification(Outcome.PROVIDER_ERROR, None, local_id, False)
        if response.status_code == 429:
            log.warning("phone verifier %s: rate limited (HTTP 429)", local_id)
            return Verification(Outcome.RATE_LIMITED, None, local_id, False)
        if response.status_code != 200:
            log.warning("phone verifier %s: HTTP %d", local_id, response.status_code)
            return Verification(Outcome.PROVIDER_ERROR, None, local_id, False)
        return self._parse(response, local_id)

    def _parse(self, response: requests.Response, local_id: str) -> Verification:
        try:
            data = response.json()
        except ValueError:
            log.warning("phone verifier %s: answer is not JSON", local_id)
            return Verification(Outcome.PROVIDER_ERROR, None, local_id, False)
        if not isinstance(data, dict):
            log.warning("phone verifier %s: answer is not a JSON object", local_id)
            return Verification(Outcome.PROVIDER_ERROR, None, local_id, False)
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 128:
            request_id = local_id
        result = data.get("result")
        outcome = _OUTCOMES.get(result) if isinstance(result, str) else None
        if outcome is None or outcome not in _PROVIDER_RESULTS:
            log.warning("phone verifier %s: unknown result", request_id)
            return Verification(Outcome.PROVIDER_ERROR, None, request_id, False)
        carrier = data.get("carrier")
        billable = data.get("billable")
        return Verification(
            outcome,
            carrier if isinstance(carrier, str) and 0 < len(carrier) <= 32 else None,
            request_id,
            billable if isinstance(billable, bool) else outcome in BILLABLE_BY_DEFAULT,
        )
