"""Property areas (物业区域, T07): created, renamed and merged by centre staff.

Registration names an area that must exist (``idp.registration.committees.find_area``), so
the centre keeps the list right: it corrects names and merges duplicates. A merged-away area
is never deleted — old references (links, applications, audit events) must still resolve —
it is marked ``merged`` and points at the survivor; its links move to the survivor.
Applications keep the area they named: whoever reads one follows the merge
(``idp.orgs.review.current_area``), so a merge never has to lock applications that a
reviewer may be deciding at the same moment.

A district centre acts only on the areas of its districts; the city centre on all of them
(``idp.orgs.review.reviewer_districts``). An area outside the actor's districts is reported as
not found, so ids of other districts reveal nothing. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp.accounts.models import Account
from idp.errors import FieldError, IdpError
from idp.extensions import db
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.orgs.review import current_area, reviewer_districts
from idp.validators import DISTRICTS, choice, normalize_name
from idp.web import is_id

NAME_LIMIT = 100  # PropertyArea.name is String(100)
MAX_MERGE = 50  # areas merged in one go: a clerk ticks a handful; a bound keeps the lock short

MSG_AREA_NAME = "请输入物业区域名称（1–100个字符：文字、数字、括号或间隔号）"
MSG_AREA_NAME_TAKEN = "本区已有同名的物业区域，请勿重复添加。"
MSG_AREA_NAME_SAME = "新名称与原名称相同。"
MSG_AREA_NOT_FOUND = "物业区域不存在。"
MSG_AREA_MERGED = "该物业区域已合并到其他区域，不能再修改或合并。"
MSG_MERGE_NONE = "请选择要合并的区域"
MSG_MERGE_TOO_MANY = f"一次最多合并{MAX_MERGE}个区域"
MSG_MERGE_SELF = "保留区域不能同时作为合并区域"
MSG_MERGE_DISTRICT = "只能合并同一区内的物业区域"
MSG_MERGE_COMMITTEES = ("所选物业区域分属不同的业主委员会，合并后一个区域将有两个业委会，不能合并。"
                        "请先核实业委会的区域后再合并。")
MSG_MERGE_MANAGERS = ("所选物业区域由不同的物业服务企业或小区管理处管理，"
                      "合并后一个区域将有两个管理单位，不能合并。请先核实管理关联后再合并。")

# Organisations whose link still means something: a disabled one no longer represents or
# manages the area, so its stale link does not block a merge (it moves along all the same).
_LIVE = ("active", "pending", "returned")


class AreaNotFound(IdpError):
    """No such area among the actor's districts (the view answers 404)."""

    def __init__(self) -> None:
        super().__init__(MSG_AREA_NOT_FOUND)


# --- scope ------------------------------------------------------------------------------------

def district_choices(actor: Account) -> dict[str, str]:
    """The districts ``actor`` may create areas in: its centres' districts, all 16 for the city
    centre, none for anybody else."""
    districts = reviewer_districts(actor)
    if districts is None:
        return dict(DISTRICTS)
    return {code: label for code, label in DISTRICTS.items() if code in districts}


def areas_query(actor: Account) -> sa.Select[PropertyArea]:
    """Areas ``actor`` may see and change (tenant isolation at the data layer)."""
    query = sa.select(PropertyArea)
    districts = reviewer_districts(actor)
    if districts is None:
        return query
    return query.where(PropertyArea.district.in_(sorted(districts)))


def area_for(area_id: int, actor: Account, *, lock: bool = False) -> PropertyArea | None:
    """The area if it exists and lies in ``actor``'s districts, else None."""
    query = areas_query(actor).where(PropertyArea.id == area_id)
    if lock:
        query = query.with_for_update()
    return db.session.scalar(query)


def _check_scope(area: PropertyArea, actor: Account) -> None:
    districts = reviewer_districts(actor)
    if districts is not None and area.district not in districts:
        raise AreaNotFound()


# --- names ------------------------------------------------------------------------------------

def normalize_area_name(raw: str, field: str = "name") -> str:
    """1–100 printable characters without ``<>``; runs of blanks (full-width ones too) become
    one space, so 「和谐  花园」 and 「和谐 花园」 are the same name."""
    return normalize_name(raw, field, NAME_LIMIT, MSG_AREA_NAME, organisation=True)


def _name_taken(district: str, name: str, exclude: int | None = None) -> bool:
    query = sa.select(PropertyArea.id).where(
        PropertyArea.district == district, PropertyArea.name == name,
        PropertyArea.status == "active")
    if exclude is not None:
        query = query.where(PropertyArea.id != exclude)
    return db.session.scalar(query.limit(1)) is not None


# --- changes (the caller commits) -------------------------------------------------------------

def create_area(name: str, district: str, actor: Account) -> PropertyArea:
    """A new active area in one of the actor's districts. FieldError('name'|'district', …)."""
    name = normalize_area_name(name)
    district = choice(district, district_choices(actor), "district")
    if _name_taken(district, name):
        raise FieldError("name", MSG_AREA_NAME_TAKEN)
    area = PropertyArea(name=name, district=district, status="active")
    db.session.add(area)
    _flush_name()
    audit.record("area.create", account_id=actor.id, area=area.id, name=name, district=district)
    return area


def _flush_name() -> None:
    """The partial unique index (one active name per district) decides races that the check
    above cannot see: two centre staff adding the same area at the same moment."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise FieldError("name", MSG_AREA_NAME_TAKEN) from None


def rename_area(area: PropertyArea, name: str, actor: Account) -> None:
    """Correct an area's name (T07). AreaNotFound outside the actor's districts."""
    _check_scope(area, actor)
    if area.status != "active":
        raise FieldError("name", MSG_AREA_MERGED)
    new = normalize_area_name(name)
    if new == area.name:
        raise FieldError("name", MSG_AREA_NAME_SAME)
    if _name_taken(area.district, new, exclude=area.id):
        raise FieldError("name", MSG_AREA_NAME_TAKEN)
    old, area.name = area.name, new
    _flush_name()
    audit.record("area.rename", account_id=actor.id, area=area.id, district=area.district,
                 old=old, new=new)


@dataclass(frozen=True)
class Merged:
    survivor: PropertyArea
    merged_ids: list[int]
    links_moved: int
    links_dropped: int  # the survivor had the same link already


def merge_areas(survivor: PropertyArea, merged: Sequence[PropertyArea],
                actor: Account) -> Merged:
    """Merge ``merged`` into ``survivor`` (T07): their links move to the survivor, open
    applications naming them name the survivor, and they are kept as ``merged`` pointers.

    Refused — with nothing changed — when the result would give one area two different
    committees or two different managers: that is a question for people, not for a merge.
    """
    _check_scope(survivor, actor)
    for area in merged:
        _check_scope(area, actor)
    if survivor.status != "active":
        raise FieldError("survivor", MSG_AREA_MERGED)
    unique = {area.id: area for area in merged}
    if not unique:
        raise FieldError("merged", MSG_MERGE_NONE)
    if len(unique) > MAX_MERGE:
        raise FieldError("merged", MSG_MERGE_TOO_MANY)
    if survivor.id in unique:
        raise FieldError("merged", MSG_MERGE_SELF)
    for area in unique.values():
        if area.status != "active":
            raise FieldError("merged", MSG_AREA_MERGED)
        if area.district != survivor.district:
            raise FieldError("merged", MSG_MERGE_DISTRICT)
    merged_ids = sorted(unique)
    all_ids = [survivor.id, *merged_ids]

    links = list(db.session.scalars(
        sa.select(AreaLink).where(AreaLink.area_id.in_(all_ids))
        .order_by(AreaLink.id).with_for_update()))
    live = set(db.session.scalars(sa.select(Organisation.id).where(
        Organisation.id.in_({link.organisation_id for link in links}),
        Organisation.status.in_(_LIVE)))) if links else set()
    for role, message in (("committee", MSG_MERGE_COMMITTEES), ("manager", MSG_MERGE_MANAGERS)):
        holders = {link.organisation_id for link in links
                   if link.role == role and link.organisation_id in live}
        if role == "committee":  # a committee waiting for review gets its link on approval
            holders |= _registering_committees(set(all_ids))
        if len(holders) > 1:
            raise FieldError("merged", message)

    # Checks done: from here on nothing raises, so a refusal above has changed nothing.
    kept = {(link.role, link.organisation_id) for link in links if link.area_id == survivor.id}
    moved = dropped = 0
    for link in links:
        if link.area_id == survivor.id:
            continue
        key = (link.role, link.organisation_id)
        if key in kept:  # uq_area_link (area_id, role, organisation_id): keep one
            db.session.delete(link)
            dropped += 1
        else:
            link.area_id = survivor.id
            kept.add(key)
            moved += 1
    # A deleted link sits on a merged area and a moved one gets a key the survivor lacks, so
    # no statement of this flush can meet uq_area_link, whatever order it runs in.
    db.session.flush()

    # Areas merged earlier into one of these now point straight at the survivor.
    db.session.execute(sa.update(PropertyArea).where(PropertyArea.merged_into_id.in_(merged_ids))
                       .values(merged_into_id=survivor.id))
    for area in unique.values():
        area.status = "merged"
        area.merged_into_id = survivor.id

    audit.record("area.merge", account_id=actor.id, survivor=survivor.id,
                 survivor_name=survivor.name, district=survivor.district, merged=merged_ids,
                 merged_names=[unique[i].name for i in merged_ids], links_moved=moved,
                 links_dropped=dropped)
    db.session.flush()
    return Merged(survivor, merged_ids, moved, dropped)


def _registering_committees(area_ids: set[int]) -> set[int]:
    """Committees whose open registration asks for one of ``area_ids`` (following merges)."""
    found: set[int] = set()
    for application in db.session.scalars(sa.select(Application).where(
            Application.status.in_(("pending", "returned")),
            Application.kind == "committee_registration")):
        area_id = _area_id_of(application.data)
        area = current_area(area_id) if area_id is not None else None
        if area is not None and area.id in area_ids:
            found.add(application.organisation_id)
    return found


def _area_id_of(data: Any) -> int | None:
    value = data.get("area_id") if isinstance(data, dict) else None
    text = str(value)
    if isinstance(value, bool) or not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    return int(text) if is_id(int(text)) else None
