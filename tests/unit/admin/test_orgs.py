"""Organisations in the platform admin console: every type and district, searched by name
(contains), USCC / code (prefix), type, status and district; paged."""

from __future__ import annotations

import re

import pytest

from idp.admin import orgs
from idp.extensions import db
from idp.orgs.models import Organisation
from tests.unit.admin.helpers import as_admin


@pytest.fixture
def world(app) -> dict[str, int]:
    enterprise = Organisation(type="enterprise", name="上海申大物业有限公司",
                              uscc="91310115MA1FL0D34W", org_code="MA1FL0D34",
                              district="310115", status="active")
    other = Organisation(type="enterprise", name="北京远方物业有限公司",
                         uscc="91110000600037341L", org_code="600037341", district=None,
                         status="pending")
    db.session.add_all([enterprise, other])
    db.session.flush()
    office = Organisation(type="office", name="申大物业和谐花园管理处", parent_id=enterprise.id,
                          code="MA1FL0D34-001", district="310115", status="active")
    committee = Organisation(type="committee", name="和谐花园业主委员会", district="310104",
                             status="returned")
    centre = Organisation(type="centre", name="徐汇区维修资金管理中心", district="310104",
                          status="disabled")
    db.session.add_all([office, committee, centre])
    db.session.commit()
    return {"enterprise": enterprise.id, "other": other.id, "office": office.id,
            "committee": committee.id, "centre": centre.id}


def listed(text: str, world: dict[str, int]) -> set[str]:
    return {name for name, org_id in world.items() if f'id="org-{org_id}"' in text}


@pytest.mark.parametrize(("args", "expected"), [
    ({}, {"enterprise", "other", "office", "committee", "centre"}),
    ({"q": "物业"}, {"enterprise", "other", "office"}),
    ({"q": " 和谐花园 "}, {"office", "committee"}),
    ({"q": "100%"}, set()),
    ({"q": "_"}, set()),
    ({"code": "91310115"}, {"enterprise"}),
    ({"code": "9131"}, {"enterprise"}),
    ({"code": "91"}, {"enterprise", "other"}),
    ({"code": "ma1fl0d34"}, {"enterprise", "office"}),  # org code of one, 编码 of the other
    ({"code": "MA1FL0D34-"}, set()),  # not letters and digits only: refused (see bad input)
    ({"type": "office"}, {"office"}),
    ({"type": "platform"}, set()),
    ({"status": "pending"}, {"other"}),
    ({"status": "disabled"}, {"centre"}),
    ({"district": "310104"}, {"committee", "centre"}),
    ({"district": "310115", "type": "enterprise"}, {"enterprise"}),
])
def test_org_search_filters_narrow(app, client, world, args, expected):
    as_admin(client, app)
    response = client.get("/admin/orgs", query_string=args)
    if args.get("code") == "MA1FL0D34-":
        assert response.status_code == 400
        return
    assert response.status_code == 200, response.text
    # the admin's own platform organisation is in the full list too
    assert listed(response.text, world) == expected


def test_org_list_shows_labels_parent_and_an_audit_link(app, client, world):
    as_admin(client, app)
    text = client.get("/admin/orgs", query_string={"type": "office"}).text
    assert "小区管理处" in text and "上海申大物业有限公司" in text and "浦东新区" in text
    assert f'href="/admin/audit?org={world["office"]}"' in text


def test_org_search_pages(app, client):
    as_admin(client, app)
    db.session.add_all([Organisation(type="committee", name=f"测试业委会{n:03d}",
                                     district="310101") for n in range(45)])
    db.session.commit()
    first = client.get("/admin/orgs", query_string={"q": "测试业委会"})
    assert "共 45 个组织" in first.text and "第 1 / 3 页" in first.text
    assert first.text.count('<tr id="org-') == orgs.PAGE_SIZE
    third = client.get("/admin/orgs", query_string={"q": "测试业委会", "page": "3"})
    assert third.text.count('<tr id="org-') == 5
    names = re.findall(r"测试业委会(\d{3})", third.text)
    assert names == ["004", "003", "002", "001", "000"]
    beyond = client.get("/admin/orgs", query_string={"q": "测试业委会", "page": "999999"})
    assert beyond.status_code == 200 and "第 3 / 3 页" in beyond.text


def test_empty_result_says_so(app, client, world):
    as_admin(client, app)
    text = client.get("/admin/orgs", query_string={"q": "没有这个组织"}).text
    assert "暂无数据" in text and "共 0 个组织" in text
