"""上海市商品住房维修资金管理系统 — demo relying party (D05)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from relying_parties.common import CurrentUser, Menus, RPSettings, create_rp_app

TITLE = "上海市商品住房维修资金管理系统"
# config/clients.toml: the development registration `make run` uses.
DEFAULTS: Mapping[str, object] = {
    "issuer": "https://localhost:8443",
    "client_id": "repair_fund",
    "client_secret": "dev-only-repair-fund-secret-change-me-0001",
    "base_url": "https://localhost:8601",
}


def menus(user: CurrentUser, issuer: str) -> Menus:
    """The seed's menus: the enterprise admin manages operators and reviews users (S10) in the
    provider's tenant console, where the SSO session lets them in without a second login."""
    if "enterprise_admin" not in user.roles:
        return []
    base = issuer.rstrip("/")
    return [("公共部分", [("系统管理", [
        ("操作员管理", f"{base}/console/operators"),
        ("用户审核", f"{base}/console/applications"),
    ])])]


def create_app(settings: RPSettings | None = None, **options: object) -> Flask:
    if settings is None:
        settings = RPSettings.from_env({**DEFAULTS, "secret_key": "dev-only-repair-fund-key"})
    return create_rp_app(settings, import_name=__name__, title=TITLE, menus=menus,
                         **options)  # type: ignore[arg-type]
