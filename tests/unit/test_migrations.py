"""Alembic migrations (D10: Flask-Migrate; the migrations produce exactly the models) on SQLite
and on PostgreSQL, each in a fresh throw-away database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from idp.db import utcnow
from idp.extensions import db
from tests.conftest import BACKENDS, make_app

APP_TABLES = {
    "account", "application", "area_link", "audit_event", "authorization_code", "certificate",
    "client", "identity", "legacy_account", "logout_delivery", "operator", "organisation",
    "property_area", "signing_key", "staff_application", "store_entry", "token",
}
HEAD = "0005"  # the newest revision in idp/migrations/versions



@pytest.fixture(params=BACKENDS)
def fresh_app(request: pytest.FixtureRequest, tmp_path: Path,
              pg_database_factory: Any) -> Iterator[Flask]:
    """An app on an empty database of its own (nothing created yet)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
    else:
        url = str(pg_database_factory())
    app = make_app(url, tmp_path / "instance")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _differences() -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))


def _tables() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def _audit_row() -> dict[str, Any]:
    return {"at": utcnow(), "event": "login", "result": "success", "account_id": None,
            "client_id": None, "ip": "127.0.0.1", "detail": {"method": "phone"}}


def test_d10_migrations_produce_exactly_the_models(fresh_app):
    """D10: `upgrade` on an empty database gives the schema of the models, no difference."""
    assert _tables() == set()
    upgrade()
    assert _tables() == APP_TABLES | {"alembic_version"}
    assert _differences() == []


def test_d10_downgrade_to_base_and_upgrade_again(fresh_app):
    """D10: the migrations can be undone completely and replayed."""
    upgrade()
    downgrade(revision="base")
    assert _tables() <= {"alembic_version"}
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is None
    upgrade()
    assert _tables() == APP_TABLES | {"alembic_version"}
    assert _differences() == []
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD


def test_d10_upgrade_twice_is_harmless(fresh_app):
    """D10: `idp init` runs upgrade on every deploy; a second run changes nothing."""
    upgrade()
    upgrade()
    assert _differences() == []


def test_d10_audit_trail_is_append_only_on_postgresql(tmp_path, pg_database_factory):
    """D10 (等保 8.1.4.3): after migrating, PostgreSQL refuses UPDATE and DELETE on audit_event
    (for every role, administrators included) while INSERT works."""
    app = make_app(str(pg_database_factory()), tmp_path / "instance")
    table = db.metadata.tables["audit_event"]
    with app.app_context():
        try:
            upgrade()
            with db.engine.begin() as conn:
                conn.execute(table.insert(), [_audit_row(), _audit_row()])
            for statement in (table.update().values(result="failure"),
                              table.delete(),
                              table.delete().where(table.c.event == "login")):
                with pytest.raises(sa.exc.DBAPIError, match="append-only"), \
                        db.engine.begin() as conn:
                    conn.execute(statement)
            with db.engine.connect() as conn:
                rows = conn.execute(sa.select(table.c.result)).scalars().all()
            assert rows == ["success", "success"]
            # INSERT still works after the refusals
            with db.engine.begin() as conn:
                conn.execute(table.insert(), [_audit_row()])
            with db.engine.connect() as conn:
                assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 3
            # and downgrade removes the trigger with the table
            downgrade(revision="base")
            with db.engine.connect() as conn:
                left = conn.scalar(sa.text(
                    "SELECT count(*) FROM pg_proc WHERE proname = 'audit_event_append_only'"))
            assert left == 0
        finally:
            db.session.remove()
            db.engine.dispose()
