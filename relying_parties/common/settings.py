"""Settings of a demo relying party: nothing but the issuer and the client credentials.

Everything else (endpoints, keys, algorithms) comes from the provider's discovery document
(D08), so moving the provider or rotating its keys needs no change here. Values come from an
optional TOML file (``RP_CONFIG``) and are overridden by ``RP_*`` environment variables; this is
the only module that reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_KEYS = {
    "issuer": "RP_ISSUER",
    "client_id": "RP_CLIENT_ID",
    "client_secret": "RP_CLIENT_SECRET",
    "database_url": "RP_DATABASE_URL",
    "base_url": "RP_BASE_URL",
    "secret_key": "RP_SECRET_KEY",
    "ca_bundle": "RP_CA_BUNDLE",
}


@dataclass(frozen=True)
class RPSettings:
    issuer: str
    client_id: str
    client_secret: str
    base_url: str
    secret_key: str
    database_url: str = ""  # empty: SQLite in the app's instance folder
    ca_bundle: str | None = None  # the development root, to trust the provider's TLS
    scope: str = "openid profile phone org roles"
    http_timeout: float = 10.0
    leeway: int = 60  # seconds of clock skew accepted on iat/exp

    @property
    def redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + "/auth/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + "/"

    @property
    def verify(self) -> str | bool:
        """What ``requests`` trusts for the provider's TLS."""
        return self.ca_bundle or True

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> RPSettings:
        """Fail fast on a missing value: a relying party without them cannot do anything."""
        missing = [k for k in ("issuer", "client_id", "client_secret", "base_url", "secret_key")
                   if not values.get(k)]
        if missing:
            names = ", ".join(ENV_KEYS[k] for k in missing)
            raise ValueError(f"relying party settings missing: {names}")
        return cls(
            issuer=str(values["issuer"]).rstrip("/"),
            client_id=str(values["client_id"]),
            client_secret=str(values["client_secret"]),
            base_url=str(values["base_url"]).rstrip("/"),
            secret_key=str(values["secret_key"]),
            database_url=str(values.get("database_url") or ""),
            ca_bundle=str(values["ca_bundle"]) if values.get("ca_bundle") else None,
        )

    @classmethod
    def from_env(cls, defaults: Mapping[str, object] | None = None,
                 environ: Mapping[str, str] | None = None) -> RPSettings:
        """defaults < TOML file named by ``RP_CONFIG`` (table ``[rp]``) < ``RP_*`` variables."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = dict(defaults or {})
        config = env.get("RP_CONFIG")
        if config:
            data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
            values.update(data.get("rp", data))
        for key, name in ENV_KEYS.items():
            if env.get(name):
                values[key] = env[name]
        return cls.from_mapping(values)
