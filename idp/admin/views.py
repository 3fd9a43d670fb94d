"""The platform admin console: clients, signing keys, the audit log, organisations."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
