"""A real provider on loopback: ``idp init`` + gunicorn in subprocesses, as production runs it.

Used by the functional tests and by the benchmark, so both exercise exactly what `make run`
and a deployment start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    workdir: Path
    database_url: str
    workers: int = 2
    worker_class: str = "sync"
    threads: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # A development PKI (idp.pki.devca.DevCA) directory: serve TLS with mutual-TLS UKey logins
    # through `idp serve`, exactly as `make run` does.
    pki: Path | None = None

    @property
    def issuer(self) -> str:
        if self.pki is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    @property
    def verify(self) -> str | bool:
        """What ``requests`` should trust: the development root under TLS."""
        return str(self.pki / "root.pem") if self.pki is not None else True

    @property
    def outbox(self) -> Path:
        return self.workdir / "sms-outbox.jsonl"

    def env(self) -> dict[str, str]:
        config = self.workdir / "idp.toml"
        if not config.exists():
            config.write_text("[idp]\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        env.update({
            "IDP_CONFIG": str(config),
            "IDP_ISSUER": self.issuer,
            "IDP_DATABASE_URL": self.database_url,
            "IDP_INSTANCE_PATH": str(self.workdir / "instance"),
            "IDP_SECRET_KEY": "live-test-secret-" + "y" * 32,
            "IDP_SMS_OUTBOX": str(self.outbox),
            "IDP_PASSWORD_TIME_COST": "1",
            "IDP_PASSWORD_MEMORY_COST": "1024",
            "IDP_PASSWORD_PARALLELISM": "1",
        })
        if self.pki is not None:
            env.update({
                "IDP_UKEY_TRUST": str(self.pki / "trust.toml"),
                "IDP_TLS_CERT": str(self.pki / "server.pem"),
                "IDP_TLS_KEY": str(self.pki / "server.key.pem"),
            })
        env.update(self.extra_env)
        return env

    def idp(self, *args: str) -> str:
        """Run the ``idp`` command against this server's database; return its stdout."""
        result = subprocess.run([str(BIN / "idp"), *args], env=self.env(), cwd=self.workdir,
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"idp {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def idp_json(self, *args: str) -> Any:
        return json.loads(self.idp(*args).strip().splitlines()[-1])

    def start(self) -> LiveServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.idp("init", "--clients", str(self.workdir / "none.toml"))
        log = (self.workdir / "gunicorn.log").open("wb")
        if self.pki is not None:
            command = [str(BIN / "idp"), "serve", "--bind", f"127.0.0.1:{self.port}",
                       "--workers", str(self.workers)]
        else:
            command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
                       "--workers", str(self.workers), "--worker-class", self.worker_class,
                       "--threads", str(self.threads), "--backlog", "2048", "--keep-alive", "5",
                       "--no-control-socket",
                       "idp.wsgi:app"]
        self.process = subprocess.Popen(command, env=self.env(), cwd=self.workdir, stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + (self.workdir / "gunicorn.log")
                                   .read_text(errors="replace"))
            try:
                if requests.get(self.issuer + "/.well-known/openid-configuration",
                                timeout=2, verify=self.verify).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def sms_codes(self, phone: str) -> list[str]:
        if not self.outbox.exists():
            return []
        lines = self.outbox.read_text(encoding="utf-8").splitlines()
        return [m["code"] for m in map(json.loads, lines) if m["to"] == phone]
