"""The ``routes.yaml`` schema as written: receivers, the route tree, inhibit rules.

Pure pydantic models; reading the file (``${VAR}``, line numbers) is ``loading``, the resolved
tree the dispatcher runs with is ``resolved``. Each receiver's model lives next to its notifier
(``notifiers/<type>.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from proxbus_events import Matcher
from pydantic import Field, ValidationError, field_validator

from ..durations import Duration
from ..notifiers import ReceiverConfig
from ..notifiers._base import StrictModel

GROUP_LABELS = frozenset(
    {"site", "node", "source", "kind", "severity", "vmid", "fingerprint", "title", "correlation_id"}
)
ALL_LABELS = "..."


def _parse_matchers(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return value
    out = []
    for v in value:
        if not isinstance(v, str):
            out.append(v)
            continue
        try:
            out.append(Matcher.parse(v))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"invalid matcher {v!r}: {err['msg']}") from None
        except ValueError as exc:
            raise ValueError(f"invalid matcher {v!r}: {exc}") from None
    return out


class RouteConfig(StrictModel):
    """One node of the route tree as written; unset timing/grouping is inherited."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    receiver: str | None = None
    matchers: Annotated[list[Matcher], Field(default_factory=list)]
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("matchers", mode="before")
    @classmethod
    def _split_matchers(cls, value: Any) -> Any:
        return _parse_matchers(value)

    @field_validator("group_by")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if ALL_LABELS in value and len(value) > 1:
            raise ValueError("'...' must be the only label when used")
        for label in value:
            if label != ALL_LABELS and label not in GROUP_LABELS:
                raise ValueError(
                    f"unknown label {label!r} (one of {', '.join(sorted(GROUP_LABELS))} or '...')"
                )
        return value


class InhibitRuleConfig(StrictModel):
    """A source event mutes target events that share the ``equal`` labels, for ``duration``."""

    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)
    duration: Duration = 3600.0
    resolve_matchers: list[Matcher] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers", "resolve_matchers", mode="before")
    @classmethod
    def _split_matchers(cls, value: Any) -> Any:
        return _parse_matchers(value)

    @field_validator("equal")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if label not in GROUP_LABELS:
                raise ValueError(f"unknown label {label!r}")
        return value


class RoutesFile(StrictModel):
    """The whole file."""

    receivers: list[ReceiverConfig] = Field(min_length=1)
    route: RouteConfig
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    max_events_per_notification: int = Field(default=50, ge=1, le=500)
