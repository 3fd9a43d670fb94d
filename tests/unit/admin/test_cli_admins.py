"""`idp admins add` and `idp admins reset-totp`: a platform admin (person account, the
platform organisation, the platform_admin identity) with a fresh TOTP seed, sealed at rest,
its otpauth:// URI printed once."""

from __future__ import annotations

import json

import pyotp
import sqlalchemy as sa

from idp.accounts.models import Account, Identity
from idp.admin.access import (
    ADMIN_ROLE,
    PLATFORM_ORG_NAME,
    TOTP_PURPOSE,
    is_platform_admin,
    matching_step,
)
from idp.cli import cli
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.security import unseal
from tests.factories import PASSWORD, make_account
from tests.unit.admin.helpers import counts, events


def run(app, *args: str):
    return app.test_cli_runner().invoke(cli, list(args), catch_exceptions=False)


def account_of(phone: str) -> Account:
    db.session.expire_all()
    found = db.session.scalar(sa.select(Account).where(Account.phone == phone))
    assert found is not None
    return found


def test_admins_add_creates_everything_and_prints_the_uri_once(app):
    result = run(app, "admins", "add", "--phone", "13700000009", "--name", "运维甲", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["phone"] == "13700000009" and out["initial_password"]
    uri = pyotp.parse_uri(out["otpauth_uri"])
    assert out["otpauth_uri"].startswith("otpauth://totp/")
    account = account_of("13700000009")
    assert account.must_change_password and is_platform_admin(account)
    assert uri.secret not in (account.totp_secret or "")
    assert unseal(app.config["IDP"].key_passphrase, TOTP_PURPOSE, account.totp_secret) == (
        uri.secret)
    assert matching_step(uri.secret, uri.now(), __import__("time").time()) is not None
    org = db.session.scalar(sa.select(Organisation).where(Organisation.type == "platform"))
    assert org is not None and org.name == PLATFORM_ORG_NAME
    assert events("admin.provision", "success")[0].account_id == account.id


def test_admins_add_reuses_the_account_and_the_organisation(app):
    existing = make_account("13700000009", platform=None)
    assert run(app, "admins", "add", "--phone", "13700000009", "--name", "x").exit_code == 0
    first = account_of("13700000009").totp_secret
    before = counts()
    result = run(app, "admins", "add", "--phone", "137-0000-0009", "--name", "x", "--json")
    assert result.exit_code == 0
    assert "initial_password" not in json.loads(result.stdout)
    account = account_of("13700000009")
    assert account.id == existing.id and account.totp_secret != first  # a fresh seed
    assert counts() == before  # no second organisation, identity or account
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Identity).where(
        Identity.role == ADMIN_ROLE)) == 1


def test_admins_add_with_password_keeps_it(app):
    result = run(app, "admins", "add", "--phone", "13700000009", "--name", "运维乙",
                 "--password", PASSWORD)
    assert result.exit_code == 0
    assert "otpauth://totp/" in result.stdout and "initial password" not in result.stdout
    assert not account_of("13700000009").must_change_password


def test_admins_add_bad_input_writes_nothing(app):
    before = counts()
    for args in (["--phone", "123", "--name", "x"],
                 ["--phone", "13700000009", "--name", "<script>"],
                 ["--phone", "13700000009", "--name", "x", "--password", "weak"]):
        result = run(app, "admins", "add", *args)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
    assert counts() == before


def test_reset_totp_replaces_the_seed(app):
    out = json.loads(run(app, "admins", "add", "--phone", "13700000009", "--name", "运维",
                         "--json").stdout)
    old = pyotp.parse_uri(out["otpauth_uri"]).secret
    result = run(app, "admins", "reset-totp", "--phone", "13700000009", "--json")
    assert result.exit_code == 0
    new = pyotp.parse_uri(json.loads(result.stdout)["otpauth_uri"]).secret
    assert new != old
    account = account_of("13700000009")
    assert unseal(app.config["IDP"].key_passphrase, TOTP_PURPOSE, account.totp_secret) == new
    assert account.totp_last_step is None
    assert events("admin.totp_reset", "success")[0].account_id == account.id


def test_reset_totp_refuses_who_is_not_an_admin(app):
    make_account("13912345678")
    before = counts()
    result = run(app, "admins", "reset-totp", "--phone", "13912345678")
    assert result.exit_code != 0 and "不是平台管理员" in result.output
    assert run(app, "admins", "reset-totp", "--phone", "abc").exit_code != 0
    assert counts() == before
