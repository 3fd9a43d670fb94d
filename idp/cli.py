"""The ``idp`` command: ``idp init|serve|clients|users|keys|store`` (and Flask's ``db``).

Commands print what they did in plain words; ``--json`` prints machine-readable output for the
tools that script us (DESIGN.md, Interfaces).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from idp import create_app
from idp.config import ConfigError, load_settings

DEMO_PHONE = "13800000000"
DEMO_PASSWORD = "Demo@2026"  # the published demo login of `make run`
DEMO_USCC = "91310115MA1FL0D34W"
DEMO_REVIEWER_PHONE = "13800000001"  # 浦东新区 centre: reviews registrations and associations
DEMO_AREAS = ("和谐花园", "阳光苑一期", "阳光苑二期", "滨江公寓")
DEMO_ADMIN_PHONE = "13800000002"  # platform admin of /admin (phone login + TOTP)
# The demo admin's published TOTP seed, for development only (`idp admins add` makes random ones).
DEMO_TOTP_SEED = "DEMOADMINDEMOADMINDEMOADMIN23456"
DEMO_OFFICE = "演示物业和谐花园管理处"  # the demo enterprise's 小区管理处 (T03)


def _app_factory() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:  # e.g. a gateway class that cannot be loaded
        click.echo(f"配置错误 (configuration error): {exc}", err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_app_factory, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def cli() -> None:
    """统一认证登录平台 (OpenID Connect provider) administration."""


def main() -> None:
    try:
        load_settings()
    except ConfigError as exc:
        click.echo(f"配置错误 (configuration error): {exc}", err=True)
        sys.exit(2)
    cli()


def _fail(message: str) -> None:
    raise click.ClickException(message)


# --- init -------------------------------------------------------------------------------------

@cli.command("init")
@click.option("--clients", "clients_file", default="config/clients.toml", show_default=True,
              type=click.Path(dir_okay=False), help="Clients to create or update.")
@click.option("--demo", is_flag=True, help="Also create the demo account and organisation.")
@with_appcontext
def init_command(clients_file: str, demo: bool) -> None:
    """Create or upgrade the database, create signing keys if none, sync the clients."""
    from flask_migrate import upgrade

    from idp.extensions import db
    from idp.oidc.keys import ensure_keys

    upgrade()
    created = ensure_keys(db.session, current_app.config["IDP"].key_passphrase)
    db.session.commit()
    for key in created:
        click.echo(f"created {key.alg} signing key {key.kid}")
    path = Path(clients_file)
    if path.is_file():
        for client_id, action in sync_clients(path):
            click.echo(f"client {client_id}: {action}")
    if demo:
        click.echo(seed_demo())
    click.echo("database ready")


def sync_clients(path: Path) -> list[tuple[str, str]]:
    from idp.extensions import db
    from idp.oidc.clients import ClientSpec, upsert_client

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        _fail(f"{path}: not valid TOML: {exc}")
    results = []
    for entry in data.get("client", []):
        try:
            spec = ClientSpec.from_mapping(entry)
            _, created = upsert_client(spec)
        except ValueError as exc:
            db.session.rollback()
            _fail(f"{path}: {exc}")
        results.append((spec.client_id, "created" if created else "updated"))
    db.session.commit()
    return results


def seed_demo() -> str:
    """The demo person of `make run`: one identity on the fund system, no forced change."""
    from idp.accounts.models import PLATFORMS, Account, Identity
    from idp.accounts.service import create_person
    from idp.console.models import Operator
    from idp.console.offices import next_office_code
    from idp.extensions import db
    from idp.orgs.models import Organisation

    org = db.session.scalar(sa.select(Organisation).where(Organisation.uscc == DEMO_USCC))
    if org is None:
        org = Organisation(type="enterprise", name="演示物业服务有限公司", uscc=DEMO_USCC,
                           org_code=DEMO_USCC[8:17], district="310115")
        db.session.add(org)
        db.session.flush()
    account = db.session.scalar(sa.select(Account).where(Account.phone == DEMO_PHONE))
    if account is None:
        account = create_person(DEMO_PHONE, "演示员工", DEMO_PASSWORD, must_change=False)
        identity = Identity(account_id=account.id, organisation_id=org.id, role="operator",
                            platform="repair_fund")
        db.session.add(identity)
        db.session.flush()
        # The console's view of them (S11): the enterprise's first operator.
        db.session.add(Operator(enterprise_id=org.id, department_id=org.id,
                                account_id=account.id, identity_id=identity.id,
                                name="演示员工", category="enterprise", role="operator",
                                created_by="demo"))
    if db.session.scalar(sa.select(Organisation.id).where(
            Organisation.parent_id == org.id, Organisation.type == "office")) is None:
        db.session.add(Organisation(type="office", name=DEMO_OFFICE, parent_id=org.id,
                                    district=org.district, code=next_office_code(org),
                                    profile={"contact_name": "演示负责人"}))
    ukey = db.session.scalar(sa.select(Account).where(Account.organisation_id == org.id))
    if ukey is None:  # the enterprise itself, logging in with the demo UKey certificate
        ukey = Account(kind="ukey", name=org.name, organisation_id=org.id)
        db.session.add(ukey)
        db.session.flush()
        for platform in PLATFORMS:
            db.session.add(Identity(account_id=ukey.id, organisation_id=org.id,
                                    role="enterprise_admin", platform=platform))
    _seed_demo_centre()
    db.session.commit()
    if db.session.scalar(sa.select(Account.id).where(Account.phone == DEMO_ADMIN_PHONE)) is None:
        from idp.admin.access import provision_admin

        provision_admin(DEMO_ADMIN_PHONE, "演示平台管理员", DEMO_PASSWORD, seed=DEMO_TOTP_SEED)
    return (f"demo login: 手机号码 {DEMO_PHONE} / 密码 {DEMO_PASSWORD} (验证码见 SMS outbox); "
            f"UKey: the certificate of {org.name} ({DEMO_USCC}); "
            f"区中心审核: 手机号码 {DEMO_REVIEWER_PHONE} / 密码 {DEMO_PASSWORD}; "
            f"平台管理: 手机号码 {DEMO_ADMIN_PHONE} / 密码 {DEMO_PASSWORD} + 动态口令 "
            f"(TOTP seed {DEMO_TOTP_SEED})")


def _seed_demo_centre() -> None:
    """浦东新区's centre with one reviewer, and a few property areas for committees to
    register against (T04, T07)."""
    from idp.accounts.models import Account, Identity
    from idp.accounts.service import create_person
    from idp.extensions import db
    from idp.orgs.models import Organisation, PropertyArea
    from idp.orgs.review import CENTRE_ROLE, CONSOLE_PLATFORM

    centre = db.session.scalar(sa.select(Organisation).where(
        Organisation.type == "centre", Organisation.district == "310115"))
    if centre is None:
        centre = Organisation(type="centre", name="浦东新区维修资金管理中心", district="310115")
        db.session.add(centre)
        db.session.flush()
    if db.session.scalar(sa.select(Account).where(Account.phone == DEMO_REVIEWER_PHONE)) is None:
        reviewer = create_person(DEMO_REVIEWER_PHONE, "演示审核员", DEMO_PASSWORD,
                                 must_change=False)
        db.session.add(Identity(account_id=reviewer.id, organisation_id=centre.id,
                                role=CENTRE_ROLE, platform=CONSOLE_PLATFORM))
    for name in DEMO_AREAS:
        if db.session.scalar(sa.select(PropertyArea.id).where(
                PropertyArea.name == name, PropertyArea.district == "310115")) is None:
            db.session.add(PropertyArea(name=name, district="310115"))


# --- certs (development PKI) ------------------------------------------------------------------

CERTS_DIR = "certs/dev"


@cli.group("certs")
def certs_group() -> None:
    """The development CA under certs/dev: enterprise certificates like 法人一证通's."""


def _devca(directory: str) -> Any:
    from idp.pki.devca import DevCA

    ca = DevCA(directory)
    if not ca.exists():
        _fail(f"no development CA in {directory}: run `idp certs init` first")
    return ca


@certs_group.command("init", with_appcontext=False)
@click.option("--dir", "directory", default=CERTS_DIR, show_default=True)
def certs_init(directory: str) -> None:
    """Create the CAs, the localhost TLS certificate and the sample enterprise certificates
    (only what is missing), and re-publish the CRLs (they expire after 7 days)."""
    from idp.pki.devca import DevCA

    ca = DevCA(directory)
    try:
        made = ca.init()
    except FileExistsError as exc:
        _fail(str(exc))
    for line in made:
        click.echo(f"created {line}")
    for ca_id in ("root", "issuing", "sm2-root", "untrusted"):
        ca.publish_crl(ca_id)
    click.echo(f"development PKI ready in {directory} (trust list {ca.trust_file})")


@certs_group.command("issue", with_appcontext=False)
@click.option("--uscc", required=True, help="统一社会信用代码 to put in the certificate.")
@click.option("--name", required=True, help="企业名称 (subject O and CN).")
@click.option("--key", "key", type=click.Choice(["rsa", "ec", "sm2"]), default="rsa",
              show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option("--oid", type=click.Choice(["112570", "10260", "8888", "serial"]),
              default="112570", show_default=True, help="Where the USCC goes.")
@click.option("--dir", "directory", default=CERTS_DIR, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def certs_issue(uscc: str, name: str, key: str, days: int, oid: str, directory: str,
                as_json: bool) -> None:
    """Issue an enterprise certificate: PEM, key and (RSA/EC) a PKCS#12 bundle."""
    ca = _devca(directory)
    issued = ca.issue(uscc, name, key=key, days=days, oid=oid,
                      ca="sm2-root" if key == "sm2" else "issuing")
    result = {"serial": issued.serial_hex, "certificate": str(issued.pem_path),
              "key": str(issued.key_path),
              "pkcs12": str(issued.p12_path) if issued.p12_path else None}
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    for label, value in result.items():
        click.echo(f"{label}: {value}")


@certs_group.command("revoke", with_appcontext=False)
@click.argument("serial")
@click.option("--dir", "directory", default=CERTS_DIR, show_default=True)
def certs_revoke(serial: str, directory: str) -> None:
    """Revoke a certificate by its serial (hex, as `issue` printed) and publish the CRL."""
    ca = _devca(directory)
    try:
        issued = ca.revoke(serial)
    except KeyError:
        _fail(f"no certificate with serial {serial} in {directory}")
    click.echo(f"revoked {issued.serial_hex}; CRL re-published")


# --- serve ------------------------------------------------------------------------------------

@cli.command("serve")
@click.option("--bind", default="127.0.0.1:5000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def serve_command(bind: str, workers: int) -> None:
    """Run the provider under gunicorn (deploy/gunicorn.conf.py holds production settings)."""
    import ssl

    from idp.serve import run

    try:
        run(bind=bind, workers=workers)
    except (OSError, ssl.SSLError) as exc:
        _fail(f"cannot start TLS: {exc}")


# --- clients ----------------------------------------------------------------------------------

@cli.group("clients")
def clients_group() -> None:
    """Register and list relying parties."""


@clients_group.command("add")
@click.option("--client-id", required=True)
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--public", is_flag=True, help="A public client (PKCE, no secret).")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--backchannel-logout-uri")
@click.option("--initiate-login-uri")
@click.option("--platform", type=click.Choice(["repair_fund", "supervision"]))
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
              help="Default: authorization_code and refresh_token.")
@click.option("--auth-method", type=click.Choice(["client_secret_basic", "client_secret_post",
                                                  "private_key_jwt"]))
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False),
              help="Public JWKS for private_key_jwt.")
@click.option("--tls-client-certificate-bound-access-tokens", is_flag=True, default=None,
              help="Bind access tokens to the client's TLS certificate (RFC 8705).")
@click.option("--scope", help="Scopes the client may get (default: the login scopes; with "
              "--tenant: console.read console.write scim).")
@click.option("--tenant", metavar="USCC",
              help="A provisioning client of /api and /scim for this enterprise only.")
@click.option("--json", "as_json", is_flag=True, help="Print {client_id, client_secret}.")
@with_appcontext
def clients_add(as_json: bool, jwks_file: str | None, **options: Any) -> None:
    """Register a client and print its credentials (the secret is shown only this once)."""
    from idp.extensions import db
    from idp.oidc.clients import ClientSpec, register_client

    if jwks_file:
        try:
            options["jwks"] = json.loads(Path(jwks_file).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            _fail(f"{jwks_file}: not a JSON key set: {exc}")
    try:
        spec = ClientSpec.from_mapping({k: v for k, v in options.items() if v not in (None, ())})
        secret = register_client(spec)
    except ValueError as exc:
        db.session.rollback()
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps({"client_id": spec.client_id, "client_secret": secret}))
    else:
        click.echo(f"client_id:     {spec.client_id}")
        click.echo(f"client_secret: {secret or '(none: public or private_key_jwt client)'}")


@clients_group.command("list")
@with_appcontext
def clients_list() -> None:
    from idp.extensions import db
    from idp.oidc.models import Client

    for client in db.session.scalars(sa.select(Client).order_by(Client.client_id)):
        state = "enabled" if client.enabled else "disabled"
        click.echo(f"{client.client_id}\t{client.name}\t{client.token_endpoint_auth_method}\t"
                   f"{state}")


# --- users ------------------------------------------------------------------------------------

@cli.group("users")
def users_group() -> None:
    """Person accounts."""


@users_group.command("add")
@click.option("--phone", required=True)
@click.option("--name", required=True)
@click.option("--password", help="Initial password; a random one is generated when omitted.")
@click.option("--must-change/--no-must-change", default=True, show_default=True,
              help="Force a password change at first login.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_add(phone: str, name: str, password: str | None, must_change: bool,
              as_json: bool) -> None:
    """Create a person account (phone + password + SMS login)."""
    from idp.accounts.service import create_person, random_initial_password
    from idp.errors import FieldError
    from idp.extensions import db

    generated = password is None
    initial = password or random_initial_password()
    try:
        account = create_person(phone, name, initial, must_change=must_change)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        field = "password" if exc.field == "new_password" else exc.field
        _fail(f"--{field}: {exc.message}")
    if as_json:
        out = {"id": account.id, "phone": account.phone}
        if generated:
            out["initial_password"] = initial
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    click.echo(f"account {account.id} ({account.phone}) created")
    if generated:
        click.echo(f"initial password: {initial}")


# --- keys -------------------------------------------------------------------------------------

@cli.group("keys")
def keys_group() -> None:
    """Signing keys."""


@keys_group.command("rotate")
@click.option("--alg", "algs", multiple=True, type=click.Choice(["ES256", "RS256"]),
              help="Default: every algorithm.")
@with_appcontext
def keys_rotate(algs: tuple[str, ...]) -> None:
    """New keys sign at once; retired ones stay in the JWKS until their tokens expire."""
    from idp import audit
    from idp.extensions import db
    from idp.oidc.keys import ALGORITHMS, rotate_keys

    settings = current_app.config["IDP"]
    created = rotate_keys(db.session, settings.key_passphrase, settings.id_token_ttl,
                          algs or ALGORITHMS)
    audit.record("keys.rotate", kids=[k.kid for k in created])
    db.session.commit()
    for key in created:
        click.echo(f"new {key.alg} signing key {key.kid}")


@keys_group.command("list")
@with_appcontext
def keys_list() -> None:
    from idp.extensions import db
    from idp.oidc.models import SigningKey

    for key in db.session.scalars(sa.select(SigningKey).order_by(SigningKey.created_at)):
        state = "active"
        if key.retired_at is not None and key.unpublish_at is not None:
            state = f"retired, published until {key.unpublish_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{key.kid}\t{key.alg}\t{state}")


# --- store ------------------------------------------------------------------------------------

@cli.group("store")
def store_group() -> None:
    """Shared short-lived state."""


@store_group.command("purge")
@with_appcontext
def store_purge() -> None:
    """Delete expired entries of the database store (run from a timer)."""
    from idp.store import DatabaseStore, get_store

    store = get_store()
    if isinstance(store, DatabaseStore):
        click.echo(f"purged {store.purge_expired()} expired entries")
    else:
        click.echo("the Redis store expires entries by itself")


# --- legacy fund-system accounts (S04 「是」) ---------------------------------------------------

@cli.group("legacy")
def legacy_group() -> None:
    """Accounts of the fund system that existed before the unified login."""


@legacy_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def legacy_import(file: str, as_json: bool) -> None:
    """Load FILE (CSV, UTF-8: uscc,name,legacy_id,totp_secret,key); re-running updates.

    Rejected rows are reported with their line and reason and do not stop the others (exit 0);
    a file that cannot be read at all imports nothing (exit 2)."""
    from idp.registration.legacy import ImportFileError, import_rows

    try:
        with open(file, encoding="utf-8-sig", newline="") as handle:
            report = import_rows(handle)
    except (OSError, ImportFileError) as exc:
        reason = exc.message if isinstance(exc, ImportFileError) else (exc.strerror or str(exc))
        click.echo(f"cannot import {file}: {reason}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    click.echo(report.summary())
    for rejection in report.rejected:
        click.echo(f"line {rejection.line}: {rejection.reason}")


# --- back-channel logout ------------------------------------------------------------------------

@cli.group("logout")
def logout_group() -> None:
    """Back-channel logout notices (OpenID Connect Back-Channel Logout 1.0)."""


@logout_group.command("retry")
@with_appcontext
def logout_retry() -> None:
    """Send the notices whose retry is due (run from a timer, e.g. every minute)."""
    from idp.oidc.backchannel import retry_due

    click.echo(f"delivered {retry_due()} back-channel logout notice(s)")


# --- platform admins (the /admin console) -----------------------------------------------------

@cli.group("admins")
def admins_group() -> None:
    """Platform admins: phone login plus a TOTP 动态口令 for /admin (等保 level 3)."""


def _admin_result(provisioned: Any, as_json: bool) -> None:
    """Print the otpauth:// URI — the only time the TOTP seed leaves the database."""
    account = provisioned.account
    if as_json:
        out = {"id": account.id, "phone": account.phone, "otpauth_uri": provisioned.otpauth_uri}
        if provisioned.initial_password:
            out["initial_password"] = provisioned.initial_password
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    click.echo(f"platform admin {account.id} ({account.phone})")
    if provisioned.initial_password:
        click.echo(f"initial password: {provisioned.initial_password}")
    click.echo("add this to the authenticator app (shown only now):")
    click.echo(provisioned.otpauth_uri)


@admins_group.command("add")
@click.option("--phone", required=True)
@click.option("--name", required=True)
@click.option("--password", help="Initial password of a new account; random (to be changed at "
                                 "first login) when omitted. An existing account keeps its own.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def admins_add(phone: str, name: str, password: str | None, as_json: bool) -> None:
    """Make PHONE a platform admin (creating the person account if needed) with a fresh TOTP
    seed; prints the otpauth:// provisioning URI once."""
    from idp.admin.access import provision_admin
    from idp.errors import FieldError
    from idp.extensions import db

    try:
        provisioned = provision_admin(phone, name, password)
    except FieldError as exc:
        db.session.rollback()
        field = "password" if exc.field == "new_password" else exc.field
        _fail(f"--{field}: {exc.message}")
    _admin_result(provisioned, as_json)


@admins_group.command("reset-totp")
@click.option("--phone", required=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def admins_reset_totp(phone: str, as_json: bool) -> None:
    """A new TOTP seed for a platform admin; the old one stops working at once."""
    from idp.admin.access import reset_totp
    from idp.errors import FieldError
    from idp.extensions import db

    try:
        provisioned = reset_totp(phone)
    except FieldError as exc:
        db.session.rollback()
        _fail(f"--{exc.field}: {exc.message}")
    _admin_result(provisioned, as_json)
