"""The tenant: the one enterprise a console page or an API call acts for (D09).

Tenant isolation is enforced here, in the data layer: a ``Tenant`` is made only from an account
holding an active ``enterprise_admin`` identity of an active enterprise (the console, an admin's
access token) or from a provisioning client bound to that enterprise (``Client.tenant_id``), and
the services take a ``Tenant`` and build every query from ``tenant.id``. A row of another
enterprise is therefore never found: its id answers 404 like an unknown one, whatever a URL or a
form says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa
from flask import g

from idp.accounts.models import Account, Identity
from idp.extensions import db
from idp.orgs.models import Organisation

ADMIN_ROLE = "enterprise_admin"
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Tenant:
    enterprise: Organisation
    actor_id: str | None  # the admin's account id; None for a provisioning client
    client_id: str | None = None  # the provisioning client acting, if any

    @property
    def id(self) -> int:
        return self.enterprise.id

    @property
    def actor(self) -> str:
        """Who acted, for the audit trail: the admin's account or ``client:<id>``."""
        return self.actor_id or f"client:{self.client_id}"

    def departments_query(self) -> sa.Select[Organisation]:
        """The enterprise and its live offices: the only departments an operator can have."""
        return (sa.select(Organisation)
                .where(sa.or_(Organisation.id == self.id,
                              sa.and_(Organisation.parent_id == self.id,
                                      Organisation.type == "office",
                                      Organisation.status == "active")))
                .order_by(Organisation.parent_id.is_not(None), Organisation.id))

    def departments(self) -> list[Organisation]:
        return list(db.session.scalars(self.departments_query()))

    def department(self, raw_id: object) -> Organisation | None:
        """The department with that id if it is this enterprise or one of its live offices."""
        text = str(raw_id or "").strip()
        if (not text.isascii() or not text.isdigit() or len(text) > 10
                or not 0 < int(text) <= MAX_ID):
            return None
        return db.session.scalar(self.departments_query().where(Organisation.id == int(text)))


def tenant_of(account: Account | None) -> Tenant | None:
    """The enterprise an account administers, or None. An account that administers several
    (rare: a person made admin of two enterprises) acts for the lowest id; the UKey account of
    an enterprise administers exactly its own."""
    if account is None or not account.is_active:
        return None
    enterprise = db.session.scalar(
        sa.select(Organisation)
        .join(Identity, Identity.organisation_id == Organisation.id)
        .where(Identity.account_id == account.id, Identity.role == ADMIN_ROLE,
               Identity.status == "active", Organisation.type == "enterprise",
               Organisation.status == "active")
        .order_by(Organisation.id).limit(1))
    return Tenant(enterprise=enterprise, actor_id=account.id) if enterprise else None


def tenant_of_client(tenant_id: int | None, client_id: str) -> Tenant | None:
    """The enterprise a provisioning client is bound to, if it is active."""
    if tenant_id is None:
        return None
    enterprise = db.session.get(Organisation, tenant_id)
    if enterprise is None or enterprise.type != "enterprise" or not enterprise.is_active:
        return None
    return Tenant(enterprise=enterprise, actor_id=None, client_id=client_id)


def require_enterprise_admin() -> None:
    """``before_request`` of every tenant-console blueprint: only an account with an
    enterprise to administer gets in (``admitted`` answers everybody else); the tenant is kept
    in ``g``."""
    from idp.auth.sso import admitted

    g.console_tenant = admitted("console.denied", tenant_of)


def console_tenant() -> Tenant:
    """The tenant that ``require_enterprise_admin`` let in."""
    return cast(Tenant, g.console_tenant)
