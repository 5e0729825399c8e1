"""Rendering events for people: the rows ``proxbus events tail`` prints."""

from __future__ import annotations

import fnmatch

from proxbus_events import Event, Severity

_COLOURS = {
    Severity.DEBUG: "\x1b[2m",
    Severity.INFO: "",
    Severity.NOTICE: "\x1b[36m",
    Severity.WARNING: "\x1b[33m",
    Severity.ERROR: "\x1b[31m",
    Severity.CRITICAL: "\x1b[1;31m",
}


def format_row(event: Event, colour: bool = False) -> str:
    """One line: time, severity, site/node, source, kind, vmid, title."""
    when = event.timestamp.strftime("%Y-%m-%d %H:%M:%S")
    where = f"{event.site}/{event.node or '-'}"
    vmid = f" vm{event.vmid}" if event.vmid is not None else ""
    row = (
        f"{when}  {event.severity.value:<8}  {where:<20}  {event.source.value:<11}  "
        f"{event.kind:<18}{vmid}  {event.title}"
    )
    if colour and _COLOURS[event.severity]:
        return f"{_COLOURS[event.severity]}{row}\x1b[0m"
    return row


def kind_matches(kind: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(kind, pattern)
