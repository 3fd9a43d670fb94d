"""Single-use credentials under concurrency: two exchanges of one code (or one refresh token)
at the same moment yield exactly one set of tokens, and the loser's attempt counts as the
replay it is: everything issued from that credential is revoked (RFC 9700 §4.2.4, §4.14.2)."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask

from tests.factories import REDIRECT, basic, get_code, make_account, make_client, pkce_pair


def _simultaneously(app: Flask, data: dict[str, str], headers: dict[str, str],
                    n: int = 2) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def post(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        results[i] = client.post("/token", data=data, headers=headers)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_d01_racing_code_exchanges_issue_once_and_revoke(app, client):
    """D01: two simultaneous exchanges of one code: one 200, one invalid_grant, and the
    tokens of the winner are revoked because the code was replayed."""
    make_account()
    _, secret = make_client()
    verifier, challenge = pkce_pair()
    code, _ = get_code(client, app, code_challenge=challenge, code_challenge_method="S256")
    results = _simultaneously(app, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier}, basic("rp1", secret))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 400)
    winner = next(r for r in results if r.status_code == 200)
    assert loser.json["error"] == "invalid_grant"
    info = client.get("/userinfo",
                      headers={"Authorization": f"Bearer {winner.json['access_token']}"})
    assert info.status_code == 401


def test_d01_racing_refreshes_rotate_once_and_revoke_the_chain(app, client):
    """D01: two simultaneous refreshes with one refresh token: one succeeds, the other is a
    reuse, and the whole chain (including the new tokens) is revoked."""
    make_account()
    _, secret = make_client()
    code, _ = get_code(client, app)
    first = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": REDIRECT}, headers=basic("rp1", secret))
    assert first.status_code == 200
    results = _simultaneously(app, {"grant_type": "refresh_token",
                                    "refresh_token": first.json["refresh_token"]},
                              basic("rp1", secret))
    assert sorted(r.status_code for r in results) == [200, 400], [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200)
    again = client.post("/token", data={"grant_type": "refresh_token",
                                        "refresh_token": winner.json["refresh_token"]},
                        headers=basic("rp1", secret))
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
