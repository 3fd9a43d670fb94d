"""A fake provider for relying-party unit tests: discovery + JWKS served from a local thread
server, and tokens signed with keys the test holds (so every bad token can be made)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from relying_parties.common.oidc import BACKCHANNEL_EVENT


@dataclass
class FakeOP:
    keys: list[ECKey] = field(default_factory=list)
    issuer: str = ""
    jwks_hits: int = 0

    def new_key(self) -> ECKey:
        key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex, "use": "sig"})
        self.keys.append(key)
        return key

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks.json",
            "end_session_endpoint": self.issuer + "/logout",
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/.well-known/openid-configuration":
            body: Any = self.discovery()
        elif request.path == "/jwks.json":
            self.jwks_hits += 1
            body = {"keys": [k.as_dict(private=False) for k in self.keys]}
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def sign(self, claims: dict[str, Any], *, key: ECKey | None = None,
             header: dict[str, Any] | None = None) -> str:
        key = key or self.keys[-1]
        head = {"alg": "ES256", "kid": key.kid, **(header or {})}
        return jwt.encode(head, claims, key, algorithms=["ES256"])

    def sign_logout(self, claims: dict[str, Any], *, key: ECKey | None = None) -> str:
        """As the provider signs them: ``typ: logout+jwt`` (Back-Channel Logout §2.4)."""
        return self.sign(claims, key=key, header={"typ": "logout+jwt"})

    def id_claims(self, client_id: str, nonce: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": client_id, "sub": "acct-1", "iat": now,
                  "exp": now + 300, "nonce": nonce, "sid": "sid-1", "amr": ["pwd", "sms", "mfa"]}
        claims.update(extra)
        return claims

    def logout_claims(self, client_id: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": client_id, "iat": now, "exp": now + 120,
                  "jti": uuid.uuid4().hex, "sub": "acct-1", "sid": "sid-1",
                  "events": {BACKCHANNEL_EVENT: {}}}
        claims.update(extra)
        return claims


@contextmanager
def running(op: FakeOP) -> Iterator[FakeOP]:
    server = make_server("127.0.0.1", 0, op, threaded=True)
    op.issuer = f"http://127.0.0.1:{server.server_port}"
    if not op.keys:
        op.new_key()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield op
    finally:
        server.shutdown()
        thread.join(5)
