"""Property areas (T07): centre staff create areas, correct names and merge areas; the merged
areas' links move to the survivor; registration finds only areas that exist. All audited, all
scoped to the actor's districts."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from idp.audit import AuditEvent
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.areas import (
    MSG_AREA_MERGED,
    MSG_AREA_NAME,
    MSG_AREA_NAME_SAME,
    MSG_AREA_NAME_TAKEN,
    MSG_MERGE_COMMITTEES,
    MSG_MERGE_DISTRICT,
    MSG_MERGE_MANAGERS,
    MSG_MERGE_NONE,
    MSG_MERGE_SELF,
    AreaNotFound,
    area_for,
    create_area,
    district_choices,
    merge_areas,
    rename_area,
)
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.orgs.review import current_area, open_application
from idp.registration.committees import find_area
from idp.validators import DISTRICTS, MSG_CHOICE
from tests.conftest import table_counts
from tests.factories import make_area, make_centre

EXEMPT = ("audit_event", "store_entry")


def counts() -> dict[str, int]:
    return {k: v for k, v in table_counts().items() if k not in EXEMPT}


def events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == name)
                                    .order_by(AuditEvent.id)))


def org(type_: str = "committee", name: str = "和谐花园业主委员会", status: str = "active",
        district: str = "310115") -> Organisation:
    row = Organisation(type=type_, name=name, status=status, district=district)
    db.session.add(row)
    db.session.flush()
    return row


def link(area: PropertyArea, organisation: Organisation, role: str) -> AreaLink:
    row = AreaLink(area_id=area.id, organisation_id=organisation.id, role=role)
    db.session.add(row)
    db.session.commit()
    return row


def snapshot() -> dict[str, Any]:
    """Everything a merge may touch, to prove that a refused one touched nothing."""
    db.session.expire_all()
    return {
        "areas": sorted((a.id, a.name, a.status, a.merged_into_id)
                        for a in db.session.scalars(sa.select(PropertyArea))),
        "links": sorted((lk.id, lk.area_id, lk.role, lk.organisation_id)
                        for lk in db.session.scalars(sa.select(AreaLink))),
        "applications": sorted((a.id, a.status, repr(a.data))
                               for a in db.session.scalars(sa.select(Application))),
    }


# --- create ---------------------------------------------------------------------------------

def test_t07_create_area_is_active_and_audited(app):
    actor = make_centre()
    area = create_area("  阳光  花苑 ", "310115", actor)
    db.session.commit()
    assert (area.name, area.district, area.status) == ("阳光 花苑", "310115", "active")
    [event] = events("area.create")
    assert event.account_id == actor.id
    assert event.detail == {"area": area.id, "name": "阳光 花苑", "district": "310115"}


def test_t07_duplicate_name_in_the_district_is_refused(app):
    actor = make_centre()
    make_area("和谐花园", "310115")
    before = counts()
    with pytest.raises(FieldError) as caught:
        create_area("和谐花园", "310115", actor)
    assert (caught.value.field, caught.value.message) == ("name", MSG_AREA_NAME_TAKEN)
    with pytest.raises(FieldError):
        create_area(" 和谐花园 ", "310115", actor)
    db.session.rollback()
    assert counts() == before


def test_t07_same_name_allowed_in_another_district_and_after_a_merge(app):
    city = make_centre(district="310000")
    create_area("和谐花园", "310115", city)
    create_area("和谐花园", "310104", city)  # another district: another area
    db.session.commit()
    survivor = create_area("和谐家园", "310115", city)
    old = db.session.scalar(sa.select(PropertyArea).where(
        PropertyArea.name == "和谐花园", PropertyArea.district == "310115"))
    assert old is not None
    merge_areas(survivor, [old], city)
    db.session.commit()
    again = create_area("和谐花园", "310115", city)  # the merged-away name is free again
    assert again.status == "active"


@pytest.mark.parametrize("name", [
    "", "   ", "\u3000\u3000", "a" * 101, "<b>和谐</b>", "和谐>", "\x00", "和谐\x07花园",
    "\u200b", "和谐\u202e花园", "\ufeff",
], ids=["empty", "blank", "fullwidth-blank", "overlong-101", "html", "angle", "nul", "bell",
        "zero-width", "rtl-override", "bom"])
def test_t07_bad_area_names_are_refused_and_nothing_is_written(app, name):
    actor = make_centre()
    before = counts()
    with pytest.raises(FieldError) as caught:
        create_area(name, "310115", actor)
    assert (caught.value.field, caught.value.message) == ("name", MSG_AREA_NAME)
    db.session.rollback()
    assert counts() == before


def test_t07_area_name_of_100_characters_is_accepted(app):
    area = create_area("园" * 100, "310115", make_centre())
    assert len(area.name) == 100


@pytest.mark.parametrize("district", ["310104", "310000", "", "31011５", "<script>", "9" * 400])
def test_t07_district_outside_the_actors_districts_is_refused(app, district):
    actor = make_centre(district="310115")
    before = counts()
    with pytest.raises(FieldError) as caught:
        create_area("和谐花园", district, actor)
    assert (caught.value.field, caught.value.message) == ("district", MSG_CHOICE)
    db.session.rollback()
    assert counts() == before


def test_t07_district_choices_follow_the_centre(app):
    assert district_choices(make_centre("13600000001", "310104")) == {"310104": "徐汇区"}
    assert district_choices(make_centre("13600000002", "310000")) == DISTRICTS
    outsider = make_centre("13600000003", "310115")
    outsider.identities[0].status = "disabled"
    db.session.commit()
    assert district_choices(outsider) == {}


# --- rename ---------------------------------------------------------------------------------

def test_t07_rename_is_audited_with_old_and_new_names(app):
    actor = make_centre()
    area = make_area("和偕花园")
    rename_area(area, "和谐花园", actor)
    db.session.commit()
    assert db.session.get(PropertyArea, area.id).name == "和谐花园"
    [event] = events("area.rename")
    assert event.account_id == actor.id
    assert event.detail["old"] == "和偕花园" and event.detail["new"] == "和谐花园"
    assert event.detail["area"] == area.id


def test_t07_rename_refusals(app):
    actor = make_centre()
    area = make_area("和谐花园")
    make_area("阳光花苑")
    for name, message in (("和谐花园", MSG_AREA_NAME_SAME), ("阳光花苑", MSG_AREA_NAME_TAKEN),
                          ("<i>x</i>", MSG_AREA_NAME), ("", MSG_AREA_NAME)):
        with pytest.raises(FieldError) as caught:
            rename_area(area, name, actor)
        assert caught.value.message == message
    db.session.rollback()
    assert db.session.get(PropertyArea, area.id).name == "和谐花园"
    assert events("area.rename") == []


def test_t07_other_district_is_not_found(app):
    actor = make_centre(district="310104")
    area = make_area("和谐花园", "310115")
    assert area_for(area.id, actor) is None
    with pytest.raises(AreaNotFound):
        rename_area(area, "新名称", actor)
    own = make_area("徐汇花园", "310104")
    with pytest.raises(AreaNotFound):
        merge_areas(own, [area], actor)
    with pytest.raises(AreaNotFound):
        merge_areas(area, [own], actor)
    db.session.rollback()
    assert db.session.get(PropertyArea, area.id).status == "active"
    assert area_for(own.id, actor) is not None


def test_t07_merged_area_cannot_be_renamed(app):
    actor = make_centre()
    survivor, gone = make_area("和谐花园"), make_area("和谐花园二期")
    merge_areas(survivor, [gone], actor)
    db.session.commit()
    with pytest.raises(FieldError) as caught:
        rename_area(gone, "别的名字", actor)
    assert caught.value.message == MSG_AREA_MERGED


# --- merge ----------------------------------------------------------------------------------

def test_t07_merge_moves_links_and_open_applications_to_the_survivor(app):
    actor = make_centre()
    survivor, a, b = make_area("和谐花园"), make_area("和谐花园一期"), make_area("和谐花园二期")
    committee = org("committee")
    manager = org("enterprise", "申大物业")
    link(a, committee, "committee")
    link(survivor, manager, "manager")
    link(b, manager, "manager")  # the same manager: one link is enough on the survivor
    pending = open_application("association", committee, "310115",
                               {"area_id": a.id, "target_id": manager.id})
    as_text = open_application("association", committee, "310115",
                               {"area_id": str(b.id), "target_id": manager.id})
    decided = open_application("association", committee, "310115",
                               {"area_id": a.id, "target_id": manager.id})
    decided.status = "approved"
    db.session.commit()

    result = merge_areas(survivor, [a, b], actor)
    db.session.commit()
    db.session.expire_all()

    assert (result.links_moved, result.links_dropped) == (1, 1)
    for gone in (a, b):
        row = db.session.get(PropertyArea, gone.id)
        assert (row.status, row.merged_into_id) == ("merged", survivor.id)
        assert current_area(gone.id).id == survivor.id
    links = {(lk.area_id, lk.role, lk.organisation_id)
             for lk in db.session.scalars(sa.select(AreaLink))}
    assert links == {(survivor.id, "committee", committee.id),
                     (survivor.id, "manager", manager.id)}
    # Applications keep the area they named; reading them follows the merge.
    assert db.session.get(Application, pending.id).data["area_id"] == a.id
    assert db.session.get(Application, as_text.id).data["area_id"] == str(b.id)
    assert current_area(int(db.session.get(Application, as_text.id).data["area_id"])).id == \
        survivor.id
    [event] = events("area.merge")
    assert event.account_id == actor.id
    assert event.detail["survivor"] == survivor.id
    assert event.detail["merged"] == sorted([a.id, b.id])
    assert event.detail["links_moved"] == 1 and event.detail["links_dropped"] == 1
    # Registration finds the survivor only.
    with pytest.raises(FieldError):
        find_area("310115", "和谐花园一期")
    assert find_area("310115", "和谐花园").id == survivor.id


def test_t07_earlier_merges_point_straight_at_the_new_survivor(app):
    actor = make_centre()
    first, second, third = make_area("甲"), make_area("乙"), make_area("丙")
    merge_areas(second, [first], actor)
    db.session.commit()
    merge_areas(third, [second], actor)
    db.session.commit()
    assert db.session.get(PropertyArea, first.id).merged_into_id == third.id
    assert current_area(first.id).id == third.id


@pytest.mark.parametrize("role,message", [("committee", MSG_MERGE_COMMITTEES),
                                          ("manager", MSG_MERGE_MANAGERS)])
def test_t07_merge_with_two_committees_or_managers_is_refused_and_changes_nothing(
        app, role, message):
    actor = make_centre()
    survivor, other, third = make_area("和谐花园"), make_area("和谐花园二期"), make_area("三期")
    type_ = "committee" if role == "committee" else "office"
    link(survivor, org(type_, "甲"), role)
    link(other, org(type_, "乙", status="pending"), role)  # waiting for review counts too
    committee = org("committee", "丙")
    open_application("association", committee, "310115", {"area_id": other.id, "target_id": 1})
    db.session.commit()
    before, rows = counts(), snapshot()
    with pytest.raises(FieldError) as caught:
        merge_areas(survivor, [third, other], actor)
    assert (caught.value.field, caught.value.message) == ("merged", message)
    db.session.rollback()
    assert counts() == before and snapshot() == rows
    assert events("area.merge") == []


def test_t07_an_open_committee_registration_counts_as_a_committee(app):
    """T07: a registration waiting for review gets its committee link on approval; merging
    its area into one that has a committee would give the survivor two."""
    actor = make_centre()
    survivor, other = make_area("和谐花园"), make_area("和谐花园二期")
    link(survivor, org("committee", "现任业委会"), "committee")
    open_application("committee_registration", org("committee", "二期筹备组", "pending"),
                     "310115", {"name": "二期筹备组", "area_id": other.id})
    db.session.commit()
    rows = snapshot()
    with pytest.raises(FieldError) as caught:
        merge_areas(survivor, [other], actor)
    assert caught.value.message == MSG_MERGE_COMMITTEES
    db.session.rollback()
    assert snapshot() == rows
    # Into an area without a committee it merges, and the registration follows its area.
    empty = make_area("和谐花园三期")
    result = merge_areas(empty, [other], actor)
    db.session.commit()
    [application] = db.session.scalars(sa.select(Application))
    assert result.survivor.id == empty.id
    assert current_area(application.data["area_id"]).id == empty.id


def test_t07_a_disabled_committees_stale_link_does_not_block_a_merge(app):
    actor = make_centre()
    survivor, other = make_area("和谐花园"), make_area("和谐花园二期")
    link(survivor, org("committee", "现任业委会"), "committee")
    link(other, org("committee", "已停用业委会", status="disabled"), "committee")
    merge_areas(survivor, [other], actor)
    db.session.commit()
    assert db.session.get(PropertyArea, other.id).status == "merged"


def test_t07_merge_refusals(app):
    city = make_centre(district="310000")
    survivor, other = make_area("和谐花园"), make_area("和谐花园二期")
    elsewhere = make_area("徐汇花园", "310104")
    gone = make_area("旧区域")
    merge_areas(other, [gone], city)
    db.session.commit()
    rows = snapshot()
    cases: list[tuple[PropertyArea, list[PropertyArea], str, str]] = [
        (survivor, [], "merged", MSG_MERGE_NONE),
        (survivor, [survivor], "merged", MSG_MERGE_SELF),
        (survivor, [other, survivor], "merged", MSG_MERGE_SELF),
        (survivor, [elsewhere], "merged", MSG_MERGE_DISTRICT),
        (survivor, [gone], "merged", MSG_AREA_MERGED),
        (gone, [survivor], "survivor", MSG_AREA_MERGED),
    ]
    for kept, merged, field, message in cases:
        with pytest.raises(FieldError) as caught:
            merge_areas(kept, merged, city)
        assert (caught.value.field, caught.value.message) == (field, message)
        db.session.rollback()
    assert snapshot() == rows


@pytest.mark.parametrize(("district", "name"), [("310115", "和谐 花园"), ("310104", "和谐花园"),
                                                ("310115", "<script>"), ("310115", "")])
def test_t07_registration_refuses_an_area_that_does_not_exist(app, district, name):
    """T07: registration finds an active area of that district by its exact name, or none."""
    area = make_area("和谐花园", "310115")
    assert find_area("310115", "和谐花园").id == area.id
    with pytest.raises(FieldError):
        find_area(district, name)
