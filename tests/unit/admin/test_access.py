"""Who gets into the platform admin console (等保 2.0 level 3, 8.1.4.1: administrators need two
factors, one of them cryptographic): the phone login, an active platform_admin identity, and
the TOTP 动态口令 (RFC 6238, ±1 step, each code once, lockout after 5 wrong codes), re-asked
after 30 minutes idle. Everything refused is audited."""

from __future__ import annotations

import time

import pytest

from idp.accounts.models import Account
from idp.admin.access import SESSION_KEY, has_totp
from idp.extensions import db
from idp.registration.legacy import MSG_OTP_USED
from tests.conftest import csrf_from
from tests.factories import PASSWORD, login, make_account, make_client
from tests.unit.admin.helpers import (
    ADMIN_PHONE,
    as_admin,
    code_at,
    counts,
    events,
    make_admin,
    post_code,
    relogin,
    wrong_code,
)

GET_ROUTES = ["/admin", "/admin/clients", "/admin/clients/new", "/admin/clients/rp1/edit",
              "/admin/keys", "/admin/audit", "/admin/audit.csv", "/admin/orgs"]
POST_ROUTES = ["/admin/clients/new", "/admin/clients/rp1/edit",
               "/admin/clients/rp1/rotate-secret", "/admin/clients/rp1/disable",
               "/admin/clients/rp1/enable", "/admin/keys/rotate"]


@pytest.mark.parametrize("url", [*GET_ROUTES, "/admin/verify"])
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 303 and response.location.endswith("/login")


@pytest.mark.parametrize("url", [*POST_ROUTES, "/admin/verify"])
def test_anonymous_post_is_sent_to_login_and_writes_nothing(app, client, url):
    make_client()
    token = csrf_from(client.get("/login").text)
    before = counts()
    response = client.post(url, data={"csrf_token": token, "code": "123456", "name": "x"})
    assert response.status_code == 303 and response.location.endswith("/login")
    assert counts() == before


@pytest.mark.parametrize("url", [*GET_ROUTES, *POST_ROUTES, "/admin/verify"])
def test_a_person_without_platform_admin_gets_403_audited(app, client, url):
    make_client()
    make_account("13912345678")
    assert login(client, app, "13912345678").status_code == 303
    token = csrf_from(client.get("/password/change").text)
    before = counts()
    if url in POST_ROUTES:
        response = client.post(url, data={"csrf_token": token})
    else:
        response = client.get(url)
    assert response.status_code == 403
    assert "没有访问权限。" in response.text
    assert counts() == before
    denied = events("admin.denied", "failure")
    assert len(denied) == 1 and denied[0].detail["path"] == url.split("?")[0]


def test_centre_reviewer_role_is_not_platform_admin(app, client):
    from tests.factories import make_centre

    make_centre("13600000001")
    assert login(client, app, "13600000001", PASSWORD).status_code == 303
    assert client.get("/admin/clients").status_code == 403


def test_a_disabled_platform_admin_identity_no_longer_gets_in(app, client):
    account, _ = as_admin(client, app)
    assert client.get("/admin/clients").status_code == 200
    account = db.session.get(Account, account.id)
    account.identities[0].status = "disabled"
    db.session.commit()
    assert client.get("/admin/clients").status_code == 403


def test_a_disabled_platform_organisation_no_longer_gets_in(app, client):
    account, _ = as_admin(client, app)
    account = db.session.get(Account, account.id)
    account.identities[0].organisation.status = "disabled"
    db.session.commit()
    assert client.get("/admin/clients").status_code == 403


def test_admin_with_pending_password_change_changes_it_first(app, client):
    account, _ = make_admin()
    account.must_change_password = True
    db.session.commit()
    assert login(client, app, ADMIN_PHONE, PASSWORD).status_code == 303
    response = client.get("/admin/clients")
    assert response.status_code == 303 and response.location.endswith("/password/change")


@pytest.mark.parametrize("url", GET_ROUTES)
def test_admin_without_totp_is_sent_to_verify(app, client, url):
    as_admin(client, app, verified=False)
    response = client.get(url)
    assert response.status_code == 303
    assert response.location.startswith("/admin/verify?next=")


def test_admin_post_without_totp_is_sent_to_verify_and_writes_nothing(app, client):
    make_client()
    as_admin(client, app, verified=False)
    token = csrf_from(client.get("/admin/verify").text)
    before = counts()
    response = client.post("/admin/clients/rp1/disable", data={"csrf_token": token})
    assert response.status_code == 303 and "/admin/verify" in response.location
    assert counts() == before
    db.session.expire_all()
    from idp.oidc.models import Client

    assert db.session.get(Client, "rp1").enabled


def test_verify_page_asks_for_the_dynamic_code(app, client):
    as_admin(client, app, verified=False)
    page = client.get("/admin/verify?next=/admin/keys")
    assert page.status_code == 200
    assert "动态口令" in page.text and 'name="code"' in page.text
    assert 'value="/admin/keys"' in page.text


def test_right_code_lets_in_and_goes_to_next(app, client):
    account, seed = as_admin(client, app, verified=False)
    response = post_code(client, code_at(seed), "/admin/keys")
    assert response.status_code == 303 and response.location == "/admin/keys"
    assert client.get("/admin/keys").status_code == 200
    ok = events("admin.verify", "success")
    assert len(ok) == 1 and ok[0].account_id == account.id
    db.session.expire_all()
    assert db.session.get(Account, account.id).totp_last_step is not None


@pytest.mark.parametrize("offset", [-1, 1])
def test_codes_one_step_either_side_are_accepted(app, client, offset):
    _, seed = as_admin(client, app, verified=False)
    assert post_code(client, code_at(seed, offset)).status_code == 303


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "/login",
                                      "/admin/verify", "/admin/../login", "/admin/\\evil"])
def test_next_never_leaves_the_console(app, client, next_url):
    _, seed = as_admin(client, app, verified=False)
    response = post_code(client, code_at(seed), next_url)
    assert response.status_code == 303
    assert response.location == "/admin/clients"


def test_wrong_code_is_refused_with_tries_left_and_audited(app, client):
    account, seed = as_admin(client, app, verified=False)
    response = post_code(client, wrong_code(seed))
    assert response.status_code == 400
    assert "动态口令错误，还可尝试4次" in response.text
    assert client.get("/admin/clients").status_code == 303
    failed = events("admin.verify", "failure")
    assert len(failed) == 1 and failed[0].detail["reason"] == "wrong_code"
    assert failed[0].account_id == account.id


def test_expired_code_two_steps_old_is_refused(app, client):
    _, seed = as_admin(client, app, verified=False)
    old = code_at(seed, -2)
    if old in {code_at(seed, k) for k in (-1, 0, 1)}:
        pytest.skip("the old code happens to equal a current one")
    response = post_code(client, old)
    assert response.status_code == 400 and "动态口令错误" in response.text


def test_replayed_code_is_refused(app, client):
    """Single use per step: the code that let one session in does not let another in."""
    _, seed = as_admin(client, app, verified=False)
    code = code_at(seed)
    assert post_code(client, code).status_code == 303
    other = app.test_client()
    assert relogin(other, app).status_code == 303
    # The first session used step 0; a code of the same step is now refused …
    response = post_code(other, code)
    assert response.status_code == 400
    assert MSG_OTP_USED in response.text
    assert events("admin.verify", "failure")[-1].detail["reason"] == "code_reused"
    # … and so is an earlier step's code (the step only moves forward).
    assert post_code(other, code_at(seed, -1)).status_code == 400
    # The next step's code works.
    assert post_code(other, code_at(seed, 1)).status_code == 303


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "１２３４５６", "12 34 56",
                                  "<script>", "1" * 200])
def test_malformed_codes_get_a_message_and_write_nothing(app, client, code):
    as_admin(client, app, verified=False)
    before = counts()
    response = post_code(client, code)
    assert response.status_code == 400
    assert "请输入6位数字动态口令" in response.text
    assert "<script>" not in response.text
    assert counts() == before


def test_five_wrong_codes_lock_the_second_factor(app, client):
    _, seed = as_admin(client, app, verified=False)
    for left in (4, 3, 2, 1):
        response = post_code(client, wrong_code(seed))
        assert response.status_code == 400 and f"还可尝试{left}次" in response.text
    response = post_code(client, wrong_code(seed))
    assert response.status_code == 429
    assert "已锁定" in response.text and response.headers["Retry-After"]
    # Locked: even the right code is not looked at.
    response = post_code(client, code_at(seed))
    assert response.status_code == 429
    assert events("admin.verify", "failure")[-1].detail["reason"] == "locked"
    assert client.get("/admin/clients").status_code == 303


def test_lockout_is_per_account_not_per_session(app, client):
    _, seed = as_admin(client, app, verified=False)
    for _ in range(5):
        post_code(client, wrong_code(seed))
    other = app.test_client()
    assert relogin(other, app).status_code == 303
    assert post_code(other, code_at(seed)).status_code == 429


def test_idle_for_30_minutes_asks_again(app, client):
    _, seed = as_admin(client, app)
    assert client.get("/admin/clients").status_code == 200
    with client.session_transaction() as session:
        flag = dict(session[SESSION_KEY])
        flag["seen"] = time.time() - 1801
        session[SESSION_KEY] = flag
    response = client.get("/admin/clients")
    assert response.status_code == 303 and "/admin/verify" in response.location
    assert post_code(client, code_at(seed, 1)).status_code == 303
    assert client.get("/admin/clients").status_code == 200


def test_activity_keeps_the_flag_alive(app, client):
    as_admin(client, app)
    with client.session_transaction() as session:
        flag = dict(session[SESSION_KEY])
        flag["seen"] = time.time() - 1700
        session[SESSION_KEY] = flag
    assert client.get("/admin/clients").status_code == 200
    with client.session_transaction() as session:
        assert time.time() - session[SESSION_KEY]["seen"] < 5


def test_the_flag_lasts_at_most_the_sso_session(app, client):
    """The flag names its SSO session (``sid``): one of another SSO session counts for nothing
    (logging out ends the session and the flag with it: next test)."""
    _, seed = as_admin(client, app)
    assert client.get("/admin/clients").status_code == 200
    with client.session_transaction() as session:
        flag = dict(session[SESSION_KEY])
        flag["sid"] = "another-session"
        session[SESSION_KEY] = flag
    assert client.get("/admin/clients").status_code == 303
    assert post_code(client, code_at(seed, 1)).status_code == 303
    assert client.get("/admin/clients").status_code == 200


def test_logout_ends_the_admin_flag(app, client):
    as_admin(client, app)
    page = client.get("/logout")
    response = client.post("/logout", data={"confirm": "1", "csrf_token": csrf_from(page.text)})
    assert response.status_code == 200
    response = client.get("/admin/clients")
    assert response.status_code == 303 and response.location.endswith("/login")


def test_admin_without_a_seed_is_told_and_cannot_verify(app, client):
    account, _ = as_admin(client, app, verified=False)
    account = db.session.get(Account, account.id)
    account.totp_secret = None
    db.session.commit()
    assert not has_totp(account)
    page = client.get("/admin/verify")
    assert page.status_code == 200 and "尚未设置动态口令" in page.text
    token = csrf_from(client.get("/password/change").text)
    response = client.post("/admin/verify", data={"csrf_token": token, "code": "123456"})
    assert response.status_code == 400 and "尚未设置动态口令" in response.text
    assert events("admin.verify", "failure")[-1].detail["reason"] == "no_totp"


def test_a_seed_sealed_for_another_purpose_is_unusable(app, client):
    """The seed is sealed with the purpose "admin-totp": a legacy OTP seal does not open."""
    from idp.security import seal

    account, seed = as_admin(client, app, verified=False)
    account = db.session.get(Account, account.id)
    account.totp_secret = seal(app.config["IDP"].key_passphrase, "legacy-totp", seed)
    db.session.commit()
    response = post_code(client, code_at(seed))
    assert response.status_code == 400 and "尚未设置动态口令" in response.text


def test_verify_without_csrf_is_refused(app, client):
    _, seed = as_admin(client, app, verified=False)
    response = client.post("/admin/verify", data={"code": code_at(seed)})
    assert response.status_code == 400
    assert client.get("/admin/clients").status_code == 303


def test_passing_the_second_factor_renews_the_session_id(app, client):
    """OWASP session management: the privilege rises, so the session id changes (a planted or
    observed pre-verification id is worth nothing); the old id no longer opens the console."""
    from idp.auth.session import StoreSessionInterface

    _, seed = as_admin(client, app, verified=False)
    name = StoreSessionInterface().cookie_name(app)
    before = client.get_cookie(name)
    assert before is not None
    assert post_code(client, code_at(seed), "/admin/keys").status_code == 303
    after = client.get_cookie(name)
    assert after is not None and after.value != before.value
    assert client.get("/admin/keys").status_code == 200
    client.set_cookie(name, before.value)
    assert client.get("/admin/keys").status_code == 303  # the old id: logged out
