"""Browser end-to-end fixtures: the provider under ``idp serve`` (embedded TLS, mutual TLS for
UKey logins) and the machine's headless Chromium driven by Playwright for Python.

How a certificate reaches the server: Playwright does not import ``client_certificates`` into
Chromium. It routes the context through a SOCKS proxy inside its Node driver which, for the
configured origin, ends Chromium's TLS itself and opens its own TLS connection to the server,
presenting the certificate (PKCS#12 or PEM). The server therefore sees Node's TLS 1.3 client,
and Chromium sees only the proxy. Neither leg skips verification here:

* Node's leg verifies the server chain against the development root, handed to the driver as
  ``NODE_EXTRA_CA_CERTS`` when it starts (without it Node refuses: "self-signed certificate in
  certificate chain");
* Chromium's own connections (the context without a certificate) trust exactly the server's
  key through ``--ignore-certificate-errors-spki-list``; Chromium has no flag to add a root.

So no context uses ``ignore_https_errors``: a broken server certificate fails these tests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from idp.pki.devca import P12_PASSWORD, DevCA, Issued
from tests.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 10_000  # a step of these tests takes well under a second; fail fast, not at 30 s


def spki_pin(cert_pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what ``--ignore-certificate-errors-spki-list``
    matches, so Chromium trusts this server key and nothing else."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, devca: DevCA) -> Iterator[LiveServer]:
    """``idp serve`` with TLS on https://localhost:PORT, SQLite, the demo enterprise seeded."""
    workdir = tmp_path_factory.mktemp("e2e-live")
    server = LiveServer(workdir=workdir, database_url=f"sqlite:///{workdir / 'idp.sqlite3'}",
                        pki=devca.dir).start()
    try:
        server.idp("init", "--demo", "--clients", str(workdir / "no-clients.toml"))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(devca: DevCA) -> Iterator[Browser]:
    """Headless /usr/bin/chromium (never a downloaded build: ``playwright install`` is not run)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with pytest.MonkeyPatch.context() as env:
        # Read once, when the driver process starts: trust the development root in the proxy.
        env.setenv("NODE_EXTRA_CA_CERTS", str(devca.path("root.pem")))
        playwright = sync_api.sync_playwright().start()
    try:
        pin = spki_pin(devca.server_cert)
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"])
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def new_context(browser: Browser, live: LiveServer) -> Iterator[Callable[..., BrowserContext]]:
    """A fresh browser profile (no cookies); with ``cert``, the UKey's PKCS#12 as a user imports
    it, presented to the provider's origin only."""
    contexts: list[BrowserContext] = []

    def make(cert: Issued | None = None) -> BrowserContext:
        options: dict[str, Any] = {"locale": "zh-CN"}
        if cert is not None:
            assert cert.p12_path is not None
            options["client_certificates"] = [{
                "origin": live.issuer, "pfxPath": str(cert.p12_path),
                "passphrase": P12_PASSWORD}]
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page], Path]:
    """Save the page as ``tests/artifacts/<test name>.png`` for a person to look at."""

    def save(page: Page) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def ukey_audit(live: LiveServer) -> list[dict[str, Any]]:
    """Every ``login.ukey`` event in the server's database, oldest first."""
    from idp.audit import AuditEvent

    table = AuditEvent.__table__
    engine = sa.create_engine(live.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).where(table.c.event == "login.ukey")
                                .order_by(table.c.id)).mappings().all()
    finally:
        engine.dispose()
    return [dict(row) for row in rows]

