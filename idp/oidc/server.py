"""The Authlib authorization server and its grants, configured for this provider.

Protocol rules live in these grant classes; the views in ``idp.oidc.views`` only parse the HTTP
request, call the server, and render. What we enforce beyond Authlib's defaults:

* redirect_uri is always required and matched exactly (RFC 9700 §4.1.3);
* PKCE with S256 only, required for public clients (RFC 9700 §2.1.1, RFC 7636);
* codes live ≤ 60 s, are single-use, and a replay revokes what they issued (RFC 9700 §4.2.4);
* refresh tokens rotate, and a replay revokes the family (RFC 9700 §4.14.2);
* client authentication: client_secret_basic, client_secret_post, private_key_jwt (RFC 7523).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint
from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError
from authlib.oidc.rpinitiated import EndSessionEndpoint as BaseEndSessionEndpoint
from flask import Flask, current_app
from flask import request as flask_request
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.datastructures import MultiDict

from idp import audit
from idp.accounts.models import Account, Identity
from idp.auth.session import sso_alive
from idp.auth.sso import end_sso
from idp.extensions import db
from idp.oidc import tokens
from idp.oidc.claims import sign_id_token
from idp.oidc.keys import KeyRing
from idp.oidc.models import AuthorizationCode, Client, Token
from idp.security import new_token, token_hash
from idp.store import get_store

MAX_ASSERTION_LIFETIME = 3600
PERSON_SCOPES = {"openid", "profile", "phone"}
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
SECRET_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ALL_AUTH = [*SECRET_AUTH, "none"]


class IdpRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth2Request over explicit parameters, so that an authorization request saved
    before login can be replayed after it."""

    def __init__(self, method: str, uri: str, values: MultiDict[str, str], headers: Any,
                 form: MultiDict[str, str] | None = None) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._values = values
        self._form = form if form is not None else MultiDict()
        self.payload = _Payload(values)
        self.auth: tokens.AuthContext | None = None
        self.confirmed = False  # RP-initiated logout: the user confirmed on our page

    @property
    def args(self) -> MultiDict[str, str]:
        return self._values

    @property
    def form(self) -> MultiDict[str, str]:
        return self._form


class _Payload:
    def __init__(self, values: MultiDict[str, str]) -> None:
        self.data = values
        self.datalist: dict[str, list[str]] = defaultdict(list)
        for key in values:
            self.datalist[key].extend(values.getlist(key))

    client_id = property(lambda self: self.data.get("client_id"))
    response_type = property(lambda self: self.data.get("response_type"))
    grant_type = property(lambda self: self.data.get("grant_type"))
    redirect_uri = property(lambda self: self.data.get("redirect_uri"))
    scope = property(lambda self: self.data.get("scope"))
    state = property(lambda self: self.data.get("state"))


INVALID = object()


def max_age_of(params: Any) -> int | object | None:
    """``max_age`` as seconds, None when absent, INVALID when not a plain number."""
    raw = params.get("max_age")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        return INVALID
    return int(raw)


class AuthorizationServer(FlaskAuthorizationServer):  # type: ignore[misc]
    def query_client(self, client_id: Any) -> Client | None:
        if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
            return None
        client = db.session.get(Client, client_id)
        return client if client is not None and client.enabled else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        tokens.save_token(token, request)

    def authenticate_client(self, request: Any, methods: list[str],
                            endpoint: str = "token") -> Client:
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except ValueError as exc:  # Authlib's Basic parser on e.g. "Basic \xa0"
            raise InvalidClientError(status_code=401,
                                     description="Malformed Authorization header.") from exc
        return client

    def create_token_response(self, request: Any = None) -> Any:
        """RFC 6749 §3.2: a parameter sent twice is an invalid_request (§5.2)."""
        req = self.create_oauth2_request(request)
        repeated = sorted(k for k, v in req.payload.datalist.items() if len(v) > 1)
        if repeated:
            return self.handle_error_response(
                req, InvalidRequestError(f"Parameter '{repeated[0]}' is repeated."))
        return super().create_token_response(req)

    def public_uri(self) -> str:
        """The request URI as the outside world sees it (the issuer's scheme and host)."""
        issuer: str = current_app.config["IDP"].issuer
        return issuer.rstrip("/") + flask_request.full_path.rstrip("?")

    def get_consent_grant(self, request: Any = None, end_user: Any = None) -> Any:
        try:
            return super().get_consent_grant(request, end_user)
        except ValueError:  # Authlib cannot even quote some response_type values
            raise UnsupportedResponseTypeError("Unsupported 'response_type'.", "") from None

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return IdpRequest(
            flask_request.method, self.public_uri(), flask_request.values,
            flask_request.headers, form=flask_request.form,
        )


def _generate_bearer(grant_type: str, client: Client, user: Account | None = None,
                     scope: str | None = None, expires_in: int | None = None,
                     include_refresh_token: bool = True) -> dict[str, Any]:
    settings = current_app.config["IDP"]
    scope = client.get_allowed_scope(scope)  # never more than the client is registered for
    if user is None:  # a machine token speaks for no person: no OpenID or person scopes
        scope = " ".join(s for s in scope.split() if s not in PERSON_SCOPES)
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": new_token(),
        "expires_in": expires_in or settings.access_token_ttl,
    }
    if scope:
        token["scope"] = scope
    if include_refresh_token and user is not None:
        token["refresh_token"] = new_token()
    return token


class PKCE(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with S256 only; a public client must send a challenge (RFC 9700 §2.1.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if grant.request.client.is_public and not challenge:
            raise InvalidRequestError("Public clients must use PKCE (code_challenge, S256).")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be 'S256'.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if len(request.payload.datalist.get("redirect_uri", [])) > 1:
            raise InvalidRequestError("Multiple 'redirect_uri' in request.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("'redirect_uri' is not registered for this client.")
        return str(redirect_uri)

    def generate_authorization_code(self) -> str:
        return new_token()

    def save_authorization_code(self, code: str, request: IdpRequest) -> None:
        if request.auth is None:  # the view always sets it; a guard, not a branch
            raise InvalidRequestError("No authenticated session.")
        db.session.add(tokens.new_code_row(code, request, request.auth))
        audit.record("authorize.code", account_id=request.auth.account_id,
                     client_id=request.client.client_id)
        db.session.commit()

    def query_authorization_code(self, code: Any, client: Client) -> AuthorizationCode | None:
        if not isinstance(code, str) or len(code) > 512:
            return None
        row = tokens.find_code(code, client)
        if row is None:
            return None
        if not tokens.consume_code(row):
            revoked = tokens.revoke_where(Token.code_id == row.id)
            audit.record("token.code_reuse", audit.FAILURE, account_id=row.account_id,
                         client_id=client.client_id, revoked=revoked)
            db.session.commit()
            return None
        # Not committed here: the consumption commits together with the tokens it yields.
        # A concurrent exchange of the same code waits on the row lock and then finds it used.
        return None if row.is_expired() else row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: the lookup marked the code used, in the transaction that saves the
        tokens (a failed exchange rolls the mark back; a racing one waits and finds it used)."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Account | None:
        account = db.session.get(Account, authorization_code.account_id)
        if account is None or not account.is_active:
            return None
        return account if _identity_usable(authorization_code.identity_id) else None


def _identity_usable(identity_id: int | None) -> bool:
    """A grant made for one identity (S09) lives only while that identity is active."""
    if identity_id is None:
        return True
    identity = db.session.get(Identity, identity_id)
    return identity is not None and identity.status == "active"


class OpenIDCode(oidc_grants.OpenIDCode):  # type: ignore[misc]
    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        """A nonce that already produced a code is a replay (OIDC Core §3.1.2.1)."""
        return db.session.scalar(
            sa.select(AuthorizationCode.id).where(
                AuthorizationCode.client_id == request.payload.client_id,
                AuthorizationCode.nonce == nonce,
            ).limit(1)
        ) is not None

    def validate_openid_authorization_request(self, grant: Any, redirect_uri: str) -> None:
        """OIDC Core §3.1.2.1–2 checks beyond Authlib's; raised here, an error is redirected to
        the (already validated) redirect URI with state and iss."""
        data = grant.request.payload.data
        if "request" in data:  # §6: an OP that does not support them MUST refuse them
            raise RequestNotSupportedError()
        if "request_uri" in data:
            raise RequestURINotSupportedError()
        nonce = data.get("nonce")
        if nonce is not None and (len(nonce) > 255 or not nonce.isprintable()):
            raise InvalidRequestError("Invalid 'nonce'.")
        if max_age_of(data) is INVALID:
            raise InvalidRequestError("Invalid 'max_age'.")
        super().validate_openid_authorization_request(grant, redirect_uri)

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        code: AuthorizationCode = request.authorization_code
        ctx = tokens.AuthContext(
            account_id=code.account_id, auth_time=code.auth_time, acr=code.acr,
            amr=list(code.amr), sid=code.sid, identity_id=code.identity_id,
        )
        return sign_id_token(request.client, request.user, ctx, token.get("scope", ""),
                             nonce=code.nonce, access_token=token.get("access_token"))


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: Any) -> Token | None:
        if not isinstance(refresh_token, str) or len(refresh_token) > 512:
            return None
        row = tokens.find_refresh_token(refresh_token, self.request.client)
        if row is None:
            return None
        if row.sid and not sso_alive(get_store(), row.sid):
            # The login session it came from expired or ended: invalid_grant tells the relying
            # party to end its own session and send the user to log in again (D07).
            return None
        # A wrong scope must not spend the token: check it before the one-time exchange.
        self._validate_token_scope(row)
        return row if tokens.consume_refresh_token(row) else None

    def authenticate_user(self, refresh_token: Token) -> Account:
        account = (db.session.get(Account, refresh_token.account_id)
                   if refresh_token.account_id is not None else None)
        if account is None or not account.is_active:
            # invalid_grant tells the client to log the user in again (RFC 6749 §5.2)
            raise InvalidGrantError("The account of this refresh token is not active.")
        if not _identity_usable(refresh_token.identity_id):
            # The operator was disabled or deleted (S15): the role it chose is gone.
            raise InvalidGrantError("The identity of this refresh token is not active.")
        return account

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Nothing to do: the lookup marked it used, in the transaction of the new tokens."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AUTH


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9) with a one-time ``jti``."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        issuer: str = current_app.config["IDP"].issuer
        return [issuer, issuer.rstrip("/") + "/token"]

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or len(jti) > 255:
            return False
        lifetime = int(claims.get("exp", 0)) - int(time.time())
        if lifetime > MAX_ASSERTION_LIFETIME:  # RFC 7523 §3: a server may refuse long ones
            raise InvalidClientError(description="The client assertion lives too long.")
        ttl = max(lifetime, 0) + self.leeway + 1
        return get_store().add(f"jti:{claims['sub']}:{token_hash(jti)}", "1", ttl)

    def authenticate_client(self, client: Client) -> Client:
        """RFC 7521 §4.2: a client_id sent beside the assertion must name the same client."""
        named = flask_request.form.get("client_id")
        if named is not None and named != client.client_id:
            raise InvalidClientError(description="'client_id' does not match the assertion.")
        authenticated: Client = super().authenticate_client(client)
        return authenticated

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if not client.jwks:
            raise InvalidClientError(description="The client has no registered keys.")
        try:
            return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidClientError(description="The client's keys are unusable.") from exc


class _TokenLookup:
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string: Any, token_type_hint: str | None) -> Token | None:
        if not isinstance(token_string, str) or len(token_string) > 512:
            return None
        row, kind = tokens.find_token(token_string, token_type_hint)
        if row is not None:
            row._presented_as = kind  # type: ignore[attr-defined]
        return row


class RevocationEndpoint(_TokenLookup, BaseRevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking either token ends the grant: its whole refresh family."""

    CLIENT_AUTH_METHODS = ALL_AUTH

    def revoke_token(self, token: Token, request: Any) -> None:
        count = tokens.revoke_family(token)
        audit.record("token.revoked", account_id=token.account_id, client_id=token.client_id,
                     family=token.family_id, revoked=count)
        db.session.commit()


class IntrospectionEndpoint(_TokenLookup, BaseIntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for the client the token was issued to."""

    CLIENT_AUTH_METHODS = SECRET_AUTH

    def check_permission(self, token: Token, client: Client, request: Any) -> bool:
        return token.client_id == client.client_id

    def create_introspection_payload(self, token: Token | None) -> dict[str, Any]:
        if token is None or token.is_revoked():
            return {"active": False}
        if token.account_id is not None:
            account = db.session.get(Account, token.account_id)
            if account is None or not account.is_active:
                return {"active": False}
        if getattr(token, "_presented_as", None) == "refresh_token":
            if not token.refresh_usable() or token.refresh_expires_at is None:
                return {"active": False}
            exp = int(token.refresh_expires_at.timestamp())
            token_type = "refresh_token"
        else:
            if token.is_expired():
                return {"active": False}
            exp = int(token.expires_at.timestamp())
            token_type = "Bearer"
        payload: dict[str, Any] = {
            "active": True,
            "iss": current_app.config["IDP"].issuer,
            "client_id": token.client_id,
            "aud": token.client_id,
            "scope": token.scope,
            "token_type": token_type,
            "exp": exp,
            "iat": int(token.issued_at.timestamp()),
        }
        if token.account_id:
            payload["sub"] = token.account_id
        if token.auth_time:
            payload["auth_time"] = token.auth_time
        if token.acr:
            payload["acr"] = token.acr
        if token.cnf_x5t:
            payload["cnf"] = {"x5t#S256": token.cnf_x5t}  # RFC 8705 §3.2
        return payload



class EndSessionEndpoint(BaseEndSessionEndpoint):  # type: ignore[misc]
    """OIDC RP-Initiated Logout 1.0; the view decides about confirmation."""

    def get_server_jwks(self) -> KeySet:
        return KeySet.import_key_set(KeyRing.jwks(db.session))  # type: ignore[arg-type]

    def is_post_logout_redirect_uri_legitimate(self, request: Any, uri: str, client: Any,
                                               logout_hint: str | None) -> bool:
        # Without an id_token_hint the user confirms on our page first (a CSRF-protected POST);
        # the view passes ``confirmed=1`` only then.
        return bool(request.confirmed)

    def end_session(self, end_session_request: Any) -> None:
        end_sso(reason="rp_logout", client_id=getattr(end_session_request.client, "client_id",
                                                      None))


def get_server() -> AuthorizationServer:
    server: AuthorizationServer = current_app.extensions["idp.oauth"]
    return server


def init_app(app: Flask) -> None:
    """One server per app: tests build several apps in one process."""
    server = AuthorizationServer()
    server.init_app(app)
    server.register_token_generator("default", _generate_bearer)
    server.register_grant(AuthorizationCodeGrant, [OpenIDCode(require_nonce=False), PKCE()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_client_auth_method(
        "private_key_jwt",
        PrivateKeyJWT(leeway=app.config["IDP"].private_key_jwt_leeway),
    )
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(EndSessionEndpoint)
    app.extensions["idp.oauth"] = server
    app.extensions["idp.keyring"] = KeyRing(app.config["IDP"].key_passphrase)
