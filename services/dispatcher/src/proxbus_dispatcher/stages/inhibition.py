"""Inhibition: an active source event mutes target events sharing the ``equal`` labels.

A source stays active for the rule's ``duration`` after it was last seen, or until an event
matching ``resolve_matchers`` with the same ``equal`` labels arrives. As in Alertmanager, an
event matching both sides of a rule is never muted by that rule, and a label missing from both
events counts as equal. Matchers read an event as a route's do (``routing.route_matches``: a
``node`` matcher matches a lost knet peer's lines by the peer's name and their reporter).
Active sources live in a mapping the caller persists (``state``):
``observe`` returns the changes to store.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from proxbus_events import Event

from ..config import InhibitRuleConfig
from .routing import label_value, route_matches

INHIBIT_PREFIX = "inh."


def inhibit_key(rule: int, labels: tuple[str, ...]) -> str:
    """The state key of rule ``rule``'s source with ``equal`` label values ``labels``."""
    digest = hashlib.sha256("\x1f".join(labels).encode()).hexdigest()[:32]
    return f"{INHIBIT_PREFIX}{rule}.{digest}"


class Inhibitor:
    """Answers whether an event is inhibited from the active sources in ``sources``."""

    def __init__(
        self,
        rules: list[InhibitRuleConfig],
        clock: Callable[[], float] = time.time,
        sources: dict[str, float] | None = None,
    ) -> None:
        self.rules = rules
        self._clock = clock
        # state key → until (wall clock: shared by replicas and restarts)
        self.sources: dict[str, float] = {} if sources is None else sources

    def _key(self, index: int, rule: InhibitRuleConfig, event: Event) -> str:
        return inhibit_key(index, tuple(label_value(event, label) for label in rule.equal))

    def observe(self, event: Event) -> list[tuple[str, float | None]]:
        """Record ``event`` as a source (or a resolution) for every rule it matches; returns
        the ``(key, until or None for removed)`` changes worth storing."""
        if not self.rules:
            return []
        now = self._clock()
        changes: list[tuple[str, float | None]] = []
        for i, rule in enumerate(self.rules):
            if rule.resolve_matchers and route_matches(rule.resolve_matchers, event):
                key = self._key(i, rule, event)
                if self.sources.pop(key, None) is not None:
                    changes.append((key, None))
            if route_matches(rule.source_matchers, event):
                key = self._key(i, rule, event)
                until = now + rule.duration
                # Extending by less than a tenth of the duration is not worth a write.
                if until - self.sources.get(key, 0.0) > rule.duration / 10:
                    changes.append((key, until))
                self.sources[key] = max(until, self.sources.get(key, 0.0))
        return changes

    def inhibiting_rule(self, event: Event) -> int | None:
        """Index of the rule that mutes ``event``, or ``None``."""
        if not self.sources:
            return None
        now = self._clock()
        for i, rule in enumerate(self.rules):
            if not route_matches(rule.target_matchers, event):
                continue
            if route_matches(rule.source_matchers, event):
                continue
            until = self.sources.get(self._key(i, rule, event))
            if until is not None and until > now:
                return i
        return None

    @property
    def active_sources(self) -> int:
        now = self._clock()
        return sum(1 for until in self.sources.values() if until > now)
