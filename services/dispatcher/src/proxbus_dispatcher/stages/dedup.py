"""Dedup (Alertmanager's notification log): the same fingerprint on the same route is notified
at most once per ``repeat_interval``; no I/O."""

from __future__ import annotations

import time
from collections.abc import Callable

from proxbus_events import Event

from ..config import Route

Clock = Callable[[], float]


class DedupCache:
    """Remembers (route, fingerprint) for the route's ``repeat_interval``."""

    def __init__(self, clock: Clock = time.monotonic, max_entries: int = 200_000) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._max = max_entries

    def check_and_remember(self, route: Route, event: Event) -> bool:
        """True if ``event`` repeats one notified on ``route`` within ``repeat_interval``."""
        if route.repeat_interval <= 0:
            return False
        now = self._clock()
        key = (route.id, event.fingerprint)
        until = self._seen.get(key)
        if until is not None and until > now:
            return True
        if len(self._seen) >= self._max:
            self.prune()
        self._seen[key] = now + route.repeat_interval
        return False

    def forget(self, route: Route, event: Event) -> None:
        """Undo ``check_and_remember`` when the notification could not be enqueued."""
        self._seen.pop((route.id, event.fingerprint), None)

    def prune(self) -> None:
        now = self._clock()
        self._seen = {k: v for k, v in self._seen.items() if v > now}
        while len(self._seen) >= self._max:
            self._seen.pop(next(iter(self._seen)))

    def __len__(self) -> int:
        return len(self._seen)
