"""Shared pieces of the demo relying parties: settings, OIDC client, provisioning, logout."""

from relying_parties.common.app import CurrentUser, Menus, create_rp_app
from relying_parties.common.settings import RPSettings

__all__ = ["CurrentUser", "Menus", "RPSettings", "create_rp_app"]
