"""OpenID Connect Back-Channel Logout 1.0: when an SSO session ends, every relying party that
received tokens in it is told so, server to server, with a signed logout token (§2.4).

Notices are rows (``LogoutDelivery``) written in the same transaction that ends the session, so
none is lost when a relying party is down or the process stops; they are sent at once, in
parallel, each waiting at most ``backchannel_logout_timeout`` seconds, so a relying party that
is down never holds up the user's logout. Unanswered notices are retried with back-off by
``idp logout retry`` (run it from a timer) — each attempt with a fresh token, as logout tokens
are short-lived — and given up after ``backchannel_logout_attempts``. Every outcome is audited.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import requests
import sqlalchemy as sa
from flask import current_app
from joserfc import jwt

from idp import audit
from idp.db import utcnow
from idp.extensions import db
from idp.oidc.keys import KeyRing
from idp.oidc.models import Client, LogoutDelivery, Token
from idp.security import new_token

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_TTL = 120  # seconds a logout token is valid (§2.4: short; each retry signs a new one)
BACKOFF = (60, 300, 900, 3600)  # seconds before attempts 2, 3, 4, 5 …


def schedule(sid: str, sub: str) -> list[LogoutDelivery]:
    """Owe a notice to every relying party with a back-channel logout URI that was issued
    tokens in session ``sid`` (caller commits, with the end of the session)."""
    visited = sa.select(Token.client_id).where(Token.sid == sid).distinct()
    clients = db.session.scalars(sa.select(Client).where(
        Client.client_id.in_(visited), Client.backchannel_logout_uri.is_not(None),
        Client.enabled.is_(True)).order_by(Client.client_id)).all()
    rows = [LogoutDelivery(client_id=c.client_id, sid=sid, sub=sub) for c in clients]
    db.session.add_all(rows)
    db.session.flush()
    return rows


def logout_token(client: Client, sub: str, sid: str | None) -> str:
    """§2.4: iss, aud, iat, exp, jti, events, sub and sid; never a nonce; typ logout+jwt."""
    settings = current_app.config["IDP"]
    ring: KeyRing = current_app.extensions["idp.keyring"]
    alg = client.id_token_signed_response_alg or settings.signing_alg
    kid, key = ring.signing_key(db.session, alg)
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.issuer, "aud": client.client_id, "iat": now, "exp": now + TOKEN_TTL,
        "jti": new_token(16), "sub": sub, "events": {EVENT: {}}}
    if sid:
        claims["sid"] = sid
    return jwt.encode({"alg": alg, "kid": kid, "typ": "logout+jwt"}, claims, key,
                      algorithms=[alg])


@dataclass(frozen=True)
class _Outcome:
    delivery_id: int
    error: str | None  # None: the relying party answered 200


def _post(uri: str, token: str, timeout: float) -> str | None:
    """§2.5: POST logout_token as a form; only 200 counts (§2.8)."""
    try:
        response = requests.post(uri, data={"logout_token": token}, timeout=timeout,
                                 allow_redirects=False,
                                 headers={"Cache-Control": "no-cache"})
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def deliver(rows: list[LogoutDelivery]) -> int:
    """Send the notices in parallel; record each outcome (commits). Returns how many got 200."""
    settings = current_app.config["IDP"]
    jobs: list[tuple[int, str, str]] = []
    for owed in rows:
        client = db.session.get(Client, owed.client_id)
        if client is None or not client.backchannel_logout_uri or not client.enabled:
            owed.status, owed.last_error = "failed", "client gone"
            continue
        jobs.append((owed.id, client.backchannel_logout_uri,
                     logout_token(client, owed.sub, owed.sid)))
    db.session.commit()  # nothing may stay open while the network is waited on
    outcomes: list[_Outcome] = []
    if jobs:
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            errors = pool.map(lambda job: _post(job[1], job[2],
                                                settings.backchannel_logout_timeout), jobs)
            outcomes = [_Outcome(job[0], error) for job, error in zip(jobs, errors, strict=True)]
    delivered = 0
    for outcome in outcomes:
        sent = db.session.get(LogoutDelivery, outcome.delivery_id)
        assert sent is not None
        row = sent
        row.attempts += 1
        if outcome.error is None:
            row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
            delivered += 1
        else:
            row.last_error = outcome.error[:200]
            if row.attempts >= settings.backchannel_logout_attempts:
                row.status = "failed"
            else:
                wait = BACKOFF[min(row.attempts - 1, len(BACKOFF) - 1)]
                row.next_at = utcnow() + timedelta(seconds=wait)
        audit.record("logout.backchannel", "success" if outcome.error is None else "failure",
                     client_id=row.client_id, sid=row.sid, attempt=row.attempts,
                     error=outcome.error, gave_up=row.status == "failed")
    db.session.commit()
    return delivered


def retry_due(limit: int = 100) -> int:
    """Send the notices whose next attempt is due (``idp logout retry``)."""
    rows = list(db.session.scalars(sa.select(LogoutDelivery).where(
        LogoutDelivery.status == "pending", LogoutDelivery.next_at <= utcnow())
        .order_by(LogoutDelivery.next_at).limit(limit)))
    return deliver(rows) if rows else 0
