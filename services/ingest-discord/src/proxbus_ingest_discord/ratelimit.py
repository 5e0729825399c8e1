"""Warnings a remote party can trigger, at most a few per interval (the rest counted)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` records per ``interval`` seconds; then one summary of what was held back."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._window_start = clock()
        self._emitted = 0
        self.suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        self._emit(logging.WARNING, msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._emit(logging.INFO, msg, args)

    def _emit(self, level: int, msg: str, args: tuple[object, ...]) -> None:
        now = self._clock()
        if now - self._window_start >= self._interval:
            if self.suppressed:
                self._log.log(
                    level, "%d similar messages suppressed in the last %.0fs",
                    self.suppressed, now - self._window_start,
                )  # fmt: skip
            self._window_start, self._emitted, self.suppressed = now, 0, 0
        if self._emitted < self._burst:
            self._emitted += 1
            self._log.log(level, msg, *args)
        else:
            self.suppressed += 1
