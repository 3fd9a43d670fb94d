"""Store implementation on Redis, for deployments with several idp machines."""

from __future__ import annotations

from typing import cast

import redis


class RedisStore:
    def __init__(self, client: redis.Redis, prefix: str = "idp:") -> None:
        self._r = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "idp:") -> RedisStore:
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        return cls(client, prefix)

    def _k(self, key: str) -> str:
        return self._prefix + key

    def get(self, key: str) -> str | None:
        return cast(str | None, self._r.get(self._k(key)))

    def set(self, key: str, value: str, ttl: int) -> None:
        self._r.set(self._k(key), value, ex=ttl)

    def add(self, key: str, value: str, ttl: int) -> bool:
        return bool(self._r.set(self._k(key), value, ex=ttl, nx=True))

    def take(self, key: str) -> str | None:
        return cast(str | None, self._r.getdel(self._k(key)))

    def delete(self, key: str) -> None:
        self._r.delete(self._k(key))

    def incr(self, key: str, ttl: int) -> int:
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._k(key), 0, ex=ttl, nx=True)
        pipe.incr(self._k(key))
        return int(pipe.execute()[1])

    def ttl(self, key: str) -> int | None:
        left = int(self._r.ttl(self._k(key)))
        return None if left < 0 else left

    def clear_prefix(self) -> None:
        """Delete every key under this store's prefix (tests use a prefix of their own)."""
        for key in self._r.scan_iter(match=self._prefix + "*", count=500):
            self._r.delete(key)
