"""Import every model so that the metadata (and so Alembic) sees all tables."""

from idp.accounts.models import Account, Certificate, Identity
from idp.audit import AuditEvent
from idp.console.models import Operator, StaffApplication
from idp.oidc.models import AuthorizationCode, Client, LogoutDelivery, SigningKey, Token
from idp.orgs.models import Application, AreaLink, Organisation, PropertyArea
from idp.registration.models import LegacyAccount
from idp.store.database import StoreEntry

__all__ = ["Account", "Application", "AreaLink", "AuditEvent", "AuthorizationCode",
           "Certificate", "Client", "Identity", "LegacyAccount", "LogoutDelivery", "Operator",
           "Organisation", "PropertyArea", "SigningKey", "StaffApplication", "StoreEntry", "Token"]
