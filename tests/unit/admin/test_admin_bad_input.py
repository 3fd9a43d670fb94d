"""Bad input on every field and filter of the platform admin console: a message beside the
field (or a clear page), nothing written (``table_counts()`` unchanged except audit_event and
store_entry), never a 500, hostile HTML never reflected raw."""

from __future__ import annotations

from typing import Any

import pytest

from idp.extensions import db
from idp.oidc.models import Client
from tests.factories import make_client, make_enterprise
from tests.unit.admin.helpers import as_admin, counts, csrf

LONG = "x" * 10_000
SCRIPT = "<script>alert(1)</script>"
TWENTY_ONE = "\n".join(f"https://rp.example.cn/cb{n}" for n in range(21))

BASE_NEW: dict[str, Any] = {
    "name": "新业务系统", "client_id": "new-client", "platform": "repair_fund",
    "auth_method": "client_secret_basic", "grant_types": ["authorization_code", "refresh_token"],
    "redirect_uris": "https://rp.example.cn/cb", "post_logout_redirect_uris": "",
    "backchannel_logout_uri": "", "initiate_login_uri": "", "tenant": "",
}
BAD_URIS = ["http://rp.example.cn/cb", "https://rp.example.cn/cb#frag", "javascript:alert(1)",
            "https://", "//rp.example.cn/cb", "rp.example.cn/cb", "https://rp.example.cn/" + SCRIPT,
            "https://rp .example.cn/", "https://例子.中国/cb", "https://rp.example.cn/" + "a" * 600,
            "http://localhost.evil.example/cb", "ftp://rp.example.cn/", "https://rp.example.cn/\x01",
            "https://rp.example.cn/cb\x00", LONG, SCRIPT, "'; DROP TABLE client;--"]
BAD_FIELDS: dict[str, list[Any]] = {
    "name": ["", "   ", "x" * 101, SCRIPT, "a\x00b", "a\x01b", "'; DROP TABLE client;--",
             "名\u202e称", LONG, "\x7f"],
    "client_id": ["", "a" * 65, SCRIPT, "a b", "a\nb", "客户端", "a/b", "a\x00", "１２３", LONG,
                  "a;b", "\u0430bc"],
    "platform": ["other", SCRIPT, LONG, "\x00", "repair_fund\x01", "console"],
    "auth_method": ["private_key_jwt", "", "none\x00", SCRIPT, "client_secret_jwt"],
    "grant_types": [[], ["implicit"], ["password"], [SCRIPT], ["authorization_code", "x"]],
    "redirect_uris": ["", "\n \n", TWENTY_ONE, *BAD_URIS],
    "post_logout_redirect_uris": [TWENTY_ONE, *BAD_URIS],
    "backchannel_logout_uri": BAD_URIS,
    "initiate_login_uri": [*BAD_URIS, "http://rp.example.cn/login"],
    "tenant": ["123", "91310115MA1FL0D34X", SCRIPT, "x" * 101, "91350100M000100Y43",
               "\x00", "９１３１０１１５ＭＡ１ＦＬ０Ｄ３４Ｗ"],
}
EDIT_FIELDS = {k: v for k, v in BAD_FIELDS.items() if k not in ("client_id", "auth_method")}
CASES = [(name, value) for name, values in BAD_FIELDS.items() for value in values]
EDIT_CASES = [(name, value) for name, values in EDIT_FIELDS.items() for value in values]


def assert_clean(response: Any, before: dict[str, int], *, status: int | None = 400) -> None:
    assert response.status_code < 500
    if status is not None:
        assert response.status_code == status, response.text[:500]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "sqlalchemy" not in text.lower()
    assert "<script>" not in text
    assert counts() == before


@pytest.mark.parametrize(("name", "value"), CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_register_form_refuses_bad_values(app, client, name, value):
    make_enterprise(uscc="91310115MA1FL0D34W")
    as_admin(client, app)
    data = {**BASE_NEW, name: value, "csrf_token": csrf(client)}
    before = counts()
    response = client.post("/admin/clients/new", data=data)
    assert_clean(response, before)
    assert db.session.get(Client, "new-client") is None


def test_register_form_base_request_is_valid(app, client):
    as_admin(client, app)
    response = client.post("/admin/clients/new", data={**BASE_NEW, "csrf_token": csrf(client)})
    assert response.status_code == 200 and db.session.get(Client, "new-client") is not None


@pytest.mark.parametrize(("name", "value"), EDIT_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(EDIT_CASES)])
def test_edit_form_refuses_bad_values(app, client, name, value):
    make_enterprise(uscc="91310115MA1FL0D34W")
    make_client()
    as_admin(client, app)
    db.session.expire_all()
    snapshot = _client_state()
    data = {**BASE_NEW, name: value, "csrf_token": csrf(client, "/admin/clients/rp1/edit")}
    before = counts()
    response = client.post("/admin/clients/rp1/edit", data=data)
    assert_clean(response, before)
    db.session.expire_all()
    assert _client_state() == snapshot


def _client_state() -> dict[str, Any]:
    found = db.session.get(Client, "rp1")
    assert found is not None
    return {c.name: getattr(found, c.key) for c in Client.__table__.columns}


def test_edit_form_base_request_is_valid(app, client):
    make_client()
    as_admin(client, app)
    data = {**BASE_NEW, "csrf_token": csrf(client, "/admin/clients/rp1/edit")}
    assert client.post("/admin/clients/rp1/edit", data=data).status_code == 303


@pytest.mark.parametrize("url", ["/admin/clients/new", "/admin/clients/rp1/edit"])
@pytest.mark.parametrize("token", [None, "", "forged", LONG])
def test_client_forms_without_a_valid_csrf_token(app, client, url, token):
    make_client()
    as_admin(client, app)
    data = dict(BASE_NEW)
    if token is not None:
        data["csrf_token"] = token
    before = counts()
    assert_clean(client.post(url, data=data), before)


# --- GET filters --------------------------------------------------------------------------

AUDIT_BAD = {
    "start": ["2026-13-01", "2026-02-30T10:00", "yesterday", SCRIPT, "9999-01-01", "1999-12-31",
              "2026-01-01T25:00", "x" * 300, "２０２６-01-01", "2026-01-01T10:00Z", "0",
              "2026-01-01T10:00:00.123"],
    "end": ["2026-13-01", SCRIPT, "x" * 300, "-1"],
    "account": ["abc", "1391111000", SCRIPT, "'; DROP TABLE account;--", "A" * 32, "a" * 33,
                "x" * 300],
    "org": ["x" * 101, "x" * 300, "   \u200b"],
    "event": ["Login", SCRIPT, "a b", "x" * 65, "登录", "%", "_", ".login", "login%"],
    "result": ["ok", SCRIPT, "SUCCESS", "x" * 300],
}
AUDIT_CASES = [(k, v) for k, vs in AUDIT_BAD.items() for v in vs]


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/audit.csv"])
@pytest.mark.parametrize(("name", "value"), AUDIT_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(AUDIT_CASES)])
def test_audit_filters_refuse_bad_values(app, client, path, name, value):
    as_admin(client, app)
    before = counts()
    response = client.get(path, query_string={name: value})
    assert_clean(response, before)
    assert 'class="field-error"' in response.text and "has-error" in response.text


def test_end_before_start_is_refused(app, client):
    as_admin(client, app)
    response = client.get("/admin/audit", query_string={"start": "2026-01-02T00:00",
                                                        "end": "2026-01-01T00:00"})
    assert response.status_code == 400 and "结束时间不能早于开始时间" in response.text


@pytest.mark.parametrize("query", ["org=%3Cscript%3E", "before=abc", "before=-1",
                                   "before=" + "9" * 30, "after=1e3", "after=%00",
                                   "start=%01", "org=" + "9" * 11, "org=0"])
def test_audit_odd_parameters_never_fail(app, client, query):
    as_admin(client, app)
    before = counts()
    response = client.get("/admin/audit?" + query)
    assert_clean(response, before, status=None)


ORG_BAD = {"q": ["x" * 101, "x" * 300], "code": [SCRIPT, "%", "x" * 33, "中文", "A B", "MA-1"],
           "type": ["bogus", SCRIPT], "status": ["deleted", SCRIPT],
           "district": ["999999", SCRIPT, "310000x"]}
ORG_CASES = [(k, v) for k, vs in ORG_BAD.items() for v in vs]


@pytest.mark.parametrize(("name", "value"), ORG_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(ORG_CASES)])
def test_org_filters_refuse_bad_values(app, client, name, value):
    as_admin(client, app)
    before = counts()
    response = client.get("/admin/orgs", query_string={name: value})
    assert_clean(response, before)
    assert "has-error" in response.text


@pytest.mark.parametrize("query", ["q=%3Cscript%3E", "q=%27%3B--", "page=-1", "page=abc",
                                   "page=99999999999", "page=%EF%BC%92", "q=%00", "code=%0A"])
def test_org_odd_parameters_never_fail(app, client, query):
    as_admin(client, app)
    before = counts()
    response = client.get("/admin/orgs?" + query)
    assert_clean(response, before, status=None)
