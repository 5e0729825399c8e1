"""A bounded on-disk log of events accepted while NATS is unreachable, published from it later.

``EventSpool`` is the file format and nothing else: segment files ``spool-<n>.log`` in one
directory, each a sequence of records ``<u32 length><u32 crc32><event JSON>``. The writer
appends to the newest segment; the reader only takes segments that are closed (``roll()``
closes the current one), and a segment is deleted once every event in it is acknowledged by
JetStream. A record cut short by a crash fails its length/CRC check and ends its segment.

Durability (``fsync`` policy): a record is written with one ``write()`` into the page cache,
so a killed process (``kill -9``) loses nothing. ``always`` also fsyncs before ``append()``
returns (group commit: one fsync for every record appended meanwhile) - what a source that is
answered "stored" needs; ``interval`` fsyncs at most every ``fsync_interval`` seconds in the
background, so a power loss can cost that much; ``never`` leaves it to the kernel.

``proxbus_runtime.spooling`` puts it in front of the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import struct
import zlib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from proxbus_events import Event

from .errors import PublishError

log = logging.getLogger(__name__)

__all__ = ["EventSpool", "FsyncPolicy", "SpoolFull", "SpoolStats", "SpoolWriteError"]

FsyncPolicy = Literal["always", "interval", "never"]

_HEADER = struct.Struct("<II")  # length, crc32
_SEGMENT_RE = re.compile(r"^spool-(\d{12})\.log$")
_MAX_RECORD = 16 * 1024 * 1024  # a length beyond this is a torn or corrupt record


class SpoolFull(PublishError):
    """Raised when an event does not fit in the spool's ``max_bytes``."""


class SpoolWriteError(PublishError):
    """Raised (by ``SpoolingPublisher``) when the disk refused a spool write."""


@dataclass(slots=True)
class SpoolStats:
    """Counters; ``pending_*`` is what is on disk and not yet acknowledged."""

    appended: int = 0
    replayed: int = 0
    refused: int = 0  # did not fit
    corrupt: int = 0  # torn or damaged records skipped on reading
    write_errors: int = 0  # appends the disk refused (nothing of them left in the segment)
    fsyncs: int = 0
    pending_records: int = 0
    pending_bytes: int = 0


class EventSpool:
    """Append-only segment files in ``directory``, bounded by ``max_bytes`` in total."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
    ) -> None:
        if max_bytes < 1 or segment_bytes < 1:
            raise ValueError("max_bytes and segment_bytes must be >= 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.stats = SpoolStats()
        self._segments: dict[int, int] = {}  # segment number -> bytes
        self._records: dict[int, int] = {}  # segment number -> records
        self._current: int | None = None  # the segment being appended to
        self._fd: int | None = None
        self._dirty = False
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_waiters: list[asyncio.Future[None]] = []
        self._syncing = False

    # --- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory and count what an earlier run left (nothing is read yet).

        Raises:
            OSError: the directory cannot be created or listed.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in self.directory.iterdir():
            match = _SEGMENT_RE.match(path.name)
            if match:
                number = int(match.group(1))
                self._segments[number] = path.stat().st_size
                self._records[number] = sum(1 for _ in self._scan(number, count_corrupt=False))
        self._recount()
        if self._segments:
            log.info(
                "spool %s: %d events in %d segment(s) from an earlier run",
                self.directory, self.stats.pending_records, len(self._segments),
            )  # fmt: skip

    def _recount(self) -> None:
        self.stats.pending_bytes = sum(self._segments.values())
        self.stats.pending_records = sum(self._records.values())

    def _path(self, number: int) -> Path:
        return self.directory / f"spool-{number:012d}.log"

    @property
    def empty(self) -> bool:
        return not self.stats.pending_records

    # --- writing ---------------------------------------------------------------------------

    def append_nowait(self, event: Event) -> None:
        """Write ``event`` (one ``write()``); fsync follows the policy in the background.

        Raises:
            SpoolFull: no room left within ``max_bytes``.
            OSError: the disk refused the write.
        """
        payload = event.to_json()
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        if self.stats.pending_bytes + len(record) > self.max_bytes:
            self.stats.refused += 1
            raise SpoolFull(f"spool full ({self.stats.pending_bytes} of {self.max_bytes} bytes)")
        fd = self._writable()
        assert self._current is not None
        try:
            written = os.write(fd, record)
        except OSError:
            self.stats.write_errors += 1
            raise
        if written != len(record):
            # A short write (disk full, file size limit): take the torn record back, so the
            # records appended after it stay readable, and refuse the event.
            self.stats.write_errors += 1
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._segments[self._current])
            raise OSError(errno.ENOSPC, f"short spool write ({written} of {len(record)} bytes)")
        self._segments[self._current] += len(record)
        self._records[self._current] += 1
        self.stats.pending_bytes += len(record)
        self.stats.pending_records += 1
        self.stats.appended += 1
        self._dirty = True
        if self.fsync == "interval" and self._sync_task is None and _loop_running():
            self._sync_task = _spawn(self._sync_later(), "spool-fsync")
        if self._segments[self._current] >= self.segment_bytes:
            self.roll()

    async def append(self, event: Event) -> None:
        """Write ``event`` and, under the ``always`` policy, wait until it is fsynced.

        Raises:
            SpoolFull: no room left within ``max_bytes``.
            OSError: the disk refused the write or the fsync.
        """
        self.append_nowait(event)
        if self.fsync == "always":
            await self.sync()

    def _writable(self) -> int:
        if self._fd is None:
            number = max(self._segments, default=0) + 1
            self._fd = os.open(
                self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
            )
            self._current = number
            self._segments[number] = 0
            self._records[number] = 0
        return self._fd

    def roll(self) -> None:
        """Close the segment being written, so the reader may take it."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._dirty and self.fsync != "never":
                os.fsync(fd)  # a closed segment is complete on disk before it is read
                self.stats.fsyncs += 1
            self._dirty = False
            os.close(fd)
            if self._current is not None and not self._records.get(self._current):
                self._forget(self._current)
            self._current = None

    async def sync(self) -> None:
        """fsync what was written so far; concurrent callers share one fsync (group commit).

        Raises:
            OSError: the fsync failed.
        """
        if not self._dirty or self._fd is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append(future)
        if not self._syncing:
            _spawn(self._group_sync(), "spool-group-fsync")
        await future

    async def _group_sync(self) -> None:
        self._syncing = True
        try:
            while self._sync_waiters:
                waiters, self._sync_waiters = self._sync_waiters, []
                fd = self._fd
                self._dirty = False
                error: OSError | None = None
                if fd is not None:
                    try:
                        await asyncio.to_thread(os.fsync, fd)
                        self.stats.fsyncs += 1
                    except OSError as exc:
                        error = exc
                for waiter in waiters:
                    if not waiter.done():
                        if error is None:
                            waiter.set_result(None)
                        else:
                            waiter.set_exception(error)
        finally:
            self._syncing = False

    async def _sync_later(self) -> None:
        try:
            await asyncio.sleep(self.fsync_interval)
            if self._dirty and self._fd is not None:
                await self.sync()
        finally:
            self._sync_task = None

    # --- reading ---------------------------------------------------------------------------

    def closed_segments(self) -> list[int]:
        """Segments that are complete and may be published, oldest first."""
        return sorted(n for n in self._segments if n != self._current)

    def read_segment(self, number: int) -> list[Event]:
        """The events of a closed segment, in order (torn/corrupt records skipped, counted)."""
        out: list[Event] = []
        for payload in self._scan(number, count_corrupt=True):
            try:
                out.append(Event.from_json(payload))
            except ValueError:
                self.stats.corrupt += 1
        return out

    def _scan(self, number: int, *, count_corrupt: bool) -> Iterator[bytes]:
        try:
            data = self._path(number).read_bytes()
        except FileNotFoundError:
            return
        pos, size = 0, len(data)
        while pos < size:
            if pos + _HEADER.size > size:
                break
            length, crc = _HEADER.unpack_from(data, pos)
            start = pos + _HEADER.size
            if length > _MAX_RECORD or start + length > size:
                break
            payload = data[start : start + length]
            if zlib.crc32(payload) != crc:
                break
            yield payload
            pos = start + length
        if pos < size and count_corrupt:
            self.stats.corrupt += 1
            log.warning("spool segment %d: %d bytes after the last valid record skipped",
                        number, size - pos)  # fmt: skip

    def remove_segment(self, number: int, replayed: int = 0) -> None:
        """Delete a closed segment whose events are all acknowledged."""
        with contextlib.suppress(FileNotFoundError):
            self._path(number).unlink()
        self._forget(number)
        self.stats.replayed += replayed

    def _forget(self, number: int) -> None:
        self._segments.pop(number, None)
        self._records.pop(number, None)
        self._recount()

    def close(self) -> None:
        """Close the current segment (fsynced unless the policy is ``never``)."""
        self.roll()
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None


_background: set[asyncio.Task[None]] = set()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task
