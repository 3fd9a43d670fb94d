"""Bad input (the issue's "Bad input" section; S11–S17, T03, T05, D01, D03): every endpoint and
every form answers malformed, oversized, missing or hostile input with the protocol's error or a
message beside the field — never a 500, never a stack trace, never a partial write.

The matrix (``CASES`` × fields × values): every route (``ROUTES``, checked against the app's URL
map) in each situation that matters (anonymous, logged in, password change pending, a UKey
login pending registration or binding, the enterprise logged in by its UKey — also the admin of
its tenant console —, a proven look-up phone, a committee handler, a centre reviewer), with a
base request that is *valid* (CSRF token, client authentication, live SMS code, fresh codes,
tokens and assertions, the world's own returned or pending applications, its own office and
operator — ``test_base_requests_of_the_matrix_are_valid`` proves it), so that a hostile value
reaches the deep code; then every field of it is, one at a time, replaced by every value of
``HOSTILE`` (SQL and HTML fragments, NUL and other control characters, CR/LF, odd Unicode,
10 kB and 100 kB values) and of ``BY_FIELD`` (digits for numbers, near-miss redirect URIs,
paths, wrong check characters, full-width digits, impossible dates, ids past 32 bits …) and
crafted credentials (Basic/Bearer headers, client assertions, ID token hints) or somebody
else's ids (another district's, another committee's, another enterprise's office, operator or
staff application), removed, repeated, and hostile parameter names are added. Beside it: raw
non-UTF-8 bodies, bodies over ``max_content_length`` (413), wrong methods (405), wrong content
types, hostile headers and session cookies. Where a request would raise (TESTING propagates
exceptions), the failure is reported as what it is in production: a 500.

After every request:

* the status is < 500 and the body carries no trace ("Traceback", driver or ORM names);
* /token, /revoke, /introspect, /userinfo, discovery and JWKS answer JSON, with ``error`` unless it
  is a documented success (revocation's 200 for an unknown token, introspection's
  ``{"active": false}``); a token never carries a scope the client is not registered for;
* pages are HTML; a 4xx page shows its error text (the error page's message, or a message beside
  a form field); hostile HTML is never reflected raw (no unescaped ``<script>``);
* a redirect goes only to our own pages or to a redirect URI validated for the client, with
  ``iss`` and the ``state`` exactly as sent;
* no partial write: the rows per table (what ``tests.conftest.table_counts()`` counts — each test
  checks that the fast snapshot taken around every request agrees with it) and the full
  contents of every table are unchanged, **except audit_event rows (failed logins and other
  failures are audited on purpose) and store_entry rows (rate-limit counters, SMS tries, lockout
  counters and sessions live there on purpose)**; account, identity, organisation, client,
  token, authorization_code and signing_key must not change. Only a request that legitimately
  succeeded (an opaque field such as ``state`` or ``interaction`` accepted as it is, an optional
  field left out, free text listed in ``Case.accepts`` such as a return reason) may change the
  tables its success changes — the world then undoes it (``World.undo``), so that every request
  starts from the same base. One more documented exception: an
  authorization code presented at /token is used up even when that exchange fails (RFC 6749
  §4.1.2: single use; a code shown with a wrong redirect URI or verifier is treated as leaked), so
  ``authorization_code.used_at`` may change — never its row count.
"""
from __future__ import annotations

import base64
import io
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, current_app
from flask.testing import FlaskClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from idp.accounts.models import Account, Identity
from idp.admin.access import provision_admin
from idp.console import staff as staff_service
from idp.console.models import StaffApplication
from idp.db import utcnow
from idp.extensions import db
from idp.oidc.models import SCOPES, Client, Token
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.pki.devca import DEMO_NAME, DEMO_USCC, SAMPLES, DevCA
from idp.registration.committees import SMS_LOOKUP, SMS_REGISTER
from idp.security import seal, token_hash
from idp.store import get_store
from tests.conftest import TEST_PROXY, csrf_from, last_code, table_counts
from tests.factories import (
    PASSWORD,
    REDIRECT,
    authorize_params,
    basic,
    get_code,
    login,
    make_account,
    make_area,
    make_centre,
    make_client,
    make_enterprise,
    make_office,
    make_operator,
    pkce_pair,
    send_sms,
    ukey_login,
)

PHONE = "13912345678"
LEGACY_USCC = "913101041234567882"  # S04: an enterprise the fund system knows
LEGACY_ID = "FUND-001"
LEGACY_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
LEGACY_KEY = "Legacy-Key-2024"
LEGACY_X5T = "x5t-of-the-legacy-matrix-ukey"
NEW_USCC, NEW_NAME = SAMPLES["unregistered"]  # S03: a UKey of an enterprise not registered yet
PENDING_USCC = "91350100M000100Y43"  # an enterprise registration waiting for the centre
FOREIGN_USCC = "91110000600037341L"  # somebody else's enterprise, in another district
DISTRICT, FOREIGN_DISTRICT = "310115", "310104"  # 浦东新区 (the centre's), 徐汇区
CENTRE_PHONE = "13600000001"
AREA, AREA2 = "和谐花园", "和谐花园二期"
COMMITTEE = "和谐花园业主委员会"
H1, H2, H3 = "13800000001", "13800000002", "13800000003"  # 经办人1 (the applicant), 2, 3
# The tenant console (T03, S16): the demo enterprise's office, and another active enterprise
# (the sm2 sample's) whose office and staff application the matrix sends where the demo's go.
OFFICE_NAME = "演示物业和谐花园管理处"
OTHER_USCC, OTHER_NAME = SAMPLES["sm2"]
# Pairs the sandbox carrier (config/phone-sandbox.toml) matches: the applicant on the public
# form, and the applicant whose pending application the admin decides.
STAFF_NAME, STAFF_PHONE = "操作员二", "13900000012"
APPLICANT_NAME, APPLICANT_PHONE = "操作员一", "13900000011"
ADMIN_PHONE = "13700000009"  # a platform admin (phone + password + SMS, then 动态口令)
NEW_OPERATOR_NAME, NEW_OPERATOR_PHONE = "操作员四", "13900000014"  # 增加 (S12)
OPERATOR_NAME, OPERATOR_PHONE = "操作员五", "13900000015"  # the demo's operator (S15)
STAFF_ID_NUMBER = "11010519491231002X"
CREDENTIALS = {"code", "public_code", "refresh", "machine"}  # used up by the cases that use them
SMS_PHONE = "13700000001"  # no account: the SMS button answers the same for it
NEW_PASSWORD = "N3w-Passw0rd!"
POST_LOGOUT = "https://rp.example.cn/"
PORTAL_LOGIN = "https://rp.example.cn/auth/login"  # rp1's initiate_login_uri (OIDC Core §4)
ISSUER = "http://localhost"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_BODY = 1_048_576
EXEMPT = {"audit_event", "store_entry"}  # written on purpose by failures: see the docstring
NAMED_TABLES = {"account", "token", "authorization_code", "client", "identity", "organisation",
                "signing_key"}
ALLOWED_SCOPES = set(SCOPES)  # the test clients are registered with the default: all of them
JWK = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)

# Sent in every field. Values that only mean something to some fields are added for those below.
HOSTILE: list[tuple[str, str]] = [
    ("sql-or", "' OR '1'='1"),
    ("sql-union-drop", "1\" UNION SELECT password_hash FROM account; DROP TABLE token; --"),
    ("html-script", "<script>alert(1)</script>"),
    ("html-attr", '"><img src=x onerror=alert(1)>'),
    ("nul", "\x00"),
    ("control", "\x01\x02\x1b[31m\x7f"),
    ("crlf", "a\r\nSet-Cookie: evil=1"),
    ("blank", " \t "),
    ("empty", ""),
    ("unicode-mix", "\u202e\ufeff\u200b😀\ufffd'><svg onload=alert(1)>{{7*7}}%s"),
    ("long-10k", "A" * 10_000),
    ("long-100k", "b1" * 50_000),
]
NUMERIC = [("fullwidth-digits", "１３９１２３４５６７８"), ("arabic-indic-digits", "1٣٩١٢٣٤٥٦٧٨"),
           ("huge-number", "9" * 400), ("negative", "-1"), ("float", "1e3"),
           ("numeric-sql", "600 OR 1=1")]
BY_FIELD: dict[str, list[tuple[str, str]]] = {
    "phone": [*NUMERIC, ("sql-phone", PHONE + "' --"), ("nul-inside", "139123\x0045678"),
              ("phone-noise", "+86 139-1234-5678' --")],
    "sms_code": [*NUMERIC, ("six-fullwidth", "１２３４５６"), ("six-spaced", " 12345 ")],
    "max_age": NUMERIC,
    "redirect_uri": [("js-url", "javascript:alert(1)"), ("url-evil", "https://evil.example.com/"),
                     ("near-slash", REDIRECT + "/"), ("near-fragment", REDIRECT + "#x"),
                     ("near-query", REDIRECT + "?next=https://evil.example.com"),
                     ("near-http", REDIRECT.replace("https:", "http:")),
                     ("near-host", "https://rp.example.cn.evil.com/callback"),
                     ("near-case", REDIRECT.upper()), ("near-dots", REDIRECT + "/../../evil")],
    "post_logout_redirect_uri": [("js-url", "javascript:alert(1)"),
                                 ("url-evil", "https://evil.example.com/"),
                                 ("near-path", POST_LOGOUT + "x"),
                                 ("near-host", "https://rp.example.cn.evil.com/")],
    "request_uri": [("url-evil", "https://evil.example.com/request.jwt")],
    "P:filename": [("path", "../../../../etc/passwd"), ("path-encoded", "..%2F..%2Fapp.py"),
                   ("path-absolute", "/etc/passwd"), ("path-templates", "../templates/base.html")],
    "P:uid": [("path", "../../../../etc/passwd"), ("uid-shaped", "A" * 16)],
}
BY_FIELD["login_hint"] = BY_FIELD["logout_hint"] = BY_FIELD["phone"]
# The registration, committee and centre forms (S03–S07, T02–T08).
FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
for _name in ("legal_phone", "contact_phone", "gm_phone", "handler1_phone", "handler2_phone",
              "handler3_phone"):
    BY_FIELD[_name] = BY_FIELD["phone"]
BY_FIELD["uscc"] = [("uscc-bad-check", DEMO_USCC[:-1] + "X"),
                    ("uscc-fullwidth", DEMO_USCC.translate(FULLWIDTH)),
                    ("uscc-org-code-only", DEMO_USCC[8:17]), ("uscc-other", FOREIGN_USCC),
                    ("uscc-spaced", "9131 0115 MA1F L0D3 4W")]
for _name in ("legal_id_number", "gm_id_number"):
    BY_FIELD[_name] = [("id-bad-check", "110105194912310021"),
                       ("id-fullwidth", "11010519491231002X".translate(FULLWIDTH)),
                       ("id-short", "1101051949")]
for _name in ("term_start", "term_end"):
    BY_FIELD[_name] = [("date-impossible", "2025-02-30"),
                       ("date-fullwidth", "2025-01-01".translate(FULLWIDTH)),
                       ("date-slashes", "2025/01/01"), ("date-year-9999", "9999-12-31"),
                       ("date-before-1990", "1989-12-31"), ("date-with-time", "2025-01-01T08:00")]
for _name in ("legal_name", "contact_name", "gm_name", "handler1_name", "handler2_name",
              "handler3_name", "name", "area_name"):
    BY_FIELD[_name] = [("no-letter", "·-'."), ("digits-only", "12345")]
BY_FIELD["postcode"] = [("postcode-fullwidth", "２００１２０"), ("postcode-short", "20012")]
BY_FIELD["email"] = [("email-two-at", "a@b@example.cn"),
                     ("email-header", "office@example.cn\nBcc: x@evil.example.com")]
BY_FIELD["tel"] = BY_FIELD["fax"] = [("tel-letters", "021-5888ABCD")]
BY_FIELD["district"] = [("district-city", "310000"), ("district-elsewhere", "110101")]
# Ids in the admin API's and SCIM's paths are strings to the router: the services judge them.
PATH_IDS = [("id-4301-digits", "9" * 4301), ("path", "../../../../etc/passwd"),
            ("id-fullwidth", "１"), ("id-negative", "-1"), ("id-float", "1.0"),
            ("id-spaced", " 1 ")]
BY_FIELD["id_number"] = BY_FIELD["legal_id_number"]
for _name in ("P:user_id", "P:group_id"):
    BY_FIELD[_name] = [("id-zero", "0"), ("id-huge", "9" * 30), ("id-past-32-bits", str(2**31)),
                       ("id-past-64-bits", str(2**64)), *PATH_IDS]
BY_FIELD["tenant"] = BY_FIELD["uscc"]
for _name in ("P:application_id", "P:area_id", "target", "survivor", "merged", "org",
              "P:office_id", "office", "P:operator_id", "operator", "operator_id",
              "department_id"):
    BY_FIELD[_name] = [("id-zero", "0"), ("id-huge", "9" * 30), ("id-past-32-bits", str(2**31)),
                       ("id-past-64-bits", str(2**64))]
for _name in ("P:office_id", "P:operator_id"):  # also the admin API's (string) path ids
    BY_FIELD[_name] = [*BY_FIELD[_name], *PATH_IDS]
# The admin API and SCIM (JSON bodies): a field's value of another JSON type. A value starting
# with JSON_RAW is put into the document as the JSON that follows it (see ``json_value``).
JSON_RAW = "\x00json:"
JSON_TYPES = [("json-null", "null"), ("json-number", "12345"), ("json-true", "true"),
              ("json-infinity", "1e999"), ("json-list", '["a", "b"]'),
              ("json-object", '{"$ne": null}'), ("json-deep", "[" * 500 + "]" * 500)]
SCIM_MEDIA_TYPE = "application/scim+json"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_EXT = "urn:ietf:params:scim:schemas:extension:shfund:2.0:Operator"
SCIM_PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
API_SCOPE = "console.read console.write scim"
BY_FIELD["filter"] = [
    ("filter-sql", 'userName eq "x" or 1=1 --'), ("filter-unclosed", 'userName eq "abc'),
    ("filter-deep", "(" * 300 + 'userName pr' + ")" * 300),
    ("filter-many", " or ".join(['userName eq "1"'] * 300)),
    ("filter-unknown-attr", 'password eq "x"'), ("filter-complex", 'emails[type eq "work"]'),
    ("filter-bad-op", 'userName regex ".*"'), ("filter-number", "userName gt 1e999"),
    ("filter-bool", "active eq maybe"), ("filter-not", 'not (userName eq "1")'),
    ("filter-meta", 'meta.lastModified gt "2011-05-13T04:42:34Z"'),
    ("filter-date-bad", 'meta.lastModified gt "2011-02-30T99:00:00Z"'),
    ("filter-like", 'userName co "%_"'), ("filter-sw-empty", 'userName sw ""')]
for _name in ("startIndex", "count", "size"):
    BY_FIELD[_name] = [*NUMERIC, ("int-huge", str(2**63)), ("int-13-digits", "1" * 13)]
HOSTILE_KEYS = ["<script>alert(1)</script>", "' OR 1=1 --", "k" * 10_000, "\ufffd", "", "a[]",
                "__proto__", "&", "=="]
XSS_MARKERS = ("<script>alert", "<img src=x", "<svg onload")
LEAKS = ("traceback", "sqlalchemy", "psycopg", "sqlite3", "werkzeug.exceptions", 'file "/')
VISIBLE_ERROR = re.compile(
    r'<p class="(?:error-message|field-error)"[^>]*>\s*[^<\s][^<]*</p>')


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def wire(value: str) -> str:
    """A header value as a WSGI server hands it over: bytes read as latin-1 (characters beyond
    latin-1 are sent as their UTF-8 bytes; latin-1 characters stand for raw bytes)."""
    if all(ord(c) < 256 for c in value):
        return value
    return value.encode("utf-8").decode("latin-1")


# --- the world one test runs in --------------------------------------------------------------

class World:
    """Account, clients and a browser, in the state a case needs: anonymous, logged in
    ("user"), logged in with a pending forced password change ("pending"), the demo enterprise
    logged in by its UKey ("enterprise", registered for the fund platform only; also the
    admin of the tenant console: 小区管理处, 操作员管理, 用户审核), a centre reviewer of 浦东新区
    ("centre"), PHONE logged in as the handler of an active owners' committee of 和谐花园
    ("handler"), or a platform admin who has given the 动态口令 ("admin")."""

    def __init__(self, app: Flask, client: FlaskClient, state: str) -> None:
        self.app, self.client, self.state = app, client, state
        make_account(PHONE, must_change=state == "pending")
        _, secret = make_client()
        assert secret is not None
        self.secret = secret
        self._csrf: str | None = None
        self._tokens: dict[str, Any] | None = None
        self._sms_records: dict[tuple[str, str], str] = {}
        self.codes: dict[tuple[str, str], str] = {}
        self._cache: dict[str, Any] = {}
        self._checkpoint: dict[str, dict[tuple[Any, ...], dict[str, Any]]] | None = None
        self.last_state: TableState | None = None  # the tables after the last checked request
        # The demo enterprise, whose UKey certificate the UKey cases present; the "enterprise"
        # state has it registered for one platform, so that it may add the other.
        self.demo_id = make_enterprise(
            platforms=("repair_fund",) if state == "enterprise" else ("repair_fund", "supervision"),
        ).id
        self.pki = DevCA(Path(app.config["IDP"].ukey_trust).parent)
        if state == "handler":
            self._make_committee()
        if state in ("user", "pending", "handler"):
            response = login(client, app, PHONE)
            assert response.status_code == 303, response.text
        elif state == "centre":
            make_centre(CENTRE_PHONE, DISTRICT)
            response = login(client, app, CENTRE_PHONE)
            assert response.status_code == 303, response.text
        elif state == "enterprise":
            response = ukey_login(client, self.demo_pem())
            assert response.status_code == 303, response.text
        elif state == "admin":
            provisioned = provision_admin(ADMIN_PHONE, "平台管理员", PASSWORD)
            self.totp_seed = pyotp.parse_uri(provisioned.otpauth_uri).secret
            response = login(client, app, ADMIN_PHONE)
            assert response.status_code == 303, response.text
            response = client.post("/admin/verify", data={"code": self.totp(),
                                                          "csrf_token": self.csrf()})
            assert response.status_code == 303, response.text
        self.account_row = self._account_row()
        # The fast snapshot taken around every request counts what table_counts() counts.
        assert snapshot()[0] == table_counts()

    # --- browser state --------------------------------------------------------------------------
    def csrf(self) -> str:
        if self._csrf is None:
            # Any page with a form: /login for visitors, /password/change once logged in with
            # a phone, /lookup (a public form) for everybody else.
            for path in ("/login", "/password/change", "/lookup"):
                page = self.client.get(path)
                if page.status_code == 200 and 'name="csrf_token"' in page.text:
                    break
            self._csrf = csrf_from(page.text)
        return self._csrf

    def forget_csrf(self) -> None:
        self._csrf = None

    # --- UKey -----------------------------------------------------------------------------------
    def demo_pem(self) -> str:
        return self.pki.sample("demo").pem_path.read_text(encoding="ascii")

    def signed_challenge(self) -> Pairs:
        """A fresh nonce from the real endpoint, signed with the demo UKey's key (RSA)."""
        response = self.client.post("/login/ukey/challenge", data={"csrf_token": self.csrf()})
        assert response.status_code == 200, response.text
        nonce = response.json["nonce"]
        key = serialization.load_pem_private_key(
            self.pki.sample("demo").key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(nonce.encode(), padding.PKCS1v15(), hashes.SHA256())
        return [("csrf_token", self.csrf()), ("interaction", ""), ("nonce", nonce),
                ("certificate", self.demo_pem()), ("signature", b64(signature)),
                ("format", "raw"), ("hash", "sha256")]

    def _account_row(self) -> dict[str, Any]:
        table = db.metadata.tables["account"]
        with db.engine.connect() as conn:
            return dict(conn.execute(sa.select(table).where(table.c.phone == PHONE))
                        .mappings().one())

    def restore_account(self) -> None:
        """Undo a password change that a case legitimately let succeed."""
        table = db.metadata.tables["account"]
        row = dict(self.account_row)
        self.last_state = None
        with db.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == row.pop("id")).values(**row))
        db.session.rollback()
        if self.state == "pending":
            with self.client.session_transaction() as session:
                session["pwchange"] = True
        self.forget_csrf()

    def arm_sms(self) -> None:
        """A live SMS code for PHONE, with no tries, failures or lock counted: sent once through
        the real page, then the code's store record is put back before every request (a
        successful login uses it up; wrong tries would lock it)."""
        self.code_text = self._arm("login", PHONE, lambda: send_sms(self.client, PHONE))
        for name in (f"fail:{PHONE}", f"lock:{PHONE}"):
            get_store().delete(name)

    def _arm(self, purpose: str, phone: str, send: Callable[[], TestResponse]) -> str:
        """A live code of ``purpose`` for ``phone``, sent once by ``send`` (the real button),
        its store record put back before every request and its tries forgotten."""
        store, key = get_store(), f"sms:code:{purpose}:{phone}"
        if (purpose, phone) not in self._sms_records:
            response = send()
            assert response.status_code == 200, response.text
            self.codes[purpose, phone] = last_code(self.app, phone)
            record = store.get(key)
            assert record is not None
            self._sms_records[purpose, phone] = record
        store.set(key, self._sms_records[purpose, phone], 300)
        store.delete(f"sms:tries:{purpose}:{phone}")
        return self.codes[purpose, phone]

    def arm_verify(self, purpose: str, phone: str, path: str, field: str) -> str:
        """A live 「手机验证码」 of ``purpose`` for ``phone``, sent by the button at ``path``."""
        return self._arm(purpose, phone, lambda: self.client.post(
            path, data={field: phone, "csrf_token": self.csrf()},
            headers={"Accept": "application/json"}))

    # --- credentials (made before the snapshot, so they are not "writes") -------------------------
    # Kept while unused: ``run_variant`` forgets them as soon as a request changed the token or
    # code tables (a success, a code used up), so every request presents a live credential.
    def _cached(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = make()
            self.last_state = None  # making it wrote rows
            self._checkpoint = None  # and they belong to what a success is undone to
        return self._cache[name]

    def public_client(self) -> str:
        """A public client (PKCE, no secret), registered when a case first needs it."""
        return str(self._cached("client:pub", lambda: make_client(
            client_id="pub", public=True)[0].client_id))

    def jwt_client(self) -> str:
        """A private_key_jwt machine client whose key is JWK."""
        return str(self._cached("client:jwtc", lambda: make_client(
            client_id="jwtc", auth_method="private_key_jwt",
            jwks={"keys": [JWK.as_dict(private=False)]},
            grant_types=["client_credentials"])[0].client_id))

    def forget_credentials(self) -> None:
        self._cache = {k: v for k, v in self._cache.items() if k not in CREDENTIALS}

    def code(self) -> str:
        return str(self._cached("code", lambda: get_code(self.client, self.app)[0]))

    def public_code(self) -> tuple[str, str]:
        def make() -> tuple[str, str]:
            verifier, challenge = pkce_pair()
            code, _ = get_code(self.client, self.app, client_id=self.public_client(),
                               code_challenge=challenge, code_challenge_method="S256")
            return code, verifier
        pair: tuple[str, str] = self._cached("public_code", make)
        return pair

    def _exchange(self) -> dict[str, Any]:
        code, _ = get_code(self.client, self.app)
        response = self.client.post("/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        }, headers=basic("rp1", self.secret))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json
        return body

    def refresh_token(self) -> str:
        return str(self._cached("refresh", self._exchange)["refresh_token"])

    def tokens(self) -> dict[str, Any]:
        """Tokens no case revokes (userinfo, introspection, hints): made once per test."""
        if self._tokens is None:
            self._tokens = self._exchange()
            self.last_state = None
        return self._tokens

    def machine_token(self) -> str:
        def make() -> str:
            response = self.client.post("/token", data={"grant_type": "client_credentials"},
                                        headers=basic("rp1", self.secret))
            assert response.status_code == 200, response.text
            return str(response.json["access_token"])
        return str(self._cached("machine", make))

    # --- legacy binding (S04 「是」) ----------------------------------------------------------
    def legacy_pending(self) -> None:
        """A fund-system account (imported once) and a UKey login of its enterprise pending in
        the session, no wrong tries counted: the binding form's base request (by key) is valid."""
        from idp.registration.legacy import import_rows

        self._cached("legacy", lambda: import_rows(io.StringIO(
            f"uscc,name,legacy_id,totp_secret,key\n{LEGACY_USCC},上海申大物业有限公司,"
            f"{LEGACY_ID},{LEGACY_SECRET},{LEGACY_KEY}\n")))
        with self.client.session_transaction() as session:
            session["ukey_pending"] = {
                "uscc": LEGACY_USCC, "org_code": LEGACY_USCC[8:17], "name": "上海申大物业有限公司",
                "x5t": LEGACY_X5T, "transport": "proxy", "interaction": "", "at": time.time()}
        store = get_store()
        for subject in (f"legacy-bind:org:{LEGACY_USCC}", f"legacy-bind:x5t:{LEGACY_X5T}"):
            store.delete(f"{subject}:fail")
            store.delete(f"{subject}:lock")
        self.checkpoint()

    # --- undoing a legitimate success ----------------------------------------------------------
    def checkpoint(self) -> None:
        """Remember every table but the exempt ones as the case's base state (once the case's
        preparations have made their rows): ``undo`` puts them back after a success."""
        if self._checkpoint is None:
            self._checkpoint = table_rows()

    def undo(self) -> None:
        """Undo what a legitimate success wrote: rows it added are deleted, rows it changed or
        deleted are put back as they were at the checkpoint."""
        assert self._checkpoint is not None, "undo needs a checkpoint (in the case's prepare)"
        saved, current = self._checkpoint, table_rows()
        tables = [t for t in db.metadata.sorted_tables if t.name in saved]
        with db.engine.begin() as conn:
            for table in tables:
                for key, row in saved[table.name].items():
                    now = current[table.name].get(key)
                    if now is None:
                        conn.execute(table.insert().values(**row))
                    elif now != row:
                        conn.execute(table.update().where(*where_key(table, key)).values(**row))
            for table in reversed(tables):
                for key in set(current[table.name]) - set(saved[table.name]):
                    conn.execute(table.delete().where(*where_key(table, key)))
        db.session.rollback()
        self.last_state = None
        self.forget_csrf()

    def undo_and_log_out(self) -> None:
        """``undo`` of a success that logged the browser in (registration, binding)."""
        self.undo()
        with self.client.session_transaction() as session:
            session.clear()

    def _session(self, **values: Any) -> None:
        with self.client.session_transaction() as session:
            session.update(values)

    # --- enterprise registration (S03–S07, T02) ------------------------------------------------
    def ukey_pending(self) -> None:
        """S03: a UKey login of the unregistered enterprise (the devca sample) just checked."""
        self._session(ukey_pending={
            "uscc": NEW_USCC, "org_code": NEW_USCC[8:17], "name": NEW_NAME,
            "x5t": "x5t-of-the-unregistered-ukey", "transport": "proxy", "interaction": "",
            "at": time.time()})
        self.checkpoint()

    def registration_done(self) -> None:
        """What a registration leaves for its result page (S06)."""
        self._session(registration_done={"message": "测试物业维修中心2企业，您已注册成功",
                                         "interaction": "", "logged_in": False})

    def legacy_done(self) -> None:
        """What a binding leaves for its result page (the browser is the enterprise's)."""
        self._session(legacy_bound={"name": DEMO_NAME, "interaction": ""})

    def enterprise_returned(self) -> None:
        """A registration of the logged-in demo enterprise that the centre returned (T02)."""
        self.application_id = self._cached("enterprise-returned", lambda: add_application(
            "enterprise_registration", self.demo_id, applicant_account_id=self._ukey_account(),
            data={"platforms": ["supervision"], "name": DEMO_NAME, "uscc": DEMO_USCC}))
        self.foreign()
        self.checkpoint()

    def _ukey_account(self) -> str:
        return str(db.session.scalar(sa.select(Account.id).where(
            Account.organisation_id == self.demo_id)))

    # --- owners' committees (T04–T08) and look-up ----------------------------------------------
    def _make_committee(self) -> None:
        """PHONE handles an active, provisional committee of 和谐花园."""
        area = make_area(AREA, DISTRICT)
        account = db.session.scalar(sa.select(Account).where(Account.phone == PHONE))
        assert account is not None
        org = Organisation(type="committee", name=COMMITTEE, district=DISTRICT,
                           profile={"attribute": "provisional"})
        db.session.add(org)
        db.session.flush()
        db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                                role="committee_handler", platform="repair_fund"))
        db.session.add(AreaLink(area_id=area.id, organisation_id=org.id, role="committee"))
        db.session.commit()
        self.committee_id, self.area_id = org.id, area.id

    def committee_ready(self) -> None:
        """「业委会注册」: the area exists and 经办人1 has a live 手机验证码."""
        self._cached("area", lambda: make_area(AREA, DISTRICT).id)
        self.arm_verify(SMS_REGISTER, H1, "/register/committee/sms", "handler1_phone")
        self.checkpoint()

    def lookup_ready(self) -> None:
        """「用户名查询」: a live 手机验证码 for PHONE."""
        self.arm_verify(SMS_LOOKUP, PHONE, "/lookup/sms", "phone")
        self.checkpoint()

    def lookup_session(self) -> None:
        """The look-up proved 经办人1's phone, whose registration the centre returned."""
        def make() -> int:
            area = make_area(AREA, DISTRICT)
            org = Organisation(type="committee", name=COMMITTEE, district=DISTRICT,
                               status="returned", profile={"attribute": "provisional"})
            db.session.add(org)
            db.session.commit()
            return add_application("committee_registration", org.id, applicant_phone=H1, data={
                "name": COMMITTEE, "area_id": area.id, "attribute": "provisional",
                "term_start": None, "term_end": None, "platforms": ["repair_fund"],
                "handlers": [{"name": "王建国", "phone": H1}, {"name": "李建党", "phone": H2}]})
        self.application_id = self._cached("registration-returned", make)
        self.foreign()
        self._session(lookup_phone={"phone": H1, "at": time.time()})
        self.checkpoint()

    def change_returned(self) -> None:
        """A change of the handler's committee that the centre returned."""
        self.application_id = self._cached("change-returned", lambda: add_application(
            "committee_change", self.committee_id, applicant_account_id=self._phone_account(),
            applicant_phone=PHONE, data={"attribute": "formal", "term_start": "2025-01-01",
                                         "term_end": "2030-01-01"}))
        self.foreign()
        self.checkpoint()

    def association_returned(self) -> None:
        """An association of the handler's committee that the centre returned."""
        self.application_id = self._cached("association-returned", lambda: add_application(
            "association", self.committee_id, applicant_account_id=self._phone_account(),
            applicant_phone=PHONE, data={"area_id": self.area_id, "target_id": self.demo_id}))
        self.foreign()
        self.checkpoint()

    def handler_ready(self) -> None:
        self.foreign()
        self.checkpoint()

    def _phone_account(self) -> str:
        return str(db.session.scalar(sa.select(Account.id).where(Account.phone == PHONE)))

    # --- the centre console (T02, T04, T07, T08) -------------------------------------------------
    def centre_ready(self) -> None:
        """A pending enterprise registration of 浦东新区 and two areas to rename and merge."""
        def make() -> tuple[int, int, int]:
            org = Organisation(type="enterprise", name="浦东申大物业有限公司", uscc=PENDING_USCC,
                               org_code=PENDING_USCC[8:17], status="pending", district=DISTRICT,
                               profile={"contact_name": "王五", "legal_id_type": "111"})
            db.session.add(org)
            db.session.flush()
            account = Account(kind="ukey", name=org.name, organisation_id=org.id,
                              status="pending")
            db.session.add(account)
            db.session.flush()
            db.session.add(Identity(account_id=account.id, organisation_id=org.id,
                                    role="enterprise_admin", platform="supervision",
                                    status="pending"))
            db.session.commit()
            application = add_application(
                "enterprise_registration", org.id, status="pending",
                applicant_account_id=account.id,
                data={"platforms": ["supervision"], "name": org.name, "uscc": PENDING_USCC})
            return application, make_area(AREA, DISTRICT).id, make_area(AREA2, DISTRICT).id
        self.application_id, self.area_id, self.area2_id = self._cached("centre", make)
        self.foreign()
        self.checkpoint()

    def foreign(self) -> dict[str, int]:
        """Rows of others — another committee and its returned change, another enterprise's
        registration, an area and an application of another district — whose ids the matrix
        sends where the case's own go: each must be answered as an unknown id would be."""
        def make() -> dict[str, int]:
            committee = Organisation(type="committee", name="阳光花苑业主委员会",
                                     district=DISTRICT, profile={"attribute": "provisional"})
            enterprise = Organisation(type="enterprise", name="徐汇物业服务有限公司",
                                      uscc=FOREIGN_USCC, org_code=FOREIGN_USCC[8:17],
                                      status="returned", district=FOREIGN_DISTRICT)
            area = PropertyArea(name="徐汇花园", district=FOREIGN_DISTRICT)
            db.session.add_all([committee, enterprise, area])
            db.session.commit()
            return {
                "committee": committee.id, "enterprise": enterprise.id, "area": area.id,
                "change": add_application("committee_change", committee.id,
                                          applicant_phone=SMS_PHONE,
                                          data={"attribute": "formal"}),
                "registration": add_application(
                    "enterprise_registration", enterprise.id, district=FOREIGN_DISTRICT,
                    data={"platforms": ["supervision"], "uscc": FOREIGN_USCC}),
                "committee_registration": add_application(
                    "committee_registration", committee.id, applicant_phone=SMS_PHONE,
                    data={"name": "阳光花苑业主委员会"}),
            }
        ids: dict[str, int] = self._cached("foreign", make)
        return ids

    # --- the tenant console (T03, S16) ---------------------------------------------------------
    def _demo(self) -> Organisation:
        demo = db.session.get(Organisation, self.demo_id)
        assert demo is not None
        return demo

    def office_ready(self) -> None:
        """「小区管理处信息管理」: the demo enterprise has one office (no operators)."""
        self.office_id: int = self._cached("office", lambda: make_office(self._demo(),
                                                                         OFFICE_NAME).id)
        self.tenant_foreign()
        self.checkpoint()

    def staff_ready(self) -> None:
        """「实名认证申请」: the demo enterprise's office exists and STAFF_PHONE has a live
        手机验证码 of the form's own purpose."""
        self._cached("office", lambda: make_office(self._demo(), OFFICE_NAME).id)
        self.arm_verify(staff_service.SMS_STAFF, STAFF_PHONE, "/staff/apply/sms", "phone")
        self.checkpoint()

    def applications_ready(self) -> None:
        """「用户审核」: a pending application of APPLICANT_PHONE to the demo enterprise."""
        self.staff_application_id: int = self._cached(
            "staff-application",
            lambda: add_staff_application(self.demo_id, APPLICANT_NAME, APPLICANT_PHONE))
        self.tenant_foreign()
        self.checkpoint()

    def operator_ready(self) -> None:
        """「操作员管理」: the demo enterprise has an operator (正常使用) and an office."""
        self.operator_id: int = self._cached("operator", lambda: make_operator(
            self._demo(), phone=OPERATOR_PHONE, name=OPERATOR_NAME).id)
        self.office_ready()

    # --- the platform admin console (D05, D01) ---------------------------------------------------
    def totp(self) -> str:
        """The admin's 动态口令 now (RFC 6238, from the seed its authenticator app holds)."""
        return pyotp.TOTP(self.totp_seed).now()

    def admin_verify_ready(self) -> None:
        """「动态口令」 again: no step used yet (so the code of now is good once more after
        ``undo``), no wrong tries counted, no lock."""
        def unused() -> str:
            db.session.execute(sa.update(Account).where(Account.phone == ADMIN_PHONE)
                               .values(totp_last_step=None))
            db.session.commit()
            return str(db.session.scalar(sa.select(Account.id)
                                         .where(Account.phone == ADMIN_PHONE)))
        account_id = self._cached("admin-totp", unused)
        for name in (f"admin-totp:fail:{account_id}", f"admin-totp:lock:{account_id}"):
            get_store().delete(name)
        self.checkpoint()

    # --- the admin API and SCIM (bearer tokens of provisioning clients) ---------------------------
    def api_token(self, which: str = "demo") -> str:
        """An access token of a client_credentials client: ``demo`` bound to the demo
        enterprise with every API scope (the base of every API case), ``other`` bound to the
        other enterprise, ``read`` with console.read only, ``expired`` and ``revoked`` as rows
        the token endpoint would have written."""
        def issue(client_id: str, tenant: str, scope: str) -> str:
            _, secret = make_client(client_id=client_id, name="企业人事系统", redirect_uris=[],
                                    post_logout_redirect_uris=[], platform=None,
                                    grant_types=["client_credentials"], scope=API_SCOPE,
                                    tenant=tenant)
            assert secret is not None
            response = self.client.post("/token", data={
                "grant_type": "client_credentials", "scope": scope},
                headers=basic(client_id, secret))
            assert response.status_code == 200, response.text
            return str(response.json["access_token"])

        def dead(revoked: bool) -> str:
            value = secrets.token_urlsafe(32)
            issued = utcnow() - timedelta(hours=2)
            db.session.add(Token(
                grant_type="client_credentials", client_id="prov", scope=API_SCOPE,
                access_token_hash=token_hash(value), issued_at=issued,
                expires_in=3600 if not revoked else 86_400, family_id=uuid.uuid4().hex,
                revoked_at=utcnow() if revoked else None))
            db.session.commit()
            return value

        demo = self._cached("api:demo", lambda: issue("prov", DEMO_USCC, API_SCOPE))
        if which == "other":
            self.tenant_foreign()
            return str(self._cached("api:other", lambda: issue("prov-other", OTHER_USCC,
                                                                API_SCOPE)))
        if which == "read":
            return str(self._cached("api:read", lambda: issue("prov-read", DEMO_USCC,
                                                               "console.read")))
        if which in ("expired", "revoked"):
            return str(self._cached(f"api:{which}", lambda: dead(which == "revoked")))
        return str(demo)

    def api_ready(self) -> None:
        """The demo enterprise's operator and office, the other enterprise's, and a token."""
        self.api_token()
        self.operator_ready()

    def tenant_foreign(self) -> dict[str, int]:
        """Another active enterprise's office, operator and pending staff application: their
        ids, sent where the demo enterprise's go, must be answered as unknown ids are (404,
        or the field's message in a form)."""
        def make() -> dict[str, int]:
            other = make_enterprise(uscc=OTHER_USCC, name=OTHER_NAME, ukey=False)
            office = make_office(other, "厦门国密测试物业阳光苑管理处")
            return {"office": office.id,
                    "operator": make_operator(other, phone="13900000016", name="操作员六",
                                              department=office).id,
                    "staff_application": add_staff_application(other.id, "操作员三",
                                                               "13900000013")}
        ids: dict[str, int] = self._cached("tenant-foreign", make)
        return ids

    def pending_uid(self) -> str:
        response = self.client.get("/authorize", query_string=authorize_params())
        assert response.status_code == 303, response.text
        return parse_qs(urlsplit(response.location).query)["i"][0]

    # --- platform and role selection (S09, S18) ---------------------------------------------
    def choice_uid(self) -> str:
        """An authorization waiting on the role-selection page: PHONE gets a second identity
        on the fund platform (once), and a fresh request is started."""
        def second() -> int:
            account = db.session.scalar(sa.select(Account).where(Account.phone == PHONE))
            assert account is not None
            org = Organisation(type="enterprise", name="和谐物业有限公司")
            db.session.add(org)
            db.session.flush()
            identity = Identity(account_id=account.id, organisation_id=org.id, role="office",
                                platform="repair_fund")
            db.session.add(identity)
            db.session.commit()
            return identity.id
        self.second_identity: int = self._cached("identity:second", second)
        with self.client.session_transaction() as session:
            session.pop("identity_choice", None)
        response = self.client.get("/authorize", query_string=authorize_params())
        assert response.status_code == 303 and "/select-identity" in response.location
        return parse_qs(urlsplit(response.location).query)["i"][0]

    def portal_ready(self) -> None:
        """rp1 can be entered from the portal (its initiate_login_uri)."""
        def enable() -> bool:
            client = db.session.get(Client, "rp1")
            assert client is not None
            client.initiate_login_uri = PORTAL_LOGIN
            db.session.commit()
            return True
        self._cached("portal", enable)


def table_rows() -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every row of every table but the exempt ones, by primary key (for ``World.undo``)."""
    db.session.rollback()
    out: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            if table.name in EXEMPT:
                continue
            keys = [c.name for c in table.primary_key.columns]
            out[table.name] = {tuple(row[k] for k in keys): dict(row) for row in
                               conn.execute(sa.select(table)).mappings()}
    return out


def where_key(table: sa.Table, key: tuple[Any, ...]) -> list[Any]:
    return [column == value for column, value in zip(table.primary_key.columns, key,
                                                     strict=True)]


def add_application(kind: str, organisation_id: int, *, status: str = "returned",
                    district: str = DISTRICT, data: dict[str, Any],
                    applicant_account_id: str | None = None,
                    applicant_phone: str | None = None) -> int:
    """An application as the services leave it (returned ones with the centre's reason)."""
    application = Application(kind=kind, status=status, organisation_id=organisation_id,
                              district=district, data=data,
                              applicant_account_id=applicant_account_id,
                              applicant_phone=applicant_phone,
                              reason="营业执照不清晰" if status == "returned" else None)
    db.session.add(application)
    db.session.commit()
    return application.id


def add_staff_application(enterprise_id: int, name: str, phone: str) -> int:
    """A pending 实名认证申请 to the enterprise itself, as the public form leaves it (S16)."""
    application = StaffApplication(
        enterprise_id=enterprise_id, department_id=enterprise_id, phone=phone, name=name,
        id_type="111",
        id_number_sealed=seal(current_app.config["IDP"].key_passphrase,
                              staff_service.SEAL_PURPOSE, STAFF_ID_NUMBER),
        id_number_hint=staff_service.mask_id_number(STAFF_ID_NUMBER), status="pending")
    db.session.add(application)
    db.session.commit()
    return application.id


def assertion(**claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": "jwtc", "sub": "jwtc", "aud": f"{ISSUER}/token",
                               "iat": now, "exp": now + 60, "jti": secrets.token_hex(12)}
    payload.update(claims)
    return jwt.encode({"alg": "ES256", "kid": "k1"}, payload, JWK)


def signed_raw(payload: bytes, header: dict[str, Any] | None = None) -> str:
    return jws.serialize_compact(header or {"alg": "ES256", "kid": "k1"}, payload, JWK)


def crafted_assertions(_w: World) -> list[tuple[str, str]]:
    now = int(time.time())
    body = {"iss": "jwtc", "sub": "jwtc", "aud": f"{ISSUER}/token", "iat": now,
            "exp": now + 60}
    none_header = b64url(json.dumps({"alg": "none"}).encode())
    return [
        ("jwt-alg-none", f"{none_header}.{b64url(json.dumps(body).encode())}."),
        ("jwt-bad-signature", assertion()[:-6] + "AAAAAA"),
        ("jwt-sub-sql", assertion(sub="jwtc' OR '1'='1", iss="jwtc' OR '1'='1")),
        ("jwt-sub-long", assertion(sub="x" * 10_000)),
        ("jwt-sub-list", assertion(sub=["jwtc"])),
        ("jwt-iss-other", assertion(iss="rp1")),
        ("jwt-aud-evil", assertion(aud="https://evil.example.com/")),
        ("jwt-expired", assertion(exp=now - 3600, iat=now - 7200)),
        ("jwt-exp-string", assertion(exp="tomorrow")),
        ("jwt-exp-far-future", assertion(exp=now + 10**12)),
        ("jwt-exp-infinity", signed_raw(
            json.dumps({**body, "jti": secrets.token_hex(8)})
            .replace(f'"exp": {now + 60}', '"exp": 1e999').encode())),
        ("jwt-jti-long", assertion(jti="j" * 10_000)),
        ("jwt-jti-object", assertion(jti={"a": 1})),
        ("jwt-no-jti", signed_raw(json.dumps(body).encode())),
        ("jwt-kid-sql", signed_raw(json.dumps({**body, "jti": "x1"}).encode(),
                                   {"alg": "ES256", "kid": "' OR 1=1 --"})),
        ("jwt-payload-list", signed_raw(b"[]")),
        ("jwt-payload-not-utf8", signed_raw(b"\xff\xfe")),
        ("jwt-payload-not-json", signed_raw(b"not json")),
        ("jwt-empty-object", "e30.e30."),
        ("jwt-three-garbage", "a.b.c"),
        ("jwt-five-segments", "a.b.c.d.e"),
        ("jwt-huge", "a." * 50_000),
    ]


def crafted_basic(w: World) -> list[tuple[str, str]]:
    return [
        ("basic-bare", "Basic"),
        ("basic-empty", "Basic "),
        ("basic-nbsp", "Basic \xa0"),
        ("basic-not-base64", "Basic !!!###"),
        ("basic-no-colon", "Basic " + b64(b"rp1")),
        ("basic-empty-secret", "Basic " + b64(b"rp1:")),
        ("basic-colon-only", "Basic " + b64(b":")),
        ("basic-not-utf8", "Basic " + b64(b"\xff\xfe:\xff")),
        ("basic-sql", "Basic " + b64(b"rp1' OR '1'='1:x")),
        ("basic-nul", "Basic " + b64(b"rp1\x00:" + w.secret.encode())),
        ("basic-bad-percent", "Basic " + b64(b"%ZZ:%")),
        ("basic-long-secret", "Basic " + b64(b"rp1:" + b"x" * 100_000)),
        ("basic-long-id", "Basic " + b64(b"x" * 10_000 + b":y")),
        ("basic-wrong-secret", "Basic " + b64(b"rp1:wrong-secret")),
        ("basic-public-client", "Basic " + b64(b"pub:anything")),
        ("bearer-instead", "Bearer abc"),
        ("digest", 'Digest username="rp1", realm="x"'),
    ]


def crafted_bearer(w: World) -> list[tuple[str, str]]:
    return [
        ("bearer-bare", "Bearer"),
        ("bearer-empty", "Bearer "),
        ("bearer-two-words", "Bearer a b"),
        ("bearer-sql", "Bearer ' OR 1=1 --"),
        ("bearer-long", "Bearer " + "a" * 100_000),
        ("bearer-not-utf8", "Bearer \xff\xfe\x80"),
        ("bearer-refresh-token", "Bearer " + w.tokens()["refresh_token"]),
        ("bearer-id-token", "Bearer " + w.tokens()["id_token"]),
        ("bearer-no-openid", "Bearer " + w.machine_token()),
        ("basic-instead", "Basic " + b64(f"rp1:{w.secret}".encode())),
    ]


def crafted_api_bearer(w: World) -> list[tuple[str, str]]:
    """Tokens the admin API and SCIM must refuse (RFC 6750): malformed ones, other kinds,
    another enterprise's, too small a scope, expired, revoked, a person's with no enterprise."""
    return [*crafted_api_bearer_for_create(w),
            ("bearer-other-enterprise", "Bearer " + w.api_token("other"))]


def crafted_api_bearer_for_create(w: World) -> list[tuple[str, str]]:
    """``crafted_api_bearer`` but another enterprise's token: creating with it is legitimate
    (the row is that enterprise's)."""
    return [*crafted_bearer(w),
            ("bearer-read-only", "Bearer " + w.api_token("read")),
            ("bearer-expired", "Bearer " + w.api_token("expired")),
            ("bearer-revoked", "Bearer " + w.api_token("revoked")),
            ("bearer-altered", "Bearer " + w.api_token()[:-1]
             + ("A" if not w.api_token().endswith("A") else "B"))]


def crafted_id_token_hints(w: World) -> list[tuple[str, str]]:
    now = int(time.time())
    foreign = jwt.encode({"alg": "ES256", "kid": "k1"},
                         {"iss": ISSUER, "sub": "x", "aud": "rp1", "iat": now}, JWK)
    return [
        ("hint-foreign-key", foreign),
        ("hint-alg-none", b64url(b'{"alg":"none"}') + "." + b64url(b'{"sub":"x"}') + "."),
        ("hint-garbage", "a.b.c"),
        ("hint-access-token", w.tokens()["access_token"]),
        ("hint-huge", "a." * 50_000),
    ]


# --- cases ------------------------------------------------------------------------------------

Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class Case:
    """One endpoint in one situation. ``fields`` builds a valid base request (live codes and
    tokens each time); ``H:`` names are headers, ``P:`` names fill the path."""

    id: str
    method: str
    path: str
    kind: str  # "api" (JSON), "page" (HTML), "sms" (JSON for the page's script), "static"
    fields: Callable[[World], Pairs]
    targets: tuple[str, ...]
    state: str = "anon"
    optional: frozenset[str] = frozenset()  # may be missing, the request may still succeed
    opaque: frozenset[str] = frozenset()  # any value is accepted as it is
    # (field, value label): a value of HOSTILE/BY_FIELD that a free-text field legitimately
    # accepts (stored as text, shown escaped), so the request may succeed with it.
    accepts: frozenset[tuple[str, str]] = frozenset()
    writes: frozenset[str] = frozenset()  # tables a legitimate success changes
    burns: frozenset[str] = frozenset()  # single-use credentials used up even by a failure
    extra: tuple[str, ...] = ()  # optional parameters, absent from the base, sent hostile
    special: Callable[[World], dict[str, Pairs]] | None = None
    prepare: Callable[[World], None] | None = None
    after_success: Callable[[World], None] | None = None
    accept_json: bool = False
    rejects_repeats: bool = False
    base_succeeds: bool = True
    # A JSON API (/api/, /scim/): the fields (but headers and path) become this JSON document,
    # sent with ``content_type``; None: a form (a query string for GET and DELETE).
    json: Callable[[Pairs], Any] | None = None
    content_type: str = "application/json"


def _authorize(w: World) -> Pairs:
    _, challenge = pkce_pair()
    return list(authorize_params(code_challenge=challenge, code_challenge_method="S256",
                                 max_age="3600", login_hint=PHONE).items())


AUTHORIZE_TARGETS = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                     "code_challenge", "code_challenge_method", "max_age", "login_hint")
AUTHORIZE_OPTIONAL = frozenset({"scope", "state", "nonce", "code_challenge",
                                "code_challenge_method", "max_age", "login_hint"})
# Accepted as they are (or ignored): a success with a code is legitimate. Not here: ``request``
# and ``request_uri`` (OIDC Core §6.1/§6.2: an OP that does not support them MUST answer
# request_not_supported / request_uri_not_supported), and the validated parameters.
AUTHORIZE_OPAQUE = frozenset({"state", "login_hint", "nonce", "ui_locales", "display",
                              "acr_values", "claims_locales", "response_mode", "prompt",
                              "claims", "id_token_hint", "scope"})
AUTHORIZE_EXTRA = ("prompt", "request", "request_uri", "response_mode", "id_token_hint")


def _login_fields(w: World) -> Pairs:
    return [("phone", PHONE), ("password", PASSWORD), ("sms_code", w.code_text),
            ("interaction", ""), ("csrf_token", w.csrf())]


def _pw_fields(w: World) -> Pairs:
    base = [("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD),
            ("interaction", ""), ("csrf_token", w.csrf())]
    return base if w.state == "pending" else [("old_password", PASSWORD), *base]


def _logout_fields(w: World) -> Pairs:
    return [("client_id", "rp1"), ("post_logout_redirect_uri", POST_LOGOUT), ("state", "ls-1"),
            ("logout_hint", PHONE), ("ui_locales", "zh-CN")]


LOGOUT_TARGETS = ("client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales")
ALL_LOGOUT = frozenset({*LOGOUT_TARGETS, "id_token_hint", "confirm", "csrf_token"})


ENTERPRISE_FORM: Pairs = [
    ("uscc", NEW_USCC), ("name", "测试物业维修中心2"), ("postcode", "200120"),
    ("tel", "021-58881234"), ("email", "office@example.cn"), ("fax", ""),
    ("legal_name", "杜晨"), ("legal_phone", "17648830890"), ("legal_id_type", "111"),
    ("legal_id_number", "11010519491231002X"), ("contact_name", "杜晨"),
    ("contact_phone", "17648830890")]
SUPERVISION_FORM: Pairs = [
    ("reg_place", "310000"), ("district", DISTRICT), ("had_qualification", "是"),
    ("qualification_level", "1"), ("gm_name", "王建国"), ("gm_phone", "13912340000"),
    ("gm_id_type", "111"), ("gm_id_number", "11010519491231002X")]
# 原资质等级 is required when 原来是否有资质证书 is 是 (the base); left out, 是 becomes 否.
ENTERPRISE_OPTIONAL = frozenset({"postcode", "tel", "email", "fax", "had_qualification"})
# A registration of the certificate's enterprise: both platforms, so every field counts.
ENTERPRISE_FIELDS = (*(k for k, _ in ENTERPRISE_FORM), "platforms",
                     *(k for k, _ in SUPERVISION_FORM), "csrf_token")
# Resubmission and adding a platform act on the logged-in enterprise: the form's (read-only)
# USCC is not read at all, so any value is accepted as it is.
OWN_ENTERPRISE_FIELDS = tuple(k for k in ENTERPRISE_FIELDS if k != "platforms")
OWN_ENTERPRISE_OPTIONAL = ENTERPRISE_OPTIONAL | {"uscc"}


def _enterprise_fields(w: World) -> Pairs:
    return [*ENTERPRISE_FORM, ("platforms", "repair_fund"), ("platforms", "supervision"),
            *SUPERVISION_FORM, ("csrf_token", w.csrf())]


def _resubmit_fields(w: World) -> Pairs:
    form = [("uscc", DEMO_USCC) if k == "uscc" else (k, v) for k, v in ENTERPRISE_FORM]
    return [*form, *SUPERVISION_FORM, ("csrf_token", w.csrf()),
            ("P:application_id", str(w.application_id))]


def _platform_fields(w: World) -> Pairs:
    form = [("uscc", DEMO_USCC) if k == "uscc" else (k, v) for k, v in ENTERPRISE_FORM]
    return [*form, ("platforms", "supervision"), *SUPERVISION_FORM, ("csrf_token", w.csrf())]


COMMITTEE_FORM: Pairs = [
    ("name", COMMITTEE), ("district", DISTRICT), ("area_name", AREA), ("attribute", "formal"),
    ("term_start", "2024-01-01"), ("term_end", "2029-01-01"), ("handler1_name", "王建国"),
    ("handler1_phone", H1), ("handler2_name", "李建党"), ("handler2_phone", H2),
    ("handler3_name", "张三"), ("handler3_phone", H3)]
COMMITTEE_FIELDS = (*(k for k, _ in COMMITTEE_FORM), "sms_code", "csrf_token")
RESUBMIT_REGISTRATION_FIELDS = (*(k for k, _ in COMMITTEE_FORM if k != "handler1_phone"),
                                "csrf_token", "P:application_id")


def _committee_fields(w: World) -> Pairs:
    return [*COMMITTEE_FORM, ("sms_code", w.codes[SMS_REGISTER, H1]), ("csrf_token", w.csrf())]


def _committee_sms_page_fields(w: World) -> Pairs:
    """The whole registration form, posted to the SMS button without the page's script."""
    return [*COMMITTEE_FORM, ("sms_code", ""), ("csrf_token", w.csrf())]


def _resubmit_registration_fields(w: World) -> Pairs:
    return [*((k, v) for k, v in COMMITTEE_FORM if k != "handler1_phone"),
            ("csrf_token", w.csrf()), ("P:application_id", str(w.application_id))]


CHANGE_FORM: Pairs = [("name", COMMITTEE), ("attribute", "formal"),
                      ("term_start", "2025-01-01"), ("term_end", "2030-01-01")]
CHANGE_FIELDS = ("name", "attribute", "term_start", "term_end", "csrf_token")
ASSOCIATION_FIELDS = ("step", "uscc", "target", "csrf_token")


def _change_fields(w: World) -> Pairs:
    return [*CHANGE_FORM, ("csrf_token", w.csrf())]


def _association_fields(w: World) -> Pairs:
    return [("step", "2"), ("uscc", DEMO_USCC), ("target", str(w.demo_id)),
            ("csrf_token", w.csrf())]


def _own(fields: Callable[[World], Pairs]) -> Callable[[World], Pairs]:
    """The fields of a resubmission of the world's own (returned) application."""
    return lambda w: [*fields(w), ("P:application_id", str(w.application_id))]


def _foreign(key: str) -> Callable[[World], list[tuple[str, str]]]:
    """The id of somebody else's row, as a value that must be refused like an unknown id."""
    return lambda w: [(f"foreign-{key}", str(w.foreign()[key]))]


def _centre_application(w: World) -> Pairs:
    return [("P:application_id", str(w.application_id)), ("csrf_token", w.csrf())]


# Free text the centre writes to the applicant: SQL-looking text and line breaks (collapsed)
# are legitimate reasons; markup, control characters, blanks and overlong text are not.
REASON_TEXT = frozenset({("reason", "sql-or"), ("reason", "sql-union-drop"),
                         ("reason", "crlf")})


# --- the tenant console (T03, S16) -----------------------------------------------------------

def _other(key: str) -> Callable[[World], list[tuple[str, str]]]:
    """The id of another enterprise's row (``World.tenant_foreign``): refused as unknown."""
    return lambda w: [(f"other-enterprise-{key}", str(w.tenant_foreign()[key]))]


OFFICE_FORM: Pairs = [("name", "阳光花苑管理处"), ("contact_name", "王建国"),
                      ("contact_phone", "13812345678"), ("address", "上海市浦东新区和谐路1号"),
                      ("remark", "负责阳光花苑一期、二期")]
OFFICE_FIELDS = (*(k for k, _ in OFFICE_FORM), "csrf_token")
OFFICE_OPTIONAL = frozenset({"contact_name", "contact_phone", "address", "remark"})
# 地址 and 备注 are free text: line breaks collapse to a blank and are stored as text; quotes,
# semicolons, angle brackets, control characters and overlong text are refused.
OFFICE_TEXT = frozenset({("address", "crlf"), ("remark", "crlf")})


def _office_fields(w: World) -> Pairs:
    return [*OFFICE_FORM, ("csrf_token", w.csrf())]


def _office_id(w: World) -> Pairs:
    return [("P:office_id", str(w.office_id))]


STAFF_FORM: Pairs = [("uscc", DEMO_USCC), ("office", OFFICE_NAME), ("name", STAFF_NAME),
                     ("id_type", "111"), ("id_number", STAFF_ID_NUMBER), ("phone", STAFF_PHONE)]
STAFF_FIELDS = (*(k for k, _ in STAFF_FORM), "sms_code", "csrf_token")


def _staff_fields(w: World) -> Pairs:
    return [*STAFF_FORM, ("sms_code", w.codes[staff_service.SMS_STAFF, STAFF_PHONE]),
            ("csrf_token", w.csrf())]


def _staff_sms_page_fields(w: World) -> Pairs:
    """The whole application form, posted to the SMS button without the page's script."""
    return [*((k, SMS_PHONE if k == "phone" else v) for k, v in STAFF_FORM), ("sms_code", ""),
            ("csrf_token", w.csrf())]


def _staff_application(w: World) -> Pairs:
    return [("P:application_id", str(w.staff_application_id)), ("csrf_token", w.csrf())]


OPERATOR_FORM: Pairs = [("name", NEW_OPERATOR_NAME), ("category", "enterprise"),
                        ("phone", NEW_OPERATOR_PHONE), ("role", "operator"),
                        ("remark", "新来的出纳")]
OPERATOR_FIELDS = ("name", "department_id", "category", "phone", "role", "remark", "csrf_token")
# 部门类别 and 角色 follow the department when left empty; 备注 is optional free text (shown
# escaped; only markup, control characters and overlong text are refused).
OPERATOR_OPTIONAL = frozenset({"category", "role", "remark"})
OPERATOR_REMARK_TEXT = frozenset({("remark", "sql-or"), ("remark", "sql-union-drop"),
                                  ("remark", "crlf")})
OPERATOR_FILTERS: Pairs = [("operator_id", ""), ("name", "操作员"), ("status", "active"),
                           ("category", "enterprise"), ("unit_code", "MA1FL0D34"),
                           ("unit_name", "演示物业"), ("page", "1"), ("done", "updated")]


def _operator_fields(w: World) -> Pairs:
    return [*OPERATOR_FORM[:1], ("department_id", str(w.demo_id)), *OPERATOR_FORM[1:],
            ("csrf_token", w.csrf())]


def _operator_id(w: World) -> Pairs:
    return [("P:operator_id", str(w.operator_id))]


def _operator_filters(w: World) -> Pairs:
    return [(k, str(w.operator_id) if k == "operator_id" else v) for k, v in OPERATOR_FILTERS]


CLIENT_FORM: Pairs = [
    ("name", "上海市物业监管平台测试系统"), ("client_id", "supervision-test"),
    ("platform", "supervision"), ("auth_method", "client_secret_basic"),
    ("grant_types", "authorization_code"), ("grant_types", "refresh_token"),
    ("redirect_uris", "https://sv.example.cn/auth/callback\r\nhttp://127.0.0.1/cb"),
    ("post_logout_redirect_uris", "https://sv.example.cn/"),
    ("backchannel_logout_uri", "https://sv.example.cn/backchannel-logout"),
    ("initiate_login_uri", "https://sv.example.cn/login"), ("tenant", "")]
CLIENT_FIELDS = (*dict(CLIENT_FORM), "csrf_token")
# Left out, 客户端认证方式 is the form's default (client_secret_basic).
CLIENT_OPTIONAL = frozenset({"platform", "post_logout_redirect_uris", "backchannel_logout_uri",
                             "initiate_login_uri", "tenant", "auth_method"})
# Editing keeps the client's id and authentication method: those two fields are not read.
EDIT_CLIENT_FIELDS = tuple(k for k in CLIENT_FIELDS if k not in ("client_id", "auth_method"))
AUDIT_FILTERS: Pairs = [("start", "2024-01-01"), ("end", "2099-12-31"), ("account", PHONE),
                        ("org", "演示"), ("event", "login"), ("result", "failure")]
ORG_FILTERS: Pairs = [("q", "演示"), ("code", "MA1FL0D34"), ("type", "enterprise"),
                      ("status", "active"), ("district", DISTRICT), ("page", "1")]


def _client_fields(w: World) -> Pairs:
    return [*CLIENT_FORM, ("csrf_token", w.csrf())]


def _client_edit_fields(w: World) -> Pairs:
    return [*((k, v) for k, v in CLIENT_FORM if k not in ("client_id", "auth_method")),
            ("P:client_id", "rp1"), ("csrf_token", w.csrf())]


def _client_action(w: World) -> Pairs:
    return [("P:client_id", "rp1"), ("csrf_token", w.csrf())]


# --- the admin API and SCIM (JSON) ------------------------------------------------------------

def json_value(raw: str, number: bool = False) -> Any:
    """A field's value in a JSON document: JSON_RAW + text is that JSON; ASCII digits of a
    number field are a number; anything else a string."""
    if raw.startswith(JSON_RAW):
        return json.loads(raw[len(JSON_RAW):])
    if number and raw.isascii() and raw.isdigit() and len(raw) < 100:
        return int(raw)
    return raw


def json_fields(numbers: frozenset[str] = frozenset()) -> Callable[[Pairs], dict[str, Any]]:
    """The fields as one JSON object; a field sent twice becomes a list of both values."""
    def build(pairs: Pairs) -> dict[str, Any]:
        values: dict[str, list[Any]] = {}
        for key, raw in pairs:
            values.setdefault(key, []).append(json_value(raw, key in numbers))
        return {k: v[0] if len(v) == 1 else v for k, v in values.items()}
    return build


def scim_user(pairs: Pairs) -> dict[str, Any]:
    """A SCIM User (RFC 7643 §4.1) from flat fields: ``name.formatted``, the mobile
    ``phoneNumbers.value``, ``ext.*`` (the operator extension); ``schemas`` names the core
    schema (the extension's URN is added)."""
    doc: dict[str, Any] = {}
    for key, value in json_fields()(pairs).items():
        if key == "schemas":
            doc["schemas"] = [value, SCIM_EXT] if isinstance(value, str) else value
        elif key == "name.formatted":
            doc["name"] = {"formatted": value}
        elif key == "phoneNumbers.value":
            doc["phoneNumbers"] = [{"type": "mobile", "value": value, "primary": True}]
        elif key.startswith("ext."):
            doc.setdefault(SCIM_EXT, {})[key[4:]] = value
        else:
            doc[key] = value
    return doc


def scim_patch(pairs: Pairs) -> dict[str, Any]:
    """A SCIM PatchOp (RFC 7644 §3.5.2) of one operation: ``op``, ``path``, ``value``."""
    fields = json_fields()(pairs)
    schemas = fields.pop("schemas", None)
    return {"schemas": [schemas] if isinstance(schemas, str) else schemas,
            "Operations": [fields]}


def _bearer(w: World) -> Pairs:
    return [("H:Authorization", "Bearer " + w.api_token())]


def _api_operator_id(w: World) -> Pairs:
    return [("P:operator_id", str(w.operator_id)), *_bearer(w)]


def _api_office_id(w: World) -> Pairs:
    return [("P:office_id", str(w.office_id)), *_bearer(w)]


def _api_other(key: str) -> Callable[[World], dict[str, list[tuple[str, str]]]]:
    """Another enterprise's id in the path, and crafted tokens."""
    return lambda w: {f"P:{key}_id": _other(key)(w), "H:Authorization": crafted_api_bearer(w)}


API_OPERATOR_FIELDS = ("name", "department_id", "category", "phone", "role", "remark")
SCIM_USER_FORM: Pairs = [("schemas", SCIM_USER), ("userName", NEW_OPERATOR_PHONE),
                         ("name.formatted", NEW_OPERATOR_NAME),
                         ("phoneNumbers.value", NEW_OPERATOR_PHONE),
                         ("active", JSON_RAW + "true"), ("ext.remark", "新来的出纳"),
                         ("externalId", "hr-4711")]
SCIM_USER_OPTIONAL = frozenset({"phoneNumbers.value", "active", "ext.departmentId", "ext.remark",
                                "externalId"})
SCIM_USER_ACCEPTS = frozenset({("ext.remark", "sql-or"), ("ext.remark", "sql-union-drop"),
                              ("ext.remark", "crlf"), ("active", "json-true"),
                              # externalId: any 1–255 printable characters (RFC 7643 §3.1)
                              *(("externalId", label) for label in (
                                  "sql-or", "sql-union-drop", "html-script", "html-attr"))})
SCIM_LIST: Pairs = [("startIndex", "1"), ("count", "10"), ("attributes", "userName,name"),
                    ("excludedAttributes", "")]


def _scim_user_fields(w: World) -> Pairs:
    return [*SCIM_USER_FORM, ("ext.departmentId", str(w.demo_id)), *_bearer(w)]


def _scim_user_id(w: World) -> Pairs:
    return [("P:user_id", str(w.operator_id)), *_bearer(w)]


def _scim_other(w: World) -> dict[str, list[tuple[str, str]]]:
    return {"P:user_id": _other("operator")(w), "H:Authorization": crafted_api_bearer(w)}


# 驳回原因 is shown to the applicant as text: SQL-looking text and line breaks (collapsed) are
# legitimate reasons; angle brackets, control characters, blanks and overlong text are not.
STAFF_REASON_TEXT = frozenset({("reason", "sql-or"), ("reason", "sql-union-drop"),
                               ("reason", "crlf")})


def _bind_fields(w: World) -> Pairs:
    return [("legacy_id", LEGACY_ID), ("method", "key"), ("otp_code", ""), ("key", LEGACY_KEY),
            ("csrf_token", w.csrf())]


def _token_headers(w: World) -> Pairs:
    return [("H:Authorization", basic("rp1", w.secret)["Authorization"])]


def _public_code_fields(w: World) -> Pairs:
    code, verifier = w.public_code()
    return [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT),
            ("client_id", "pub"), ("code_verifier", verifier)]


CASES: list[Case] = [
    # --- pages ---------------------------------------------------------------------------------
    Case("home-anon", "GET", "/", "page", lambda w: [("changed", "1")], ("changed",),
         optional=frozenset({"changed"}), opaque=frozenset({"changed"})),
    # --- platform and role selection (S09, S18) ---------------------------------------------
    Case("select-identity-page", "GET", "/select-identity", "page",
         lambda w: [("i", w.choice_uid())], ("i",), state="user"),
    Case("select-identity", "POST", "/select-identity", "page",
         lambda w: [("i", w.choice_uid()), ("identity", str(w.second_identity)),
                    ("csrf_token", w.csrf())],
         ("i", "identity", "csrf_token"), state="user"),
    Case("portal-enter", "POST", "/portal/enter", "page",
         lambda w: [("platform", "repair_fund"), ("csrf_token", w.csrf())],
         ("platform", "csrf_token"), state="user", prepare=World.portal_ready),
    Case("home-user", "GET", "/", "page", lambda w: [("changed", "1")], ("changed",),
         state="user", optional=frozenset({"changed"}), opaque=frozenset({"changed"})),
    Case("login-page", "GET", "/login", "page",
         lambda w: [("i", "A" * 16), ("login_hint", PHONE)], ("i", "login_hint"),
         optional=frozenset({"i", "login_hint"}), opaque=frozenset({"i", "login_hint"})),
    Case("login-page-user", "GET", "/login", "page", lambda w: [("i", "A" * 16)], ("i",),
         state="user", optional=frozenset({"i"}), opaque=frozenset({"i"})),
    Case("login-submit", "POST", "/login", "page", _login_fields,
         ("phone", "password", "sms_code", "interaction", "csrf_token"),
         optional=frozenset({"interaction"}), opaque=frozenset({"interaction"}),
         writes=frozenset({"account"}), prepare=World.arm_sms,
         after_success=World.forget_csrf),
    Case("sms-page", "POST", "/login/sms", "page",
         lambda w: [("phone", SMS_PHONE), ("interaction", ""), ("csrf_token", w.csrf())],
         ("phone", "interaction", "csrf_token"),
         optional=frozenset({"interaction"}), opaque=frozenset({"interaction"})),
    # --- UKey (S02, D02) --------------------------------------------------------------------------
    Case("ukey-login", "POST", "/login/ukey", "page",
         lambda w: [("csrf_token", w.csrf()), ("interaction", ""),
                    ("H:X-SSL-Client-Cert", quote(w.demo_pem(), safe="")),
                    ("E:REMOTE_ADDR", TEST_PROXY)],
         ("csrf_token", "interaction", "H:X-SSL-Client-Cert"),
         optional=frozenset({"interaction"}), opaque=frozenset({"interaction"}),
         writes=frozenset({"account", "certificate"}), after_success=World.forget_csrf),
    Case("ukey-login-rfc9440", "POST", "/login/ukey", "page",
         lambda w: [("csrf_token", w.csrf()),
                    ("H:Client-Cert", ":" + b64(w.pki.sample("demo").cert.public_bytes(
                        serialization.Encoding.DER)) + ":"),
                    ("E:REMOTE_ADDR", TEST_PROXY)],
         ("H:Client-Cert",), writes=frozenset({"account", "certificate"}),
         after_success=World.forget_csrf),
    Case("ukey-challenge", "POST", "/login/ukey/challenge", "sms",
         lambda w: [("csrf_token", w.csrf())], ("csrf_token",), accept_json=True),
    Case("ukey-signed", "POST", "/login/ukey/signed", "page", World.signed_challenge,
         ("csrf_token", "interaction", "nonce", "certificate", "signature", "format", "hash"),
         optional=frozenset({"interaction", "format", "hash"}),
         opaque=frozenset({"interaction"}),
         writes=frozenset({"account", "certificate"}), after_success=World.forget_csrf),
    Case("sms-json", "POST", "/login/sms", "sms",
         lambda w: [("phone", SMS_PHONE), ("csrf_token", w.csrf())], ("phone", "csrf_token"),
         accept_json=True),
    Case("password-page-user", "GET", "/password/change", "page",
         lambda w: [("i", "A" * 16)], ("i",), state="user",
         optional=frozenset({"i"}), opaque=frozenset({"i"})),
    Case("password-page-pending", "GET", "/password/change", "page",
         lambda w: [("i", "A" * 16)], ("i",), state="pending",
         optional=frozenset({"i"}), opaque=frozenset({"i"})),
    Case("password-change-user", "POST", "/password/change", "page", _pw_fields,
         ("old_password", "new_password", "confirm_password", "interaction", "csrf_token"),
         state="user", optional=frozenset({"interaction"}), opaque=frozenset({"interaction"}),
         writes=frozenset({"account"}), after_success=World.restore_account),
    Case("password-change-pending", "POST", "/password/change", "page", _pw_fields,
         ("new_password", "confirm_password", "interaction", "csrf_token"), state="pending",
         optional=frozenset({"interaction"}), opaque=frozenset({"interaction"}),
         writes=frozenset({"account"}), after_success=World.restore_account),
    Case("password-change-anon", "POST", "/password/change", "page",
         lambda w: [("old_password", PASSWORD), ("new_password", NEW_PASSWORD),
                    ("confirm_password", NEW_PASSWORD), ("csrf_token", w.csrf())],
         ("new_password", "csrf_token")),
    # --- authorization endpoint ------------------------------------------------------------------
    # The logged-in GET carries the whole matrix (it reaches code issuance); the others the
    # parameters that decide where the answer goes.
    Case("authorize-get-user", "GET", "/authorize", "page", _authorize, AUTHORIZE_TARGETS,
         state="user", optional=AUTHORIZE_OPTIONAL, opaque=AUTHORIZE_OPAQUE,
         extra=AUTHORIZE_EXTRA, writes=frozenset({"authorization_code"})),
    Case("authorize-post-user", "POST", "/authorize", "page", _authorize,
         ("response_type", "redirect_uri", "state"),
         state="user", optional=AUTHORIZE_OPTIONAL, opaque=AUTHORIZE_OPAQUE,
         writes=frozenset({"authorization_code"})),
    Case("authorize-get-anon", "GET", "/authorize", "page", _authorize,
         ("response_type", "client_id", "redirect_uri", "scope", "code_challenge", "max_age",
          "login_hint"),
         optional=AUTHORIZE_OPTIONAL, opaque=AUTHORIZE_OPAQUE),
    Case("authorize-post-anon", "POST", "/authorize", "page", _authorize,
         ("response_type", "client_id", "redirect_uri", "state"),
         optional=AUTHORIZE_OPTIONAL, opaque=AUTHORIZE_OPAQUE),
    Case("authorize-get-pending", "GET", "/authorize", "page", _authorize,
         ("client_id", "redirect_uri", "state"), state="pending",
         optional=AUTHORIZE_OPTIONAL, opaque=AUTHORIZE_OPAQUE),
    Case("authorize-resume", "GET", "/authorize/resume/{uid}", "page",
         lambda w: [("P:uid", w.pending_uid())], ("P:uid",)),
    # --- token endpoint --------------------------------------------------------------------------
    Case("token-client-credentials-basic", "POST", "/token", "api",
         lambda w: [("grant_type", "client_credentials"), ("scope", "org"),
                    *_token_headers(w)],
         ("grant_type", "scope", "H:Authorization"), optional=frozenset({"scope"}),
         opaque=frozenset({"scope"}), writes=frozenset({"token"}), rejects_repeats=True,
         special=lambda w: {"H:Authorization": crafted_basic(w)}),
    Case("token-client-credentials-post", "POST", "/token", "api",
         lambda w: [("grant_type", "client_credentials"), ("client_id", "rp1"),
                    ("client_secret", w.secret)],
         ("grant_type", "client_id", "client_secret"), writes=frozenset({"token"}),
         rejects_repeats=True),
    Case("token-private-key-jwt", "POST", "/token", "api",
         lambda w: [("grant_type", "client_credentials"), ("client_id", w.jwt_client()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion())],
         ("grant_type", "client_id", "client_assertion_type", "client_assertion"),
         optional=frozenset({"client_id"}), writes=frozenset({"token"}), rejects_repeats=True,
         special=lambda w: {"client_assertion": crafted_assertions(w)}),
    Case("token-authorization-code", "POST", "/token", "api",
         lambda w: [("grant_type", "authorization_code"), ("code", w.code()),
                    ("redirect_uri", REDIRECT), *_token_headers(w)],
         ("grant_type", "code", "redirect_uri", "H:Authorization"), state="user",
         writes=frozenset({"token", "authorization_code"}),
         burns=frozenset({"authorization_code"}), rejects_repeats=True,
         special=lambda w: {"H:Authorization": crafted_basic(w)}),
    Case("token-authorization-code-public", "POST", "/token", "api", _public_code_fields,
         ("grant_type", "code", "redirect_uri", "client_id", "code_verifier"), state="user",
         writes=frozenset({"token", "authorization_code"}),
         burns=frozenset({"authorization_code"}), rejects_repeats=True),
    Case("token-refresh", "POST", "/token", "api",
         lambda w: [("grant_type", "refresh_token"),
                    ("refresh_token", w.refresh_token()), ("scope", "openid"),
                    *_token_headers(w)],
         ("grant_type", "refresh_token", "scope", "H:Authorization"), state="user",
         optional=frozenset({"scope"}), writes=frozenset({"token"}), rejects_repeats=True),
    # --- revocation, introspection, userinfo -----------------------------------------------------
    Case("revoke", "POST", "/revoke", "api",
         lambda w: [("token", w.machine_token()), ("token_type_hint", "access_token"),
                    *_token_headers(w)],
         ("token", "token_type_hint", "H:Authorization"),
         optional=frozenset({"token_type_hint"}), writes=frozenset({"token"}),
         special=lambda w: {"H:Authorization": crafted_basic(w)}),
    Case("revoke-public", "POST", "/revoke", "api",
         lambda w: [("token", w.refresh_token()), ("client_id", "rp1"),
                    ("client_secret", w.secret), ("token_type_hint", "refresh_token")],
         ("token", "client_id", "client_secret", "token_type_hint"), state="user",
         optional=frozenset({"token_type_hint"}), writes=frozenset({"token"})),
    Case("introspect", "POST", "/introspect", "api",
         lambda w: [("token", w.tokens()["access_token"]), ("token_type_hint", "access_token"),
                    *_token_headers(w)],
         ("token", "token_type_hint", "H:Authorization"), state="user",
         optional=frozenset({"token_type_hint"}),
         special=lambda w: {"H:Authorization": crafted_basic(w)}),
    Case("userinfo-header", "GET", "/userinfo", "api",
         lambda w: [("H:Authorization", "Bearer " + w.tokens()["access_token"])],
         ("H:Authorization",), state="user",
         special=lambda w: {"H:Authorization": crafted_bearer(w)}),
    Case("userinfo-post", "POST", "/userinfo", "api",
         lambda w: [("access_token", w.tokens()["access_token"])], ("access_token",),
         state="user"),
    Case("userinfo-query", "GET", "/userinfo", "api",
         lambda w: [("access_token", w.tokens()["access_token"])], ("access_token",),
         state="user", base_succeeds=False),
    # --- logout -----------------------------------------------------------------------------------
    Case("logout-get-anon", "GET", "/logout", "page", _logout_fields,
         ("client_id", "post_logout_redirect_uri", "state"),
         optional=ALL_LOGOUT, opaque=frozenset({"state", "logout_hint", "ui_locales"}),
         extra=("id_token_hint",),
         special=lambda w: {"id_token_hint": crafted_id_token_hints(w)}),
    Case("logout-get-user", "GET", "/logout", "page", _logout_fields, LOGOUT_TARGETS,
         state="user", optional=ALL_LOGOUT,
         opaque=frozenset({"state", "logout_hint", "ui_locales"}), extra=("id_token_hint",),
         special=lambda w: {"id_token_hint": crafted_id_token_hints(w)}),
    Case("logout-post-confirm", "POST", "/logout", "page",
         lambda w: [("confirm", "1"), ("csrf_token", w.csrf()), *_logout_fields(w)],
         ("confirm", "csrf_token", "client_id", "post_logout_redirect_uri", "state"),
         optional=ALL_LOGOUT,
         opaque=frozenset({"state", "logout_hint", "ui_locales"}),
         after_success=World.forget_csrf),
    # --- legacy binding (S04 「是」) ---------------------------------------------------------
    Case("register-bind-page", "GET", "/register/bind", "page", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"}), prepare=World.legacy_pending),
    Case("register-bind", "POST", "/register/bind", "page", _bind_fields,
         ("legacy_id", "method", "otp_code", "key", "csrf_token"),
         optional=frozenset({"otp_code"}), opaque=frozenset({"otp_code"}),
         writes=frozenset({"account", "identity", "legacy_account"}),
         prepare=World.legacy_pending, after_success=World.undo_and_log_out),
    Case("register-bind-done", "GET", "/register/bind/done", "page", lambda w: [("x", "1")],
         ("x",), state="enterprise", optional=frozenset({"x"}), opaque=frozenset({"x"}),
         prepare=World.legacy_done),
    # --- enterprise registration (S03–S07, T02) ---------------------------------------------------
    Case("register-choose", "GET", "/register", "page", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"}), prepare=World.ukey_pending),
    Case("register-prompt", "GET", "/register/prompt", "page",
         lambda w: [("kind", "enterprise")], ("kind",), optional=frozenset({"kind"}),
         opaque=frozenset({"kind"}), prepare=World.ukey_pending),
    Case("register-enterprise-page", "GET", "/register/enterprise", "page",
         lambda w: [("x", "1")], ("x",), optional=frozenset({"x"}), opaque=frozenset({"x"}),
         prepare=World.ukey_pending),
    Case("register-enterprise", "POST", "/register/enterprise", "page", _enterprise_fields,
         ENTERPRISE_FIELDS, optional=ENTERPRISE_OPTIONAL,
         writes=frozenset({"organisation", "account", "identity", "application"}),
         prepare=World.ukey_pending, after_success=World.undo_and_log_out),
    Case("register-done", "GET", "/register/done", "page", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"}), prepare=World.registration_done),
    Case("register-status", "GET", "/register/status", "page", lambda w: [("x", "1")], ("x",),
         state="enterprise", optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("register-resubmit-page", "GET", "/register/enterprise/resubmit/{application_id}",
         "page", lambda w: [("P:application_id", str(w.application_id))],
         ("P:application_id",), state="enterprise", prepare=World.enterprise_returned,
         special=lambda w: {"P:application_id": _foreign("registration")(w)}),
    Case("register-resubmit", "POST", "/register/enterprise/resubmit/{application_id}", "page",
         _resubmit_fields, (*OWN_ENTERPRISE_FIELDS, "P:application_id"), state="enterprise",
         optional=OWN_ENTERPRISE_OPTIONAL, opaque=frozenset({"uscc"}),
         # The demo enterprise is active: corrections wait in the application for approval.
         writes=frozenset({"application"}), prepare=World.enterprise_returned,
         after_success=World.undo,
         special=lambda w: {"P:application_id": _foreign("registration")(w)}),
    Case("register-platforms-page", "GET", "/register/platforms", "page",
         lambda w: [("x", "1")], ("x",), state="enterprise", optional=frozenset({"x"}),
         opaque=frozenset({"x"})),
    Case("register-platforms", "POST", "/register/platforms", "page", _platform_fields,
         ENTERPRISE_FIELDS, state="enterprise", optional=OWN_ENTERPRISE_OPTIONAL,
         opaque=frozenset({"uscc"}),
         writes=frozenset({"identity", "application", "organisation"}),
         prepare=World.checkpoint, after_success=World.undo),
    # --- owners' committees: registration (T04, T06, T07) ----------------------------------------
    Case("committee-register-page", "GET", "/register/committee", "page",
         lambda w: [("x", "1")], ("x",), optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("committee-register", "POST", "/register/committee", "page", _committee_fields,
         COMMITTEE_FIELDS, writes=frozenset({"organisation", "application"}),
         prepare=World.committee_ready, after_success=World.undo),
    Case("committee-sms-json", "POST", "/register/committee/sms", "sms",
         lambda w: [("handler1_phone", SMS_PHONE), ("csrf_token", w.csrf())],
         ("handler1_phone", "csrf_token"), accept_json=True),
    # Without the page's script the whole registration form comes here and is shown again:
    # the button's own fields, and two of the echoed text fields (committee-register sends
    # every field through the same page).
    Case("committee-sms-page", "POST", "/register/committee/sms", "page",
         _committee_sms_page_fields, ("handler1_phone", "csrf_token", "name", "area_name")),
    Case("committee-resubmit-registration-page", "GET",
         "/register/committee/{application_id}/resubmit", "page",
         lambda w: [("P:application_id", str(w.application_id))], ("P:application_id",),
         prepare=World.lookup_session,
         special=lambda w: {"P:application_id": _foreign("committee_registration")(w)}),
    Case("committee-resubmit-registration", "POST",
         "/register/committee/{application_id}/resubmit", "page",
         _resubmit_registration_fields, RESUBMIT_REGISTRATION_FIELDS,
         writes=frozenset({"application", "organisation"}), prepare=World.lookup_session,
         after_success=World.undo,
         special=lambda w: {"P:application_id": _foreign("committee_registration")(w)}),
    # --- the committee console: changes (T04) and associations (T08) ------------------------------
    Case("committee-console", "GET", "/committee", "page",
         lambda w: [("org", str(w.committee_id)), ("sent", "1")], ("org", "sent"),
         state="handler", optional=frozenset({"org", "sent"}), opaque=frozenset({"sent"}),
         prepare=World.handler_ready, special=lambda w: {"org": _foreign("committee")(w)}),
    Case("committee-change-page", "GET", "/committee/change", "page", lambda w: [("x", "1")],
         ("x",), state="handler", optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("committee-change", "POST", "/committee/change", "page", _change_fields,
         CHANGE_FIELDS, state="handler", writes=frozenset({"application"}),
         prepare=World.handler_ready, after_success=World.undo),
    Case("committee-association-page", "GET", "/committee/association", "page",
         lambda w: [("x", "1")], ("x",), state="handler", optional=frozenset({"x"}),
         opaque=frozenset({"x"})),
    Case("committee-association", "POST", "/committee/association", "page",
         _association_fields, ASSOCIATION_FIELDS, state="handler",
         writes=frozenset({"application"}), prepare=World.handler_ready,
         after_success=World.undo,
         special=lambda w: {"target": [("target-committee-itself", str(w.committee_id)),
                                       *_foreign("enterprise")(w)]}),
    Case("committee-resubmit-page", "GET", "/committee/applications/{application_id}/resubmit",
         "page", lambda w: [("P:application_id", str(w.application_id))],
         ("P:application_id",), state="handler", prepare=World.change_returned,
         special=lambda w: {"P:application_id": _foreign("change")(w)}),
    Case("committee-resubmit-change", "POST",
         "/committee/applications/{application_id}/resubmit", "page", _own(_change_fields),
         (*CHANGE_FIELDS, "P:application_id"), state="handler",
         writes=frozenset({"application"}), prepare=World.change_returned,
         after_success=World.undo,
         special=lambda w: {"P:application_id": _foreign("change")(w)}),
    Case("committee-resubmit-association", "POST",
         "/committee/applications/{application_id}/resubmit", "page",
         _own(_association_fields), ASSOCIATION_FIELDS, state="handler",
         writes=frozenset({"application"}), prepare=World.association_returned,
         after_success=World.undo),
    # --- 「用户名查询」 (T05) ---------------------------------------------------------------------
    Case("lookup-page", "GET", "/lookup", "page", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("lookup", "POST", "/lookup", "page",
         lambda w: [("phone", PHONE), ("sms_code", w.codes[SMS_LOOKUP, PHONE]),
                    ("csrf_token", w.csrf())],
         ("phone", "sms_code", "csrf_token"), prepare=World.lookup_ready),
    Case("lookup-sms-json", "POST", "/lookup/sms", "sms",
         lambda w: [("phone", SMS_PHONE), ("csrf_token", w.csrf())], ("phone", "csrf_token"),
         accept_json=True),
    Case("lookup-sms-page", "POST", "/lookup/sms", "page",
         lambda w: [("phone", SMS_PHONE), ("sms_code", ""), ("csrf_token", w.csrf())],
         ("phone", "sms_code", "csrf_token")),
    Case("lookup-result", "GET", "/lookup/result", "page", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"}), prepare=World.lookup_session),
    # --- the centre console (T02, T04, T07, T08) -------------------------------------------------
    Case("centre-index", "GET", "/centre", "page",
         lambda w: [("queue", "enterprise"), ("page", "1"), ("done", "approved")],
         ("queue", "page", "done"), state="centre",
         optional=frozenset({"queue", "page", "done"}),
         opaque=frozenset({"queue", "page", "done"}), prepare=World.centre_ready),
    Case("centre-application", "GET", "/centre/applications/{application_id}", "page",
         lambda w: [("P:application_id", str(w.application_id))], ("P:application_id",),
         state="centre", prepare=World.centre_ready,
         special=lambda w: {"P:application_id": _foreign("registration")(w)}),
    Case("centre-approve", "POST", "/centre/applications/{application_id}/approve", "page",
         _centre_application, ("P:application_id", "csrf_token"), state="centre",
         writes=frozenset({"application", "organisation", "account", "identity"}),
         prepare=World.centre_ready, after_success=World.undo,
         special=lambda w: {"P:application_id": _foreign("registration")(w)}),
    Case("centre-return", "POST", "/centre/applications/{application_id}/return", "page",
         lambda w: [*_centre_application(w), ("reason", "营业执照不清晰")],
         ("P:application_id", "csrf_token", "reason"), state="centre", accepts=REASON_TEXT,
         writes=frozenset({"application", "organisation"}), prepare=World.centre_ready,
         after_success=World.undo,
         special=lambda w: {"P:application_id": _foreign("registration")(w)}),
    Case("centre-areas", "GET", "/centre/areas", "page",
         lambda w: [("q", "和谐"), ("district", DISTRICT), ("page", "1"), ("done", "created")],
         ("q", "district", "page", "done"), state="centre",
         optional=frozenset({"q", "district", "page", "done"}),
         opaque=frozenset({"q", "district", "page", "done"}), prepare=World.centre_ready),
    Case("centre-area-create", "POST", "/centre/areas", "page",
         lambda w: [("name", "阳光花苑"), ("district", DISTRICT), ("csrf_token", w.csrf())],
         ("name", "district", "csrf_token"), state="centre",
         writes=frozenset({"property_area"}), prepare=World.centre_ready,
         after_success=World.undo),
    Case("centre-area-rename", "POST", "/centre/areas/{area_id}/rename", "page",
         lambda w: [("P:area_id", str(w.area_id)), ("name", "和谐家园"),
                    ("csrf_token", w.csrf())],
         ("P:area_id", "name", "csrf_token"), state="centre",
         writes=frozenset({"property_area"}), prepare=World.centre_ready,
         after_success=World.undo, special=lambda w: {"P:area_id": _foreign("area")(w)}),
    Case("centre-area-merge", "POST", "/centre/areas/merge", "page",
         lambda w: [("survivor", str(w.area_id)), ("merged", str(w.area2_id)),
                    ("csrf_token", w.csrf())],
         ("survivor", "merged", "csrf_token"), state="centre",
         writes=frozenset({"property_area"}),  # the areas have no links to move here
         prepare=World.centre_ready, after_success=World.undo,
         special=lambda w: {"survivor": _foreign("area")(w),
                            "merged": [*_foreign("area")(w),
                                       ("merged-is-survivor", str(w.area_id))]}),
    # --- the tenant console: 小区管理处信息管理 (T03) ------------------------------------------
    Case("offices-index", "GET", "/console/offices", "page",
         lambda w: [("page", "1"), ("done", "created")], ("page", "done"), state="enterprise",
         optional=frozenset({"page", "done"}), opaque=frozenset({"page", "done"}),
         prepare=World.office_ready),
    # The list's 【删除】【修改】【查看】 without a script: a GET of the list with the chosen row.
    Case("offices-go", "GET", "/console/offices", "page",
         lambda w: [("action", "view"), ("office", str(w.office_id))], ("action", "office"),
         state="enterprise", optional=frozenset({"action"}), prepare=World.office_ready,
         special=lambda w: {"office": _other("office")(w)}),
    Case("offices-new-page", "GET", "/console/offices/new", "page", lambda w: [("x", "1")],
         ("x",), state="enterprise", optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("offices-new", "POST", "/console/offices/new", "page", _office_fields, OFFICE_FIELDS,
         state="enterprise", optional=OFFICE_OPTIONAL, accepts=OFFICE_TEXT,
         writes=frozenset({"organisation"}), prepare=World.office_ready,
         after_success=World.undo),
    Case("offices-view", "GET", "/console/offices/{office_id}", "page",
         lambda w: [*_office_id(w), ("done", "updated")], ("P:office_id", "done"),
         state="enterprise", optional=frozenset({"done"}), opaque=frozenset({"done"}),
         prepare=World.office_ready, special=lambda w: {"P:office_id": _other("office")(w)}),
    Case("offices-edit-page", "GET", "/console/offices/{office_id}/edit", "page", _office_id,
         ("P:office_id",), state="enterprise", prepare=World.office_ready,
         special=lambda w: {"P:office_id": _other("office")(w)}),
    Case("offices-edit", "POST", "/console/offices/{office_id}/edit", "page",
         lambda w: [*_office_fields(w), *_office_id(w)], (*OFFICE_FIELDS, "P:office_id"),
         state="enterprise", optional=OFFICE_OPTIONAL, accepts=OFFICE_TEXT,
         writes=frozenset({"organisation"}), prepare=World.office_ready,
         after_success=World.undo, special=lambda w: {"P:office_id": _other("office")(w)}),
    Case("offices-delete-page", "GET", "/console/offices/{office_id}/delete", "page",
         _office_id, ("P:office_id",), state="enterprise", prepare=World.office_ready,
         special=lambda w: {"P:office_id": _other("office")(w)}),
    # The office has no operators: 操作员处理方式 may be left out.
    Case("offices-delete", "POST", "/console/offices/{office_id}/delete", "page",
         lambda w: [*_office_id(w), ("operators", "move"), ("csrf_token", w.csrf())],
         ("P:office_id", "operators", "csrf_token"), state="enterprise",
         optional=frozenset({"operators"}), writes=frozenset({"organisation"}),
         prepare=World.office_ready, after_success=World.undo,
         special=lambda w: {"P:office_id": _other("office")(w)}),
    # --- the tenant console: 操作员管理 (S11–S15) -------------------------------------------------
    # The list's filters; a GET writes nothing, so an unusable filter is only named beside it.
    Case("operators-index", "GET", "/console/operators", "page", _operator_filters,
         tuple(k for k, _ in OPERATOR_FILTERS), state="enterprise",
         optional=frozenset(k for k, _ in OPERATOR_FILTERS),
         opaque=frozenset({"page", "done"}), prepare=World.operator_ready),
    # The list's 增加/查询/修改/删除 without a script: the chosen row's page.
    Case("operators-go", "GET", "/console/operators/go", "page",
         lambda w: [("action", "edit"), ("operator", str(w.operator_id))],
         ("action", "operator"), state="enterprise", optional=frozenset({"action"}),
         prepare=World.operator_ready,
         special=lambda w: {"operator": _other("operator")(w)}),
    Case("operators-new-page", "GET", "/console/operators/new", "page", lambda w: [("x", "1")],
         ("x",), state="enterprise", optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("operators-new", "POST", "/console/operators/new", "page", _operator_fields,
         OPERATOR_FIELDS, state="enterprise", optional=OPERATOR_OPTIONAL,
         accepts=OPERATOR_REMARK_TEXT, writes=frozenset({"operator", "account", "identity"}),
         prepare=World.operator_ready, after_success=World.undo,
         special=lambda w: {"department_id": [*_other("office")(w),
                                              ("department-own-operator", str(w.operator_id))]}),
    Case("operators-view", "GET", "/console/operators/{operator_id}", "page",
         lambda w: [*_operator_id(w), ("done", "created")], ("P:operator_id", "done"),
         state="enterprise", optional=frozenset({"done"}), opaque=frozenset({"done"}),
         prepare=World.operator_ready,
         special=lambda w: {"P:operator_id": _other("operator")(w)}),
    Case("operators-edit-page", "GET", "/console/operators/{operator_id}/edit", "page",
         _operator_id, ("P:operator_id",), state="enterprise", prepare=World.operator_ready,
         special=lambda w: {"P:operator_id": _other("operator")(w)}),
    # 修改 (S15): 停用 with the phone as it is (a new number would need another carrier match).
    Case("operators-edit", "POST", "/console/operators/{operator_id}/edit", "page",
         lambda w: [*_operator_id(w), ("phone", OPERATOR_PHONE), ("status", "disabled"),
                    ("csrf_token", w.csrf())],
         ("P:operator_id", "phone", "status", "csrf_token"), state="enterprise",
         writes=frozenset({"operator", "identity"}), prepare=World.operator_ready,
         after_success=World.undo,
         special=lambda w: {"P:operator_id": _other("operator")(w)}),
    Case("operators-delete-page", "GET", "/console/operators/{operator_id}/delete", "page",
         _operator_id, ("P:operator_id",), state="enterprise", prepare=World.operator_ready,
         special=lambda w: {"P:operator_id": _other("operator")(w)}),
    Case("operators-delete", "POST", "/console/operators/{operator_id}/delete", "page",
         lambda w: [*_operator_id(w), ("csrf_token", w.csrf())],
         ("P:operator_id", "csrf_token"), state="enterprise",
         writes=frozenset({"operator", "identity", "account"}), prepare=World.operator_ready,
         after_success=World.undo,
         special=lambda w: {"P:operator_id": _other("operator")(w)}),
    # --- 实名认证申请 (public) and 用户审核 (the enterprise admin) (S16) -------------------------
    Case("staff-apply-page", "GET", "/staff/apply", "page", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("staff-apply", "POST", "/staff/apply", "page", _staff_fields, STAFF_FIELDS,
         optional=frozenset({"office"}), writes=frozenset({"staff_application"}),
         prepare=World.staff_ready, after_success=World.undo),
    Case("staff-sms-json", "POST", "/staff/apply/sms", "sms",
         lambda w: [("phone", SMS_PHONE), ("csrf_token", w.csrf())], ("phone", "csrf_token"),
         accept_json=True),
    Case("staff-sms-page", "POST", "/staff/apply/sms", "page", _staff_sms_page_fields,
         ("phone", "csrf_token", "name", "id_number")),
    Case("applications-index", "GET", "/console/applications", "page",
         lambda w: [("status", "pending"), ("page", "1"), ("done", "approved")],
         ("status", "page", "done"), state="enterprise",
         optional=frozenset({"status", "page", "done"}),
         opaque=frozenset({"status", "page", "done"}), prepare=World.applications_ready),
    Case("applications-detail", "GET", "/console/applications/{application_id}", "page",
         lambda w: [("P:application_id", str(w.staff_application_id))],
         ("P:application_id",), state="enterprise", prepare=World.applications_ready,
         special=lambda w: {"P:application_id": _other("staff_application")(w)}),
    Case("applications-approve", "POST", "/console/applications/{application_id}/approve",
         "page", _staff_application, ("P:application_id", "csrf_token"), state="enterprise",
         writes=frozenset({"staff_application", "operator", "account", "identity"}),
         prepare=World.applications_ready, after_success=World.undo,
         special=lambda w: {"P:application_id": _other("staff_application")(w)}),
    Case("applications-reject", "POST", "/console/applications/{application_id}/reject",
         "page", lambda w: [*_staff_application(w), ("reason", "证件号码与姓名不符")],
         ("P:application_id", "csrf_token", "reason"), state="enterprise",
         accepts=STAFF_REASON_TEXT, writes=frozenset({"staff_application"}),
         prepare=World.applications_ready, after_success=World.undo,
         special=lambda w: {"P:application_id": _other("staff_application")(w)}),
    # --- the platform admin console (D05, D01): 动态口令, clients, keys, audit, organisations -----
    Case("admin-verify-page", "GET", "/admin/verify", "page",
         lambda w: [("next", "/admin/keys")], ("next",), state="admin",
         optional=frozenset({"next"}), opaque=frozenset({"next"})),
    # ``next`` is any text: only a page of the console is ever followed, else the client list.
    Case("admin-verify", "POST", "/admin/verify", "page",
         lambda w: [("code", w.totp()), ("next", "/admin/keys?x=1"), ("csrf_token", w.csrf())],
         ("code", "next", "csrf_token"), state="admin", optional=frozenset({"next"}),
         opaque=frozenset({"next"}), writes=frozenset({"account"}),
         prepare=World.admin_verify_ready, after_success=World.undo,
         special=lambda w: {"code": [("totp-fullwidth", w.totp().translate(FULLWIDTH)),
                                     ("totp-seven-digits", w.totp() + "0"),
                                     ("totp-spaced", " ".join(w.totp()))]}),
    Case("admin-index", "GET", "/admin", "page", lambda w: [("x", "1")], ("x",), state="admin",
         optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("admin-clients", "GET", "/admin/clients", "page", lambda w: [("x", "1")], ("x",),
         state="admin", optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("admin-client-new-page", "GET", "/admin/clients/new", "page", lambda w: [("x", "1")],
         ("x",), state="admin", optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("admin-client-new", "POST", "/admin/clients/new", "page", _client_fields,
         CLIENT_FIELDS, state="admin", optional=CLIENT_OPTIONAL,
         writes=frozenset({"client"}), prepare=World.checkpoint, after_success=World.undo),
    # A provisioning client bound to an enterprise (the admin API's and SCIM's callers).
    Case("admin-client-new-provisioning", "POST", "/admin/clients/new", "page",
         lambda w: [("name", "企业人事系统"), ("client_id", "hr-feed"), ("platform", ""),
                    ("auth_method", "client_secret_basic"),
                    ("grant_types", "client_credentials"), ("redirect_uris", ""),
                    ("tenant", DEMO_USCC), ("csrf_token", w.csrf())],
         ("tenant", "grant_types", "redirect_uris"), state="admin",
         optional=frozenset({"redirect_uris", "tenant"}), writes=frozenset({"client"}),
         prepare=World.checkpoint, after_success=World.undo),
    Case("admin-client-edit-page", "GET", "/admin/clients/{client_id}/edit", "page",
         lambda w: [("P:client_id", "rp1"), ("done", "updated")], ("P:client_id", "done"),
         state="admin", optional=frozenset({"done"}), opaque=frozenset({"done"})),
    Case("admin-client-edit", "POST", "/admin/clients/{client_id}/edit", "page",
         _client_edit_fields, (*EDIT_CLIENT_FIELDS, "P:client_id"), state="admin",
         optional=CLIENT_OPTIONAL, writes=frozenset({"client"}), prepare=World.checkpoint,
         after_success=World.undo),
    Case("admin-client-rotate-secret", "POST", "/admin/clients/{client_id}/rotate-secret",
         "page", _client_action, ("P:client_id", "csrf_token"), state="admin",
         writes=frozenset({"client"}), prepare=World.checkpoint, after_success=World.undo),
    Case("admin-client-disable", "POST", "/admin/clients/{client_id}/disable", "page",
         _client_action, ("P:client_id", "csrf_token"), state="admin",
         writes=frozenset({"client", "token"}), prepare=World.checkpoint,
         after_success=World.undo),
    Case("admin-client-enable", "POST", "/admin/clients/{client_id}/enable", "page",
         _client_action, ("P:client_id", "csrf_token"), state="admin",
         writes=frozenset({"client"}), prepare=World.checkpoint, after_success=World.undo),
    Case("admin-keys", "GET", "/admin/keys", "page", lambda w: [("done", "rotated")],
         ("done",), state="admin", optional=frozenset({"done"}), opaque=frozenset({"done"})),
    Case("admin-keys-rotate", "POST", "/admin/keys/rotate", "page",
         lambda w: [("alg", "ES256"), ("csrf_token", w.csrf())], ("alg", "csrf_token"),
         state="admin", optional=frozenset({"alg"}), writes=frozenset({"signing_key"}),
         prepare=World.checkpoint, after_success=World.undo),
    Case("admin-audit", "GET", "/admin/audit", "page",
         lambda w: [*AUDIT_FILTERS, ("before", ""), ("after", "")],
         (*dict(AUDIT_FILTERS), "before", "after"), state="admin",
         optional=frozenset({*dict(AUDIT_FILTERS), "before", "after"})),
    # The same filters as a CSV download (what answers 200 is not a page).
    Case("admin-audit-csv", "GET", "/admin/audit.csv", "static", lambda w: AUDIT_FILTERS,
         tuple(dict(AUDIT_FILTERS)), state="admin",
         optional=frozenset(dict(AUDIT_FILTERS))),
    Case("admin-orgs", "GET", "/admin/orgs", "page", lambda w: ORG_FILTERS,
         tuple(dict(ORG_FILTERS)), state="admin", optional=frozenset(dict(ORG_FILTERS)),
         opaque=frozenset({"page"})),
    # --- the admin API (D09; S11–S15, T03): bearer tokens, JSON ---------------------------------
    Case("api-openapi", "GET", "/api/openapi.json", "api", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("api-operators-list", "GET", "/api/v1/operators", "api",
         lambda w: [*_operator_filters(w)[:-1], ("size", "10"), *_bearer(w)],
         (*(k for k, _ in OPERATOR_FILTERS[:-1]), "size", "H:Authorization"),
         optional=frozenset({*(k for k, _ in OPERATOR_FILTERS), "size"}),
         prepare=World.api_ready, special=lambda w: {"H:Authorization": crafted_api_bearer(w)}),
    Case("api-operators-create", "POST", "/api/v1/operators", "api",
         lambda w: [*OPERATOR_FORM[:1], ("department_id", str(w.demo_id)), *OPERATOR_FORM[1:],
                    *_bearer(w)],
         (*API_OPERATOR_FIELDS, "H:Authorization"), optional=OPERATOR_OPTIONAL,
         accepts=OPERATOR_REMARK_TEXT, writes=frozenset({"operator", "account", "identity"}),
         prepare=World.api_ready, after_success=World.undo,
         json=json_fields(frozenset({"department_id"})),
         special=lambda w: {"department_id": [*_other("office")(w),
                                              ("department-own-operator", str(w.operator_id))],
                            "H:Authorization": crafted_api_bearer(w)}),
    Case("api-operators-get", "GET", "/api/v1/operators/{operator_id}", "api",
         _api_operator_id, ("P:operator_id", "H:Authorization"), prepare=World.api_ready,
         special=_api_other("operator")),
    Case("api-operators-patch", "PATCH", "/api/v1/operators/{operator_id}", "api",
         lambda w: [("phone", OPERATOR_PHONE), ("status", "disabled"), *_api_operator_id(w)],
         ("phone", "status", "P:operator_id", "H:Authorization"),
         optional=frozenset({"phone"}), writes=frozenset({"operator", "identity"}),
         prepare=World.api_ready, after_success=World.undo, json=json_fields(),
         special=_api_other("operator")),
    Case("api-operators-delete", "DELETE", "/api/v1/operators/{operator_id}", "api",
         _api_operator_id, ("P:operator_id", "H:Authorization"),
         writes=frozenset({"operator", "identity", "account"}), prepare=World.api_ready,
         after_success=World.undo, special=_api_other("operator")),
    Case("api-offices-list", "GET", "/api/v1/offices", "api",
         lambda w: [("x", "1"), *_bearer(w)], ("x", "H:Authorization"),
         optional=frozenset({"x"}), opaque=frozenset({"x"}), prepare=World.api_ready,
         special=lambda w: {"H:Authorization": crafted_api_bearer(w)}),
    Case("api-offices-create", "POST", "/api/v1/offices", "api",
         lambda w: [*OFFICE_FORM, *_bearer(w)], (*dict(OFFICE_FORM), "H:Authorization"),
         optional=OFFICE_OPTIONAL, accepts=OFFICE_TEXT, writes=frozenset({"organisation"}),
         prepare=World.api_ready, after_success=World.undo, json=json_fields(),
         special=lambda w: {"H:Authorization": crafted_api_bearer_for_create(w)}),
    Case("api-offices-get", "GET", "/api/v1/offices/{office_id}", "api", _api_office_id,
         ("P:office_id", "H:Authorization"), prepare=World.api_ready,
         special=_api_other("office")),
    # PATCH: the fields sent replace the office's; each may be left out (not all of them).
    Case("api-offices-patch", "PATCH", "/api/v1/offices/{office_id}", "api",
         lambda w: [*OFFICE_FORM, *_api_office_id(w)],
         (*dict(OFFICE_FORM), "P:office_id", "H:Authorization"),
         optional=OFFICE_OPTIONAL | {"name"}, accepts=OFFICE_TEXT,
         writes=frozenset({"organisation"}), prepare=World.api_ready,
         after_success=World.undo, json=json_fields(), special=_api_other("office")),
    Case("api-offices-delete", "DELETE", "/api/v1/offices/{office_id}", "api",
         lambda w: [("operators", "move"), *_api_office_id(w)],
         ("operators", "P:office_id", "H:Authorization"), optional=frozenset({"operators"}),
         writes=frozenset({"organisation"}), prepare=World.api_ready,
         after_success=World.undo, special=_api_other("office")),
    # --- SCIM 2.0 (RFC 7643/7644): Users are the enterprise's operators ---------------------------
    Case("scim-users-list", "GET", "/scim/v2/Users", "scim",
         lambda w: [("filter", f'userName eq "{OPERATOR_PHONE}"'), *SCIM_LIST, *_bearer(w)],
         ("filter", *dict(SCIM_LIST), "H:Authorization"),
         optional=frozenset({"filter", *dict(SCIM_LIST)}), prepare=World.api_ready,
         special=lambda w: {"H:Authorization": crafted_api_bearer(w)}),
    Case("scim-users-create", "POST", "/scim/v2/Users", "scim", _scim_user_fields,
         (*dict(SCIM_USER_FORM), "ext.departmentId", "H:Authorization"),
         optional=SCIM_USER_OPTIONAL,
         accepts=SCIM_USER_ACCEPTS, writes=frozenset({"operator", "account", "identity"}),
         prepare=World.api_ready, after_success=World.undo, json=scim_user,
         content_type=SCIM_MEDIA_TYPE,
         special=lambda w: {"ext.departmentId": [*_other("office")(w)],
                            "H:Authorization": crafted_api_bearer(w)}),
    Case("scim-users-get", "GET", "/scim/v2/Users/{user_id}", "scim",
         lambda w: [*_scim_user_id(w), ("attributes", "")], ("P:user_id", "H:Authorization"),
         prepare=World.api_ready, special=_scim_other),
    # PUT replaces what may change (userName, active); the immutable rest must be as kept.
    Case("scim-users-put", "PUT", "/scim/v2/Users/{user_id}", "scim",
         lambda w: [("schemas", SCIM_USER), ("userName", OPERATOR_PHONE),
                    ("name.formatted", OPERATOR_NAME), ("active", JSON_RAW + "false"),
                    ("ext.departmentId", str(w.demo_id)), *_scim_user_id(w)],
         ("schemas", "userName", "name.formatted", "active", "ext.departmentId", "P:user_id",
          "H:Authorization"),
         optional=frozenset({"name.formatted", "active", "ext.departmentId"}),
         writes=frozenset({"operator", "identity"}), prepare=World.api_ready,
         after_success=World.undo, json=scim_user, content_type=SCIM_MEDIA_TYPE,
         special=_scim_other),
    Case("scim-users-patch", "PATCH", "/scim/v2/Users/{user_id}", "scim",
         lambda w: [("schemas", SCIM_PATCH), ("op", "replace"), ("path", "active"),
                    ("value", JSON_RAW + "false"), *_scim_user_id(w)],
         ("schemas", "op", "path", "value", "P:user_id", "H:Authorization"),
         writes=frozenset({"operator", "identity"}), prepare=World.api_ready,
         after_success=World.undo, json=scim_patch, content_type=SCIM_MEDIA_TYPE,
         special=_scim_other),
    # The phone as it is: 200 and nothing changes; another value meets S12–S14.
    Case("scim-users-patch-phone", "PATCH", "/scim/v2/Users/{user_id}", "scim",
         lambda w: [("schemas", SCIM_PATCH), ("op", "replace"), ("path", "userName"),
                    ("value", OPERATOR_PHONE), *_scim_user_id(w)],
         ("path", "value"), prepare=World.api_ready, json=scim_patch,
         content_type=SCIM_MEDIA_TYPE,
         special=lambda w: {"value": [("phone-of-the-other-operator", "13900000016"),
                                      ("phone-of-an-applicant", APPLICANT_PHONE)]}),
    Case("scim-users-delete", "DELETE", "/scim/v2/Users/{user_id}", "scim", _scim_user_id,
         ("P:user_id", "H:Authorization"),
         writes=frozenset({"operator", "identity", "account"}), prepare=World.api_ready,
         after_success=World.undo, special=_scim_other),
    Case("scim-groups-list", "GET", "/scim/v2/Groups", "scim",
         lambda w: [("filter", f'displayName eq "{OFFICE_NAME}"'), *SCIM_LIST[:2],
                    ("attributes", "displayName,members"), *_bearer(w)],
         ("filter", "startIndex", "count", "attributes", "H:Authorization"),
         optional=frozenset({"filter", "startIndex", "count", "attributes"}),
         prepare=World.api_ready, special=lambda w: {"H:Authorization": crafted_api_bearer(w)}),
    Case("scim-groups-get", "GET", "/scim/v2/Groups/{group_id}", "scim",
         lambda w: [("P:group_id", str(w.office_id)), *_bearer(w)],
         ("P:group_id", "H:Authorization"), prepare=World.api_ready,
         special=lambda w: {"P:group_id": _other("office")(w),
                            "H:Authorization": crafted_api_bearer(w)}),
    # Groups are read-only (departments are managed in the console): 405 by design.
    *(Case(f"scim-groups-{method.lower()}{'-one' if one else ''}", method,
           "/scim/v2/Groups" + ("/{group_id}" if one else ""), "scim",
           lambda w, one=one: [*([("P:group_id", str(w.office_id))] if one else []),
                               ("displayName", "新管理处"), *_bearer(w)],
           ("displayName", "H:Authorization"), prepare=World.api_ready, base_succeeds=False,
           json=None if method == "DELETE" else json_fields(), content_type=SCIM_MEDIA_TYPE)
      for method in ("POST", "PUT", "PATCH", "DELETE") for one in (False, True)),
    Case("scim-service-provider-config", "GET", "/scim/v2/ServiceProviderConfig", "scim",
         lambda w: [("x", "1")], ("x",), optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("scim-resource-types", "GET", "/scim/v2/ResourceTypes", "scim",
         lambda w: [("x", "1")], ("x",), optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("scim-resource-type", "GET", "/scim/v2/ResourceTypes/{name}", "scim",
         lambda w: [("P:name", "User")], ("P:name",)),
    Case("scim-schemas", "GET", "/scim/v2/Schemas", "scim", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("scim-schema", "GET", "/scim/v2/Schemas/{urn}", "scim",
         lambda w: [("P:urn", SCIM_USER)], ("P:urn",)),
    # --- public documents and files ---------------------------------------------------------------
    Case("discovery", "GET", "/.well-known/openid-configuration", "api",
         lambda w: [("x", "1")], ("x",), optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("discovery-rfc8414", "GET", "/.well-known/oauth-authorization-server", "api",
         lambda w: [("x", "1")], ("x",), optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("jwks", "GET", "/jwks.json", "api", lambda w: [("x", "1")], ("x",),
         optional=frozenset({"x"}), opaque=frozenset({"x"})),
    Case("static-file", "GET", "/static/{filename}", "static",
         lambda w: [("P:filename", "idp.css")], ("P:filename",)),
    Case("static-query", "GET", "/static/idp.css", "static", lambda w: [("v", "1")], ("v",),
         optional=frozenset({"v"}), opaque=frozenset({"v"})),
]
CASE_BY_ID = {c.id: c for c in CASES}
assert len(CASE_BY_ID) == len(CASES)

# Every route of the app, with the methods it allows: checked against the URL map below.
ROUTES: dict[str, set[str]] = {
    "/": {"GET"}, "/login": {"GET", "POST"}, "/login/sms": {"POST"},
    "/login/ukey": {"POST"}, "/login/ukey/challenge": {"POST"}, "/login/ukey/signed": {"POST"},
    "/password/change": {"GET", "POST"}, "/authorize": {"GET", "POST"},
    "/authorize/resume/<uid>": {"GET"}, "/token": {"POST"}, "/revoke": {"POST"},
    "/introspect": {"POST"}, "/userinfo": {"GET", "POST"}, "/logout": {"GET", "POST"},
    "/.well-known/openid-configuration": {"GET"},
    "/.well-known/oauth-authorization-server": {"GET"}, "/jwks.json": {"GET"},
    "/static/<path:filename>": {"GET"},
    "/select-identity": {"GET", "POST"}, "/portal/enter": {"POST"},
    "/register/bind": {"GET", "POST"}, "/register/bind/done": {"GET"},
    "/register": {"GET"}, "/register/prompt": {"GET"}, "/register/enterprise": {"GET", "POST"},
    "/register/done": {"GET"}, "/register/status": {"GET"},
    "/register/enterprise/resubmit/<id:application_id>": {"GET", "POST"},
    "/register/platforms": {"GET", "POST"},
    "/register/committee": {"GET", "POST"}, "/register/committee/sms": {"POST"},
    "/register/committee/<id:application_id>/resubmit": {"GET", "POST"},
    "/committee": {"GET"}, "/committee/change": {"GET", "POST"},
    "/committee/association": {"GET", "POST"},
    "/committee/applications/<id:application_id>/resubmit": {"GET", "POST"},
    "/lookup": {"GET", "POST"}, "/lookup/sms": {"POST"}, "/lookup/result": {"GET"},
    "/centre": {"GET"}, "/centre/applications/<id:application_id>": {"GET"},
    "/centre/applications/<id:application_id>/approve": {"POST"},
    "/centre/applications/<id:application_id>/return": {"POST"},
    "/centre/areas": {"GET", "POST"}, "/centre/areas/<id:area_id>/rename": {"POST"},
    "/centre/areas/merge": {"POST"},
    "/console/offices": {"GET"}, "/console/offices/new": {"GET", "POST"},
    "/console/offices/<id:office_id>": {"GET"},
    "/console/offices/<id:office_id>/edit": {"GET", "POST"},
    "/console/offices/<id:office_id>/delete": {"GET", "POST"},
    "/console/operators": {"GET"}, "/console/operators/go": {"GET"},
    "/console/operators/new": {"GET", "POST"}, "/console/operators/<id:operator_id>": {"GET"},
    "/console/operators/<id:operator_id>/edit": {"GET", "POST"},
    "/console/operators/<id:operator_id>/delete": {"GET", "POST"},
    "/staff/apply": {"GET", "POST"}, "/staff/apply/sms": {"POST"},
    "/admin/verify": {"GET", "POST"}, "/admin": {"GET"}, "/admin/clients": {"GET"},
    "/admin/clients/new": {"GET", "POST"}, "/admin/clients/<client_id>/edit": {"GET", "POST"},
    "/admin/clients/<client_id>/rotate-secret": {"POST"},
    "/admin/clients/<client_id>/disable": {"POST"},
    "/admin/clients/<client_id>/enable": {"POST"}, "/admin/keys": {"GET"},
    "/admin/keys/rotate": {"POST"}, "/admin/audit": {"GET"}, "/admin/audit.csv": {"GET"},
    "/admin/orgs": {"GET"},
    "/api/openapi.json": {"GET"}, "/api/v1/operators": {"GET", "POST"},
    "/api/v1/operators/<operator_id>": {"GET", "PATCH", "DELETE"},
    "/api/v1/offices": {"GET", "POST"}, "/api/v1/offices/<office_id>": {"GET", "PATCH", "DELETE"},
    "/scim/v2/Users": {"GET", "POST"},
    "/scim/v2/Users/<user_id>": {"GET", "PUT", "PATCH", "DELETE"},
    "/scim/v2/Groups": {"GET", "POST", "PUT", "PATCH", "DELETE"},
    "/scim/v2/Groups/<group_id>": {"GET", "POST", "PUT", "PATCH", "DELETE"},
    "/scim/v2/ServiceProviderConfig": {"GET"}, "/scim/v2/ResourceTypes": {"GET"},
    "/scim/v2/ResourceTypes/<name>": {"GET"}, "/scim/v2/Schemas": {"GET"},
    "/scim/v2/Schemas/<urn>": {"GET"},
    "/console/applications": {"GET"}, "/console/applications/<id:application_id>": {"GET"},
    "/console/applications/<id:application_id>/approve": {"POST"},
    "/console/applications/<id:application_id>/reject": {"POST"},
}
CONCRETE = {"/authorize/resume/<uid>": "/authorize/resume/AAAAAAAAAAAAAAAA",
            "/static/<path:filename>": "/static/idp.css",
            **{rule: re.sub(r"<(?:int|id):\w+>", "1", rule) for rule in ROUTES
               if re.search(r"<(?:int|id):", rule)}}
API_PATHS = ("/token", "/revoke", "/introspect", "/userinfo", "/jwks.json", "/.well-known/",
             "/api/", "/scim/")


def kind_of_path(path: str) -> str:
    """What an answer of this path must be when nothing else is known: SCIM's JSON, another
    API's JSON, or a page."""
    if path.startswith("/scim/"):
        return "scim"
    return "api" if path.startswith(API_PATHS) else "page"


# --- checking one answer ------------------------------------------------------------------------

TableState = tuple[dict[str, int], dict[str, list[str]]]


class Snapshots:
    """Reads the tables around every request through one driver connection per test (made
    by the autouse fixture below): on PostgreSQL one query for all tables, row contents
    compared by digest; on SQLite plain SELECTs (cheap in-process)."""

    current: Snapshots | None = None

    def __init__(self) -> None:
        self.conn = db.engine.raw_connection()
        self.tables = [t.name for t in db.metadata.sorted_tables]
        self.pg = db.engine.dialect.name == "postgresql"
        parts = []
        for name in self.tables:
            digest = "''" if name in EXEMPT else (
                f"(SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') "
                f'FROM "{name}" x)')
            parts.append(f"""SELECT '{name}', (SELECT count(*) FROM "{name}"), {digest}""")
        self.pg_sql = " UNION ALL ".join(parts)

    def take(self) -> TableState:
        counts: dict[str, int] = {}
        rows: dict[str, list[str]] = {}
        cursor = self.conn.cursor()
        try:
            if self.pg:
                cursor.execute(self.pg_sql)
                for name, count, digest in cursor.fetchall():
                    counts[name] = int(count)
                    if name not in EXEMPT:
                        rows[name] = [digest]
            else:
                for name in self.tables:
                    if name in EXEMPT:
                        cursor.execute(f'SELECT count(*) FROM "{name}"')
                        counts[name] = int(cursor.fetchone()[0])
                    else:
                        cursor.execute(f'SELECT * FROM "{name}"')
                        rows[name] = sorted(repr(tuple(row)) for row in cursor.fetchall())
                        counts[name] = len(rows[name])
        finally:
            cursor.close()
            self.conn.rollback()
        return counts, rows


@pytest.fixture(autouse=True)
def _snapshots(app: Flask) -> Any:
    Snapshots.current = Snapshots()
    yield
    Snapshots.current.conn.close()
    Snapshots.current = None


def snapshot() -> TableState:
    """Rows per table (what ``table_counts()`` measures) and the contents of every table but
    the two exempt ones."""
    assert Snapshots.current is not None
    return Snapshots.current.take()


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def is_redirect(response: TestResponse) -> bool:
    return response.status_code in (301, 302, 303, 307, 308)


def succeeded(response: TestResponse, kind: str) -> bool:
    if response.status_code >= 400:
        return False
    if kind in ("api", "scim") and response.status_code == 204:
        return True
    if kind == "scim":
        return isinstance(response.get_json(force=True, silent=True), dict)
    if kind in ("api", "sms"):
        body = response.get_json(silent=True)
        return isinstance(body, dict) and "error" not in body and body.get("ok", True) is True
    if is_redirect(response):
        return "error" not in query_of(response.location)
    return True


def location_problem(response: TestResponse, sent: Pairs) -> str | None:
    location = response.headers.get("Location", "")
    if any(c in location for c in "\r\n\x00"):
        return "control characters in Location"
    if location.startswith("//") or location.startswith("/\\"):
        return f"protocol-relative redirect {location[:80]!r}"
    if location.startswith("/") or location.startswith(ISSUER + "/"):
        return None
    for allowed in (REDIRECT, POST_LOGOUT, PORTAL_LOGIN):
        if location == allowed or location.startswith(allowed + "?"):
            params = query_of(location)
            if allowed in (REDIRECT, PORTAL_LOGIN) and params.get("iss") != [ISSUER]:
                return f"authorization response without iss: {location[:120]!r}"
            states = [v for k, v in sent if k == "state"]
            if len(states) == 1 and states[0] and params.get("state") != states:
                return f"state not echoed exactly: {params.get('state')!r}"
            return None
    return f"redirect to an unvalidated URI {location[:120]!r}"


def answer_problems(response: TestResponse, kind: str, sent: Pairs, hostile: list[str],
                    path: str = "") -> list[str]:
    """Everything an answer to bad input must be, whatever the endpoint."""
    problems: list[str] = []
    status = response.status_code
    body = response.get_data()
    text = body.decode("utf-8", "replace")
    lowered = text.lower()
    if status >= 500:
        problems.append(f"status {status}")
    problems += [f"body leaks {leak!r}" for leak in LEAKS if leak in lowered]
    if "Content-Security-Policy" not in response.headers:
        problems.append("no security headers")
    if kind == "sms" and response.mimetype != "application/json":
        kind = "page"  # e.g. the CSRF error: the error page, as for any page
    if kind in ("api", "scim") and status == 204:
        if body:
            problems.append("204 with a body")
    elif kind == "api":
        payload = response.get_json(silent=True)
        if response.mimetype != "application/json" or not isinstance(payload, dict):
            problems.append(f"{status}: not a JSON object ({response.mimetype})")
        elif status >= 400 and not isinstance(payload.get("error"), str):
            problems.append(f"{status}: JSON without 'error': {text[:120]}")
    elif kind == "scim":  # RFC 7644 §3.12: errors are SCIM messages
        payload = response.get_json(force=True, silent=True)
        if response.mimetype != SCIM_MEDIA_TYPE or not isinstance(payload, dict):
            problems.append(f"{status}: not a SCIM JSON object ({response.mimetype})")
        elif status >= 400 and (SCIM_ERROR not in (payload.get("schemas") or [])
                                or payload.get("status") != str(status)
                                or not isinstance(payload.get("detail"), str)):
            problems.append(f"{status}: not a SCIM error: {text[:120]}")
    elif kind == "sms":
        payload = response.get_json(silent=True)
        if not isinstance(payload, dict) or not {"ok", "message", "wait"} <= set(payload):
            problems.append(f"{status}: SMS answer not {{ok, message, wait}}: {text[:120]}")
        elif status >= 400 and (payload["ok"] or not payload["message"]):
            problems.append(f"{status}: SMS failure without a message: {text[:120]}")
    elif is_redirect(response):
        problem = location_problem(response, sent)
        if problem:
            problems.append(problem)
    elif kind == "static" and status < 400:
        pass
    else:
        if response.mimetype != "text/html":
            problems.append(f"{status}: page is {response.mimetype}, not HTML")
        if status >= 400 and not VISIBLE_ERROR.search(text):
            problems.append(f"{status}: no visible error message")
    if response.mimetype == "text/html":
        for marker in XSS_MARKERS:
            if marker in text:
                problems.append(f"hostile HTML reflected raw ({marker!r})")
        for value in hostile:
            if any(c in value for c in "<>\"'") and value in text:
                problems.append(f"value reflected unescaped: {value[:40]!r}")
    if path == "/token" and status == 200:
        granted = set(str((response.get_json(silent=True) or {}).get("scope", "")).split())
        if not granted <= ALLOWED_SCOPES:
            problems.append(f"token granted scopes the client may not have: {sorted(granted)[:3]}")
    if path.startswith(API_PATHS) and kind not in ("api", "scim"):
        problems.append("API path answered as a page")
    return problems


def write_problems(before: TableState, after: TableState,
                   success_may_write: frozenset[str], burns: frozenset[str]) -> list[str]:
    counts0, rows0 = before
    counts1, rows1 = after
    problems = []
    assert set(counts0) >= NAMED_TABLES | EXEMPT
    for table in counts0:
        if table in EXEMPT:
            continue
        if counts0[table] != counts1[table] and table not in success_may_write:
            problems.append(f"partial write: {table} rows {counts0[table]} -> {counts1[table]}")
        elif rows0[table] != rows1[table] and table not in success_may_write | burns:
            problems.append(f"partial write: {table} rows changed")
    return problems


# --- running a list of variants ------------------------------------------------------------------

@dataclass
class Variant:
    """One request of a test: the base request with ``apply`` done to it; ``body``, if given,
    turns the fields into a raw body (then only headers and path go as they are)."""

    label: str
    apply: Callable[[Pairs], Pairs]
    may_succeed: bool
    hostile: list[str] = field(default_factory=list)
    body: Callable[[Pairs], dict[str, Any]] | None = None


def replace(name: str, value: str) -> Callable[[Pairs], Pairs]:
    def apply(pairs: Pairs) -> Pairs:
        if not any(k == name for k, _ in pairs):
            return [*pairs, (name, value)]
        return [(k, value if k == name else v) for k, v in pairs]
    return apply


def variants_for(case: Case, target: str, world: World) -> list[Variant]:
    if target == "(extra keys)":  # all at once; a NUL in a name separately (it stops all)
        # (In a JSON document a NUL is only a character of a name: SCIM ignores attributes it
        # does not know, RFC 7644 §3.3.)
        return [Variant("hostile names", lambda p: [*p, *((k, "1") for k in HOSTILE_KEYS)],
                        True, HOSTILE_KEYS),
                Variant("NUL name", lambda p: [*p, ("\x00", "1")],
                        case.kind == "scim" and case.json is not None)]
    # An empty or blank value of an optional field is the same as leaving it out.
    result = [Variant(label, replace(target, value),
                      target in case.opaque or (target, label) in case.accepts
                      or (not value.strip() and target in case.optional),
                      [value]) for label, value in [*HOSTILE, *BY_FIELD.get(target, [])]]
    if case.special is not None:
        result += [Variant(label, replace(target, value), False, [value])
                   for label, value in case.special(world).get(target, [])]
    if case.json is not None and not target.startswith(("H:", "P:")):
        # Another JSON type where the field's own is expected (null: as if left out).
        result += [Variant(label, replace(target, JSON_RAW + value),
                           target in case.opaque or (target, label) in case.accepts
                           or (value == "null" and target in case.optional))
                   for label, value in JSON_TYPES]
    if target in case.extra:
        return result
    result.append(Variant("missing", lambda p: [(k, v) for k, v in p if k != target],
                          target in case.optional))
    if not target.startswith(("H:", "P:")):
        def repeat(second: str | None) -> Callable[[Pairs], Pairs]:
            def apply(pairs: Pairs) -> Pairs:
                out: Pairs = []
                for k, v in pairs:
                    out.append((k, v))
                    if k == target:
                        out.append((k, v if second is None else second))
                return out
            return apply
        result.append(Variant("repeated", repeat(None), not case.rejects_repeats))
        # A second, different value: whichever one the server takes, the request is handled.
        result.append(Variant("repeated-different", repeat("<b>x</b>'"),
                              not case.rejects_repeats, ["<b>x</b>'"]))
    return result


def send(world: World, case: Case, pairs: Pairs, **kwargs: Any) -> TestResponse:
    path, params, environ = case.path, [], {}
    for key, value in pairs:
        if key.startswith("P:"):
            path = path.replace("{" + key[2:] + "}", quote(value, safe=""))
        elif key.startswith("H:"):
            environ["HTTP_" + key[2:].upper().replace("-", "_")] = wire(value)
        elif key.startswith("E:"):  # the WSGI environ itself: which address the request is from
            environ[key[2:]] = value
        else:
            params.append((key, value))
    headers = {"Accept": "application/json"} if case.accept_json else {}
    if "data" not in kwargs:
        if case.method in ("GET", "DELETE"):
            kwargs["query_string"] = MultiDict(params)
        elif case.json is not None:
            kwargs["data"] = json.dumps(case.json(params))
            kwargs["content_type"] = case.content_type
        else:
            kwargs["data"] = MultiDict(params)
    return world.client.open(path, method=case.method, headers=headers,
                             environ_overrides=environ, **kwargs)


def state_of_tables() -> TableState:
    db.session.rollback()  # a request's session ends with the request, as in production
    return snapshot()


def run_variant(world: World, case: Case, variant: Variant) -> list[str]:
    if case.prepare is not None:
        case.prepare(world)
    pairs = variant.apply(case.fields(world))
    kwargs: dict[str, Any] = {}
    if variant.body is not None:
        kwargs = variant.body(pairs)
        pairs = [(k, v) for k, v in pairs if k.startswith(("H:", "P:"))]
    # Between two checked requests only the exempt tables change, unless the world made a
    # credential or undid a success (then it forgot last_state): the last "after" is "before".
    before = world.last_state or state_of_tables()
    try:
        response = send(world, case, pairs, **kwargs)
    except Exception as exc:  # noqa: BLE001 - TESTING propagates what production turns into a 500
        db.session.rollback()
        world.last_state = None
        world.forget_csrf()
        world.forget_credentials()
        return [f"{case.id} [{variant.label}]: unhandled {type(exc).__name__}: "
                f"{str(exc)[:150]} (a 500 in production)"]
    after = world.last_state = state_of_tables()
    ok = succeeded(response, case.kind)
    problems = answer_problems(response, case.kind, pairs, variant.hostile, case.path)
    problems += write_problems(before, after, case.writes if ok and variant.may_succeed
                               else frozenset(), case.burns)
    if "Set-Cookie" in response.headers:
        world.forget_csrf()
    if any(before[1][t] != after[1][t] for t in ("token", "authorization_code")):
        world.forget_credentials()
    if ok and case.after_success is not None:
        case.after_success(world)
    return [f"{case.id} [{variant.label}] -> {response.status_code}: {p}" for p in problems]


# --- the matrix -----------------------------------------------------------------------------------

MATRIX = [(c.id, t) for c in CASES for t in (*c.targets, *c.extra, "(extra keys)")]


@pytest.mark.parametrize(("case_id", "target"), MATRIX,
                         ids=[f"{c}:{t}" for c, t in MATRIX])
def test_hostile_field_values(app: Flask, client: FlaskClient, case_id: str,
                              target: str) -> None:
    """S17, T05, D01, D03 — bad input: each field of a valid request replaced by each hostile
    value, removed, repeated; hostile parameter names added. Never a 500 or a trace; the
    protocol's error, an error page or a message beside the field; no write to any table but
    audit_event and store_entry (both on purpose), unless the request legitimately succeeded."""
    case = CASE_BY_ID[case_id]
    world = World(app, client, case.state)
    if case.prepare is not None:
        case.prepare(world)
    names = [k for k, _ in case.fields(world)]
    assert set(case.targets) <= set(names), (case.targets, names)
    problems: list[str] = []
    for variant in variants_for(case, target, world):
        problems += run_variant(world, case, variant)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_base_requests_of_the_matrix_are_valid(app: Flask, client: FlaskClient,
                                               case_id: str) -> None:
    """The matrix is only worth something if its base requests pass every check up to the one
    a hostile value breaks: each base request succeeds (or, where marked, fails by design)."""
    case = CASE_BY_ID[case_id]
    world = World(app, client, case.state)
    if case.prepare is not None:
        case.prepare(world)
    pairs = case.fields(world)
    response = send(world, case, pairs)
    assert succeeded(response, case.kind) == case.base_succeeds, (
        response.status_code, response.headers.get("Location"), response.text[:300])
    assert not answer_problems(response, case.kind, pairs, [], case.path)


def test_matrix_covers_every_route(app: Flask) -> None:
    """Bad input: every route and method of the app is in the matrix (a new route must be
    added here), and the matrix is as big as announced."""
    rules: dict[str, set[str]] = {}
    for url_rule in app.url_map.iter_rules():
        rules.setdefault(url_rule.rule, set()).update(
            (url_rule.methods or set()) - {"HEAD", "OPTIONS"})
    assert rules == ROUTES
    covered = {(c.method, re.sub(r"\{(\w+)\}", r"<\1>", c.path)) for c in CASES}
    for rule, methods in ROUTES.items():
        for method in methods:
            pattern = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule)
            assert (method, pattern) in covered or (method, rule) in covered, (method, rule)
    assert len(MATRIX) >= 150


# --- raw bodies: non-UTF-8, broken encoding, odd shapes -------------------------------------------

RAW_BODIES: list[tuple[str, bytes]] = [
    ("ff-fe-value", b"phone=%ff%fe"),
    ("raw-ff-fe", b"\xff\xfe=\xff"),
    ("surrogate", b"%ed%a0%80=%ed%a0%80"),
    ("overlong", b"%c0%ae%c0%ae=%c0%af"),
    ("grant-ff", b"grant_type=%ff&code=%fe&token=%80"),
    ("latin1-raw", "phone=13912345678&password=é".encode("latin-1")),
    ("empty-pairs", b"=&&==&"),
    ("lone-percent", b"%"),
    ("bad-percent", b"a=%zz%&%=%"),
    ("raw-nul", b"\x00=\x00"),
    ("nul-in-value", b"phone=13912345678\x00&sms_code=\x00"),
    ("no-equals-100k", b"a" * 100_000),
    ("many-params", b"&".join(b"k%d=v" % i for i in range(5000))),
    ("json-as-form", b'{"phone": "13912345678", "grant_type": "client_credentials"}'),
]
# One case per form and per kind of protocol endpoint that reads a body.
RAW_TARGETS = ["login-submit", "sms-json", "password-change-user", "authorize-post-anon",
               "token-client-credentials-basic", "token-authorization-code", "revoke",
               "userinfo-post", "logout-post-confirm", "register-enterprise", "register-bind",
               "committee-register", "committee-change", "lookup", "centre-return",
               "centre-area-merge", "offices-new", "operators-new", "staff-apply",
               "applications-reject"]


def raw_body(raw: bytes) -> Callable[[Pairs], dict[str, Any]]:
    """The raw bytes, after a valid CSRF token if the form has one (so they reach validation)."""
    def body(pairs: Pairs) -> dict[str, Any]:
        prefix = b"".join(f"csrf_token={quote(v)}&".encode() for k, v in pairs
                          if k == "csrf_token")
        return {"data": prefix + raw, "content_type": "application/x-www-form-urlencoded"}
    return body


@pytest.mark.parametrize("case_id", RAW_TARGETS)
def test_raw_non_utf8_and_malformed_bodies(app: Flask, client: FlaskClient,
                                           case_id: str) -> None:
    """S17, T05, D01 — bad input: raw form bodies that are not UTF-8 or not well formed, with a
    valid CSRF token and client authentication so they reach the validation: never a 500, the
    protocol's error or a page, no write but to audit_event and store_entry."""
    case = CASE_BY_ID[case_id]
    world = World(app, client, case.state)
    problems: list[str] = []
    for label, raw in RAW_BODIES:
        problems += run_variant(world, case, Variant(label, list, False, body=raw_body(raw)))
    assert not problems, "\n".join(problems)


# --- JSON bodies of the admin API and SCIM: broken, odd encodings, odd numbers, lone surrogates ---

def _with(doc: Any, extra: str) -> bytes:
    """The document's JSON with ``extra`` (raw JSON text) as one more member."""
    text = json.dumps(doc)
    return (text[:-1] + (", " if text != "{}" else "") + extra + "}").encode()


def _first_is(doc: dict[str, Any], raw: str) -> bytes:
    """The document's JSON with ``raw`` (JSON-like text) as the value of its first member
    (after SCIM's ``schemas``, so that the value reaches the attributes)."""
    first = next(k for k in doc if k != "schemas")
    return _with({k: v for k, v in doc.items() if k != first}, f"{json.dumps(first)}: {raw}")


def _surrogates(doc: Any) -> Any:
    """Every string of the document (but SCIM's ``schemas``) after a lone surrogate (a valid
    JSON escape; no UTF-16 or UTF-8 can carry it)."""
    if isinstance(doc, dict):
        return {k: v if k == "schemas" else _surrogates(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_surrogates(v) for v in doc]
    return "\ud800" + doc if isinstance(doc, str) else doc


RAW_JSON: list[tuple[str, Callable[[Any], bytes], bool]] = [
    ("truncated", lambda d: json.dumps(d).encode()[:-1], False),
    ("array", lambda d: json.dumps([d]).encode(), False),
    ("null", lambda d: b"null", False),
    ("string", lambda d: b'"x"', False),
    ("empty", lambda d: b"", False),
    ("deep-nesting", lambda d: b"[" * 100_000 + b"]" * 100_000, False),
    ("deep-object", lambda d: b'{"a":' * 50_000 + b"1" + b"}" * 50_000, False),
    ("nan", lambda d: _first_is(d, "NaN"), False),
    ("infinity", lambda d: _first_is(d, "-Infinity"), False),
    ("int-5000-digits", lambda d: _first_is(d, "9" * 5000), False),
    ("lone-surrogates", lambda d: json.dumps(_surrogates(d)).encode(), False),
    ("not-utf8", lambda d: json.dumps(d).encode().replace(b'"', b'"\xff', 2), False),
    ("nul-escaped", lambda d: json.dumps(d).replace('": "', '": "\\u0000', 1).encode(), False),
    # Valid JSON after all (RFC 8259 §8.1 allows a reader to take UTF-16 and a BOM; the last
    # of two equal names wins in Python): the request may succeed.
    ("utf-16", lambda d: json.dumps(d).encode("utf-16"), True),
    ("bom", lambda d: b"\xef\xbb\xbf" + json.dumps(d).encode(), True),
    ("duplicate-names", lambda d: _with(d, json.dumps(d)[1:-1]) if d else b"{}", True),
]
RAW_JSON_TYPES = [("text/plain", True), ("application/x-www-form-urlencoded", True),
                  ("multipart/form-data; boundary=x", True), ("application/json; charset=utf-16",
                                                                True),
                  ("application/xml", True), ("", True)]
RAW_JSON_TARGETS = ["api-operators-create", "api-operators-patch", "api-offices-create",
                    "api-offices-patch", "scim-users-create", "scim-users-put", "scim-users-patch"]


@pytest.mark.parametrize("case_id", RAW_JSON_TARGETS)
def test_raw_json_bodies(app: Flask, client: FlaskClient, case_id: str) -> None:
    """D09, S11–S15, T03 — bad input: the JSON bodies of the admin API and SCIM broken,
    nested past any stack, with NaN, infinities, 5000-digit numbers, lone surrogates or bytes
    that are not UTF-8, and valid bodies sent under other content types, with a valid token:
    never a 500, the interface's own error, no write unless the request was valid after all."""
    case = CASE_BY_ID[case_id]
    assert case.json is not None
    world = World(app, client, case.state)
    problems: list[str] = []

    def document(pairs: Pairs) -> Any:
        assert case.json is not None
        return case.json([(k, v) for k, v in pairs if not k.startswith(("H:", "P:"))])

    for label, make, may_succeed in RAW_JSON:
        def body(pairs: Pairs, make: Callable[[Any], bytes] = make) -> dict[str, Any]:
            return {"data": make(document(pairs)), "content_type": case.content_type}
        problems += run_variant(world, case, Variant(label, list, may_succeed, body=body))
    for content_type, may_succeed in RAW_JSON_TYPES:
        def typed(pairs: Pairs, content_type: str = content_type) -> dict[str, Any]:
            return {"data": json.dumps(document(pairs)).encode(), "content_type": content_type}
        problems += run_variant(world, case, Variant(content_type or "no-content-type", list,
                                                     may_succeed, body=typed))
    assert not problems, "\n".join(problems)


# --- bodies over max_content_length --------------------------------------------------------------

POST_PATHS = [("/login", "page"), ("/login/sms", "page"), ("/password/change", "page"),
              ("/authorize", "page"), ("/token", "api"), ("/revoke", "api"),
              ("/introspect", "api"), ("/userinfo", "api"), ("/logout", "page"),
              ("/register/enterprise", "page"), ("/register/platforms", "page"),
              ("/register/bind", "page"), ("/register/committee", "page"),
              ("/register/committee/sms", "page"), ("/committee/change", "page"),
              ("/lookup", "page"), ("/lookup/sms", "page"), ("/centre/areas", "page"),
              ("/centre/areas/merge", "page"), ("/console/offices/new", "page"),
              ("/console/operators/new", "page"), ("/staff/apply", "page"),
              ("/staff/apply/sms", "page")]


def big_bodies() -> list[tuple[str, dict[str, Any], set[int]]]:
    blob = b"x" * (MAX_BODY + 1)
    return [
        ("urlencoded-1MiB+1", {"data": b"a=" + blob,
                               "content_type": "application/x-www-form-urlencoded"}, {413}),
        ("multipart-file-2MiB", {"data": {"f": (__import__("io").BytesIO(blob * 2), "f.bin")},
                                 "content_type": "multipart/form-data"}, {413}),
        ("multipart-5000-parts", {"data": {f"k{i}": "v" for i in range(5000)},
                                  "content_type": "multipart/form-data"}, {413}),
        ("content-length-lies", {"data": b"a=1", "content_type":
                                 "application/x-www-form-urlencoded",
                                 "environ_overrides": {"CONTENT_LENGTH": str(10**12)}}, {413}),
        # Bodies the endpoints never parse are not read, so they are not "too large" to them.
        ("json-2MiB", {"data": b'{"a":"' + blob * 2 + b'"}',
                       "content_type": "application/json"}, {400, 401, 405, 413}),
    ]


@pytest.mark.parametrize(("path", "kind"), POST_PATHS)
def test_bodies_over_the_limit_are_413(app: Flask, client: FlaskClient, path: str,
                                       kind: str) -> None:
    """Bad input: a body over max_content_length (1 MiB) is refused with 413 — JSON with
    'error' on the protocol endpoints, the error page elsewhere — before anything is written."""
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_BODY
    world = World(app, client, "anon")
    headers = basic("rp1", world.secret) if kind == "api" else {}
    problems: list[str] = []
    for label, kwargs, statuses in big_bodies():
        before = state_of_tables()
        response = client.post(path, headers=headers, **kwargs)
        after = state_of_tables()
        if response.status_code not in statuses:
            problems.append(f"{label}: {response.status_code}, expected {sorted(statuses)}")
        problems += [f"{label}: {p}" for p in answer_problems(response, kind, [], [], path)]
        problems += [f"{label}: {p}" for p in write_problems(before, after, frozenset(),
                                                             frozenset())]
    assert not problems, "\n".join(problems)


# --- wrong HTTP methods ---------------------------------------------------------------------------

def wrong_methods(rule: str) -> list[str]:
    return sorted({"PUT", "DELETE", "PATCH", "TRACE", "GET", "POST"} - ROUTES[rule])


@pytest.mark.parametrize("rule", list(ROUTES))
def test_wrong_methods_are_405(app: Flask, client: FlaskClient, rule: str) -> None:
    """Bad input: every route answers PUT, DELETE, PATCH, TRACE and whichever of GET/POST it
    does not serve with 405 — JSON with 'error' on the protocol endpoints, the error page
    elsewhere — and writes nothing."""
    make_account()
    path = CONCRETE.get(rule, rule)
    kind = kind_of_path(path)
    problems: list[str] = []
    for method in wrong_methods(rule):
        before = state_of_tables()
        response = client.open(path, method=method,
                               data={"phone": "<script>alert(1)</script>"})
        after = state_of_tables()
        if response.status_code != 405:
            problems.append(f"{method}: {response.status_code}, expected 405")
        problems += [f"{method}: {p}" for p in answer_problems(
            response, kind, [], ["<script>alert(1)</script>"], path)]
        problems += [f"{method}: {p}" for p in write_problems(before, after, frozenset(),
                                                              frozenset())]
    assert not problems, "\n".join(problems)


def test_405_names_the_allowed_methods(app: Flask, client: FlaskClient) -> None:
    """Bad input: a 405 carries the Allow header (RFC 9110 §15.5.6: the server MUST generate
    it), so a client can tell what it should have sent."""
    problems = []
    for rule, allowed in ROUTES.items():
        method = "PUT" if "PUT" not in allowed else "TRACE"  # one the route does not serve
        response = client.open(CONCRETE.get(rule, rule), method=method)
        offered = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
        if not offered >= allowed:
            problems.append(f"{method} {rule}: Allow {sorted(offered)}, expected "
                            f"{sorted(allowed)}")
    assert not problems, "\n".join(problems)


# --- wrong content types --------------------------------------------------------------------------

def bodies_of(pairs: Pairs) -> list[tuple[str, dict[str, Any]]]:
    form = {k: v for k, v in pairs if not k.startswith("H:")}
    urlencoded = "&".join(f"{quote(k)}={quote(v)}" for k, v in form.items())
    return [
        ("json", {"data": json.dumps(form), "content_type": "application/json"}),
        ("json-array", {"data": "[1, 2]", "content_type": "application/json"}),
        ("json-broken", {"data": '{"a": ', "content_type": "application/json"}),
        ("multipart", {"data": dict(form), "content_type": "multipart/form-data"}),
        ("multipart-no-boundary", {"data": urlencoded, "content_type": "multipart/form-data"}),
        ("text-plain", {"data": urlencoded, "content_type": "text/plain"}),
        ("xml", {"data": "<?xml version='1.0'?><x>&lt;</x>", "content_type": "application/xml"}),
        ("no-content-type", {"data": urlencoded.encode()}),
        ("form-utf16", {"data": urlencoded.encode("utf-16"),
                        "content_type": "application/x-www-form-urlencoded; charset=utf-16"}),
        ("form-bogus-charset", {"data": urlencoded, "content_type":
                                "application/x-www-form-urlencoded; charset=no-such-charset"}),
    ]


@pytest.mark.parametrize("case_id", RAW_TARGETS)
def test_wrong_content_types(app: Flask, client: FlaskClient, case_id: str) -> None:
    """Bad input: a valid request sent as JSON, multipart, text, XML, without a content type or
    in an odd charset: never a 500; the protocol's error or a page; writes only when the
    request was accepted as a whole (multipart is still a form)."""
    case = CASE_BY_ID[case_id]
    world = World(app, client, case.state)
    problems: list[str] = []
    for label, _ in bodies_of([]):
        variant = Variant(label, list, True,
                          body=lambda pairs, label=label: dict(bodies_of(pairs))[label])
        problems += run_variant(world, case, variant)
    assert not problems, "\n".join(problems)


# --- hostile cookies and headers ------------------------------------------------------------------

COOKIES = ["' OR '1'='1", "<script>alert(1)</script>", "a" * 100, "a" * 101, "a" * 10_000,
           "\x00", "%00", "\xff\xfe", '"quoted"', ";;;", "=", "", "sess:*"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/login/sms"),
    ("GET", "/password/change"), ("GET", "/authorize"), ("GET", "/logout"),
    ("POST", "/token"), ("GET", "/userinfo"),
])
def test_hostile_session_cookies(app: Flask, client: FlaskClient, method: str,
                                 path: str) -> None:
    """Bad input: a forged, oversized or binary session cookie is an anonymous visitor, never
    an error, and writes nothing but (possibly) a new session."""
    make_account()
    make_client()
    name = app.session_interface.cookie_name(app)  # type: ignore[attr-defined]
    problems: list[str] = []
    kind = kind_of_path(path)
    for value in COOKIES:
        before = state_of_tables()
        query = authorize_params() if path == "/authorize" else {}
        response = client.open(path, method=method, query_string=query,
                               environ_overrides={"HTTP_COOKIE": wire(f"{name}={value}")})
        after = state_of_tables()
        problems += [f"{value[:20]!r} -> {response.status_code}: {p}" for p in
                     answer_problems(response, kind, [], [value], path)]
        problems += [f"{value[:20]!r}: {p}" for p in write_problems(before, after, frozenset(),
                                                                    frozenset())]
        client.delete_cookie(name)
    assert not problems, "\n".join(problems)


HEADERS = [("Accept", "application/json;q=abc, */*;q=NaN"), ("Accept", "\x00"),
           ("Accept-Language", "<script>alert(1)</script>"), ("Host", "evil.example.com"),
           ("Host", "localhost:99999"), ("X-Requested-With", "fetch\x00"),
           ("Content-Type", "application/x-www-form-urlencoded; charset=\"<x>\""),
           ("Origin", "https://evil.example.com"), ("Referer", "javascript:alert(1)"),
           ("X-Forwarded-For", "' OR 1=1 --"), ("X-Forwarded-Host", "evil.example.com"),
           ("User-Agent", "A" * 100_000)]


@pytest.mark.parametrize(("method", "path", "kind"), [
    ("POST", "/login/sms", "sms"), ("POST", "/login", "page"), ("GET", "/authorize", "page"),
    ("POST", "/token", "api"), ("GET", "/.well-known/openid-configuration", "api"),
])
def test_hostile_headers(app: Flask, client: FlaskClient, method: str, path: str,
                         kind: str) -> None:
    """Bad input: hostile Accept, Host, Content-Type and other headers: never a 500, the same
    kind of answer, no write, and no redirect anywhere but to our pages or a validated URI."""
    world = World(app, client, "anon")
    problems: list[str] = []
    for header, value in HEADERS:
        data: dict[str, str] = {}
        query: dict[str, str] = {}
        if path == "/authorize":
            query = authorize_params()
        elif path == "/token":
            data = {"grant_type": "client_credentials", "client_id": "rp1",
                    "client_secret": world.secret}
        elif path.startswith("/login"):
            data = {"phone": SMS_PHONE, "csrf_token": world.csrf()}
        environ = {"HTTP_" + header.upper().replace("-", "_"): wire(value)}
        if header == "Content-Type":
            environ = {"CONTENT_TYPE": value}
        before = state_of_tables()
        response = client.open(path, method=method, data=data, query_string=query,
                               environ_overrides=environ)
        after = state_of_tables()
        ok = succeeded(response, kind)
        problems += [f"{header}: {value[:20]!r} -> {response.status_code}: {p}" for p in
                     answer_problems(response, kind, [], [value], path)]
        problems += [f"{header}: {p}" for p in write_problems(
            before, after, frozenset({"token"}) if ok and path == "/token" else frozenset(),
            frozenset())]
        if is_redirect(response) and "evil" in response.headers.get("Location", ""):
            problems.append(f"{header}: redirect built from a hostile header")
        if "Set-Cookie" in response.headers:
            world.forget_csrf()
    assert not problems, "\n".join(problems)
