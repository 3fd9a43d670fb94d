"""Passwords (S17, T05): argon2id with configured parameters, the policy of DOMAIN.md, the forced
change at first login, self-service change, lockout after five failures, audit events, and
creating person accounts (`idp users add`).

Apps with other settings (short lockout, short resend interval) are built with ``make_app`` on
the same throw-away database as the ``app`` fixture, so they run on both backends too.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher, Type
from flask import current_app
from flask.testing import FlaskClient

from idp.accounts.models import Account
from idp.accounts.service import MSG_NAME, create_person
from idp.auth.password import MSG_BAD_CHARS, MSG_CLASSES, Passwords
from idp.cli import cli
from idp.config import Settings
from idp.errors import FieldError
from idp.extensions import db
from tests.conftest import csrf_from, last_code, table_counts
from tests.factories import (
    PASSWORD,
    REDIRECT,
    authorize_params,
    login,
    make_account,
    make_client,
    query,
)
from tests.unit.auth.helpers import PHONE, Page, audit_events, field_error, post_login, send

# --- helpers (local to this file) ---------------------------------------------------------------


def password_page(client: FlaskClient, interaction: str = "") -> Any:
    return client.get("/password/change" + (f"?i={interaction}" if interaction else ""))


def post_change(client: FlaskClient, new: str, confirm: str | None = None,
                old: str | None = None, interaction: str = "") -> Any:
    page = password_page(client, interaction)
    assert page.status_code == 200, page.location
    data = {"new_password": new, "confirm_password": new if confirm is None else confirm,
            "csrf_token": csrf_from(page.text), "interaction": interaction}
    if old is not None:
        data["old_password"] = old
    return client.post("/password/change", data=data)


def reload(account: Account) -> Account:
    db.session.rollback()
    fresh = db.session.get(Account, account.id)
    assert fresh is not None
    db.session.refresh(fresh)
    return fresh


def hasher() -> Passwords:
    service: Passwords = current_app.extensions["idp.passwords"]
    return service


# --- hashing ------------------------------------------------------------------------------------

def test_t05_passwords_are_argon2id_with_the_configured_parameters(app):
    """T05: argon2id (argon2-cffi) with time/memory/parallelism from the configuration."""
    account = make_account()
    assert account.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert PASSWORD not in account.password_hash
    assert hasher().verify(account.password_hash, PASSWORD)
    assert not hasher().verify(account.password_hash, PASSWORD + "x")
    other = Passwords(app.config["IDP"].replace(password_time_cost=2, password_memory_cost=2048,
                                                password_parallelism=2))
    assert other.hash(PASSWORD).startswith("$argon2id$v=19$m=2048,t=2,p=2$")


def test_t05_login_rehashes_a_password_hashed_with_old_parameters(app, client):
    """T05: after the parameters change, the next login stores a hash with the new ones."""
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1, type=Type.ID)
    account = make_account(password_hash=old.hash(PASSWORD))
    assert login(client, app).status_code == 303
    account = reload(account)
    assert account.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert hasher().verify(account.password_hash, PASSWORD)


# --- the policy ---------------------------------------------------------------------------------

PREVIOUS = "Older#Pass1"

POLICY_CASES = [
    ("short", "Ab1!xyz", "密码长度至少8位"),
    ("lower-and-digits", "abcdefgh12", MSG_CLASSES),
    ("upper-and-specials", "ABCDEFGH!#", MSG_CLASSES),
    ("lower-only", "abcdefghijkl", MSG_CLASSES),
    ("contains-phone", "Aa!13912345678", "密码不能包含手机号码"),
    ("current", PASSWORD, "新密码不能与原密码相同"),
    ("previous", PREVIOUS, "新密码不能与原密码相同"),
    ("65-chars", "Aa1!" * 16 + "x", "密码长度不能超过64位"),
    ("chinese", "Passw0rd!密码", MSG_BAD_CHARS),
    ("full-width", "Ｐassw0rd!1", MSG_BAD_CHARS),
    ("space", "Pass w0rd!", MSG_BAD_CHARS),
    ("tab", "Pass\tw0rd!", MSG_BAD_CHARS),
]


@pytest.mark.parametrize(("new", "message"), [(n, m) for _, n, m in POLICY_CASES],
                         ids=[i for i, _, _ in POLICY_CASES])
def test_t05_s17_new_password_policy(app, client, new, message):
    """T05/S17: the policy of DOMAIN.md (≥ 8, ≤ 64, 3 of 4 classes, ASCII, not the phone number,
    not the current or previous password): 400, the message beside 「新密码」, nothing changed."""
    account = make_account(must_change=True,
                           previous_password_hash=hasher().hash(PREVIOUS))
    response = login(client, app)
    assert response.status_code == 303
    assert urlsplit(response.location).path == "/password/change"
    before_hash = reload(account).password_hash
    page = password_page(client)
    assert Page(page.text).by_id("new_password", "input")
    labels = {e["attrs"].get("for"): e["text"].strip()
              for e in Page(page.text).elements if e["tag"] == "label"}
    assert labels["new_password"] == "新密码"
    before = table_counts()
    response = post_change(client, new)
    assert response.status_code == 400
    assert field_error(response.text, "new_password") == message
    assert field_error(response.text, "confirm_password") == ""
    assert table_counts() == before
    account = reload(account)
    assert account.password_hash == before_hash
    assert account.must_change_password is True
    assert client.get("/").location.endswith("/password/change")


def test_t05_overlong_password_is_not_called_a_mismatch(app, client):
    """T05: a 200-character new password typed twice identically is refused as too long, and
    「确认新密码」 must not claim that the two entries differ."""
    make_account(must_change=True)
    assert login(client, app).status_code == 303
    new = "Aa1!" * 50
    response = post_change(client, new, confirm=new)
    assert response.status_code == 400
    assert field_error(response.text, "new_password") == "密码长度不能超过64位"
    assert field_error(response.text, "confirm_password") != "两次输入的新密码不一致"


# --- first login --------------------------------------------------------------------------------

def test_s17_t05_first_login_forces_a_change_before_any_code_is_issued(app, client):
    """S17/T05: a first login (initial password) goes to /password/change (303); while the
    change is pending /authorize and / lead there and no code is issued; after the change the
    waiting authorization resumes and yields a code."""
    account = make_account(must_change=True)
    make_client()
    response = client.get("/authorize", query_string=authorize_params())
    assert response.status_code == 303
    uid = query(response.location)["i"]
    response = login(client, app, interaction=uid)
    assert response.status_code == 303
    assert urlsplit(response.location).path == "/password/change"
    assert query(response.location)["i"] == uid

    again = client.get("/authorize", query_string=authorize_params())
    assert again.status_code == 303
    assert urlsplit(again.location).path == "/password/change"
    home = client.get("/")
    assert home.status_code == 303 and home.location.endswith("/password/change")
    assert table_counts()["authorization_code"] == 0

    page = password_page(client, uid)
    assert page.status_code == 200
    assert "首次登录需修改密码" in page.text
    assert not [e for e in Page(page.text).elements if e["attrs"].get("id") == "old_password"]
    response = post_change(client, "N3w#Secret", interaction=uid)
    assert response.status_code == 303
    assert response.location.endswith(f"/authorize/resume/{uid}")
    final = client.get(response.location)
    assert final.status_code == 302
    assert final.location.startswith(REDIRECT)
    result = query(final.location)
    assert result["code"] and result["state"] == "st-123"
    assert table_counts()["authorization_code"] == 1

    account = reload(account)
    assert account.must_change_password is False
    assert account.password_changed_at is not None
    assert hasher().verify(account.password_hash, "N3w#Secret")
    assert hasher().verify(account.previous_password_hash, PASSWORD)
    changes = audit_events("password.change")
    assert [(e.result, e.account_id, e.detail.get("forced")) for e in changes] == [
        ("success", account.id, True)]
    logins = audit_events("login")
    assert [(e.result, e.account_id, e.detail.get("must_change")) for e in logins] == [
        ("success", account.id, True)]


def test_t05_forced_change_without_a_waiting_authorization_goes_home(app, client):
    """T05: the forced change works without an authorization request too, then / shows the
    account."""
    make_account(must_change=True)
    assert login(client, app).status_code == 303
    response = post_change(client, "N3w#Secret")
    assert response.status_code == 303
    assert response.location.endswith("/?changed=1")
    home = client.get(response.location)
    assert home.status_code == 200
    assert "密码修改成功" in home.text


# --- self-service change ------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "confirm", "field", "message"), [
    ("Wrong#Pass1", "N3w#Secret", "N3w#Secret", "old_password", "原密码错误"),
    ("", "N3w#Secret", "N3w#Secret", "old_password", "原密码错误"),
    (PASSWORD, "N3w#Secret", "N3w#Secre7", "confirm_password", "两次输入的新密码不一致"),
    (PASSWORD, "Aa!13912345678", "Aa!13912345678", "new_password", "密码不能包含手机号码"),
    (PASSWORD, "", "", "new_password", "请输入新密码"),
], ids=["wrong-old", "empty-old", "mismatch", "policy", "empty-new"])
def test_t05_self_service_change_refuses_bad_input(app, client, old, new, confirm, field,
                                                   message):
    """T05: self-service change needs the right old password (「原密码错误」) and a matching
    confirmation (「两次输入的新密码不一致」); the message stands beside its field."""
    account = make_account()
    assert login(client, app).location.endswith("/")
    before_hash = reload(account).password_hash
    page = password_page(client)
    assert Page(page.text).by_id("old_password", "input")
    response = post_change(client, new, confirm=confirm, old=old)
    assert response.status_code == 400
    assert field_error(response.text, field) == message
    assert reload(account).password_hash == before_hash
    failures = [e for e in audit_events("password.change") if e.result == "failure"]
    assert len(failures) == (1 if field == "old_password" else 0)


def test_t05_self_service_change(app, client):
    """T05: with the right old password the password changes and the change is audited."""
    account = make_account()
    assert login(client, app).status_code == 303
    response = post_change(client, "N3w#Secret", old=PASSWORD)
    assert response.status_code == 303
    assert response.location.endswith("/?changed=1")
    account = reload(account)
    assert hasher().verify(account.password_hash, "N3w#Secret")
    assert not hasher().verify(account.password_hash, PASSWORD)
    assert hasher().verify(account.previous_password_hash, PASSWORD)
    changes = audit_events("password.change")
    assert [(e.result, e.account_id, e.detail.get("forced"), e.ip) for e in changes] == [
        ("success", account.id, False, "127.0.0.1")]
    # changing back to the previous password is refused
    response = post_change(client, PASSWORD, old="N3w#Secret")
    assert response.status_code == 400
    assert field_error(response.text, "new_password") == "新密码不能与原密码相同"


def test_t05_password_change_needs_a_login(app, client):
    """T05: anonymous visitors are sent to the login page; nothing is changed."""
    response = client.get("/password/change")
    assert response.status_code == 303 and response.location.endswith("/login")
    page = client.get("/login")
    response = client.post("/password/change", data={
        "new_password": "N3w#Secret", "confirm_password": "N3w#Secret",
        "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303 and response.location.endswith("/login")
    assert audit_events("password.change") == []


# --- lockout ------------------------------------------------------------------------------------

LOCKED_15 = "密码错误次数过多，账号已锁定，请15分钟后再试"


@pytest.mark.parametrize("registered", [True, False], ids=["account", "no-account"])
def test_t05_lockout_after_five_wrong_passwords(app, client, registered):
    """T05/DOMAIN: 5 wrong passwords lock the number for 15 minutes, even against the right
    password; a number without an account is locked the same way (no enumeration)."""
    account = make_account() if registered else None
    assert send(client, PHONE).status_code == 200
    code = last_code(app, PHONE)  # a code is consumed only by a successful login
    seen = []
    for _ in range(5):
        response = post_login(client, code, password="Wrong#Pass1")
        seen.append((response.status_code, field_error(response.text, "password")))
    assert seen == [
        (400, "手机号码或密码错误，还可尝试4次"),
        (400, "手机号码或密码错误，还可尝试3次"),
        (400, "手机号码或密码错误，还可尝试2次"),
        (400, "手机号码或密码错误，还可尝试1次"),
        (429, LOCKED_15),
    ]
    response = post_login(client, code, password=PASSWORD)
    assert response.status_code == 429
    assert field_error(response.text, "password") == LOCKED_15
    assert client.get("/").location.endswith("/login")

    account_id = account.id if account else None
    lockouts = audit_events("login.lockout")
    assert [(e.result, e.account_id) for e in lockouts] == [("failure", account_id)]
    assert lockouts[0].detail["phone"] == "139****5678"
    logins = audit_events("login")
    assert [(e.result, e.detail.get("reason"), e.account_id) for e in logins] == (
        [("failure", "password", account_id)] * 5 + [("failure", "locked", None)])
    assert all(e.ip == "127.0.0.1" for e in logins)


def test_t05_lock_ends_after_the_lockout_time(app, build_app):
    """T05: the lock lasts ``lockout_seconds`` (900 by default; 1 here), then the right
    password logs in; the success is audited."""
    assert (Settings().lockout_threshold, Settings().lockout_seconds) == (5, 900)
    account = make_account()
    other = build_app(lockout_threshold=2, lockout_seconds=1)
    client = other.test_client()
    assert send(client, PHONE).status_code == 200
    code = last_code(other, PHONE)
    response = post_login(client, code, password="Wrong#Pass1")
    assert field_error(response.text, "password") == "手机号码或密码错误，还可尝试1次"
    response = post_login(client, code, password="Wrong#Pass1")
    assert response.status_code == 429
    assert field_error(response.text, "password") == "密码错误次数过多，账号已锁定，请1分钟后再试"
    assert post_login(client, code).status_code == 429
    time.sleep(1.1)
    response = post_login(client, code)
    assert response.status_code == 303, field_error(response.text, "password")
    assert client.get("/").status_code == 200
    success = [e for e in audit_events("login") if e.result == "success"]
    assert [(e.account_id, e.ip, e.detail.get("method")) for e in success] == [
        (account.id, "127.0.0.1", "phone")]


def test_t05_success_resets_the_failure_count(app, build_app):
    """T05: failures before a successful login do not count towards a later lock."""
    make_account()
    other = build_app(sms_resend_interval=1)
    client = other.test_client()
    send(client, PHONE)
    started = time.monotonic()
    for _ in range(4):
        post_login(client, last_code(other, PHONE), password="Wrong#Pass1")
    assert post_login(client, last_code(other, PHONE)).status_code == 303
    client = other.test_client()
    time.sleep(max(0.0, 1.1 - (time.monotonic() - started)))
    send(client, PHONE)
    response = post_login(client, last_code(other, PHONE), password="Wrong#Pass1")
    assert field_error(response.text, "password") == "手机号码或密码错误，还可尝试4次"


def test_t05_disabled_account_cannot_log_in(app, client):
    """T05: a disabled account is refused even with the right password and code."""
    make_account(status="disabled")
    response = login(client, app)
    assert response.status_code == 400
    assert field_error(response.text, "phone") == "账号已停用，请联系所在单位管理员"
    assert client.get("/").location.endswith("/login")


# --- creating accounts (`idp users add`) --------------------------------------------------------

def test_t05_create_person_defaults(app):
    """T05: a new person account has an argon2id hash and must change its initial password."""
    account = create_person("+86 139-1234-5678", " 张三 ", PASSWORD)
    db.session.commit()
    account = reload(account)
    assert (account.phone, account.name, account.kind) == (PHONE, "张三", "person")
    assert account.must_change_password is True
    assert account.password_hash.startswith("$argon2id$")
    assert [e.account_id for e in audit_events("account.create")] == [account.id]


@pytest.mark.parametrize("spelling", [PHONE, "+86 139 1234 5678", "0086-139-1234-5678"])
def test_t05_create_person_refuses_a_duplicate_phone(app, spelling):
    """T05: one account per phone number, whatever its spelling."""
    make_account()
    before = table_counts()
    with pytest.raises(FieldError) as error:
        create_person(spelling, "李四", "Another#Pass1")
    db.session.rollback()
    assert (error.value.field, error.value.message) == ("phone", "该手机号码已有账号")
    assert table_counts() == before


@pytest.mark.parametrize(("phone", "name", "password", "field", "message"), [
    (PHONE, "", PASSWORD, "name", MSG_NAME),
    (PHONE, "   ", PASSWORD, "name", MSG_NAME),
    (PHONE, "名" * 51, PASSWORD, "name", MSG_NAME),
    (PHONE, "张\n三", PASSWORD, "name", MSG_NAME),
    (PHONE, "张\x00三", PASSWORD, "name", MSG_NAME),
    (PHONE, "张\u200b三", PASSWORD, "name", MSG_NAME),
    ("1391234567", "张三", PASSWORD, "phone", "手机号格式不正确"),
    ("<b>13912345678</b>", "张三", PASSWORD, "phone", "手机号格式不正确"),
    (PHONE, "张三", "password", "new_password", MSG_CLASSES),
    (PHONE, "张三", "Aa!13912345678", "new_password", "密码不能包含手机号码"),
], ids=["empty-name", "blank-name", "long-name", "newline", "nul", "zero-width", "short-phone",
        "html-phone", "weak-password", "password-with-phone"])
def test_t05_create_person_refuses_bad_input(app, phone, name, password, field, message):
    """T05: `idp users add` input is checked; a refusal writes nothing."""
    before = table_counts()
    with pytest.raises(FieldError) as error:
        create_person(phone, name, password)
    db.session.rollback()
    assert (error.value.field, error.value.message) == (field, message)
    assert table_counts() == before


def test_t05_cli_users_add(app):
    """T05: `idp users add --phone P --name N --json` creates the account with a random initial
    password that meets the policy; a second one with the same number fails cleanly."""
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["users", "add", "--phone", "+86 139 1234 5678",
                                 "--name", "张三", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["phone"] == PHONE
    hasher().check_policy(out["initial_password"], phone=PHONE)
    account = db.session.get(Account, out["id"])
    assert account is not None and account.must_change_password is True
    assert hasher().verify(account.password_hash, out["initial_password"])
    result = runner.invoke(cli, ["users", "add", "--phone", PHONE, "--name", "李四"])
    assert result.exit_code != 0
    assert "该手机号码已有账号" in result.output
    assert table_counts()["account"] == 1
