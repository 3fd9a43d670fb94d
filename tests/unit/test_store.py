"""The shared-state store (SSO sessions, SMS codes, rate-limit counters: D03, S17, D01).

One behaviour contract, run against every implementation on the real thing: DatabaseStore on
SQLite and on PostgreSQL (through the ``app`` fixture), and RedisStore on the Redis server at
127.0.0.1:6379 under a key prefix of its own that is removed afterwards.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from idp.db import utcnow
from idp.extensions import db
from idp.store import DatabaseStore, RedisStore, Store, get_store, take_slot
from idp.store.database import StoreEntry
from tests.conftest import REDIS_URL, make_app


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together by a barrier; results in order."""
    barrier = threading.Barrier(n, timeout=30)

    def run(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n), timeout=60))


class StoreContract:
    """The behaviour every Store implementation must show (the Store protocol's docstrings)."""

    def test_d03_set_get_ttl_roundtrip(self, store: Store) -> None:
        """D03: set stores a string for ttl seconds; get returns it; ttl counts down."""
        assert store.get("missing") is None
        assert store.ttl("missing") is None
        store.set("k", "验证码:123456 {\"json\": true}", 100)
        assert store.get("k") == "验证码:123456 {\"json\": true}"
        assert 99 <= (store.ttl("k") or 0) <= 100
        store.set("empty", "", 100)
        assert store.get("empty") == ""  # an empty value is not "absent"

    def test_d03_set_replaces_value_and_expiry(self, store: Store) -> None:
        store.set("k", "old", 1000)
        store.set("k", "new", 50)
        assert store.get("k") == "new"
        assert 49 <= (store.ttl("k") or 0) <= 50

    def test_d03_delete(self, store: Store) -> None:
        store.set("k", "v", 100)
        store.delete("k")
        store.delete("never-there")  # no error
        assert store.get("k") is None
        assert store.ttl("k") is None

    def test_d03_add_only_if_absent(self, store: Store) -> None:
        """D03: add is a replay guard — True only for the call that created the key."""
        assert store.add("jti", "first", 100) is True
        assert store.add("jti", "second", 100) is False
        assert store.get("jti") == "first"
        assert 99 <= (store.ttl("jti") or 0) <= 100

    def test_d03_take_is_get_and_delete(self, store: Store) -> None:
        """D03: a single-use value (an SMS code) is handed out once: the second take gets None."""
        store.set("code", "hashed-code", 300)
        assert store.take("code") == "hashed-code"
        assert store.take("code") is None
        assert store.get("code") is None
        assert store.take("never-there") is None

    def test_d03_incr_starts_at_one_and_counts(self, store: Store) -> None:
        """D03: rate-limit counters start at 1 and count up within their window."""
        assert store.incr("sms:phone:13800138000", 3600) == 1
        assert store.incr("sms:phone:13800138000", 3600) == 2
        assert store.incr("sms:phone:13800138000", 3600) == 3
        assert store.incr("other", 3600) == 1
        assert 3599 <= (store.ttl("sms:phone:13800138000") or 0) <= 3600

    def test_d03_incr_keeps_the_window_of_the_first_count(self, store: Store) -> None:
        """D03: later increments do not extend the window (a fixed window per limit)."""
        store.incr("window", 100)
        store.incr("window", 100_000)
        assert (store.ttl("window") or 0) <= 100

    def test_d03_expiry(self, store: Store) -> None:
        """D03: values, guards and counters vanish after their ttl (codes valid 5 minutes…)."""
        store.set("value", "v", 1)
        store.add("guard", "g", 1)
        store.incr("counter", 1)
        store.incr("counter", 1)
        store.set("taken", "t", 1)
        store.set("long", "l", 100)
        time.sleep(1.1)
        assert store.get("value") is None
        assert store.ttl("value") is None
        assert store.take("taken") is None
        assert store.add("guard", "again", 100) is True  # an expired guard is free again
        assert store.get("guard") == "again"
        assert store.incr("counter", 100) == 1  # a new window starts at 1
        assert store.get("long") == "l"

    def test_d03_take_race_has_exactly_one_winner(self, store: Store) -> None:
        """D03: 20 threads racing to use one SMS code — exactly one gets it."""
        store.set("race", "the-code", 300)
        results = race(20, lambda _: store.take("race"))
        assert sorted(results, key=lambda r: r is None) == ["the-code"] + [None] * 19

    def test_d03_add_race_has_exactly_one_winner(self, store: Store) -> None:
        """D03: 20 threads adding one replay guard — exactly one True."""
        results = race(20, lambda i: store.add("guard", f"thread-{i}", 300))
        assert results.count(True) == 1 and results.count(False) == 19
        assert store.get("guard") == f"thread-{results.index(True)}"

    def test_d03_incr_race_counts_every_call(self, store: Store) -> None:
        """D03: 50 concurrent increments — the counter ends at 50, each call saw its own value."""
        results = race(50, lambda _: store.incr("limit", 3600))
        assert sorted(results) == list(range(1, 51))
        assert store.incr("limit", 3600) == 51


    def test_d03_take_slot_is_a_rolling_window(self, store: Store) -> None:
        """D03: "at most N an hour" holds for any hour, not per clock hour: N events pass, the
        next waits for the oldest to leave the window, and then exactly one more passes."""
        assert take_slot(store, "w", 2, 2) is None
        time.sleep(1.0)
        assert take_slot(store, "w", 2, 2) is None
        wait = take_slot(store, "w", 2, 2)
        assert wait is not None and 1 <= wait <= 2
        time.sleep(1.2)  # the first event has left the window, the second has not
        assert take_slot(store, "w", 2, 2) is None
        assert take_slot(store, "w", 2, 2) is not None

    def test_d03_take_slot_race_lets_exactly_the_limit_through(self, store: Store) -> None:
        """D03: 20 concurrent sends against a limit of 5 — exactly 5 pass."""
        results = race(20, lambda _: take_slot(store, "burst", 5, 3600))
        assert results.count(None) == 5


class TestDatabaseStore(StoreContract):
    """DatabaseStore on SQLite and on PostgreSQL (the ``app`` fixture runs both)."""

    @pytest.fixture
    def store(self, app: Any) -> DatabaseStore:
        store = get_store()
        assert isinstance(store, DatabaseStore)
        return store

    def test_d03_purge_expired_removes_only_expired(self, store: DatabaseStore) -> None:
        """D03: `idp store purge` deletes expired rows and keeps live ones."""
        store.purge_every = 0  # no sweep from set() in the middle of this test
        past = utcnow() - timedelta(seconds=5)
        with store.engine.begin() as conn:
            conn.execute(sa.insert(StoreEntry.__table__), [
                {"key": "old1", "value": "x", "counter": 0, "expires_at": past},
                {"key": "old2", "value": None, "counter": 3, "expires_at": past},
            ])
        store.set("live", "v", 100)
        assert store.get("old1") is None  # expired rows are invisible before purging too
        assert store.purge_expired() == 2
        assert store.purge_expired() == 0
        with store.engine.connect() as conn:
            keys = set(conn.scalars(sa.select(StoreEntry.key)))
        assert keys == {"live"}

    def test_d03_set_sweeps_expired_rows_now_and_then(self, store: DatabaseStore) -> None:
        """D03: abandoned keys (old session ids) do not pile up: set() sweeps expired rows
        about once in ``purge_every`` writes; here on every write."""
        past = utcnow() - timedelta(seconds=5)
        with store.engine.begin() as conn:
            conn.execute(sa.insert(StoreEntry.__table__), [
                {"key": "abandoned", "value": "x", "counter": 0, "expires_at": past}])
        store.purge_every = 1
        try:
            store.set("fresh", "v", 100)
        finally:
            store.purge_every = 500
        with store.engine.connect() as conn:
            keys = set(conn.scalars(sa.select(StoreEntry.key)))
        assert keys == {"fresh"}

    def test_d03_survives_rollback_of_the_request_session(self, store: DatabaseStore) -> None:
        """D03: a failure counter written during a request that rolls back stays counted."""
        db.session.execute(sa.select(sa.func.count()).select_from(StoreEntry))  # request txn
        assert store.incr("lockout:13800138000", 900) == 1
        db.session.rollback()  # the request fails
        assert store.incr("lockout:13800138000", 900) == 2


class TestRedisStore(StoreContract):
    """RedisStore on the real Redis server, under a prefix of its own."""

    @pytest.fixture
    def store(self) -> Iterator[RedisStore]:
        prefix = f"idp-test-{secrets.token_hex(8)}:"
        store = RedisStore.from_url(REDIS_URL, prefix=prefix)
        yield store
        store.clear_prefix()
        assert not list(store._r.scan_iter(match=prefix + "*"))

    def test_d03_prefix_isolates_stores(self, store: RedisStore) -> None:
        """D03: two stores with different prefixes do not see each other's keys."""
        other = RedisStore.from_url(REDIS_URL, prefix=f"idp-test-{secrets.token_hex(8)}:")
        try:
            store.set("k", "mine", 100)
            assert other.get("k") is None
            assert other.add("k", "theirs", 100) is True
            assert store.get("k") == "mine"
        finally:
            other.clear_prefix()


# --- which implementation the app picks ----------------------------------------------------------

@pytest.mark.parametrize(("store_setting", "redis_url", "expected"), [
    ("auto", REDIS_URL, RedisStore),
    ("redis", REDIS_URL, RedisStore),
    ("auto", "", DatabaseStore),
    ("database", REDIS_URL, DatabaseStore),
])
def test_d03_create_app_picks_the_store(tmp_path: Path, store_setting: str, redis_url: str,
                                        expected: type) -> None:
    """D03: Redis when redis_url is set (store=auto) or asked for; else the database."""
    app = make_app(f"sqlite:///{tmp_path / 'idp.sqlite3'}", tmp_path, store=store_setting,
                   redis_url=redis_url)
    with app.app_context():
        try:
            store = get_store()
            assert type(store) is expected
            if expected is RedisStore:
                # it talks to the configured server (a read of a key nobody uses)
                assert store.get(f"idp-test-absent-{secrets.token_hex(8)}") is None
        finally:
            db.engine.dispose()
