"""统一认证登录平台 — the OpenID Connect provider. ``create_app`` is the only way to get an app."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from idp.config import Settings, ensure_secret_key, load_settings

MIGRATIONS = str(Path(__file__).parent / "migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the one writer; foreign keys behave as on PostgreSQL."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the provider. ``config`` is a Settings object or overrides on top of the
    file/environment layers (tests pass overrides)."""
    from idp import models, web  # noqa: F401  (models: register every table)
    from idp.admin import views as admin_views
    from idp.api import scim
    from idp.api import views as api_views
    from idp.auth import views as auth_views
    from idp.auth.password import Passwords
    from idp.auth.session import StoreSessionInterface
    from idp.auth.sms import SmsCodes
    from idp.console import centre, office_views, staff_views
    from idp.console import views as console_views
    from idp.extensions import csrf, db, migrate
    from idp.gateways import load_service
    from idp.oidc import server as oidc_server
    from idp.oidc import views as oidc_views
    from idp.pki.transport import ClientCertificates
    from idp.portal import views as portal_views
    from idp.registration import committee_views, legacy_views
    from idp.registration import views as registration_views
    from idp.store import create_store

    settings = config if isinstance(config, Settings) else load_settings(config)
    settings = ensure_secret_key(settings)
    if not settings.key_passphrase:
        derived = hashlib.sha256(b"idp-signing-keys\0" + settings.secret_key.encode()).hexdigest()
        settings = settings.replace(key_passphrase=derived)
    settings.instance_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, instance_path=str(settings.instance_dir))
    database_url = settings.resolved_database_url
    app.config.update(
        IDP=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=database_url,
        # No pre-ping: it costs a round trip per request (a third of the token endpoint's time).
        # A connection that died with its server fails once, invalidates the pool, and that
        # request gets a 503 (idp.web); the next ones reconnect.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_recycle": 1800} if not database_url.startswith(
            "sqlite") else {},
        MAX_CONTENT_LENGTH=settings.max_content_length,
        MAX_FORM_MEMORY_SIZE=settings.max_content_length,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own lifetime
        # No Referer check: pages send Referrer-Policy: no-referrer (codes travel in URLs), and
        # the token is bound to a server-side session behind a SameSite=Lax __Host- cookie.
        WTF_CSRF_SSL_STRICT=False,
        PREFERRED_URL_SCHEME="https" if settings.uses_tls else "http",
        JSON_AS_ASCII=False,
    )
    if settings.trusted_hosts:
        app.config["TRUSTED_HOSTS"] = list(settings.trusted_hosts)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True)
    csrf.init_app(app)
    if database_url.startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)

    store = create_store(app)
    app.extensions["idp.store"] = store
    app.session_interface = StoreSessionInterface()
    app.extensions["idp.passwords"] = Passwords(settings)
    gateway = load_service(settings.sms_gateway, settings, "sms_gateway")
    app.extensions["idp.sms"] = SmsCodes(store, gateway, settings)
    app.extensions["idp.phone_verifier"] = load_service(
        settings.phone_verifier, settings, "phone_verifier")

    if settings.ukey_trust:
        from idp.pki.revocation import RevocationChecker
        from idp.pki.trust import load_trust
        from idp.pki.validator import CertificateValidator

        app.extensions["idp.ukey"] = CertificateValidator(
            load_trust(settings.ukey_trust), clock_skew=settings.ukey_clock_skew,
            revocation=RevocationChecker(timeout=settings.ukey_revocation_timeout,
                                         skew=timedelta(seconds=settings.ukey_clock_skew)))

    oidc_server.init_app(app)
    csrf.exempt(oidc_views.bp)
    app.register_blueprint(oidc_views.bp)
    app.url_map.converters["id"] = web.IdConverter
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(registration_views.bp)
    app.register_blueprint(legacy_views.bp)
    app.register_blueprint(committee_views.bp)
    app.register_blueprint(centre.bp)
    app.register_blueprint(portal_views.bp)
    app.register_blueprint(console_views.bp)
    app.register_blueprint(office_views.bp)
    app.register_blueprint(staff_views.bp)
    app.register_blueprint(admin_views.bp)
    csrf.exempt(api_views.bp)  # bearer tokens, not cookies: no CSRF
    csrf.exempt(scim.bp)
    app.register_blueprint(api_views.bp)
    app.register_blueprint(scim.bp)
    web.init_app(app)
    # Outermost, so that it sees the TCP peer before TrustedProxies rewrites it.
    app.wsgi_app = ClientCertificates(  # type: ignore[method-assign]
        app.wsgi_app, settings.trusted_proxies, settings.client_cert_header)
    return app
