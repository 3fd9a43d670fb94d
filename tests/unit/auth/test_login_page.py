"""The login page (S17): the seed's fields and buttons, CSRF on every form, the security headers,
no inline script, and messages beside the field they belong to."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import csrf_from, last_code, sms_messages, table_counts
from tests.factories import PASSWORD, login, make_account
from tests.unit.auth.helpers import PHONE, Page, field_error, send

# --- helpers (local to this file) ---------------------------------------------------------------


def forms_of(html: str) -> list[dict[str, Any]]:
    """Each <form> with the names and values of the inputs inside it."""
    forms: list[dict[str, Any]] = []
    for element in Page(html).elements:  # forms are not nested: an input belongs to the last
        if element["tag"] == "form":
            forms.append({"attrs": element["attrs"], "inputs": {}})
        elif element["tag"] == "input" and forms and element["attrs"].get("name"):
            forms[-1]["inputs"][element["attrs"]["name"]] = element["attrs"].get("value")
    assert len(forms) == html.count("<form"), "every form is parsed"
    return forms


def log_in(client: FlaskClient, app: Flask) -> None:
    make_account()
    assert login(client, app).status_code == 303


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def page_setup(kind: str, client: FlaskClient, app: Flask) -> Any:
    """Open one of the provider's pages for a person; return the response."""
    if kind == "login":
        return client.get("/login")
    if kind == "password-forced":
        make_account(must_change=True)
        assert login(client, app).status_code == 303
        return client.get("/password/change")
    if kind == "password-self":
        log_in(client, app)
        return client.get("/password/change")
    if kind == "home":
        log_in(client, app)
        return client.get("/")
    if kind == "logout-confirm":
        log_in(client, app)
        return client.get("/logout")
    if kind == "not-found":
        return client.get("/no-such-page")
    if kind == "bad-authorize":
        return client.get("/authorize", query_string={"client_id": "nope", "response_type": "code"})
    if kind == "csrf-error":
        client.get("/login")
        return client.post("/login", data={"phone": PHONE})
    raise AssertionError(kind)


PAGES = ["login", "password-forced", "password-self", "home", "logout-confirm", "not-found",
         "bad-authorize", "csrf-error"]


# --- what the page shows ------------------------------------------------------------------------

def test_s17_login_page_has_the_seeds_fields_and_buttons(app, client):
    """S17: 「手机号码」, 「密码」, 「手机验证码」, the 「获取验证码」 button, the 【登录】 button,
    and a 「UKey登录」 tab beside the phone tab."""
    response = client.get("/login")
    assert response.status_code == 200
    page = Page(response.text)
    labels = {e["attrs"].get("for"): e["text"].strip() for e in page.elements
              if e["tag"] == "label"}
    assert labels == {"phone": "手机号码", "password": "密码", "sms_code": "手机验证码"}
    assert page.by_id("phone", "input")["attrs"]["type"] == "tel"
    assert page.by_id("password", "input")["attrs"]["name"] == "password"
    assert page.by_id("sms_code", "input")["attrs"]["name"] == "sms_code"
    send_button = page.by_id("send-sms", "button")
    assert send_button["text"].strip() == "获取验证码"
    assert send_button["attrs"]["formaction"] == "/login/sms"
    login_button = page.by_id("login-button", "button")
    assert login_button["text"].strip() == "登录"
    assert login_button["attrs"]["type"] == "submit"
    tabs = [e["text"].strip() for e in page.elements if e["attrs"].get("role") == "tab"]
    assert "UKey登录" in tabs and "手机号码登录" in tabs
    assert [e["text"].strip() for e in page.elements if e["tag"] == "h1"] == ["统一认证登录平台"]


def test_s17_element_ids_on_the_login_page_are_unique(app, client):
    """S17: ids on the login page are unique. sms.js looks the phone input up with
    getElementById("phone"); a second element with that id placed before the input makes the
    「获取验证码」 button read the wrong element and send no number."""
    page = Page(client.get("/login").text)
    ids = [e["attrs"]["id"] for e in page.elements if e["attrs"].get("id")]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []


@pytest.mark.parametrize(("phone", "shown"), [
    ("+86 139 1234 5678", PHONE), ("13912345678", PHONE), ("<script>x</script>", ""),
    ("139", ""),
])
def test_s17_login_hint_prefills_the_phone(app, client, phone, shown):
    """S17: a well-formed login_hint fills 「手机号码」; anything else is dropped, not echoed."""
    response = client.get("/login", query_string={"login_hint": phone})
    assert response.status_code == 200
    assert Page(response.text).by_id("phone", "input")["attrs"].get("value", "") == shown
    assert "<script>x</script>" not in response.text


@pytest.mark.parametrize(("form", "errors"), [
    ({"sms_code": "WRONG"}, {"sms_code": "验证码错误"}),
    ({"password": "Wrong#Pass1"}, {"password": "手机号码或密码错误，还可尝试4次"}),
    ({"phone": "1391234567"}, {"phone": "手机号格式不正确"}),
    ({"sms_code": "12a456"}, {"sms_code": "请输入6位数字验证码"}),
    ({"phone": "", "password": "", "sms_code": ""},
     {"phone": "请输入手机号码", "password": "请输入密码", "sms_code": "请输入手机验证码"}),
], ids=["wrong-code", "wrong-password", "bad-phone", "bad-code", "empty"])
def test_s17_errors_stand_beside_the_right_field(app, client, form, errors):
    """S17: a wrong code / wrong password / bad input shows its message in the element
    ``<field>-error`` beside that field only; the password is never echoed back."""
    make_account()
    send(client, PHONE)
    code = last_code(app, PHONE)
    data = {"phone": PHONE, "password": PASSWORD, "sms_code": code}
    data.update(form)
    if data["sms_code"] == "WRONG":
        data["sms_code"] = f"{(int(code) + 1) % 1_000_000:06d}"
    page = client.get("/login")
    response = client.post("/login", data={**data, "csrf_token": csrf_from(page.text)})
    assert response.status_code == 400
    html = Page(response.text)
    for field in ("phone", "password", "sms_code"):
        expected = errors.get(field, "")
        assert field_error(response.text, field) == expected, field
        control = html.by_id(field, "input")["attrs"]
        assert control["aria-describedby"] == f"{field}-error"
        assert control["aria-invalid"] == ("true" if expected else "false")
    assert "value" not in html.by_id("password", "input")["attrs"] or not html.by_id(
        "password", "input")["attrs"]["value"]
    assert PASSWORD not in response.text and "Wrong#Pass1" not in response.text
    assert csrf_from(response.text)
    assert client.get("/").location.endswith("/login")


@pytest.mark.parametrize("kind", ["login", "password-forced", "password-self"])
def test_s17_password_inputs_are_masked(app, client, kind):
    """S17/T05: 「密码」 and the new-password fields are type="password" (masked while typed);
    no attribute is rendered with the text "None"."""
    response = page_setup(kind, client, app)
    inputs = [e["attrs"] for e in Page(response.text).elements if e["tag"] == "input"]
    secret = [a for a in inputs if "password" in (a.get("name") or "")]
    assert secret, "the page has password fields"
    assert [(a["name"], a.get("type")) for a in secret] == [
        (a["name"], "password") for a in secret]
    rendered_none = [(a.get("name"), k) for a in inputs for k, v in a.items() if v == "None"]
    assert rendered_none == []


# --- CSRF ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["login", "password-forced", "password-self", "logout-confirm"])
def test_s17_every_form_carries_a_csrf_token(app, client, kind):
    """S17: every form the provider renders carries a CSRF token."""
    response = page_setup(kind, client, app)
    assert response.status_code == 200
    forms = forms_of(response.text)
    assert forms, "the page has a form"
    for form in forms:
        assert form["attrs"].get("method", "get").lower() == "post"
        assert form["inputs"].get("csrf_token"), form


def _post_target(endpoint: str, client: FlaskClient, app: Flask) -> dict[str, str]:
    """Prepare the session for ``endpoint``; return a complete, valid form body without its
    CSRF token."""
    if endpoint == "/login/sms":
        client.get("/login")
        return {"phone": PHONE}
    if endpoint == "/login":
        make_account()
        send(client, PHONE)
        return {"phone": PHONE, "password": PASSWORD, "sms_code": last_code(app, PHONE)}
    if endpoint == "/password/change":
        log_in(client, app)
        password_page = client.get("/password/change")
        assert password_page.status_code == 200
        return {"old_password": PASSWORD, "new_password": "N3w#Secret",
                "confirm_password": "N3w#Secret"}
    if endpoint == "/logout":
        log_in(client, app)
        assert client.get("/logout").status_code == 200
        return {"confirm": "1"}
    raise AssertionError(endpoint)


@pytest.mark.parametrize("variant", ["missing", "forged", "other-session"])
@pytest.mark.parametrize("endpoint", ["/login/sms", "/login", "/password/change", "/logout"])
def test_s17_post_without_a_valid_csrf_token_is_refused(app, client, endpoint, variant):
    """S17: a form post without its CSRF token (missing, made up, or another browser's) → 400
    「页面已过期，请刷新页面后重试。」 and nothing is written (no SMS, no login, no change)."""
    data = _post_target(endpoint, client, app)
    logged_in = client.get("/").status_code == 200
    if variant == "forged":
        data["csrf_token"] = "IjAxMjM0NTY3ODkwMTIzNDU2Nzg5In0.forged.token"
    elif variant == "other-session":
        data["csrf_token"] = csrf_from(app.test_client().get("/login").text)
    outbox_before = len(sms_messages(app))
    before = table_counts()
    response = client.post(endpoint, data=data, headers={"Accept": "application/json"}
                           if endpoint == "/login/sms" else {})
    assert response.status_code == 400
    if response.mimetype == "text/html":
        message = [e["text"].strip() for e in Page(response.text).elements
                   if "error-message" in (e["attrs"].get("class") or "")]
        assert message == ["页面已过期，请刷新页面后重试。"]
    else:  # an answer for the page's script would do as well
        assert "页面已过期，请刷新页面后重试。" in response.get_data(as_text=True)
    assert table_counts() == before
    assert len(sms_messages(app)) == outbox_before
    assert (client.get("/").status_code == 200) == logged_in


# --- headers and script -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", PAGES)
def test_s17_pages_carry_the_security_headers(app, client, kind):
    """S17: CSP without 'unsafe-inline' and with frame-ancestors 'none', X-Frame-Options DENY,
    nosniff, Referrer-Policy no-referrer, Cache-Control no-store on every page."""
    response = page_setup(kind, client, app)
    assert response.mimetype == "text/html"
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    directives = csp_directives(csp)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in headers["Cache-Control"]
    assert "Strict-Transport-Security" not in headers  # plain http (localhost) only


@pytest.mark.parametrize("kind", PAGES)
def test_s17_pages_have_no_inline_script_or_style(app, client, kind):
    """S17: the CSP forbids inline script and style, so the pages have none: every <script>
    has a same-origin src and no body; no on* handlers, no javascript: URLs, no style=."""
    response = page_setup(kind, client, app)
    page = Page(response.text)
    for element in page.elements:
        attrs = element["attrs"]
        if element["tag"] == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs
            assert element["text"].strip() == ""
        assert element["tag"] != "style"
        assert "style" not in attrs, element
        for name, value in attrs.items():
            assert not name.startswith("on"), (element["tag"], name)
            assert not (value or "").strip().lower().startswith("javascript:"), (name, value)


@pytest.mark.parametrize("script", ["sms.js", "login.js"])
def test_s17_login_scripts_are_served_same_origin(app, client, script):
    """S17: the scripts of the login page are static same-origin files with nosniff, and the
    「获取验证码」 button names the input it sends (sms.js reads data-sms-for)."""
    assert f'src="/static/{script}"' in client.get("/login").text
    response = client.get(f"/static/{script}")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = Page(client.get("/login").text)
    assert page.by_id("send-sms", "button")["attrs"]["data-sms-for"] == "phone"


def test_s17_hsts_under_tls(app, build_app):
    """S17: under TLS every answer carries Strict-Transport-Security."""
    secure = build_app(issuer="https://localhost")
    client = secure.test_client()
    response = client.get("/login", base_url="https://localhost")
    assert response.status_code == 200
    hsts = response.headers["Strict-Transport-Security"]
    max_age = int(hsts.split("max-age=")[1].split(";")[0])
    assert max_age >= 31536000


def test_s17_forms_work_under_tls_for_a_browser_that_honours_no_referrer(app, build_app):
    """S17: under TLS the pages send ``Referrer-Policy: no-referrer``, so a browser posts the
    login forms without a Referer header. The CSRF token (and the SameSite=Lax cookie) protect
    the form; the post must not be refused for the missing Referer."""
    secure = build_app(issuer="https://localhost")
    client = secure.test_client()
    page = client.get("/login", base_url="https://localhost")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    response = client.post("/login/sms", base_url="https://localhost",
                           data={"phone": PHONE, "csrf_token": csrf_from(page.text)},
                           headers={"Accept": "application/json"})
    assert response.status_code == 200, [
        e["text"] for e in Page(response.text).elements if e["tag"] == "p"]
    assert response.json["message"] == "验证码已发送，请注意查收"
