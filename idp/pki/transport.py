"""How a client certificate reaches the login code: over our own TLS, or from our own proxy.

``ClientCertificates`` is the outermost WSGI middleware, so it sees the real TCP peer before
``TrustedProxies`` rewrites ``REMOTE_ADDR``. It leaves the certificate's DER in
``environ[ENV_CERT]`` (or None) and removes every forwarded-certificate header from the environ, so
no later code can read one by mistake. The certificate is *carried* here, not judged:
``CertificateValidator`` judges it, whatever the transport.

1. Embedded TLS (``idp serve`` with ``tls_cert``): gunicorn puts the socket in
   ``environ["gunicorn.socket"]``; an ``ssl.SSLSocket`` gives the peer certificate it received.
2. A reverse proxy whose address is in ``trusted_proxies``: nginx's ``$ssl_client_escaped_cert``
   (URL-encoded PEM) in ``client_cert_header``, or RFC 9440 ``Client-Cert`` (``:base64 DER:``).
   From any other address these headers are dropped unread.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
from typing import Any
from urllib.parse import unquote_to_bytes

from idp.pki.certs import MAX_CERT_BYTES, x5t_s256

log = logging.getLogger(__name__)

ENV_CERT = "idp.client_cert"  # DER bytes of the presented certificate, or None
ENV_CERT_SOURCE = "idp.client_cert_source"  # "tls" | "proxy" | None
ENV_CERT_MALFORMED = "idp.client_cert_malformed"  # a source carried something unreadable

RFC9440_HEADERS = ("HTTP_CLIENT_CERT", "HTTP_CLIENT_CERT_CHAIN")
_EMPTY = {"", "-", "NONE", "(null)"}


def presented_x5t(environ: dict[str, Any]) -> str | None:
    """x5t#S256 of the certificate this request's connection presented (after the middleware
    ran), or None. What RFC 8705 binding and the UKey session check compare against."""
    der = environ.get(ENV_CERT)
    return x5t_s256(der) if der else None


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def decode_forwarded_pem(value: str) -> bytes | None:
    """nginx ``$ssl_client_escaped_cert``: URL-encoded PEM → DER; None when unreadable."""
    raw = unquote_to_bytes(value)
    if len(raw) > MAX_CERT_BYTES * 2:
        return None
    text = raw.strip()
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    if not (text.startswith(begin) and text.endswith(end)):
        return None
    body = b"".join(text[len(begin):-len(end)].split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return der or None


def decode_rfc9440(value: str) -> bytes | None:
    """RFC 9440 §2.2: an RFC 8941 Byte Sequence, ``:`` base64 DER ``:``; None when malformed."""
    text = value.strip()
    if len(text) < 3 or len(text) > MAX_CERT_BYTES * 2 or text[0] != ":" or text[-1] != ":":
        return None
    try:
        der = base64.b64decode(text[1:-1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return der or None


class ClientCertificates:
    def __init__(self, wsgi_app: Any, proxies: tuple[str, ...], header: str) -> None:
        self.wsgi_app = wsgi_app
        self.proxies = frozenset(proxies)
        self.header_key = _environ_key(header)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        forwarded = environ.pop(self.header_key, None)
        rfc9440 = environ.pop(RFC9440_HEADERS[0], None)
        environ.pop(RFC9440_HEADERS[1], None)
        environ.pop("HTTP_X_SSL_CLIENT_VERIFY", None)  # we judge the certificate ourselves
        der: bytes | None = None
        source: str | None = None
        malformed = False
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, ssl.SSLSocket):
            try:
                der = sock.getpeercert(binary_form=True)
            except (ValueError, OSError):
                der = None
            source = "tls" if der else None
        if der is None and environ.get("REMOTE_ADDR") in self.proxies:
            if rfc9440 is not None:
                der = decode_rfc9440(rfc9440)
                malformed = der is None
            elif forwarded is not None and forwarded.strip() not in _EMPTY:
                der = decode_forwarded_pem(forwarded)
                malformed = der is None
            source = "proxy" if der else None
        elif forwarded or rfc9440:
            log.warning("ignored a client certificate header from untrusted address %s",
                        environ.get("REMOTE_ADDR"))
        environ[ENV_CERT] = der
        environ[ENV_CERT_SOURCE] = source
        environ[ENV_CERT_MALFORMED] = malformed
        return self.wsgi_app(environ, start_response)
