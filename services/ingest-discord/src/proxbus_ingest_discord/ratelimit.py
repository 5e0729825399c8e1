"""Per-user rate limit of commands and clicks (``DISCORD_USER_RATE`` per minute, per replica).

A token bucket per Discord user id: ``per_minute`` at once, refilled at ``per_minute`` a
minute. At most ``max_users`` buckets are kept (the least recently seen go first), so memory
stays bounded whatever the number of users.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class UserRate:
    """``allow(user_id)``: whether this user may have one more interaction now."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_users: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self._refill = per_minute / 60.0
        self._max_users = max_users
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, user_id: str) -> bool:
        now = self._clock()
        tokens, seen = self._buckets.pop(user_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - seen) * self._refill)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[user_id] = (tokens, now)
        while len(self._buckets) > self._max_users:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
