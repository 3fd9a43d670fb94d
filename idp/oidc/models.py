"""Clients, authorization codes, tokens and signing keys.

Codes and tokens are stored only as SHA-256 hashes (``idp.security``): a copy of the database
gives nobody a usable credential.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, TimestampMixin, utcnow
from idp.security import check_client_secret

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SECRET_METHODS = {"client_secret_basic", "client_secret_post"}
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
LOGIN_SCOPES = ("openid", "profile", "phone", "org", "roles")
# The admin API and SCIM (idp.api): only clients registered with them may get them.
API_SCOPES = ("console.read", "console.write", "scim")
SCOPES = LOGIN_SCOPES + API_SCOPES  # discovery's scopes_supported


def _is_loopback_http(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.scheme != "http" or parts.hostname is None:
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _without_port(uri: str) -> str | None:
    """The URI with its port removed, or None when the port or user part is not plain."""
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return parts._replace(netloc=host).geturl()


class Client(TimestampMixin, Base):
    """A registered relying party (or a machine client), with Authlib's ClientMixin methods."""

    __tablename__ = "client"

    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    secret_hash: Mapped[str | None] = mapped_column(sa.String(100))
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        sa.String(32), default="client_secret_basic"
    )
    redirect_uris: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(sa.String(500))
    initiate_login_uri: Mapped[str | None] = mapped_column(sa.String(500))
    platform: Mapped[str | None] = mapped_column(sa.String(32))
    grant_types: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    scope: Mapped[str] = mapped_column(sa.String(200), default=" ".join(LOGIN_SCOPES))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(sa.String(10))
    enabled: Mapped[bool] = mapped_column(default=True)
    # A provisioning client (client_credentials for /api and /scim) acts for exactly one
    # enterprise, as that enterprise's console does; None for relying parties' logins.
    tenant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisation.id"))
    # RFC 8705 §3: access tokens bound to the client's TLS certificate (cnf.x5t#S256).
    tls_client_certificate_bound_access_tokens: Mapped[bool] = mapped_column(default=False)

    # --- Authlib ClientMixin ------------------------------------------------------------------
    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Never guessed: the request must name its redirect URI (checked in the grant).
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            # RFC 6749 §3.3: without a requested scope, a provisioning client gets what it is
            # registered for on the API (its whole purpose); anybody else gets nothing.
            if self.tenant_id is None:
                return ""
            return " ".join(s for s in self.scope.split() if s in API_SCOPES)
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string match (RFC 9700 §4.1.3); for loopback IPs any port (RFC 8252 §7.3)."""
        if redirect_uri in self.redirect_uris:
            return True
        if _is_loopback_http(redirect_uri):
            wanted = _without_port(redirect_uri)
            return wanted is not None and any(
                _is_loopback_http(u) and _without_port(u) == wanted for u in self.redirect_uris
            )
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return check_client_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Secret clients may use either secret method; the others only their own."""
        registered = self.token_endpoint_auth_method
        if registered in SECRET_METHODS:
            return method in SECRET_METHODS
        return method == registered

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and self.is_public:
            return False
        return grant_type in self.grant_types


class AuthorizationCode(Base):
    __tablename__ = "authorization_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("client.client_id"), index=True)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("account.id"), index=True)
    identity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("identity.id"))
    redirect_uri: Mapped[str] = mapped_column(sa.String(500))
    scope: Mapped[str] = mapped_column(sa.String(200))
    nonce: Mapped[str | None] = mapped_column(sa.String(255))
    code_challenge: Mapped[str | None] = mapped_column(sa.String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(sa.String(10))
    auth_time: Mapped[int]
    acr: Mapped[str | None] = mapped_column(sa.String(64))
    amr: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    sid: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    __table_args__ = (sa.Index("ix_authorization_code_client_nonce", "client_id", "nonce"),)

    # --- Authlib AuthorizationCodeMixin / OIDC ------------------------------------------------
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()


class Token(Base):
    """An access token and (for user grants) its refresh token.

    Rotation creates a new row in the same ``family_id``; ``refresh_used_at`` marks a refresh
    token that has been exchanged once, so a second exchange is recognised as reuse
    (RFC 9700 §4.14.2) and the whole family is revoked.
    """

    __tablename__ = "token"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    grant_type: Mapped[str] = mapped_column(sa.String(32))
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("client.client_id"), index=True)
    account_id: Mapped[str | None] = mapped_column(sa.ForeignKey("account.id"), index=True)
    identity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("identity.id"))
    scope: Mapped[str] = mapped_column(sa.String(200), default="")
    access_token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_in: Mapped[int]
    refresh_expires_at: Mapped[datetime | None]
    refresh_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    family_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    code_id: Mapped[int | None] = mapped_column(sa.ForeignKey("authorization_code.id"),
                                                index=True)
    sid: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    auth_time: Mapped[int | None]
    acr: Mapped[str | None] = mapped_column(sa.String(64))
    amr: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # RFC 8705 §3.1: x5t#S256 of the client certificate the access token is bound to.
    cnf_x5t: Mapped[str | None] = mapped_column(sa.String(43))

    # --- Authlib TokenMixin -------------------------------------------------------------------
    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + timedelta(seconds=self.expires_in)

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def refresh_usable(self) -> bool:
        return (
            self.refresh_token_hash is not None
            and self.revoked_at is None
            and self.refresh_used_at is None
            and self.refresh_expires_at is not None
            and self.refresh_expires_at > utcnow()
        )


class SigningKey(Base):
    """A JWS signing key. The private half is PKCS#8 PEM encrypted with the key passphrase."""

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(sa.String(10))
    private_pem: Mapped[str] = mapped_column(sa.Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
    # Retired keys stay published until every token they signed has expired.
    unpublish_at: Mapped[datetime | None]


DELIVERY_STATUSES = ("pending", "delivered", "failed")


class LogoutDelivery(Base):
    """One back-channel logout notice owed to a relying party (OpenID Connect Back-Channel
    Logout 1.0): written in the transaction that ends the SSO session, sent right after, and
    retried (``idp logout retry``) while the relying party does not answer 200."""

    __tablename__ = "logout_delivery"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        sa.Index("ix_logout_delivery_due", "status", "next_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("client.client_id"))
    sid: Mapped[str | None] = mapped_column(sa.String(64))
    sub: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
