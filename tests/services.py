"""Real services started on loopback for tests, stopped by PID: no mocks of what can run here.

``Nginx`` runs the production nginx configuration, ``deploy/nginx/idp.conf``, rendered with
loopback values — the same file an operator deploys, so a test of it is a test of production.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pytest

ROOT = Path(__file__).resolve().parents[1]
NGINX_BIN = Path("/usr/sbin/nginx")
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "idp.conf"
PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")
START_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (the kernel picks it; another process could still take
    it before the service binds, which is rare enough on a test machine)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``@@NAME@@`` by ``values[NAME]``.

    Drift guard in both directions: a placeholder in the file that the tests do not fill (a new
    token nobody documented) and a value for a token the file no longer has both fail, so the
    tests and the deployed file cannot silently diverge.
    """
    found = set(PLACEHOLDER.findall(template))
    given = {f"@@{name}@@" for name in values}
    if found != given:
        raise AssertionError(
            f"placeholders out of sync: not filled {sorted(found - given)}, "
            f"unknown {sorted(given - found)}")
    for name, value in values.items():
        template = template.replace(f"@@{name}@@", value)
    leftover = PLACEHOLDER.findall(template)
    assert not leftover, f"placeholders left after rendering: {leftover}"
    return template


def _wait_for_pid_file(pid_file: Path, process: subprocess.Popen[bytes], deadline: float) -> bool:
    """nginx writes its pid file only after it has bound every listening socket, so this, not a
    successful connect (which another process on a reused port would also answer), is the sign
    that *our* nginx listens."""
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if pid_file.read_text().strip() == str(process.pid):
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    return False


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Nginx:
    """``deploy/nginx/idp.conf`` under real nginx on loopback; a context manager.

    ``upstream`` is ``host:port`` of the service behind it; ``proxy_source`` is the address nginx
    connects from (``proxy_bind``), i.e. what the upstream must list as its trusted proxy.
    ``template`` exists for tests that prove a line of the production file is needed.
    """

    workdir: Path
    upstream: str
    tls_cert: Path
    tls_key: Path
    client_ca: Path
    server_name: str = "localhost"
    proxy_source: str = "127.0.0.2"
    listen_address: str = "127.0.0.1"
    template: Path = NGINX_TEMPLATE
    port: int = field(default_factory=free_port)
    redirect_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.server_name}:{self.port}"

    @property
    def conf(self) -> Path:
        return self.workdir / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def values(self) -> dict[str, str]:
        """Test values of the placeholders; production values are in deploy/nginx/README.md."""
        return {
            # Workers run as whoever runs the tests; as non-root, nginx ignores "user" (a warning).
            "USER": getpass.getuser(),
            "PREFIX": str(self.workdir),
            "LISTEN_ADDRESS": self.listen_address,
            "LISTEN_PORT": str(self.port),
            "REDIRECT_PORT": str(self.redirect_port),
            "SERVER_NAME": self.server_name,
            "TLS_CERT": str(self.tls_cert),
            "TLS_KEY": str(self.tls_key),
            "CLIENT_CA": str(self.client_ca),
            "UPSTREAM": self.upstream,
            "PROXY_SOURCE": self.proxy_source,
        }

    def render(self) -> Path:
        values = self.values()
        # Values are pasted unquoted into nginx syntax: a space or ";" would change its meaning.
        unsafe = {k: v for k, v in values.items() if re.search(r"[\s;{}'\"]", v)}
        assert not unsafe, f"values nginx would misparse: {unsafe}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = render_template(self.template.read_text(encoding="utf-8"), values)
        self.conf.write_text(text, encoding="utf-8")
        return self.conf

    def _logs(self) -> str:
        parts = []
        for path in (self.workdir / "nginx.stderr", self.error_log):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def _command(self, *extra: str) -> list[str]:
        return [str(NGINX_BIN), "-c", str(self.conf), "-p", f"{self.workdir}/", *extra]

    def start(self) -> Nginx:
        if not NGINX_BIN.exists():
            pytest.skip(f"{NGINX_BIN} is not installed")
        self.render()
        check = subprocess.run(self._command("-t"), capture_output=True, text=True,
                               timeout=30, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused {self.conf}:\n{check.stderr}\n{self._logs()}")
        with (self.workdir / "nginx.stderr").open("wb") as stderr:
            self.process = subprocess.Popen(self._command("-g", "daemon off;"),
                                            stdout=stderr, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        ready = _wait_for_pid_file(self.pid_file, self.process, deadline) and all(
            _answers(self.listen_address, port) for port in (self.port, self.redirect_port))
        if not ready:
            self.stop()
            raise RuntimeError(f"nginx did not start on {self.listen_address}:{self.port} and "
                               f":{self.redirect_port}:\n{self._logs()}")
        return self

    def stop(self) -> None:
        """Fast shutdown of the master (by its PID), which stops its workers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
