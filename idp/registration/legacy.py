"""Accounts of the fund system that existed before the unified login (S04 「是」).

Two halves:

* :func:`import_rows` — ``idp legacy import FILE.csv`` loads the fund system's enterprise
  accounts. Every row is judged before anything is written (format, duplicates inside the file,
  conflicts with what the database already holds), so a bad row is reported and never leaves
  half an enterprise behind; the good rows are written in one transaction. Re-running the same
  file updates (name, OTP secret, key) and never duplicates: the legacy id is the key.
* :func:`bind` — an enterprise whose UKey certificate names a USCC the fund system knows proves
  that it is that fund-system account (the current code of its OTP token, or its key) and gets
  its UKey account, bound to the existing enterprise with everything that hangs off it.

The OTP secret must be read back to compute codes, so it is sealed (AES-GCM, ``idp.security``);
the key is only ever compared, so it is kept as an argon2id hash. Neither appears in a report,
an audit event or a message.
"""

from __future__ import annotations

import csv
import hmac
import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pyotp
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.models import Account, Identity
from idp.auth.password import Passwords
from idp.db import table_of, utcnow
from idp.errors import FieldError, IdpError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.registration.models import LegacyAccount
from idp.registration.pending import PendingUkey, log_in
from idp.security import seal, unseal
from idp.store import Store, get_store
from idp.validators import DISTRICTS, normalize_name, normalize_uscc, org_code_of

HEADER = ("uscc", "name", "legacy_id", "totp_secret", "key")
SEAL_PURPOSE = "legacy-totp"
BIND_PLATFORM = "repair_fund"  # the fund system is where these accounts come from
BIND_ROLE = "enterprise_admin"

LEGACY_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
BASE32_RE = re.compile(r"[A-Z2-7]+")
OTP_RE = re.compile(r"[0-9]{6}")
NAME_MAX = 100  # the UKey account carries the name too (Account.name, String(100))
SECRET_MIN, SECRET_MAX = 16, 64  # base32 characters (64: the sealed value fits its column)
KEY_MIN, KEY_MAX = 6, 128

# --- messages (shown beside the fields, or as the reason of a rejected row) ----------------
MSG_NAME = f"企业名称应为1–{NAME_MAX}个字符的文字、数字或括号"
MSG_LEGACY_ID = "维修资金系统账号应为1–64位字母、数字或 _ . -"
MSG_LEGACY_ID_REQUIRED = "请输入维修资金系统账号"
MSG_SECRET_FORMAT = f"OTP密钥应为{SECRET_MIN}–{SECRET_MAX}位base32字符（A–Z、2–7）"
MSG_SECRET_WEAK = "OTP密钥过短：解码后至少112位（base32至少23个字符）"
MSG_KEY_LENGTH = f"密钥应为{KEY_MIN}–{KEY_MAX}个字符"
MSG_KEY_CHARS = "密钥不能包含控制字符"
MSG_NO_CREDENTIAL = "OTP密钥和密钥至少填写一项"
MSG_COLUMNS = f"字段数量不正确，应为{len(HEADER)}个"
MSG_OTP_FORMAT = "请输入6位数字动态口令"
MSG_KEY_REQUIRED = "请输入密钥"
MSG_WRONG_OTP = "维修资金系统账号或动态口令错误"
MSG_WRONG_KEY = "维修资金系统账号或密钥错误"
MSG_TRIES_LEFT = "，还可尝试{left}次"
MSG_OTP_USED = "该动态口令已使用过，请等待动态口令更新后输入新的动态口令"
MSG_LOCKED = "绑定尝试次数过多，已锁定，请{minutes}分钟后再试。"
MSG_ALREADY_BOUND = "该企业已绑定UKey账号，请直接使用UKey登录。"
MSG_DISABLED = "该企业账号已停用，请联系所在区中心。"


class ImportFileError(IdpError):
    """The file as a whole cannot be read (not UTF-8, not CSV, wrong header): nothing imported."""


@dataclass(frozen=True)
class Rejection:
    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def summary(self) -> str:
        return (f"imported {self.imported}, updated {self.updated}, "
                f"rejected {len(self.rejected)}")

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "updated": self.updated,
                "rejected": [{"line": r.line, "field": r.field, "reason": r.reason}
                             for r in self.rejected]}


@dataclass(frozen=True)
class _Row:
    line: int
    uscc: str
    name: str
    legacy_id: str
    secret: str | None
    key: str | None

    @property
    def org_code(self) -> str:
        return org_code_of(self.uscc)


# --- field rules shared by the import and the binding page ----------------------------------

def normalize_legacy_id(raw: str | None, field_name: str = "legacy_id") -> str:
    text = (raw or "").strip()
    if not text:
        raise FieldError(field_name, MSG_LEGACY_ID_REQUIRED)
    if not LEGACY_ID_RE.fullmatch(text):
        raise FieldError(field_name, MSG_LEGACY_ID)
    return text


def normalize_totp_secret(raw: str | None, field_name: str = "totp_secret") -> str:
    """Base32 as authenticator apps show it: blanks and ``=`` padding dropped, upper-cased.

    pyotp refuses seeds under 112 bits (NIST SP 800-63B); so do we, at import, rather than
    failing at the first binding."""
    text = "".join((raw or "").split()).upper().rstrip("=")
    if not SECRET_MIN <= len(text) <= SECRET_MAX or not BASE32_RE.fullmatch(text):
        raise FieldError(field_name, MSG_SECRET_FORMAT)
    try:
        pyotp.TOTP(text).byte_secret()
    except ValueError:  # includes binascii.Error: a length that is no whole base32 group
        raise FieldError(field_name, MSG_SECRET_WEAK) from None
    return text


def normalize_key(raw: str | None, field_name: str = "key") -> str:
    """A key as the fund system issued it: surrounding blanks dropped, nothing else changed."""
    text = (raw or "").strip()
    if not KEY_MIN <= len(text) <= KEY_MAX:
        raise FieldError(field_name, MSG_KEY_LENGTH)
    if not text.isprintable():
        raise FieldError(field_name, MSG_KEY_CHARS)
    return text


def normalize_otp_code(raw: str | None, field_name: str = "otp_code") -> str:
    """Six ASCII digits; full-width digits are refused, not converted (what was typed is what
    is checked)."""
    text = (raw or "").strip()
    if not OTP_RE.fullmatch(text) or not text.isascii():
        raise FieldError(field_name, MSG_OTP_FORMAT)
    return text


# --- import -------------------------------------------------------------------------------------

def _lines(reader: Iterable[str]) -> Iterator[str]:
    """The file's lines with a UTF-8 byte-order mark (as Excel writes it) dropped."""
    first = True
    for line in reader:
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        yield line


def _parse(reader: Iterable[str], report: ImportReport) -> list[_Row]:
    """Every row judged on its own and against the rows before it; the bad ones reported."""
    rows = csv.reader(_lines(reader), strict=True)
    try:
        header = next(rows, None)
        if header is None:
            raise ImportFileError("the file is empty (expected the header "
                                  f"{','.join(HEADER)})")
        names = [h.strip().lower() for h in header]
        if sorted(names) != sorted(HEADER):
            raise ImportFileError(f"line 1: the header must be {','.join(HEADER)}")
        index = {name: names.index(name) for name in HEADER}
        parsed: list[_Row] = []
        seen: dict[tuple[str, str], int] = {}
        for values in rows:
            line = rows.line_num
            if not values or all(not v.strip() for v in values):
                continue  # blank lines between records
            if len(values) != len(HEADER):
                report.rejected.append(Rejection(line, "", MSG_COLUMNS))
                continue
            raw = {name: values[i] for name, i in index.items()}
            try:
                row = _row(line, raw)
            except FieldError as exc:
                report.rejected.append(Rejection(line, exc.field, exc.message))
                continue
            duplicate = _duplicate(row, seen)
            if duplicate is not None:
                report.rejected.append(duplicate)
                continue
            parsed.append(row)
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8 text") from None
    except csv.Error as exc:
        raise ImportFileError(f"line {rows.line_num}: not valid CSV ({exc})") from None
    return parsed


def _row(line: int, raw: dict[str, str]) -> _Row:
    uscc = normalize_uscc(raw["uscc"], "uscc")
    name = normalize_name(raw["name"], "name", NAME_MAX, MSG_NAME, organisation=True)
    legacy_id = normalize_legacy_id(raw["legacy_id"])
    secret = normalize_totp_secret(raw["totp_secret"]) if raw["totp_secret"].strip() else None
    key = normalize_key(raw["key"]) if raw["key"].strip() else None
    if secret is None and key is None:
        raise FieldError("totp_secret", MSG_NO_CREDENTIAL)
    return _Row(line, uscc, name, legacy_id, secret, key)


def _duplicate(row: _Row, seen: dict[tuple[str, str], int]) -> Rejection | None:
    """The same legacy id, USCC or organisation code twice in one file: the later row is
    refused (the file cannot say which one is right; the report shows both line numbers)."""
    labels = {"legacy_id": "维修资金系统账号", "uscc": "统一社会信用代码",
              "org_code": "组织机构代码"}
    keys = {"legacy_id": row.legacy_id, "uscc": row.uscc, "org_code": row.org_code}
    for what, value in keys.items():
        earlier = seen.get((what, value))
        if earlier is not None:
            return Rejection(row.line, what if what != "org_code" else "uscc",
                             f"{labels[what]}与第{earlier}行重复")
    for what, value in keys.items():
        seen[(what, value)] = row.line
    return None


def _conflict(row: _Row) -> tuple[Rejection | None, LegacyAccount | None, Organisation | None]:
    """What the database says about the row: a reason to refuse it, or the legacy account to
    update and/or the enterprise to attach it to."""
    by_id = db.session.scalar(sa.select(LegacyAccount).where(
        LegacyAccount.legacy_id == row.legacy_id))
    if by_id is not None and by_id.uscc != row.uscc:
        return Rejection(row.line, "legacy_id",
                         "该维修资金系统账号已对应其他统一社会信用代码"), None, None
    by_uscc = db.session.scalar(sa.select(LegacyAccount).where(LegacyAccount.uscc == row.uscc))
    if by_uscc is not None and by_uscc.legacy_id != row.legacy_id:
        return Rejection(row.line, "uscc",
                         "该统一社会信用代码已对应其他维修资金系统账号"), None, None
    org = db.session.scalar(sa.select(Organisation).where(Organisation.uscc == row.uscc))
    if org is not None and org.type != "enterprise":
        return Rejection(row.line, "uscc",
                         "该统一社会信用代码已被其他类型的组织使用"), None, None
    # DOMAIN.md / S07: one enterprise per organisation code (USCC[8:17]), also for organisations
    # written before org_code was filled in.
    same_code = db.session.scalar(sa.select(Organisation.id).where(
        sa.or_(Organisation.org_code == row.org_code,
               sa.func.substr(Organisation.uscc, 9, 9) == row.org_code),
        sa.or_(Organisation.uscc.is_(None), Organisation.uscc != row.uscc)).limit(1))
    if same_code is not None:
        return Rejection(row.line, "uscc",
                         "组织机构代码（统一社会信用代码第9–17位）已属于其他企业"), None, None
    if by_id is not None and org is not None and by_id.organisation_id != org.id:
        return Rejection(row.line, "uscc", "该账号对应的企业与已有数据不一致"), None, None
    return None, by_id, org


def _rename(legacy: LegacyAccount, name: str) -> None:
    """The fund system renamed the enterprise. The enterprise (and its UKey account) follow
    as long as their name is still the one the import gave them; a name the enterprise keeps
    itself (registered on its own, renamed since) is left alone."""
    old = legacy.name
    legacy.name = name
    org = db.session.get(Organisation, legacy.organisation_id)
    if org is not None and org.name == old:
        org.name = name
        db.session.execute(sa.update(Account).where(
            Account.organisation_id == org.id, Account.kind == "ukey", Account.name == old)
            .values(name=name))


def import_rows(reader: Iterable[str]) -> ImportReport:
    """Load the fund system's accounts from CSV text (``uscc,name,legacy_id,totp_secret,key``).

    ``reader`` yields the file's lines (an open text file, ``io.StringIO``). Rows are judged
    first; only then are the good ones written, all in one transaction that this function
    commits together with the ``legacy.import`` audit event. ``ImportFileError`` when the file
    as a whole is unreadable (nothing is written then)."""
    settings = current_app.config["IDP"]
    passwords: Passwords = current_app.extensions["idp.passwords"]
    report = ImportReport()
    rows = _parse(reader, report)
    planned: list[tuple[_Row, LegacyAccount | None, Organisation | None]] = []
    for row in rows:
        rejection, legacy, org = _conflict(row)
        if rejection is not None:
            report.rejected.append(rejection)
        else:
            planned.append((row, legacy, org))
    try:
        for row, legacy, org in planned:
            sealed = seal(settings.key_passphrase, SEAL_PURPOSE, row.secret) if row.secret else None
            key_hash = passwords.hash(row.key) if row.key else None
            if legacy is not None:
                _rename(legacy, row.name)
                legacy.totp_secret = sealed
                legacy.key_hash = key_hash
                report.updated += 1
                continue
            if org is None:
                org = Organisation(type="enterprise", uscc=row.uscc, org_code=row.org_code,
                                   name=row.name, status="active",
                                   district=row.uscc[2:8] if row.uscc[2:8] in DISTRICTS else None)
                db.session.add(org)
                db.session.flush()
            db.session.add(LegacyAccount(legacy_id=row.legacy_id, uscc=row.uscc, name=row.name,
                                         organisation_id=org.id, totp_secret=sealed,
                                         key_hash=key_hash))
            db.session.flush()
            report.imported += 1
        report.rejected.sort(key=lambda r: r.line)
        audit.record("legacy.import", imported=report.imported, updated=report.updated,
                     rejected=len(report.rejected),
                     rejected_lines=[r.line for r in report.rejected][:100])
        db.session.commit()
    except IntegrityError:  # someone registered one of these enterprises meanwhile
        db.session.rollback()
        audit.record("legacy.import", result="failure", reason="concurrent_change")
        db.session.commit()
        raise ImportFileError("the database changed during the import (an enterprise of the "
                              "file was registered meanwhile); nothing was imported, run it "
                              "again") from None
    return report


# --- binding ------------------------------------------------------------------------------------

class BindRefused(IdpError):
    """The binding cannot happen (another enterprise's account, already bound …): a page
    message, not a field's."""


class BindLocked(BindRefused):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Computed when the legacy id is unknown or has no OTP, so that every refusal costs the same.
_DUMMY_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


class _Tries:
    """Wrong tries counted per enterprise (the certificate's USCC, or its organisation code)
    AND per certificate (x5t): guessing from many sessions or with many certificates of one
    enterprise both stop after ``legacy_bind_max_tries``. Only the enterprise's own tries
    count: another enterprise's UKey can neither lock it out nor test guesses against it
    (``bind`` looks only at the certificate's own legacy account)."""

    def __init__(self, store: Store, limit: int, seconds: int, enterprise: str,
                 x5t: str) -> None:
        self._store = store
        self._limit = limit
        self._seconds = seconds
        self._subjects = [f"legacy-bind:org:{enterprise}", f"legacy-bind:x5t:{x5t}"]

    def locked_for(self) -> int:
        return max((self._store.ttl(f"{s}:lock") or 0) for s in self._subjects)

    def fail(self) -> int:
        """Count a wrong try; the tries left (0: now locked)."""
        left = self._limit
        for subject in self._subjects:
            count = self._store.incr(f"{subject}:fail", self._seconds)
            if count >= self._limit:
                self._store.set(f"{subject}:lock", "1", self._seconds)
                self._store.delete(f"{subject}:fail")
            left = min(left, max(0, self._limit - count))
        return left

    def reset(self) -> None:
        for subject in self._subjects:
            self._store.delete(f"{subject}:fail")


def _locked_message(seconds: int) -> str:
    return MSG_LOCKED.format(minutes=max(1, math.ceil(seconds / 60)))


def _otp_step(legacy: LegacyAccount | None, code: str, now: float) -> int | None:
    """The time step (RFC 6238) whose code ``code`` is, within ±1 step of now, or None.

    ``pyotp.TOTP.verify(valid_window=1)`` answers only yes or no; single use needs to know
    *which* step matched, so the three codes are computed here the same way (pyotp's
    generate_otp) and all three are compared, in constant time, whatever matches."""
    secret = _DUMMY_SECRET
    if legacy is not None and legacy.totp_secret:
        try:
            secret = unseal(current_app.config["IDP"].key_passphrase, SEAL_PURPOSE,
                            legacy.totp_secret)
        except ValueError:  # sealed under another passphrase: the seed is unusable
            current_app.logger.error("legacy account %s: OTP secret does not unseal with the "
                                     "current key_passphrase; re-import it", legacy.legacy_id)
            secret = _DUMMY_SECRET
            legacy = None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    matched = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(str(totp.generate_otp(step)).encode(), code.encode()):
            matched = step
    if legacy is None or not legacy.totp_secret:
        return None
    return matched


def _of_certificate(pending: PendingUkey) -> sa.ColumnElement[bool]:
    """Legacy accounts of the certificate's enterprise: its USCC — or, for a certificate that
    carries only a 组织机构代码, the USCC containing that code. The scope is in the query: an
    account of another enterprise is, to this certificate, an account that does not exist."""
    if pending.uscc:
        return LegacyAccount.uscc == pending.uscc
    return sa.and_(sa.literal(bool(pending.org_code)),
                   sa.func.substr(LegacyAccount.uscc, 9, 9) == pending.org_code)


def bind(pending: PendingUkey, legacy_id: str, *, otp_code: str | None = None,
         key: str | None = None) -> Account:
    """Bind the pending certificate's enterprise to its fund-system account and log it in.

    Exactly one of ``otp_code`` and ``key`` proves the account. Raises ``FieldError`` (bad
    input, wrong code or key — the same words whether or not the legacy id exists),
    ``BindLocked`` (too many wrong tries) or ``BindRefused`` (another enterprise's account,
    already bound, disabled). Every try past the input checks is audited and committed here;
    the binding itself (UKey account, identity, ``bound_at``, the OTP step) is one transaction.
    """
    settings = current_app.config["IDP"]
    method = "otp" if otp_code is not None else "key"
    legacy_id = normalize_legacy_id(legacy_id)
    if method == "otp":
        proof = normalize_otp_code(otp_code)
    elif not (key or "").strip():
        raise FieldError("key", MSG_KEY_REQUIRED)
    else:
        proof = normalize_key(key)
    attempt = _Attempt(pending, legacy_id, method, _Tries(
        get_store(), settings.legacy_bind_max_tries, settings.lockout_seconds,
        pending.uscc or pending.org_code, pending.x5t))
    wait = attempt.tries.locked_for()
    if wait:
        attempt.refuse("locked")
        raise BindLocked(_locked_message(wait), wait)

    legacy = db.session.scalar(sa.select(LegacyAccount).where(
        LegacyAccount.legacy_id == legacy_id, _of_certificate(pending)))
    step: int | None = None
    if method == "otp":
        step = _otp_step(legacy, proof, time.time())
        proven = step is not None
    else:
        passwords: Passwords = current_app.extensions["idp.passwords"]
        proven = passwords.verify(legacy.key_hash if legacy is not None else None, proof)
    if legacy is None or not proven:
        attempt.wrong("unknown_account" if legacy is None else f"wrong_{method}",
                      MSG_WRONG_OTP if method == "otp" else MSG_WRONG_KEY)
    org = db.session.get(Organisation, legacy.organisation_id)
    if org is None or org.status == "disabled":
        attempt.refuse("organisation_disabled")
        raise BindRefused(MSG_DISABLED)
    existing = db.session.scalar(sa.select(Account.id).where(Account.organisation_id == org.id))
    if existing is not None:
        attempt.refuse("already_bound", existing)
        raise BindRefused(MSG_ALREADY_BOUND)
    if step is not None:
        # Single use, race-safe: of two requests with the same code, one moves the step.
        table = table_of(LegacyAccount)
        moved = db.session.execute(
            sa.update(table).where(
                table.c.id == legacy.id,
                sa.or_(table.c.last_otp_step.is_(None), table.c.last_otp_step < step))
            .values(last_otp_step=step))
        if getattr(moved, "rowcount", 0) != 1:
            attempt.wrong("otp_reused", MSG_OTP_USED)
    try:
        account = Account(kind="ukey", name=org.name, organisation_id=org.id, status="active",
                          last_login_at=utcnow())
        db.session.add(account)
        db.session.flush()
        db.session.add(Identity(account_id=account.id, organisation_id=org.id, role=BIND_ROLE,
                                platform=BIND_PLATFORM))
        legacy.bound_at = utcnow()
        audit.record("legacy.bind", account_id=account.id, organisation_id=org.id,
                     **attempt.facts)
        db.session.commit()
    except IntegrityError:  # a second binding of the same enterprise won the race
        attempt.refuse("already_bound")
        raise BindRefused(MSG_ALREADY_BOUND) from None
    attempt.tries.reset()
    log_in(account, pending)
    return account


class _Attempt:
    """One try at binding: its audit facts, and how a refusal is recorded and counted."""

    def __init__(self, pending: PendingUkey, legacy_id: str, method: str, tries: _Tries) -> None:
        self.method = method
        self.tries = tries
        self.facts: dict[str, Any] = {"legacy_id": legacy_id, "method": method,
                                      "x5t": pending.x5t,
                                      "uscc": pending.uscc or pending.org_code}

    def refuse(self, reason: str, account_id: str | None = None) -> None:
        """Audit the refusal alone (whatever the try had changed is rolled back)."""
        db.session.rollback()
        audit.record("legacy.bind", result="failure", account_id=account_id, reason=reason,
                     **self.facts)
        db.session.commit()

    def wrong(self, reason: str, message: str, *, page: bool = False) -> NoReturn:
        """A refused proof: counted against the account and the certificate, then the
        message (with the tries left), or the lock once none are left. The try's own changes
        are rolled back first: the store may write on a connection of its own, which must not
        wait behind this transaction (SQLite has one writer)."""
        db.session.rollback()
        left = self.tries.fail()
        self.refuse(reason)
        if left <= 0:
            seconds = current_app.config["IDP"].lockout_seconds
            raise BindLocked(_locked_message(seconds), seconds)
        if page:
            raise BindRefused(message)
        field_name = "otp_code" if self.method == "otp" else "key"
        raise FieldError(field_name, message + MSG_TRIES_LEFT.format(left=left))
