"""Just-in-time provisioning (D06) on the relying party's own database, SQLite and PostgreSQL:
create, update, offices under their enterprise, concurrent first logins, and the log."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from relying_parties.common.models import Base, Organisation, ProvisioningLog
from relying_parties.common.provisioning import provision

ORG = {"id": "41", "type": "enterprise", "name": "申城物业服务有限公司",
       "uscc": "91310115MA1H7GJX4A", "parent_id": None}


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path,
             pg_database_factory: Any) -> sessionmaker[Session]:
    url = (f"sqlite:///{tmp_path / 'rp.sqlite3'}" if request.param == "sqlite"
           else pg_database_factory())
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    request.addfinalizer(engine.dispose)
    return sessionmaker(engine, expire_on_commit=False)


def _claims(**org: Any) -> dict[str, Any]:
    return {"sub": "acct-1", "org": {**ORG, **org}, "platform": "repair_fund",
            "roles": ["enterprise_admin"], "identity": "7"}


def _orgs(sessions: sessionmaker[Session]) -> list[Organisation]:
    with sessions() as db:
        return list(db.scalars(sa.select(Organisation).order_by(Organisation.id)))


def _log(sessions: sessionmaker[Session]) -> list[ProvisioningLog]:
    with sessions() as db:
        return list(db.scalars(sa.select(ProvisioningLog).order_by(ProvisioningLog.id)))


def test_d06_first_login_creates_then_update_changes_and_logs(
        sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    """D06: the first login creates the record from the claims; a later one with a changed
    name updates it; an unchanged login writes nothing; each change is logged twice over."""
    caplog.set_level(logging.INFO, "relying_parties.provisioning")
    first = provision(sessions, _claims())
    (org,) = _orgs(sessions)
    assert org.id == first and org.provider_id == "41" and org.uscc == ORG["uscc"]
    assert org.name == ORG["name"] and org.type == "enterprise" and org.platform == "repair_fund"
    assert provision(sessions, _claims()) == first
    assert [e.action for e in _log(sessions)] == ["created"]
    assert provision(sessions, _claims(name="申城物业管理集团有限公司")) == first
    (org,) = _orgs(sessions)
    assert org.name == "申城物业管理集团有限公司"
    _, updated = _log(sessions)
    assert updated.action == "updated" and updated.sub == "acct-1"
    assert json.loads(updated.changes) == {"name": [ORG["name"], "申城物业管理集团有限公司"]}
    assert "created" in caplog.text and "updated" in caplog.text


def test_d06_office_provisioned_under_its_enterprise(sessions: sessionmaker[Session]) -> None:
    """D06: an office whose enterprise is unknown here creates the parent row first; the
    enterprise's own later login fills the parent in (same row)."""
    office_id = provision(sessions, _claims(id="52", type="office", name="和谐花园管理处",
                                            uscc=None, parent_id="41"))
    parent, office = _orgs(sessions)
    assert office.id == office_id and office.parent_id == parent.id
    assert parent.provider_id == "41" and parent.type == "enterprise"
    assert provision(sessions, _claims()) == parent.id
    parent, office = _orgs(sessions)
    assert parent.name == ORG["name"] and parent.uscc == ORG["uscc"]


def test_d06_no_org_claim_provisions_nothing(sessions: sessionmaker[Session]) -> None:
    assert provision(sessions, {"sub": "acct-1"}) is None
    assert provision(sessions, {"sub": "acct-1", "org": "41"}) is None
    assert _orgs(sessions) == []


def test_d06_concurrent_first_logins_create_one_row(sessions: sessionmaker[Session]) -> None:
    """D06: eight first logins of the same enterprise at the same moment: one row, one
    'created' entry; every login gets that row's id (the unique constraint + retry)."""
    barrier = threading.Barrier(8)
    results: list[int | None] = []
    errors: list[BaseException] = []

    def login() -> None:
        barrier.wait()
        try:
            results.append(provision(sessions, _claims()))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=login) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    orgs = _orgs(sessions)
    assert len(orgs) == 1 and set(results) == {orgs[0].id}
    assert [e.action for e in _log(sessions)] == ["created"]


def test_d06_race_lost_on_insert_retries(sessions: sessionmaker[Session],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """D06: deterministically lose the race — the row appears between our look-up and our
    insert — and the retry finds it instead of failing."""
    import relying_parties.common.provisioning as prov

    real = prov._upsert
    calls = {"n": 0}

    def racing(db: Session, provider_id: str, values: Any, sub: str | None) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # another process commits the same organisation right now
            with sessions() as other:
                other.add(Organisation(provider_id=provider_id, type="enterprise",
                                       name="先到者", uscc=None))
                other.commit()
            db.add(Organisation(provider_id=provider_id, type="enterprise", name="x"))
            db.flush()  # IntegrityError, as the real insert would
        return real(db, provider_id, values, sub)

    monkeypatch.setattr(prov, "_upsert", racing)
    local = provision(sessions, _claims())
    (org,) = _orgs(sessions)
    assert org.id == local and org.name == ORG["name"]  # the retry updated the winner's row
    assert calls["n"] == 2
