"""Claims of the ID token and userinfo (DESIGN.md, Claims), and ID-token signing.

Scopes map to claims: ``profile`` → name; ``phone`` → phone_number(+_verified); ``org`` → org,
platform, identity; ``roles`` → roles. ``sub`` is always there. The identity is the one chosen
at login for the client's platform (S09, ``idp.portal.selection``); the relying party asks, the
provider decides.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from flask import current_app
from joserfc import jwt

from idp.accounts.models import Account, Identity
from idp.extensions import db
from idp.oidc.keys import KeyRing
from idp.oidc.models import Client
from idp.oidc.tokens import AuthContext

ACR_PHONE = "urn:idp:acr:phone-password-sms"
ACR_UKEY = "urn:idp:acr:ukey"
AMR_PHONE = ["pwd", "sms", "mfa"]
AMR_UKEY = ["hwk", "pin"]

CLAIMS_SUPPORTED = [
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash",
    "name", "phone_number", "phone_number_verified", "org", "platform", "identity", "roles",
]


def user_claims(account: Account, scope: str, identity_id: int | None) -> dict[str, Any]:
    scopes = set(scope.split())
    claims: dict[str, Any] = {"sub": account.id}
    if "profile" in scopes and account.name:
        claims["name"] = account.name
    if "phone" in scopes and account.phone:
        claims["phone_number"] = f"+86{account.phone}"
        claims["phone_number_verified"] = True  # proven by an SMS code at every phone login
    identity = db.session.get(Identity, identity_id) if identity_id is not None else None
    if identity is not None and identity.account_id == account.id:
        if "org" in scopes:
            claims["org"] = identity.organisation.claim()
            claims["platform"] = identity.platform
            claims["identity"] = str(identity.id)
        if "roles" in scopes:
            claims["roles"] = [identity.role]
    return claims


def sign_id_token(
    client: Client,
    account: Account,
    ctx: AuthContext,
    scope: str,
    *,
    nonce: str | None,
    access_token: str | None,
) -> str:
    """OIDC Core §2 and §3.1.3.6: iss, sub, aud, exp, iat, auth_time, nonce, acr, amr, at_hash."""
    settings = current_app.config["IDP"]
    ring: KeyRing = current_app.extensions["idp.keyring"]
    alg = client.id_token_signed_response_alg or settings.signing_alg
    kid, key = ring.signing_key(db.session, alg)
    now = int(time.time())
    claims: dict[str, Any] = user_claims(account, scope, ctx.identity_id)
    claims.update({
        "iss": settings.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + settings.id_token_ttl,
        "auth_time": ctx.auth_time,
        "amr": list(ctx.amr),
    })
    if ctx.acr:
        claims["acr"] = ctx.acr
    if ctx.sid:
        claims["sid"] = ctx.sid
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        claims["at_hash"] = _half_hash(access_token)
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def _half_hash(value: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 (both ES256 and RS256 use SHA-256), base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
