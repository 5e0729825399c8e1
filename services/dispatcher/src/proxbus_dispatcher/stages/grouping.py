"""Aggregation groups (Alertmanager semantics); no I/O.

A group is keyed by route + ``group_by`` label values. Its first notification goes out
``group_wait`` after the group was created; events arriving later wait for the next tick,
``group_interval`` after the previous notification. An idle group (nothing pending for a whole
``group_interval``) is dropped, so the next event starts a new group with ``group_wait``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from proxbus_events import Event

from ..config import Route
from .routing import group_key, group_labels

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(slots=True, eq=False)
class AggregationGroup(Generic[T]):
    """Events of one route with the same ``group_by`` values, waiting for their notification."""

    key: str
    route: Route
    labels: dict[str, str]
    next_flush: float
    pending: list[tuple[Event, T]] = field(default_factory=list)
    last_flush: float | None = None
    flushes: int = 0


class Grouper(Generic[T]):
    """Holds groups; ``due()`` pops what must be notified now. ``T`` is the caller's handle."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.groups: dict[str, AggregationGroup[T]] = {}

    def add(
        self,
        route: Route,
        event: Event,
        handle: T,
        labels_of: dict[str, str] | None = None,
        incident: str | None = None,
    ) -> tuple[AggregationGroup[T], bool]:
        """Put ``event`` in its group (the group of the label values ``labels_of`` when given:
        an incident's events all go where its first event went); returns the group and
        whether it was just created. With ``group_by: ['...']`` each ``incident`` is a group
        of its own (a later incident must not wait for the earlier one's group_interval)."""
        labels = group_labels(route, labels_of if labels_of is not None else event)
        key = group_key(route, labels)
        if incident is not None and route.groups_all:
            key += f"#{incident}"
        group = self.groups.get(key)
        created = group is None
        if group is None:
            group = AggregationGroup(key, route, labels, self._clock() + route.group_wait)
            self.groups[key] = group
        elif not group.pending and group.last_flush is not None:
            group.next_flush = max(group.next_flush, group.last_flush + route.group_interval)
        group.pending.append((event, handle))
        return group, created

    def due(self) -> list[tuple[AggregationGroup[T], list[tuple[Event, T]]]]:
        """Groups whose notification is due now, with the events it lists (removed from the group)."""
        now = self._clock()
        out: list[tuple[AggregationGroup[T], list[tuple[Event, T]]]] = []
        for key, group in list(self.groups.items()):
            if group.pending and group.next_flush <= now:
                items, group.pending = group.pending, []
                group.last_flush = now
                group.flushes += 1
                group.next_flush = now + group.route.group_interval
                out.append((group, items))
            elif (
                not group.pending
                and group.last_flush is not None
                and now >= group.last_flush + group.route.group_interval
            ):
                del self.groups[key]
        return out

    def retry_later(
        self, group: AggregationGroup[T], items: list[tuple[Event, T]], delay: float
    ) -> None:
        """Put back events whose notification could not be enqueued; try again after ``delay``."""
        group.pending[:0] = items
        group.next_flush = self._clock() + delay
        self.groups.setdefault(group.key, group)

    def flush_all(self) -> list[tuple[AggregationGroup[T], list[tuple[Event, T]]]]:
        """Every pending event now (shutdown: deliver early rather than hand over)."""
        out = []
        for group in self.groups.values():
            if group.pending:
                items, group.pending = group.pending, []
                out.append((group, items))
        return out

    def next_deadline(self) -> float | None:
        deadlines = [g.next_flush for g in self.groups.values() if g.pending]
        return min(deadlines) if deadlines else None

    def held(self) -> Iterator[T]:
        for group in self.groups.values():
            for _, handle in group.pending:
                yield handle

    @property
    def pending_count(self) -> int:
        return sum(len(g.pending) for g in self.groups.values())


def chunk(
    items: list[tuple[Event, T]], max_items: int, max_bytes: int, size: Callable[[T], int]
) -> list[list[tuple[Event, T]]]:
    """Split a group's events into notifications of at most ``max_items`` / ~``max_bytes``."""
    out: list[list[tuple[Event, T]]] = []
    current: list[tuple[Event, T]] = []
    total = 0
    for item in items:
        item_size = size(item[1])
        if current and (len(current) >= max_items or total + item_size > max_bytes):
            out.append(current)
            current, total = [], 0
        current.append(item)
        total += item_size
    if current:
        out.append(current)
    return out
