"""Store implementation on the provider's own database (SQLite or PostgreSQL).

It talks through its own short connections, not the request's ORM session, so a counter that
records a failed login survives the rollback of that request. Each operation is one short
transaction; if the pooled connection turns out dead (the database restarted), the operation
runs once more on a fresh one: nothing of it can have committed on a dead connection.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, table_of, utcnow


class StoreEntry(Base):
    """One key of the database-backed store."""

    __tablename__ = "store_entry"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[str | None] = mapped_column(sa.Text)
    counter: Mapped[int] = mapped_column(sa.Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


_T = table_of(StoreEntry)
PURGE_EVERY = 500
T = TypeVar("T")


class DatabaseStore:
    def __init__(self, app: Flask) -> None:
        self._app = app
        self._engine: Engine | None = None
        self.purge_every = PURGE_EVERY  # 0 turns the sweep off, 1 sweeps on every set

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from idp.extensions import db

            with self._app.app_context():
                self._engine = db.engine
        return self._engine

    def _run(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a transaction of its own; once more if the connection was dead."""
        try:
            with self.engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self.engine.begin() as conn:
            return work(conn)

    def _insert(self) -> sqlite.Insert | postgresql.Insert:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(_T)
        return sqlite.insert(_T)

    @staticmethod
    def _purge(conn: Connection, key: str, now: datetime) -> None:
        conn.execute(sa.delete(_T).where(_T.c.key == key, _T.c.expires_at <= now))

    def get(self, key: str) -> str | None:
        stmt = sa.select(_T.c.value).where(_T.c.key == key, _T.c.expires_at > utcnow())
        return self._run(lambda conn: conn.execute(stmt).scalar())

    def set(self, key: str, value: str, ttl: int) -> None:
        expires = utcnow() + timedelta(seconds=ttl)
        stmt = self._insert().values(key=key, value=value, counter=0, expires_at=expires)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_T.c.key], set_={"value": value, "expires_at": expires}
        )
        self._run(lambda conn: conn.execute(stmt))
        # Keys such as session ids are never touched again once abandoned, so nothing would
        # delete them: about one write in PURGE_EVERY also sweeps out what has expired.
        if self.purge_every and secrets.randbelow(self.purge_every) == 0:
            self.purge_expired()

    def add(self, key: str, value: str, ttl: int) -> bool:
        now = utcnow()
        stmt = self._insert().values(
            key=key, value=value, counter=0, expires_at=now + timedelta(seconds=ttl)
        ).on_conflict_do_nothing(index_elements=[_T.c.key]).returning(_T.c.key)

        def work(conn: Connection) -> bool:
            self._purge(conn, key, now)
            # RETURNING, not rowcount: drivers disagree about rowcount of ON CONFLICT.
            return conn.execute(stmt).first() is not None

        return self._run(work)

    def take(self, key: str) -> str | None:
        stmt = (
            sa.delete(_T)
            .where(_T.c.key == key, _T.c.expires_at > utcnow())
            .returning(_T.c.value)
        )
        return self._run(lambda conn: conn.execute(stmt).scalar())

    def delete(self, key: str) -> None:
        self._run(lambda conn: conn.execute(sa.delete(_T).where(_T.c.key == key)))

    def incr(self, key: str, ttl: int) -> int:
        now = utcnow()
        insert = self._insert().values(
            key=key, value=None, counter=1, expires_at=now + timedelta(seconds=ttl)
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[_T.c.key], set_={"counter": _T.c.counter + 1}
        ).returning(_T.c.counter)

        def work(conn: Connection) -> int:
            self._purge(conn, key, now)
            return int(conn.execute(stmt).scalar_one())

        return self._run(work)

    def ttl(self, key: str) -> int | None:
        stmt = sa.select(_T.c.expires_at).where(_T.c.key == key, _T.c.expires_at > utcnow())
        expires = self._run(lambda conn: conn.execute(stmt).scalar())
        if expires is None:
            return None
        return max(0, int((expires - utcnow()).total_seconds() + 0.999))

    def purge_expired(self) -> int:
        """Delete every expired entry; run from ``idp store purge`` or a timer."""
        stmt = sa.delete(_T).where(_T.c.expires_at <= utcnow())
        return self._run(lambda conn: int(conn.execute(stmt).rowcount))
