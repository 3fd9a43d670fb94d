"""Platform and role selection on the provider (S09, S18, D04): the role-selection page of an
authorization, ``prompt=select_account``, no identity → no code, and the portal's 【确认选择】
(third-party initiated login, OIDC Core §4)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt

from idp.accounts.models import Identity
from idp.audit import AuditEvent
from idp.extensions import db
from idp.oidc.keys import KeyRing
from idp.oidc.models import AuthorizationCode
from idp.orgs.models import Organisation
from tests.conftest import csrf_from, table_counts
from tests.factories import (
    REDIRECT,
    authorize_params,
    exchange,
    login,
    make_account,
    make_client,
    make_enterprise,
    query,
    ukey_login,
    via_proxy,
)

PHONE = "13912345678"
LOGIN_URI = "https://rp.example.cn/auth/login"


def two_identities() -> tuple[Any, Identity, Identity]:
    """A person who is an operator of 上海申大物业 and of 和谐物业 on the fund platform."""
    account = make_account(PHONE)
    first = account.identities[0]
    other = Organisation(type="enterprise", name="和谐物业有限公司", uscc=None)
    db.session.add(other)
    db.session.flush()
    second = Identity(account_id=account.id, organisation_id=other.id, role="office",
                      platform="repair_fund")
    db.session.add(second)
    db.session.commit()
    return account, first, second


def authorize(client: FlaskClient, **extra: str) -> Any:
    return client.get("/authorize", query_string=authorize_params(**extra))


def claims_of(client: FlaskClient, code: str, secret: str) -> dict[str, Any]:
    response = exchange(client, code, secret)
    assert response.status_code == 200, response.text
    keys = KeyRing.jwks(db.session)
    from joserfc.jwk import KeySet
    token = jwt.decode(response.json["id_token"], KeySet.import_key_set(keys))
    userinfo = client.get("/userinfo", headers={
        "Authorization": "Bearer " + response.json["access_token"]}).json
    assert userinfo["identity"] == token.claims["identity"]
    return dict(token.claims)


def choose(client: FlaskClient, location: str, identity: Identity | str) -> Any:
    page = client.get(location)
    assert page.status_code == 200, page.text
    value = identity if isinstance(identity, str) else str(identity.id)
    return client.post("/select-identity", data={
        "i": query(location)["i"], "identity": value, "csrf_token": csrf_from(page.text)})


def test_s09_two_identities_choose_one_and_the_tokens_carry_it(app: Flask,
                                                               client: FlaskClient) -> None:
    """S09/D04: an account with two identities on the platform chooses one before the code;
    the ID token and userinfo carry org, platform, roles and identity of the choice."""
    _, _, second = two_identities()
    _, secret = make_client()
    login(client, app, PHONE)
    response = authorize(client)
    assert response.status_code == 303 and "/select-identity?i=" in response.location
    page = client.get(response.location)
    assert "上海申大物业有限公司" in page.text and "和谐物业有限公司" in page.text
    assert "操作员" in page.text and "小区管理处" in page.text and ">确认选择</button>" in page.text
    chosen = choose(client, response.location, second)
    assert chosen.status_code == 303
    final = client.get(chosen.location)
    assert final.status_code == 302 and final.location.startswith(REDIRECT)
    claims = claims_of(client, query(final.location)["code"], secret)
    assert claims["identity"] == str(second.id) and claims["roles"] == ["office"]
    assert claims["org"]["name"] == "和谐物业有限公司" and claims["platform"] == "repair_fund"
    # The choice holds for the session: the next authorization asks nothing.
    again = authorize(client)
    assert again.status_code == 302
    assert claims_of(client, query(again.location)["code"], secret)["identity"] == str(second.id)
    assert db.session.scalar(sa.select(AuditEvent).where(AuditEvent.event == "identity.select"))


def test_s09_prompt_select_account_asks_again(app: Flask, client: FlaskClient) -> None:
    _, first, second = two_identities()
    _, secret = make_client()
    login(client, app, PHONE)
    response = authorize(client)
    client.get(choose(client, response.location, second).location)
    switched = authorize(client, prompt="select_account")
    assert switched.status_code == 303 and "/select-identity" in switched.location
    final = client.get(choose(client, switched.location, first).location)
    assert claims_of(client, query(final.location)["code"], secret)["identity"] == str(first.id)


def test_s09_one_identity_needs_no_choice(app: Flask, client: FlaskClient) -> None:
    account = make_account(PHONE)
    _, secret = make_client()
    login(client, app, PHONE)
    response = authorize(client)
    assert response.status_code == 302
    claims = claims_of(client, query(response.location)["code"], secret)
    assert claims["identity"] == str(account.identities[0].id)


def test_s09_prompt_none_with_a_choice_to_make_is_account_selection_required(
        app: Flask, client: FlaskClient) -> None:
    """OIDC Core §3.1.2.6: no page may be shown, so the RP hears account_selection_required."""
    two_identities()
    make_client()
    login(client, app, PHONE)
    response = authorize(client, prompt="none")
    assert response.status_code == 302
    result = query(response.location)
    assert result["error"] == "account_selection_required" and result["iss"] == "http://localhost"
    assert result["state"] == "st-123"


@pytest.mark.parametrize("prompt", ["", "none"])
def test_s09_no_identity_on_the_platform_gets_a_clear_page_and_no_code(
        app: Flask, client: FlaskClient, prompt: str) -> None:
    """S09: no identity for that platform: never a code (a page; access_denied for none)."""
    make_account(PHONE, platform="supervision")
    make_client()
    login(client, app, PHONE)
    response = authorize(client, **({"prompt": prompt} if prompt else {}))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthorizationCode)) == 0
    if prompt:
        assert query(response.location)["error"] == "access_denied"
    else:
        assert response.status_code == 403
        assert "没有可用的身份" in response.text
        assert "上海市商品住房维修资金管理系统" in response.text


def test_s09_an_enterprise_without_the_platform_is_told_how_to_add_it(
        app: Flask, client: FlaskClient, devca: Any) -> None:
    make_enterprise(platforms=("supervision",))
    make_client()
    pem = devca.sample("demo").pem_path.read_bytes()
    ukey_login(client, pem)
    response = client.get("/authorize", query_string=authorize_params(), **via_proxy(pem))
    assert response.status_code == 403
    assert "增加注册平台" in response.text and 'href="/register/platforms"' in response.text


BAD_CHOICES = ["", "abc", "-1", "99999999999", "１", "<script>", "1 OR 1=1"]


@pytest.mark.parametrize("value", [*BAD_CHOICES, "foreign", "other-platform", "disabled"])
def test_s09_only_the_accounts_own_identities_can_be_chosen(app: Flask, client: FlaskClient,
                                                            value: str) -> None:
    """Another account's identity, another platform's, a disabled one, or junk: 400 with
    「请选择登录身份」, no choice kept, no code."""
    _, first, second = two_identities()
    stranger = make_account("13700000002")
    extra = Identity(account_id=first.account_id, organisation_id=first.organisation_id,
                     role="operator", platform="supervision")
    db.session.add(extra)
    second.status = "disabled"
    third = Identity(account_id=first.account_id, organisation_id=second.organisation_id,
                     role="enterprise_admin", platform="repair_fund")
    db.session.add(third)
    db.session.commit()
    make_client()
    login(client, app, PHONE)
    location = authorize(client).location
    value = {"foreign": str(stranger.identities[0].id), "other-platform": str(extra.id),
             "disabled": str(second.id)}.get(value, value)
    before = {k: v for k, v in table_counts().items() if k not in ("audit_event", "store_entry")}
    response = choose(client, location, value)
    assert response.status_code == 400 and "请选择登录身份" in response.text
    assert "<script>alert" not in response.text
    after = {k: v for k, v in table_counts().items() if k not in ("audit_event", "store_entry")}
    assert after == before
    with client.session_transaction() as session:
        assert "identity_choice" not in session


def test_s09_selection_page_without_a_waiting_request(app: Flask, client: FlaskClient) -> None:
    make_account(PHONE)
    assert client.get("/select-identity?i=AAAAAAAAAAAAAAAA").status_code == 303  # anonymous
    login(client, app, PHONE)
    page = client.get("/select-identity?i=AAAAAAAAAAAAAAAA")
    assert page.status_code == 400 and "登录请求已过期" in page.text


# --- S18: the portal -----------------------------------------------------------------------

def test_s18_portal_lists_the_platforms_and_enters_by_third_party_initiated_login(
        app: Flask, client: FlaskClient) -> None:
    """S18: after login the platforms the account can enter are listed; 【确认选择】 sends the
    browser to the client's initiate_login_uri with iss (OIDC Core §4)."""
    make_account(PHONE)
    make_client(initiate_login_uri=LOGIN_URI)
    make_client(client_id="sup", platform="supervision",
                initiate_login_uri="https://sup.example.cn/auth/login")
    login(client, app, PHONE)
    home = client.get("/")
    assert "上海市商品住房维修资金管理系统" in home.text and ">确认选择</button>" in home.text
    assert 'value="supervision"' not in home.text  # no identity there
    response = client.post("/portal/enter", data={"platform": "repair_fund",
                                                  "csrf_token": csrf_from(home.text)})
    assert response.status_code == 303
    assert response.location == LOGIN_URI + "?iss=http%3A%2F%2Flocalhost"
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.event == "portal.enter"))
    assert event is not None and event.detail["platform"] == "repair_fund"


@pytest.mark.parametrize("platform", ["supervision", "", "x" * 300, "<script>", "repair_fund "])
def test_s18_only_an_available_platform_can_be_entered(app: Flask, client: FlaskClient,
                                                       platform: str) -> None:
    make_account(PHONE)
    make_client(initiate_login_uri=LOGIN_URI)
    make_client(client_id="sup", platform="supervision",
                initiate_login_uri="https://sup.example.cn/auth/login")
    login(client, app, PHONE)
    home = client.get("/")
    response = client.post("/portal/enter", data={"platform": platform,
                                                  "csrf_token": csrf_from(home.text)})
    assert response.status_code == 400 and "请选择要进入的平台" in response.text


def test_s18_portal_needs_a_login_and_a_csrf_token(app: Flask, client: FlaskClient) -> None:
    make_account(PHONE)
    make_client(initiate_login_uri=LOGIN_URI)
    assert client.post("/portal/enter", data={"platform": "repair_fund"}).status_code in (303, 400)
    login(client, app, PHONE)
    assert client.post("/portal/enter", data={"platform": "repair_fund"}).status_code == 400
