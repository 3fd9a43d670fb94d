"""Accounts and identities (DESIGN.md, Identity model)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.db import Base, TimestampMixin
from idp.orgs.models import Organisation

ACCOUNT_KINDS = ("person", "ukey", "directory")
# pending: created by a registration that the district centre has not approved yet (T02).
ACCOUNT_STATUSES = ("active", "pending", "disabled", "deleted")
PLATFORMS = {
    "repair_fund": "上海市商品住房维修资金管理系统",
    "supervision": "上海市物业监管平台及招投标系统",
}


def new_subject() -> str:
    """Stable opaque ``sub``: random, so it reveals neither order nor count of accounts."""
    return uuid.uuid4().hex


class Account(TimestampMixin, Base):
    __tablename__ = "account"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {ACCOUNT_KINDS!r}", name="kind"),
        sa.CheckConstraint(f"status IN {ACCOUNT_STATUSES!r}", name="status"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_subject)
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    name: Mapped[str | None] = mapped_column(sa.String(100))
    phone: Mapped[str | None] = mapped_column(sa.String(11), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    previous_password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    password_changed_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # Platform admins' second, cryptographic factor (TOTP, RFC 6238): the seed sealed with
    # idp.security.seal, and the last time step used, so that a code works once.
    totp_secret: Mapped[str | None] = mapped_column(sa.Text)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Every browser session that logged in before this moment is over (``cut_off``: a deleted
    # operator, a changed phone). Read with the account on every request, so it costs nothing.
    sessions_cut_at: Mapped[datetime | None]
    # A ``ukey`` account belongs to one enterprise: whoever presents a valid certificate naming
    # that enterprise's USCC logs in to it (a renewed certificate keeps working). One per org.
    organisation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organisation.id"), unique=True)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="account", order_by="Identity.id", lazy="selectin"
    )

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def identities_for(self, platform: str | None) -> list[Identity]:
        return [i for i in self.identities if i.status == "active" and i.platform == platform]


class Identity(TimestampMixin, Base):
    """One way an account acts: for an organisation, in a role, on a platform (S09)."""

    __tablename__ = "identity"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "organisation_id", "role", "platform",
                            name="uq_identity_account_org_role_platform"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("account.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    platform: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="active")

    account: Mapped[Account] = relationship(back_populates="identities")
    organisation: Mapped[Organisation] = relationship(lazy="joined")


class Certificate(TimestampMixin, Base):
    """A UKey certificate that has logged in to a ``ukey`` account: what was seen, when.

    Kept for the audit trail and for the console (which certificates an enterprise uses); the
    login itself is decided by the validator and the enterprise's USCC, not by this list."""

    __tablename__ = "certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("account.id"), index=True)
    thumbprint: Mapped[str] = mapped_column(sa.String(43), unique=True)  # x5t#S256
    serial: Mapped[str] = mapped_column(sa.String(64))  # hex
    issuer: Mapped[str] = mapped_column(sa.String(200))  # the trusted CA's configured name
    subject: Mapped[str] = mapped_column(sa.String(200))
    uscc: Mapped[str | None] = mapped_column(sa.String(18))
    not_after: Mapped[datetime]
    last_used_at: Mapped[datetime]
