"""Registering relying parties: validation of their metadata and secret issuance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.accounts.models import PLATFORMS
from idp.extensions import db
from idp.oidc.models import API_SCOPES, GRANT_TYPES, SCOPES, Client
from idp.oidc.server import CLIENT_ID_RE
from idp.orgs.models import Organisation
from idp.security import hash_client_secret, new_token

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
KNOWN_KEYS = {"client_id", "name", "redirect_uris", "public", "post_logout_redirect_uris",
              "backchannel_logout_uri", "initiate_login_uri", "platform", "grant_types",
              "auth_method", "jwks", "secret", "id_token_signed_response_alg", "scope",
              "tls_client_certificate_bound_access_tokens", "tenant"}


def check_uri(uri: Any, what: str) -> str:
    """Absolute https URI without fragment; plain http only for this machine (RFC 8252)."""
    if not isinstance(uri, str) or len(uri) > 500:
        raise ValueError(f"{what}: not a URI")
    parts = urlsplit(uri)
    if parts.fragment or not parts.hostname:
        raise ValueError(f"{what}: {uri!r} must be absolute and have no fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS):
        return uri
    raise ValueError(f"{what}: {uri!r} must use https (http only for localhost)")


@dataclass
class ClientSpec:
    client_id: str
    name: str
    redirect_uris: list[str] = field(default_factory=list)
    public: bool = False
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    backchannel_logout_uri: str | None = None
    initiate_login_uri: str | None = None
    platform: str | None = None
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code",
                                                            "refresh_token"])
    auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    secret: str | None = None
    id_token_signed_response_alg: str | None = None
    scope: str | None = None
    tls_client_certificate_bound_access_tokens: bool = False  # RFC 8705 §3.4
    # A provisioning client of /api and /scim acts for this enterprise (its USCC) only.
    tenant: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClientSpec:
        unknown = set(data) - KNOWN_KEYS
        if unknown:
            raise ValueError(f"unknown client fields: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}
        spec = cls(**values)
        spec.validate()
        return spec

    def validate(self) -> None:
        if not isinstance(self.client_id, str) or not CLIENT_ID_RE.fullmatch(self.client_id):
            raise ValueError("client_id: 1–64 characters of A–Z a–z 0–9 . _ ~ -")
        if not isinstance(self.name, str) or not 0 < len(self.name.strip()) <= 100:
            raise ValueError("name: 1–100 characters")
        self.grant_types = list(self.grant_types)
        for grant in self.grant_types:
            if grant not in GRANT_TYPES:
                raise ValueError(f"grant_types: unknown {grant!r}")
        self.redirect_uris = [check_uri(u, "redirect_uri") for u in self.redirect_uris]
        self.post_logout_redirect_uris = [check_uri(u, "post_logout_redirect_uri")
                                          for u in self.post_logout_redirect_uris]
        if self.backchannel_logout_uri:
            check_uri(self.backchannel_logout_uri, "backchannel_logout_uri")
        if self.initiate_login_uri:
            check_uri(self.initiate_login_uri, "initiate_login_uri")
            if not self.initiate_login_uri.startswith("https://") and urlsplit(
                    self.initiate_login_uri).hostname not in LOCAL_HOSTS:
                raise ValueError("initiate_login_uri: must use https")
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ValueError("redirect_uri: at least one is needed for authorization_code")
        if self.platform is not None and self.platform not in PLATFORMS:
            raise ValueError(f"platform: one of {', '.join(PLATFORMS)}")
        if self.public:
            self.auth_method = "none"
            if "client_credentials" in self.grant_types:
                raise ValueError("grant_types: a public client cannot use client_credentials")
        elif self.auth_method not in {"client_secret_basic", "client_secret_post",
                                      "private_key_jwt"}:
            raise ValueError(f"auth_method: unknown {self.auth_method!r}")
        if self.auth_method == "private_key_jwt":
            if not self.jwks:
                raise ValueError("jwks: private_key_jwt needs the client's public keys")
            try:
                KeySet.import_key_set(self.jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"jwks: not a usable key set ({exc})") from None
        if self.secret is not None:
            hash_client_secret(self.secret)  # raises ValueError when too short
        if not isinstance(self.tls_client_certificate_bound_access_tokens, bool):
            raise ValueError("tls_client_certificate_bound_access_tokens: true or false")
        if self.id_token_signed_response_alg not in (None, "ES256", "RS256"):
            raise ValueError("id_token_signed_response_alg: ES256 or RS256")
        if self.tenant and self.scope is None:
            self.scope = " ".join(API_SCOPES)  # what a provisioning client is for
        if self.scope is not None:
            unknown_scopes = set(str(self.scope).split()) - set(SCOPES)
            if unknown_scopes:
                raise ValueError(f"scope: unknown {', '.join(sorted(unknown_scopes))}")

    def apply(self, client: Client, *, keep_secret: bool = False) -> None:
        client.name = self.name.strip()
        client.redirect_uris = self.redirect_uris
        client.post_logout_redirect_uris = self.post_logout_redirect_uris
        client.backchannel_logout_uri = self.backchannel_logout_uri
        client.initiate_login_uri = self.initiate_login_uri
        client.platform = self.platform
        client.grant_types = self.grant_types
        client.token_endpoint_auth_method = self.auth_method
        client.jwks = self.jwks
        client.id_token_signed_response_alg = self.id_token_signed_response_alg
        client.tls_client_certificate_bound_access_tokens = bool(
            self.tls_client_certificate_bound_access_tokens)
        if self.scope:
            client.scope = self.scope
        client.tenant_id = self._tenant_id()
        if self.secret is not None and not (keep_secret and client.secret_hash):
            client.secret_hash = hash_client_secret(self.secret)

    def _tenant_id(self) -> int | None:
        """The enterprise named by ``tenant`` (its USCC); it must be registered."""
        if not self.tenant:
            return None
        enterprise = db.session.scalar(sa.select(Organisation).where(
            Organisation.uscc == str(self.tenant).strip().upper(),
            Organisation.type == "enterprise"))
        if enterprise is None:
            raise ValueError(f"tenant: no registered enterprise has the USCC {self.tenant!r}")
        return enterprise.id

    @property
    def uses_secret(self) -> bool:
        return self.auth_method in {"client_secret_basic", "client_secret_post"}


def register_client(spec: ClientSpec) -> str | None:
    """Create a new client; return its secret (shown once, stored hashed) if it has one."""
    if db.session.get(Client, spec.client_id) is not None:
        raise ValueError(f"client_id: {spec.client_id!r} is already registered")
    secret = spec.secret or (new_token(32) if spec.uses_secret else None)
    if secret is not None:
        spec.secret = secret
    client = Client(client_id=spec.client_id)
    spec.apply(client)
    db.session.add(client)
    db.session.commit()
    return secret


def upsert_client(spec: ClientSpec) -> tuple[Client, bool]:
    """Create or update from configuration (``idp init``); the caller commits.

    An existing client keeps its secret: a file's (development) secret is used only to create
    a client, so an upgrade never resets a secret that was rotated since.
    """
    client = db.session.get(Client, spec.client_id)
    created = client is None
    if client is None:
        client = Client(client_id=spec.client_id)
        db.session.add(client)
    spec.apply(client, keep_secret=True)
    return client, created
