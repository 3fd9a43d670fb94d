"""Accounts of the fund system that existed before the unified login (S04 「是」).

``idp legacy import`` loads them; a UKey whose USCC matches binds to the enterprise by proving
the legacy credential: the current code of its OTP token, or its key. The OTP secret is kept
encrypted (it must be read back to compute codes), the key only as a hash.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, TimestampMixin


class LegacyAccount(TimestampMixin, Base):
    __tablename__ = "legacy_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    legacy_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    uscc: Mapped[str] = mapped_column(sa.String(18), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"), unique=True)
    totp_secret: Mapped[str | None] = mapped_column(sa.String(255))  # sealed (idp.security)
    key_hash: Mapped[str | None] = mapped_column(sa.String(255))  # argon2id
    # The last OTP time step accepted: a code is good once, and never an older one after it.
    last_otp_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    bound_at: Mapped[datetime | None]
