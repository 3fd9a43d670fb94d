"""Fixtures shared by the whole suite.

Every database test runs twice: on SQLite and on a real PostgreSQL server (a throw-away database
created for this run and dropped at its end; no other database is touched). Tests get a clean
database (rows deleted after each test), the real console SMS gateway writing to a temporary
outbox, and helpers to read that outbox and the CSRF token of a page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient

from idp import create_app
from idp.extensions import db
from idp.oidc.keys import ensure_keys
from idp.oidc.models import SigningKey
from idp.pki.devca import DevCA

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ["sqlite", "postgresql"]

TEST_SETTINGS: dict[str, Any] = {
    "issuer": "http://localhost",
    "secret_key": "test-secret-key-" + "x" * 32,
    "password_time_cost": 1,
    "password_memory_cost": 1024,
    "password_parallelism": 1,
    "store": "database",
}


# --- network: loopback only --------------------------------------------------------------------

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
            raise OSError(f"tests may talk only to loopback, not {host}")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


# --- databases ---------------------------------------------------------------------------------

def _create_pg_database() -> tuple[str, str]:
    name = f"idp_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Any]:
    """Create throw-away PostgreSQL databases; all are dropped at the end of the run."""
    created: list[str] = []

    def make() -> str:
        name, url = _create_pg_database()
        created.append(name)
        return url

    yield make
    for name in created:
        _drop_pg_database(name)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory,
                 pg_database_factory: Any) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'idp.sqlite3'}"
    return str(pg_database_factory())


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Path:
    return tmp_path_factory.mktemp(f"instance-{backend}")


@pytest.fixture(scope="session")
def devca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    """The development PKI (idp certs init), made once per run: CAs, CRLs, sample certs."""
    ca = DevCA(tmp_path_factory.mktemp("pki") / "dev")
    ca.init()
    return ca


# Tests play a trusted reverse proxy from this address (TEST-NET-1, RFC 5737) to hand the
# provider a client certificate, as nginx does; no other address is trusted.
TEST_PROXY = "192.0.2.1"


@pytest.fixture(scope="session")
def _session_app(database_url: str, instance_dir: Path, devca: DevCA) -> Iterator[Flask]:
    app = make_app(database_url, instance_dir, ukey_trust=str(devca.trust_file),
                   trusted_proxies=(TEST_PROXY,))
    with app.app_context():
        db.create_all()
        ensure_keys(db.session, app.config["IDP"].key_passphrase)
        db.session.commit()
        app.extensions["test.baseline_kids"] = set(db.session.scalars(sa.select(SigningKey.kid)))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def make_app(database_url: str, instance_dir: Path, **overrides: Any) -> Flask:
    settings = dict(TEST_SETTINGS)
    settings.update(
        database_url=database_url,
        instance_path=str(instance_dir),
        sms_outbox=str(instance_dir / "sms-outbox.jsonl"),
    )
    settings.update(overrides)
    app = create_app(settings)
    app.config["TESTING"] = True

    @app.teardown_request
    def _forget_request_globals(_exc: BaseException | None) -> None:
        # Tests keep one app context open, so ``g`` would outlive a request; in production each
        # request has its own. Flask-WTF caches the CSRF token in ``g``: drop it like production.
        g.pop("csrf_token", None)

    return app


def _clean(app: Flask) -> None:
    db.session.rollback()
    baseline = app.extensions["test.baseline_kids"]
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            if table.name == "signing_key":
                conn.execute(table.delete().where(table.c.kid.not_in(baseline)))
                conn.execute(table.update().values(retired_at=None, unpublish_at=None))
            else:
                conn.execute(table.delete())
    outbox = Path(app.config["IDP"].resolved_sms_outbox)
    if outbox.exists():
        outbox.unlink()


@pytest.fixture
def app(_session_app: Flask) -> Iterator[Flask]:
    """The provider, inside an app context, with an empty database (keys kept) per test."""
    with _session_app.app_context():
        yield _session_app
        _clean(_session_app)
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- helpers -----------------------------------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def sms_messages(app: Flask, phone: str | None = None) -> list[dict[str, Any]]:
    outbox = Path(app.config["IDP"].resolved_sms_outbox)
    if not outbox.exists():
        return []
    lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    return [m for m in lines if phone is None or m["to"] == phone]


def last_code(app: Flask, phone: str) -> str:
    messages = sms_messages(app, phone)
    assert messages, f"no SMS to {phone}"
    return str(messages[-1]["code"])


def table_counts() -> dict[str, int]:
    """Rows per table, to prove that bad input wrote nothing."""
    with db.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in db.metadata.sorted_tables
        }


@pytest.fixture
def outbox(app: Flask) -> Any:
    return lambda phone=None: sms_messages(app, phone)


# --- CI: a skipped test is a failure -------------------------------------------------------------

def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI every component is installed, so a skip can only hide a missing one."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"CI: {len(skipped)} skipped test(s) count as failures", red=True)
