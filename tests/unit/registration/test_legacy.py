"""S04 「是」: the fund system's existing enterprise accounts — ``idp legacy import FILE.csv`` —
and binding a UKey certificate to one of them on ``/register/bind`` with the account's current
OTP code (±1 step, each code once) or its key; five wrong tries lock.

Binding runs through the real pages: a certificate issued by the development CA for a USCC that
was imported, presented by the (test) reverse proxy at 【UKey登录】 (the enterprise has no UKey
account yet, so the login ends at the unregistered-enterprise page with the facts pending in the
session), then the binding form.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from idp.accounts.models import Account, Identity
from idp.audit import AuditEvent
from idp.cli import cli
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.pki.devca import DevCA
from idp.registration import legacy
from idp.registration.legacy import ImportFileError, import_rows
from idp.registration.models import LegacyAccount
from idp.registration.pending import PENDING_KEY
from idp.security import unseal
from idp.validators import _ORG_CODE_WEIGHTS, _USCC_WEIGHTS, USCC_ALPHABET
from tests.conftest import csrf_from, table_counts
from tests.factories import (
    REDIRECT,
    authorize_params,
    make_account,
    make_client,
    make_enterprise,
    query,
    ukey_login,
    via_proxy,
)

HEADER = "uscc,name,legacy_id,totp_secret,key\n"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # 160 bits, base32
SECRET2 = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
KEY = "Legacy-Key-2024"
NAME = "上海申大物业有限公司"


def make_uscc(district: str, body: str) -> str:
    """A valid GB 32100 code: 9 (registered by 市场监管) 1 (enterprise), the district, an
    organisation code made of ``body`` and its GB 11714 check, and the final check."""
    total = sum(int(ch, 36) * w for ch, w in zip(body, _ORG_CODE_WEIGHTS, strict=True))
    check = {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    code = "91" + district + body + check
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(code, _USCC_WEIGHTS, strict=True))
    return code + USCC_ALPHABET[(31 - total % 31) % 31]


USCC = make_uscc("310104", "12345678")  # 徐汇区
USCC2 = make_uscc("310104", "87654321")
USCC_SAME_CODE = make_uscc("310106", "12345678")  # another USCC, the same organisation code
USCC_ELSEWHERE = make_uscc("110105", "55667788")  # not a Shanghai district
USCC_OTHER = make_uscc("310112", "20260001")
USCC_OTHER_SAME_CODE = make_uscc("310104", "20260001")


def csv_text(*rows: str, header: str = HEADER) -> str:
    return header + "".join(row + "\n" for row in rows)


def run_import(text: str) -> legacy.ImportReport:
    return import_rows(io.StringIO(text))


def legacy_of(legacy_id: str) -> LegacyAccount:
    db.session.expire_all()
    found = db.session.scalar(sa.select(LegacyAccount).where(LegacyAccount.legacy_id == legacy_id))
    assert found is not None
    return found


def dump(*tables: str) -> str:
    """Every value of the tables, as text: to prove a secret is not stored in clear."""
    with db.engine.connect() as conn:
        return repr([list(r) for t in tables for r in conn.execute(sa.text(f"SELECT * FROM {t}"))])


def events(event: str, result: str | None = None) -> list[AuditEvent]:
    found = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == event)
                               .order_by(AuditEvent.id))
    return [e for e in found if result is None or e.result == result]


# --- import ----------------------------------------------------------------------------------

def test_s04_import_creates_enterprises_and_legacy_accounts(app: Flask) -> None:
    """S04: a good file creates an active enterprise per row (org code = USCC[8:17], district
    from the USCC when it is a Shanghai district) and its legacy account; audited with counts."""
    report = run_import(csv_text(f"{USCC},{NAME},FUND-001,{SECRET},{KEY}",
                                 f"{USCC_ELSEWHERE},外地物业有限公司,fund_002.x,,{KEY}",
                                 f"{USCC2},第三物业有限公司,F3,{SECRET2},"))
    assert (report.imported, report.updated, report.rejected) == (3, 0, [])
    assert report.summary() == "imported 3, updated 0, rejected 0"
    org = db.session.scalar(sa.select(Organisation).where(Organisation.uscc == USCC))
    assert org is not None
    assert (org.type, org.name, org.org_code, org.status, org.district) == (
        "enterprise", NAME, USCC[8:17], "active", "310104")
    elsewhere = db.session.scalar(sa.select(Organisation).where(
        Organisation.uscc == USCC_ELSEWHERE))
    assert elsewhere is not None and elsewhere.district is None
    account = legacy_of("FUND-001")
    assert (account.uscc, account.name, account.organisation_id) == (USCC, NAME, org.id)
    assert account.bound_at is None and account.last_otp_step is None
    assert legacy_of("fund_002.x").totp_secret is None
    assert legacy_of("F3").key_hash is None
    assert table_counts()["account"] == 0  # nothing can log in until a UKey is bound
    (event,) = events("legacy.import")
    assert event.detail["imported"] == 3 and event.detail["rejected"] == 0


def test_s04_import_keeps_secrets_sealed_and_keys_hashed(app: Flask) -> None:
    """S04 / DESIGN.md Secrets: the OTP seed is sealed (AES-GCM, readable back for the codes),
    the key is an argon2id hash; neither appears in clear anywhere in the database."""
    run_import(csv_text(f"{USCC},{NAME},FUND-001,{SECRET.lower()},{KEY}"))
    account = legacy_of("FUND-001")
    assert account.totp_secret is not None and account.totp_secret.startswith("aesgcm$")
    passphrase = app.config["IDP"].key_passphrase
    assert unseal(passphrase, "legacy-totp", account.totp_secret) == SECRET
    assert account.key_hash is not None and account.key_hash.startswith("$argon2id$")
    passwords = app.extensions["idp.passwords"]
    assert passwords.verify(account.key_hash, KEY)
    assert not passwords.verify(account.key_hash, KEY + "x")
    everything = dump("legacy_account", "audit_event", "organisation")
    assert SECRET not in everything and SECRET.lower() not in everything
    assert KEY not in everything


ROW_OK = {"uscc": USCC, "name": NAME, "legacy_id": "FUND-001", "totp_secret": SECRET,
          "key": KEY}
BAD_ROWS = [
    ("uscc", "uscc", "91310104123456788X", "统一社会信用代码格式不正确"),  # wrong check character
    ("uscc", "uscc", "９１３１０１０４１２３４５６７８８２", "统一社会信用代码格式不正确"),
    ("uscc", "uscc", "", "统一社会信用代码格式不正确"),
    ("uscc", "uscc", "' OR '1'='1", "统一社会信用代码格式不正确"),
    ("name", "name", "", legacy.MSG_NAME),
    ("name", "name", "<script>alert(1)</script>", legacy.MSG_NAME),
    ("name", "name", "名" * 201, legacy.MSG_NAME),
    ("legacy_id", "legacy_id", "", legacy.MSG_LEGACY_ID_REQUIRED),
    ("legacy_id", "legacy_id", "FUND 001", legacy.MSG_LEGACY_ID),
    ("legacy_id", "legacy_id", "账号001", legacy.MSG_LEGACY_ID),
    ("legacy_id", "legacy_id", "A" * 65, legacy.MSG_LEGACY_ID),
    ("legacy_id", "legacy_id", "x'; DROP TABLE account; --", legacy.MSG_LEGACY_ID),
    ("totp_secret", "totp_secret", "NOT-BASE32-1890!", legacy.MSG_SECRET_FORMAT),
    ("totp_secret", "totp_secret", "JBSWY3DPEHPK3PX", legacy.MSG_SECRET_FORMAT),  # 15
    ("totp_secret", "totp_secret", "JBSWY3DPEHPK3PXP", legacy.MSG_SECRET_WEAK),  # 80 bits
    ("totp_secret", "totp_secret", "A" * 65, legacy.MSG_SECRET_FORMAT),
    ("key", "key", "12345", legacy.MSG_KEY_LENGTH),
    ("key", "key", "k" * 129, legacy.MSG_KEY_LENGTH),
    ("key", "key", "abc\x01defg", legacy.MSG_KEY_CHARS),
]


@pytest.mark.parametrize(("column", "field", "value", "reason"), BAD_ROWS,
                         ids=[f"{c}-{i}" for i, (c, *_) in enumerate(BAD_ROWS)])
def test_s04_import_rejects_a_bad_row_with_line_and_reason(app: Flask, column: str, field: str,
                                                           value: str, reason: str) -> None:
    """S04: a row with a bad field is reported (line, field, reason) and writes nothing; the
    good rows of the same file are imported."""
    bad = dict(ROW_OK, **{column: value})
    import csv

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([bad[c] for c in legacy.HEADER])
    text = csv_text(f"{USCC2},第二物业有限公司,F2,,{KEY}", out.getvalue().rstrip("\n"))
    report = run_import(text)
    assert report.imported == 1 and report.updated == 0
    assert report.rejected == [legacy.Rejection(3, field, reason)]
    assert table_counts()["legacy_account"] == 1
    assert db.session.scalar(sa.select(Organisation.id).where(Organisation.uscc == USCC)) is None


def test_s04_import_needs_a_secret_or_a_key_and_five_columns(app: Flask) -> None:
    """S04: a row without OTP secret and key, or with the wrong number of fields, is refused."""
    report = run_import(csv_text(f"{USCC},{NAME},F1,,", f"{USCC2},二,F2,{SECRET}",
                                 f"{USCC_OTHER},三,F3,{SECRET},{KEY},extra", "",
                                 f"{USCC_ELSEWHERE},四,F4,  ,{KEY}"))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, legacy.MSG_NO_CREDENTIAL), (3, legacy.MSG_COLUMNS), (4, legacy.MSG_COLUMNS)]
    assert report.imported == 1  # line 6 (a blank line 5 is skipped, a blank secret is none)


def test_s04_import_rejects_duplicates_inside_the_file(app: Flask) -> None:
    """S04: the same legacy id, USCC or organisation code twice in one file: the later row is
    rejected with the line of the first."""
    report = run_import(csv_text(f"{USCC},{NAME},F1,{SECRET},",
                                 f"{USCC2},二,F1,{SECRET},",
                                 f"{USCC},三,F3,{SECRET},",
                                 f"{USCC_SAME_CODE},四,F4,{SECRET},",
                                 f"{USCC_OTHER},五,F5,{SECRET},"))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "维修资金系统账号与第2行重复"), (4, "统一社会信用代码与第2行重复"),
        (5, "组织机构代码与第2行重复")]
    assert report.imported == 2
    assert {a.legacy_id for a in db.session.scalars(sa.select(LegacyAccount))} == {"F1", "F5"}


def test_s04_import_rejects_conflicts_with_existing_data(app: Flask) -> None:
    """S04/S07: a USCC already bound to another legacy id, a legacy id of another USCC, a USCC
    whose organisation code belongs to another enterprise, a USCC of a non-enterprise: rejected,
    nothing about them changes."""
    run_import(csv_text(f"{USCC},{NAME},F1,{SECRET},"))
    make_enterprise(uscc=USCC_OTHER, name="已注册物业有限公司")
    db.session.add(Organisation(type="committee", name="业委会", uscc=USCC_ELSEWHERE,
                                org_code=USCC_ELSEWHERE[8:17]))
    db.session.commit()
    before = table_counts()
    report = run_import(csv_text(f"{USCC},改名,F9,{SECRET},",
                                 f"{USCC2},二,F1,{SECRET},",
                                 f"{USCC_OTHER_SAME_CODE},三,F3,{SECRET},",
                                 f"{USCC_ELSEWHERE},四,F4,{SECRET},"))
    assert [(r.line, r.field, r.reason) for r in report.rejected] == [
        (2, "uscc", "该统一社会信用代码已对应其他维修资金系统账号"),
        (3, "legacy_id", "该维修资金系统账号已对应其他统一社会信用代码"),
        (4, "uscc", "组织机构代码（统一社会信用代码第9–17位）已属于其他企业"),
        (5, "uscc", "该统一社会信用代码已被其他类型的组织使用")]
    assert (report.imported, report.updated) == (0, 0)
    after = table_counts()
    assert after.pop("audit_event") == before.pop("audit_event") + 1
    assert after == before
    assert legacy_of("F1").name == NAME


def test_s04_import_attaches_to_an_enterprise_registered_already(app: Flask) -> None:
    """S04: an enterprise that registered without its legacy account (no UKey account yet) gets
    the legacy account attached; its own data — its name too, on a re-run — is left as it was."""
    org = make_enterprise(uscc=USCC, name="自己注册的名称", ukey=False)
    report = run_import(csv_text(f"{USCC},{NAME},F1,{SECRET},"))
    assert report.imported == 1
    assert legacy_of("F1").organisation_id == org.id
    assert table_counts()["organisation"] == 1
    report = run_import(csv_text(f"{USCC},维修资金系统里的新名称,F1,{SECRET},"))
    assert report.updated == 1
    assert legacy_of("F1").name == "维修资金系统里的新名称"
    db.session.refresh(org)
    assert org.name == "自己注册的名称"


def test_s04_import_rerun_updates_and_never_duplicates(app: Flask) -> None:
    """S04: importing again updates name, OTP secret and key of the same legacy id (matched by
    id); the rows per table stay the same; an unchanged re-run changes nothing but the audit."""
    text = csv_text(f"{USCC},{NAME},F1,{SECRET},{KEY}", f"{USCC2},二,F2,,{KEY}")
    run_import(text)
    counts = table_counts()
    report = run_import(text)
    assert (report.imported, report.updated, report.rejected) == (0, 2, [])
    report = run_import(csv_text(f"{USCC},上海申大物业服务有限公司,F1,{SECRET2},",
                                 f"{USCC2},二,F2,,New-Key-99"))
    assert (report.imported, report.updated, report.rejected) == (0, 2, [])
    after = table_counts()
    assert after.pop("audit_event") == counts.pop("audit_event") + 2
    assert after == counts
    first = legacy_of("F1")
    assert first.name == "上海申大物业服务有限公司" and first.key_hash is None
    assert unseal(app.config["IDP"].key_passphrase, "legacy-totp",
                  first.totp_secret or "") == SECRET2
    org = db.session.get(Organisation, first.organisation_id)
    assert org is not None and org.name == "上海申大物业服务有限公司"
    passwords = app.extensions["idp.passwords"]
    assert passwords.verify(legacy_of("F2").key_hash, "New-Key-99")
    assert not passwords.verify(legacy_of("F2").key_hash, KEY)


def test_s04_import_tolerates_a_bom_and_any_column_order(app: Flask) -> None:
    """S04: a UTF-8 byte-order mark (as Excel writes it) and columns in another order."""
    text = "\ufeffname,legacy_id,uscc,key,totp_secret\r\n" + f"{NAME},F1,{USCC},{KEY},\r\n"
    report = run_import(text)
    assert (report.imported, report.rejected) == (1, [])
    assert legacy_of("F1").uscc == USCC


@pytest.mark.parametrize("text", [
    "", "uscc,name,legacy_id,totp_secret\n", "uscc;name;legacy_id;totp_secret;key\n",
    'uscc,name,legacy_id,totp_secret,key\n"unterminated,x,y,z,w\n',
], ids=["empty", "missing-column", "semicolons", "broken-quote"])
def test_s04_import_refuses_an_unreadable_file_and_writes_nothing(app: Flask, text: str) -> None:
    """S04: a file that is not the expected CSV imports nothing (ImportFileError)."""
    before = table_counts()
    with pytest.raises(ImportFileError):
        run_import(text)
    db.session.rollback()
    assert table_counts() == before


# --- the command ---------------------------------------------------------------------------

def test_s04_cli_legacy_import_reports_counts_and_rejected_lines(app: Flask,
                                                                  tmp_path: Path) -> None:
    """S04: `idp legacy import FILE` prints "imported N, updated M, rejected K" and "line L:
    reason" per rejected row; exit 0 even with rejections; re-running updates."""
    path = tmp_path / "legacy.csv"
    path.write_text(csv_text(f"{USCC},{NAME},F1,{SECRET},{KEY}", f"{USCC2},二,bad id,,{KEY}"),
                    encoding="utf-8-sig")
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["legacy", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["imported 1, updated 0, rejected 1",
                                          f"line 3: {legacy.MSG_LEGACY_ID}"]
    result = runner.invoke(cli, ["legacy", "import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"imported": 0, "updated": 1, "rejected": [
        {"line": 3, "field": "legacy_id", "reason": legacy.MSG_LEGACY_ID}]}
    assert table_counts()["legacy_account"] == 1


@pytest.mark.parametrize("content", [None, b"\xff\xfe\x00bad", HEADER.encode() + b"\xc3\x28,x\n",
                                     b"a,b\n"], ids=["missing", "utf16", "not-utf8", "header"])
def test_s04_cli_legacy_import_exits_2_when_the_file_cannot_be_read(
        app: Flask, tmp_path: Path, content: bytes | None) -> None:
    """S04: a missing file, a file that is not UTF-8, a wrong header: exit 2, nothing written."""
    path = tmp_path / "legacy.csv"
    if content is not None:
        path.write_bytes(content)
    before = table_counts()
    result = app.test_cli_runner().invoke(cli, ["legacy", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert "cannot import" in result.output
    assert table_counts() == before


# --- binding (S04 「是」) -------------------------------------------------------------------

def pem_of(devca: DevCA, uscc: str, name: str = NAME, **options: Any) -> bytes:
    return devca.issue(uscc, name, **options).pem_path.read_bytes()


def start(client: FlaskClient, pem: bytes) -> None:
    """【UKey登录】 of an enterprise without UKey account: the unregistered page, facts pending."""
    response = ukey_login(client, pem)
    assert response.status_code == 200, response.text
    with client.session_transaction() as session:
        assert PENDING_KEY in session


def post_bind(client: FlaskClient, **fields: str | None) -> Any:
    page = client.get("/register/bind")
    assert page.status_code == 200, page.text
    data: dict[str, str] = {"csrf_token": csrf_from(page.text), "legacy_id": "FUND-001",
                            "method": "otp", "otp_code": "", "key": ""}
    for name, value in fields.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post("/register/bind", data=data)


def field_error(html: str, name: str) -> str:
    match = re.search(rf'id="{name}-error"[^>]*>([^<]*)</p>', html)
    assert match, f"no error paragraph for {name}"
    return match.group(1)


def page_error(html: str) -> str:
    match = re.search(r'id="bind-error">([^<]*)</p>', html)
    return match.group(1) if match else ""


def bound_account(uscc: str = USCC) -> Account | None:
    db.session.expire_all()
    return db.session.scalar(sa.select(Account).join(
        Organisation, Organisation.id == Account.organisation_id).where(Organisation.uscc == uscc))


@pytest.fixture
def imported(app: Flask) -> LegacyAccount:
    report = run_import(csv_text(f"{USCC},{NAME},FUND-001,{SECRET},{KEY}"))
    assert report.imported == 1
    return legacy_of("FUND-001")


def test_s04_bind_with_the_current_otp_code(app: Flask, client: FlaskClient, devca: DevCA,
                                             imported: LegacyAccount) -> None:
    """S04 「是」: the current OTP code binds the certificate to the existing enterprise: one
    UKey account with enterprise_admin on repair_fund, the identities the enterprise had stay,
    the session is logged in, 「绑定成功」 names the enterprise and 【确定】 leads home."""
    staff = make_account(phone="13911112222", platform=None)
    db.session.add(Identity(account_id=staff.id, organisation_id=imported.organisation_id,
                            role="operator", platform="repair_fund"))
    db.session.commit()
    start(client, pem_of(devca, USCC))
    page = client.get("/register/bind")
    assert "维修资金系统账号" in page.text and "验证方式" in page.text
    assert "OTP动态口令" in page.text and "密钥" in page.text and "动态口令" in page.text
    assert USCC in page.text
    response = post_bind(client, otp_code=pyotp.TOTP(SECRET).now())
    assert response.status_code == 303, response.text
    assert response.location == "/register/bind/done"
    done = client.get("/register/bind/done")
    assert done.status_code == 200
    assert "绑定成功" in done.text and NAME in done.text
    assert 'id="bind-ok" href="/">确定</a>' in done.text
    home = client.get("/", **via_proxy(pem_of(devca, USCC)))
    assert home.status_code == 200 and NAME in home.text
    account = bound_account()
    assert account is not None and (account.kind, account.name, account.status) == (
        "ukey", NAME, "active")
    assert [(i.role, i.platform, i.status) for i in account.identities] == [
        ("enterprise_admin", "repair_fund", "active")]
    kept = db.session.scalars(sa.select(Identity).where(Identity.account_id == staff.id)).all()
    assert [(i.organisation_id, i.role) for i in kept] == [(imported.organisation_id, "operator")]
    bound = legacy_of("FUND-001")
    assert bound.bound_at is not None and bound.last_otp_step is not None
    (event,) = events("legacy.bind", "success")
    assert event.account_id == account.id and event.detail["method"] == "otp"
    with client.session_transaction() as session:
        assert PENDING_KEY not in session


def test_s04_bound_enterprise_logs_in_with_its_ukey_afterwards(
        app: Flask, client: FlaskClient, devca: DevCA, imported: LegacyAccount) -> None:
    """S04: after binding, a new UKey login of the enterprise logs straight in."""
    pem = pem_of(devca, USCC)
    start(client, pem)
    assert post_bind(client, otp_code=pyotp.TOTP(SECRET).now()).status_code == 303
    fresh = app.test_client()
    response = ukey_login(fresh, pem)
    assert response.status_code == 303 and response.location == "/"


def test_s04_bind_with_the_key(app: Flask, client: FlaskClient, devca: DevCA,
                               imported: LegacyAccount) -> None:
    """S04 「是」 by 密钥: the key (as the fund system issued it) binds too."""
    start(client, pem_of(devca, USCC))
    response = post_bind(client, method="key", key=KEY, otp_code=None)
    assert response.status_code == 303, response.text
    assert bound_account() is not None
    (event,) = events("legacy.bind", "success")
    assert event.detail["method"] == "key"


def test_s04_wrong_key_and_unknown_account_get_the_same_message(
        app: Flask, client: FlaskClient, devca: DevCA, imported: LegacyAccount) -> None:
    """S04: a wrong key and an unknown legacy id are refused with the same words (which ids
    exist is not told), beside the field, with the tries left; each try audited."""
    start(client, pem_of(devca, USCC))
    wrong = post_bind(client, method="key", key="Wrong-Key-1")
    assert wrong.status_code == 400
    assert field_error(wrong.text, "key") == legacy.MSG_WRONG_KEY + "，还可尝试4次"
    unknown = post_bind(client, method="key", key=KEY, legacy_id="NO-SUCH-ID")
    assert field_error(unknown.text, "key") == legacy.MSG_WRONG_KEY + "，还可尝试3次"
    otp = post_bind(client, otp_code="000000" if pyotp.TOTP(SECRET).now() != "000000"
                    else "111111")
    assert field_error(otp.text, "otp_code") == legacy.MSG_WRONG_OTP + "，还可尝试2次"
    assert bound_account() is None
    assert [e.detail["reason"] for e in events("legacy.bind", "failure")] == [
        "wrong_key", "unknown_account", "wrong_otp"]


def test_s04_the_same_otp_code_is_accepted_once(app: Flask, client: FlaskClient, devca: DevCA,
                                                imported: LegacyAccount) -> None:
    """S04: an OTP code binds once: after the binding was undone, the same code — or the code
    of the step before it — is refused; the next step's code is accepted."""
    totp = pyotp.TOTP(SECRET)
    step = totp.timecode(time.time())
    code = totp.generate_otp(step)
    pem = pem_of(devca, USCC)
    start(client, pem)
    assert post_bind(client, otp_code=code).status_code == 303
    # An administrator undoes the binding (the UKey account goes, the legacy account stays).
    account = bound_account()
    assert account is not None
    db.session.execute(sa.delete(Identity).where(Identity.account_id == account.id))
    db.session.execute(sa.delete(Account).where(Account.id == account.id))
    db.session.commit()
    again = app.test_client()
    start(again, pem)
    response = post_bind(again, otp_code=code)
    assert response.status_code == 400
    assert field_error(response.text, "otp_code").startswith(legacy.MSG_OTP_USED)
    older = post_bind(again, otp_code=totp.generate_otp(step - 1))
    assert field_error(older.text, "otp_code").startswith(legacy.MSG_OTP_USED)
    assert bound_account() is None
    assert post_bind(again, otp_code=totp.generate_otp(step + 1)).status_code == 303
    assert bound_account() is not None


def test_s04_a_step_already_used_is_refused_under_a_race(app: Flask, client: FlaskClient,
                                                         devca: DevCA,
                                                         imported: LegacyAccount) -> None:
    """S04: the step moves forward by a conditional UPDATE; a request whose step another one
    has just used (last_otp_step already there) binds nothing."""
    totp = pyotp.TOTP(SECRET)
    step = totp.timecode(time.time())
    db.session.execute(sa.update(LegacyAccount).values(last_otp_step=step))
    db.session.commit()
    start(client, pem_of(devca, USCC))
    response = post_bind(client, otp_code=totp.generate_otp(step))
    assert response.status_code == 400
    assert bound_account() is None
    assert events("legacy.bind", "failure")[-1].detail["reason"] == "otp_reused"


def test_s04_an_otp_code_two_steps_old_is_refused(app: Flask, client: FlaskClient, devca: DevCA,
                                                  imported: LegacyAccount) -> None:
    """S04: the window is ±1 step (30 s): the code of two steps ago does not bind."""
    totp = pyotp.TOTP(SECRET)
    old = totp.generate_otp(totp.timecode(time.time()) - 2)
    start(client, pem_of(devca, USCC))
    response = post_bind(client, otp_code=old)
    assert response.status_code == 400
    assert field_error(response.text, "otp_code").startswith(legacy.MSG_WRONG_OTP)
    assert bound_account() is None


def test_s04_another_enterprises_certificate_is_refused(app: Flask, client: FlaskClient,
                                                        devca: DevCA,
                                                        imported: LegacyAccount) -> None:
    """S04: the certificate's USCC must be the legacy account's. To another enterprise's UKey
    the account does not exist: the right code binds nothing and is not confirmed as right
    (the answer is the wrong-code one), and that enterprise's tries cannot lock this one out."""
    start(client, pem_of(devca, USCC2, "另一物业有限公司"))
    code = pyotp.TOTP(SECRET).now()
    response = post_bind(client, otp_code=code)
    assert response.status_code == 400
    assert field_error(response.text, "otp_code").startswith(legacy.MSG_WRONG_OTP)
    for _ in range(5):  # the other enterprise locks only itself
        post_bind(client, otp_code="000000")
    assert bound_account() is None and bound_account(USCC2) is None
    assert legacy_of("FUND-001").last_otp_step is None  # the code was not used up
    assert events("legacy.bind", "failure")[-1].detail["reason"] in ("unknown_account", "locked")
    other = app.test_client()
    start(other, pem_of(devca, USCC))
    assert post_bind(other, otp_code=code).status_code == 303
    assert bound_account() is not None


def test_s04_a_certificate_with_only_the_organisation_code_binds(
        app: Flask, client: FlaskClient, devca: DevCA, imported: LegacyAccount) -> None:
    """S04: a certificate that names the enterprise by its 组织机构代码 only (GM/T 0015) binds
    to the legacy account whose USCC contains that code."""
    start(client, pem_of(devca, USCC[8:17], oid="10260"))
    response = post_bind(client, method="key", key=KEY)
    assert response.status_code == 303, response.text
    assert bound_account() is not None


def test_s04_five_wrong_tries_lock_even_the_right_code(app: Flask, client: FlaskClient,
                                                       devca: DevCA,
                                                       imported: LegacyAccount) -> None:
    """S04: at most five tries: the fifth wrong code locks, and then even the right code is
    refused with the lock message, for this account from another UKey session too."""
    start(client, pem_of(devca, USCC))
    right = pyotp.TOTP(SECRET).now()
    wrong = "123456" if right != "123456" else "654321"
    for left in (4, 3, 2, 1):
        response = post_bind(client, otp_code=wrong)
        assert field_error(response.text, "otp_code") == (
            legacy.MSG_WRONG_OTP + f"，还可尝试{left}次")
    response = post_bind(client, otp_code=wrong)
    assert response.status_code == 429
    message = legacy.MSG_LOCKED.format(minutes=app.config["IDP"].lockout_seconds // 60)
    assert page_error(response.text) == message
    response = post_bind(client, otp_code=pyotp.TOTP(SECRET).now())
    assert response.status_code == 429 and page_error(response.text) == message
    other = app.test_client()
    start(other, pem_of(devca, USCC))  # another certificate of the same enterprise
    response = post_bind(other, method="key", key=KEY)
    assert response.status_code == 429
    assert bound_account() is None
    assert [e.detail["reason"] for e in events("legacy.bind", "failure")][-3:] == [
        "wrong_otp", "locked", "locked"]


def test_s04_wrong_tries_are_counted_per_certificate_too(app: Flask, client: FlaskClient,
                                                         devca: DevCA,
                                                         imported: LegacyAccount) -> None:
    """S04: guessing through many legacy ids from one UKey is locked as well."""
    start(client, pem_of(devca, USCC))
    for n in range(5):
        post_bind(client, legacy_id=f"GUESS-{n}", method="key", key="Guess-Key-1")
    response = post_bind(client, method="key", key=KEY)
    assert response.status_code == 429
    assert bound_account() is None


def test_s04_an_enterprise_bound_already_cannot_bind_again(app: Flask, devca: DevCA,
                                                           imported: LegacyAccount) -> None:
    """S04: two sessions pending for the same enterprise: the first binds, the second is told
    the enterprise is bound already (one UKey account per enterprise)."""
    first, second = app.test_client(), app.test_client()
    pem = pem_of(devca, USCC)
    start(first, pem)
    start(second, pem)
    assert post_bind(first, method="key", key=KEY).status_code == 303
    response = post_bind(second, method="key", key=KEY)
    assert response.status_code == 403
    assert page_error(response.text) == legacy.MSG_ALREADY_BOUND
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == 1


def test_s04_bind_without_a_pending_certificate_redirects_to_login(app: Flask,
                                                                   client: FlaskClient,
                                                                   imported: LegacyAccount
                                                                   ) -> None:
    """S04: no UKey checked (or too long ago): GET and POST go back to the UKey login."""
    token = csrf_from(client.get("/login").text)
    for response in (client.get("/register/bind"),
                     client.post("/register/bind", data={"legacy_id": "FUND-001",
                                                         "method": "key", "key": KEY,
                                                         "csrf_token": token})):
        assert response.status_code == 303
        assert response.location.startswith("/login")
    assert client.get("/register/bind/done").status_code == 303
    assert bound_account() is None


def test_s04_bind_form_without_csrf_is_refused(app: Flask, client: FlaskClient, devca: DevCA,
                                               imported: LegacyAccount) -> None:
    """S04: the form is CSRF-protected; without the token nothing is tried."""
    start(client, pem_of(devca, USCC))
    before = table_counts()
    response = client.post("/register/bind", data={"legacy_id": "FUND-001", "method": "key",
                                                    "key": KEY})
    assert response.status_code == 400
    assert 'class="error-message"' in response.text
    assert table_counts() == before


HOSTILE = [
    ("html", "<script>alert(1)</script>"),
    ("fullwidth-digits", "１２３４５６"),
    ("overlong", "9" * 10_000),
    ("spaces", "   "),
    ("spaced", "12 34 56"),
    ("empty", ""),
    ("sql", "' OR '1'='1"),
    ("nul", "\x00"),
]
BAD_FIELDS: list[tuple[str, dict[str, str], str, str]] = [
    *[("legacy_id", {"method": "key", "key": KEY}, name, value) for name, value in HOSTILE],
    *[("otp_code", {"method": "otp"}, name, value) for name, value in HOSTILE],
    # A key is 6–128 printable characters as the fund system issued it: HTML, SQL, full-width
    # digits are well-formed keys (wrong ones: the next test).
    *[("key", {"method": "key"}, name, value) for name, value in HOSTILE
      if name not in ("html", "sql", "spaced", "fullwidth-digits")],
    ("key", {"method": "key"}, "short", "12345"),
    ("otp_code", {"method": "otp"}, "five-digits", "12345"),
    ("otp_code", {"method": "otp"}, "arabic-indic-digits", "١٢٣٤٥٦"),
    *[("method", {"key": KEY}, name, value) for name, value in HOSTILE],
]


@pytest.mark.parametrize(("field", "base", "case", "value"), BAD_FIELDS,
                         ids=[f"{f}-{c}" for f, _, c, _ in BAD_FIELDS])
def test_s04_bind_bad_input_is_refused_beside_the_field(app: Flask, client: FlaskClient,
                                                        devca: DevCA, imported: LegacyAccount,
                                                        field: str, base: dict[str, str],
                                                        case: str, value: str) -> None:
    """S04: every field of the binding form refuses HTML, full-width digits, overlong values,
    blanks, empty values and SQL with a message beside it (NUL: the site-wide refusal page);
    nothing is written, nothing is counted as a try."""
    start(client, pem_of(devca, USCC))
    before = table_counts()
    response = post_bind(client, **{**base, field: value})
    assert response.status_code == 400, response.text
    if case == "nul":  # refused before any view, for every form (idp.web)
        assert 'class="error-message"' in response.text
    else:
        assert field_error(response.text, field)
    assert "<script>alert(1)</script>" not in response.text
    assert table_counts() == before
    assert events("legacy.bind") == []


def test_s04_bind_with_a_hostile_value_that_is_well_formed_is_a_wrong_try(
        app: Flask, client: FlaskClient, devca: DevCA, imported: LegacyAccount) -> None:
    """S04: a key of HTML or SQL is a (wrong) key like any other: escaped, counted, audited."""
    start(client, pem_of(devca, USCC))
    response = post_bind(client, method="key", key="' OR '1'='1")
    assert response.status_code == 400
    assert field_error(response.text, "key").startswith(legacy.MSG_WRONG_KEY)
    response = post_bind(client, method="key", key="<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in response.text
    response = post_bind(client, method="key", key="１２３４５６")
    assert field_error(response.text, "key").startswith(legacy.MSG_WRONG_KEY)
    assert bound_account() is None
    assert len(events("legacy.bind", "failure")) == 3


def test_s04_bind_continues_the_waiting_authorization(app: Flask, client: FlaskClient,
                                                      devca: DevCA,
                                                      imported: LegacyAccount) -> None:
    """S04: a binding that began at an RP's authorization request: 【确定】 resumes it, and the
    RP gets a code for the newly bound enterprise."""
    make_client()
    response = client.get("/authorize", query_string=authorize_params())
    assert response.status_code == 303 and "/login" in response.location
    uid = query(response.location)["i"]
    pem = pem_of(devca, USCC)
    response = ukey_login(client, pem, interaction=uid)
    assert response.status_code == 200
    assert post_bind(client, method="key", key=KEY).status_code == 303
    done = client.get("/register/bind/done")
    match = re.search(r'id="bind-ok" href="([^"]+)"', done.text)
    assert match and match.group(1) == f"/authorize/resume/{uid}"
    response = client.get(match.group(1), **via_proxy(pem))  # the UKey is still in
    assert response.status_code == 302, response.location and response.location.startswith(REDIRECT)
    assert "code" in query(response.location)


def test_s04_import_after_binding_renames_the_bound_enterprise(app: Flask, client: FlaskClient,
                                                               devca: DevCA,
                                                               imported: LegacyAccount) -> None:
    """S04: a re-run after the binding still updates: the fund system's new name reaches the
    enterprise and its UKey account, which stays bound."""
    start(client, pem_of(devca, USCC))
    assert post_bind(client, method="key", key=KEY).status_code == 303
    report = run_import(csv_text(f"{USCC},上海申大物业服务有限公司,FUND-001,{SECRET},New-Key-1"))
    assert (report.imported, report.updated) == (0, 1)
    account = bound_account()
    assert account is not None and account.name == "上海申大物业服务有限公司"
    assert legacy_of("FUND-001").bound_at is not None
    assert table_counts()["account"] == 1
