"""The provider as this relying party sees it: discovery, keys, and token validation.

Configured from the issuer alone (OIDC Discovery 1.0 §4, D08): the discovery document is fetched
on first use and cached; the JWKS is cached and fetched again once when a token names a key id
we do not know (the provider rotated its keys), never more often than that per token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from relying_parties.common.settings import RPSettings

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
SAFE_ALGS = ("ES256", "RS256", "PS256", "ES384", "RS384", "EdDSA")


class TokenError(Exception):
    """A token (ID token or logout token) that must not be trusted. The message says why."""


class ProviderError(Exception):
    """The provider could not be reached or answered nonsense."""


def half_hash(value: str) -> str:
    """OIDC Core §3.1.3.6 at_hash for the SHA-256 algorithms: left half, base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


class Provider:
    """Discovery + JWKS of one issuer, thread-safe, fetched lazily."""

    def __init__(self, settings: RPSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    # --- fetching ---------------------------------------------------------------------------
    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, timeout=self.settings.http_timeout,
                                    verify=self.settings.verify)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderError(f"{url}: {exc}") from exc
        if not isinstance(data, dict):
            raise ProviderError(f"{url}: not a JSON object")
        return data

    @property
    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                url = self.settings.issuer + "/.well-known/openid-configuration"
                data = self._get_json(url)
                # Discovery §4.3: the document must name the very issuer we were configured with.
                if str(data.get("issuer", "")).rstrip("/") != self.settings.issuer:
                    raise ProviderError(f"{url}: issuer {data.get('issuer')!r} does not match")
                self._metadata = data
            return self._metadata

    @property
    def issuer(self) -> str:
        return str(self.metadata["issuer"])

    def endpoint(self, name: str) -> str:
        value = self.metadata.get(name)
        if not isinstance(value, str):
            raise ProviderError(f"discovery has no {name}")
        return value

    def algorithms(self) -> list[str]:
        offered = self.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        return [a for a in offered if a in SAFE_ALGS]  # never "none", never HMAC

    def keys(self, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
        if cached is not None and not refresh:
            return cached
        data = self._get_json(self.endpoint("jwks_uri"))
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"jwks: {exc}") from exc
        with self._lock:
            self._keys = keys
        return keys

    # --- verification ---------------------------------------------------------------------
    def verify_signature(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of a JWS signed by one of the provider's keys, else TokenError."""
        try:
            compact = jws.extract_compact(token.encode("ascii"))
        except (JoseError, ValueError, UnicodeError) as exc:
            raise TokenError(f"malformed token: {exc}") from exc
        header = dict(compact.protected)
        alg = header.get("alg")
        if alg not in self.algorithms():
            raise TokenError(f"algorithm {alg!r} not accepted")
        kid = header.get("kid")
        keys = self.keys()
        if kid is not None and not any(k.kid == kid for k in keys.keys):
            keys = self.keys(refresh=True)  # rotated: one refetch, then give up
        try:
            key = keys.get_by_kid(kid)
            decoded = jwt.decode(token, key, algorithms=[str(alg)])
        except (JoseError, ValueError) as exc:
            raise TokenError(f"bad signature: {exc}") from exc
        claims = dict(decoded.claims)
        return header, claims

    def _check_common(self, claims: Mapping[str, Any], now: float) -> None:
        leeway = self.settings.leeway
        if claims.get("iss") != self.issuer:
            raise TokenError("wrong iss")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.settings.client_id not in audiences:
            raise TokenError("wrong aud")
        if len(audiences) > 1 and claims.get("azp") is None:
            raise TokenError("several audiences and no azp")
        if "azp" in claims and claims["azp"] != self.settings.client_id:
            raise TokenError("wrong azp")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + leeway < now:
            raise TokenError("expired")
        if not isinstance(iat, int | float) or iat - leeway > now:
            raise TokenError("issued in the future")

    def validate_id_token(self, token: str, *, nonce: str, access_token: str | None,
                          now: float | None = None) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature, iss, aud, azp, exp, iat, nonce, at_hash."""
        now = time.time() if now is None else now
        _, claims = self.verify_signature(token)
        self._check_common(claims, now)
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise TokenError("wrong nonce")
        if not isinstance(claims.get("sub"), str):
            raise TokenError("no sub")
        if access_token is not None and "at_hash" in claims:
            if not hmac.compare_digest(str(claims["at_hash"]), half_hash(access_token)):
                raise TokenError("wrong at_hash")
        return claims

    def validate_logout_token(self, token: str, now: float | None = None) -> dict[str, Any]:
        """Back-Channel Logout 1.0 §2.6: signature, iss, aud, iat/exp, typ, events, sid/sub,
        no nonce. (jti replay is checked by the caller, against its database.)"""
        now = time.time() if now is None else now
        header, claims = self.verify_signature(token)
        typ = header.get("typ")
        if typ is not None and str(typ).lower() not in ("logout+jwt", "application/logout+jwt"):
            raise TokenError("wrong typ")
        self._check_common(claims, now)
        events = claims.get("events")
        if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events \
                or not isinstance(events[BACKCHANNEL_EVENT], dict):
            raise TokenError("no back-channel logout event")
        if "nonce" in claims:  # §2.4: forbidden, so an ID token cannot pass as a logout token
            raise TokenError("logout token carries a nonce")
        sid, sub = claims.get("sid"), claims.get("sub")
        if not (isinstance(sid, str) and sid) and not (isinstance(sub, str) and sub):
            raise TokenError("neither sid nor sub")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise TokenError("no jti")
        return claims

