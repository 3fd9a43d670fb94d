"""Single sign-on and single logout in a real browser (issue 5 "Proof"; REQUIREMENTS D07, S08,
S18).

Headless Chromium logs the demo enterprise in with its UKey certificate at ``idp serve``, picks
上海市商品住房维修资金管理系统 on the portal and presses 【确认选择】; the provider sends it to the
relying party's ``initiate_login_uri`` (OIDC Core §4) and the relying party back through
``/authorize``. Both demo relying parties run as real HTTPS servers
(``python -m relying_parties.<rp> serve --cert … --key …``, the development server certificate
for ``localhost``), so every hop — the browser's, the relying parties' calls to the provider and
the provider's back-channel logout tokens — crosses verified TLS. Screenshots of the steps are
kept in ``tests/artifacts/<test>-<step>.png``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from idp.pki.devca import DEMO_NAME, DevCA
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_ukey_browser import path_of, press_ukey_login
from tests.live import LiveServer, free_port

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.live

NewContext = Callable[..., "BrowserContext"]
Screenshot = Callable[["Page"], Path]
REPO = Path(__file__).resolve().parents[2]
FUND_TITLE = "上海市商品住房维修资金管理系统"
SUPERVISION_TITLE = "上海市物业监管平台及招投标系统"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, devca: DevCA) -> Iterator[LiveServer]:
    """The e2e provider (``idp serve``, TLS, demo seeded), which here also trusts the development
    root for its own outgoing HTTPS: the back-channel logout tokens it POSTs to the relying
    parties go through ``requests``, which reads ``REQUESTS_CA_BUNDLE``."""
    workdir = tmp_path_factory.mktemp("e2e-sso")
    server = LiveServer(workdir=workdir, database_url=f"sqlite:///{workdir / 'idp.sqlite3'}",
                        pki=devca.dir,
                        extra_env={"REQUESTS_CA_BUNDLE": str(devca.path("root.pem"))}).start()
    try:
        server.idp("init", "--demo", "--clients", str(workdir / "no-clients.toml"))
        yield server
    finally:
        server.stop()


@dataclass
class RelyingParty:
    """One demo relying party running as its own HTTPS server process."""

    client_id: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start_rp(live: LiveServer, devca: DevCA, module: str, platform: str, title: str,
              workdir: Path) -> RelyingParty:
    """Register the client at the provider (portal-enterable: it has an ``initiate_login_uri``)
    and start ``python -m relying_parties.<module> serve`` with TLS on a free port."""
    port = free_port()
    url = f"https://localhost:{port}"
    client_id = f"{platform}_e2e"
    creds = live.idp_json(
        "clients", "add", "--client-id", client_id, "--name", title, "--platform", platform,
        "--redirect-uri", url + "/auth/callback",
        "--post-logout-redirect-uri", url + "/",
        "--backchannel-logout-uri", url + "/auth/backchannel-logout",
        "--initiate-login-uri", url + "/auth/login", "--json")
    # Without REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE: requests lets them override a session's
    # own ``verify`` (trust_env), and the relying party must trust the provider by RP_CA_BUNDLE.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RP_", "IDP_"))
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update({
        "RP_ISSUER": live.issuer,
        "RP_CLIENT_ID": creds["client_id"],
        "RP_CLIENT_SECRET": creds["client_secret"],
        "RP_BASE_URL": url,
        "RP_SECRET_KEY": f"e2e-{platform}-" + "k" * 32,
        "RP_DATABASE_URL": f"sqlite:///{workdir / (platform + '.sqlite3')}",
        "RP_CA_BUNDLE": str(devca.path("root.pem")),
        "PYTHONPATH": str(REPO),
    })
    log = workdir / f"{platform}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", f"relying_parties.{module}", "serve", "--port", str(port),
             "--cert", str(devca.server_cert), "--key", str(devca.path("server.key.pem"))],
            env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    rp = RelyingParty(client_id=creds["client_id"], url=url, process=process, log=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{module} exited:\n" + log.read_text(errors="replace"))
        try:
            if requests.get(url + "/", timeout=2,
                            verify=str(devca.path("root.pem"))).status_code == 200:
                return rp
        except requests.RequestException:
            time.sleep(0.2)
    rp.stop()
    raise RuntimeError(f"{module} did not answer within 30 s:\n" + log.read_text(errors="replace"))


@pytest.fixture(scope="module")
def rps(live: LiveServer, devca: DevCA,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelyingParty, RelyingParty]]:
    """Both relying parties, registered at ``live`` and served over HTTPS; stopped after."""
    workdir = tmp_path_factory.mktemp("e2e-rps")
    started: list[RelyingParty] = []
    try:
        started.append(_start_rp(live, devca, "repair_fund", "repair_fund", FUND_TITLE,
                                 workdir))
        started.append(_start_rp(live, devca, "supervision", "supervision", SUPERVISION_TITLE,
                                 workdir))
        yield started[0], started[1]
    finally:
        for rp in started:
            rp.stop()


@pytest.fixture
def step_shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Like ``screenshot``, for the intermediate steps: ``tests/artifacts/<test>-<step>.png``."""

    def save(page: Page, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def navigations(page: Page) -> list[str]:
    """Every top-level document the page requests from now on, redirects included."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url)
            if r.is_navigation_request() and r.frame == page.main_frame else None)
    return seen


def backchannel_audit(live: LiveServer) -> list[dict[str, Any]]:
    """Every ``logout.backchannel`` event in the provider's database, oldest first."""
    from idp.audit import AuditEvent

    table = AuditEvent.__table__
    engine = sa.create_engine(live.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(
                table.c.event == "logout.backchannel").order_by(table.c.id)).mappings().all()
    finally:
        engine.dispose()
    return [dict(row) for row in rows]


def test_d07_s08_s18_ukey_portal_enters_fund_system_sso_to_supervision_and_single_logout(
        live: LiveServer, devca: DevCA, rps: tuple[RelyingParty, RelyingParty],
        new_context: NewContext, screenshot: Screenshot,
        step_shot: Callable[[Page, str], Path]) -> None:
    """S08/S18/D07, the whole walk: UKey login at the provider → the portal lists the fund
    system → 【确认选择】 → through the relying party's ``/auth/login?iss=…`` (third-party
    initiated login) and back → inside the fund system as the demo enterprise with the admin
    menus → the supervision system logs it in without a login prompt → logout at the fund
    system ends the provider session and, by back-channel logout token, the supervision
    session too."""
    fund, sup = rps
    context = new_context(devca.sample("demo"))

    # --- S08: UKey login; S18: the portal offers the platforms that can be entered ---
    page = press_ukey_login(context, live)
    assert path_of(page) == "/"
    assert page.inner_text("#enterprise-name").strip() == DEMO_NAME
    fund_choice = page.locator("label.choice", has=page.locator("#platform-repair_fund"))
    assert fund_choice.inner_text().strip() == FUND_TITLE
    assert page.locator("label.choice", has=page.locator("#platform-supervision")) \
        .inner_text().strip() == SUPERVISION_TITLE
    step_shot(page, "portal")

    # --- 【确认选择】: provider → RP initiate_login_uri → provider /authorize → RP callback ---
    seen = navigations(page)
    page.check("#platform-repair_fund")
    assert page.inner_text("#enter-platform").strip() == "确认选择"
    page.click("#enter-platform")
    page.wait_for_url(fund.url + "/")
    initiate = [u for u in seen if u.startswith(fund.url + "/auth/login?")]
    assert len(initiate) == 1, seen
    assert parse_qs(urlsplit(initiate[0]).query)["iss"] == [live.issuer]
    authorize = [u for u in seen if u.startswith(live.issuer + "/authorize?")]
    assert authorize and parse_qs(urlsplit(authorize[0]).query)["client_id"] == [fund.client_id]
    assert any(u.startswith(fund.url + "/auth/callback?") for u in seen), seen
    assert not any(urlsplit(u).path.startswith("/login") for u in seen
                   if u.startswith(live.issuer)), "the SSO session must not ask again"

    # --- inside the fund system as the enterprise, with the enterprise admin's menus ---
    assert page.title() == FUND_TITLE
    assert page.inner_text(".org-name").strip() == DEMO_NAME
    assert page.inner_text(".user-name").strip() == DEMO_NAME
    assert page.inner_text(".role").strip() == "物业企业管理员"
    assert page.inner_text(".amr").strip() == "UKey数字证书登录"
    admin_menus = (("操作员管理", "/console/operators"), ("用户审核", "/console/applications"))
    for label, path in admin_menus:
        link = page.get_by_role("link", name=label, exact=True)
        assert link.is_visible()
        assert link.get_attribute("href") == live.issuer + path
    step_shot(page, "fund")

    # --- D07: the supervision system logs the enterprise in without a login prompt ---
    sup_page = context.new_page()
    sup_seen = navigations(sup_page)
    sup_page.goto(sup.url + "/")
    assert "您尚未登录" in sup_page.inner_text("main")  # nothing local yet: it asks the provider
    sup_page.click("a.login")
    sup_page.wait_for_url(sup.url + "/")
    assert any(u.startswith(live.issuer + "/authorize?") for u in sup_seen), sup_seen
    assert not any(urlsplit(u).path.startswith("/login") for u in sup_seen
                   if u.startswith(live.issuer)), "SSO: no login page at the provider"
    assert sup_page.title() == SUPERVISION_TITLE
    assert sup_page.inner_text(".org-name").strip() == DEMO_NAME
    assert sup_page.inner_text(".role").strip() == "物业企业管理员"
    assert sup_page.inner_text(".amr").strip() == "UKey数字证书登录"
    step_shot(sup_page, "supervision")

    # --- D07: RP-initiated logout at the fund system ---
    before = len(backchannel_audit(live))
    page.bring_to_front()
    page.click("button:has-text('退出')")
    page.wait_for_url(fund.url + "/")
    assert "您尚未登录" in page.inner_text("main")
    step_shot(page, "fund-logged-out")

    probe = context.new_page()
    probe.goto(live.issuer + "/")
    assert path_of(probe) == "/login", "the provider session must have ended"
    probe.close()

    # --- back-channel: the supervision session ended without the browser going there ---
    deadline = time.monotonic() + 10
    while True:
        sup_page.reload()
        if "您尚未登录" in sup_page.inner_text("main") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "您尚未登录" in sup_page.inner_text("main")
    assert sup_page.locator(".org-name").count() == 0
    screenshot(sup_page)

    delivered = [(e["client_id"], e["result"]) for e in backchannel_audit(live)[before:]]
    assert sorted(delivered) == sorted([(fund.client_id, "success"),
                                        (sup.client_id, "success")])


OFFICE_NAME = "演示物业服务有限公司和谐花园管理处"
DEMO_PHONE, DEMO_PASSWORD = "13800000000", "Demo@2026"  # `idp init --demo`


def _give_demo_person_an_office_identity(live: LiveServer) -> None:
    """The demo person (operator of the demo enterprise on the fund system) also works for the
    enterprise's office: two identities on one platform, so S09's choice is asked."""
    engine = sa.create_engine(live.database_url)
    try:
        with engine.begin() as conn:
            account, enterprise = conn.execute(sa.text(
                "SELECT a.id, i.organisation_id FROM account a JOIN identity i "
                "ON i.account_id = a.id WHERE a.phone = :p AND i.platform = 'repair_fund'"),
                {"p": DEMO_PHONE}).one()
            now = sa.func.now()
            office = conn.execute(sa.text(
                "INSERT INTO organisation (type, name, parent_id, status, profile, created_at, "
                "updated_at) VALUES ('office', :n, :p, 'active', '{}', :t, :t) RETURNING id"),
                {"n": OFFICE_NAME, "p": enterprise, "t": conn.scalar(sa.select(now))}).scalar()
            conn.execute(sa.text(
                "INSERT INTO identity (account_id, organisation_id, role, platform, status, "
                "created_at, updated_at) VALUES (:a, :o, 'office', 'repair_fund', 'active', "
                ":t, :t)"), {"a": account, "o": office, "t": conn.scalar(sa.select(now))})
    finally:
        engine.dispose()


def test_s01_s09_s18_phone_login_chooses_role_then_switches_in_the_fund_system(
        live: LiveServer, rps: tuple[RelyingParty, RelyingParty],
        new_context: NewContext, screenshot: Screenshot,
        step_shot: Callable[[Page, str], Path]) -> None:
    """The phone path of issue 5's walk: at the fund system 「通过统一认证登录平台登录」 → the
    provider's login (手机号码 + 密码 + 短信验证码) → 「选择登录身份」 lists both identities →
    the office's → inside as 小区管理处 of the office → 「切换身份」 asks again (no login) →
    操作员 of the enterprise → 退出."""
    fund, _ = rps
    _give_demo_person_an_office_identity(live)
    context = new_context()
    page = context.new_page()
    page.goto(fund.url + "/")
    page.click("a.login")
    page.wait_for_url(live.issuer + "/login**")

    # --- S01: phone + password + SMS code ---
    page.fill("input[name=phone]", DEMO_PHONE)
    page.fill("input[name=password]", DEMO_PASSWORD)
    before = len(live.sms_codes(DEMO_PHONE))
    page.click("#send-sms")
    deadline = time.monotonic() + 10
    while len(live.sms_codes(DEMO_PHONE)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    page.fill("input[name=sms_code]", live.sms_codes(DEMO_PHONE)[-1])
    page.click("#login-button")

    # --- S09: 「选择登录身份」 with both identities ---
    page.wait_for_url(live.issuer + "/select-identity**")
    assert page.inner_text("h1").strip() == "选择登录身份"
    choices = [text.strip() for text in page.locator("label.choice").all_inner_texts()]
    assert sorted(choices) == sorted([f"{DEMO_NAME} — 操作员", f"{OFFICE_NAME} — 小区管理处"])
    step_shot(page, "choose")
    page.locator("label.choice", has_text=OFFICE_NAME).locator("input").check()
    assert page.inner_text("#identity-button").strip() == "确认选择"
    page.click("#identity-button")
    page.wait_for_url(fund.url + "/")
    assert page.inner_text(".org-name").strip() == OFFICE_NAME
    assert page.inner_text(".role").strip() == "小区管理处"
    assert page.inner_text(".amr").strip() == "手机号码+密码+短信验证码登录"
    step_shot(page, "office")

    # --- 「切换身份」: prompt=select_account, the choice again without a login page ---
    seen = navigations(page)
    page.get_by_role("link", name="切换身份").click()
    page.wait_for_url(live.issuer + "/select-identity**")
    assert not any(urlsplit(u).path.startswith("/login") for u in seen
                   if u.startswith(live.issuer)), seen
    page.locator("label.choice", has_text=f"{DEMO_NAME} — 操作员").locator("input").check()
    page.click("#identity-button")
    page.wait_for_url(fund.url + "/")
    assert page.inner_text(".org-name").strip() == DEMO_NAME
    assert page.inner_text(".role").strip() == "操作员"
    assert page.inner_text(".user-name").strip() == "演示员工"
    screenshot(page)

    page.click("button:has-text('退出')")
    page.wait_for_url(fund.url + "/")
    assert "您尚未登录" in page.inner_text("main")
