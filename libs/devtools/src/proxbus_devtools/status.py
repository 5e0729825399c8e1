"""What ``proxbus up`` shows: each child's state, pid, ports, restarts, event rates, last error.

``StatusBoard`` holds one ``ChildStatus`` per supervised process and is updated by the
supervisor (start, exit, restart), by the log pumps (last error) and by ``probe_forever``
(health and ``/metrics`` rates). It is shown either as a rich table redrawn in place
(``LiveView``, on a terminal) or as plain timestamped lines, one per state change
(``PlainView``, when stdout is a pipe or a file).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TextIO

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group

PROBE_INTERVAL = 1.0
RATE_INTERVAL = 2.0
RATE_WINDOW = 10.0  # rates over the last 10 s: activity comes in bursts
PROBE_TIMEOUT = 1.0
ERROR_WIDTH = 60


class State(StrEnum):
    WAITING = "waiting"  # not started yet (an earlier one is not ready)
    STARTING = "starting"  # running, not answering its health check yet
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # running, health check failing after start-up
    RESTARTING = "restarting"  # exited, restart pending
    STOPPING = "stopping"
    STOPPED = "stopped"


# Counters read from each service's /metrics: (metric family, required labels). "in" is what
# the service takes in, "out" what it hands on.
Counter = tuple[str, dict[str, str]]
RATE_METRICS: dict[str, tuple[list[Counter], list[Counter]]] = {
    "ingest-syslog": ([("proxbus_syslog_received", {})], [("proxbus_publish_published", {})]),
    "ingest-email": ([("proxbus_email_received", {})], [("proxbus_publish_published", {})]),
    "ingest-pve-ws": (
        [("proxbus_pve_webhook_requests", {}), ("proxbus_pve_ws_polls", {})],
        [("proxbus_publish_published", {})],
    ),
    "dispatcher": (
        [("proxbus_dispatcher_events", {})],
        [("proxbus_dispatcher_notifications", {"outcome": "sent"})],
    ),
    "mcp-gateway": ([("proxbus_gateway_tool_calls", {})], []),
}


@dataclass(slots=True)
class ChildStatus:
    """One row of the table."""

    name: str
    state: State = State.WAITING
    pid: int | None = None
    ports: str = ""
    restarts: int = 0
    last_error: str = ""
    last_line: str = ""  # of this run: why it exited, when no line said "error"
    error_this_run: bool = False
    rate_in: float | None = None
    rate_out: float | None = None
    health_url: str | None = None
    metrics_url: str | None = None
    tcp_port: int | None = None  # health = accepts connections (nats, the simulator)
    started_at: float = 0.0
    # (time, total in, total out) of the scrapes of the last RATE_WINDOW seconds
    _samples: deque[tuple[float, float, float]] = field(default_factory=deque, repr=False)


Listener = Callable[[ChildStatus, str], None]


class StatusBoard:
    """Every child's status; listeners hear each state change (for the plain view)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.children: dict[str, ChildStatus] = {n: ChildStatus(n) for n in names}
        self._listeners: list[Listener] = []
        self.footer: list[str] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def get(self, name: str) -> ChildStatus:
        return self.children[name]

    def set_state(self, name: str, state: State, detail: str = "") -> None:
        child = self.children[name]
        if child.state == state and not detail:
            return
        child.state = state
        for listener in self._listeners:
            listener(child, detail)

    def started(self, name: str, pid: int) -> None:
        child = self.children[name]
        child.pid = pid
        child.started_at = time.monotonic()
        child.last_line, child.error_this_run = "", False
        child._samples.clear()
        child.rate_in = child.rate_out = None
        self.set_state(name, State.STARTING, f"pid {pid}")

    def exited(self, name: str, code: int | None, restart_in: float | None) -> None:
        child = self.children[name]
        child.pid = None
        stopped_by_us = code == -signal.SIGTERM  # Ctrl-C before the child had its handler
        if code and not stopped_by_us and not child.error_this_run and child.last_line:
            # e.g. "proxbus-dispatcher: invalid settings: ..." (exit 2) or a traceback's end
            child.last_error = child.last_line
        how = _exit_text(code)
        if restart_in is None:
            self.set_state(name, State.STOPPED, how)
            return
        child.restarts += 1
        self.set_state(name, State.RESTARTING, f"{how}, restart in {restart_in:.1f}s")

    def note_line(self, name: str, line: str) -> None:
        """A line of the child's output: errors become its ``last_error``.

        The last line of a traceback after an error line (``OSError: [Errno 98] ... address
        already in use``) replaces it: it says why, where the error line says only "failed".
        """
        child = self.children[name]
        if line.strip():
            child.last_line = line.strip()
        error = error_text(line)
        if error:
            child.last_error, child.error_this_run = error, True
        elif child.last_error and _EXCEPTION.match(line):
            child.last_error = line.strip()

    def all_healthy(self) -> bool:
        return all(c.state == State.HEALTHY for c in self.children.values())


_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception)(?:: .+)?\s*$")
_LEVEL = re.compile(r"\b(ERROR|CRITICAL)\b|\[(ERR|FTL)\]|\"level\": ?\"(error|critical)\"")
_PREFIX = re.compile(
    r"^(\S+ \S+ )?(\[\d+\] )?\S*\s*(ERROR|CRITICAL)\s+|^\[\d+\] \S+ \S+ \[(ERR|FTL)\] "
)


def error_text(line: str) -> str:
    """The message of an error line (timestamp and level removed), else ''."""
    if not _LEVEL.search(line):
        return ""
    text = _PREFIX.sub("", line.strip())
    if text.startswith("{"):
        m = re.search(r"\"msg\": ?\"((?:[^\"\\]|\\.)*)\"", text)
        text = m.group(1) if m else text
    return text.strip()


def _sum(families: dict[str, list[tuple[dict[str, str], float]]], wanted: list[Counter]) -> float:
    total = 0.0
    for name, labels in wanted:
        for sample_labels, value in families.get(name, []):
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                total += value
    return total


def counters_from(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Counter samples by family name (``_total`` dropped) from a Prometheus text page."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                name = family.name.removesuffix("_total")
                out.setdefault(name, []).append((dict(sample.labels), float(sample.value)))
    return out


def update_rates(child: ChildStatus, text: str, now: float) -> None:
    """Events per second in and out over the scrapes of the last ``RATE_WINDOW`` seconds."""
    wanted_in, wanted_out = RATE_METRICS.get(child.name, ([], []))
    families = counters_from(text)
    samples = child._samples
    samples.append((now, _sum(families, wanted_in), _sum(families, wanted_out)))
    while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
        samples.popleft()
    if len(samples) < 2:
        return
    then, before_in, before_out = samples[0]
    _, total_in, total_out = samples[-1]
    elapsed = max(1e-3, now - then)
    # A counter that went down was reset (the service restarted): count from zero.
    child.rate_in = (
        (total_in - before_in if total_in >= before_in else total_in) / elapsed
        if wanted_in
        else None
    )
    child.rate_out = (
        (total_out - before_out if total_out >= before_out else total_out) / elapsed
        if wanted_out
        else None
    )


async def _tcp_ok(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), PROBE_TIMEOUT
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _http_ok(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def probe_once(board: StatusBoard, http: aiohttp.ClientSession, grace: float = 60.0) -> None:
    """Health of every running child: healthy, still starting (within ``grace``) or unhealthy."""

    async def one(child: ChildStatus) -> None:
        if child.pid is None or child.state in (State.STOPPING, State.STOPPED):
            return
        if child.health_url:
            ok = await _http_ok(http, child.health_url)
        elif child.tcp_port:
            ok = await _tcp_ok(child.tcp_port)
        else:
            ok = True
        if child.pid is None:  # exited meanwhile
            return
        if ok:
            board.set_state(child.name, State.HEALTHY)
        elif child.state == State.HEALTHY or time.monotonic() - child.started_at > grace:
            board.set_state(child.name, State.UNHEALTHY)

    await asyncio.gather(*(one(c) for c in board.children.values()))


async def scrape_once(board: StatusBoard, http: aiohttp.ClientSession) -> None:
    async def one(child: ChildStatus) -> None:
        if child.metrics_url is None or child.state != State.HEALTHY:
            return
        try:
            async with http.get(
                child.metrics_url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            ) as response:
                text = await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError, UnicodeDecodeError):
            return
        try:
            update_rates(child, text, time.monotonic())
        except ValueError:  # not a Prometheus page
            return

    await asyncio.gather(*(one(c) for c in board.children.values()))


async def probe_forever(board: StatusBoard, stop: asyncio.Event) -> None:
    """Health every ``PROBE_INTERVAL``, rates every ``RATE_INTERVAL``, until ``stop``."""
    last_rates = 0.0
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            await probe_once(board, http)
            if time.monotonic() - last_rates >= RATE_INTERVAL:
                last_rates = time.monotonic()
                await scrape_once(board, http)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROBE_INTERVAL)


# ---------------------------------------------------------------------------- views

_STYLE = {
    State.HEALTHY: "green",
    State.STARTING: "yellow",
    State.WAITING: "dim",
    State.UNHEALTHY: "bold red",
    State.RESTARTING: "bold red",
    State.STOPPING: "yellow",
    State.STOPPED: "dim",
}


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


# Below this terminal width the errors go under the table: as a column they get a few
# characters per line.
NARROW = 120


def render(board: StatusBoard, width: int | None = None) -> Group:
    """The table plus the footer, as one rich renderable (``width``: the terminal's)."""
    from rich.table import Table
    from rich.text import Text

    narrow = width is not None and width < NARROW
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    columns = [("service", "left"), ("state", "left"), ("pid", "right"), ("ports", "left"),
               ("restarts", "right"), ("in/s", "right"), ("out/s", "right")]  # fmt: skip
    if not narrow:
        columns.append(("last error", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column != "last error")  # type: ignore[arg-type]
    errors: list[Text] = []
    for child in board.children.values():
        error = child.last_error
        if len(error) > ERROR_WIDTH:  # both ends: the cause is often at the end
            head = ERROR_WIDTH // 3
            error = error[:head] + "…" + error[-(ERROR_WIDTH - head - 1) :]
        cells: list[str | Text] = [
            child.name,
            Text(child.state.value, style=_STYLE[child.state]),
            str(child.pid or "-"),
            child.ports,
            str(child.restarts),
            _rate(child.rate_in),
            _rate(child.rate_out),
        ]
        if not narrow:
            cells.append(Text(error, style="red") if error else "")
        elif error:
            errors.append(Text(f"{child.name}: {error}", style="red"))
        table.add_row(*cells)
    footer = Text("\n".join(board.footer), style="dim")
    return Group(table, *errors, Text(""), footer)


class LiveView:
    """The table redrawn in place (rich ``Live``); other output is printed above it."""

    def __init__(self, board: StatusBoard, out: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.board = board
        self.console = Console(file=out or sys.stdout)
        self._live = Live(
            render(board, self.console.width), console=self.console, refresh_per_second=2,
            transient=False,
            redirect_stdout=False, redirect_stderr=False,
        )  # fmt: skip

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(render(self.board, self.console.width))
        self._live.__exit__(None, None, None)

    def refresh(self) -> None:
        self._live.update(render(self.board, self.console.width))

    def print(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(text), soft_wrap=True)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exit_text(code: int | None) -> str:
    """``exit 2``, or the signal that ended the child (``SIGTERM``, not ``exit -15``)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit {code}"


class PlainView:
    """One timestamped line per state change (stdout is not a terminal)."""

    def __init__(self, board: StatusBoard, out: TextIO | None = None) -> None:
        self.board = board
        self.out = out or sys.stdout
        board.listen(self._changed)

    def _changed(self, child: ChildStatus, detail: str) -> None:
        extra = f" ({detail})" if detail else ""
        line = f"{_now()} {child.name} {child.state.value}{extra}"
        # SIGTERM: the supervisor's own stop (Ctrl-C), before the child had its handler.
        failed = child.state == State.STOPPED and detail not in ("exit 0", "SIGTERM", "")
        if (failed or child.state in (State.UNHEALTHY, State.RESTARTING)) and child.last_error:
            line += f": {child.last_error}"
        self.print(line)

    def __enter__(self) -> PlainView:
        for line in self.board.footer:
            self.print(line)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def refresh(self) -> None:
        return None

    def print(self, text: str) -> None:
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass
