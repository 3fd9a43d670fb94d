"""Shared short-lived state: SSO sessions, SMS codes, rate-limit counters, replay guards.

Every idp process behind a load balancer must see the same state, so none of it lives in a
process. One small interface, two implementations chosen by configuration: ``DatabaseStore``
(the provider's own database; nothing else to run) and ``RedisStore`` (``IDP_REDIS_URL``).
Values are strings; callers serialise JSON themselves. Every operation is atomic on its own.
"""

from __future__ import annotations

from typing import Protocol

from flask import Flask, current_app

from idp.store.database import DatabaseStore
from idp.store.redis import RedisStore

__all__ = ["DatabaseStore", "RedisStore", "Store", "create_store", "get_store", "take_slot"]


class Store(Protocol):
    def get(self, key: str) -> str | None:
        """The live value, or None when absent or expired."""

    def set(self, key: str, value: str, ttl: int) -> None:
        """Store ``value`` for ``ttl`` seconds, replacing any previous value."""

    def add(self, key: str, value: str, ttl: int) -> bool:
        """Store only if absent; True when this call created it (a replay guard)."""

    def take(self, key: str) -> str | None:
        """Return and delete in one step, so that a single-use value is used once."""

    def delete(self, key: str) -> None:
        """Remove the key if present."""

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter; a new counter starts at 1 and expires after ``ttl`` seconds."""

    def ttl(self, key: str) -> int | None:
        """Seconds left before the key expires, or None when absent."""


def create_store(app: Flask) -> Store:
    """Pick the implementation from settings: Redis when configured, else the database."""
    settings = app.config["IDP"]
    use_redis = settings.store == "redis" or (settings.store == "auto" and settings.redis_url)
    if use_redis:
        return RedisStore.from_url(settings.redis_url, prefix=settings.redis_prefix)
    return DatabaseStore(app)


def get_store() -> Store:
    store: Store = current_app.extensions["idp.store"]
    return store


def take_slot(store: Store, key: str, limit: int, window: int) -> int | None:
    """Count one event against "at most ``limit`` in any ``window`` seconds"; None when allowed,
    else the seconds until the oldest event leaves the window.

    A counter per clock hour would let ``2 × limit`` through across the hour's edge; instead each
    event holds one of ``limit`` slots for exactly ``window`` seconds, taken with the atomic
    ``add``. That makes the window rolling and exact, with no read-modify-write race between
    processes, at the price of up to ``limit`` store calls when the limit is (nearly) reached.
    """
    for slot in range(limit):
        if store.add(f"{key}:{slot}", "1", window):
            return None
    waits = [store.ttl(f"{key}:{slot}") for slot in range(limit)]
    return max(1, min((w for w in waits if w is not None), default=1))
