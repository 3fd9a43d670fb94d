"""UKey certificate-login benchmark: ``idp serve`` with embedded TLS on loopback, every login a
new connection with a full TLS handshake presenting the demo enterprise's certificate.

Prints certificate logins/s with p50/p99 latency, a handshake-only rate for comparison, and the
server workers' CPU time per login (the issue's aim: ≥ 100 logins/s per core).

    .venv/bin/python tests/bench/bench_ukey_tls.py [--duration 10] [--clients 4]
        [--workers 2] [--postgres]

One login is what a browser does: GET /login (CSRF token and session cookie), then POST
/login/ukey on the same kept-alive connection, answered 303 to /; the connection is new, with a
full handshake presenting the client certificate. Handshakes are counted (column "hs/op"): a
server that closed the connection after GET would make http.client reconnect, and it shows there
as 2. Session resumption is off: no session is ever handed back to ``ssl``, the client context
sets ``OP_NO_TICKET``, and a connection that was resumed anyway counts as an error. The clients are
separate processes (not threads: the GIL would cap the load) and share this machine's cores with
the server; the CPU columns separate the two. With ``--postgres`` the run is repeated on a
throw-away PostgreSQL database at 127.0.0.1:5432 (created and dropped here).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import re
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import quantiles
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from idp.pki.devca import DevCA  # noqa: E402
from tests.live import LiveServer  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat and /proc/stat count in these


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    root: str  # the development root, to verify the server
    cert: str  # the demo enterprise's certificate and key (PEM)
    key: str


@dataclass
class Tally:
    """One client process's results."""

    ok: int = 0
    errors: int = 0
    latencies: list[float] | None = None
    cpu: float = 0.0
    handshakes: int = 0
    first_error: str = ""

    def merge(self, other: Tally) -> None:
        self.ok += other.ok
        self.errors += other.errors
        self.latencies = (self.latencies or []) + (other.latencies or [])
        self.cpu += other.cpu
        self.handshakes += other.handshakes
        self.first_error = self.first_error or other.first_error


def client_context(target: Target) -> ssl.SSLContext:
    """Verifies the server against the development root; presents the enterprise certificate;
    no tickets. One per process: the context holds no session, so every connect is a full
    handshake (checked per connection)."""
    context = ssl.create_default_context(cafile=target.root)
    context.load_cert_chain(target.cert, target.key)
    context.options |= ssl.OP_NO_TICKET
    return context


HANDSHAKES = [0]  # full handshakes done by this client process


class FreshTLS(http.client.HTTPSConnection):
    """An HTTPS connection that refuses to have been resumed, and counts its handshakes."""

    def connect(self) -> None:
        super().connect()
        HANDSHAKES[0] += 1
        assert isinstance(self.sock, ssl.SSLSocket)
        if self.sock.session_reused:
            raise ssl.SSLError("TLS session was resumed; the benchmark wants full handshakes")


def one_login(target: Target, context: ssl.SSLContext) -> None:
    """GET /login, POST /login/ukey on one fresh connection (one full handshake, then
    keep-alive, as a browser does); raises unless 303 to /."""
    conn = FreshTLS(target.host, target.port, context=context, timeout=30)
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        html = page.read().decode("utf-8")
        cookie = page.getheader("Set-Cookie", "").split(";", 1)[0]
        match = CSRF.search(html)
        if page.status != 200 or match is None or not cookie:
            raise RuntimeError(f"GET /login: {page.status}, csrf={bool(match)}, cookie={cookie!r}")
        conn.request("POST", "/login/ukey", body=f"csrf_token={match.group(1)}&interaction=",
                     headers={"Cookie": cookie,
                              "Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    location = answer.getheader("Location", "")
    if answer.status != 303 or urlsplit(location).path != "/":
        raise RuntimeError(f"POST /login/ukey: {answer.status} to {location!r}")


def one_handshake(target: Target, context: ssl.SSLContext) -> None:
    """Connect, full handshake with the client certificate, close_notify, close.

    Under TLS 1.3 the client finishes its handshake before the server has read the client's
    certificate; waiting for the server's answer to our close_notify makes sure the server has
    also verified the certificate before the next connection is counted."""
    with socket.create_connection((target.host, target.port), timeout=30) as raw:
        tls = context.wrap_socket(raw, server_hostname=target.host)
        HANDSHAKES[0] += 1
        if tls.session_reused:
            raise ssl.SSLError("TLS session was resumed")
        try:
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass  # gunicorn closes without its own close_notify; the server has read ours


def client(kind: str, target: Target, start: float, stop: float) -> Tally:
    """Run ``kind`` back to back from ``start`` until ``stop`` (wall clock, shared)."""
    action = one_login if kind == "login" else one_handshake
    context = client_context(target)
    tally = Tally(latencies=[])
    assert tally.latencies is not None
    time.sleep(max(0.0, start - time.time()))
    cpu0, handshakes0 = time.process_time(), HANDSHAKES[0]
    while time.time() < stop:
        began = time.perf_counter()
        try:
            action(target, context)
        except (OSError, ssl.SSLError, RuntimeError, http.client.HTTPException) as exc:
            tally.errors += 1
            tally.first_error = tally.first_error or repr(exc)
            continue
        tally.latencies.append((time.perf_counter() - began) * 1000)
        tally.ok += 1
    tally.cpu = time.process_time() - cpu0
    tally.handshakes = HANDSHAKES[0] - handshakes0
    return tally


def _client_star(args: tuple[str, Target, float, float]) -> Tally:
    return client(*args)


def worker_pids(master: int) -> list[int]:
    path = Path(f"/proc/{master}/task/{master}/children")
    return [int(p) for p in path.read_text().split()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """Busy CPU time of the whole machine (every core, every process: server, clients, the
    database server, anything else running), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


@dataclass(frozen=True)
class Result:
    ok: int
    errors: int
    duration: float
    p50: float
    p99: float
    server_cpu: float  # the gunicorn workers' CPU seconds
    client_cpu: float
    machine_cpu: float
    handshakes: int
    first_error: str

    @property
    def rate(self) -> float:
        return self.ok / self.duration

    @property
    def handshakes_per_op(self) -> float:
        return self.handshakes / (self.ok + self.errors) if self.ok + self.errors else 0.0

    @property
    def per_server_core(self) -> float:
        """Completed per CPU-second of the workers: the issue's "per core" figure."""
        return self.ok / self.server_cpu if self.server_cpu else 0.0


def run(kind: str, target: Target, server: LiveServer, clients: int, duration: float) -> Result:
    assert server.process is not None
    pids = worker_pids(server.process.pid)
    start = time.time() + 0.5  # every client process is up before the clock starts
    stop = start + duration
    with mp.get_context("fork").Pool(clients) as pool:
        cpu_before, busy_before = cpu_seconds(pids), machine_busy_seconds()
        results = pool.map(_client_star, [(kind, target, start, stop)] * clients)
        cpu_after, busy_after = cpu_seconds(pids), machine_busy_seconds()
    total = Tally(latencies=[])
    for result in results:
        total.merge(result)
    latencies = sorted(total.latencies or [0.0])
    cuts = quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return Result(ok=total.ok, errors=total.errors, duration=duration, p50=cuts[49],
                  p99=cuts[98], server_cpu=cpu_after - cpu_before, client_cpu=total.cpu,
                  machine_cpu=busy_after - busy_before, handshakes=total.handshakes,
                  first_error=total.first_error)


def run_backend(backend: str, args: argparse.Namespace, pki: DevCA) -> list[tuple[str, Result]]:
    import psycopg

    workdir = Path(tempfile.mkdtemp(prefix=f"idp-bench-ukey-{backend}-"))
    pg_name = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'idp.sqlite3'}"
    else:
        pg_name = f"idp_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    server = LiveServer(workdir=workdir, database_url=url, workers=args.workers, pki=pki.dir)
    demo = pki.sample("demo")
    target = Target("localhost", server.port, str(pki.path("root.pem")), str(demo.pem_path),
                    str(demo.key_path))
    results = []
    try:
        server.start()
        server.idp("init", "--demo", "--clients", str(workdir / "no-clients.toml"))
        for kind, label in (("handshake", "TLS handshake only"), ("login", "UKey login")):
            run(kind, target, server, args.clients, 2)  # warm-up: imports, CRL cache, pools
            result = run(kind, target, server, args.clients, args.duration)
            results.append((label, result))
            first = f", first: {result.first_error}" if result.errors else ""
            print(f"  {backend:<10} {label:<20} {result.rate:>7.1f}/s "
                  f"({result.errors} errors{first})", flush=True)
    finally:
        server.stop()
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def key_kind(pem: Path) -> str:
    """"EC P-256", "RSA-2048", … of a certificate's public key, for the table's caption."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = x509.load_pem_x509_certificate(pem.read_bytes()).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def print_table(args: argparse.Namespace, pki: DevCA,
                table: list[tuple[str, str, Result]]) -> None:
    print()
    print(f"idp serve: {args.workers} workers as `idp serve` configures them, TLS 1.3, server key "
          f"{key_kind(pki.server_cert)}, client key {key_kind(pki.sample('demo').pem_path)}; "
          f"{args.clients} client processes; {args.duration:g} s per run; all on this machine's "
          f"{os.cpu_count()} cores.")
    print("A login = GET /login + POST /login/ukey → 303 on a new connection. 'hs/op' = full "
          "handshakes per login; 'per core' = completed per CPU-second of the gunicorn workers; "
          "'machine' = busy CPU-seconds of all processes (clients and database server included).")
    widths = (10, 18, 6, 6, 6, 6, 5, 13, 13, 13, 8)
    print(f"| {'backend':<10} | {'what':<18} | {'per s':>6} | {'p50 ms':>6} | {'p99 ms':>6} "
          f"| {'errors':>6} | {'hs/op':>5} | {'workers CPU s':>13} | {'clients CPU s':>13} "
          f"| {'machine CPU s':>13} | {'per core':>8} |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for backend, label, r in table:
        print(f"| {backend:<10} | {label:<18} | {r.rate:>6.1f} | {r.p50:>6.1f} | {r.p99:>6.1f} "
              f"| {r.errors:>6} | {r.handshakes_per_op:>5.2f} | {r.server_cpu:>13.2f} "
              f"| {r.client_cpu:>13.2f} | {r.machine_cpu:>13.2f} | {r.per_server_core:>8.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    args = parser.parse_args()
    pki = DevCA(Path(tempfile.mkdtemp(prefix="idp-bench-pki-")) / "dev")
    pki.init()
    table: list[tuple[str, str, Result]] = []
    try:
        for backend in ["sqlite", "postgresql"] if args.postgres else ["sqlite"]:
            for label, result in run_backend(backend, args, pki):
                table.append((backend, label, result))
        print_table(args, pki, table)
    finally:
        shutil.rmtree(pki.dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
