"""The district centre's console: review queues and property areas (T02, T04, T07, T08)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("centre", __name__)
