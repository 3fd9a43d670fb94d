"""``idp serve``: gunicorn in-process, with the settings of ``deploy/gunicorn.conf.py``."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from idp import create_app


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app()


def run(bind: str, workers: int) -> None:
    _Server({"bind": bind, "workers": workers, "accesslog": "-",
             "worker_class": "sync", "timeout": 30}).run()
