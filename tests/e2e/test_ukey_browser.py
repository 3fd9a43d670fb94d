"""UKey login in a real browser over real TLS (issue 3 "Proof"; REQUIREMENTS D02, S02, S08).

Headless Chromium presents an enterprise certificate from its PKCS#12 file — what an enterprise
imports into its browser — to ``idp serve``, which asks for it during the TLS handshake. Each
test saves its final page to ``tests/artifacts/<test>.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from idp.pki.certs import thumbprint
from idp.pki.devca import DEMO_NAME, DevCA
from tests.e2e.conftest import ukey_audit
from tests.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.live

NewContext = Callable[..., "BrowserContext"]
Screenshot = Callable[["Page"], Path]


def press_ukey_login(context: BrowserContext, live: LiveServer) -> Page:
    """Open the login page, choose the 「UKey登录」 tab and press 【UKey登录】, as a person does."""
    page = context.new_page()
    page.goto(live.issuer + "/login")
    page.click("#tab-ukey")
    assert page.is_visible("#ukey-button")
    with page.expect_navigation():
        page.click("#ukey-button")
    return page


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def assert_refused_on_login_page(page: Page, context: BrowserContext, live: LiveServer) -> str:
    """The UKey tab of the login page shows the reason, and no session was started."""
    assert path_of(page).startswith("/login")
    assert page.is_visible("#ukey-form")
    error = page.inner_text("#ukey-error").strip()
    probe = context.new_page()
    probe.goto(live.issuer + "/")
    assert path_of(probe) == "/login", "a refused certificate must not log anyone in"
    probe.close()
    return error


def test_d02_s02_s08_demo_enterprise_logs_in_with_its_ukey_certificate(
        live: LiveServer, devca: DevCA, new_context: NewContext, screenshot: Screenshot) -> None:
    """D02/S02/S08: the demo enterprise's certificate, sent in the TLS handshake, logs the
    enterprise in: home shows its name and the UKey login method; the audit trail has it."""
    demo = devca.sample("demo")
    context = new_context(demo)
    page = press_ukey_login(context, live)

    assert path_of(page) == "/"
    assert page.inner_text("#enterprise-name").strip() == DEMO_NAME
    assert page.get_by_text("UKey（法人一证通）", exact=True).is_visible()
    screenshot(page)

    successes = [e for e in ukey_audit(live)
                 if e["result"] == "success" and e["detail"]["x5t"] == thumbprint(demo.cert)]
    assert len(successes) == 1
    event = successes[0]
    assert event["account_id"]
    assert event["detail"]["transport"] == "tls"  # the handshake carried it, not a header
    assert event["detail"]["uscc"] == "91310115MA1FL0D34W"
    assert event["detail"]["serial"] == demo.serial_hex
    assert event["ip"] == "127.0.0.1"


def test_d02_s02_revoked_certificate_is_refused_in_words(
        live: LiveServer, devca: DevCA, new_context: NewContext, screenshot: Screenshot) -> None:
    """D02/S02: a revoked certificate passes the handshake (the CA is trusted) but the login
    page names the reason, and nobody is logged in."""
    revoked = devca.sample("revoked")
    context = new_context(revoked)
    page = press_ukey_login(context, live)

    assert assert_refused_on_login_page(page, context, live) == "证书已被吊销，请联系发证机构。"
    screenshot(page)
    mine = [e for e in ukey_audit(live) if e["detail"].get("serial") == revoked.serial_hex]
    assert [(e["result"], e["detail"]["reason"]) for e in mine] == [("failure", "revoked")]


def test_d02_s02_without_certificate_points_to_the_client_tool(
        live: LiveServer, new_context: NewContext, screenshot: Screenshot) -> None:
    """D02/S02: no UKey inserted (the browser has no certificate): insert the UKey, install
    「协卡助手」, and a 「客户端工具」 download link."""
    context = new_context(None)
    page = press_ukey_login(context, live)

    error = assert_refused_on_login_page(page, context, live)
    assert "协卡助手" in error
    link = page.locator("#client-tool")
    assert link.is_visible()
    assert link.inner_text().strip() == "客户端工具"
    assert link.get_attribute("href")
    screenshot(page)


def test_d02_s02_expired_certificate_is_refused_in_words(
        live: LiveServer, devca: DevCA, new_context: NewContext, screenshot: Screenshot) -> None:
    """D02/S02: an expired certificate reaches the login code (the TLS layer ignores dates on
    purpose) and is refused with its end date."""
    expired = devca.sample("expired")
    context = new_context(expired)
    page = press_ukey_login(context, live)

    error = assert_refused_on_login_page(page, context, live)
    assert error.startswith("证书已过期"), error
    screenshot(page)
    mine = [e for e in ukey_audit(live) if e["detail"].get("serial") == expired.serial_hex]
    assert [(e["result"], e["detail"]["reason"]) for e in mine] == [("failure", "expired")]
