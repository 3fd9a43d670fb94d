"""The relying party's own database: local sessions, organisations, provisioning log, seen
logout-token ids. Plain SQLAlchemy 2.0 (one engine per app in ``app.extensions``), so that two
relying parties can live in one process with different databases."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class LocalSession(Base):
    """One browser's login here. Back-channel logout finds it by sid (or sub) and deletes it."""

    __tablename__ = "local_session"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    sub: Mapped[str] = mapped_column(sa.String(255), index=True)
    sid: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    organisation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisation.id"))
    org: Mapped[str | None] = mapped_column(sa.Text)  # the org claim as JSON
    platform: Mapped[str | None] = mapped_column(sa.String(32))
    roles: Mapped[str] = mapped_column(sa.String(255), default="")  # space-separated
    amr: Mapped[str] = mapped_column(sa.String(255), default="")
    identity: Mapped[str | None] = mapped_column(sa.String(64))
    id_token: Mapped[str] = mapped_column(sa.Text)
    access_token: Mapped[str | None] = mapped_column(sa.Text)
    refresh_token: Mapped[str | None] = mapped_column(sa.Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class Organisation(Base):
    """The relying party's own record of an enterprise or office, keyed on the provider's id."""

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(200))
    uscc: Mapped[str | None] = mapped_column(sa.String(18))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisation.id"))
    platform: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class ProvisioningLog(Base):
    """Every creation or change made from claims (D06): who, what, when."""

    __tablename__ = "provisioning_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(16))  # created | updated
    changes: Mapped[str] = mapped_column(sa.Text)  # JSON {field: [old, new]}
    sub: Mapped[str | None] = mapped_column(sa.String(255))
    at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class SeenLogoutToken(Base):
    """jti of every accepted logout token until it expires (Back-Channel Logout §2.6 step 9)."""

    __tablename__ = "seen_logout_token"

    jti: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime)
