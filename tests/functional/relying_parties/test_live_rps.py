"""Both demo relying parties as real servers against the real provider under gunicorn, all on
loopback, driven by a ``requests`` browser (D05–D08): discovery-only configuration, SP-initiated
login, just-in-time provisioning and its update, SSO into the second relying party, refresh,
a refused refresh ending the local session, RP-initiated logout that ends the other relying
party's session by the provider's back-channel logout token."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from relying_parties import repair_fund, supervision
from relying_parties.common.app import rp_state
from relying_parties.common.models import LocalSession, Organisation, ProvisioningLog
from relying_parties.common.settings import RPSettings
from tests.live import LiveServer, free_port

pytestmark = pytest.mark.live

PHONE = "13800000000"  # `idp init --demo`
REVIEWER_PHONE = "13800000001"  # `idp init --demo` too; given an identity in the demo org
STAFF_PHONE = "13700003333"  # made by `idp users add`; an identity in the demo org
TWO_ROLES_PHONE = "13700005555"  # operator of the demo enterprise and staff of its office
OFFICE_NAME = "演示物业服务有限公司和谐花园管理处"
# (the race test logs in two people who have not asked for an SMS code in the last minute)
PASSWORD = "Demo@2026"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
INTERACTION = re.compile(r'name="interaction"[^>]*value="([^"]*)"')


@dataclass
class RunningRP:
    app: Flask
    url: str
    server: BaseWSGIServer

    def db(self) -> Any:
        with self.app.app_context():
            return rp_state().sessions()


def _start_rp(live: LiveServer, module: Any, platform: str, database_url: str,
              suffix: str = "live") -> RunningRP:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    creds = live.idp_json(
        "clients", "add", "--client-id", f"{platform}-{suffix}", "--name", module.TITLE,
        "--platform", platform, "--redirect-uri", url + "/auth/callback",
        "--post-logout-redirect-uri", url + "/",
        "--backchannel-logout-uri", url + "/auth/backchannel-logout",
        "--initiate-login-uri", url + "/auth/login",
        "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--json")
    settings = RPSettings(issuer=live.issuer, client_id=creds["client_id"],
                          client_secret=creds["client_secret"], base_url=url,
                          secret_key=f"rp-{platform}-" + "z" * 32,
                          database_url=database_url)
    app = module.create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return RunningRP(app=app, url=url, server=server)


World = tuple[LiveServer, RunningRP, RunningRP, RunningRP]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          pg_database_factory: Any) -> Iterator[World]:
    """The provider and both relying parties, each with its own database of the backend."""
    workdir = Path(tmp_path_factory.mktemp(f"live-rps-{request.param}"))

    def database(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{workdir / (name + '.sqlite3')}"
        return str(pg_database_factory())

    live = LiveServer(workdir=workdir, database_url=database("idp"))
    live.start()
    try:
        live.idp("init", "--demo", "--clients", str(workdir / "none.toml"))
        for phone, name in ((STAFF_PHONE, "张三"), (TWO_ROLES_PHONE, "李四")):
            live.idp_json("users", "add", "--phone", phone, "--name", name,
                          "--password", PASSWORD, "--no-must-change", "--json")
        # The demo person: enterprise admin on the fund system, operator on supervision.
        engine = sa.create_engine(live.database_url)
        with engine.begin() as conn:
            account_id = conn.scalar(sa.text("SELECT id FROM account WHERE phone = :p"),
                                     {"p": PHONE})
            org_id = conn.scalar(sa.text(
                "SELECT organisation_id FROM identity WHERE account_id = :a"), {"a": account_id})
            conn.execute(sa.text("UPDATE identity SET role = 'enterprise_admin' "
                                 "WHERE account_id = :a AND platform = 'repair_fund'"),
                         {"a": account_id})
            others = [conn.scalar(sa.text("SELECT id FROM account WHERE phone = :p"), {"p": p})
                      for p in (REVIEWER_PHONE, STAFF_PHONE)]
            insert = sa.text(
                "INSERT INTO identity (account_id, organisation_id, role, platform, status, "
                "created_at, updated_at) VALUES (:a, :o, 'operator', :p, 'active', :t, :t)")
            now = datetime.now()
            conn.execute(insert, {"a": account_id, "o": org_id, "p": "supervision", "t": now})
            for other in others:
                conn.execute(insert, {"a": other, "o": org_id, "p": "repair_fund", "t": now})
            # Two identities on the fund system: operator of the enterprise, staff of its office.
            conn.execute(sa.text(
                "INSERT INTO organisation (type, name, parent_id, status, profile, created_at, "
                "updated_at) VALUES ('office', :n, :p, 'active', '{}', :t, :t)"),
                {"n": OFFICE_NAME, "p": org_id, "t": now})
            office_id = conn.scalar(sa.text("SELECT id FROM organisation WHERE name = :n"),
                                    {"n": OFFICE_NAME})
            two = conn.scalar(sa.text("SELECT id FROM account WHERE phone = :p"),
                              {"p": TWO_ROLES_PHONE})
            conn.execute(insert, {"a": two, "o": org_id, "p": "repair_fund", "t": now})
            conn.execute(sa.text(
                "INSERT INTO identity (account_id, organisation_id, role, platform, status, "
                "created_at, updated_at) VALUES (:a, :o, 'office', 'repair_fund', 'active', "
                ":t, :t)"), {"a": two, "o": office_id, "t": now})
        engine.dispose()
        fund = _start_rp(live, repair_fund, "repair_fund", database("repair_fund"))
        sup = _start_rp(live, supervision, "supervision", database("supervision"))
        race = _start_rp(live, repair_fund, "repair_fund", database("race"), suffix="race")
        try:
            yield live, fund, sup, race
        finally:
            for rp in (fund, sup, race):
                rp.server.shutdown()
    finally:
        live.stop()


def _form(html: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(html)
    assert match, "form field not found"
    return match.group(1)


def _follow(browser: requests.Session, response: requests.Response,
            base: str = "") -> requests.Response:
    """Follow redirects by hand, relative ones against the answering server."""
    for _ in range(10):
        if response.status_code not in (301, 302, 303, 307):
            return response
        location = urljoin(response.url, response.headers["Location"])
        response = browser.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("too many redirects")


def _provider_login(live: LiveServer, browser: requests.Session,
                    response: requests.Response, phone: str = PHONE,
                    follow: bool = True) -> requests.Response:
    """At the provider's login page: phone + password + SMS code, then on through the redirects."""
    assert response.status_code == 200 and "手机号码" in response.text
    csrf = _form(response.text, CSRF)
    interaction = _form(response.text, INTERACTION)
    browser.post(live.issuer + "/login/sms", data={"phone": phone, "csrf_token": csrf},
                 headers={"Accept": "application/json"}, timeout=10)
    posted = browser.post(live.issuer + "/login", data={
        "phone": phone, "password": PASSWORD, "sms_code": live.sms_codes(phone)[-1],
        "interaction": interaction, "csrf_token": csrf}, allow_redirects=False, timeout=10)
    return _follow(browser, posted, live.issuer) if follow else posted


def _orgs(rp: RunningRP) -> list[Organisation]:
    with rp.db() as db:
        return list(db.scalars(sa.select(Organisation)))


def _log_actions(rp: RunningRP) -> list[str]:
    with rp.db() as db:
        return list(db.scalars(sa.select(ProvisioningLog.action).order_by(ProvisioningLog.id)))


def _local_sessions(rp: RunningRP) -> list[LocalSession]:
    with rp.db() as db:
        return list(db.scalars(sa.select(LocalSession)))


def _expire_access(rp: RunningRP) -> None:
    with rp.db() as db:
        for row in db.scalars(sa.select(LocalSession)):
            row.access_expires_at = datetime.now() - timedelta(seconds=5)
        db.commit()


def test_d05_d06_d07_d08_login_provision_sso_refresh_logout(
        world: World) -> None:
    """D05–D08 on real servers, one walk:
    SP-initiated login into the fund system (JIT creates the organisation, the page shows the
    person, the enterprise, the role label, amr and the admin's menus); a second login after
    the provider renamed the enterprise updates the row (logged); SSO into supervision without
    a login page; a refused refresh ends the local session; RP-initiated logout."""
    live, fund, sup, _ = world
    browser = requests.Session()

    # --- SP-initiated login: RP → provider login → back with a code ---
    start = browser.get(fund.url + "/auth/login", allow_redirects=False, timeout=10)
    assert start.status_code == 303 and start.headers["Location"].startswith(
        live.issuer + "/authorize?")
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    page = _provider_login(live, browser, _follow(browser, start, live.issuer))
    assert page.url.rstrip("/") == fund.url and page.status_code == 200, page.text[:500]
    assert "演示员工" in page.text and "演示物业服务有限公司" in page.text
    assert "物业企业管理员" in page.text and "手机号码+密码+短信验证码登录" in page.text
    menus = (("操作员管理", "/console/operators"), ("用户审核", "/console/applications"))
    for label, path in menus:
        assert label in page.text and f'href="{live.issuer}{path}"' in page.text
    assert "公共部分" in page.text and "系统管理" in page.text

    (org,) = _orgs(fund)
    assert org.name == "演示物业服务有限公司" and org.type == "enterprise" and org.uscc
    assert _log_actions(fund) == ["created"]
    (row,) = _local_sessions(fund)
    assert row.sid and row.refresh_token and row.roles == "enterprise_admin"

    # --- the provider renames the enterprise; the next login (SSO, no page) updates it ---
    engine = sa.create_engine(live.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE organisation SET name = '演示物业管理集团有限公司' "
                             "WHERE uscc = :u"), {"u": org.uscc})
    engine.dispose()
    again = _follow(browser, browser.get(fund.url + "/auth/login", allow_redirects=False,
                                         timeout=10), live.issuer)
    assert again.url.rstrip("/") == fund.url and "演示物业管理集团有限公司" in again.text
    (org,) = _orgs(fund)
    assert org.name == "演示物业管理集团有限公司"
    assert _log_actions(fund) == ["created", "updated"]
    assert len(_local_sessions(fund)) == 1  # the new login replaced the old local session

    # --- refresh: an expired access token is renewed with the refresh token ---
    before = _local_sessions(fund)[0].access_token
    _expire_access(fund)
    home = browser.get(fund.url + "/", timeout=10)
    assert "演示员工" in home.text
    assert _local_sessions(fund)[0].access_token != before

    # --- SSO into the second relying party: no login page ---
    sso = _follow(browser, browser.get(sup.url + "/auth/login", allow_redirects=False,
                                       timeout=10), live.issuer)
    assert sso.url.rstrip("/") == sup.url, sso.text[:500]
    assert "上海市物业监管平台及招投标系统" in sso.text and "操作员" in sso.text
    assert "操作员管理" not in sso.text  # an operator has no admin menus
    assert len(_orgs(sup)) == 1

    # --- a refresh the provider refuses (token revoked) ends the local session there ---
    (sup_row,) = _local_sessions(sup)
    client = rp_state_settings(sup)
    revoked = requests.post(live.issuer + "/revoke", data={
        "token": sup_row.refresh_token, "token_type_hint": "refresh_token"},
        auth=(client.client_id, client.client_secret), timeout=10)
    assert revoked.status_code == 200
    _expire_access(sup)
    assert "您尚未登录" in browser.get(sup.url + "/", timeout=10).text
    assert _local_sessions(sup) == []
    sso = _follow(browser, browser.get(sup.url + "/auth/login", allow_redirects=False,
                                       timeout=10), live.issuer)
    assert sso.url.rstrip("/") == sup.url and "演示员工" in sso.text

    # --- RP-initiated logout from the fund system ---
    home = browser.get(fund.url + "/", timeout=10)
    out = browser.post(fund.url + "/auth/logout", data={"csrf_token": _form(home.text, CSRF)},
                       allow_redirects=False, timeout=10)
    assert out.status_code == 303
    target = urlsplit(out.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert out.headers["Location"].startswith(live.issuer + "/logout?")
    assert params["post_logout_redirect_uri"] == fund.url + "/"
    assert params["client_id"] == client_id_of(fund) and params["id_token_hint"]
    assert _local_sessions(fund) == []
    back = _follow(browser, browser.get(out.headers["Location"], allow_redirects=False,
                                        timeout=10), live.issuer)
    assert back.url.rstrip("/") == fund.url and "您尚未登录" in back.text
    provider_home = browser.get(live.issuer + "/", allow_redirects=False, timeout=10)
    assert provider_home.status_code == 303  # the provider session ended too

    # --- back-channel: the provider's logout token ends the supervision session too ---
    deadline = time.monotonic() + 10
    while _local_sessions(sup) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _local_sessions(sup) == []
    assert "您尚未登录" in browser.get(sup.url + "/", timeout=10).text


def rp_state_settings(rp: RunningRP) -> RPSettings:
    with rp.app.app_context():
        return rp_state().settings


def client_id_of(rp: RunningRP) -> str:
    return rp_state_settings(rp).client_id


def test_d07_initiate_login_with_foreign_iss_refused_live(
        world: World) -> None:
    """D07 (OIDC Core §4): the initiate_login_uri starts a login only for our issuer."""
    live, fund, _, _ = world
    refused = requests.get(fund.url + "/auth/login", params={"iss": "https://evil.example"},
                           allow_redirects=False, timeout=10)
    assert refused.status_code == 400
    accepted = requests.get(fund.url + "/auth/login", params={"iss": live.issuer},
                            allow_redirects=False, timeout=10)
    assert accepted.status_code == 303
    assert accepted.headers["Location"].startswith(live.issuer + "/authorize?")


def test_d06_concurrent_first_logins_through_real_servers(world: World) -> None:
    """D06: two staff of the same enterprise, unknown to a fresh relying party, return from the
    provider at the same moment: one organisation row, one 'created' entry, both logged in."""
    live, _, _, race = world
    callbacks: list[tuple[requests.Session, str]] = []
    for phone in (STAFF_PHONE, REVIEWER_PHONE):
        browser = requests.Session()
        start = browser.get(race.url + "/auth/login", allow_redirects=False, timeout=10)
        response = _provider_login(live, browser, _follow(browser, start), phone, follow=False)
        assert response.status_code in (302, 303), (phone, response.text[-1500:])
        for _ in range(10):  # up to (not into) the relying party's callback
            location = urljoin(response.url, response.headers["Location"])
            if location.startswith(race.url + "/auth/callback"):
                break
            response = browser.get(location, allow_redirects=False, timeout=10)
        callbacks.append((browser, location))
    barrier = threading.Barrier(len(callbacks))
    pages: list[requests.Response] = []

    def arrive(browser: requests.Session, url: str) -> None:
        barrier.wait()
        pages.append(browser.get(url, timeout=20))

    threads = [threading.Thread(target=arrive, args=pair) for pair in callbacks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(p.status_code for p in pages) == [200, 200]
    names = {name for p in pages for name in ("张三", "演示审核员") if name in p.text}
    assert names == {"张三", "演示审核员"}
    assert len(_orgs(race)) == 1
    assert _log_actions(race) == ["created"]
    assert len(_local_sessions(race)) == 2


IDENTITY_CHOICE = re.compile(
    r'<input type="radio" name="identity" value="(\d+)"[^>]*>\s*([^<]+?)</label>')


def _choose(live: LiveServer, browser: requests.Session, page: requests.Response,
            label: str) -> requests.Response:
    """On 「选择登录身份」: tick the identity whose text is ``label`` and press 【确认选择】."""
    assert page.url.startswith(live.issuer + "/select-identity"), page.url
    assert "选择登录身份" in page.text and "确认选择" in page.text
    choices = {text.strip(): value for value, text in IDENTITY_CHOICE.findall(page.text)}
    uid = _form(page.text, re.compile(r'name="i" value="([^"]*)"'))
    posted = browser.post(live.issuer + "/select-identity", data={
        "csrf_token": _form(page.text, CSRF), "i": uid, "identity": choices[label]},
        allow_redirects=False, timeout=10)
    return _follow(browser, posted, live.issuer)


def test_s09_s18_d06_role_selection_and_switch_through_real_servers(world: World) -> None:
    """S09/S18 with real servers: a person with two identities on the fund system logs in from
    the relying party, gets 「选择登录身份」 with both (org — role), picks the office and is
    inside as 小区管理处 of the office (D06: the office provisioned under its enterprise);
    「切换身份」 (``prompt=select_account``) asks again without a login page, and the other
    choice makes them 操作员 of the enterprise; a plain login then keeps that choice."""
    live, fund, _, _ = world
    engine = sa.create_engine(live.database_url)
    with engine.connect() as conn:  # (another test of the module may have renamed it)
        enterprise_id, enterprise = conn.execute(sa.text(
            "SELECT id, name FROM organisation WHERE id = (SELECT parent_id FROM organisation "
            "WHERE name = :n)"), {"n": OFFICE_NAME}).one()
    engine.dispose()
    browser = requests.Session()
    start = browser.get(fund.url + "/auth/login", allow_redirects=False, timeout=10)
    picker = _provider_login(live, browser, _follow(browser, start, live.issuer),
                             TWO_ROLES_PHONE)
    labels = {text.strip() for _, text in IDENTITY_CHOICE.findall(picker.text)}
    assert labels == {f"{enterprise} — 操作员", f"{OFFICE_NAME} — 小区管理处"}

    inside = _choose(live, browser, picker, f"{OFFICE_NAME} — 小区管理处")
    assert inside.url.rstrip("/") == fund.url, inside.text[:500]
    assert "李四" in inside.text and OFFICE_NAME in inside.text and "小区管理处" in inside.text
    assert "切换身份" in inside.text
    (row,) = [r for r in _local_sessions(fund) if r.name == "李四"]
    assert row.roles == "office"
    by_provider_id = {o.provider_id: o for o in _orgs(fund)}
    (office,) = [o for o in by_provider_id.values() if o.name == OFFICE_NAME]
    assert office.type == "office"
    assert office.parent_id == by_provider_id[str(enterprise_id)].id  # under its enterprise

    # --- 「切换身份」: the provider asks again (no login page), the other identity this time ---
    switch = browser.get(fund.url + "/auth/login", params={"prompt": "select_account"},
                         allow_redirects=False, timeout=10)
    assert parse_qs(urlsplit(switch.headers["Location"]).query)["prompt"] == ["select_account"]
    again = _follow(browser, switch, live.issuer)
    assert "手机号码" not in again.text  # the SSO session holds; only the choice is asked
    inside = _choose(live, browser, again, f"{enterprise} — 操作员")
    assert inside.url.rstrip("/") == fund.url
    assert "操作员" in inside.text and OFFICE_NAME not in inside.text
    (row,) = [r for r in _local_sessions(fund) if r.name == "李四"]
    assert row.roles == "operator"

    # --- without select_account the choice made is kept: straight back, no page ---
    plain = _follow(browser, browser.get(fund.url + "/auth/login", allow_redirects=False,
                                         timeout=10), live.issuer)
    assert plain.url.rstrip("/") == fund.url and "操作员" in plain.text
    assert OFFICE_NAME not in plain.text
