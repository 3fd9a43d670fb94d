"""The organisation an identity belongs to. Registration data arrives with the organisations
issue; the provider core needs what the ``org`` claim carries."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, TimestampMixin

ORG_TYPES = ("enterprise", "office", "committee", "centre")


class Organisation(TimestampMixin, Base):
    __tablename__ = "organisation"
    __table_args__ = (
        sa.CheckConstraint(f"type IN {ORG_TYPES!r}", name="type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(200))
    uscc: Mapped[str | None] = mapped_column(sa.String(18), unique=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisation.id"), index=True)

    def claim(self) -> dict[str, object]:
        """The ``org`` claim (DESIGN.md, Claims)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "uscc": self.uscc,
            "parent_id": str(self.parent_id) if self.parent_id is not None else None,
        }
