"""A cursor over lists keyed by (time, id) whose entries may show up late: each entry once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
MAX_SEEN = 5000

EntryKey = tuple[int, str]


@dataclass(slots=True)
class FollowCursor:
    """High-water time plus the ids seen within ``lookback`` seconds before it.

    Proxmox merges per-node lists asynchronously, so an entry can appear after newer ones
    from another node. Entries older than ``high_water - lookback`` count as handled;
    newer ones are handled once, remembered by id (bounded to ``MAX_SEEN`` ids).
    """

    high_water: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    initialized: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"high_water": self.high_water, "seen": self.seen}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FollowCursor:
        if not data:
            return cls()
        raw = data.get("seen")
        seen = (
            {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}
            if isinstance(raw, dict)
            else {}
        )
        return cls(high_water=int(data.get("high_water") or 0), seen=seen, initialized=True)

    def select(
        self, items: Iterable[T], key: Callable[[T], EntryKey | None], lookback: int
    ) -> list[T]:
        """The items not handled yet, oldest first (call ``advance`` after handling them)."""
        floor = self.high_water - lookback
        fresh: list[tuple[int, str, T]] = []
        taken: set[str] = set()
        for item in items:
            k = key(item)
            if k is None:
                continue
            t, ident = k
            if t < floor or ident in self.seen or ident in taken:
                continue
            taken.add(ident)
            fresh.append((t, ident, item))
        fresh.sort(key=lambda x: (x[0], x[1]))
        return [x[2] for x in fresh]

    def advance(self, handled: Iterable[EntryKey], lookback: int) -> None:
        """Remember ``handled`` keys, move the high-water mark, forget ids below the window."""
        for t, ident in handled:
            self.seen[ident] = t
            self.high_water = max(self.high_water, t)
        floor = self.high_water - lookback
        self.seen = {k: t for k, t in self.seen.items() if t >= floor}
        if len(self.seen) > MAX_SEEN:
            keep = sorted(self.seen.items(), key=lambda kv: kv[1])[-MAX_SEEN:]
            self.seen = dict(keep)
        self.initialized = True

    def baseline(self, keys: Iterable[EntryKey], lookback: int) -> None:
        """First run: take everything present as handled (no replay of history)."""
        self.advance(keys, lookback)
