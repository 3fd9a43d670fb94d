"""Append-only security events: who did what, when, from where, with what result.

Events are added to the current database transaction, so an event and the change it records
commit together. Failures are recorded too; for them the caller commits the event alone.
On PostgreSQL the migration also forbids UPDATE and DELETE on the table (等保 8.1.4.3: an audit
trail that administrators cannot edit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, table_of, utcnow
from idp.extensions import db

SUCCESS = "success"
FAILURE = "failure"


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event: Mapped[str] = mapped_column(sa.String(64), index=True)
    result: Mapped[str] = mapped_column(sa.String(16))
    account_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    # The organisation the event concerns (the tenant of a console action, the enterprise
    # registered …): the platform admin's audit search filters on it (indexed).
    organisation_id: Mapped[int | None] = mapped_column(index=True)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


_INSERT = sa.insert(table_of(AuditEvent))


def record(
    event: str,
    result: str = SUCCESS,
    *,
    account_id: str | None = None,
    client_id: str | None = None,
    organisation_id: int | None = None,
    **detail: Any,
) -> None:
    """Insert the event in the current transaction; it is kept when the caller commits.

    A plain INSERT rather than an ORM object: this runs on every token issuance, and the unit
    of work would cost more than the statement.
    """
    ip = request.remote_addr if has_request_context() else None
    db.session.execute(_INSERT, {
        "at": utcnow(), "event": event, "result": result, "account_id": account_id,
        "client_id": client_id, "organisation_id": organisation_id, "ip": ip,
        "detail": detail,
    })
