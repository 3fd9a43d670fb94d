"""小区管理处信息管理 in the tenant console (T03)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("offices", __name__, url_prefix="/console/offices")
