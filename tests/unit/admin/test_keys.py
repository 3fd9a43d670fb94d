"""Signing keys in the platform admin console (D01): the list shows kid, algorithm, state and
dates but never private material; rotation works as `idp keys rotate` does — the JWKS gains the
new keys, keeps the retired ones published, and the rotation is audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idp.extensions import db
from idp.oidc.models import SigningKey
from tests.unit.admin.helpers import as_admin, counts, csrf, events


def jwks_kids(client) -> set[str]:
    response = client.get("/jwks.json")
    assert response.status_code == 200
    return {key["kid"] for key in response.json["keys"]}


def test_d01_key_list_shows_kids_and_never_private_material(app, client):
    as_admin(client, app)
    page = client.get("/admin/keys")
    assert page.status_code == 200
    for key in db.session.scalars(sa.select(SigningKey)):
        assert key.kid in page.text
        assert key.private_pem.splitlines()[1] not in page.text
    assert "PRIVATE KEY" not in page.text and "ENCRYPTED" not in page.text
    assert "ES256" in page.text and "RS256" in page.text and "当前签名" in page.text


@pytest.mark.parametrize(("alg", "expected"), [("", {"ES256", "RS256"}), ("ES256", {"ES256"}),
                                               ("RS256", {"RS256"})])
def test_d01_rotation_publishes_new_keys_and_keeps_old_ones(app, client, alg, expected):
    admin, _ = as_admin(client, app)
    before = jwks_kids(client)
    active_before = set(db.session.scalars(sa.select(SigningKey.kid).where(
        SigningKey.retired_at.is_(None))))
    response = client.post("/admin/keys/rotate",
                           data={"csrf_token": csrf(client, "/admin/keys"), "alg": alg})
    assert response.status_code == 303 and response.location.endswith("/admin/keys?done=rotated")
    after = jwks_kids(client)
    new = after - before
    assert len(new) == len(expected) and before <= after
    db.session.expire_all()
    algs = {k.alg for k in db.session.scalars(sa.select(SigningKey).where(
        SigningKey.kid.in_(new)))}
    assert algs == expected
    still_active = set(db.session.scalars(sa.select(SigningKey.kid).where(
        SigningKey.retired_at.is_(None))))
    assert new <= still_active and len(still_active) == 2
    assert len(active_before - still_active) == len(expected)
    rotated = events("admin.keys.rotate", "success")
    assert len(rotated) == 1 and rotated[0].account_id == admin.id
    assert set(rotated[0].detail["kids"]) == new
    page = client.get(response.location)
    assert "已停用（仍在 JWKS 中公布）" in page.text and "已生成新的签名密钥" in page.text


@pytest.mark.parametrize("alg", ["HS256", "none", "<script>", "ES256 ", "x" * 500])
def test_d01_rotation_with_a_bad_algorithm_changes_nothing(app, client, alg):
    as_admin(client, app)
    before, kids = counts(), jwks_kids(client)
    response = client.post("/admin/keys/rotate",
                           data={"csrf_token": csrf(client, "/admin/keys"), "alg": alg})
    if alg == "ES256 ":  # surrounding blanks are dropped: that is ES256
        assert response.status_code == 303
        return
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert counts() == before and jwks_kids(client) == kids


def test_d01_rotation_without_csrf_is_refused(app, client):
    as_admin(client, app)
    before = counts()
    assert client.post("/admin/keys/rotate", data={"alg": ""}).status_code == 400
    assert counts() == before
