"""Fixtures of the auth tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from idp.extensions import db
from tests.conftest import make_app


@pytest.fixture
def build_app(app: Flask, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Another provider on the same test database, with some settings changed."""
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        other = make_app(database_url, tmp_path / f"app{len(built)}", **overrides)
        built.append(other)
        return other

    yield build
    for other in built:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()

