"""小区管理处 (T03): the offices of an enterprise, managed by it without review."""

from __future__ import annotations

import sqlalchemy as sa

from idp.extensions import db
from idp.orgs.models import Organisation


def next_office_code(enterprise: Organisation) -> str:
    """管理处编码: the enterprise's organisation code and the office's number within it
    (``MA1FL0D34-001``), never reused (deleted offices keep theirs)."""
    prefix = (enterprise.org_code or str(enterprise.id)) + "-"
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Organisation).where(
        Organisation.parent_id == enterprise.id, Organisation.type == "office")) or 0
    return f"{prefix}{count + 1:03d}"
