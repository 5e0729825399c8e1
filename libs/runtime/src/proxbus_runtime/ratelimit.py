"""``TokenBucket``: the one rate limiter (syslog per source, the dispatcher per receiver)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (default ``max(1, rate)``)."""

    __slots__ = ("_clock", "_lock", "burst", "rate", "tokens", "updated")

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: float | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = float(burst) if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self._clock = clock
        self.updated = clock() if now is None else now
        self._lock: asyncio.Lock | None = None

    def try_take(self, now: float | None = None) -> bool:
        """Take one token if there is one; never waits."""
        now = self._clock() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    async def take(self) -> None:
        """Wait for a token; concurrent callers are served in turn."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:
                if self.try_take():
                    return
                # Pacing, not synchronisation: the next token is due at a known time.
                await asyncio.sleep((1.0 - self.tokens) / self.rate)
