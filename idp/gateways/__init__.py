"""Outside services behind small protocols, chosen by a dotted path in configuration."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from idp.config import ConfigError, Settings


def load_service(path: str, settings: Settings, setting_name: str) -> Any:
    """Instantiate ``module:Class`` with the settings; a bad path is a configuration error."""
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{setting_name}: cannot load {path!r}: {exc}") from None
    return cls(settings)
