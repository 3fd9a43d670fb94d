"""When the database connection dies under a running provider (a PostgreSQL restart, a network
cut), the request that meets the dead connection gets a clear 503, never a 500 or a trace, and
the next requests reconnect by themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask

from idp.extensions import db
from idp.oidc.keys import ensure_keys
from tests.conftest import PG_ADMIN, make_app


@pytest.fixture
def pg_app(pg_database_factory: Any, tmp_path: Path) -> Iterator[Flask]:
    url = pg_database_factory()
    app = make_app(url, tmp_path)
    with app.app_context():
        db.create_all()
        ensure_keys(db.session, app.config["IDP"].key_passphrase)
        db.session.commit()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def _kill_connections(database: str) -> int:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return len(rows)


def _pooled_then_killed(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/jwks.json").status_code == 200  # pooled connections now exist
    assert client.get("/login").status_code == 200
    with app.app_context():
        database = db.engine.url.database
    assert database and _kill_connections(database) >= 1


def test_d01_dead_connection_under_a_query_is_a_503_then_recovers(pg_app: Flask) -> None:
    """D01: a killed server connection under the request's own query costs one clear 503
    (JSON ``temporarily_unavailable`` for the API); the pool is refreshed and the next request
    succeeds."""
    _pooled_then_killed(pg_app)
    client = pg_app.test_client()
    failed = client.get("/jwks.json")
    assert failed.status_code == 503
    assert failed.json["error"] == "temporarily_unavailable"
    assert b"Traceback" not in failed.data
    assert client.get("/jwks.json").status_code == 200


def test_d01_dead_connection_under_a_page_is_a_503_page(pg_app: Flask) -> None:
    """D01: the same for a page: the message 「服务暂时不可用，请稍后重试。」, not a 500."""
    _pooled_then_killed(pg_app)
    client = pg_app.test_client()
    failed = client.get("/authorize", query_string={"client_id": "nobody"})
    assert failed.status_code == 503
    assert "服务暂时不可用，请稍后重试。" in failed.text
    assert client.get("/authorize", query_string={"client_id": "nobody"}).status_code == 400


def test_d01_store_reconnects_by_itself(pg_app: Flask) -> None:
    """D01: the session store runs its statement again on a fresh connection, so a page that
    needs only the store does not even notice the restart."""
    _pooled_then_killed(pg_app)
    assert pg_app.test_client().get("/login").status_code == 200
