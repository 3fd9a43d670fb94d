"""The resource side of RFC 8705 certificate-bound access tokens.

A relying party that serves an API checks a bearer token by introspection (RFC 7662). When the
answer carries ``cnf.x5t#S256`` the token was issued bound to a client certificate, and it is
good only on a connection presenting that same certificate (RFC 8705 §3): a stolen token is
useless without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any


def x5t_s256(certificate_der: bytes) -> str:
    """base64url(SHA-256(DER)) without padding (RFC 8705 §3.1)."""
    digest = hashlib.sha256(certificate_der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def certificate_binding_ok(introspection: Mapping[str, Any],
                           certificate_der: bytes | None) -> bool:
    """True when the token may be used on this connection.

    An unbound token (no ``cnf``) is fine with or without a certificate; a bound one needs the
    very certificate it names. A ``cnf`` that is not what RFC 8705 describes fails closed.
    """
    if not introspection.get("active"):
        return False
    cnf = introspection.get("cnf")
    if cnf is None:
        return True
    if not isinstance(cnf, Mapping):
        return False
    expected = cnf.get("x5t#S256")
    if not isinstance(expected, str) or certificate_der is None:
        return False
    return hmac.compare_digest(expected.encode(), x5t_s256(certificate_der).encode())
