"""Per-cluster poller: tasks, cluster log, resource/HA diffs → events, with KV cursors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from proxbus_events import Event
from proxbus_events.knet import KnetLinks
from proxbus_runtime import RateLimitedLog, RpcError

from .cursors import CursorStore, cursor_key
from .diff import Snapshot, Thresholds, build_snapshot, diff_snapshots
from .follow import FollowCursor
from .lease import Lease
from .reader import ProxmoxReader, task_log_path
from .tasks import (
    FinishedTask,
    is_task_line,
    log_event,
    parse_log_entry,
    parse_task,
    task_events,
)

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[object]]
MAX_LOG_FETCHES = 20  # failed tasks per poll whose log tail is fetched (concurrently)
STOP_GRACE = 3.0  # seconds a poll in progress may finish after stop
# A cluster that stays unreadable (no Proxmox configured, a gateway down) fails every poll:
# said once, then one summary line with the count per this many seconds.
TROUBLE_SUMMARY = 300.0


@dataclass(slots=True)
class WatchOptions:
    """Tunables of one cluster watcher (from Settings)."""

    poll_seconds: float = 5.0
    lookback: int = 300
    log_limit: int = 500
    log_tail_lines: int = 20
    thresholds: Thresholds = field(default_factory=Thresholds)
    lease_seconds: float = 15.0
    replica_id: str = "replica"


@dataclass(slots=True)
class WatcherMetrics:
    """Prometheus metrics shared by the cluster watchers of one process."""

    polls: Counter
    events: Counter
    lease_held: Gauge
    last_success: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WatcherMetrics:
        return cls(
            polls=Counter(
                "proxbus_pve_ws_polls",
                "poll cycles by outcome",
                ["cluster", "outcome"],
                registry=registry,
            ),
            events=Counter(
                "proxbus_pve_ws_events",
                "events from the API watcher",
                ["cluster", "kind"],
                registry=registry,
            ),
            lease_held=Gauge(
                "proxbus_pve_ws_lease_held",
                "1 while this replica polls the cluster",
                ["cluster"],
                registry=registry,
            ),
            last_success=Gauge(
                "proxbus_pve_ws_last_success_timestamp",
                "end of the last good poll",
                ["cluster"],
                registry=registry,
            ),
        )


@dataclass(slots=True)
class _State:
    tasks: FollowCursor
    log: FollowCursor
    snapshot: Snapshot | None


class ClusterWatcher:
    """Watches one cluster through a ``ProxmoxReader``.

    A cycle reads resources and HA status, then the task list (so a stop that led to the
    new state has its task in the list), then the cluster log; publishes what is new and
    only then commits cursors and the snapshot, so a crash or restart replays at most the
    last cycle, whose deterministic ids JetStream de-duplicates.
    """

    def __init__(
        self,
        cluster: str,
        reader: ProxmoxReader,
        *,
        site: str,
        options: WatchOptions,
        store: CursorStore | None = None,
        lease: Lease | None = None,
        metrics: WatcherMetrics | None = None,
    ) -> None:
        self.cluster = cluster
        self.site = site
        self._reader = reader
        self._opts = options
        self._store = store
        self.lease = lease
        self._metrics = metrics
        self._state: _State | None = None
        # knet links down per (node, peer) in the cluster log: one alert per lost peer
        self._knet_links = KnetLinks()
        self.cycles = 0
        self.last_error: str = ""
        self.last_success = 0.0
        self.polling_since: float | None = None  # monotonic start of the poll in progress
        self._skipped = RateLimitedLog(
            log, f"{cluster}: poll skipped, API not readable", interval=TROUBLE_SUMMARY
        )
        self._failed = RateLimitedLog(
            log, f"{cluster}: poll failed, retrying next cycle", interval=TROUBLE_SUMMARY
        )

    def _key(self, what: str) -> str:
        return cursor_key(self.cluster, what)

    async def _load(self) -> _State:
        if self._store is None:
            return _State(FollowCursor(), FollowCursor(), None)
        tasks, _ = await self._store.load(self._key("tasks"))
        logc, _ = await self._store.load(self._key("log"))
        snap, _ = await self._store.load(self._key("state"))
        return _State(
            FollowCursor.from_dict(tasks), FollowCursor.from_dict(logc), Snapshot.from_dict(snap)
        )

    async def _save(self, state: _State) -> None:
        if self._store is None:
            return
        await self._store.save(self._key("tasks"), state.tasks.to_dict())
        await self._store.save(self._key("log"), state.log.to_dict())
        if state.snapshot is not None:
            await self._store.save(self._key("state"), state.snapshot.to_dict())

    async def _read_list(
        self, path: str, params: dict[str, Any] | None = None
    ) -> list[Mapping[str, Any]]:
        data = await self._reader.get(self.cluster, path, params)
        if not isinstance(data, list):
            raise RpcError(
                "proxmox_api", 502, f"{path}: expected a list, got {type(data).__name__}"
            )
        return [d for d in data if isinstance(d, Mapping)]

    async def _log_tail(self, task: FinishedTask) -> list[str]:
        if self._opts.log_tail_lines <= 0:
            return []
        try:
            lines = await self._reader.get(
                self.cluster, task_log_path(task.node, task.upid), {"start": 0, "limit": 5000}
            )
        except RpcError as exc:
            return [f"(task log unavailable: {exc.message})"]
        text = (
            [str(x.get("t", "")) for x in lines if isinstance(x, Mapping)]
            if isinstance(lines, list)
            else []
        )
        return text[-self._opts.log_tail_lines :]

    async def collect(self, *, since: float | None = None) -> tuple[list[Event], _State]:
        """Read the API and compute new events and the state to commit after publishing.

        ``since`` (dry runs): without stored cursors, report tasks and log entries newer
        than this epoch instead of taking the present as the baseline.

        Raises:
            RpcError: the gateway could not read the API (the cycle is skipped).
        """
        if self._state is None:
            self._state = await self._load()
        old = self._state
        opts = self._opts
        now = time.time()
        resources = await self._read_list("/cluster/resources")
        try:
            ha = await self._read_list("/cluster/ha/status/current")
        except RpcError as exc:
            log.debug("%s: no HA status (%s)", self.cluster, exc.message)
            ha = []
        tasks_raw = await self._read_list("/cluster/tasks")
        log_raw = await self._read_list("/cluster/log", {"max": opts.log_limit})

        snapshot = build_snapshot(
            resources, ha, now=now, previous=old.snapshot, thresholds=opts.thresholds
        )
        events: list[Event] = []
        if old.snapshot is not None:
            events += diff_snapshots(
                old.snapshot, snapshot, tasks_raw, cluster=self.cluster, site=self.site
            )

        tasks_cur = FollowCursor(old.tasks.high_water, dict(old.tasks.seen), old.tasks.initialized)
        finished = [t for t in (parse_task(e) for e in tasks_raw) if t is not None]
        if not tasks_cur.initialized and since is None:
            tasks_cur.baseline((t.key for t in finished), opts.lookback)
        else:
            if not tasks_cur.initialized and since is not None:
                tasks_cur.high_water = int(since) + opts.lookback
            fresh = tasks_cur.select(finished, lambda t: t.key, opts.lookback)
            failed = [t for t in fresh if t.outcome == "failed"][:MAX_LOG_FETCHES]
            tails = dict(
                zip(
                    (t.upid for t in failed),
                    await asyncio.gather(*(self._log_tail(t) for t in failed)),
                    strict=True,
                )
            )
            for task in fresh:
                tail = tails.get(task.upid)
                if tail is None and task.outcome == "failed":
                    tail = ["(log tail omitted: too many failed tasks in one poll)"]
                events += task_events(task, cluster=self.cluster, site=self.site, log_tail=tail)
            tasks_cur.advance((t.key for t in fresh), opts.lookback)

        log_cur = FollowCursor(old.log.high_water, dict(old.log.seen), old.log.initialized)
        entries = [e for e in (parse_log_entry(x) for x in log_raw) if e is not None]
        if not log_cur.initialized and since is None:
            log_cur.baseline((e.key for e in entries), opts.lookback)
        else:
            if not log_cur.initialized and since is not None:
                log_cur.high_water = int(since) + opts.lookback
            fresh_log = log_cur.select(entries, lambda e: e.key, opts.lookback)
            events += [
                log_event(e, cluster=self.cluster, site=self.site, links=self._knet_links)
                for e in fresh_log
                if not is_task_line(e)
            ]
            log_cur.advance((e.key for e in fresh_log), opts.lookback)
        return events, _State(tasks_cur, log_cur, snapshot)

    async def cycle(self, publish: Publish) -> list[Event]:
        """One poll: collect, publish every event (acked), then commit the cursors.

        Raises:
            RpcError: the API could not be read; PublishError: the bus did not ack.
        """
        events, state = await self.collect()
        for event in events:
            await publish(event)
            if self._metrics:
                self._metrics.events.labels(self.cluster, event.kind).inc()
        await self._save(state)
        self._state = state
        self.cycles += 1
        self.last_success = time.time()
        return events

    async def run(self, publish: Publish, stop: asyncio.Event) -> None:
        """Poll every ``poll_seconds`` while holding the lease, until ``stop`` is set."""
        period = self._opts.poll_seconds
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                started = time.monotonic()
                tick = asyncio.ensure_future(self._tick(publish))
                await asyncio.wait({tick, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not tick.done():
                    # Stopping mid-cycle: a short grace, then give up. Cursors are saved only
                    # after publishing, so the next run repeats this cycle (same ids, deduped).
                    done, _ = await asyncio.wait({tick}, timeout=STOP_GRACE)
                    if not done:
                        tick.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await tick
                        break
                delay = max(0.0, period - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            stopper.cancel()
        if self.lease is not None:
            await self.lease.release()
            if self._metrics:
                self._metrics.lease_held.labels(self.cluster).set(0)

    async def _tick(self, publish: Publish) -> None:
        outcome = "ok"
        self.polling_since = time.monotonic()
        try:
            if self.lease is not None:
                was_held = self.lease.held
                if not await self.lease.renew():
                    outcome = "standby"
                    self._state = None  # reload cursors from KV when we take over
                    return
                if not was_held:
                    self._state = None
            await self.cycle(publish)
            self.last_error = ""
        except RpcError as exc:
            outcome = "api_error"
            self.last_error = str(exc)
            self._skipped.record(str(exc))
        except Exception as exc:  # bus outage and the like: retry next cycle, cursors unchanged
            outcome = "error"
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._state = None
            self._failed.record(self.last_error)
        finally:
            self.polling_since = None
            if self._metrics:
                self._metrics.polls.labels(self.cluster, outcome).inc()
                held = self.lease.held if self.lease is not None else True
                self._metrics.lease_held.labels(self.cluster).set(1 if held else 0)
                if outcome == "ok":
                    self._metrics.last_success.labels(self.cluster).set(self.last_success)
