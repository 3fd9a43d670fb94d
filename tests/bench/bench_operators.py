"""Benchmark of 操作员管理 (S11) with 100,000 operators: p50/p95 of one filtered page.

A throw-away PostgreSQL database is created (random name on 127.0.0.1, dropped after), brought
to the head migration (so the indexes are the real ones), and filled with SQL alone: one
enterprise with 20 offices and ``--operators`` operators (accounts, identities, operator rows;
90 % 正常使用, 8 % 停用, 2 % 已删除; every fifth one in an office), plus a second enterprise
with a tenth as many, so that every query has a neighbour to stay out of. Then the enterprise
admin's page ``GET /console/operators?…`` is requested through the whole Flask stack (session,
tenant guard, service, template) ``--repeat`` times per filter, and the p50/p95 are printed
with the plan PostgreSQL chose for the filtered count.

    .venv/bin/python tests/bench/bench_operators.py [--operators 100000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SURNAMES = "张王李赵刘陈杨黄周吴"


def fill(conn: psycopg.Connection[Any], enterprise: int, offices: list[int], count: int,
         offset: int) -> None:
    """Accounts, identities and operators of one enterprise, set-based."""
    office_array = "ARRAY[" + ",".join(map(str, offices)) + "]"
    conn.execute(f"""
        INSERT INTO account (id, kind, status, name, phone, must_change_password,
                             created_at, updated_at)
        SELECT md5('acct' || g), 'person', 'active',
               substr('{SURNAMES}', 1 + g % 10, 1) || '员工' || g,
               (13000000000 + g)::text, false, now(), now()
        FROM generate_series({offset + 1}, {offset + count}) g""")
    conn.execute(f"""
        INSERT INTO identity (account_id, organisation_id, role, platform, status,
                              created_at, updated_at)
        SELECT md5('acct' || g),
               CASE WHEN g % 5 = 0 THEN ({office_array})[1 + (g / 5) % {len(offices)}]
                    ELSE {enterprise} END,
               CASE WHEN g % 5 = 0 THEN 'office' ELSE 'operator' END,
               'repair_fund',
               CASE WHEN g % 50 = 1 THEN 'deleted' WHEN g % 12 = 1 THEN 'disabled'
                    ELSE 'active' END,
               now(), now()
        FROM generate_series({offset + 1}, {offset + count}) g""")
    conn.execute(f"""
        INSERT INTO operator (enterprise_id, department_id, account_id, identity_id, name,
                              category, role, remark, status, created_at, updated_at)
        SELECT {enterprise}, i.organisation_id, a.id, i.id, a.name,
               CASE WHEN i.role = 'office' THEN 'office' ELSE 'enterprise' END,
               i.role, '', i.status, now(), now()
        FROM account a JOIN identity i ON i.account_id = a.id
        WHERE a.phone::bigint BETWEEN {13000000000 + offset + 1}
                                   AND {13000000000 + offset + count}
        ORDER BY a.phone""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operators", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from idp import create_app
    from idp.accounts.models import Account, Identity
    from idp.extensions import db
    from idp.orgs.models import Organisation

    name = "bench_operators_" + secrets.token_hex(4)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        with tempfile.TemporaryDirectory() as instance:
            app = create_app({"database_url": url, "instance_path": instance,
                              "secret_key": secrets.token_hex(32),
                              "issuer": "http://localhost"})
            with app.app_context():
                upgrade()
                started = time.perf_counter()
                enterprises = []
                for n, uscc in enumerate(("91310115MA1FL0D34W", "91310104MB2FL0D34Q")):
                    org = Organisation(type="enterprise", name=f"基准物业{n}有限公司",
                                       uscc=uscc, org_code=uscc[8:17], district="310115")
                    db.session.add(org)
                    db.session.flush()
                    offices = [Organisation(type="office", name=f"基准物业{n}第{k}管理处",
                                            parent_id=org.id, code=f"{uscc[8:17]}-{k:03d}")
                               for k in range(1, 21)]
                    db.session.add_all(offices)
                    db.session.flush()
                    enterprises.append((org.id, [o.id for o in offices]))
                admin_account = Account(kind="ukey", name="基准物业0有限公司",
                                        organisation_id=enterprises[0][0])
                db.session.add(admin_account)
                db.session.flush()
                db.session.add(Identity(account_id=admin_account.id,
                                        organisation_id=enterprises[0][0],
                                        role="enterprise_admin", platform="repair_fund"))
                db.session.commit()
                admin_id = admin_account.id
            raw = url.replace("postgresql+psycopg", "postgresql")
            with psycopg.connect(raw, autocommit=True) as conn:
                fill(conn, enterprises[0][0], enterprises[0][1], args.operators, 0)
                fill(conn, enterprises[1][0], enterprises[1][1], args.operators // 10,
                     args.operators)
                conn.execute("ANALYZE")
                total = conn.execute("SELECT count(*) FROM operator").fetchone()
            print(f"loaded {total[0] if total else 0:,} operators "
                  f"in {time.perf_counter() - started:.1f} s")

            client = app.test_client()
            with client.session_transaction() as session:
                session.update({"uid": admin_id, "auth_time": time.time(),
                                "amr": ["hwk", "pin"], "acr": "ukey", "sid": "bench",
                                "pwchange": False})
            office_code = f"{'91310115MA1FL0D34W'[8:17]}-007"
            cases = [
                ("no filter, page 1", {}),
                ("no filter, page 200", {"page": "200"}),
                ("操作员ID", {"operator_id": "4321"}),
                ("操作员姓名 starts with 张员工1", {"name": "张员工1"}),
                ("操作员状态 停用", {"status": "disabled"}),
                ("操作员类别 小区管理处", {"category": "office"}),
                ("所属单位编码 (an office)", {"unit_code": office_code}),
                ("所属单位名称 contains 第3", {"unit_name": "第3"}),
                ("姓名 王 + 状态 正常使用 + 类别 物业企业",
                 {"name": "王", "status": "active", "category": "enterprise"}),
            ]
            print(f"{'filter':<40} {'p50 ms':>8} {'p95 ms':>8} {'rows':>8}")
            for label, query in cases:
                timings = []
                for _ in range(args.repeat):
                    begin = time.perf_counter()
                    response = client.get("/console/operators", query_string=query)
                    timings.append((time.perf_counter() - begin) * 1000)
                    assert response.status_code == 200, response.status_code
                timings.sort()
                p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
                text = response.get_data(as_text=True)  # the caption: 共 N 个操作员
                rows = text.split("共 ", 1)[1].split(" 个", 1)[0] if "共 " in text else "?"
                print(f"{label:<40} {statistics.median(timings):>8.1f} {p95:>8.1f} {rows:>8}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
