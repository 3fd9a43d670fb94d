"""Binding a legacy fund-system account to the UKey (S04 「是」)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("legacy", __name__)
