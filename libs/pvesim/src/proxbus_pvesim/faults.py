"""Request-level fault rules: latency, forced error statuses and dropped connections."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ErrorRule:
    """Answer requests under ``prefix`` with ``status`` (``remaining`` None = until cleared)."""

    prefix: str
    status: int
    reason: str
    remaining: int | None


@dataclass(slots=True)
class DropRule:
    """Close the TCP connection without answering for requests under ``prefix``."""

    prefix: str
    remaining: int | None


@dataclass(slots=True)
class FaultRules:
    """All request-level faults of one API listener."""

    latency: dict[str, float] = field(default_factory=dict)
    errors: list[ErrorRule] = field(default_factory=list)
    drops: list[DropRule] = field(default_factory=list)

    @staticmethod
    def _under(path: str, prefix: str) -> bool:
        return path == prefix or path.startswith(prefix.rstrip("/") + "/") or prefix in ("", "/")

    def delay_for(self, path: str) -> float:
        """Added latency for ``path`` (longest matching prefix wins)."""
        best, delay = -1, 0.0
        for prefix, seconds in self.latency.items():
            if self._under(path, prefix) and len(prefix) > best:
                best, delay = len(prefix), seconds
        return delay

    def take_error(self, path: str) -> ErrorRule | None:
        """Consume one forced error for ``path`` if a rule matches."""
        for rule in self.errors:
            if self._under(path, rule.prefix):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.errors.remove(rule)
                return rule
        return None

    def take_drop(self, path: str) -> bool:
        """Consume one connection drop for ``path`` if a rule matches."""
        for rule in self.drops:
            if self._under(path, rule.prefix):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.drops.remove(rule)
                return True
        return False

    def clear(self) -> None:
        """Remove every rule."""
        self.latency.clear()
        self.errors.clear()
        self.drops.clear()
