"""Alertmanager-style matchers on events, shared by dispatcher routes and silences."""

from __future__ import annotations

import fnmatch
import re
from functools import cache, cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .event import Event, Severity

MatchField = Literal[
    "severity", "site", "node", "source", "kind", "title", "message", "vmid", "fingerprint"
]
MatchOp = Literal["=", "!=", "=~", "!~", ">=", "<=", ">", "<"]

_ORDERED_OPS = {">=", "<=", ">", "<"}
# A matcher's text is ``<field><op><value>`` with a value of at most 1,024 characters; anything
# much longer is refused before a regex looks at it (input from the CLI, Discord, the gateway).
_MAX_TEXT = 2048


@cache
def _re2() -> tuple[Any, Any, Any]:
    """``(module, options, anchor)``, imported on first use: google-re2 costs ~4.7 MiB of RSS,
    which a service that never compiles a regex matcher (the gateway at idle) does not pay."""
    import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

    options = re2.Options()
    options.log_errors = False  # a bad pattern is the caller's ValueError, not a line on stderr
    options.dot_nl = True  # `.` also matches a newline: messages are multi-line
    options.never_capture = True  # only "does it match" is asked: no groups to record
    return re2, options, re2._Anchor.ANCHOR_BOTH


_NO_MATCH = -1


class Regex:
    """A full-match regex run by RE2, the engine behind Alertmanager's Go regexps.

    RE2 matches in time linear in the text, whatever the pattern: a silence or route written
    as ``title=~(.*a){20}`` cannot stall the dispatcher (Python's ``re`` backtracks
    exponentially on it: each character more doubles the time). The price is RE2's syntax: no
    backreferences, no lookaround. ``fullmatch`` calls the compiled RE2 object directly
    (1.2 us against 6.9 us through google-re2's ``re``-like wrapper, which also builds a match
    object): only "does it match" is asked. ``tests/test_matchers.py`` pins the behaviour.
    """

    __slots__ = ("_anchor", "_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        """Compile ``pattern``.

        Raises:
            ValueError: the pattern is not valid RE2 syntax.
        """
        re2, options, self._anchor = _re2()
        try:
            self._compiled = re2.compile(pattern, options=options)._regexp
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ValueError(
                f"invalid regex {pattern!r}: {reason} (RE2 syntax, as in Alertmanager: "
                "no backreferences or lookaround)"
            ) from None
        self.pattern = pattern

    def fullmatch(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        spans = self._compiled.Match(self._anchor, data, 0, len(data))
        return bool(spans[0][0] != _NO_MATCH)


class Matcher(BaseModel):
    """One condition: ``field op value``.

    ``=``/``!=`` compare exactly, except ``kind`` where the value may be a glob
    (``vm.*``); ``=~``/``!~`` are full-match regexes in RE2 syntax, matched in linear time
    (``.`` includes newlines); ``>=``, ``>``, ``<=``, ``<`` order severities
    (``severity >= warning``).
    """

    model_config = ConfigDict(frozen=True)

    name: MatchField
    op: MatchOp = "="
    value: str = Field(max_length=1024)

    @model_validator(mode="after")
    def _check(self) -> Matcher:
        if self.op in _ORDERED_OPS:
            if self.name != "severity":
                raise ValueError(f"ordering operator {self.op!r} only applies to severity")
            Severity(self.value)
        if self.op in ("=~", "!~"):
            Regex(self.value)
        return self

    @cached_property
    def _regex(self) -> Regex:
        return Regex(self.value)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``severity>=warning``, ``kind=vm.*``, ``node!=pve1``, ``title=~.*backup.*``.

        Raises:
            ValueError: not of the form ``<field><op><value>`` with a known field and op.
        """
        if len(text) > _MAX_TEXT:
            raise ValueError(f"matcher too long ({len(text)} characters, at most {_MAX_TEXT})")
        m = re.match(r"^\s*([a-z_]+)\s*(=~|!~|>=|<=|!=|=|>|<)\s*(.*?)\s*$", text, re.DOTALL)
        if not m:
            raise ValueError(f"not a matcher: {text!r} (expected e.g. severity>=warning)")
        name, op, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return cls.model_validate({"name": name, "op": op, "value": value})

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def matches(self, event: Event) -> bool:
        if self.op in _ORDERED_OPS:
            have, want = event.severity.rank, Severity(self.value).rank
            return {
                ">=": have >= want,
                ">": have > want,
                "<=": have <= want,
                "<": have < want,
            }[self.op]
        return self.matches_value(_field(event, self.name))

    def matches_value(self, actual: str) -> bool:
        """Whether ``actual``, a value of this matcher's field, matches (``=``, ``!=``,
        ``=~``, ``!~``; an ordering operator, about severities, matches no other value)."""
        op = self.op
        if op in _ORDERED_OPS:
            return False
        if op in ("=~", "!~"):
            hit = self._regex.fullmatch(actual)
            return hit if op == "=~" else not hit
        if self.name == "kind" and any(c in self.value for c in "*?["):
            hit = fnmatch.fnmatchcase(actual, self.value)
        else:
            hit = actual == self.value
        return hit if op == "=" else not hit


def _field(event: Event, name: str) -> str:
    value = getattr(event, name)
    if value is None:
        return ""
    return str(value.value if hasattr(value, "value") else value)


def match_all(matchers: list[Matcher], event: Event) -> bool:
    """True if every matcher matches (an empty list matches everything)."""
    return all(m.matches(event) for m in matchers)
