"""Enterprise registration in a real browser (issue 4 "Proof"; REQUIREMENTS S03–S06).

Headless Chromium presents the UKey certificate of an enterprise the platform does not know yet
over real TLS to ``idp serve``, then walks S03 (「物业企业注册」 → 【下一步】), S04 (「否」),
S05 (the form; the supervision section appears only when its platform is ticked — by CSS, no
script) and S06 (the success message). Screenshots of the form and of the message are kept in
``tests/artifacts/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from idp.pki.devca import SAMPLES, DevCA
from tests.e2e.test_ukey_browser import path_of, press_ukey_login
from tests.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.live

NewContext = Callable[..., "BrowserContext"]
Screenshot = Callable[["Page"], Path]
S04 = "您所在企业是否在维修资金系统已有物业企业身份账号（OTP或密钥）？"


def test_s03_s04_s05_s06_enterprise_registers_in_the_browser(
        live: LiveServer, devca: DevCA, new_context: NewContext,
        screenshot: Screenshot) -> None:
    """S03 → S06 with the unregistered enterprise's UKey, both platforms."""
    uscc, cert_name = SAMPLES["unregistered"]
    context = new_context(devca.sample("unregistered"))
    page = press_ukey_login(context, live)
    assert cert_name in page.inner_text("#unregistered-message")

    # S03: 「物业企业注册」 is chosen, 【下一步】.
    assert page.is_checked("input[name=kind][value=enterprise]")
    with page.expect_navigation():
        page.click("#next-step")
    # S04: the prompt; 「否」 → the registration form.
    assert page.inner_text("#legacy-prompt").strip() == S04
    with page.expect_navigation():
        page.click("#prompt-no")
    assert path_of(page) == "/register/enterprise"

    # S05: the USCC is the certificate's and cannot be typed over.
    assert page.input_value("#uscc") == uscc
    assert page.get_attribute("#uscc", "readonly") is not None
    assert not page.is_visible("#supervision-section")
    page.fill("#name", "测试物业维修中心2")
    page.fill("#postcode", "200120")
    page.fill("#email", "office@example.cn")
    page.fill("#legal_name", "杜晨")
    page.fill("#legal_phone", "17648830890")
    page.select_option("#legal_id_type", "111")
    page.fill("#legal_id_number", "11010519491231002X")
    page.fill("#contact_name", "杜晨")
    page.fill("#contact_phone", "17648830890")
    page.check("#platforms-repair_fund")
    assert not page.is_visible("#supervision-section")
    page.check("#platforms-supervision")
    assert page.is_visible("#supervision-section")  # appears when its platform is ticked
    page.select_option("#district", "310115")
    page.select_option("#had_qualification", "是")
    page.select_option("#qualification_level", "1")
    page.fill("#gm_name", "王建国")
    page.fill("#gm_phone", "13912340000")
    page.select_option("#gm_id_type", "111")
    page.fill("#gm_id_number", "11010519491231002X")
    saved_form = _save(page, screenshot, "form")

    # A wrong check digit first: the message appears beside the field, nothing is created.
    page.fill("#legal_id_number", "110105194912310021")
    with page.expect_navigation():
        page.click("#register-button")
    assert page.inner_text("#legal_id_number-error").strip() == "居民身份证号码校验位不正确"
    assert page.is_visible("#supervision-section")  # still ticked, still shown
    page.fill("#legal_id_number", "11010519491231002X")
    with page.expect_navigation():
        page.click("#register-button")

    # S06: the seed's message, both platforms named; 【确定】 enters the platform's portal.
    message = page.inner_text("#registration-message").strip()
    assert message == ("测试物业维修中心2企业，您已注册成功,可使用Ukey通过"
                       "上海市物业管理监督与服务统一认证登录平台进入"
                       "上海市商品住房维修资金管理系统和上海市物业管理平台及招投标系统。")
    saved_done = _save(page, screenshot, "success")
    with page.expect_navigation():
        page.click("#done-ok")
    assert path_of(page) == "/"
    assert page.inner_text("#enterprise-name").strip() == "测试物业维修中心2"
    assert saved_form.stat().st_size > 0 and saved_done.stat().st_size > 0


def _save(page: Page, screenshot: Screenshot, suffix: str) -> Path:
    """``tests/artifacts/<test>-<suffix>.png``."""
    path = screenshot(page)
    target = path.with_name(f"{path.stem}-{suffix}.png")
    path.replace(target)
    return target
