"""D08: a relying party needs nothing but the issuer and its credentials; settings come from
defaults < TOML (RP_CONFIG) < RP_* variables, and missing ones fail at start-up. The entry
points (``python -m relying_parties.<rp>``, ``wsgi.py``) build the app from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from relying_parties.common import serve
from relying_parties.common.serve import main
from relying_parties.common.settings import RPSettings

REQUIRED = {"RP_ISSUER": "https://idp.example/", "RP_CLIENT_ID": "repair_fund",
            "RP_CLIENT_SECRET": "s" * 32, "RP_BASE_URL": "https://rp.example/",
            "RP_SECRET_KEY": "k" * 32}


def test_d08_settings_from_environment_only() -> None:
    settings = RPSettings.from_env(environ=REQUIRED)
    assert settings.issuer == "https://idp.example" and settings.base_url == "https://rp.example"
    assert settings.redirect_uri == "https://rp.example/auth/callback"
    assert settings.post_logout_redirect_uri == "https://rp.example/"
    assert settings.database_url == "" and settings.verify is True


def test_d08_settings_toml_below_environment(tmp_path: Path) -> None:
    config = tmp_path / "rp.toml"
    config.write_text('[rp]\nissuer = "https://toml.example"\nclient_id = "supervision"\n'
                      'ca_bundle = "certs/dev/root.pem"\n', encoding="utf-8")
    env = {**REQUIRED, "RP_CONFIG": str(config)}
    del env["RP_ISSUER"]
    settings = RPSettings.from_env(environ=env)
    assert settings.issuer == "https://toml.example"
    assert settings.client_id == "repair_fund"  # the variable wins over the file
    assert settings.verify == "certs/dev/root.pem"


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_d08_missing_setting_fails_fast(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ValueError, match=missing):
        RPSettings.from_env(environ=env)


@pytest.mark.parametrize("module", ["repair_fund", "supervision"])
def test_d05_entry_points_build_the_app(module: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """D05: wsgi.py and the ``serve`` entry create the app from RP_* settings alone, with the
    database in the instance folder by default."""
    import importlib

    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RP_DATABASE_URL", f"sqlite:///{tmp_path / 'rp.sqlite3'}")
    package = importlib.import_module(f"relying_parties.{module}")
    ran: dict[str, Any] = {}
    monkeypatch.setattr(serve, "run_simple", lambda host, port, app, **kw: ran.update(
        kw, host=host, port=port, app=app))
    main(package.create_app, 8601, ["serve", "--port", "9999"])
    assert ran["port"] == 9999 and ran["host"] == "127.0.0.1" and ran["ssl_context"] is None
    assert ran["app"].name == f"relying_parties.{module}"
    wsgi = importlib.import_module(f"relying_parties.{module}.wsgi")
    assert isinstance(wsgi.app, Flask)
    assert (tmp_path / "rp.sqlite3").exists()


def test_d05_serve_runs_even_under_an_inherited_flask_cli_marker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """D05: ``python -m relying_parties.<rp> serve`` started by a process that ran the flask CLI
    in-process (FLASK_RUN_FROM_CLI=true inherited — a test runner) still serves: Flask's
    app.run() would otherwise return at once and the relying party exit (a flaky e2e start)."""
    from relying_parties import repair_fund

    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RP_DATABASE_URL", f"sqlite:///{tmp_path / 'rp.sqlite3'}")
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    served: dict[str, Any] = {}
    monkeypatch.setattr(serve, "run_simple",
                        lambda host, port, app, **kw: served.update(host=host, port=port))
    main(repair_fund.create_app, 8601, ["serve", "--port", "9998"])
    assert served == {"host": "127.0.0.1", "port": 9998}
