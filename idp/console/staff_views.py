"""实名认证申请 (S16): staff apply to their enterprise; the admin decides in 用户审核."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix=None)
