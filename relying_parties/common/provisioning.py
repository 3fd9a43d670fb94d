"""Just-in-time provisioning (D06): the claims of a login create or update the relying party's
own organisation record. The provider's org id is the key (unique); a race between two first
logins is settled by that constraint: the loser rolls back and finds the winner's row."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from relying_parties.common.models import Organisation, ProvisioningLog, utcnow

log = logging.getLogger("relying_parties.provisioning")
FIELDS = ("type", "name", "uscc")


def _upsert(db: Session, provider_id: str, values: Mapping[str, Any], sub: str | None) -> int:
    row = db.scalar(sa.select(Organisation).where(Organisation.provider_id == provider_id))
    if row is None:
        row = Organisation(provider_id=provider_id, **values)
        db.add(row)
        db.flush()  # the unique constraint speaks here when another login was faster
        changes = {k: [None, v] for k, v in values.items() if v is not None}
        db.add(ProvisioningLog(organisation_id=row.id, action="created",
                               changes=json.dumps(changes, ensure_ascii=False), sub=sub))
        log.info("provisioned organisation %s (%s): created %s", provider_id,
                 values.get("name"), changes)
        return row.id
    changes = {k: [getattr(row, k), v] for k, v in values.items()
               if v is not None and getattr(row, k) != v}
    if changes:
        for key, (_, new) in changes.items():
            setattr(row, key, new)
        row.updated_at = utcnow()
        db.add(ProvisioningLog(organisation_id=row.id, action="updated",
                               changes=json.dumps(changes, ensure_ascii=False), sub=sub))
        log.info("provisioned organisation %s (%s): updated %s", provider_id, row.name, changes)
    return row.id


def provision(sessions: sessionmaker[Session], claims: Mapping[str, Any],
              attempts: int = 3) -> int | None:
    """The local organisation id for the ``org`` claim (created or updated), None without one.

    An office's parent enterprise is created first when missing (known only by its id until
    the enterprise itself logs in and fills in its name)."""
    org = claims.get("org")
    if not isinstance(org, Mapping) or not org.get("id"):
        return None
    sub = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    platform = claims.get("platform") if isinstance(claims.get("platform"), str) else None
    for attempt in range(attempts):
        with sessions() as db:
            try:
                parent_local: int | None = None
                parent = org.get("parent_id")
                if parent:
                    existing = db.scalar(sa.select(Organisation.id)
                                         .where(Organisation.provider_id == str(parent)))
                    parent_local = existing if existing is not None else _upsert(
                        db, str(parent), {"type": "enterprise", "name": f"企业 {parent}",
                                          "platform": platform}, sub)
                values: dict[str, Any] = {
                    "type": str(org.get("type") or "enterprise"),
                    "name": str(org.get("name") or ""),
                    "uscc": org.get("uscc") or None,
                    "platform": platform,
                }
                if parent_local is not None:
                    values["parent_id"] = parent_local
                local_id = _upsert(db, str(org["id"]), values, sub)
                db.commit()
                return local_id
            except IntegrityError:
                db.rollback()
                if attempt == attempts - 1:
                    raise
                log.info("provisioning race on organisation %s: retrying", org.get("id"))
    return None  # pragma: no cover - the loop returns or raises
