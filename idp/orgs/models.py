"""Organisations and what the registration and review processes keep about them.

* ``Organisation`` — an enterprise (物业服务企业, carries the USCC and so the 组织机构代码), a
  management office (小区管理处, ``parent_id`` = its enterprise), an owners' committee (业委会) or
  a centre (区中心/市中心, ``district`` = the area it serves). ``profile`` keeps the registration
  form's other facts as they were entered.
* ``PropertyArea`` — a 物业区域; ``AreaLink`` says which committee represents it and which
  enterprise or office manages it. Links are rows of their own so that merging areas (T07) is
  moving links, and an association (T08) is adding one.
* ``Application`` — anything the district centre reviews (T02, T04, T08): registrations of
  enterprises and committees, committee changes, associations. The applicant sees the decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, TimestampMixin

# platform: the team that runs this provider (its admins manage clients, keys, the audit log).
ORG_TYPES = ("enterprise", "office", "committee", "centre", "platform")
# pending: registered, waiting for review; returned: review sent it back with a reason.
ORG_STATUSES = ("active", "pending", "returned", "disabled")
CITY_DISTRICT = "310000"  # a centre of this district (市中心) sees every district


class Organisation(TimestampMixin, Base):
    __tablename__ = "organisation"
    __table_args__ = (
        sa.CheckConstraint(f"type IN {ORG_TYPES!r}", name="type"),
        sa.CheckConstraint(f"status IN {ORG_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(200))
    uscc: Mapped[str | None] = mapped_column(sa.String(18), unique=True)
    # USCC[8:17], the GB 11714 organisation code. Unique by itself too: S07 refuses a second
    # enterprise with the same code, and the constraint makes that hold under concurrency.
    org_code: Mapped[str | None] = mapped_column(sa.String(9), unique=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisation.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    district: Mapped[str | None] = mapped_column(sa.String(6), index=True)
    profile: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # An office's 管理处编码 (its enterprise's organisation code and a number), shown and
    # searched as 所属单位编码 in the operator list (S11); an enterprise's is its USCC.
    code: Mapped[str | None] = mapped_column(sa.String(32), unique=True)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def unit_code(self) -> str:
        """所属单位编码 (S11)."""
        return self.code or self.uscc or ""

    def claim(self) -> dict[str, object]:
        """The ``org`` claim (DESIGN.md, Claims)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "uscc": self.uscc,
            "parent_id": str(self.parent_id) if self.parent_id is not None else None,
        }


AREA_STATUSES = ("active", "merged")


class PropertyArea(TimestampMixin, Base):
    """A 物业区域. A merged-away area stays (status ``merged``, ``merged_into_id``) so that old
    references still resolve; registration offers only active ones (T07)."""

    __tablename__ = "property_area"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {AREA_STATUSES!r}", name="status"),
        sa.Index("ix_property_area_district_name", "district", "name"),
        # One active area of a name per district (T07: registration finds areas by name).
        sa.Index("uq_property_area_active_name", "district", "name", unique=True,
                 postgresql_where=sa.text("status = 'active'"),
                 sqlite_where=sa.text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    district: Mapped[str] = mapped_column(sa.String(6))
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    merged_into_id: Mapped[int | None] = mapped_column(sa.ForeignKey("property_area.id"))


LINK_ROLES = ("committee", "manager")


class AreaLink(TimestampMixin, Base):
    """``committee``: the 业委会 of the area; ``manager``: the enterprise or office managing it."""

    __tablename__ = "area_link"
    __table_args__ = (
        sa.CheckConstraint(f"role IN {LINK_ROLES!r}", name="role"),
        sa.UniqueConstraint("area_id", "role", "organisation_id", name="uq_area_link"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("property_area.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(16))


APPLICATION_KINDS = ("enterprise_registration", "committee_registration", "committee_change",
                     "association")
APPLICATION_STATUSES = ("pending", "returned", "approved")


class Application(TimestampMixin, Base):
    """Something a district centre decides. ``data`` is what the applicant submitted (for a
    resubmission: the corrected version); ``reason`` is the centre's word when returned."""

    __tablename__ = "application"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {APPLICATION_KINDS!r}", name="kind"),
        sa.CheckConstraint(f"status IN {APPLICATION_STATUSES!r}", name="status"),
        sa.Index("ix_application_queue", "status", "kind", "district"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"), index=True)
    district: Mapped[str] = mapped_column(sa.String(6))
    applicant_account_id: Mapped[str | None] = mapped_column(sa.ForeignKey("account.id"))
    applicant_phone: Mapped[str | None] = mapped_column(sa.String(11), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    decided_by: Mapped[str | None] = mapped_column(sa.String(32))
    decided_at: Mapped[datetime | None]
