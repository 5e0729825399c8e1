"""The severity floor: events below ``MIN_SEVERITY`` are dropped before anything else."""

from __future__ import annotations

from proxbus_events import Event, Severity


class SeverityFloor:
    """Drops (reason ``below_min_severity``) what is below ``floor``."""

    reason = "below_min_severity"

    def __init__(self, floor: Severity) -> None:
        self.floor = floor
        self._rank = floor.rank

    def check(self, event: Event) -> str | None:
        """The suppression detail (the floor) when ``event`` is below it, else ``None``."""
        return self.floor.value if event.severity.rank < self._rank else None
