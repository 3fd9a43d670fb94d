"""Which certificate authorities we trust for enterprise certificates, and how to ask each of
them about revocation.

The list lives in its own TOML file (``ukey_trust``), one ``[[ca]]`` table per CA certificate:

    [[ca]]
    name = "测试法人一证通根CA"
    certificate = "root-ca.pem"      # relative paths are relative to this file
    anchor = true                     # a trust anchor (root); false: an intermediate
    crl = "crl/root-ca.crl"           # path or http(s) URL of the CRL this CA publishes
    ocsp = ""                         # "", "aia" (the URL in each certificate) or a URL
    revocation_failure = "closed"     # "closed" (refuse) or "open" when status cannot be had
    check_revocation = true           # false only for a CA that publishes nothing

Never the system store: an enterprise certificate is trusted because the operator listed its CA,
not because some browser vendor did (DOMAIN.md).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from idp.config import ConfigError

KEYS = {"name", "certificate", "anchor", "crl", "ocsp", "revocation_failure", "check_revocation"}


@dataclass(frozen=True)
class TrustedCa:
    name: str
    certificate: x509.Certificate
    anchor: bool
    crl: str  # absolute path or http(s) URL; "" = none
    ocsp: str  # "", "aia" or an http(s) URL
    revocation_failure: str  # "closed" | "open"
    check_revocation: bool

    @property
    def fail_open(self) -> bool:
        return self.revocation_failure == "open"


def _location(value: str, base: Path, where: str) -> str:
    if not value:
        return ""
    if urlsplit(value).scheme in {"http", "https"}:
        return value
    if "://" in value:
        raise ConfigError(f"{where}: only a file path or an http(s) URL, got {value!r}")
    return str((base / value).resolve())


def load_trust(path: str | Path) -> list[TrustedCa]:
    """Read and check the trust file; a bad entry stops start-up with its place named."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"ukey_trust: trust file {file} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ukey_trust: {file} is not valid TOML: {exc}") from None
    entries = data.get("ca")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"ukey_trust: {file} lists no [[ca]]")
    cas = [_entry(item, file, i) for i, item in enumerate(entries)]
    if not any(ca.anchor for ca in cas):
        raise ConfigError(f"ukey_trust: {file} has no trust anchor (anchor = true)")
    return cas


def _entry(item: Any, file: Path, index: int) -> TrustedCa:
    where = f"ukey_trust: {file} [[ca]] #{index + 1}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(item) - KEYS
    if unknown:
        raise ConfigError(f"{where} key '{sorted(unknown)[0]}': unknown")
    name, cert_path = item.get("name"), item.get("certificate")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} key 'name': required")
    if not isinstance(cert_path, str) or not cert_path:
        raise ConfigError(f"{where} key 'certificate': required")
    for key in ("crl", "ocsp", "revocation_failure"):
        if not isinstance(item.get(key, ""), str):
            raise ConfigError(f"{where} key '{key}': expected a string")
    for key in ("anchor", "check_revocation"):
        if not isinstance(item.get(key, False), bool):
            raise ConfigError(f"{where} key '{key}': expected true or false")
    try:
        pem = (file.parent / cert_path).read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
    except FileNotFoundError:
        raise ConfigError(f"{where} key 'certificate': {cert_path} not found") from None
    except ValueError:
        raise ConfigError(f"{where} key 'certificate': {cert_path} is not a PEM certificate"
                          ) from None
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        is_ca = constraints.value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ConfigError(f"{where} key 'certificate': {cert_path} is not a CA certificate")
    failure = item.get("revocation_failure", "closed")
    if failure not in {"closed", "open"}:
        raise ConfigError(f"{where} key 'revocation_failure': expected closed or open")
    ocsp = item.get("ocsp", "")
    if ocsp not in {"", "aia"} and urlsplit(ocsp).scheme not in {"http", "https"}:
        raise ConfigError(f"{where} key 'ocsp': expected \"\", \"aia\" or an http(s) URL")
    crl = _location(item.get("crl", ""), file.parent, f"{where} key 'crl'")
    check = item.get("check_revocation", True)
    if check and not crl and not ocsp:
        raise ConfigError(f"{where}: give 'crl' or 'ocsp', or set check_revocation = false")
    return TrustedCa(name=name, certificate=certificate, anchor=bool(item.get("anchor", False)),
                     crl=crl, ocsp=ocsp, revocation_failure=failure, check_revocation=check)
