"""A circuit breaker per receiver: a target that keeps failing costs one probe per interval.

After ``threshold`` consecutive retryable failures (timeouts, 5xx, connection errors) the
circuit opens: the delivery worker stops taking deliveries for ``interval`` seconds, then
takes exactly one (the probe). A success closes the circuit; a failure opens it again. A
permanent error (the target answered "never") is not a failure of the target's availability.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Counts consecutive failures; ``wait()`` says how long to hold off before the next take."""

    def __init__(
        self, threshold: int, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.interval = interval
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def wait(self) -> float:
        """Seconds until a delivery may be taken (0: now; while a probe runs: the interval)."""
        if self.opened_at is None:
            return 0.0
        if self.probing:
            return self.interval
        return max(0.0, self.opened_at + self.interval - self._clock())

    def take_probe(self) -> None:
        """The circuit is open and its interval passed: the next delivery is the probe."""
        self.probing = True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at = self._clock()
        self.probing = False
