"""操作员管理 in a real browser (issue 6 "Proof"; REQUIREMENTS S10–S15, S17).

Headless Chromium, the demo enterprise's UKey certificate, ``idp serve`` with TLS and the
sandbox carrier check (``config/phone-sandbox.toml``): list → 增加 with a sandbox match → the
initial password arrives in the SMS outbox → the new operator logs in (phone + password + SMS
code) and must change the password → the admin's 修改 (停用 and back) → 删除 → the operator can
no longer log in. Screenshots: ``tests/artifacts/<test>-<step>.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from idp.pki.devca import DEMO_NAME, DevCA
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_ukey_browser import path_of, press_ukey_login
from tests.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.live

NewContext = Callable[..., "BrowserContext"]
Screenshot = Callable[["Page"], Path]
NAME, PHONE = "操作员一", "13900000011"  # a "match" pair of the sandbox file
MISMATCH_PHONE = "13900000003"  # the sandbox knows this number under another name
NEW_PASSWORD = "Zhang-San-2026!"


@pytest.fixture
def step_shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    def save(page: Page, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def _messages(live: LiveServer, phone: str) -> list[str]:
    import json

    if not live.outbox.exists():
        return []
    return [m["text"] for m in map(json.loads, live.outbox.read_text("utf-8").splitlines())
            if m["to"] == phone]


def _phone_login(context: BrowserContext, live: LiveServer, phone: str,
                 password: str) -> Page:
    """The staff login of S17 (phone + password + SMS code from the outbox)."""
    page = context.new_page()
    page.goto(live.issuer + "/login")
    page.fill("input[name=phone]", phone)
    page.fill("input[name=password]", password)
    before = len(live.sms_codes(phone))
    page.click("#send-sms")
    deadline = time.monotonic() + 10
    while len(live.sms_codes(phone)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    page.fill("input[name=sms_code]", live.sms_codes(phone)[-1])
    with page.expect_navigation():
        page.click("#login-button")
    return page


def test_s11_s12_s13_s15_s17_operator_lifecycle_in_the_browser(
        live: LiveServer, devca: DevCA, new_context: NewContext, screenshot: Screenshot,
        step_shot: Callable[[Page, str], Path]) -> None:
    """S10–S15 and S17, the whole walk in Chromium."""
    admin = new_context(devca.sample("demo"))
    page = press_ukey_login(admin, live)

    # --- S10/S11: the enterprise admin's 操作员管理 list ---
    with page.expect_navigation():
        page.click("#console-link")
    assert path_of(page) == "/console/operators"
    assert page.inner_text("#breadcrumb").strip() == (
        "首页 / 公共部分 / 系统管理 / 操作员管理 / 列表")
    assert page.inner_text("#enterprise-name").strip() == DEMO_NAME
    headers = [h.strip() for h in page.locator("#operators thead th").all_inner_texts()]
    assert headers == ["序号", "操作员ID", "操作员姓名", "操作员手机号", "部门名称", "角色", "状态"]
    assert "演示员工" in page.inner_text("#operators")  # `idp init --demo`'s operator
    page.fill("#f-name", "没有这个人")
    page.click("#filter-submit")
    assert page.inner_text("#operators tbody").strip() == "暂无数据"
    page.click("#filter-reset")
    step_shot(page, "list")

    # --- S12 增加, first with a name the carrier does not confirm (S13: nothing saved) ---
    page.click("#action-new")
    assert path_of(page) == "/console/operators/new"
    page.fill("input[name=name]", NAME)
    page.select_option("select[name=department_id]", label=f"{DEMO_NAME}（物业企业）")
    page.fill("input[name=phone]", MISMATCH_PHONE)
    with page.expect_navigation():
        page.click("#save")
    assert page.inner_text("#alert").strip().endswith(
        "您填写的身份信息与手机号认证失败，请确认信息是否填写正确。")
    step_shot(page, "s13")
    page.fill("input[name=phone]", PHONE)
    page.fill("input[name=remark]", "浏览器测试")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/console/operators/\d+\?done=created$"))
    assert re.fullmatch(r"/console/operators/\d+", path_of(page)), page.url
    operator_id = path_of(page).rsplit("/", 1)[1]
    assert "保存成功" in page.inner_text("body")
    step_shot(page, "created")

    # --- the initial password is in the SMS outbox (never on a page) ---
    (text,) = [t for t in _messages(live, PHONE) if "初始密码" in t]
    initial = re.search(r"初始密码(\S+?)，", text)
    assert initial is not None
    assert initial.group(1) not in page.content()

    # --- S17: the new operator logs in and must change the password ---
    staff = new_context()
    staff_page = _phone_login(staff, live, PHONE, initial.group(1))
    assert path_of(staff_page) == "/password/change"
    staff_page.fill("input[name=new_password]", NEW_PASSWORD)
    staff_page.fill("input[name=confirm_password]", NEW_PASSWORD)
    with staff_page.expect_navigation():
        staff_page.click("button:has-text('确认修改')")
    assert path_of(staff_page) != "/password/change"
    step_shot(staff_page, "operator-home")
    staff.close()

    # --- S15 查询 and 修改: 停用, then 正常使用 again ---
    page.goto(live.issuer + "/console/operators")
    page.check(f"#pick-{operator_id}")
    page.click("#action-edit")
    assert path_of(page) == f"/console/operators/{operator_id}/edit"
    page.select_option("select[name=status]", "disabled")
    with page.expect_navigation():
        page.click("#save")
    page.goto(live.issuer + f"/console/operators?operator_id={operator_id}")
    assert page.inner_text(f"#operator-{operator_id}").split()[-1] == "停用"
    step_shot(page, "disabled")

    # --- S15 删除: the record stays as 已删除, the operator can no longer log in ---
    page.check(f"#pick-{operator_id}")
    page.click("#action-delete")
    assert NAME in page.inner_text("#delete-question")
    with page.expect_navigation():
        page.click("#confirm-delete")
    assert path_of(page) == "/console/operators"
    page.goto(live.issuer + f"/console/operators?operator_id={operator_id}")
    assert page.inner_text(f"#operator-{operator_id}").split()[-1] == "已删除"
    screenshot(page)

    gone = new_context()
    refused = _phone_login(gone, live, PHONE, NEW_PASSWORD)
    assert path_of(refused) == "/login"
    step_shot(refused, "refused")
    gone.close()
