"""Bearer tokens of the admin API and SCIM (D09, RFC 6750, RFC 8705): who may call, for which
enterprise; a missing, bad, revoked or expired token is 401, too small a scope or no
enterprise is 403, another enterprise's ids are 404 — and every refusal of a presented token
is audited."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account
from idp.audit import AuditEvent
from idp.extensions import db
from idp.oidc.models import SCOPES, Client
from idp.orgs.models import Organisation
from idp.pki.devca import DevCA
from tests.factories import (
    REDIRECT,
    authorize_params,
    basic,
    exchange,
    make_account,
    make_client,
    make_office,
    make_operator,
    query,
    ukey_login,
    via_proxy,
)
from tests.unit.api.conftest import (
    ALL_API,
    OTHER_USCC,
    bearer,
    client_token,
    mint_token,
    provisioning_client,
)

OPERATORS = "/api/v1/operators"
SCIM_USERS = "/scim/v2/Users"


def refusals(reason: str | None = None) -> list[AuditEvent]:
    query_ = sa.select(AuditEvent).where(AuditEvent.event == "api.auth",
                                         AuditEvent.result == "failure")
    if reason:
        query_ = query_.where(AuditEvent.detail["reason"].as_string() == reason)
    return list(db.session.scalars(query_))


def admin_token(client: FlaskClient, devca: DevCA, scope: str, *, login: bool = True) -> str:
    """An enterprise admin's access token, the real way: UKey login (法人一证通), then the
    authorization code flow of a relying party allowed the console scopes."""
    secret = "rp1-secret-" + "s" * 32
    if db.session.get(Client, "rp1") is None:
        make_client(scope="openid profile org roles console.read console.write", secret=secret)
    pem = devca.sample("demo").pem_path.read_bytes()
    if login:
        assert ukey_login(client, pem).status_code in (200, 303)
    response = client.get("/authorize", query_string=authorize_params(scope=scope),
                          **via_proxy(pem))
    assert response.status_code == 302, response.text
    assert response.location.startswith(REDIRECT)
    tokens = exchange(client, query(response.location)["code"], secret)
    assert tokens.status_code == 200, tokens.text
    value: str = tokens.json["access_token"]
    return value


# --- scopes in discovery -----------------------------------------------------------------------

def test_d09_discovery_lists_the_api_scopes(client: FlaskClient) -> None:
    """D09: scopes_supported names the admin API's scopes; relying parties do not get them by
    default (a client must be registered with them)."""
    doc = client.get("/.well-known/openid-configuration").json
    assert {"console.read", "console.write", "scim"} <= set(doc["scopes_supported"])
    assert set(doc["scopes_supported"]) == set(SCOPES)
    row, _ = make_client(client_id="plain")
    assert not {"console.read", "console.write", "scim"} & set(row.scope.split())


def test_d09_client_bound_to_tenant_gets_api_scopes_by_default(app: Flask,
                                                               enterprise: Organisation) -> None:
    """D09: a client registered with a tenant (``idp clients add --tenant USCC``) is bound to
    that enterprise and may get console.read console.write scim."""
    row, _ = make_client(client_id="hr", redirect_uris=[], grant_types=["client_credentials"],
                         tenant=enterprise.uscc)
    assert row.tenant_id == enterprise.id
    assert set(row.scope.split()) == set(ALL_API.split())


def test_d09_client_tenant_must_be_registered(app: Flask) -> None:
    with pytest.raises(ValueError, match="tenant"):
        make_client(client_id="hr", redirect_uris=[], grant_types=["client_credentials"],
                    tenant=OTHER_USCC)


def test_d09_cli_clients_add_tenant(app: Flask, enterprise: Organisation) -> None:
    """D09: ``idp clients add --tenant USCC --grant-type client_credentials --json``."""
    import json

    from idp.cli import cli

    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["clients", "add", "--client-id", "hr-sync", "--name", "人事系统",
                                 "--grant-type", "client_credentials",
                                 "--tenant", enterprise.uscc or "", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["client_id"] == "hr-sync"
    row = db.session.get(Client, "hr-sync")
    assert row is not None and row.tenant_id == enterprise.id
    bad = runner.invoke(cli, ["clients", "add", "--client-id", "hr2", "--name", "人事系统",
                              "--grant-type", "client_credentials", "--tenant", OTHER_USCC])
    assert bad.exit_code != 0 and "tenant" in bad.output
    bad_scope = runner.invoke(cli, ["clients", "add", "--client-id", "hr3", "--name", "x",
                                    "--grant-type", "client_credentials", "--scope", "admin"])
    assert bad_scope.exit_code != 0 and "scope" in bad_scope.output


# --- 401 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [OPERATORS, "/api/v1/offices", SCIM_USERS, "/scim/v2/Groups"])
def test_d09_no_token_is_401_with_challenge(client: FlaskClient, enterprise: Organisation,
                                            path: str) -> None:
    """D09: RFC 6750 §3.1 — no credentials: 401 and a bare ``Bearer`` challenge."""
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="idp"'
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    if path.startswith("/scim"):
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == "401"
    else:
        assert body["error"] == "invalid_token"
        assert body["message"] == "缺少访问令牌，请在 Authorization 请求头中使用 Bearer 令牌"


@pytest.mark.parametrize("header", [
    "Basic cHJvdjpzZWNyZXQ=", "Bearer", "Bearer ", "Token abc", "bearer",
])
def test_d09_other_schemes_are_no_credentials(client: FlaskClient, enterprise: Organisation,
                                              header: str) -> None:
    response = client.get(OPERATORS, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="idp"'


@pytest.mark.parametrize("value", [
    "not-a-token", "x" * 600, "abc def", "tok\u00e9n", "a=b", "../../etc/passwd",
])
def test_d09_bad_token_is_401_invalid_token(client: FlaskClient, enterprise: Organisation,
                                            value: str) -> None:
    """D09: RFC 6750 §3.1 invalid_token, and the refusal is audited."""
    response = client.get(OPERATORS, headers={"Authorization": f"Bearer {value}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="idp", error="invalid_token"'
    assert response.json == {"error": "invalid_token", "message": "访问令牌无效、已过期或已被撤销"}
    assert len(refusals()) == 1


def test_d09_revoked_token_is_401(client: FlaskClient, enterprise: Organisation) -> None:
    """D09: a token revoked at /revoke (RFC 7009) stops working at once."""
    _, secret = provisioning_client()
    token = client_token(client, "prov", secret)
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 200
    revoked = client.post("/revoke", data={"token": token}, headers=basic("prov", secret))
    assert revoked.status_code == 200
    response = client.get(OPERATORS, headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert refusals("expired_or_revoked")


def test_d09_expired_token_is_401(client: FlaskClient, enterprise: Organisation) -> None:
    provisioning_client()
    token = mint_token("prov", expires_in=60, age=61)
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 401
    assert client.get(SCIM_USERS, headers=bearer(token)).status_code == 401


def test_d09_refresh_token_is_not_an_access_token(client: FlaskClient,
                                                  enterprise: Organisation) -> None:
    provisioning_client()
    mint_token("prov", refresh="the-refresh-token-value")
    response = client.get(OPERATORS, headers=bearer("the-refresh-token-value"))
    assert response.status_code == 401


def test_d09_token_in_query_or_cookie_is_ignored(client: FlaskClient, devca: DevCA,
                                                 enterprise: Organisation) -> None:
    """D09: only the Authorization header counts (RFC 6750 §2.3 is not offered); an admin's
    console login (a cookie) does not open the API either: no CSRF surface."""
    _, secret = provisioning_client()
    token = client_token(client, "prov", secret)
    assert client.get(OPERATORS, query_string={"access_token": token}).status_code == 401
    assert ukey_login(client, devca.sample("demo").pem_path.read_bytes()).status_code in (200,
                                                                                           303)
    assert client.get(OPERATORS).status_code == 401
    assert client.post(OPERATORS, json={}).status_code == 401


def test_d09_disabled_client_token_is_401(client: FlaskClient, enterprise: Organisation) -> None:
    row, secret = provisioning_client()
    token = client_token(client, "prov", secret)
    row.enabled = False
    db.session.commit()
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 401
    assert refusals("client_disabled")


# --- 403 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("scope", "method", "path", "needed"), [
    ("scim", "get", OPERATORS, "console.read console.write"),
    ("console.read", "post", OPERATORS, "console.write"),
    ("console.read", "delete", f"{OPERATORS}/1", "console.write"),
    ("console.read", "post", "/api/v1/offices", "console.write"),
    ("console.read console.write", "get", SCIM_USERS, "scim"),
    ("console.write", "post", SCIM_USERS, "scim"),
])
def test_d09_insufficient_scope_is_403(client: FlaskClient, enterprise: Organisation,
                                       scope: str, method: str, path: str, needed: str) -> None:
    """D09: RFC 6750 §3.1 insufficient_scope names the scope needed; nothing written."""
    _, secret = provisioning_client()
    token = client_token(client, "prov", secret, scope=scope)
    response = getattr(client, method)(path, headers=bearer(token), json={})
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="idp", error="insufficient_scope", scope="{needed}"')
    if not path.startswith("/scim"):
        assert response.json["error"] == "insufficient_scope"
        assert response.json["message"] == f"访问令牌的授权范围不足，需要 {needed}"
    assert refusals("insufficient_scope")


def test_d09_write_scope_may_read(client: FlaskClient, enterprise: Organisation) -> None:
    _, secret = provisioning_client()
    token = client_token(client, "prov", secret, scope="console.write")
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 200


def test_d09_client_without_tenant_is_403(client: FlaskClient, enterprise: Organisation) -> None:
    """D09: a client_credentials token of a client bound to no enterprise acts for nobody."""
    _, secret = provisioning_client(tenant=None, scope=ALL_API)
    token = client_token(client, "prov", secret)
    for path in (OPERATORS, SCIM_USERS):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 403
        assert "WWW-Authenticate" not in response.headers
    assert client.get(OPERATORS, headers=bearer(token)).json == {
        "error": "access_denied",
        "message": "访问令牌不代表任何物业企业（需要企业管理员或绑定企业的预配客户端）"}
    assert refusals("no_tenant")


def test_d09_client_of_a_disabled_enterprise_is_403(client: FlaskClient,
                                                    enterprise: Organisation) -> None:
    _, secret = provisioning_client()
    token = client_token(client, "prov", secret)
    enterprise.status = "disabled"
    db.session.commit()
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 403


def test_d09_person_who_is_no_admin_is_403(client: FlaskClient, enterprise: Organisation) -> None:
    """D09: a person's token with the console scopes, but the person administers nothing."""
    make_client(scope="openid console.read console.write")
    person = make_account(role="operator")
    token = mint_token("rp1", account_id=person.id, scope="openid console.read console.write")
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 403


def test_d09_person_token_of_inactive_account_is_401(client: FlaskClient,
                                                     enterprise: Organisation) -> None:
    make_client(scope="openid console.read")
    admin = db.session.scalar(sa.select(Account).where(Account.organisation_id == enterprise.id))
    assert admin is not None
    token = mint_token("rp1", account_id=admin.id, scope="openid console.read")
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 200
    admin.status = "disabled"
    db.session.commit()
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 401


# --- an enterprise admin's own token -------------------------------------------------------------

def test_d09_enterprise_admin_token_through_the_code_flow(client: FlaskClient, devca: DevCA,
                                                          enterprise: Organisation) -> None:
    """D09: an admin (UKey login) authorizes an application for console.read console.write;
    its token acts for the admin's enterprise, and writes are audited with the client, the
    enterprise and the admin."""
    make_operator(enterprise)
    token = admin_token(client, devca, "openid console.read console.write")
    listed = client.get(OPERATORS, headers=bearer(token))
    assert listed.status_code == 200, listed.text
    assert [o["phone"] for o in listed.json["items"]] == ["13900000001"]
    operator_id = listed.json["items"][0]["id"]
    assert client.patch(f"{OPERATORS}/{operator_id}", json={"status": "disabled"},
                        headers=bearer(token)).status_code == 200
    event = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.event == "api.operator.update"))
    assert event is not None
    assert event.client_id == "rp1" and event.organisation_id == enterprise.id
    admin = db.session.scalar(sa.select(Account).where(Account.organisation_id == enterprise.id))
    assert admin is not None and event.account_id == admin.id
    read_only = admin_token(client, devca, "openid console.read", login=False)
    assert client.get(OPERATORS, headers=bearer(read_only)).status_code == 200
    assert client.delete(f"{OPERATORS}/{operator_id}",
                         headers=bearer(read_only)).status_code == 403


# --- RFC 8705: certificate-bound tokens ---------------------------------------------------------

def test_d09_certificate_bound_token_needs_its_certificate(client: FlaskClient, devca: DevCA,
                                                           enterprise: Organisation) -> None:
    """D09 / RFC 8705 §3: a token bound to the client's TLS certificate is good only over a
    connection presenting that certificate, as at /userinfo."""
    _, secret = provisioning_client(tls_client_certificate_bound_access_tokens=True)
    pem = devca.sample("demo").pem_path.read_bytes()
    other = devca.sample("unregistered").pem_path.read_bytes()
    token = client_token(client, "prov", secret, **via_proxy(pem))
    assert client.get(OPERATORS, headers=bearer(token)).status_code == 401
    options: dict[str, Any] = via_proxy(other)
    options["headers"].update(bearer(token))
    assert client.get(OPERATORS, **options).status_code == 401
    options = via_proxy(pem)
    options["headers"].update(bearer(token))
    assert client.get(OPERATORS, **options).status_code == 200
    assert refusals("certificate_binding")


# --- tenant isolation ----------------------------------------------------------------------------

def test_d09_another_enterprises_ids_are_404(client: FlaskClient, enterprise: Organisation,
                                             other_enterprise: Organisation,
                                             auth: dict[str, str]) -> None:
    """D09: enterprise A's token never finds B's operators or offices: 404 like an unknown id,
    for every method, and B's rows are unchanged."""
    theirs = make_operator(other_enterprise, phone="13900000002", name="李四")
    their_office = make_office(other_enterprise, name="福州某某管理处")
    mine = make_operator(enterprise)
    for method, path, body in [
        ("get", f"{OPERATORS}/{theirs.id}", None),
        ("patch", f"{OPERATORS}/{theirs.id}", {"status": "disabled"}),
        ("delete", f"{OPERATORS}/{theirs.id}", None),
        ("get", f"/api/v1/offices/{their_office.id}", None),
        ("patch", f"/api/v1/offices/{their_office.id}", {"name": "改名管理处"}),
        ("delete", f"/api/v1/offices/{their_office.id}", None),
        ("get", f"{SCIM_USERS}/{theirs.id}", None),
        ("delete", f"{SCIM_USERS}/{theirs.id}", None),
        ("get", f"/scim/v2/Groups/{other_enterprise.id}", None),
        ("get", f"/scim/v2/Groups/{their_office.id}", None),
    ]:
        response = getattr(client, method)(path, headers=auth, json=body)
        assert response.status_code == 404, (method, path, response.text)
    listed = client.get(OPERATORS, headers=auth).json
    assert [o["id"] for o in listed["items"]] == [mine.id]
    scim = client.get(SCIM_USERS, headers=auth).json
    assert [u["id"] for u in scim["Resources"]] == [str(mine.id)]
    # Department of another enterprise in a create: not a department of this one.
    created = client.post(OPERATORS, headers=auth, json={
        "name": "李四", "department_id": their_office.id, "phone": "13900000009"})
    assert created.status_code == 400 and created.json["field"] == "department_id"
    db.session.expire_all()
    assert theirs.status == "active" and their_office.status == "active"
    assert their_office.name == "福州某某管理处"
