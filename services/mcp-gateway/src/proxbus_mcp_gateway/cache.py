"""Short-TTL read cache with request coalescing (concurrent identical reads share one request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    invalidations: int = 0


class ReadCache:
    """Values keyed by ``(scope, ...)``; ``invalidate(scope)`` drops everything of one scope.

    A TTL of 0 disables caching but keeps coalescing of requests that are in flight together.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._generation: dict[Hashable, int] = {}

    async def get_or_fetch(
        self, scope: Hashable, key: Hashable, fetch: Callable[[], Awaitable[Any]]
    ) -> Any:
        full = (scope, key)
        hit = self._values.get(full)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            self.stats.hits += 1
            return hit[1]
        pending = self._inflight.get(full)
        if pending is not None:
            self.stats.coalesced += 1
            return await asyncio.shield(pending)
        self.stats.misses += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[full] = future
        generation = self._generation.get(scope, 0)
        try:
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(value)
            # A write that happened while we fetched makes this answer stale: don't keep it.
            if self.ttl > 0 and self._generation.get(scope, 0) == generation:
                if len(self._values) >= self.max_entries:
                    self._evict(now)
                self._values[full] = (time.monotonic() + self.ttl, value)
            return value
        finally:
            self._inflight.pop(full, None)

    def invalidate(self, scope: Hashable) -> None:
        """Forget every cached value of ``scope`` (e.g. after an action in that cluster)."""
        self.stats.invalidations += 1
        self._generation[scope] = self._generation.get(scope, 0) + 1
        for full in [k for k in self._values if k[0] == scope]:  # type: ignore[index]
            del self._values[full]

    def _evict(self, now: float) -> None:
        for full in [k for k, (exp, _) in self._values.items() if exp <= now]:
            del self._values[full]
        while len(self._values) >= self.max_entries:
            self._values.pop(next(iter(self._values)))
