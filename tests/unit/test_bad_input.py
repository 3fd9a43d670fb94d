"""Bad input (the issue's "Bad input" section; S17, T05, D01, D03): every endpoint and every form
answers malformed, oversized, missing or hostile input with the protocol's error or a message
beside the field — never a 500, never a stack trace, never a partial write.

The matrix (``CASES`` × fields × values): every route (``ROUTES``, checked against the app's URL
map) in each situation that matters (anonymous, logged in, password change pending, a UKey
login pending registration or binding, the enterprise logged in by its UKey, a proven look-up
phone, a committee handler, a centre reviewer), with a base request that is *valid* (CSRF token,
client authentication, live SMS code, fresh codes, tokens and assertions, the world's own
returned or pending applications — ``test_base_requests_of_the_matrix_are_valid`` proves it), so
that a hostile value reaches the deep code; then every field of it is, one at a time, replaced
by every value of ``HOSTILE`` (SQL and HTML fragments, NUL and other control characters, CR/LF,
odd Unicode, 10 kB and 100 kB values) and of ``BY_FIELD`` (digits for numbers, near-miss
redirect URIs, paths, wrong check characters, full-width digits, impossible dates, ids past 32
bits …) and crafted credentials (Basic/Bearer headers, client assertions, ID token hints) or
somebody else's ids (another district's, another committee's), removed, repeated, and hostile
parameter names are added. Beside it: raw non-UTF-8 bodies, bodies over
``max_content_length`` (413), wrong methods (405), wrong content types, hostile headers and
session cookies. Where a request would raise (TESTING propagates exceptions), the failure is
reported as what it is in production: a 500.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from idp.accounts.models import Account, Identity
from idp.extensions import db
from idp.oidc.models import SCOPES, Client
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.pki.devca import DEMO_NAME, DEMO_USCC, SAMPLES, DevCA
from idp.registration.committees import SMS_LOOKUP, SMS_REGISTER
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
for _name in ("P:application_id", "P:area_id", "target", "survivor", "merged", "org"):
    BY_FIELD[_name] = [("id-zero", "0"), ("id-huge", "9" * 30), ("id-past-32-bits", str(2**31)),
                       ("id-past-64-bits", str(2**64))]
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
    logged in by its UKey ("enterprise", registered for the fund platform only), a centre
    reviewer of 浦东新区 ("centre"), or PHONE logged in as the handler of an active owners'
    committee of 和谐花园 ("handler")."""

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
}
CONCRETE = {"/authorize/resume/<uid>": "/authorize/resume/AAAAAAAAAAAAAAAA",
            "/static/<path:filename>": "/static/idp.css",
            **{rule: re.sub(r"<(?:int|id):\w+>", "1", rule) for rule in ROUTES
               if re.search(r"<(?:int|id):", rule)}}
API_PATHS = ("/token", "/revoke", "/introspect", "/userinfo", "/jwks.json", "/.well-known/")


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
    if kind == "api":
        payload = response.get_json(silent=True)
        if response.mimetype != "application/json" or not isinstance(payload, dict):
            problems.append(f"{status}: not a JSON object ({response.mimetype})")
        elif status >= 400 and not isinstance(payload.get("error"), str):
            problems.append(f"{status}: JSON without 'error': {text[:120]}")
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
    if path.startswith(API_PATHS) and kind != "api":
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
        return [Variant("hostile names", lambda p: [*p, *((k, "1") for k in HOSTILE_KEYS)],
                        True, HOSTILE_KEYS),
                Variant("NUL name", lambda p: [*p, ("\x00", "1")], False)]
    # An empty or blank value of an optional field is the same as leaving it out.
    result = [Variant(label, replace(target, value),
                      target in case.opaque or (target, label) in case.accepts
                      or (not value.strip() and target in case.optional),
                      [value]) for label, value in [*HOSTILE, *BY_FIELD.get(target, [])]]
    if case.special is not None:
        result += [Variant(label, replace(target, value), False, [value])
                   for label, value in case.special(world).get(target, [])]
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
        if case.method == "GET":
            kwargs["query_string"] = MultiDict(params)
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
               "centre-area-merge"]


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


# --- bodies over max_content_length --------------------------------------------------------------

POST_PATHS = [("/login", "page"), ("/login/sms", "page"), ("/password/change", "page"),
              ("/authorize", "page"), ("/token", "api"), ("/revoke", "api"),
              ("/introspect", "api"), ("/userinfo", "api"), ("/logout", "page"),
              ("/register/enterprise", "page"), ("/register/platforms", "page"),
              ("/register/bind", "page"), ("/register/committee", "page"),
              ("/register/committee/sms", "page"), ("/committee/change", "page"),
              ("/lookup", "page"), ("/lookup/sms", "page"), ("/centre/areas", "page"),
              ("/centre/areas/merge", "page")]


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
    kind = "api" if path.startswith(API_PATHS) else "page"
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
        response = client.open(CONCRETE.get(rule, rule), method="PUT")
        offered = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
        if not offered >= allowed:
            problems.append(f"PUT {rule}: Allow {sorted(offered)}, expected {sorted(allowed)}")
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
    kind = "api" if path.startswith(API_PATHS) else "page"
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
