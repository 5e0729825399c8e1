"""Inhibition: an active source event mutes target events sharing the ``equal`` labels.

A source stays active for the rule's ``duration`` after it was last seen, or until an event
matching ``resolve_matchers`` with the same ``equal`` labels arrives. As in Alertmanager, an
event matching both sides of a rule is never muted by that rule, and a label missing from both
events counts as equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from proxbus_events import Event, match_all

from ..config import InhibitRuleConfig
from .routing import label_value


class Inhibitor:
    """Remembers active sources per rule and answers whether an event is inhibited."""

    def __init__(
        self, rules: list[InhibitRuleConfig], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rules = rules
        self._clock = clock
        self._sources: list[dict[tuple[str, ...], float]] = [{} for _ in rules]

    def _key(self, rule: InhibitRuleConfig, event: Event) -> tuple[str, ...]:
        return tuple(label_value(event, label) for label in rule.equal)

    def observe(self, event: Event) -> None:
        """Record ``event`` as a source (or a resolution) for every rule it matches."""
        now = self._clock()
        for rule, sources in zip(self.rules, self._sources, strict=True):
            if rule.resolve_matchers and match_all(rule.resolve_matchers, event):
                sources.pop(self._key(rule, event), None)
            if match_all(rule.source_matchers, event):
                sources[self._key(rule, event)] = now + rule.duration

    def inhibiting_rule(self, event: Event) -> int | None:
        """Index of the rule that mutes ``event``, or ``None``."""
        now = self._clock()
        for i, (rule, sources) in enumerate(zip(self.rules, self._sources, strict=True)):
            if not sources or not match_all(rule.target_matchers, event):
                continue
            if match_all(rule.source_matchers, event):
                continue
            key = self._key(rule, event)
            until = sources.get(key)
            if until is None:
                continue
            if until > now:
                return i
            del sources[key]
        return None

    @property
    def active_sources(self) -> int:
        now = self._clock()
        return sum(1 for s in self._sources for until in s.values() if until > now)
