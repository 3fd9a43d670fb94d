"""Tokens for the admin API and SCIM tests: a provisioning client bound to an enterprise gets a
client_credentials token through the real /token endpoint; other tokens (a person's, expired,
a refresh token) are minted as rows, exactly as ``idp.oidc.tokens.save_token`` writes them."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from idp.db import utcnow
from idp.extensions import db
from idp.oidc.models import Client, Token
from idp.orgs.models import Organisation
from idp.security import token_hash
from tests.factories import basic, make_client, make_enterprise

OTHER_USCC = "91350100M000100Y43"  # another registered enterprise (tenant isolation)
ALL_API = "console.read console.write scim"


def provisioning_client(client_id: str = "prov", *, tenant: str | None = "91310115MA1FL0D34W",
                        scope: str = ALL_API, **overrides: Any) -> tuple[Client, str]:
    """A client_credentials client bound to ``tenant`` (a USCC; None: bound to nobody)."""
    options: dict[str, Any] = {"client_id": client_id, "name": "企业人事系统",
                               "redirect_uris": [], "grant_types": ["client_credentials"],
                               "platform": None, "scope": scope, **overrides}
    if tenant is not None:
        options["tenant"] = tenant
    row, secret = make_client(**options)
    assert secret is not None
    return row, secret


def client_token(http: FlaskClient, client_id: str, secret: str, scope: str = ALL_API,
                 **request: Any) -> str:
    headers = {**request.pop("headers", {}), **basic(client_id, secret)}
    response = http.post("/token", data={"grant_type": "client_credentials", "scope": scope},
                         headers=headers, **request)
    assert response.status_code == 200, response.text
    token: str = response.json["access_token"]
    return token


def mint_token(client_id: str, *, account_id: str | None = None, scope: str = ALL_API,
               expires_in: int = 600, age: int = 0, revoked: bool = False,
               refresh: str | None = None, cnf_x5t: str | None = None) -> str:
    """A token row as the token endpoint writes it; returns the access token."""
    value = secrets.token_urlsafe(32)
    issued = utcnow() - timedelta(seconds=age)
    db.session.add(Token(
        grant_type="client_credentials" if account_id is None else "authorization_code",
        client_id=client_id, account_id=account_id, scope=scope,
        access_token_hash=token_hash(value),
        refresh_token_hash=token_hash(refresh) if refresh else None,
        refresh_expires_at=issued + timedelta(days=1) if refresh else None,
        issued_at=issued, expires_in=expires_in, family_id=uuid.uuid4().hex,
        revoked_at=utcnow() if revoked else None, cnf_x5t=cnf_x5t))
    db.session.commit()
    return value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def enterprise(app: Any) -> Organisation:
    """The demo enterprise, with its UKey account (an enterprise admin)."""
    return make_enterprise()


@pytest.fixture
def other_enterprise(app: Any) -> Organisation:
    return make_enterprise(uscc=OTHER_USCC, name="福州另一物业有限公司")


@pytest.fixture
def token(client: FlaskClient, enterprise: Organisation) -> str:
    """A client_credentials token of a client bound to ``enterprise``, every API scope."""
    _, secret = provisioning_client()
    return client_token(client, "prov", secret)


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return bearer(token)
