"""``python -m relying_parties.<rp>``: the development server (werkzeug), TLS when given."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from flask import Flask
from werkzeug.serving import run_simple


def main(create_app: Callable[[], Flask], default_port: int,
         argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a demo relying party (development).")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--cert", help="TLS certificate (PEM), e.g. certs/dev/server.pem")
    parser.add_argument("--key", help="TLS private key (PEM), e.g. certs/dev/server.key.pem")
    args = parser.parse_args(argv)
    app = create_app()
    ssl_context = (args.cert, args.key) if args.cert and args.key else None
    # werkzeug's server itself, not app.run(): this is its own program, and app.run() returns
    # at once under a FLASK_RUN_FROM_CLI inherited from a parent that ran the flask CLI.
    run_simple(args.host, args.port, app, ssl_context=ssl_context, threaded=True)
