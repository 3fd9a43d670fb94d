"""S15: disabling, deleting or re-numbering an operator ends what they hold *at once* — tokens,
unused authorization codes, refresh grants and browser sessions — found in review: a code
issued a moment before 停用 still turned into tokens, and an old browser session of a deleted
(then re-added) operator still got codes without the forced password change."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Identity
from idp.console.operators import MSG_PHONE_SHARED, delete_operator, update_operator
from idp.console.tenant import Tenant
from idp.errors import FieldError
from idp.extensions import db
from idp.gateways.phone import Outcome, Verification
from idp.oidc.models import Token
from idp.orgs.models import Organisation
from tests.factories import (
    code_tokens,
    exchange,
    get_code,
    make_client,
    make_enterprise,
    make_operator,
)

PHONE = "13912345678"  # the phone tests.factories.login uses


class Match:
    def verify(self, name: str, phone: str) -> Verification:
        return Verification(Outcome.MATCH, "中国移动", "test", True)


def _tenant(org: Organisation) -> Tenant:
    return Tenant(enterprise=org, actor_id=None, client_id="test")


def test_s15_a_code_issued_before_disable_no_longer_yields_tokens(
        app: Flask, client: FlaskClient) -> None:
    """S15: 停用 expires the operator's unused codes of that identity (invalid_grant)."""
    org = make_enterprise()
    operator = make_operator(org, phone=PHONE, name="测试用户")
    _, secret = make_client()
    code, _ = get_code(client, app)
    after = update_operator(_tenant(org), operator, status="disabled", service=Match())
    db.session.commit()
    after()
    response = exchange(client, code, secret)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_s15_a_refresh_token_of_a_disabled_identity_is_refused(
        app: Flask, client: FlaskClient) -> None:
    """S15: even a refresh token that escaped revocation dies with its identity."""
    org = make_enterprise()
    operator = make_operator(org, phone=PHONE, name="测试用户")
    _, secret = make_client()
    tokens = code_tokens(client, app, secret)
    identity = db.session.get(Identity, operator.identity_id)
    assert identity is not None
    identity.status = "disabled"  # as 停用 does, but without its revocation
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Token).where(
        Token.revoked_at.is_(None))) == 1
    refreshed = client.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"Authorization": client_basic(secret)})
    assert refreshed.status_code == 400 and refreshed.json["error"] == "invalid_grant"


def client_basic(secret: str) -> str:
    from tests.factories import basic

    return basic("rp1", secret)["Authorization"]


@pytest.mark.parametrize("readd", [False, True])
def test_s15_delete_ends_the_browser_session_even_after_the_phone_is_added_again(
        app: Flask, client: FlaskClient, readd: bool) -> None:
    """S15: after 删除 the operator's open browser session is over — also when the admin adds
    the same phone again (a fresh initial password must be used, the old session is gone)."""
    from idp.console.operators import add_operator, check_new

    org = make_enterprise()
    operator = make_operator(org, phone=PHONE, name="测试用户")
    make_client()
    get_code(client, app)  # logged in, with a code issued
    assert client.get("/").status_code == 200
    after = delete_operator(_tenant(org), operator)
    db.session.commit()
    after()
    if readd:
        new = check_new(_tenant(org), name="测试用户", department_id=org.id, category="",
                        phone=PHONE, role="", remark="")
        add_operator(_tenant(org), new, service=Match())
        db.session.commit()
    home = client.get("/")
    assert home.status_code == 303 and home.location.endswith("/login")


def test_s15_phone_of_an_account_that_also_works_elsewhere_is_not_changed(
        app: Flask, client: FlaskClient) -> None:
    """S15 修改: the phone is the person's login everywhere; an enterprise may not change it for
    an account that also has another identity (here: an operator of another enterprise's
    committee role)."""
    org = make_enterprise()
    operator = make_operator(org, phone=PHONE, name="测试用户")
    committee = Organisation(type="committee", name="和谐花园业主委员会")
    db.session.add(committee)
    db.session.flush()
    db.session.add(Identity(account_id=operator.account_id, organisation_id=committee.id,
                            role="committee_handler", platform="repair_fund"))
    db.session.commit()
    with pytest.raises(FieldError) as refused:
        update_operator(_tenant(org), operator, phone="13912345679", service=Match())
    assert refused.value.message == MSG_PHONE_SHARED
    db.session.rollback()
    assert operator.account.phone == PHONE
