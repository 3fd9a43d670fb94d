"""What the tenant console keeps about an enterprise's people (S11–S16, DESIGN.md "Operator").

* ``Operator`` — the console's view of a person identity inside an enterprise: the numeric
  操作员ID the seed shows, the department (the enterprise itself or one of its 小区管理处),
  the category and role, a remark and the status 正常使用 / 停用 / 已删除. Deleting is a status:
  the row, its identity and the audit trail stay (S15). ``enterprise_id`` is the tenant key:
  every query of the console starts from it (``idp.console.tenant``), and every filter of the
  list has an index that begins with it, so a page stays fast with 100,000 operators.
* ``StaffApplication`` — a real-name application (实名认证申请, S16) of a member of staff to an
  enterprise, decided by its admin. The 证件号 is sealed (AES-GCM): the admin needs to read it,
  nobody else does.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.accounts.models import Account, Identity
from idp.db import Base, TimestampMixin
from idp.orgs.models import Organisation

OPERATOR_STATUSES = {"active": "正常使用", "disabled": "停用", "deleted": "已删除"}
# 部门类别 / 操作员类别: which kind of department the operator works in.
CATEGORIES = {"enterprise": "物业企业", "office": "小区管理处"}
# 角色 of the seed's form and list, and the identity role each gives on the fund system.
OPERATOR_ROLES = {"operator": "物业管理企业", "office": "小区管理处"}
ROLE_OF_CATEGORY = {"enterprise": "operator", "office": "office"}
OPERATOR_PLATFORM = "repair_fund"  # S14: 「维修资金系统物业企业（含小区管理处）角色」
APPLICATION_STATUSES = {"pending": "待审核", "approved": "已通过", "rejected": "已驳回"}


class Operator(TimestampMixin, Base):
    __tablename__ = "operator"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {tuple(OPERATOR_STATUSES)!r}", name="status"),
        sa.CheckConstraint(f"category IN {tuple(CATEGORIES)!r}", name="category"),
        # S14 under concurrency: a person is a live operator of at most one enterprise or
        # office. Two simultaneous saves of one phone cannot both pass: one meets this index.
        sa.Index("uq_operator_live_account", "account_id", unique=True,
                 postgresql_where=sa.text("status <> 'deleted'"),
                 sqlite_where=sa.text("status <> 'deleted'")),
        # The list (S11): each filter is an index that starts with the tenant.
        # 操作员姓名 filters by prefix (LIKE 'x%'): text_pattern_ops serves it on PostgreSQL
        # whatever the database's collation.
        sa.Index("ix_operator_tenant_name", "enterprise_id", "name",
                 postgresql_ops={"name": "text_pattern_ops"}),
        sa.Index("ix_operator_tenant_status", "enterprise_id", "status", "id"),
        sa.Index("ix_operator_tenant_category", "enterprise_id", "category", "id"),
        sa.Index("ix_operator_tenant_department", "enterprise_id", "department_id", "id"),
        # SCIM ``externalId eq "…"`` (RFC 7643 §3.1: the provisioning client's own id for it).
        sa.Index("ix_operator_tenant_external_id", "enterprise_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # 操作员ID
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"))
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"))
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("account.id"))
    identity_id: Mapped[int] = mapped_column(sa.ForeignKey("identity.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    category: Mapped[str] = mapped_column(sa.String(16))
    role: Mapped[str] = mapped_column(sa.String(32))
    remark: Mapped[str] = mapped_column(sa.String(200), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    created_by: Mapped[str | None] = mapped_column(sa.String(32))
    external_id: Mapped[str | None] = mapped_column(sa.String(255))

    account: Mapped[Account] = relationship(lazy="joined")
    department: Mapped[Organisation] = relationship(foreign_keys=[department_id], lazy="joined")
    identity: Mapped[Identity] = relationship()

    @property
    def status_label(self) -> str:
        return OPERATOR_STATUSES.get(self.status, self.status)

    @property
    def role_label(self) -> str:
        return OPERATOR_ROLES.get(self.role, self.role)

    @property
    def category_label(self) -> str:
        return CATEGORIES.get(self.category, self.category)


class StaffApplication(TimestampMixin, Base):
    __tablename__ = "staff_application"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {tuple(APPLICATION_STATUSES)!r}", name="status"),
        sa.Index("ix_staff_application_queue", "enterprise_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"))
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("organisation.id"))
    phone: Mapped[str] = mapped_column(sa.String(11), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    id_type: Mapped[str] = mapped_column(sa.String(8))
    id_number_sealed: Mapped[str] = mapped_column(sa.Text)
    id_number_hint: Mapped[str] = mapped_column(sa.String(32))  # masked, for lists
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    decided_by: Mapped[str | None] = mapped_column(sa.String(32))
    decided_at: Mapped[datetime | None]
    operator_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operator.id"))

    department: Mapped[Organisation] = relationship(foreign_keys=[department_id], lazy="joined")

    @property
    def status_label(self) -> str:
        return APPLICATION_STATUSES.get(self.status, self.status)
