"""Small primitives for secrets: random tokens, their hashes, constant-time comparison.

High-entropy secrets that we generate (access and refresh tokens, authorization codes, client
secrets of 256 bits) are stored as SHA-256: nobody can brute-force 2^256, so a slow hash would
only cost the token endpoint its speed. Low-entropy secrets get slow or keyed hashes: passwords
argon2id (``idp.auth.password``), six-digit SMS codes HMAC with the server secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SHA256_PREFIX = "sha256$"
MIN_CLIENT_SECRET_LENGTH = 32


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random string carrying ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """Lookup key for a stored token: the SHA-256 hex digest of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_client_secret(secret: str) -> str:
    if len(secret) < MIN_CLIENT_SECRET_LENGTH:
        raise ValueError(f"client secrets have at least {MIN_CLIENT_SECRET_LENGTH} characters")
    return SHA256_PREFIX + token_hash(secret)


def check_client_secret(secret: str, stored: str | None) -> bool:
    """Constant-time check of a presented client secret against its stored hash."""
    if not stored or not stored.startswith(SHA256_PREFIX):
        return False
    return hmac.compare_digest(SHA256_PREFIX + token_hash(secret), stored)


def keyed_hash(key: str, *parts: str) -> str:
    """HMAC-SHA256 of the parts joined by NUL: for low-entropy values such as SMS codes."""
    message = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                               b.encode("utf-8", "surrogatepass"))


# --- secrets we must read back (legacy OTP seeds) ---------------------------------------------

SEALED_PREFIX = "aesgcm$"


def _seal_key(passphrase: str, purpose: str) -> bytes:
    return hashlib.sha256(b"idp-seal\0" + purpose.encode() + b"\0" + passphrase.encode()).digest()


def seal(passphrase: str, purpose: str, plaintext: str) -> str:
    """AES-256-GCM with a key derived from ``passphrase`` (the signing keys' passphrase) and
    ``purpose``, which is also the associated data: a value sealed for one use cannot be
    unsealed for another."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    box = AESGCM(_seal_key(passphrase, purpose)).encrypt(nonce, plaintext.encode(),
                                                         purpose.encode())
    return SEALED_PREFIX + (nonce + box).hex()


def unseal(passphrase: str, purpose: str, sealed: str) -> str:
    """The plaintext of :func:`seal`; ``ValueError`` when it was sealed otherwise or altered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not sealed.startswith(SEALED_PREFIX):
        raise ValueError("not a sealed value")
    raw = bytes.fromhex(sealed[len(SEALED_PREFIX):])
    try:
        return AESGCM(_seal_key(passphrase, purpose)).decrypt(
            raw[:12], raw[12:], purpose.encode()).decode()
    except InvalidTag as exc:
        raise ValueError("sealed value does not open with this key") from exc
