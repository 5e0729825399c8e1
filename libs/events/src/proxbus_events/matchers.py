"""Alertmanager-style matchers on events, shared by dispatcher routes and silences."""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .event import Event, Severity

MatchField = Literal[
    "severity", "site", "node", "source", "kind", "title", "message", "vmid", "fingerprint"
]
MatchOp = Literal["=", "!=", "=~", "!~", ">=", "<=", ">", "<"]

_ORDERED_OPS = {">=", "<=", ">", "<"}


class Matcher(BaseModel):
    """One condition: ``field op value``.

    ``=``/``!=`` compare exactly, except ``kind`` where the value may be a glob
    (``vm.*``); ``=~``/``!~`` are full-match regexes; ``>=``, ``>``, ``<=``, ``<`` order
    severities (``severity >= warning``).
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
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from exc
        return self

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.value, re.DOTALL)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``severity>=warning``, ``kind=vm.*``, ``node!=pve1``, ``title=~.*backup.*``.

        Raises:
            ValueError: not of the form ``<field><op><value>`` with a known field and op.
        """
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
        actual = _field(event, self.name)
        op = self.op
        if op in _ORDERED_OPS:
            have, want = event.severity.rank, Severity(self.value).rank
            return {
                ">=": have >= want,
                ">": have > want,
                "<=": have <= want,
                "<": have < want,
            }[op]
        if op in ("=~", "!~"):
            hit = self._regex.fullmatch(actual) is not None
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
