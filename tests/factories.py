"""Factory functions and flow helpers: ``make_account(**overrides)``, ``make_client(**overrides)``,
``login(client, app, phone, password)``, ``get_code(...)``."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.accounts.service import create_person
from idp.extensions import db
from idp.oidc.clients import ClientSpec, register_client
from idp.oidc.models import Client
from idp.orgs.models import Organisation, PropertyArea
from tests.conftest import TEST_PROXY, csrf_from, last_code

PASSWORD = "Passw0rd!"
REDIRECT = "https://rp.example.cn/callback"


def make_account(phone: str = "13912345678", name: str = "测试用户", password: str = PASSWORD,
                 must_change: bool = False, platform: str | None = "repair_fund",
                 role: str = "operator", **overrides: Any) -> Account:
    account = create_person(phone, name, password, must_change=must_change)
    for key, value in overrides.items():
        setattr(account, key, value)
    if platform:
        org = Organisation(type="enterprise", name="上海申大物业有限公司",
                           uscc=None)
        db.session.add(org)
        db.session.flush()
        db.session.add(Identity(account_id=account.id, organisation_id=org.id, role=role,
                                platform=platform))
    db.session.commit()
    return account


def make_client(**overrides: Any) -> tuple[Client, str | None]:
    data: dict[str, Any] = {
        "client_id": "rp1",
        "name": "测试业务系统",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://rp.example.cn/"],
        "platform": "repair_fund",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    }
    data.update(overrides)
    if data.get("public"):
        data["grant_types"] = [g for g in data["grant_types"] if g != "client_credentials"]
    spec = ClientSpec.from_mapping(data)
    secret = register_client(spec)
    client = db.session.get(Client, spec.client_id)
    assert client is not None
    return client, secret


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def send_sms(client: FlaskClient, phone: str) -> Any:
    page = client.get("/login")
    return client.post("/login/sms", data={"phone": phone, "csrf_token": csrf_from(page.text)},
                       headers={"Accept": "application/json"})


def login(client: FlaskClient, app: Flask, phone: str = "13912345678", password: str = PASSWORD,
          interaction: str = "", code: str | None = None) -> Any:
    """Full phone login through the real pages; returns the POST /login response."""
    assert send_sms(client, phone).status_code == 200
    page = client.get("/login" + (f"?i={interaction}" if interaction else ""))
    return client.post("/login", data={
        "phone": phone, "password": password,
        "sms_code": code or last_code(app, phone),
        "csrf_token": csrf_from(page.text), "interaction": interaction,
    })


def authorize_params(client_id: str = "rp1", **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
              "scope": "openid profile phone org roles", "state": "st-123",
              "nonce": secrets.token_hex(8)}
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(client: FlaskClient, app: Flask, **extra: str) -> tuple[str, dict[str, str]]:
    """Authorize as an already logged-in or fresh user; return (code, params)."""
    params = authorize_params(**extra)
    response = client.get("/authorize", query_string=params)
    if response.status_code == 303 and "/login" in response.location:
        interaction = query(response.location)["i"]
        response = login(client, app, interaction=interaction)
        assert response.status_code == 303, response.text
        response = client.get(response.location)
    assert response.status_code == 302, response.text
    assert response.location.startswith(REDIRECT)
    result = query(response.location)
    assert "code" in result, result
    return result["code"], params


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def setup_rp(**overrides: Any) -> str:
    """An account and the confidential client rp1 (or ``overrides``); returns its secret."""
    make_account()
    _, secret = make_client(**overrides)
    assert secret is not None
    return secret


def exchange(client: FlaskClient, code: str, secret: str | None = None,
             client_id: str = "rp1", **extra: str) -> Any:
    """POST the code to /token, with HTTP Basic when there is a secret (else as a public client)."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    headers = basic(client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = client_id
    return client.post("/token", data=data, headers=headers)


def code_tokens(client: FlaskClient, app: Flask, secret: str, client_id: str = "rp1",
                **extra: str) -> dict[str, Any]:
    """Authorize (logging in when needed) and exchange the code; return the token response."""
    code, _ = get_code(client, app, client_id=client_id, **extra)
    response = exchange(client, code, secret, client_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json
    return body


# --- UKey -------------------------------------------------------------------------------

def make_enterprise(uscc: str = "91310115MA1FL0D34W", name: str = "演示物业服务有限公司",
                    platforms: tuple[str, ...] = ("repair_fund", "supervision"),
                    ukey: bool = True, status: str = "active") -> Organisation:
    """A registered enterprise and (``ukey``) its UKey account with enterprise_admin
    identities, as registration will create them."""
    org = Organisation(type="enterprise", name=name, uscc=uscc, org_code=uscc[8:17],
                       district="310115")
    db.session.add(org)
    db.session.flush()
    if ukey:
        account = Account(kind="ukey", name=name, organisation_id=org.id, status=status)
        db.session.add(account)
        db.session.flush()
        for platform in platforms:
            db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                                    role="enterprise_admin", platform=platform))
    db.session.commit()
    return org


def via_proxy(pem: bytes | str | None, header: str = "X-SSL-Client-Cert") -> dict[str, Any]:
    """Request options that hand the provider a client certificate as nginx does."""
    from urllib.parse import quote

    headers: dict[str, str] = {}
    if pem is not None:
        text = pem.decode("ascii") if isinstance(pem, bytes) else pem
        headers[header] = quote(text, safe="") if header == "X-SSL-Client-Cert" else text
    return {"headers": headers, "environ_base": {"REMOTE_ADDR": TEST_PROXY}}


def ukey_login(client: FlaskClient, pem: bytes | str | None, interaction: str = "") -> Any:
    """【UKey登录】 through the real page with ``pem`` presented by the (test) proxy."""
    page = client.get("/login" + (f"?i={interaction}" if interaction else ""), **via_proxy(pem))
    return client.post("/login/ukey", data={"csrf_token": csrf_from(page.text),
                                            "interaction": interaction}, **via_proxy(pem))


# --- organisations (centres, property areas) ------------------------------------------------

def make_centre(phone: str = "13600000001", district: str = "310115",
                name: str | None = None, password: str = PASSWORD) -> Account:
    """A district centre (``district`` 310000: the city centre) and a reviewer of it, a person
    account that logs in with phone + password + SMS code."""
    from idp.validators import DISTRICTS

    org = Organisation(type="centre", district=district,
                       name=name or f"{DISTRICTS.get(district, '上海市')}维修资金管理中心")
    db.session.add(org)
    db.session.flush()
    account = create_person(phone, "审核员" + phone[-4:], password, must_change=False)
    db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                            role="centre_reviewer", platform="console"))
    db.session.commit()
    return account


def make_area(name: str = "和谐花园", district: str = "310115") -> PropertyArea:
    area = PropertyArea(name=name, district=district)
    db.session.add(area)
    db.session.commit()
    return area


# --- the tenant console (offices, operators) ------------------------------------------------

def make_office(enterprise: Organisation, name: str = "演示物业和谐花园管理处") -> Organisation:
    """A 小区管理处 of ``enterprise`` (T03), with its 管理处编码."""
    from idp.console.offices import next_office_code

    office = Organisation(type="office", name=name, parent_id=enterprise.id,
                          district=enterprise.district, code=next_office_code(enterprise))
    db.session.add(office)
    db.session.commit()
    return office


def make_operator(enterprise: Organisation, phone: str = "13900000001", name: str = "张三",
                  department: Organisation | None = None, status: str = "active",
                  password: str = PASSWORD) -> Any:
    """An operator of ``enterprise`` as 增加 (S12) makes one, without the carrier check: a
    person account (no password change pending), its identity on the fund system and the
    ``operator`` row."""
    from idp.console.models import ROLE_OF_CATEGORY, Operator

    department = department or enterprise
    category = "office" if department.type == "office" else "enterprise"
    role = ROLE_OF_CATEGORY[category]
    account = db.session.scalar(sa.select(Account).where(Account.phone == phone))
    if account is None:
        account = create_person(phone, name, password, must_change=False)
    identity = Identity(account_id=account.id, organisation_id=department.id, role=role,
                        platform="repair_fund", status=status)
    db.session.add(identity)
    db.session.flush()
    operator = Operator(enterprise_id=enterprise.id, department_id=department.id,
                        account_id=account.id, identity_id=identity.id, name=name,
                        category=category, role=role, status=status)
    db.session.add(operator)
    db.session.commit()
    return operator
