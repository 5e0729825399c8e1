"""Short-TTL read cache with request coalescing (concurrent identical reads share one request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    invalidations: int = 0


_ALL = object()  # the generation tag of full invalidations


class ReadCache:
    """Values keyed by ``(scope, key)``, each tagged with the node it concerns (or None).

    ``invalidate(scope)`` drops everything of a scope (a cluster, a PBS server);
    ``invalidate(scope, nodes)`` drops the entries of those nodes plus the scope-wide ones
    (``/cluster/resources`` lists every guest, so an action on any node changes it) and keeps
    what other nodes answered. A read still in flight when its entries are invalidated is
    returned to its callers but not kept.

    A TTL of 0 disables caching but keeps coalescing of requests that are in flight together.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._values: dict[tuple[Hashable, Hashable], tuple[float, Any, str | None]] = {}
        self._inflight: dict[tuple[Hashable, Hashable], asyncio.Future[Any]] = {}
        # Bumped by every invalidation touching (scope, tag); (scope, ALL) by full ones.
        self._generation: dict[tuple[Hashable, object], int] = {}

    async def get_or_fetch(
        self,
        scope: Hashable,
        key: Hashable,
        fetch: Callable[[], Awaitable[Any]],
        node: str | None = None,
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
        generation = self._generations(scope, node)
        try:
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(value)
            # A write that happened while we fetched makes this answer stale: don't keep it.
            if self.ttl > 0 and self._generations(scope, node) == generation:
                if len(self._values) >= self.max_entries:
                    self._evict(now)
                self._values[full] = (time.monotonic() + self.ttl, value, node)
            return value
        finally:
            self._inflight.pop(full, None)

    def invalidate(self, scope: Hashable, nodes: Iterable[str] | None = None) -> None:
        """Forget what ``scope`` answered: all of it, or what concerns ``nodes``.

        Scope-wide entries (tag None) go in both cases.
        """
        self.stats.invalidations += 1
        tags: set[object] = {_ALL} if nodes is None else {None, *nodes}
        for tag in tags:
            self._generation[(scope, tag)] = self._generation.get((scope, tag), 0) + 1
        for full, (_, _, node) in list(self._values.items()):
            if full[0] == scope and (nodes is None or node in tags):
                del self._values[full]

    def _generations(self, scope: Hashable, node: str | None) -> tuple[int, int]:
        g = self._generation
        return g.get((scope, _ALL), 0), g.get((scope, node), 0)

    def _evict(self, now: float) -> None:
        for full in [k for k, (exp, _, _) in self._values.items() if exp <= now]:
            del self._values[full]
        while len(self._values) >= self.max_entries:
            self._values.pop(next(iter(self._values)))
