"""The tenant console of an enterprise admin (S10–S16, D09): 操作员管理 and 用户审核."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")
