"""Benchmark of the platform admin console's organisation search (``GET /admin/orgs``).

Loads ``--count`` enterprises (default 10,000; valid USCCs, Shanghai districts, a few
statuses) into a throw-away PostgreSQL database on 127.0.0.1 — created with a random name,
schema by the migrations (what production runs), dropped at the end; no other database is
touched — and requests the search page through the Flask test client as a verified platform
admin, for each kind of search, printing p50/p95 latency in milliseconds.

    .venv/bin/python tests/bench/bench_admin_orgs.py [--count 10000] [--repeat 100]
        [--backends postgresql,sqlite] [--explain]

The whole request is measured: the session read from the store, the admin checks, the count
and the page query, the template. ``--explain`` prints PostgreSQL's plan of each search's count
query (the page query filters the same way), to see which searches scan the table.
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
WORDS = ("申大", "东方", "金桥", "陆家嘴", "徐汇", "长宁", "静安", "虹桥", "浦江", "世纪", "明珠",
         "锦绣", "阳光", "和谐", "滨江", "华府", "中环", "新城", "绿地", "万科")


def _org_code(rng: random.Random) -> str:
    body = "".join(rng.choice(ALPHABET) for _ in range(8))
    total = sum(int(ch, 36) * w for ch, w in zip(body, ORG_WEIGHTS, strict=True))
    check = {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    return body + check


def _uscc(district: str, org_code: str) -> str:
    body = "91" + district + org_code
    total = sum(ALPHABET.index(ch) * w for ch, w in zip(body, USCC_WEIGHTS, strict=True))
    return body + ALPHABET[(31 - total % 31) % 31]


def enterprises(count: int, seed: int = 2026) -> Iterator[dict[str, Any]]:
    from idp.validators import DISTRICTS, uscc_is_valid

    rng = random.Random(seed)
    districts = sorted(DISTRICTS)
    seen: set[str] = set()
    n = 0
    while n < count:
        code = _org_code(rng)
        if code in seen:
            continue
        seen.add(code)
        district = rng.choice(districts)
        uscc = _uscc(district, code)
        assert uscc_is_valid(uscc), uscc
        status = rng.choices(("active", "pending", "returned", "disabled"), (85, 8, 4, 3))[0]
        name = f"上海{rng.choice(WORDS)}{rng.choice(WORDS)}物业服务有限公司第{n:05d}分公司"
        yield {"type": "enterprise", "name": name, "uscc": uscc, "org_code": code,
               "district": district, "status": status, "profile": {}}
        n += 1


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.sqlite3"
        return
    name = f"idp_bench_orgs_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SEARCHES: list[tuple[str, dict[str, str]]] = [
    ("all, page 1", {}),
    ("all, page 400 (deep offset)", {"page": "400"}),
    ("name contains (common: 物业)", {"q": "物业"}),
    ("name contains (rare: 第04321分)", {"q": "第04321分"}),
    ("name contains (none)", {"q": "不存在的名称"}),
    ("USCC prefix 9131011", {"code": "9131011"}),
    ("USCC prefix, 16 chars", {}),  # filled in from the data
    ("type + district", {"type": "enterprise", "district": "310115"}),
    ("status pending", {"status": "pending"}),
    ("name + district + status", {"q": "申大", "district": "310104", "status": "active"}),
]


def run(backend: str, count: int, repeat: int, explain: bool) -> list[tuple[str, float, float,
                                                                            int]]:
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from idp import create_app
    from idp.admin import orgs
    from idp.admin.access import SESSION_KEY, provision_admin
    from idp.extensions import db
    from idp.orgs.models import Organisation

    results = []
    with database(backend) as url, tempfile.TemporaryDirectory() as instance:
        app = create_app({"database_url": url, "instance_path": instance,
                          "secret_key": "bench-" + "x" * 40, "issuer": "http://localhost",
                          "password_time_cost": 1, "password_memory_cost": 1024,
                          "password_parallelism": 1, "store": "database"})
        with app.app_context():
            logging.disable(logging.INFO)  # alembic's progress lines
            upgrade()
            rows = list(enterprises(count))
            for start in range(0, len(rows), 2000):
                db.session.execute(sa.insert(Organisation), rows[start:start + 2000])
            db.session.commit()
            admin = provision_admin("13700000000", "压测管理员", "Bench@2026-pass").account
            if backend == "postgresql":
                with db.engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
            searches = list(SEARCHES)
            searches[6] = ("USCC prefix, 16 chars", {"code": rows[len(rows) // 3]["uscc"][:16]})
            client = app.test_client()
            sid = secrets.token_hex(8)
            with client.session_transaction() as session:
                now = time.time()
                session.update({"uid": admin.id, "auth_time": now, "amr": ["pwd", "sms", "mfa"],
                                "acr": "bench", "sid": sid, "pwchange": False,
                                SESSION_KEY: {"uid": admin.id, "sid": sid, "at": now,
                                              "seen": now}})
            for label, args in searches:
                first = client.get("/admin/orgs", query_string=args)
                assert first.status_code == 200, (label, first.status_code, first.text[:300])
                filters = orgs.parse_filters(args)
                total = db.session.scalar(sa.select(sa.func.count()).select_from(Organisation)
                                          .where(*orgs._criteria(filters))) or 0
                if explain and backend == "postgresql":
                    query = sa.select(sa.func.count()).select_from(Organisation).where(
                        *orgs._criteria(filters))
                    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
                    with db.engine.connect() as conn:
                        plan = conn.exec_driver_sql(f"EXPLAIN ANALYZE {compiled}").scalars()
                        print(f"-- {label}\n   " + "\n   ".join(plan), file=sys.stderr)
                timings = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    response = client.get("/admin/orgs", query_string=args)
                    timings.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200
                timings.sort()
                p50 = statistics.median(timings)
                p95 = timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]
                results.append((label, p50, p95, total))
            db.session.remove()
            db.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--backends", default="postgresql")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    print(f"GET /admin/orgs with {args.count} enterprises, {args.repeat} requests per search "
          "(Flask test client, one process)\n")
    print(f"| {'backend':10} | {'search':34} | {'matches':>7} | {'p50 ms':>7} | {'p95 ms':>7} |")
    print(f"|{'-' * 12}|{'-' * 36}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for backend in args.backends.split(","):
        for label, p50, p95, total in run(backend.strip(), args.count, args.repeat,
                                          args.explain):
            print(f"| {backend:10} | {label:34} | {total:7d} | {p50:7.2f} | {p95:7.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
