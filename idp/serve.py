"""``idp serve``: gunicorn in-process, with the settings of ``deploy/gunicorn.conf.py``.

With ``tls_cert``/``tls_key`` set it speaks HTTPS itself and asks every client for an optional
certificate (mutual TLS for UKey logins, no nginx needed). The TLS layer checks only that the
client holds the key of a certificate chaining to a configured CA; the validity period is
deliberately *not* checked there (``X509_V_FLAG_NO_CHECK_TIME``) so that an expired UKey reaches
the login page and is refused with its reason in words, by ``CertificateValidator``, which also
checks revocation, key usage and the USCC. A certificate from an unknown CA fails the handshake
itself: OpenSSL offers no way to accept it and let the application explain.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from gunicorn.app.base import BaseApplication

from idp import create_app
from idp.config import Settings, load_settings

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL ≥ 1.1.0; not named by Python's ssl module


def client_ca_pem(settings: Settings) -> str:
    """The CA certificates a client certificate may chain to: ``tls_client_ca``, else every CA
    of the UKey trust list."""
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, encoding="ascii") as fh:
            return fh.read()
    if not settings.ukey_trust:
        return ""
    from idp.pki.trust import load_trust

    return "".join(ca.certificate.public_bytes(Encoding.PEM).decode("ascii")
                   for ca in load_trust(settings.ukey_trust))


def tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    cadata = client_ca_pem(settings)
    if cadata:
        context.load_verify_locations(cadata=cadata)
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags = ssl.VerifyFlags(context.verify_flags | X509_V_FLAG_NO_CHECK_TIME)
    return context


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app()


def run(bind: str, workers: int, threads: int = 4) -> None:
    """Threaded workers with keep-alive: under TLS a browser's page and its form post share
    one connection, so a UKey login costs one handshake, not one per request."""
    settings = load_settings()
    options: dict[str, Any] = {"bind": bind, "workers": workers, "accesslog": "-",
                               "worker_class": "gthread", "threads": threads,
                               "keepalive": 5, "timeout": 30,
                               # gunicorn ≥ 23 opens ~/.gunicorn/gunicorn.ctl by default: two
                               # servers on one machine would share it. We do not use it.
                               "control_socket_disable": True,
                               # nginx-forwarded client certificates are long header values
                               "limit_request_field_size": 16384}
    if settings.tls_cert:
        tls_context(settings)  # fail here, with the file named, not in every worker
        # gunicorn asks for the context on *every* connection; building one reads the key and
        # the trust list each time (a third of a login's CPU). One per worker process instead.
        contexts: dict[int, ssl.SSLContext] = {}

        def context(_conf: Any, _factory: Any) -> ssl.SSLContext:
            pid = os.getpid()
            if pid not in contexts:
                contexts[pid] = tls_context(settings)
            return contexts[pid]

        options.update(certfile=settings.tls_cert, keyfile=settings.tls_key,
                       ssl_context=context)
    _Server(options).run()
