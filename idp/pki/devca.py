"""The development PKI under ``certs/dev/``: certificates that look like 法人一证通's.

    测试法人一证通根CA (root, RSA) ─┬─ 测试法人一证通CA (issuing, RSA) ── enterprises
                                   └─ localhost (TLS server)
    测试法人一证通SM2根CA (root, SM2) ── SM2 enterprise certificates
    不受信任的测试CA (a root nobody configured) ── "untrusted" enterprise certificates

Nothing here is for production: keys are written unencrypted so that a developer can import
them. ``trust.toml`` is written beside them for ``ukey_trust``; ``ca-bundle.pem`` is what nginx
and the embedded TLS server ask clients for. Every certificate issued is listed in
``index.json``; ``revoke`` marks one and re-publishes the CRL of its CA.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from idp.pki.certs import OID_GMT0015_ORG_CODE, OID_SHECA_USCC, OID_SUBJECT_UNIQUE_ID

ROOT_NAME = "测试法人一证通根CA"
ISSUING_NAME = "测试法人一证通CA"
SM2_ROOT_NAME = "测试法人一证通SM2根CA"
UNTRUSTED_NAME = "不受信任的测试CA"
P12_PASSWORD = "demo"  # printed by `make run`; development only

DEMO_USCC = "91310115MA1FL0D34W"
DEMO_NAME = "演示物业服务有限公司"  # the demo organisation of `idp init --demo`
# Fixed identities for the sample certificates (all pass GB 32100).
SAMPLES: dict[str, tuple[str, str]] = {
    "demo": (DEMO_USCC, DEMO_NAME),
    "unregistered": ("91440101MA5CJQ4N59", "广州未注册物业服务有限公司"),
    "expired": (DEMO_USCC, DEMO_NAME),
    "not-yet-valid": (DEMO_USCC, DEMO_NAME),
    "revoked": (DEMO_USCC, DEMO_NAME),
    "untrusted": (DEMO_USCC, DEMO_NAME),
    "sm2": ("91350200MA2YJ1XR9G", "厦门国密测试物业有限公司"),
}

OID_OPTIONS = {"112570": OID_SHECA_USCC, "10260": OID_GMT0015_ORG_CODE,
               "8888": OID_SUBJECT_UNIQUE_ID, "serial": "serialNumber"}

PrivateKey = Any  # rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | sm2.Sm2PrivateKey


@dataclass(frozen=True)
class Issued:
    serial: int
    cert: x509.Certificate
    pem_path: Path
    key_path: Path
    p12_path: Path | None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _name(cn: str, org: str | None = None, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
             x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "上海市")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if serial:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def identifier_extension(oid: str, value: str) -> x509.UnrecognizedExtension:
    """The USCC as SHECA writes it: a DER UTF8String (PrintableString for GM/T 0015)."""
    encoded = (core.PrintableString(value) if oid == OID_GMT0015_ORG_CODE
               else core.UTF8String(value)).dump()
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), encoded)


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if secret:
        os.chmod(path, 0o600)


def _key_pem(key: PrivateKey) -> bytes:
    from idp.pki import sm2

    if isinstance(key, sm2.Sm2PrivateKey):
        return key.to_pem()
    pem: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return pem


def _load_key(pem: bytes) -> PrivateKey:
    from idp.pki import sm2

    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return sm2.Sm2PrivateKey.from_pem(pem)


class DevCA:
    """The development CAs in ``directory`` (``certs/dev``)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    # --- files -------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    @property
    def trust_file(self) -> Path:
        return self.path("trust.toml")

    @property
    def bundle_file(self) -> Path:
        return self.path("ca-bundle.pem")

    @property
    def server_cert(self) -> Path:
        return self.path("server.pem")

    @property
    def server_key(self) -> Path:
        return self.path("server.key.pem")

    def exists(self) -> bool:
        return self.trust_file.is_file() and self.path("index.json").is_file()

    def sample(self, name: str) -> Issued:
        """One of the sample certificates made by ``init`` (``SAMPLES``)."""
        return self._issued(self._index()["samples"][name])

    # --- set-up --------------------------------------------------------------------------------
    def init(self) -> list[str]:
        """Create the whole PKI unless it exists; return what was created.

        Built in a sibling directory and renamed into place, so that an interrupted run leaves
        either nothing or everything (a half-made CA would be worse than none)."""
        if self.exists():
            return []
        if self.dir.exists() and any(self.dir.iterdir()):
            # Never delete or mix into what we did not make (an interrupted build of ours
            # happens in the sibling directory below, never here).
            raise FileExistsError(f"{self.dir} exists and is not a development CA: "
                                  "give a new or empty directory")
        building = self.dir.with_name(f".{self.dir.name}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        try:
            made = DevCA(building)._build()
            if self.dir.exists():
                self.dir.rmdir()  # empty, checked above
            building.rename(self.dir)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return made

    def _build(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write(self.path(".gitignore"), b"*\n")
        self._save_index({"next": 0x1000, "issued": {}, "samples": {}})
        now = _now()
        made = []
        for ca_id, cn, kind, parent in (
            ("root", ROOT_NAME, "rsa", None),
            ("issuing", ISSUING_NAME, "rsa", "root"),
            ("sm2-root", SM2_ROOT_NAME, "sm2", None),
            ("untrusted", UNTRUSTED_NAME, "ec", None),
        ):
            self._make_ca(ca_id, cn, kind, parent, now)
            made.append(f"CA {cn}")
        self._make_server_cert(now)
        made.append("TLS server certificate for localhost")
        for ca_id in ("root", "issuing", "sm2-root", "untrusted"):
            self.publish_crl(ca_id)
        samples: dict[str, Issued] = {
            "demo": self.issue(*SAMPLES["demo"], filename="demo"),
            "unregistered": self.issue(*SAMPLES["unregistered"], filename="unregistered"),
            "expired": self.issue(*SAMPLES["expired"], filename="expired",
                                  not_before=now - timedelta(days=400), days=365),
            "not-yet-valid": self.issue(*SAMPLES["not-yet-valid"], filename="not-yet-valid",
                                        not_before=now + timedelta(days=30)),
            "revoked": self.issue(*SAMPLES["revoked"], filename="revoked"),
            "untrusted": self.issue(*SAMPLES["untrusted"], filename="untrusted", ca="untrusted"),
            "sm2": self.issue(*SAMPLES["sm2"], filename="sm2", key="sm2", ca="sm2-root"),
        }
        self.revoke(samples["revoked"].serial)
        index = self._index()
        index["samples"] = {k: v.serial_hex for k, v in samples.items()}
        self._save_index(index)
        self._write_trust()
        bundle = b"".join(self.path(f"{ca}.pem").read_bytes() for ca in ("root", "issuing"))
        _write(self.bundle_file, bundle)
        made.append("sample enterprise certificates in enterprises/")
        return made

    def _make_ca(self, ca_id: str, cn: str, kind: str, parent: str | None,
                 now: datetime) -> None:
        key = self._new_key(kind)
        subject = _name(cn, org="测试数字证书认证中心")
        issuer_cert, issuer_key = (None, key) if parent is None else self._ca(parent)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .serial_number(self._next_serial())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650 if parent is None else 1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None
                                                 else 0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
        )
        cert = self._sign(builder, key, issuer_key, issuer_cert)
        _write(self.path(f"{ca_id}.pem"), cert.public_bytes(serialization.Encoding.PEM))
        _write(self.path(f"{ca_id}.key.pem"), _key_pem(key), secret=True)

    def _make_server_cert(self, now: datetime) -> None:
        ca_cert, ca_key = self._ca("root")
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost", org="统一认证登录平台（开发）"))
            .issuer_name(ca_cert.subject)
            .serial_number(self._next_serial())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
        )
        cert = self._sign(builder, key, ca_key, ca_cert)
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM)
        _write(self.server_cert, chain)
        _write(self.server_key, _key_pem(key), secret=True)

    def _write_trust(self) -> None:
        text = (
            "# Written by `idp certs init`: the development CAs. Production lists its own.\n"
            f'[[ca]]\nname = "{ROOT_NAME}"\ncertificate = "root.pem"\nanchor = true\n'
            'crl = "crl/root.crl"\n\n'
            f'[[ca]]\nname = "{ISSUING_NAME}"\ncertificate = "issuing.pem"\n'
            'crl = "crl/issuing.crl"\nrevocation_failure = "closed"\n\n'
            f'[[ca]]\nname = "{SM2_ROOT_NAME}"\ncertificate = "sm2-root.pem"\nanchor = true\n'
            'crl = "crl/sm2-root.crl"\n'
        )
        _write(self.trust_file, text.encode("utf-8"))

    # --- issuing -------------------------------------------------------------------------------
    def issue(self, uscc: str, name: str, *, key: str = "rsa", days: int = 365,
              oid: str = "112570", ca: str = "issuing", not_before: datetime | None = None,
              filename: str | None = None, usage: str = "client") -> Issued:
        """An enterprise certificate: name in O and CN, the USCC where ``oid`` says.

        ``usage`` "client" is what a UKey carries; "server" (EKU serverAuth only) and "ca"
        (a CA certificate) exist for the tests that must see them refused."""
        if oid not in OID_OPTIONS:
            raise ValueError(f"--oid must be one of {', '.join(OID_OPTIONS)}")
        ca_cert, ca_key = self._ca(ca)
        subject_key = self._new_key(key)
        start = not_before or _now() - timedelta(minutes=10)
        serial = self._next_serial()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name, org=name, serial=uscc if oid == "serial" else None))
            .issuer_name(ca_cert.subject)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=usage == "ca", path_length=None),
                           critical=True)
        )
        if usage == "ca":
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True,
                key_encipherment=key == "rsa", data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True).add_extension(x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH] if usage == "server"
                    else [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                    critical=False)
        if oid != "serial":
            builder = builder.add_extension(identifier_extension(OID_OPTIONS[oid], uscc),
                                            critical=False)
        cert = self._sign(builder, subject_key, ca_key, ca_cert)
        stem = filename or f"{uscc}-{format(serial, 'x')}"
        pem_path = self.path("enterprises", f"{stem}.pem")
        key_path = self.path("enterprises", f"{stem}.key.pem")
        _write(pem_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, _key_pem(subject_key), secret=True)
        p12_path = None
        if key != "sm2":  # PKCS#12 of an SM2 key is beyond what cryptography writes
            p12_path = self.path("enterprises", f"{stem}.p12")
            _write(p12_path, pkcs12.serialize_key_and_certificates(
                name.encode("utf-8"), subject_key, cert, [ca_cert],
                serialization.BestAvailableEncryption(P12_PASSWORD.encode())), secret=True)
        index = self._index()
        index["issued"][format(serial, "x")] = {
            "uscc": uscc, "name": name, "ca": ca, "key": key,
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "pem": str(pem_path.relative_to(self.dir)),
            "key_pem": str(key_path.relative_to(self.dir)),
            "p12": str(p12_path.relative_to(self.dir)) if p12_path else None,
            "revoked_at": None,
        }
        self._save_index(index)
        return Issued(serial, cert, pem_path, key_path, p12_path)

    def revoke(self, serial: int | str) -> Issued:
        """Mark a certificate revoked and re-publish its CA's CRL."""
        key = serial if isinstance(serial, str) else format(serial, "x")
        key = key.lower().removeprefix("0x")
        index = self._index()
        entry = index["issued"].get(key)
        if entry is None:
            raise KeyError(f"no certificate with serial {key}")
        if entry["revoked_at"] is None:
            entry["revoked_at"] = _now().isoformat()
            self._save_index(index)
        self.publish_crl(entry["ca"])
        return self._issued(key)

    def publish_crl(self, ca_id: str, days: int = 7) -> Path:
        """Write ``crl/<ca>.crl`` (DER) listing every revoked certificate of that CA."""
        ca_cert, ca_key = self._ca(ca_id)
        now = _now()
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(ca_cert.subject)
                   .last_update(now - timedelta(minutes=1))
                   .next_update(now + timedelta(days=days)))
        for serial_hex, entry in self._index()["issued"].items():
            if entry["ca"] == ca_id and entry["revoked_at"]:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(serial_hex, 16))
                    .revocation_date(datetime.fromisoformat(entry["revoked_at"]))
                    .build())
        der = self._sign_crl(builder, ca_key)
        path = self.path("crl", f"{ca_id}.crl")
        _write(path, der)
        return path

    # --- internals -----------------------------------------------------------------------------
    @staticmethod
    def _new_key(kind: str) -> PrivateKey:
        if kind == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "ec":
            return ec.generate_private_key(ec.SECP256R1())
        if kind == "sm2":
            from idp.pki import sm2

            return sm2.Sm2PrivateKey.generate()
        raise ValueError("--key must be rsa, ec or sm2")

    def _ca(self, ca_id: str) -> tuple[x509.Certificate, PrivateKey]:
        cert = x509.load_pem_x509_certificate(self.path(f"{ca_id}.pem").read_bytes())
        return cert, _load_key(self.path(f"{ca_id}.key.pem").read_bytes())

    @staticmethod
    def _sign(builder: x509.CertificateBuilder, subject_key: PrivateKey, issuer_key: PrivateKey,
              issuer_cert: x509.Certificate | None) -> x509.Certificate:
        """Sign with ``cryptography``; SM2 keys go through a placeholder key and are re-signed."""
        from idp.pki import sm2

        sm2_subject = isinstance(subject_key, sm2.Sm2PrivateKey)
        sm2_issuer = isinstance(issuer_key, sm2.Sm2PrivateKey)
        placeholder = ec.generate_private_key(ec.SECP256R1()) if (sm2_subject or sm2_issuer) \
            else None
        public = placeholder.public_key() if sm2_subject and placeholder else \
            subject_key.public_key()
        builder = builder.public_key(public)
        # Placeholders where SM2 keys are involved: sm2.resign_certificate recomputes both.
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public),
                                        critical=False)
        if issuer_cert is not None:
            aki_key: Any = placeholder.public_key() if sm2_issuer and placeholder \
                else issuer_cert.public_key()
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key), critical=False)
        signer: Any = placeholder if sm2_issuer else issuer_key
        cert = builder.sign(signer, hashes.SHA256())
        if not (sm2_subject or sm2_issuer):
            return cert
        der = sm2.resign_certificate(
            cert.public_bytes(serialization.Encoding.DER), issuer_key,
            subject_key.public_key() if sm2_subject else None)
        return x509.load_der_x509_certificate(der)

    @staticmethod
    def _sign_crl(builder: x509.CertificateRevocationListBuilder, key: PrivateKey) -> bytes:
        from idp.pki import sm2

        if isinstance(key, sm2.Sm2PrivateKey):
            placeholder = ec.generate_private_key(ec.SECP256R1())
            crl = builder.sign(placeholder, hashes.SHA256())
            return sm2.resign_crl(crl.public_bytes(serialization.Encoding.DER), key)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _next_serial(self) -> int:
        index = self._index()
        serial = int(index["next"])
        index["next"] = serial + 1
        self._save_index(index)
        # Real CAs use ≥ 64 random bits; ours are short and sequential so people can type them.
        return serial

    def _index(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.path("index.json").read_text(encoding="utf-8"))
        return data

    def _save_index(self, index: dict[str, Any]) -> None:
        tmp = self.path("index.json.tmp")
        _write(tmp, json.dumps(index, ensure_ascii=False, indent=1).encode("utf-8"))
        tmp.replace(self.path("index.json"))

    def _issued(self, serial_hex: str) -> Issued:
        entry = self._index()["issued"][serial_hex]
        pem_path = self.dir / entry["pem"]
        cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
        return Issued(int(serial_hex, 16), cert, pem_path, self.dir / entry["key_pem"],
                      self.dir / entry["p12"] if entry["p12"] else None)
