"""EventPublisher: the one JetStream publish path (acks, pipelining, an outage buffer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from proxbus_events import EVENTS_STREAM, Event, event_subject

from .errors import PublishError
from .frames import header_block, publish_frame

log = logging.getLogger(__name__)

LATE_ACK_WINDOW = 600.0  # seconds a timed-out publish's ack is still listened for


_CE_TIMES: dict[datetime, str] = {}  # a busy sender repeats the same second many times
_CE_TIMES_MAX = 4096


def event_headers(event: Event) -> dict[str, str]:
    """``Nats-Msg-Id`` plus the CloudEvents NATS-binding attributes for ``event``."""
    timestamp = event.timestamp
    # Only UTC ones are memoised: equal instants in other zones print differently.
    ce_time = _CE_TIMES.get(timestamp) if timestamp.tzinfo is UTC else None
    if ce_time is None:
        ce_time = timestamp.isoformat().replace("+00:00", "Z")
        if timestamp.tzinfo is not UTC:
            return _headers(event, ce_time)
        if len(_CE_TIMES) >= _CE_TIMES_MAX:
            _CE_TIMES.clear()
        _CE_TIMES[timestamp] = ce_time
    return _headers(event, ce_time)


def _headers(event: Event, ce_time: str) -> dict[str, str]:
    return {
        "Nats-Msg-Id": event.id,
        "ce-specversion": "1.0",
        "ce-id": event.id,
        "ce-source": f"proxbus/{event.source}/{event.site}",
        "ce-type": f"io.proxbus.{event.kind}",
        "ce-time": ce_time,
        "content-type": "application/json",
    }


_DUPLICATE_RE = re.compile(rb'"duplicate"\s*:\s*true')  # the server writes '"duplicate": true'


def ack_outcome(msg: Msg) -> bool | str:
    """A JetStream publish ack: ``True`` (stored), ``"duplicate"``, or the error text."""
    data = msg.data
    if msg.headers and msg.headers.get("Status") == "503":
        return "no JetStream stream answers this subject (503)"
    if b'"error"' in data:
        try:
            return str(json.loads(data)["error"].get("description", data))
        except (ValueError, AttributeError, KeyError):
            return data.decode(errors="replace")
    return "duplicate" if _DUPLICATE_RE.search(data) else True


@dataclass(slots=True)
class PublisherStats:
    """Counters; ``accepted == published + duplicates + dropped + buffered`` at all times."""

    accepted: int = 0
    published: int = 0
    duplicates: int = 0
    dropped: int = 0
    retries: int = 0
    failures: int = 0
    last_error: str = ""
    publish_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=1024))


@dataclass(slots=True)
class _Item:
    subject: str
    payload: bytes
    msg_id: str
    header: bytes  # the event's headers as sent (frames.header_block), built once
    sent_at: float = 0.0
    token: str = ""
    # None while waiting; then True (stored), "duplicate", or the error text.
    outcome: bool | str | None = None


class EventPublisher:
    """Publishes events to JetStream and waits for each ack.

    ``submit()`` queues an event in a bounded in-memory buffer; a background flusher
    sends up to ``max_in_flight`` at once, in order, and on a broker outage re-sends
    everything not yet acknowledged (in the original order, de-duplicated by
    ``Nats-Msg-Id``) with exponential backoff. Nothing accepted is dropped silently: an
    event that does not fit in the buffer is refused (``submit`` returns ``False``) and
    counted in ``stats.dropped``; ``submit_wait()`` waits for room instead.

    ``publish()`` waits for one event's ack (for senders that answer only afterwards), and
    ``send()`` pipelines any message (e.g. deliveries) and hands back a future per ack.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        max_in_flight: int = 512,
        buffer_limit: int = 10_000,
        ack_timeout: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        if max_in_flight < 1 or buffer_limit < 1:
            raise ValueError("max_in_flight and buffer_limit must be >= 1")
        self._js = js
        self.max_in_flight = max_in_flight
        self.buffer_limit = buffer_limit
        self.ack_timeout = ack_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.stats = PublisherStats()
        self._queue: deque[_Item] = deque()
        self._inflight: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._seq = 0
        self._waiting: dict[str, _Item | asyncio.Future[bool]] = {}
        self._ack_prefix = ""
        self._ack_sub: Any = None
        self._acked = asyncio.Event()
        self._subjects: dict[tuple[str, str, str, str | None], str] = {}

    @property
    def buffered(self) -> int:
        """Events accepted but not yet acknowledged by JetStream."""
        return len(self._queue) + len(self._inflight)

    async def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._task is None:
            nc = self._js._nc
            self._ack_prefix = nc.new_inbox() + "."
            self._ack_sub = await nc.subscribe(self._ack_prefix + "*", cb=self._on_ack)
            self._task = asyncio.create_task(self._run(), name="event-publisher")

    async def _on_ack(self, msg: Msg) -> None:
        waiter = self._waiting.pop(msg.subject[len(self._ack_prefix) :], None)
        if waiter is None:
            return  # an ack for an attempt we already gave up on
        outcome = ack_outcome(msg)
        if isinstance(waiter, _Item):
            waiter.outcome = outcome
            self._acked.set()
        elif waiter.done():
            return
        elif outcome is True or outcome == "duplicate":
            waiter.set_result(outcome is True)
        else:
            waiter.set_exception(PublishError(f"JetStream refused the message: {outcome}"))

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[bool]:
        """Send one message pipelined; the future gives ``True`` (stored) or ``False`` (duplicate).

        The future fails with ``PublishError`` when JetStream refused the message or the send
        failed at once. The caller bounds how many are in flight and how long it waits
        (``asyncio.wait(futures, timeout=...)``); nothing is buffered or re-sent here.
        """
        await self.start()
        self._seq += 1
        token = str(self._seq)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        self._waiting[token] = future
        try:
            nc, reply = self._js._nc, self._ack_prefix + token
            if headers:
                await publish_frame(nc, subject, reply, header_block(headers), payload)
            else:
                await nc.publish(subject, payload, reply=reply)
        except Exception as exc:
            future.set_exception(PublishError(_describe(exc)))
        return future

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _item(self, event: Event) -> _Item:
        key = (event.site, event.source, event.severity, event.node)
        subject = self._subjects.get(key)
        if subject is None:
            if len(self._subjects) > 4096:
                self._subjects.clear()
            subject = self._subjects[key] = event_subject(event)
        return _Item(subject, event.to_json(), event.id, header_block(event_headers(event)))

    def submit(self, event: Event) -> bool:
        """Queue ``event``; ``False`` (counted as dropped) if the buffer is full or closed."""
        self.stats.accepted += 1
        if self._closing or self.buffered >= self.buffer_limit:
            self.stats.dropped += 1
            return False
        self._enqueue(self._item(event))
        return True

    async def submit_wait(self, event: Event, timeout: float | None = None) -> None:
        """Queue ``event``, waiting for buffer room (back-pressure instead of dropping).

        Raises:
            PublishError: the publisher is closed, or no room came within ``timeout``.
        """
        item = self._item(event)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.buffered >= self.buffer_limit and not self._closing:
            self._space.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise PublishError("publish buffer full")
            try:
                await asyncio.wait_for(self._space.wait(), remaining)
            except TimeoutError:
                raise PublishError("publish buffer full") from None
        if self._closing:
            raise PublishError("publisher is closed")
        self.stats.accepted += 1
        self._enqueue(item)

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wakeup.set()

    async def publish(
        self,
        event: Event,
        timeout: float | None = None,
        *,
        late_ack: Callable[[], object] | None = None,
    ) -> PubAck:
        """Publish one event directly and wait for its ack (no buffering).

        For sources that must answer their sender only after JetStream has the event
        (SMTP ``250``, webhook ``2xx``).

        ``late_ack()`` is called if JetStream stores the event after this call gave up (a
        connected but stalled broker reads the message later): the caller can record that
        the event exists after all (ingest-email's Message-ID record). Late acks are awaited
        for ``LATE_ACK_WINDOW`` seconds.

        Raises:
            PublishError: no ack within ``timeout`` (default ``ack_timeout``), or the
                broker refused the message.
        """
        timeout = self.ack_timeout if timeout is None else timeout
        nc = self._js._nc
        if not nc.is_connected:
            # Refuse now: published while disconnected, nats-py would keep the message in its
            # reconnect buffer and store it later although the sender was told "not stored".
            self.stats.failures += 1
            self.stats.last_error = "not connected to NATS"
            raise PublishError("JetStream did not acknowledge: not connected to NATS")
        self.stats.accepted += 1
        started = time.monotonic()
        if late_ack is not None:
            return await self._publish_watching_late_ack(event, timeout, late_ack, started)
        try:
            ack = await self._js.publish(
                event_subject(event),
                event.to_json(),
                timeout=timeout,
                headers=event_headers(event),
            )
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            _withdraw_pending(nc, event.id)
            self.stats.accepted -= 1  # the caller keeps the event and answers its sender
            self.stats.failures += 1
            self.stats.last_error = _describe(exc)
            raise PublishError(f"JetStream did not acknowledge: {_describe(exc)}") from exc
        self._count_ack(ack, time.monotonic() - started)
        return ack

    async def _publish_watching_late_ack(
        self, event: Event, timeout: float, late_ack: Callable[[], object], started: float
    ) -> PubAck:
        """``publish`` through ``send()``, whose ack future outlives the timeout."""
        future = await self.send(event_subject(event), event.to_json(), event_headers(event))
        try:
            stored = await asyncio.wait_for(asyncio.shield(future), timeout)
        except (TimeoutError, PublishError) as exc:
            _withdraw_pending(self._js._nc, event.id)
            if isinstance(exc, TimeoutError):
                future.add_done_callback(partial(_report_late_ack, late_ack))
                asyncio.get_running_loop().call_later(LATE_ACK_WINDOW, future.cancel)
            self.stats.accepted -= 1  # the caller keeps the event and answers its sender
            self.stats.failures += 1
            self.stats.last_error = _describe(exc)
            raise PublishError(f"JetStream did not acknowledge: {_describe(exc)}") from exc
        self._count(not stored, time.monotonic() - started)
        return PubAck(stream=EVENTS_STREAM, seq=0, duplicate=not stored)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted event is acknowledged; ``False`` on timeout."""
        if not self.buffered:
            return True
        if self._task is None:
            await self.start()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 8.0) -> None:
        """Flush for up to ``timeout`` seconds, then stop; what is left is counted as dropped."""
        flushed = await self.flush(timeout)
        self._closing = True
        self._space.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ack_sub is not None:
            with contextlib.suppress(Exception):
                await self._ack_sub.unsubscribe()
            self._ack_sub = None
        for waiter in list(self._waiting.values()):
            if not isinstance(waiter, _Item):
                waiter.cancel()
        if not flushed:
            lost = self.buffered
            self.stats.dropped += lost
            log.error("publisher closed with %d unacknowledged events (counted as dropped)", lost)
            self._waiting.clear()
            self._queue.clear()
            self._inflight.clear()

    async def take_unacknowledged(self) -> list[Event]:
        """Remove and return every accepted event not yet acknowledged, oldest first.

        For a disk spool taking over during a broker outage. The flusher is stopped while the
        buffer is emptied and started again; an ack still arriving for a taken event is
        ignored (re-publishing it later is de-duplicated by its id).
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        items = [*self._inflight, *self._queue]
        self._inflight.clear()
        self._queue.clear()
        self._waiting.clear()
        self.stats.accepted -= len(items)  # handed back: accepted again when resubmitted
        self._idle.set()
        self._space.set()
        if task is not None:
            self._task = asyncio.create_task(self._run(), name="event-publisher")
        return [Event.from_json(item.payload) for item in items]

    def _count_ack(self, ack: PubAck, seconds: float) -> None:
        self._count(bool(ack.duplicate), seconds)

    def _count(self, duplicate: bool, seconds: float) -> None:
        if duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.published += 1
        self.stats.publish_seconds.append(seconds)

    async def _run(self) -> None:
        backoff = self._backoff_initial
        while True:
            if not self._queue and not self._inflight:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._pump()
                backoff = self._backoff_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failures += 1
                self.stats.last_error = _describe(exc)
                self._requeue_inflight()
                log.warning(
                    "JetStream publish failed (%s); %d events buffered, retrying in %.1fs",
                    _describe(exc),
                    self.buffered,
                    backoff,
                )
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311
                backoff = min(backoff * 2, self._backoff_max)

    async def _pump(self) -> None:
        """Send and collect acks until the queue is empty; raise on the first failure.

        Uses one wildcard reply subscription instead of ``publish_async`` (which costs a
        future, a semaphore and a dataclass per message): the ack body is all we need.
        """
        nc = self._js._nc
        queue, inflight, waiting = self._queue, self._inflight, self._waiting
        prefix = self._ack_prefix
        while queue or inflight:
            while queue and len(inflight) < self.max_in_flight:
                item = queue[0]
                self._seq += 1
                item.token = str(self._seq)
                item.outcome = None
                item.sent_at = time.monotonic()
                waiting[item.token] = item
                try:
                    await publish_frame(
                        nc, item.subject, prefix + item.token, item.header, item.payload
                    )
                except nats.errors.MaxPayloadError:
                    waiting.pop(item.token, None)
                    queue.popleft()
                    self._drop_refused(item, "larger than the server's max_payload")
                    continue
                except BaseException:
                    waiting.pop(item.token, None)
                    raise
                queue.popleft()
                inflight.append(item)
            head = inflight[0]
            while head.outcome is None:
                remaining = head.sent_at + self.ack_timeout - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no ack within {self.ack_timeout}s")
                self._acked.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acked.wait(), remaining)
            # Settle every acknowledged item at the head in one go.
            now = time.monotonic()
            while inflight and inflight[0].outcome is not None:
                item = inflight[0]
                if item.outcome is not True and item.outcome != "duplicate":
                    if str(item.outcome).endswith("(503)"):
                        # No stream yet (or the broker is restarting): an outage, retry.
                        raise PublishError(f"JetStream refused the event: {item.outcome}")
                    inflight.popleft()
                    self._drop_refused(item, str(item.outcome))
                    continue
                inflight.popleft()
                self._count(item.outcome == "duplicate", now - item.sent_at)
            if not self._space.is_set() and self.buffered < self.buffer_limit:
                self._space.set()

    def _drop_refused(self, item: _Item, reason: str) -> None:
        """An event JetStream will never take: counted and logged, never retried forever."""
        self.stats.dropped += 1
        self.stats.last_error = reason
        log.error("JetStream refused event %s on %s: %s (dropped)",
                  item.msg_id, item.subject, reason)  # fmt: skip

    def _requeue_inflight(self) -> None:
        """Put every unacknowledged in-flight item back at the front, in order."""
        retry = 0
        while self._inflight:
            item = self._inflight.pop()
            self._waiting.pop(item.token, None)
            if item.outcome is True or item.outcome == "duplicate":
                # Acknowledged after all: count it, don't resend.
                self._count(item.outcome == "duplicate", time.monotonic() - item.sent_at)
                continue
            self._queue.appendleft(item)
            retry += 1
        self.stats.retries += retry


def _report_late_ack(late_ack: Callable[[], object], future: asyncio.Future[bool]) -> None:
    if future.cancelled() or future.exception() is not None:
        return  # never acknowledged, or refused
    try:
        late_ack()
    except Exception:
        log.exception("late-ack callback failed")


def _withdraw_pending(nc: Any, msg_id: str) -> None:
    """Take a failed publish back out of nats-py's reconnect buffer, if it is still there.

    A publish the connection had not written yet when it dropped stays in the client's
    pending buffer and is sent after the reconnect; for a source already told "not stored"
    (SMTP 451, webhook 503) that would store it anyway (issue 14). nats-py has no public way
    to cancel a pending publish, so its buffer (a list of protocol commands) is filtered here.
    """
    pending = getattr(nc, "_pending", None)
    if not pending:
        return
    marker = f"Nats-Msg-Id: {msg_id}\r\n".encode()
    keep = [cmd for cmd in pending if marker not in cmd]
    if len(keep) != len(pending):
        nc._pending = keep
        nc._pending_data_size = sum(len(cmd) for cmd in keep)
        log.info("withdrew unacknowledged event %s from the NATS reconnect buffer", msg_id)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
