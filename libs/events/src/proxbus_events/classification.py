"""The classifier shape every ingest service shares: rule table, classification, rejection.

Pure (no I/O). A service lists what it recognises as ``Rule``s, each bound to the programs
it applies to (a syslog app name, a cluster-log tag; ``ANY_PROGRAM`` for rules that hold
whatever the sender). ``RuleTable`` indexes them by program once, so classifying a line
runs only the rules of its program: the table can grow without slowing the hot path.

A rule's ``build`` turns the regex match plus the service's own input (a syslog message, a
mail, a cluster-log entry) into a ``Classification``; returning ``None`` lets the next rule
try. What no rule claims gets the table's fallback kind. Input that is not a message at
all is a ``Rejection``: counted by the service, never an event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .event import Severity

ANY_PROGRAM = "*"

InputT = TypeVar("InputT")


@dataclass(slots=True)
class Classification:
    """What an input means: its kind plus the facts a rule extracted.

    ``node`` is the node the event is about when it is not the sender (the fenced node);
    ``severity`` is a minimum on top of the source's own (contract floors apply after);
    ``dedup_key`` makes two inputs that report one fact share one event id.
    """

    kind: str
    title: str | None = None
    node: str | None = None
    vmid: int | None = None
    correlation_id: str | None = None
    severity: Severity | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    dedup_key: tuple[object, ...] | None = None
    rule: str = ""


@dataclass(slots=True, frozen=True)
class Rejection:
    """Input that is not a message at all; ``reason`` is a short token (the metric label)."""

    reason: str
    detail: str = ""


Builder = Callable[[re.Match[str], InputT], Classification | None]


@dataclass(slots=True, frozen=True)
class Rule(Generic[InputT]):
    """``pattern`` is searched in the text of inputs from one of ``programs``.

    Without ``build`` a match is simply ``kind``; ``source`` names the Proxmox (or other)
    source file the recognised message comes from, for the README and the corpus test.
    """

    name: str
    programs: tuple[str, ...]
    pattern: re.Pattern[str]
    kind: str
    build: Builder[InputT] | None = None
    source: str = ""


def rule(
    name: str,
    programs: str | Iterable[str],
    pattern: str,
    kind: str,
    build: Builder[InputT] | None = None,
    *,
    source: str = "",
    flags: int = 0,
) -> Rule[InputT]:
    """A ``Rule``; ``programs`` is one name, space-separated names or an iterable of names."""
    names = programs.split() if isinstance(programs, str) else list(programs)
    return Rule(
        name=name,
        programs=tuple(n.lower() for n in names),
        pattern=re.compile(pattern, flags),
        kind=kind,
        build=build,
        source=source,
    )


class RuleTable(Generic[InputT]):
    """Rules indexed by program; the first rule (in table order) that matches decides."""

    def __init__(
        self, rules: Iterable[Rule[InputT]], fallback_kind: str, cache_size: int = 4096
    ) -> None:
        self.rules: tuple[Rule[InputT], ...] = tuple(rules)
        self.fallback_kind = fallback_kind
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule names: {', '.join(duplicates)}")
        programs = {p for r in self.rules for p in r.programs if p != ANY_PROGRAM}
        self._wildcard = tuple(r for r in self.rules if ANY_PROGRAM in r.programs)
        self._index: dict[str, tuple[Rule[InputT], ...]] = {
            p: tuple(r for r in self.rules if p in r.programs or ANY_PROGRAM in r.programs)
            for p in programs
        }
        # Program names as received (any case) → their rules; bounded, rebuilt on overflow.
        self._seen: dict[str, tuple[Rule[InputT], ...]] = {}
        self._cache_size = cache_size

    @property
    def programs(self) -> list[str]:
        """The program names some rule is bound to (sorted)."""
        return sorted(self._index)

    def rules_for(self, program: str) -> tuple[Rule[InputT], ...]:
        """The rules that apply to ``program`` (its own plus the any-program ones), in order."""
        found = self._seen.get(program)
        if found is None:
            found = self._index.get(program.lower(), self._wildcard)
            if len(self._seen) >= self._cache_size:
                self._seen.clear()
            self._seen[program] = found
        return found

    def classify(self, program: str, text: str, item: InputT) -> Classification:
        """The first matching rule's classification, else the fallback kind."""
        for r in self.rules_for(program):
            m = r.pattern.search(text)
            if m is None:
                continue
            if r.build is None:
                return Classification(kind=r.kind, rule=r.name)
            try:
                result = r.build(m, item)
            except (ValueError, KeyError, IndexError):  # a builder bug costs the rule, not the line
                result = None
            if result is not None:
                result.rule = r.name
                return result
        return Classification(kind=self.fallback_kind)
