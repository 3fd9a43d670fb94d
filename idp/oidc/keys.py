"""Signing keys: creation, encryption at rest, the JWKS, and rotation.

One active key per algorithm (ES256, the default, and RS256). Rotation makes the new key sign at
once; the old one stays in the JWKS until every token it signed has expired, so relying parties
can still verify them (they refetch the JWKS when they meet an unknown ``kid``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from joserfc.jwk import ECKey, RSAKey

from idp.db import DbSession, utcnow
from idp.oidc.models import SigningKey

ALGORITHMS = ("ES256", "RS256")
JoseKey = ECKey | RSAKey


def _generate(alg: str) -> JoseKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "RS256":
        return RSAKey.generate_key(2048)
    raise ValueError(f"unsupported algorithm {alg}")


def create_key(session: DbSession, alg: str, passphrase: str) -> SigningKey:
    """Generate a key of ``alg``, encrypt its private half, add it to the session."""
    key = _generate(alg)
    public = dict(key.as_dict(private=False))
    kid = key.thumbprint()
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    row = SigningKey(
        kid=kid,
        alg=alg,
        private_pem=key.as_pem(private=True, password=passphrase).decode("ascii"),
        public_jwk=public,
    )
    session.add(row)
    return row


def ensure_keys(session: DbSession, passphrase: str) -> list[SigningKey]:
    """Create an active key for each algorithm that has none; return those created."""
    created = []
    for alg in ALGORITHMS:
        active = session.scalar(
            sa.select(SigningKey.kid).where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        )
        if active is None:
            created.append(create_key(session, alg, passphrase))
    return created


def rotate_keys(
    session: DbSession, passphrase: str, keep_published: int, algs: tuple[str, ...] = ALGORITHMS
) -> list[SigningKey]:
    """Retire the active keys of ``algs`` and create new ones.

    ``keep_published`` is the longest lifetime of anything signed (ID tokens), in seconds: the
    retired key leaves the JWKS only after that, plus a minute of clock skew.
    """
    now = utcnow()
    for row in session.scalars(
        sa.select(SigningKey).where(SigningKey.alg.in_(algs), SigningKey.retired_at.is_(None))
    ):
        row.retired_at = now
        row.unpublish_at = now + timedelta(seconds=keep_published + 60)
    return [create_key(session, alg, passphrase) for alg in algs]


class KeyRing:
    """Per-process view of the keys. Decrypted keys are cached by ``kid`` (PBKDF2 is slow);
    which key is active is asked of the database each time, so a rotation made by another
    process takes effect at once."""

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase
        self._cache: dict[str, JoseKey] = {}

    def signing_key(self, session: DbSession, alg: str) -> tuple[str, JoseKey]:
        row = session.execute(
            sa.select(SigningKey.kid, SigningKey.private_pem)
            .where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        ).first()
        if row is None:
            raise LookupError(f"no active {alg} signing key: run 'idp init'")
        kid, pem = row
        key = self._cache.get(kid)
        if key is None:
            cls = ECKey if alg == "ES256" else RSAKey
            key = cls.import_key(pem, password=self._passphrase)
            self._cache[kid] = key
        return kid, key

    @staticmethod
    def jwks(session: DbSession) -> dict[str, Any]:
        now = utcnow()
        public = session.scalars(
            sa.select(SigningKey.public_jwk)
            .where(sa.or_(SigningKey.unpublish_at.is_(None), SigningKey.unpublish_at > now))
            .order_by(SigningKey.created_at.desc())
        )
        return {"keys": [dict(jwk) for jwk in public]}
