"""SCIM 2.0 (RFC 7643/7644) for an enterprise's operators: /scim/v2/Users, /Groups."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
