"""Finding organisations across every district and type (the platform admins see them all).

Filters: name contains, USCC / 管理处编码 / 组织机构代码 prefix, type, status, district; paged by
offset (a page number; the count is shown), which stays cheap at the sizes the platform has
(tens of thousands of organisations): see ``tests/bench/bench_admin_orgs.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from idp.extensions import db
from idp.orgs.models import CITY_DISTRICT, Organisation
from idp.validators import DISTRICTS

PAGE_SIZE = 20
MAX_PAGE = 100_000

TYPE_LABELS = {"enterprise": "物业服务企业", "office": "小区管理处", "committee": "业主委员会",
               "centre": "区中心", "platform": "平台运维"}
STATUS_LABELS = {"active": "正常", "pending": "待审核", "returned": "已退回", "disabled": "停用"}
DISTRICT_LABELS = {CITY_DISTRICT: "上海市（市中心）", **DISTRICTS}

MSG_NAME = "请输入1–100个字符的组织名称（部分即可）"
MSG_CODE = "请输入统一社会信用代码或编码的开头部分（1–32位字母或数字）"
MSG_CHOICE = "请从列表中选择"

_CODE_RE = re.compile(r"[0-9A-Z]{1,32}")
FILTER_NAMES = ("q", "code", "type", "status", "district")


@dataclass
class OrgFilters:
    raw: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    code: str | None = None
    type: str | None = None
    status: str | None = None
    district: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def query_args(self) -> dict[str, str]:
        return {k: v for k, v in self.raw.items() if v}


def parse_filters(args: Mapping[str, str]) -> OrgFilters:
    raw = {name: str(args.get(name, "") or "") for name in FILTER_NAMES}
    filters = OrgFilters(raw=raw)
    name = " ".join(raw["q"].split())
    if name:
        if len(name) > 100 or not name.isprintable():
            filters.errors["q"] = MSG_NAME
            raw["q"] = ""
        else:
            filters.name = name
    code = raw["code"].strip().upper()
    if code:
        if not (code.isascii() and _CODE_RE.fullmatch(code)):
            filters.errors["code"] = MSG_CODE
            raw["code"] = "" if len(raw["code"]) > 100 else raw["code"]
        else:
            filters.code = code
    for key, options in (("type", TYPE_LABELS), ("status", STATUS_LABELS),
                         ("district", DISTRICT_LABELS)):
        value = raw[key].strip()
        if not value:
            continue
        if value not in options:
            filters.errors[key] = MSG_CHOICE
            raw[key] = ""
        else:
            setattr(filters, key, value)
    return filters


def _criteria(filters: OrgFilters) -> list[sa.ColumnElement[bool]]:
    criteria: list[sa.ColumnElement[bool]] = []
    if filters.name is not None:
        criteria.append(Organisation.name.contains(filters.name, autoescape=True))
    if filters.code is not None:
        criteria.append(sa.or_(Organisation.uscc.startswith(filters.code, autoescape=True),
                               Organisation.code.startswith(filters.code, autoescape=True),
                               Organisation.org_code.startswith(filters.code, autoescape=True)))
    if filters.type is not None:
        criteria.append(Organisation.type == filters.type)
    if filters.status is not None:
        criteria.append(Organisation.status == filters.status)
    if filters.district is not None:
        criteria.append(Organisation.district == filters.district)
    return criteria


@dataclass(frozen=True)
class OrgPage:
    rows: list[tuple[Organisation, str | None]]  # the organisation and its parent's name
    total: int
    page: int
    pages: int


def page_number(raw: str | None) -> int:
    text = raw or ""
    if text.isascii() and text.isdigit() and len(text) <= 6:
        return min(max(int(text), 1), MAX_PAGE)
    return 1


def search(filters: OrgFilters, page: int = 1) -> OrgPage:
    """One page of matching organisations, newest first, with the total."""
    criteria = _criteria(filters)
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(Organisation).where(*criteria)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(page, pages)
    parent = aliased(Organisation)
    rows = db.session.execute(
        sa.select(Organisation, parent.name)
        .outerjoin(parent, parent.id == Organisation.parent_id)
        .where(*criteria).order_by(Organisation.id.desc())
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    return OrgPage([(org, parent_name) for org, parent_name in rows], total, page, pages)
