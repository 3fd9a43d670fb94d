"""上海市物业监管平台及招投标系统 — demo relying party (D05)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from relying_parties.common import CurrentUser, Menus, RPSettings, create_rp_app

TITLE = "上海市物业监管平台及招投标系统"
DEFAULTS: Mapping[str, object] = {
    "issuer": "https://localhost:8443",
    "client_id": "supervision",
    "client_secret": "dev-only-supervision-secret-change-me-0002",
    "base_url": "https://localhost:8602",
}


def menus(user: CurrentUser, issuer: str) -> Menus:
    """The enterprise admin reaches the same tenant console from here as well."""
    if "enterprise_admin" not in user.roles:
        return []
    base = issuer.rstrip("/")
    return [("公共部分", [("系统管理", [
        ("操作员管理", f"{base}/console/operators"),
        ("用户审核", f"{base}/console/applications"),
    ])])]


def create_app(settings: RPSettings | None = None, **options: object) -> Flask:
    if settings is None:
        settings = RPSettings.from_env({**DEFAULTS, "secret_key": "dev-only-supervision-key"})
    return create_rp_app(settings, import_name=__name__, title=TITLE, menus=menus,
                         **options)  # type: ignore[arg-type]
