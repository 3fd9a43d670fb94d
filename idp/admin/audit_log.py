"""Searching and exporting the audit trail (等保 8.1.4.3: time, who, event, result).

The trail is append-only (a trigger on PostgreSQL refuses UPDATE and DELETE); this module only
reads it. Lists are newest first and paged by key (``id``), not by offset: the table grows by
every token issued, and ``OFFSET n`` would read n rows to skip them. The CSV export streams in
batches by the same key, so memory stays flat up to its cap.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from idp.accounts.models import Account
from idp.audit import FAILURE, SUCCESS, AuditEvent
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.validators import USCC_ALPHABET, normalize_phone
from idp.web import BEIJING, is_id

PAGE_SIZE = 50
CSV_CAP = 100_000
CSV_BATCH = 1000
CSV_HEADER = ("时间", "事件", "结果", "账号", "客户端", "组织", "IP", "详情")
MAX_ORG_MATCHES = 50
RESULT_LABELS = {SUCCESS: "成功", FAILURE: "失败"}

MSG_TIME = "请输入正确的时间（北京时间，如 2026-01-31 08:30）"
MSG_TIME_ORDER = "结束时间不能早于开始时间"
MSG_ACCOUNT = "请输入32位账号ID或11位手机号码"
MSG_ACCOUNT_UNKNOWN = "未找到该手机号码的账号"
MSG_ORG = "请输入组织ID、统一社会信用代码或组织名称（1–100个字符）"
MSG_ORG_UNKNOWN = "未找到该组织"
MSG_ORG_TOO_MANY = f"匹配的组织超过{MAX_ORG_MATCHES}个，请输入更完整的名称"
MSG_EVENT = "事件应为小写字母、数字、. 或 _（1–64个字符），按前缀匹配"
MSG_RESULT = "请从列表中选择"

_ACCOUNT_ID_RE = re.compile(r"[0-9a-f]{32}")
_EVENT_RE = re.compile(r"[a-z0-9][a-z0-9._]{0,63}")
_USCC_RE = re.compile(f"[{USCC_ALPHABET}]{{18}}")
_CURSOR_RE = re.compile(r"[0-9]{1,19}")
# datetime-local sends "YYYY-MM-DDTHH:MM" (":SS" when the step asks for it); people type a blank.
_TIME_FORMATS = (("%Y-%m-%dT%H:%M", timedelta(minutes=1)),
                 ("%Y-%m-%dT%H:%M:%S", timedelta(seconds=1)),
                 ("%Y-%m-%d %H:%M", timedelta(minutes=1)),
                 ("%Y-%m-%d %H:%M:%S", timedelta(seconds=1)),
                 ("%Y-%m-%d", timedelta(days=1)))
FILTER_NAMES = ("start", "end", "account", "org", "event", "result")


@dataclass
class AuditFilters:
    """Parsed filters; ``raw`` is what was typed (shown again, and carried by the pager and
    the export link), ``errors`` and ``notes`` the messages beside the fields."""

    raw: dict[str, str] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None  # exclusive
    account_id: str | None = None
    org_ids: list[int] | None = None
    event: str | None = None
    result: str | None = None
    nothing: bool = False  # a filter names something that does not exist: no rows
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The filters for the audit event of an export (ids, not what was typed)."""
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "filter_account": self.account_id, "filter_orgs": self.org_ids,
            "filter_event": self.event, "filter_result": self.result}

    @property
    def query_args(self) -> dict[str, str]:
        return {k: v for k, v in self.raw.items() if v}


def _time(raw: str, name: str) -> tuple[datetime, timedelta]:
    """A Beijing wall-clock time (UTC+8, no daylight saving) as UTC, and its precision."""
    text = raw.strip()
    if len(text) <= 19 and text.isascii():
        for fmt, step in _TIME_FORMATS:
            try:
                local = datetime.strptime(text, fmt)
            except ValueError:
                continue
            if 2000 <= local.year <= 2099:
                return local.replace(tzinfo=BEIJING).astimezone(UTC), step
    raise FieldError(name, MSG_TIME)


def _account(raw: str, filters: AuditFilters) -> None:
    text = raw.strip()
    if _ACCOUNT_ID_RE.fullmatch(text):
        filters.account_id = text
        return
    try:
        phone = normalize_phone(text)
    except FieldError:
        raise FieldError("account", MSG_ACCOUNT) from None
    account_id = db.session.scalar(sa.select(Account.id).where(Account.phone == phone))
    if account_id is None:
        filters.notes["account"] = MSG_ACCOUNT_UNKNOWN
        filters.nothing = True
    else:
        filters.account_id = account_id


def _organisation(raw: str, filters: AuditFilters) -> None:
    """An id, a USCC, or (part of) a name: the organisation_id column of the events."""
    text = " ".join(raw.split())
    ids: list[int]
    if text.isascii() and text.isdigit() and len(text) <= 10:
        ids = [int(text)] if is_id(int(text)) else []
        if ids and db.session.get(Organisation, ids[0]) is None:
            ids = []
    elif _USCC_RE.fullmatch(text.upper()):
        ids = list(db.session.scalars(sa.select(Organisation.id).where(
            Organisation.uscc == text.upper())))
    elif 0 < len(text) <= 100 and text.isprintable():
        exact = list(db.session.scalars(sa.select(Organisation.id).where(
            Organisation.name == text).limit(MAX_ORG_MATCHES + 1)))
        ids = exact or list(db.session.scalars(
            sa.select(Organisation.id).where(Organisation.name.contains(text, autoescape=True))
            .order_by(Organisation.id).limit(MAX_ORG_MATCHES + 1)))
        if len(ids) > MAX_ORG_MATCHES:
            raise FieldError("org", MSG_ORG_TOO_MANY)
    else:
        raise FieldError("org", MSG_ORG)
    if not ids:
        filters.notes["org"] = MSG_ORG_UNKNOWN
        filters.nothing = True
    filters.org_ids = ids


def parse_filters(args: Mapping[str, str]) -> AuditFilters:
    """The filters of the audit list and its export; every bad one gets its message."""
    filters = AuditFilters(raw={name: str(args.get(name, "") or "") for name in FILTER_NAMES})
    raw = filters.raw
    for name in FILTER_NAMES:
        if len(raw[name]) > 200:  # nothing valid is this long; do not echo it back either
            filters.errors[name] = {"start": MSG_TIME, "end": MSG_TIME, "account": MSG_ACCOUNT,
                                    "org": MSG_ORG, "event": MSG_EVENT,
                                    "result": MSG_RESULT}[name]
            raw[name] = ""
    parsers: dict[str, Callable[[str, AuditFilters], None]] = {
        "start": _start, "end": _end, "account": _account, "org": _organisation,
        "event": _event, "result": _result}
    for name, parse in parsers.items():
        if name in filters.errors or not raw[name].strip():
            continue
        try:
            parse(raw[name], filters)
        except FieldError as exc:
            filters.errors[exc.field] = exc.message
    if filters.start is not None and filters.end is not None and filters.end <= filters.start:
        filters.errors.setdefault("end", MSG_TIME_ORDER)
    return filters


def _start(text: str, filters: AuditFilters) -> None:
    filters.start, _ = _time(text, "start")


def _end(text: str, filters: AuditFilters) -> None:
    moment, step = _time(text, "end")
    filters.end = moment + step  # "to 08:30" includes the whole minute 08:30


def _event(text: str, filters: AuditFilters) -> None:
    value = text.strip()
    if not _EVENT_RE.fullmatch(value):
        raise FieldError("event", MSG_EVENT)
    filters.event = value


def _result(text: str, filters: AuditFilters) -> None:
    value = text.strip()
    if value not in RESULT_LABELS:
        raise FieldError("result", MSG_RESULT)
    filters.result = value


def _criteria(filters: AuditFilters) -> list[sa.ColumnElement[bool]]:
    if filters.nothing:
        return [sa.false()]
    criteria: list[sa.ColumnElement[bool]] = []
    if filters.start is not None:
        criteria.append(AuditEvent.at >= filters.start)
    if filters.end is not None:
        criteria.append(AuditEvent.at < filters.end)
    if filters.account_id is not None:
        criteria.append(AuditEvent.account_id == filters.account_id)
    if filters.org_ids is not None:
        criteria.append(AuditEvent.organisation_id.in_(filters.org_ids))
    if filters.event is not None:
        criteria.append(AuditEvent.event.startswith(filters.event, autoescape=True))
    if filters.result is not None:
        criteria.append(AuditEvent.result == filters.result)
    return criteria


def _query(filters: AuditFilters) -> sa.Select[AuditEvent]:
    return sa.select(AuditEvent).where(*_criteria(filters))


def cursor(raw: str | None) -> int | None:
    """A page cursor (an event id) from the URL, or None when absent or not a plain number."""
    text = raw or ""
    return int(text) if _CURSOR_RE.fullmatch(text) and int(text) <= 2**63 - 1 else None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    newer: int | None  # cursor for 上一页 (events with a larger id), None on the first page
    older: int | None  # cursor for 下一页


def search(filters: AuditFilters, *, before: int | None = None,
           after: int | None = None) -> AuditPage:
    """One page, newest first: ``before`` (older than that id) or ``after`` (newer)."""
    query = _query(filters)
    if after is not None:
        rows = list(db.session.scalars(
            query.where(AuditEvent.id > after).order_by(AuditEvent.id).limit(PAGE_SIZE + 1)))
        more_newer = len(rows) > PAGE_SIZE
        events = list(reversed(rows[:PAGE_SIZE]))
        older = events[-1].id if events else None
        return AuditPage(events, events[0].id if events and more_newer else None, older)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(db.session.scalars(
        query.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE + 1)))
    events = rows[:PAGE_SIZE]
    older = events[-1].id if len(rows) > PAGE_SIZE else None
    newer = events[0].id if events and before is not None else None
    return AuditPage(events, newer, older)


# --- CSV export ---------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell Excel will show as text: one that starts like a formula (= + - @, or a tab or
    carriage return that hides one) gets a leading apostrophe (OWASP, CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _detail(detail: Any) -> str:
    if not detail:
        return ""
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)


_COLUMNS = (AuditEvent.id, AuditEvent.at, AuditEvent.event, AuditEvent.result,
            AuditEvent.account_id, AuditEvent.client_id, AuditEvent.organisation_id,
            AuditEvent.ip, AuditEvent.detail)


def event_row(event: Any) -> list[str]:
    """One CSV line of an event (an ``AuditEvent`` or a row of ``_COLUMNS``)."""
    at = event.at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if event.at else ""
    cells = [at, event.event, RESULT_LABELS.get(event.result, event.result),
             event.account_id, event.client_id,
             "" if event.organisation_id is None else str(event.organisation_id),
             event.ip, _detail(event.detail)]
    return [csv_cell(cell) for cell in cells]


def export_csv(filters: AuditFilters, cap: int | None = None) -> Iterator[str]:
    """The matching events, newest first, as CSV text chunks: UTF-8 with a byte-order mark
    (Excel then reads the Chinese), at most ``cap`` rows, fetched ``CSV_BATCH`` at a time as
    plain rows (no ORM objects pile up in the session)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    yield "\ufeff" + buffer.getvalue()
    cap = CSV_CAP if cap is None else cap
    criteria = _criteria(filters)
    sent = 0
    last: int | None = None
    while sent < cap:
        wanted = min(CSV_BATCH, cap - sent)
        query = sa.select(*_COLUMNS).where(*criteria)
        if last is not None:
            query = query.where(AuditEvent.id < last)
        batch = db.session.execute(
            query.order_by(AuditEvent.id.desc()).limit(wanted)).all()
        db.session.rollback()  # no transaction held open while the client reads
        if not batch:
            break
        buffer.seek(0)
        buffer.truncate()
        for row in batch:
            writer.writerow(event_row(row))
        yield buffer.getvalue()
        sent += len(batch)
        last = batch[-1].id
        if len(batch) < wanted:
            break
