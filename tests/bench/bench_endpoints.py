"""Endpoint benchmark: the provider under gunicorn on loopback, load from wrk.

Prints requests/s and p50/p99 latency for discovery, JWKS, userinfo and the token endpoint
(client_credentials, authorization_code, refresh_token) on SQLite and on PostgreSQL.

    .venv/bin/python tests/bench/bench_endpoints.py [--backends sqlite,postgresql]
        [--duration 10] [--connections 32] [--workers 4]

Needs wrk (``apt-get install wrk``) and, for PostgreSQL, the server at 127.0.0.1:5432 (a
throw-away database is created and dropped). Single-use credentials (codes, refresh tokens) are
minted straight into the database beforehand, each used once by wrk; their lifetime is set to
an hour so that minting does not race the 60-second code lifetime. Everything else is the real
request path: client authentication, the Authlib grant, token rows, audit events, ID tokens.
"""

from __future__ import annotations

import argparse
import base64
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.live import LiveServer  # noqa: E402

HERE = Path(__file__).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIRECT = "https://rp.example.test/callback"


def mint(server: LiveServer, client_id: str, account_id: str, count: int,
         label: str) -> tuple[Path, Path, str]:
    """Insert ``count`` codes and ``count`` refresh tokens; return their files and one access
    token for userinfo."""
    import sqlalchemy as sa

    from idp import create_app
    from idp.db import utcnow
    from idp.extensions import db
    from idp.oidc.models import AuthorizationCode, Token
    from idp.security import token_hash

    env = server.env()
    app = create_app({"database_url": env["IDP_DATABASE_URL"],
                      "instance_path": env["IDP_INSTANCE_PATH"],
                      "secret_key": env["IDP_SECRET_KEY"], "issuer": server.issuer,
                      "password_time_cost": 1, "password_memory_cost": 1024,
                      "password_parallelism": 1})
    now = utcnow()
    codes = [secrets.token_urlsafe(32) for _ in range(count)]
    refresh = [secrets.token_urlsafe(32) for _ in range(count)]
    access = secrets.token_urlsafe(32)
    common = {"client_id": client_id, "account_id": account_id,
              "auth_time": int(time.time()), "acr": "urn:idp:acr:phone-password-sms",
              "amr": ["pwd", "sms", "mfa"], "sid": "bench"}
    with app.app_context():
        db.session.execute(sa.insert(AuthorizationCode), [
            {**common, "code_hash": token_hash(c), "redirect_uri": REDIRECT,
             "scope": "openid profile phone", "created_at": now,
             "expires_at": now + timedelta(hours=1)} for c in codes])
        rows = [{**common, "grant_type": "authorization_code", "scope": "openid profile phone",
                 "access_token_hash": token_hash(secrets.token_urlsafe(32)),
                 "refresh_token_hash": token_hash(r), "issued_at": now, "expires_in": 3600,
                 "refresh_expires_at": now + timedelta(hours=1), "family_id": uuid.uuid4().hex}
                for r in refresh]
        rows.append({**common, "grant_type": "authorization_code", "scope": "openid profile phone",
                     "access_token_hash": token_hash(access), "refresh_token_hash": None,
                     "issued_at": now, "expires_in": 3600, "refresh_expires_at": None,
                     "family_id": uuid.uuid4().hex})
        db.session.execute(sa.insert(Token), rows)
        db.session.commit()
        db.engine.dispose()
    codes_file = server.workdir / f"codes-{label}.txt"
    refresh_file = server.workdir / f"refresh-{label}.txt"
    codes_file.write_text("\n".join(codes) + "\n")
    refresh_file.write_text("\n".join(refresh) + "\n")
    return codes_file, refresh_file, access


LINE = re.compile(r"Requests/sec:\s+([\d.]+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
ERRORS = re.compile(r"Socket errors:.*")
TOTAL = re.compile(r"(\d+) requests in")


def _ms(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def wrk(url: str, script: str, args: list[str], duration: int, connections: int) -> dict[str,
                                                                                         float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
               "-s", str(HERE / script), url, "--", *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, flags=re.M))
    if "50" not in latency or "99" not in latency:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    bad = NON_2XX.search(out)
    return {
        "rps": float(LINE.search(out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "requests": int(TOTAL.search(out).group(1)),  # type: ignore[union-attr]
        "errors": int(bad.group(1)) if bad else 0,
    }


def run_backend(backend: str, args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"idp-bench-{backend}-"))
    pg_name = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'idp.sqlite3'}"
    else:
        pg_name = f"idp_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    server = LiveServer(workdir=workdir, database_url=url, workers=args.workers,
                        worker_class=args.worker_class, threads=args.threads)
    results = []
    try:
        server.start()
        creds = server.idp_json("clients", "add", "--client-id", "bench", "--name", "bench",
                                "--redirect-uri", REDIRECT, "--grant-type", "authorization_code",
                                "--grant-type", "refresh_token", "--grant-type",
                                "client_credentials", "--json")
        user = server.idp_json("users", "add", "--phone", "13600000000", "--name", "压测",
                               "--password", "Bench-2026x", "--no-must-change", "--json")
        per_run = max(20000, int(args.duration * 3000))
        # Warm-up and measured runs each get their own single-use credentials.
        warm_codes, warm_refresh, access = mint(server, "bench", user["id"], 8000, "warm")
        codes, refresh, access = mint(server, "bench", user["id"], per_run, "run")
        basic = "Basic " + base64.b64encode(
            f"bench:{creds['client_secret']}".encode()).decode()
        base = server.issuer
        def single_use(codes: Path, refresh: Path) -> dict[str, list[str]]:
            return {
                "token authorization_code": [
                    str(codes), "2",
                    f"grant_type=authorization_code&code={{}}&redirect_uri={REDIRECT}", basic],
                "token refresh_token": [
                    str(refresh), "2", "grant_type=refresh_token&refresh_token={}", basic],
            }

        warm = single_use(warm_codes, warm_refresh)
        measured = single_use(codes, refresh)
        plan = [
            ("discovery", f"{base}/.well-known/openid-configuration", "wrk_get.lua", []),
            ("jwks", f"{base}/jwks.json", "wrk_get.lua", []),
            ("userinfo", f"{base}/userinfo", "wrk_get.lua", [f"Bearer {access}"]),
            ("token client_credentials", f"{base}/token", "wrk_post.lua",
             ["grant_type=client_credentials&scope=profile", basic]),
            ("token authorization_code", f"{base}/token", "wrk_post_each.lua", []),
            ("token refresh_token", f"{base}/token", "wrk_post_each.lua", []),
        ]
        for name, url_, script, extra in plan:
            if args.only and args.only not in name:
                continue
            wrk(url_, script, warm.get(name, extra), 2, args.connections)  # warm-up
            results.append((name, wrk(url_, script, measured.get(name, extra), args.duration,
                                      args.connections)))
            print(f"  {backend:<10} {name:<26} {results[-1][1]['rps']:>8.0f} req/s", flush=True)
    finally:
        server.stop()
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="run only endpoints whose name has this")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    table = []
    for backend in args.backends.split(","):
        for name, result in run_backend(backend, args):
            table.append((backend, name, result))
    print()
    print(f"gunicorn {args.worker_class} workers: {args.workers} × {args.threads} threads; "
          f"wrk: 2 threads, {args.connections} connections, {args.duration} s per endpoint; "
          "both on this machine's cores")
    print(f"| {'backend':<10} | {'endpoint':<26} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} "
          f"| {'non-2xx':>7} |")
    print(f"|{'-' * 12}|{'-' * 28}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for backend, name, r in table:
        print(f"| {backend:<10} | {name:<26} | {r['rps']:>7.0f} | {r['p50']:>7.2f} "
              f"| {r['p99']:>7.2f} | {int(r['errors']):>7} |")


if __name__ == "__main__":
    main()
