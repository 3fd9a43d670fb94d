"""Import every model so that the metadata (and so Alembic) sees all tables."""

from idp.accounts.models import Account, Certificate, Identity
from idp.audit import AuditEvent
from idp.oidc.models import AuthorizationCode, Client, SigningKey, Token
from idp.orgs.models import Organisation
from idp.store.database import StoreEntry

__all__ = ["Account", "AuditEvent", "AuthorizationCode", "Certificate", "Client", "Identity",
           "Organisation", "SigningKey", "StoreEntry", "Token"]
