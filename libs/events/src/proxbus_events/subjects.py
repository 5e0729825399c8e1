"""NATS subject names: building them from events and parsing them back."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .event import Event

EVENTS_PREFIX = "proxbus.events"
DELIVERIES_PREFIX = "proxbus.deliveries"
DLQ_PREFIX = "proxbus.dlq"
AUDIT_PREFIX = "proxbus.audit"
RPC_PREFIX = "proxbus.rpc"
UNKNOWN_TOKEN = "_"  # noqa: S105 - a subject token, not a secret

_UNSAFE = re.compile(r"[^a-z0-9_-]")


def sanitize_token(value: str | None) -> str:
    """One subject token: lower-cased, characters outside ``[a-z0-9_-]`` replaced by ``_``.

    ``None`` and the empty string become ``_`` (unknown); the result is never empty and
    never contains ``.``, ``*``, ``>`` or whitespace, so any input is a valid token.
    """
    if not value:
        return UNKNOWN_TOKEN
    return _UNSAFE.sub("_", value.lower()) or UNKNOWN_TOKEN


@dataclass(slots=True, frozen=True)
class EventSubject:
    """The parts of ``proxbus.events.<site>.<source>.<severity>.<node>``."""

    site: str
    source: str
    severity: str
    node: str

    def __str__(self) -> str:
        return f"{EVENTS_PREFIX}.{self.site}.{self.source}.{self.severity}.{self.node}"


_SUBJECTS: dict[tuple[str, str, str, str | None], str] = {}
_SUBJECTS_MAX = 4096  # distinct (site, source, severity, node); cleared when full


def event_subject(event: Event) -> str:
    """The subject an event is published on (memoised: a few nodes send most lines)."""
    key = (event.site, event.source, event.severity, event.node)
    found = _SUBJECTS.get(key)
    if found is None:
        found = (
            f"{EVENTS_PREFIX}.{sanitize_token(event.site)}.{sanitize_token(event.source.value)}"
            f".{event.severity.value}.{sanitize_token(event.node)}"
        )
        if len(_SUBJECTS) >= _SUBJECTS_MAX:
            _SUBJECTS.clear()
        _SUBJECTS[key] = found
    return found


def parse_event_subject(subject: str) -> EventSubject:
    """Split an event subject into its parts.

    Raises:
        ValueError: ``subject`` is not of the form ``proxbus.events.<site>.<source>.<severity>.<node>``.
    """
    parts = subject.split(".")
    if len(parts) != 6 or ".".join(parts[:2]) != EVENTS_PREFIX or not all(parts[2:]):
        raise ValueError(f"not an event subject: {subject!r}")
    return EventSubject(*parts[2:])


def events_filter(
    site: str | None = None,
    source: str | None = None,
    severity: str | None = None,
    node: str | None = None,
) -> str:
    """A subscription subject matching the given parts (``*`` for the ones not given)."""
    tokens = [sanitize_token(v) if v else "*" for v in (site, source, severity, node)]
    return f"{EVENTS_PREFIX}." + ".".join(tokens)


def rpc_subject(tool: str, cluster: str | None = None) -> str:
    """``proxbus.rpc.<tool>`` (any gateway) or ``proxbus.rpc.<cluster>.<tool>`` (only a
    gateway that serves that cluster/site subscribes to it: multi-site routing)."""
    if cluster is None:
        return f"{RPC_PREFIX}.{tool}"
    return f"{RPC_PREFIX}.{sanitize_token(cluster)}.{tool}"


def audit_subject(site: str, tool: str) -> str:
    return f"{AUDIT_PREFIX}.{sanitize_token(site)}.{sanitize_token(tool)}"


def delivery_subject(notifier: str) -> str:
    return f"{DELIVERIES_PREFIX}.{sanitize_token(notifier)}"


def dlq_subject(notifier: str) -> str:
    return f"{DLQ_PREFIX}.{sanitize_token(notifier)}"
