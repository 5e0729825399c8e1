"""The disk spool in front of the publisher: how an ingest service keeps what NATS cannot take.

``SpoolingPublisher``: while NATS is connected every event goes straight to the publisher (no
syscall per event); while it is not (or before the service ever reached it) events are
appended to an ``EventSpool``, and the events the publisher still held unacknowledged are
moved there too. Once connected, a background task publishes the spooled segments (event ids
preserved, so JetStream de-duplicates a replay) and deletes each one after its last ack. On a
restart the segments left on disk are published the same way.

``open_spooling(settings, service, registry)`` builds it from ``SpoolSettings`` (a directory
claimed with ``flock``, so replicas on one host each take their own slot and a restarted one
takes over what a killed one left), with its metrics; ``attach_spooling(runtime, sink)`` wires
it to a ``Service`` started with ``require_nats=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from proxbus_events import Event
from pydantic import Field

from .errors import PublishError
from .publisher import EventPublisher
from .ratelog import RateLimitedLog
from .settings import ServiceSettings
from .spool import EventSpool, SpoolFull, SpoolWriteError

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger(__name__)

__all__ = [
    "SpoolSettings",
    "SpoolingPublisher",
    "attach_spooling",
    "claim_spool_directory",
    "open_spooling",
]

_MIB = 1024 * 1024
_SLOTS = 64


class SpoolSettings(ServiceSettings):
    """``SPOOL_*``: the disk spool of an ingest service (documented in libs/runtime/README)."""

    spool_enabled: bool = True
    spool_dir: Path | None = Field(
        default=None, description="default: /var/lib/proxbus/spool/<service> (root) or "
        "$XDG_STATE_HOME/proxbus/spool/<service>",
    )  # fmt: skip
    spool_max_bytes: int = Field(default=256 * _MIB, ge=_MIB)
    spool_fsync: Literal["always", "interval", "never"] = "interval"
    spool_fsync_interval: float = Field(default=1.0, gt=0)


def default_spool_root(service: str) -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/proxbus/spool") / service
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "proxbus" / "spool" / service


def claim_spool_directory(root: Path) -> tuple[Path, int]:
    """The first slot ``root/<n>`` no other live process holds, and its lock's descriptor.

    The lock (``flock``) is released by the kernel when the process dies, so a restarted
    service takes the slot — and the segments — a killed one left.

    Raises:
        OSError: the directory cannot be created, or every slot is taken.
    """
    root.mkdir(parents=True, exist_ok=True)
    for n in range(_SLOTS):
        slot = root / str(n)
        slot.mkdir(exist_ok=True)
        fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise OSError(f"all {_SLOTS} spool slots under {root} are in use")


class SpoolingPublisher:
    """Events to the publisher while NATS is connected, to the disk spool while it is not.

    ``attach(publisher, connected)`` once NATS is ready (until then everything is spooled);
    ``start()`` runs the replayer (and the watcher moving a stalled publisher's buffer to disk).
    """

    def __init__(
        self,
        spool: EventSpool,
        *,
        check_interval: float = 0.2,
        replay_timeout: float = 30.0,
    ) -> None:
        self.spool = spool
        self.publisher: EventPublisher | None = None
        self._connected: Callable[[], bool] = lambda: False
        self._check_interval = check_interval
        self._replay_timeout = replay_timeout
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._lock_fd: int | None = None
        # The segment being replayed: number, its events, how many were submitted.
        self._replaying: tuple[int, list[Event], int] | None = None
        self.moved = 0  # events taken from the publisher's memory to disk on a disconnect
        self._room = asyncio.Event()  # set when a replayed segment is deleted
        # A failing disk refuses every event a peer sends: one line per interval, not each.
        self._write_errors = RateLimitedLog(log, "spool writes failed", level=logging.ERROR)
        self._closed = False

    def attach(self, publisher: EventPublisher, connected: Callable[[], bool]) -> None:
        """Use ``publisher`` whenever ``connected()`` is true (``nc.is_connected``)."""
        self.publisher = publisher
        self._connected = connected
        self._wakeup.set()

    @property
    def up(self) -> bool:
        """True when events go to the publisher (no syscall per event)."""
        return self.publisher is not None and self._connected()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="spool-replayer")

    async def close(self) -> None:
        """Stop the replayer; what NATS did not take goes to disk; close the segment."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        replaying, self._replaying = self._replaying, None
        if replaying is not None and self.up and self.publisher is not None:
            # Stopped in the middle of a segment: finish it and delete it once acknowledged;
            # replayed after a restart beyond JetStream's duplicate window, the part already
            # published would be stored twice.
            number, events, submitted = replaying
            rest = events[submitted:]
            if all(self.publisher.submit(e) for e in rest) and await self.publisher.flush(2.0):
                self.spool.remove_segment(number, len(events))
        if not self.up:
            await self._move_publisher_buffer()
        self.spool.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def stop_hook(self, seconds: float) -> None:
        """``Service.on_stop`` hook: runs after the listeners drained, before the flush."""
        await self.close()

    # --- intake ----------------------------------------------------------------------------

    def submit(self, event: Event) -> bool:
        """Queue ``event`` (publisher) or write it (spool); False if neither had room."""
        publisher = self.publisher
        if publisher is not None and self._connected():
            return publisher.submit(event)
        return self._spool_nowait(event)

    async def submit_wait(self, event: Event) -> None:
        """Like ``submit`` but waits for room (back-pressure): publisher room while connected,
        spool room (or NATS) while the spool is full. A TCP reader waiting here stops reading,
        so its sender waits too, and nothing read is dropped.

        Raises:
            PublishError: the publisher or the spool is closed, or the disk refused the write.
        """
        while True:
            publisher = self.publisher
            if publisher is not None and self._connected():
                if publisher.buffered < publisher.buffer_limit:
                    if publisher.submit(event):
                        return
                    raise PublishError("publisher is closed")
                await publisher.submit_wait(event)
                return
            if self._closed:
                raise PublishError("spool is closed")
            try:
                self.spool.append_nowait(event)
            except SpoolFull:
                # Room comes back when NATS does (the replay deletes segments): look again.
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), self._check_interval)
                continue
            except OSError as exc:
                raise self._write_failed(exc) from exc
            self._wakeup.set()
            return

    async def store(self, event: Event, timeout: float = 5.0) -> str:
        """Store ``event`` before answering its source: ``"stored"``, ``"duplicate"``, ``"spooled"``.

        Connected: published and acknowledged. Otherwise (or if the ack does not come)
        written to the spool and fsynced (unless the policy is ``never``): on disk before the
        source hears "stored".

        Raises:
            PublishError: neither JetStream nor the spool took it (spool full, disk error).
        """
        publisher = self.publisher
        if publisher is not None and self._connected():
            try:
                ack = await publisher.publish(event, timeout=timeout)
            except PublishError:
                pass  # on to the spool; a late ack of this try is de-duplicated by the id
            else:
                return "duplicate" if ack.duplicate else "stored"
        try:
            self.spool.append_nowait(event)
            if self.spool.fsync != "never":
                await self.spool.sync()
        except OSError as exc:
            raise self._write_failed(exc) from exc
        self._wakeup.set()
        return "spooled"

    def _write_failed(self, exc: OSError) -> SpoolWriteError:
        """Log (rate-limited) a refused spool write; the error to raise to the caller."""
        self._write_errors.record(exc.strerror or type(exc).__name__, "", str(exc))
        return SpoolWriteError(f"spool write failed: {exc}")

    def _spool_nowait(self, event: Event) -> bool:
        try:
            self.spool.append_nowait(event)
        except SpoolFull:
            return False
        except OSError as exc:
            self._write_failed(exc)
            return False
        self._wakeup.set()
        return True

    # --- background ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._check_interval)
            self._wakeup.clear()
            try:
                if not self.up:
                    await self._move_publisher_buffer()
                elif not self.spool.empty:
                    await self._replay()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("spool replay failed; retrying")

    async def _move_publisher_buffer(self) -> None:
        """NATS is gone: what the publisher still holds goes to disk (a kill must not lose it)."""
        publisher = self.publisher
        if publisher is None or not publisher.buffered:
            return
        events = await publisher.take_unacknowledged()
        kept = 0
        for event in events:
            if self._spool_nowait(event):
                kept += 1
            else:
                publisher.submit(event)  # spool full: keep it in memory rather than lose it
        self.moved += kept
        if kept:
            log.warning("NATS unreachable: %d buffered events moved to the disk spool", kept)

    async def _replay(self) -> None:
        publisher = self.publisher
        assert publisher is not None
        self.spool.roll()
        for number in self.spool.closed_segments():
            if not self.up:
                return
            events = self.spool.read_segment(number)
            for i, event in enumerate(events):
                if not self.up:
                    return
                try:
                    await publisher.submit_wait(event, timeout=self._replay_timeout)
                except PublishError:
                    return  # closed, or stalled: the segment stays
                self._replaying = (number, events, i + 1)
            if not await publisher.flush(self._replay_timeout) or not self.up:
                return  # not all acknowledged: the segment stays and is replayed again
            self._replaying = None
            self.spool.remove_segment(number, len(events))
            self._room.set()
            log.info("spool: %d events of segment %d published", len(events), number)


class SpoolCollector:
    """``proxbus_spool_*`` metrics of one service's spool."""

    def __init__(self, sink: SpoolingPublisher, service: str) -> None:
        self._sink = sink
        self._service = service

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        stats = self._sink.spool.stats
        labels = ["service"]
        values = [self._service]
        gauges = (
            ("proxbus_spool_pending_events", "events on disk not yet acknowledged by JetStream",
             stats.pending_records),
            ("proxbus_spool_pending_bytes", "bytes on disk not yet acknowledged",
             stats.pending_bytes),
            ("proxbus_spool_max_bytes", "the spool's bound (SPOOL_MAX_BYTES)",
             self._sink.spool.max_bytes),
            ("proxbus_spool_nats_up", "1 while events go straight to the publisher",
             int(self._sink.up)),
        )  # fmt: skip
        for name, doc, value in gauges:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(values, value)
            yield g
        counters = (
            ("proxbus_spool_appended", "events written to the spool", stats.appended),
            ("proxbus_spool_replayed", "spooled events published and acknowledged",
             stats.replayed),
            ("proxbus_spool_refused", "events that did not fit (spool full)", stats.refused),
            ("proxbus_spool_corrupt", "torn or damaged records skipped", stats.corrupt),
            ("proxbus_spool_write_errors", "appends the disk refused", stats.write_errors),
            ("proxbus_spool_fsyncs", "fsync calls", stats.fsyncs),
            ("proxbus_spool_moved", "events moved from the publisher's memory to disk",
             self._sink.moved),
        )  # fmt: skip
        for name, doc, value in counters:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(values, value)
            yield c


def open_spooling(
    settings: SpoolSettings, service: str, registry: CollectorRegistry | None = None
) -> SpoolingPublisher | None:
    """The service's spool from its settings (None when ``SPOOL_ENABLED=false``).

    Raises:
        OSError: the spool directory cannot be created or locked.
    """
    if not settings.spool_enabled:
        return None
    root = settings.spool_dir or default_spool_root(service)
    directory, lock_fd = claim_spool_directory(root)
    spool = EventSpool(
        directory,
        max_bytes=settings.spool_max_bytes,
        fsync=settings.spool_fsync,
        fsync_interval=settings.spool_fsync_interval,
    )
    spool.open()
    sink = SpoolingPublisher(spool)
    sink._lock_fd = lock_fd
    if registry is not None:
        registry.register(SpoolCollector(sink, service))
    log.info("%s: disk spool in %s (max %d bytes, fsync %s)",
             service, directory, settings.spool_max_bytes, settings.spool_fsync)  # fmt: skip
    return sink


async def attach_spooling(runtime: Service, sink: SpoolingPublisher) -> None:
    """Wire ``sink`` to ``runtime`` (a ``Service`` with ``require_nats=False``).

    Call right after entering the service and *before* adding the listeners' stop hook, so
    the spool closes after the listeners drained (stop hooks run last-added first).
    """
    runtime.on_stop(sink.stop_hook)
    # 503 while events go to disk instead of JetStream (the service still takes them).
    runtime.health.add_check("nats", lambda: sink.up)

    async def ready() -> None:
        assert runtime.publisher is not None
        sink.attach(runtime.publisher, lambda: runtime.connected)

    runtime.on_nats_ready(ready)
    await sink.start()
