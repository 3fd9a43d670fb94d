"""Owners' committees (T04, T06, T08) and account look-up (T05)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("committee", __name__)
