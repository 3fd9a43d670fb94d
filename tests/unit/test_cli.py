"""The `idp` command (D01: keys and relying parties; D05: the RPs of config/clients.toml;
S17/T05: person accounts with an initial password that must be changed), run through click's
CliRunner against a database of its own, then checked through a fresh app on the same database.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.accounts.models import Account, Identity
from idp.admin.access import TOTP_PURPOSE
from idp.cli import (
    DEMO_ADMIN_PHONE,
    DEMO_AREAS,
    DEMO_OFFICE,
    DEMO_PASSWORD,
    DEMO_PHONE,
    DEMO_REVIEWER_PHONE,
    DEMO_TOTP_SEED,
    cli,
)
from idp.console.models import Operator
from idp.extensions import db
from idp.oidc.models import Client, SigningKey
from idp.orgs.models import Organisation, PropertyArea
from idp.orgs.review import is_reviewer, reviewer_districts
from idp.security import check_client_secret, unseal
from tests.conftest import make_app, table_counts
from tests.factories import REDIRECT, basic, get_code, make_account, make_client, pkce_pair

SECRET_KEY = "cli-test-secret-key-" + "y" * 32

CLIENTS_TOML = """
[[client]]
client_id = "repair_fund"
name = "上海市商品住房维修资金管理系统"
platform = "repair_fund"
secret = "dev-only-repair-fund-secret-change-me-0001"
redirect_uris = ["https://localhost:8601/auth/callback"]
post_logout_redirect_uris = ["https://localhost:8601/"]
grant_types = ["authorization_code", "refresh_token"]

[[client]]
client_id = "supervision"
name = "上海市物业监管平台及招投标系统"
platform = "supervision"
redirect_uris = ["https://localhost:8602/auth/callback"]
public = true
"""


@dataclass
class Idp:
    """Runs `idp …` in a temporary working directory with its own database and instance."""

    cwd: Path
    env: dict[str, str]
    database_url: str

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)

    def app(self) -> Flask:
        """A provider on the same database and secret as the command (to check its work)."""
        return make_app(self.database_url, self.cwd / "instance", secret_key=SECRET_KEY)



def _make_idp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Idp:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("IDP_"):
            monkeypatch.delenv(key)
    env = {
        "IDP_DATABASE_URL": database_url,
        "IDP_INSTANCE_PATH": str(tmp_path / "instance"),
        "IDP_SMS_OUTBOX": str(tmp_path / "instance" / "sms-outbox.jsonl"),
        "IDP_SECRET_KEY": SECRET_KEY,
        "IDP_ISSUER": "http://localhost",
        "IDP_PASSWORD_TIME_COST": "1",
        "IDP_PASSWORD_MEMORY_COST": "1024",
        "IDP_PASSWORD_PARALLELISM": "1",
        "IDP_STORE": "database",
    }
    return Idp(tmp_path, env, database_url)


@pytest.fixture
def idp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Idp:
    """`idp` on a fresh SQLite file, database already initialised."""
    runner = _make_idp(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'idp.sqlite3'}")
    result = runner("init")
    assert result.exit_code == 0, result.output
    return runner


class _Checked:
    """An app context on the command's database, disposed afterwards."""

    def __init__(self, idp: Idp) -> None:
        self.app = idp.app()
        self._ctx = self.app.app_context()

    def __enter__(self) -> Flask:
        self._ctx.push()
        return self.app

    def __exit__(self, *exc: Any) -> None:
        db.session.remove()
        db.engine.dispose()
        self._ctx.pop()


# --- init --------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_d05_init_creates_schema_keys_and_clients_idempotently(tmp_path, monkeypatch,
                                                               pg_database_factory, backend):
    """D05/D01: `idp init` creates the tables, an ES256 and an RS256 key and the clients of
    config/clients.toml; a second run creates no keys and reports the clients "updated"."""
    url = (f"sqlite:///{tmp_path / 'idp.sqlite3'}" if backend == "sqlite"
           else str(pg_database_factory()))
    run = _make_idp(tmp_path, monkeypatch, url)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "clients.toml").write_text(CLIENTS_TOML, encoding="utf-8")

    first = run("init")
    assert first.exit_code == 0, first.output
    assert "created ES256 signing key" in first.stdout
    assert "created RS256 signing key" in first.stdout
    assert "client repair_fund: created" in first.stdout
    assert "client supervision: created" in first.stdout

    second = run("init")
    assert second.exit_code == 0, second.output
    assert "signing key" not in second.stdout
    assert "client repair_fund: updated" in second.stdout
    assert "client supervision: updated" in second.stdout

    with _Checked(run) as app:
        keys = db.session.scalars(sa.select(SigningKey)).all()
        assert sorted(k.alg for k in keys) == ["ES256", "RS256"]
        assert all(k.retired_at is None for k in keys)
        assert all("PRIVATE KEY" in k.private_pem and "ENCRYPTED" in k.private_pem
                   for k in keys)  # encrypted at rest
        clients = {c.client_id: c for c in db.session.scalars(sa.select(Client))}
        assert set(clients) == {"repair_fund", "supervision"}
        assert clients["repair_fund"].name == "上海市商品住房维修资金管理系统"
        assert clients["repair_fund"].secret_hash != "dev-only-repair-fund-secret-change-me-0001"
        assert clients["supervision"].token_endpoint_auth_method == "none"
        # the configured secret authenticates (stored hashed, checked at the token endpoint)
        response = app.test_client().post("/token", data={
            "grant_type": "authorization_code", "code": "nope",
            "redirect_uri": "https://localhost:8601/auth/callback",
        }, headers=basic("repair_fund", "dev-only-repair-fund-secret-change-me-0001"))
        assert response.json["error"] == "invalid_grant"  # authenticated, the code is bad
        jwks = app.test_client().get("/jwks.json").json
        assert {k["alg"] for k in jwks["keys"]} == {"ES256", "RS256"}


def test_d05_init_updates_a_changed_client(idp, tmp_path):
    """D05: editing clients.toml and running init again updates the client in place."""
    path = tmp_path / "clients.toml"
    path.write_text(CLIENTS_TOML, encoding="utf-8")
    assert idp("init", "--clients", str(path)).exit_code == 0
    path.write_text(CLIENTS_TOML.replace("8602/auth/callback", "8603/cb"), encoding="utf-8")
    result = idp("init", "--clients", str(path))
    assert result.exit_code == 0 and "client supervision: updated" in result.stdout
    with _Checked(idp):
        client = db.session.get(Client, "supervision")
        assert client is not None and client.redirect_uris == ["https://localhost:8603/cb"]


@pytest.mark.parametrize(("entry", "named"), [
    ('client_id = "bad id!"\nname = "x"\nredirect_uris = ["https://a.example/cb"]', "client_id"),
    ('client_id = "c1"\nname = "x"\nredirect_uris = ["http://a.example/cb"]', "redirect_uri"),
    ('client_id = "c1"\nname = "x"\nredirect_uris = ["https://a.example/cb"]\ncolour = "red"',
     "colour"),
    ('client_id = "c1"\nname = "x"\nredirect_uris = ["https://a.example/cb"]\nsecret = "short"',
     "secret"),
], ids=["bad-client-id", "http-redirect", "unknown-field", "short-secret"])
def test_d05_init_refuses_bad_clients_toml(idp, tmp_path, entry, named):
    """D05: a bad client in clients.toml stops init with a message naming the field; no client
    of that file is written."""
    path = tmp_path / "bad.toml"
    path.write_text('[[client]]\nclient_id = "good"\nname = "ok"\n'
                    'redirect_uris = ["https://ok.example/cb"]\n\n[[client]]\n' + entry + "\n",
                    encoding="utf-8")
    result = idp("init", "--clients", str(path))
    assert result.exit_code != 0
    assert named in result.output and str(path) in result.output
    with _Checked(idp):
        assert table_counts()["client"] == 0


def test_d05_init_refuses_invalid_toml(idp, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[[client]\nclient_id = ", encoding="utf-8")
    result = idp("init", "--clients", str(path))
    assert result.exit_code != 0
    assert "not valid TOML" in result.output
    assert "Traceback" not in result.output


def test_s17_init_demo_creates_the_demo_account(idp):
    """S17/S08: `idp init --demo` seeds the demo person (phone + password login, no forced
    change) with one identity, and the demo enterprise's UKey account with an enterprise_admin
    identity on each platform; T02/T07: a district centre with a reviewer and property areas;
    T03/S11: an office and the demo person's operator row; the platform admin with the published
    development TOTP seed; running it again adds nothing."""
    for _ in range(2):
        result = idp("init", "--demo")
        assert result.exit_code == 0, result.output
        assert DEMO_PHONE in result.stdout and DEMO_PASSWORD in result.stdout
    with _Checked(idp) as app:
        accounts = db.session.scalars(sa.select(Account).order_by(Account.kind,
                                                                  Account.phone)).all()
        assert [(a.kind, a.phone) for a in accounts] == [
            ("person", DEMO_PHONE), ("person", DEMO_REVIEWER_PHONE),
            ("person", DEMO_ADMIN_PHONE), ("ukey", None)]
        demo, reviewer, admin, ukey = accounts
        assert demo.must_change_password is False
        assert app.extensions["idp.passwords"].verify(demo.password_hash, DEMO_PASSWORD)
        assert ukey.organisation_id is not None and ukey.password_hash is None
        identities = db.session.scalars(sa.select(Identity)).all()
        assert sorted((i.account.phone or "", i.role, i.platform) for i in identities) == [
            ("", "enterprise_admin", "repair_fund"), ("", "enterprise_admin", "supervision"),
            (DEMO_PHONE, "operator", "repair_fund"),
            (DEMO_REVIEWER_PHONE, "centre_reviewer", "console"),
            (DEMO_ADMIN_PHONE, "platform_admin", "console")]
        seed = unseal(app.config["IDP"].key_passphrase, TOTP_PURPOSE, admin.totp_secret)
        assert seed == DEMO_TOTP_SEED and admin.must_change_password is False
        (operator,) = db.session.scalars(sa.select(Operator)).all()
        assert operator.account_id == demo.id and operator.status == "active"
        (office,) = db.session.scalars(sa.select(Organisation).where(
            Organisation.type == "office")).all()
        assert office.name == DEMO_OFFICE and office.code == "MA1FL0D34-001"
        assert is_reviewer(reviewer) and reviewer_districts(reviewer) == {"310115"}
        areas = db.session.scalars(sa.select(PropertyArea.name)).all()
        assert sorted(areas) == sorted(DEMO_AREAS)


# --- clients add ---------------------------------------------------------------------------------

def test_d01_clients_add_json_secret_authenticates_at_token(idp):
    """D01: `idp clients add … --json` prints {client_id, client_secret}; the secret (stored
    hashed) authenticates at /token for client_credentials."""
    result = idp("clients", "add", "--client-id", "X", "--name", "N",
                 "--redirect-uri", "https://a.example/cb",
                 "--grant-type", "client_credentials", "--grant-type", "authorization_code",
                 "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"client_id", "client_secret"}
    assert printed["client_id"] == "X"
    secret = printed["client_secret"]
    assert isinstance(secret, str) and len(secret) >= 32

    with _Checked(idp) as app:
        stored = db.session.get(Client, "X")
        assert stored is not None and secret not in (stored.secret_hash or "")
        http = app.test_client()
        ok = http.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic("X", secret))
        assert ok.status_code == 200, ok.text
        assert ok.json["token_type"] == "Bearer" and ok.json["access_token"]
        assert "refresh_token" not in ok.json and "id_token" not in ok.json
        wrong = http.post("/token", data={"grant_type": "client_credentials"},
                          headers=basic("X", secret[:-1] + ("A" if secret[-1] != "A" else "B")))
        assert wrong.status_code == 401
        assert wrong.json["error"] == "invalid_client"


def test_d01_clients_add_default_grants_refuse_client_credentials(idp):
    """D01: without --grant-type client_credentials the machine grant is not allowed."""
    result = idp("clients", "add", "--client-id", "web", "--name", "Web",
                 "--redirect-uri", "https://a.example/cb", "--json")
    assert result.exit_code == 0, result.output
    secret = json.loads(result.stdout)["client_secret"]
    with _Checked(idp) as app:
        response = app.test_client().post("/token", data={"grant_type": "client_credentials"},
                                          headers=basic("web", secret))
        assert response.status_code == 400
        assert response.json["error"] == "unauthorized_client"


def test_d01_clients_add_public_has_no_secret(idp):
    """D01: `--public` registers a PKCE client without a secret: client_secret is null."""
    result = idp("clients", "add", "--client-id", "spa", "--name", "单页应用",
                 "--redirect-uri", "http://localhost:3000/cb", "--public", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"client_id": "spa", "client_secret": None}
    with _Checked(idp):
        client = db.session.get(Client, "spa")
        assert client is not None
        assert client.secret_hash is None and client.token_endpoint_auth_method == "none"


def test_d01_clients_add_all_options_are_stored(idp):
    result = idp("clients", "add", "--client-id", "rp.full", "--name", "全部选项",
                 "--redirect-uri", "https://a.example/cb", "--redirect-uri", "https://b.example/cb",
                 "--post-logout-redirect-uri", "https://a.example/",
                 "--backchannel-logout-uri", "https://a.example/bc",
                 "--initiate-login-uri", "https://a.example/login",
                 "--platform", "supervision", "--auth-method", "client_secret_post")
    assert result.exit_code == 0, result.output
    assert "client_secret:" in result.stdout
    with _Checked(idp):
        client = db.session.get(Client, "rp.full")
        assert client is not None
        assert client.redirect_uris == ["https://a.example/cb", "https://b.example/cb"]
        assert client.post_logout_redirect_uris == ["https://a.example/"]
        assert client.backchannel_logout_uri == "https://a.example/bc"
        assert client.initiate_login_uri == "https://a.example/login"
        assert client.platform == "supervision"
        assert client.token_endpoint_auth_method == "client_secret_post"


BAD_CLIENTS = [
    ("http-redirect", ["--client-id", "c1", "--redirect-uri", "http://a.example/cb"],
     "redirect_uri"),
    ("fragment", ["--client-id", "c1", "--redirect-uri", "https://a.example/cb#frag"],
     "fragment"),
    ("relative-redirect", ["--client-id", "c1", "--redirect-uri", "/cb"], "redirect_uri"),
    ("javascript-redirect", ["--client-id", "c1", "--redirect-uri", "javascript:alert(1)"],
     "redirect_uri"),
    ("no-redirect", ["--client-id", "c1"], "redirect_uri"),
    ("bad-client-id-space", ["--client-id", "bad id", "--redirect-uri", "https://a.example/cb"],
     "client_id"),
    ("bad-client-id-html", ["--client-id", "<script>", "--redirect-uri", "https://a.example/cb"],
     "client_id"),
    ("client-id-too-long", ["--client-id", "a" * 65, "--redirect-uri", "https://a.example/cb"],
     "client_id"),
    ("empty-client-id", ["--client-id", "", "--redirect-uri", "https://a.example/cb"],
     "client_id"),
    ("bad-post-logout", ["--client-id", "c1", "--redirect-uri", "https://a.example/cb",
                         "--post-logout-redirect-uri", "http://a.example/"],
     "post_logout_redirect_uri"),
    ("public-client-credentials", ["--client-id", "c1", "--redirect-uri", "https://a.example/cb",
                                   "--public", "--grant-type", "client_credentials"],
     "client_credentials"),
    ("private-key-jwt-without-jwks", ["--client-id", "c1", "--redirect-uri",
                                      "https://a.example/cb", "--auth-method", "private_key_jwt"],
     "jwks"),
    ("unknown-platform", ["--client-id", "c1", "--redirect-uri", "https://a.example/cb",
                          "--platform", "tax"], "platform"),
]


@pytest.mark.parametrize(("args", "named"), [c[1:] for c in BAD_CLIENTS],
                         ids=[c[0] for c in BAD_CLIENTS])
def test_d01_clients_add_refuses_bad_input(idp, args, named):
    """D01: bad client metadata → non-zero exit, a message naming the field, nothing written."""
    result = idp("clients", "add", "--name", "N", "--json", *args)
    assert result.exit_code != 0
    assert named in result.output
    assert "Traceback" not in result.output
    assert result.stdout == "" or not result.stdout.lstrip().startswith("{")
    with _Checked(idp):
        assert table_counts()["client"] == 0


def test_d01_clients_add_refuses_duplicate_client_id(idp):
    """D01: registering an existing client_id fails and leaves the first client untouched."""
    first = idp("clients", "add", "--client-id", "X", "--name", "First",
                "--redirect-uri", "https://a.example/cb", "--json")
    assert first.exit_code == 0, first.output
    secret = json.loads(first.stdout)["client_secret"]
    again = idp("clients", "add", "--client-id", "X", "--name", "Second",
                "--redirect-uri", "https://b.example/cb", "--json")
    assert again.exit_code != 0
    assert "already registered" in again.output
    with _Checked(idp):
        assert table_counts()["client"] == 1
        client = db.session.get(Client, "X")
        assert client is not None and client.name == "First"
        assert client.redirect_uris == ["https://a.example/cb"]
        assert check_client_secret(secret, client.secret_hash)  # the first secret still works


def test_d01_clients_add_private_key_jwt_with_jwks_file(idp, tmp_path):
    """D01: --jwks-file registers a private_key_jwt client (no secret); a bad file is refused."""
    from joserfc.jwk import ECKey

    jwks = {"keys": [dict(ECKey.generate_key("P-256").as_dict(private=False), kid="k1")]}
    good = tmp_path / "jwks.json"
    good.write_text(json.dumps(jwks), encoding="utf-8")
    result = idp("clients", "add", "--client-id", "m2m", "--name", "Machine",
                 "--grant-type", "client_credentials", "--auth-method", "private_key_jwt",
                 "--jwks-file", str(good), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"client_id": "m2m", "client_secret": None}

    bad = tmp_path / "bad.json"
    bad.write_text("not json", encoding="utf-8")
    refused = idp("clients", "add", "--client-id", "m2m2", "--name", "Machine",
                  "--grant-type", "client_credentials", "--auth-method", "private_key_jwt",
                  "--jwks-file", str(bad), "--json")
    assert refused.exit_code != 0 and "not a JSON key set" in refused.output
    with _Checked(idp):
        assert db.session.get(Client, "m2m2") is None


# --- users add -----------------------------------------------------------------------------------

def test_t05_users_add_prints_initial_password_and_forces_change(idp):
    """T05/S17: `idp users add … --json` prints a generated initial password that works and
    must be changed at first login."""
    result = idp("users", "add", "--phone", "13800138000", "--name", "王芳", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["phone"] == "13800138000"
    initial = printed["initial_password"]
    assert isinstance(initial, str) and len(initial) >= 8
    with _Checked(idp) as app:
        account = db.session.get(Account, printed["id"])
        assert account is not None
        assert account.name == "王芳" and account.kind == "person"
        assert account.must_change_password is True
        assert account.password_hash != initial
        assert app.extensions["idp.passwords"].verify(account.password_hash, initial)
        events = db.session.execute(sa.text(
            "SELECT event, account_id FROM audit_event")).all()
        assert ("account.create", account.id) in [tuple(e) for e in events]


def test_t05_users_add_with_password_and_no_must_change(idp):
    """T05: an explicit password is not echoed; --no-must-change clears the forced change."""
    result = idp("users", "add", "--phone", "+86 139-1234-5678", "--name", "李雷",
                 "--password", "Chang3-Me!", "--no-must-change", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert "initial_password" not in printed and "Chang3-Me!" not in result.stdout
    assert printed["phone"] == "13912345678"  # normalised
    with _Checked(idp) as app:
        account = db.session.get(Account, printed["id"])
        assert account is not None and account.must_change_password is False
        assert app.extensions["idp.passwords"].verify(account.password_hash, "Chang3-Me!")


BAD_USERS = [
    ("too-short", ["--phone", "13800138000", "--password", "weak"], "密码长度至少8位"),
    ("two-classes", ["--phone", "13800138000", "--password", "abcdefgh123"], "至少三类"),
    ("contains-phone", ["--phone", "13800138000", "--password", "Aa!13800138000"],
     "不能包含手机号码"),
    ("non-ascii-password", ["--phone", "13800138000", "--password", "Passw0rd密码"],
     "密码只能包含"),
    ("bad-phone", ["--phone", "12345"], "手机号格式不正确"),
    ("landline", ["--phone", "021-12345678"], "手机号格式不正确"),
    ("sql-phone", ["--phone", "13800138000' OR '1'='1"], "手机号格式不正确"),
    ("empty-name", ["--phone", "13800138000", "--name", "   "], "姓名"),
    ("long-name", ["--phone", "13800138000", "--name", "王" * 51], "姓名"),
]


@pytest.mark.parametrize(("args", "named"), [c[1:] for c in BAD_USERS],
                         ids=[c[0] for c in BAD_USERS])
def test_t05_users_add_refuses_bad_input(idp, args, named):
    """T05: a weak password or a bad phone/name → error naming the rule, nothing written."""
    if "--name" not in args:
        args = [*args, "--name", "王芳"]
    result = idp("users", "add", "--json", *args)
    assert result.exit_code != 0
    assert named in result.output
    assert "Traceback" not in result.output
    with _Checked(idp):
        counts = table_counts()
        assert counts["account"] == 0 and counts["audit_event"] == 0


def test_t06_users_add_refuses_a_taken_phone(idp):
    """T06: accounts are personal — one phone, one account."""
    assert idp("users", "add", "--phone", "13800138000", "--name", "王芳").exit_code == 0
    again = idp("users", "add", "--phone", "13800138000", "--name", "张伟")
    assert again.exit_code != 0
    assert "该手机号码已有账号" in again.output
    with _Checked(idp):
        assert [a.name for a in db.session.scalars(sa.select(Account))] == ["王芳"]


# --- keys ----------------------------------------------------------------------------------------

def _kids(listing: str) -> dict[str, str]:
    rows = [line.split("\t") for line in listing.strip().splitlines()]
    return {kid: state for kid, _alg, state in rows}


def test_d01_keys_rotate_new_kids_sign_and_old_stay_published(idp):
    """D01: `idp keys rotate` makes new ES256 and RS256 keys that sign at once; the old ones
    are listed as retired and stay in the JWKS."""
    before = _kids(idp("keys", "list").stdout)
    assert len(before) == 2 and set(before.values()) == {"active"}

    result = idp("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "new ES256 signing key" in result.stdout and "new RS256 signing key" in result.stdout
    new_kids = {line.rsplit(" ", 1)[1] for line in result.stdout.strip().splitlines()}
    assert len(new_kids) == 2 and not new_kids & set(before)

    after = _kids(idp("keys", "list").stdout)
    assert set(after) == set(before) | new_kids
    assert all(after[k] == "active" for k in new_kids)
    assert all(after[k].startswith("retired") for k in before)

    with _Checked(idp) as app:
        http = app.test_client()
        published = {k["kid"] for k in http.get("/jwks.json").json["keys"]}
        assert published == set(before) | new_kids
        # a new key signs at once: the ID token of a fresh login carries a new kid
        make_account()
        _, secret = make_client()
        assert secret is not None
        verifier, challenge = pkce_pair()
        code, _ = get_code(http, app, code_challenge=challenge, code_challenge_method="S256")
        tokens = http.post("/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}, headers=basic("rp1", secret))
        assert tokens.status_code == 200, tokens.text
        id_token = jwt.decode(tokens.json["id_token"],
                              KeySet.import_key_set(http.get("/jwks.json").json))
        assert id_token.header["kid"] in new_kids
        assert id_token.header["alg"] == "ES256"
        rotations = db.session.execute(sa.text(
            "SELECT count(*) FROM audit_event WHERE event = 'keys.rotate'")).scalar_one()
        assert rotations == 1


def test_d01_keys_rotate_one_algorithm(idp):
    before = _kids(idp("keys", "list").stdout)
    result = idp("keys", "rotate", "--alg", "RS256")
    assert result.exit_code == 0, result.output
    assert "ES256" not in result.stdout
    with _Checked(idp):
        active = db.session.scalars(
            sa.select(SigningKey).where(SigningKey.retired_at.is_(None))).all()
        assert len(active) == 2
        es = next(k for k in active if k.alg == "ES256")
        rs = next(k for k in active if k.alg == "RS256")
        assert es.kid in before and rs.kid not in before


# --- store ---------------------------------------------------------------------------------------

def test_d03_store_purge(idp):
    """D03: `idp store purge` deletes expired entries of the database store."""
    from datetime import timedelta

    from idp.db import utcnow
    from idp.store.database import StoreEntry

    with _Checked(idp):
        with db.engine.begin() as conn:
            conn.execute(sa.insert(StoreEntry.__table__), [
                {"key": "old", "value": "x", "counter": 0,
                 "expires_at": utcnow() - timedelta(seconds=1)},
                {"key": "live", "value": "y", "counter": 0,
                 "expires_at": utcnow() + timedelta(seconds=600)},
            ])
    result = idp("store", "purge")
    assert result.exit_code == 0, result.output
    assert "purged 1 expired entries" in result.stdout
    with _Checked(idp):
        assert table_counts()["store_entry"] == 1
