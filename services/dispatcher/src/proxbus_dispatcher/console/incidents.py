"""Incidents for the console: the dispatcher's state bucket, watched, plus each receiver's
notification outcome.

The intake writes ``inc.<fingerprint>`` keys of ``proxbus_dispatcher_state``
(``proxbus_dispatcher.state``); the console watches them (it may run in a replica whose intake
is off). An incident's ``routes`` says which routes claimed its notification; the outcome per
receiver is then read where the delivery is: still in ``PROXBUS_DELIVERIES`` (queued or being
retried), in ``PROXBUS_DLQ`` (dead, with the last error), else delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from proxbus_events import DELIVERIES_STREAM

from ..stages.incidents import Incident
from ..state import INCIDENT_PREFIX, STATE_BUCKET
from .deadletters import SCAN_MAX, dlq_page

log = logging.getLogger(__name__)

MAX_INCIDENTS = 2000
# Over the limit, the oldest are dropped down to it only once this many more have come in: a
# bucket of 10,000 incidents loaded one by one with a scan of 2,000 for the oldest at each
# (16 million comparisons) held the dispatcher's event loop for seconds.
EVICT_SLACK = MAX_INCIDENTS // 4
PAGE_SIZE = 100  # incidents per page
LOOKUP_TIMEOUT = 3.0
FIRST_PAGE_WAIT = 2.0
# The intake writes an incident per event: watching costs a decode per event, so the console
# watches only from the first incidents page until this long after the last one.
IDLE_AFTER = 600.0
SCAN_LIMIT = 1000  # deliveries looked at per page view (the work queue is normally near empty)


@dataclass(slots=True)
class IncidentPage:
    """One page of incidents, newest first, split at the correlation window."""

    open: list[Incident]
    recent: list[Incident]
    skip: int  # incidents on the pages before
    total: int  # incidents the console holds
    open_total: int
    evicted: int  # older incidents the console let go (over ``MAX_INCIDENTS``)
    open_resolved: int = 0  # open ones a success resolved (``resolved``): the failure is over

    @property
    def more(self) -> bool:
        return self.skip + len(self.open) + len(self.recent) < self.total


@dataclass(slots=True)
class Outcome:
    """What became of one receiver's notification of an incident."""

    route: str
    receiver: str
    state: str  # "delivered" | "queued" | "dead" | "unknown" | "told"
    detail: str = ""
    # "told": the incident whose report of the same end told this receiver (``told_by``)
    told_by: str | None = None


def told_routes(incident: Incident) -> list[str]:
    """The routes an incident ``told_by`` another was not sent on because that one told them
    its end (the intake's ``_decide`` records them in ``notified`` at the report's arrival,
    never in ``routes``): those noted at or after the incident opened. A route the
    fingerprint's earlier incident notified carries that incident's earlier arrival."""
    routes = incident.routes if isinstance(incident.routes, dict) else {}
    if not isinstance(incident.told_by, str) or not isinstance(incident.notified, dict):
        return []
    opened = incident.opened if isinstance(incident.opened, int | float) else None
    return [
        rid
        for rid, at in incident.notified.items()
        if rid not in routes and opened is not None and isinstance(at, int | float) and at >= opened
    ]


class IncidentBoard:
    """The incidents of the state bucket, kept current by a KV watch (bounded)."""

    def __init__(
        self, js: JetStreamContext, *, bucket: str = STATE_BUCKET, idle: float = IDLE_AFTER
    ) -> None:
        self._js = js
        self._bucket = bucket
        self._idle = idle
        self.incidents: dict[str, Incident] = {}
        self.evicted = 0
        self.loaded = asyncio.Event()
        self.last_used = 0.0
        self._task: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None

    @property
    def watching(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Nothing is watched until the incidents page is opened (``ensure_running``)."""
        self._reaper = asyncio.create_task(self._reap_when_idle(), name="console-incidents-idle")

    async def ensure_running(self) -> None:
        """Watch the bucket if not yet; wait briefly for its current content."""
        self.last_used = time.monotonic()
        if self._task is None:
            self.loaded.clear()
            self._task = asyncio.create_task(self._watch(), name="console-incidents")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.loaded.wait(), FIRST_PAGE_WAIT)

    async def _reap_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self._idle))
            if self._task is not None and time.monotonic() - self.last_used > self._idle:
                await self._stop_watch()
                self.incidents.clear()
                self.evicted = 0

    async def _stop_watch(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._stop_watch()

    async def _watch(self) -> None:
        while True:
            try:
                kv = await self._js.key_value(self._bucket)
                watcher = await kv.watch(INCIDENT_PREFIX + ">")
                try:
                    async for entry in watcher:
                        if entry is None:
                            self.loaded.set()
                            continue
                        self._apply(entry.key, entry.value, entry.operation)
                finally:
                    # Unsubscribe, or the server keeps pushing every incident write to us.
                    stop: Callable[[], Awaitable[None]] = watcher.stop  # untyped in nats-py
                    with contextlib.suppress(Exception):
                        await asyncio.shield(stop())
            except asyncio.CancelledError:
                raise
            except nats.js.errors.BucketNotFoundError:
                self.loaded.set()  # no intake has run yet: no incidents
                await asyncio.sleep(2.0)
            except Exception as exc:  # the watch must survive broker restarts
                log.warning("console: incident watch failed (%s); re-watching in 2s", exc)
                await asyncio.sleep(2.0)

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            self.incidents.pop(key, None)
            return
        try:
            self.incidents[key] = Incident.from_json(value)
        except (ValueError, TypeError, KeyError):
            return
        if len(self.incidents) > MAX_INCIDENTS + EVICT_SLACK:
            ordered = sorted(self.incidents, key=lambda k: _when(self.incidents[k]))
            for key in ordered[: len(ordered) - MAX_INCIDENTS]:
                del self.incidents[key]
            self.evicted += len(ordered) - MAX_INCIDENTS

    def by_id(self, ids: set[str]) -> dict[str, Incident]:
        """The held incidents whose id is in ``ids``."""
        if not ids:
            return {}
        return {i.id: i for i in self.incidents.values() if i.id in ids}

    def page(
        self, window: float, *, skip: int = 0, limit: int = PAGE_SIZE, now: float | None = None
    ) -> IncidentPage:
        """The incidents ``skip`` to ``skip + limit``, newest first (by last report); open
        while inside the correlation window."""
        now = now or time.time()
        held = sorted(self.incidents.values(), key=_when, reverse=True)
        ordered = held[:MAX_INCIDENTS]  # the slack over the limit is not shown either
        shown = ordered[skip : skip + limit]
        opened = [i for i in ordered if _open(i, window, now)]
        return IncidentPage(
            open=[i for i in shown if _open(i, window, now)],
            recent=[i for i in shown if not _open(i, window, now)],
            skip=skip,
            total=len(ordered),
            open_total=len(opened),
            evicted=self.evicted + len(held) - len(ordered),
            open_resolved=sum(1 for i in opened if isinstance(i.resolved, dict)),
        )


def _when(incident: Incident) -> float:
    """When ``incident`` was last reported (0 for a damaged record's non-number)."""
    last = incident.last
    return float(last) if isinstance(last, int | float) else 0.0


def _open(incident: Incident, window: float, now: float) -> bool:
    opened = incident.opened
    return isinstance(opened, int | float) and now - opened <= window


async def _pending_deliveries(js: JetStreamContext) -> dict[tuple[str, str], str]:
    """(incident id, receiver) → "queued" for deliveries not yet acked."""
    out: dict[tuple[str, str], str] = {}
    seq = 1
    for _ in range(SCAN_LIMIT):
        try:
            raw = await js.get_msg(DELIVERIES_STREAM, seq=seq, next=True, subject="proxbus.>")
        except NotFoundError:
            break
        assert raw.seq is not None
        seq = raw.seq + 1
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            body = json.loads(raw.data or b"{}")
            for inc in body.get("incidents") or [body.get("incident") or {}]:
                if inc.get("id"):
                    out[(str(inc["id"]), str(body.get("receiver")))] = "queued"
    return out


async def outcomes(
    js: JetStreamContext,
    incidents: list[Incident],
    receiver_of: Callable[[str], str | None],
) -> dict[str, list[Outcome]]:
    """incident id → the outcome of each route that claimed its notification."""
    wanted = [i for i in incidents if i.routes or told_routes(i)]
    if not wanted:
        return {}
    dead: dict[tuple[str, str], str] = {}
    queued: dict[tuple[str, str], str] = {}
    try:
        # The newest dead letters (at most SCAN_MAX sequences; an entry that is not a dead
        # letter is skipped, it does not make every outcome unknown).
        page = await asyncio.wait_for(dlq_page(js, limit=SCAN_MAX), LOOKUP_TIMEOUT)
        for entry in page.entries:
            n = entry.letter.notification
            for inc in n.incidents or ([n.incident] if n.incident else []):
                if inc.get("id"):
                    dead[(str(inc["id"]), entry.letter.receiver)] = entry.letter.error
        queued = await asyncio.wait_for(_pending_deliveries(js), LOOKUP_TIMEOUT)
    except Exception as exc:
        log.warning("console: delivery outcomes unavailable: %s", exc)
        return {
            i.id: [
                Outcome(r, receiver_of(r) or r, "unknown", "JetStream unavailable")
                for r in i.routes
            ]
            + [Outcome(r, receiver_of(r) or r, "told", told_by=i.told_by) for r in told_routes(i)]
            for i in wanted
        }
    result: dict[str, list[Outcome]] = {}
    for incident in wanted:
        rows = []
        for route in incident.routes:
            receiver = receiver_of(route) or route
            key = (incident.id, receiver)
            if key in dead:
                rows.append(Outcome(route, receiver, "dead", dead[key]))
            elif key in queued:
                rows.append(Outcome(route, receiver, "queued", "waiting or being retried"))
            else:
                rows.append(Outcome(route, receiver, "delivered"))
        rows.extend(
            Outcome(r, receiver_of(r) or r, "told", told_by=incident.told_by)
            for r in told_routes(incident)
        )
        result[incident.id] = rows
    return result
