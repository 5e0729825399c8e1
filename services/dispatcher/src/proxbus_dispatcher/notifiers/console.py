"""Print notifications on the dispatcher's standard output: the demo's receiver, and a way to
watch what would be sent while trying routes out.

One block per notification: a header line ``HH:MM:SS SEVERITY title (node, vmid, N events)``
(a lost knet peer's title names it: ``Cluster link 0 to host 3 (pve3) is down``)
and the rendered body indented below it, at most ``max_lines`` lines. ``proxbus up`` shows the
dispatcher's standard output in the terminal (its logs go to stderr and the log file).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Literal, TextIO

from pydantic import Field

from ..errors import RetryableError
from ..notification import Notification
from ..templates import with_peer
from ._base import ReceiverBase, render_body, render_title

# Marks the first line of each notification, so a supervisor can pick them out of the stream.
MARKER = "\N{BELL}"


class ConsoleReceiver(ReceiverBase):
    """``type: console``: standard output (or standard error), no network."""

    type: Literal["console"]
    stream: Literal["stdout", "stderr"] = "stdout"
    max_lines: int = Field(default=6, ge=0, le=1000)


def peer_node(notification: Notification) -> str | None:
    """The lost knet peer's name the notification's first incident (or event) carries."""
    incident = notification.incident or {}
    peer = incident.get("peer_node") if isinstance(incident, dict) else None
    if not isinstance(peer, str):
        facts = notification.enrichment.get(str(notification.first.get("id")))
        peer = facts.get("peer_node") if isinstance(facts, dict) else None
    return peer if isinstance(peer, str) else None


def format_notification(receiver: ConsoleReceiver, notification: Notification) -> str:
    """The printed block: header line plus up to ``max_lines`` indented body lines."""
    first = notification.event_dicts()[0]
    where = ", ".join(
        part
        for part in (
            str(first.get("node") or ""),
            f"vmid {first['vmid']}" if first.get("vmid") is not None else "",
            f"{len(notification.events)} events" if len(notification.events) > 1 else "",
        )
        if part
    )
    # The default title template starts with the severity, which the header already shows.
    raw = (
        render_title(receiver, notification)
        if receiver.title_template
        else with_peer(first["title"], peer_node(notification))
    )
    title = " ".join(str(raw).split())
    header = (
        f"{datetime.now().strftime('%H:%M:%S')} {notification.severity.value.upper():<8} {title}"
    )
    lines = [f"{MARKER} {header}{f' ({where})' if where else ''}"]
    if receiver.max_lines:
        body = [line.rstrip() for line in render_body(receiver, notification).splitlines()]
        body = [line for line in body if line.strip()]
        shown = body[: receiver.max_lines]
        lines += [f"    {line[:200]}" for line in shown]
        if len(body) > len(shown):
            lines.append(f"    … {len(body) - len(shown)} more lines")
    return "\n".join(lines) + "\n"


class ConsoleNotifier:
    """Writes each notification as one block and flushes (a pipe or a terminal alike)."""

    def __init__(self, receiver: ConsoleReceiver, out: TextIO | None = None) -> None:
        self.receiver = receiver
        self._out = out

    async def send(self, notification: Notification) -> None:
        out = self._out or (sys.stdout if self.receiver.stream == "stdout" else sys.stderr)
        try:
            out.write(format_notification(self.receiver, notification))
            out.flush()
        except (OSError, ValueError) as exc:  # closed or full pipe
            raise RetryableError(f"console {self.receiver.name}: {type(exc).__name__}") from None
