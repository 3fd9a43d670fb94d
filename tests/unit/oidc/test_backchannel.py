"""OpenID Connect Back-Channel Logout 1.0 on the provider (D07): when the SSO session ends,
every relying party that got tokens in it receives a signed logout token; one that is down
does not hold up the logout, and its notice is retried and finally given up, all audited."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from idp.audit import AuditEvent
from idp.db import utcnow
from idp.extensions import db
from idp.oidc import backchannel
from idp.oidc.keys import KeyRing
from idp.oidc.models import Client, LogoutDelivery
from tests.factories import make_account, make_client
from tests.services import free_port
from tests.unit.oidc.test_logout import POST_LOGOUT, id_token_for


class Receiver:
    """A relying party's back-channel logout endpoint on loopback: records what it got and
    answers ``status`` (or nothing at all while ``stopped``)."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[str]]] = []
        self.status = 200
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.received.append(parse_qs(self.rfile.read(length).decode()))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/backchannel-logout"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def log_in_and_out(client: FlaskClient, app: Flask, secret: str) -> str:
    """Code flow for rp1, then RP-initiated logout with its ID token; the ID token's sid."""
    hint = id_token_for(client, app, secret)
    response = client.get("/logout", query_string={"id_token_hint": hint,
                                                   "post_logout_redirect_uri": POST_LOGOUT})
    assert response.status_code == 302
    return str(jwt.decode(hint, keys()).claims["sid"])


def keys() -> KeySet:
    return KeySet.import_key_set(KeyRing.jwks(db.session))


def test_d07_logout_sends_each_visited_rp_a_signed_logout_token(
        app: Flask, client: FlaskClient, receiver: Receiver) -> None:
    """D07 / Back-Channel Logout §2.4–2.5: POST logout_token; typ logout+jwt; iss, aud, iat,
    exp, jti, sub, sid (the ID token's), the event, and no nonce; signed with our JWKS key."""
    account = make_account()
    _, secret = make_client(backchannel_logout_uri=receiver.uri)
    make_client(client_id="idle", backchannel_logout_uri=receiver.uri)  # never visited
    assert secret is not None
    sid = log_in_and_out(client, app, secret)
    assert len(receiver.received) == 1
    token = receiver.received[0]["logout_token"][0]
    header = jws.extract_compact(token.encode()).protected
    assert header["typ"] == "logout+jwt"
    claims = jwt.decode(token, keys()).claims
    assert claims["iss"] == "http://localhost" and claims["aud"] == "rp1"
    assert claims["sub"] == account.id and claims["sid"] == sid
    assert claims["events"] == {backchannel.EVENT: {}} and "nonce" not in claims
    assert claims["exp"] - claims["iat"] == backchannel.TOKEN_TTL and claims["jti"]
    delivery = db.session.scalar(sa.select(LogoutDelivery))
    assert delivery is not None and delivery.status == "delivered" and delivery.attempts == 1
    event = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.event == "logout.backchannel"))
    assert event is not None and event.result == "success" and event.client_id == "rp1"


def test_d07_an_rp_that_is_down_does_not_hold_up_logout_and_is_retried(
        app: Flask, client: FlaskClient) -> None:
    """Nobody listens: logout completes at once; the notice stays pending with the error; a
    retry once the RP is back delivers it (a fresh token: logout tokens are short-lived)."""
    port = free_port()
    make_account()
    _, secret = make_client(
        backchannel_logout_uri=f"http://127.0.0.1:{port}/auth/backchannel-logout")
    assert secret is not None
    started = time.monotonic()
    log_in_and_out(client, app, secret)
    assert time.monotonic() - started < 10
    delivery = db.session.scalar(sa.select(LogoutDelivery))
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error and delivery.next_at > utcnow()
    assert db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.event == "logout.backchannel", AuditEvent.result == "failure"))
    assert backchannel.retry_due() == 0  # not due yet
    back = Receiver()  # the RP is back (on another port: its URI is updated)
    try:
        delivery.next_at = utcnow() - timedelta(seconds=1)
        rp1 = db.session.get(Client, "rp1")
        assert rp1 is not None
        rp1.backchannel_logout_uri = back.uri
        db.session.commit()
        assert backchannel.retry_due() == 1
        assert len(back.received) == 1
    finally:
        back.close()
    db.session.expire_all()
    delivery = db.session.scalar(sa.select(LogoutDelivery))
    assert delivery is not None and (delivery.status, delivery.attempts) == ("delivered", 2)


def test_d07_a_notice_is_given_up_after_the_configured_attempts(
        app: Flask, client: FlaskClient, receiver: Receiver) -> None:
    receiver.status = 500
    make_account()
    _, secret = make_client(backchannel_logout_uri=receiver.uri)
    assert secret is not None
    log_in_and_out(client, app, secret)
    for _ in range(10):
        db.session.execute(sa.update(LogoutDelivery).values(
            next_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        backchannel.retry_due()
    delivery = db.session.scalar(sa.select(LogoutDelivery))
    assert delivery is not None
    attempts = app.config["IDP"].backchannel_logout_attempts
    assert (delivery.status, delivery.attempts) == ("failed", attempts)
    assert len(receiver.received) == attempts
    assert delivery.last_error == "HTTP 500"
    last = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.event == "logout.backchannel").order_by(AuditEvent.id.desc())).first()
    assert last is not None and last.detail["gave_up"] is True


def test_d07_discovery_announces_back_channel_logout(client: FlaskClient) -> None:
    meta = client.get("/.well-known/openid-configuration").json
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert "select_account" in meta["prompt_values_supported"]


def test_d07_the_logout_redirect_is_unchanged_by_notices(app: Flask, client: FlaskClient,
                                                         receiver: Receiver) -> None:
    """The browser still lands on the RP's post-logout page (RP-Initiated Logout)."""
    make_account()
    _, secret = make_client(backchannel_logout_uri=receiver.uri)
    assert secret is not None
    hint = id_token_for(client, app, secret)
    response = client.get("/logout", query_string={"id_token_hint": hint,
                                                   "post_logout_redirect_uri": POST_LOGOUT})
    assert urlsplit(response.location)._replace(query="").geturl() == POST_LOGOUT


def test_d07_idp_logout_retry_command(app: Flask, client: FlaskClient,
                                      receiver: Receiver) -> None:
    """`idp logout retry` sends what is due (from a timer)."""
    make_account()
    _, secret = make_client(backchannel_logout_uri=receiver.uri)
    assert secret is not None
    receiver.status = 503
    log_in_and_out(client, app, secret)
    receiver.status = 200
    db.session.execute(sa.update(LogoutDelivery).values(next_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    from flask.cli import ScriptInfo

    from idp.cli import cli
    result = app.test_cli_runner().invoke(cli, ["logout", "retry"],
                                          obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0 and "delivered 1" in result.output
    assert len(receiver.received) == 2


def test_d07_refresh_fails_once_the_provider_session_has_expired(
        app: Flask, client: FlaskClient) -> None:
    """D07: the provider session's expiry reaches the relying parties — its refresh tokens stop
    working (invalid_grant), so the RP ends its local session. Expiry is the store dropping the
    session's entries at their TTL; the test drops them as the TTL would."""
    from idp.auth.session import live_key
    from idp.store import get_store
    from tests.factories import REDIRECT, authorize_params, basic, query

    make_account()
    _, secret = make_client()
    assert secret is not None
    hint = id_token_for(client, app, secret)
    sid = str(jwt.decode(hint, keys()).claims["sid"])
    response = client.get("/authorize", query_string=authorize_params())
    code = query(response.location)["code"]
    tokens = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": REDIRECT},
                         headers=basic("rp1", secret)).json
    first = client.post("/token", data={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]},
                        headers=basic("rp1", secret))
    assert first.status_code == 200  # the session lives: refresh works
    get_store().delete(live_key(sid))
    second = client.post("/token", data={"grant_type": "refresh_token",
                                         "refresh_token": first.json["refresh_token"]},
                         headers=basic("rp1", secret))
    assert second.status_code == 400 and second.json["error"] == "invalid_grant"
