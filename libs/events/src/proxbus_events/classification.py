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
    ``no_node``: the event is about no node, not the sender either (an HA service's state:
    the service moves between nodes and not every source names its node);
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
    no_node: bool = False


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
    ``needles``: literal strings of which a matching text contains at least one; the regex
    runs only when one is present (a substring test costs a fraction of a regex search).
    """

    name: str
    programs: tuple[str, ...]
    pattern: re.Pattern[str]
    kind: str
    build: Builder[InputT] | None = None
    source: str = ""
    needles: tuple[str, ...] = ()


_SPECIAL = set("\\.^$*+?{}[]()|")
_QUANTIFIERS = set("*+?{")


def literal_prefix(pattern: str) -> str:
    """The literal text every match of ``pattern`` starts with ("" when unsure).

    Conservative: a top-level alternation, or anything but plain characters and escaped
    punctuation after an optional ``^``, ends the prefix.
    """
    depth, i, in_class = 0, 0, False
    while i < len(pattern):  # a top-level "|" means no common prefix
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return ""
        i += 1
    out: list[str] = []
    i = 1 if pattern.startswith("^") else 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            char, step = pattern[i + 1], 2
        elif c in _SPECIAL:
            break
        else:
            char, step = c, 1
        if i + step < len(pattern) and pattern[i + step] in _QUANTIFIERS:
            break  # "ab*": the b is optional
        out.append(char)
        i += step
    return "".join(out)


def rule(
    name: str,
    programs: str | Iterable[str],
    pattern: str,
    kind: str,
    build: Builder[InputT] | None = None,
    *,
    source: str = "",
    flags: int = 0,
    needles: Iterable[str] = (),
) -> Rule[InputT]:
    """A ``Rule``; ``programs`` is one name, space-separated names or an iterable of names.

    Without ``needles`` the pattern's literal prefix (if any, and case-sensitive) is used.
    """
    names = programs.split() if isinstance(programs, str) else list(programs)
    found = tuple(needles)
    if not found and not flags & re.IGNORECASE and (prefix := literal_prefix(pattern)):
        found = (prefix,)
    return Rule(
        name=name,
        programs=tuple(n.lower() for n in names),
        pattern=re.compile(pattern, flags),
        kind=kind,
        build=build,
        source=source,
        needles=found,
    )


@dataclass(slots=True, frozen=True)
class _Entry(Generic[InputT]):
    rules: tuple[Rule[InputT], ...]
    gate: tuple[str, ...]  # empty: no gate (some rule has no needle)


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
        self._wildcard = self._entry(tuple(r for r in self.rules if ANY_PROGRAM in r.programs))
        self._index: dict[str, _Entry[InputT]] = {
            p: self._entry(
                tuple(r for r in self.rules if p in r.programs or ANY_PROGRAM in r.programs)
            )
            for p in programs
        }
        # Program names as received (any case) → their entry; bounded, rebuilt on overflow.
        self._seen: dict[str, _Entry[InputT]] = {}
        self._cache_size = cache_size

    @staticmethod
    def _entry(rules: tuple[Rule[InputT], ...]) -> _Entry[InputT]:
        """A program's rules plus the needles one of which any match contains (the gate).

        Most lines of a busy program match no rule; the gate rejects those with a few
        substring tests (a needle containing another one is implied by it and dropped).
        """
        if not rules or not all(r.needles for r in rules):
            return _Entry(rules, ())
        needles = {n for r in rules for n in r.needles}
        gate = tuple(sorted(n for n in needles if not any(m != n and m in n for m in needles)))
        return _Entry(rules, gate)

    @property
    def programs(self) -> list[str]:
        """The program names some rule is bound to (sorted)."""
        return sorted(self._index)

    def _lookup(self, program: str) -> _Entry[InputT]:
        found = self._seen.get(program)
        if found is None:
            found = self._index.get(program.lower(), self._wildcard)
            if len(self._seen) >= self._cache_size:
                self._seen.clear()
            self._seen[program] = found
        return found

    def rules_for(self, program: str) -> tuple[Rule[InputT], ...]:
        """The rules that apply to ``program`` (its own plus the any-program ones), in order."""
        return self._lookup(program).rules

    def classify(self, program: str, text: str, item: InputT) -> Classification:
        """The first matching rule's classification, else the fallback kind."""
        entry = self._lookup(program)
        if entry.gate:
            for needle in entry.gate:
                if needle in text:
                    break
            else:
                return Classification(kind=self.fallback_kind)
        for r in entry.rules:
            if r.needles:
                for needle in r.needles:
                    if needle in text:
                        break
                else:
                    continue
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
