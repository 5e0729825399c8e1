"""Per-endpoint circuit breaker: stop hammering a node that keeps failing (pure, clock injected)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one probe through after ``cooldown``.

    A success closes it again; a failed probe re-opens it for another ``cooldown``.
    """

    threshold: int = 3
    cooldown: float = 15.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None
    _probing: bool = field(default=False, repr=False)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """True if a request may be sent now (closed, or the single half-open probe)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def record_failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self._probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self._probing = False
