"""Following a stream live: what ``proxbus events tail`` and the dispatcher's console read.

At a multi-site hub the sites' events reach the hub's PROXBUS_EVENTS by stream sourcing, never
as publishes on the hub (the leaf links deny ``proxbus.events.>``): only the stream has them.
``StreamFollower`` reads it from "now" with an ephemeral push consumer (no acks, memory, one
replica) in the JetStream context's domain. It keeps the last stream sequence it handed out,
and re-creates the consumer from the next one when the consumer's sequence shows a gap, when its
idle heartbeats stop (the server restarted, the consumer is gone) or after a reconnect (seen in
the connection's reconnect count, or told through ``resync``): nothing is handed out twice and,
within the stream's limits, nothing is skipped. (nats-py's own ordered
consumer restarts from stream sequence 1, the whole history, when it resets before its first
message.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

log = logging.getLogger("proxbus.follow")

HEARTBEAT = 2.0  # seconds between the consumer's idle heartbeats
MISSED = 3  # heartbeats missed before the consumer is re-created


class StreamFollower:
    """New messages of ``stream`` matching ``subject``, each passed once to ``on_msg``."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        on_msg: Callable[[Msg], Awaitable[None]],
        *,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self._js = js
        self._nc = js._nc
        self.stream = stream
        self.subject = subject
        self._on_msg = on_msg
        self._heartbeat = heartbeat
        self._sub: Subscription | None = None
        self._consumer = ""
        self._generation = 0  # of the consumer (and inbox) in use
        self._next_dseq = 1  # the consumer sequence expected next
        self.last_sseq = 0  # the stream sequence of the last message handed out
        # The stream's last sequence when ``start`` made the consumer: everything up to it is
        # older than what is handed out (a reader back-filling from the stream stops there).
        self.start_sseq = 0
        self._reconnects = 0
        self._seen = time.monotonic()  # the consumer's last sign of life
        self._resync = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self.recreated = 0

    async def start(self) -> None:
        """Create the consumer at the stream's end.

        Raises:
            nats.js.errors.NotFoundError: no such stream in this domain.
            nats.js.errors.Error, nats.errors.Error: JetStream did not answer.
        """
        self._reconnects = self._nc.stats["reconnects"]
        await self._create(None)
        self._watchdog = asyncio.create_task(self._watch(), name="follow-watchdog")

    async def try_start(self, timeout: float, refused: asyncio.Event | None = None) -> str | None:
        """``start`` within ``timeout`` seconds: ``None`` once following, else why not, for a
        reader that then takes the live publishes instead (a site's or a single host's events;
        at a multi-site hub only the hub's own). ``refused``, set by the caller's error callback
        when the server denies a JetStream request (a user that may only subscribe), ends the
        wait at once.

        Raises:
            Exception: whatever ``start`` raised that is not a NATS or JetStream error.
        """
        start = asyncio.ensure_future(self.start())
        gate = asyncio.ensure_future(refused.wait()) if refused is not None else None
        try:
            await asyncio.wait(
                {start} if gate is None else {start, gate},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if gate is not None:
                gate.cancel()
        if not start.done():
            start.cancel()
            with contextlib.suppress(BaseException):
                await start
            await self.stop()
            denied = refused is not None and refused.is_set()
            return "no JetStream access" if denied else "JetStream did not answer"
        exc = start.exception()
        if exc is None:
            return None
        await self.stop()
        if isinstance(exc, nats.js.errors.NotFoundError):
            return f"no {self.stream}"
        if isinstance(exc, (nats.errors.Error, nats.js.errors.Error, TimeoutError)):
            return f"JetStream: {str(exc) or type(exc).__name__}"
        raise exc

    def resync(self) -> None:
        """Re-create the consumer from the next stream sequence soon (e.g. after a reconnect)."""
        self._resync.set()

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await self._drop()

    async def _create(self, start_seq: int | None) -> None:
        inbox = self._nc.new_inbox()
        name = self._nc._nuid.next().decode()
        config = ConsumerConfig(
            name=name,
            deliver_subject=inbox,
            ack_policy=AckPolicy.NONE,
            filter_subject=self.subject,
            idle_heartbeat=self._heartbeat,
            mem_storage=True,
            num_replicas=1,
            # the server removes it this long after the last interest (a killed tail)
            inactive_threshold=max(10.0, 5 * self._heartbeat),
        )
        if start_seq is None:
            config.deliver_policy = DeliverPolicy.NEW
        else:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = start_seq
        self._generation += 1
        generation = self._generation

        async def deliver(msg: Msg) -> None:
            if generation == self._generation and self._sub is not None:
                await self._deliver(msg)  # else a late message of a consumer already dropped

        # Subscribed before the consumer exists, and taken as the current one: its first
        # messages may come before the answer to the request that creates it.
        self._next_dseq = 1
        self._sub = await self._nc.subscribe(inbox, cb=deliver)
        # Named before it is asked for: a create cut short (a timeout, a cancelled start) may
        # still reach the server, and the delete that ``_drop`` sends after it removes it.
        self._consumer = name
        try:
            info = await self._js.add_consumer(self.stream, config=config)
        except BaseException:
            await self._drop()
            raise
        if start_seq is None:  # "now": the stream's last sequence when the consumer was made
            now = int(info.delivered.stream_seq or 0) if info.delivered else 0
            self.start_sseq = now
            self.last_sseq = max(self.last_sseq, now)  # a message may have come already
        self._seen = time.monotonic()

    async def _drop(self) -> None:
        """Unsubscribe (nothing of the old consumer is handed out after this) and delete it."""
        sub, name = self._sub, self._consumer
        self._sub, self._consumer = None, ""
        self._generation += 1
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if name:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self.stream, name)

    async def _deliver(self, msg: Msg) -> None:
        self._seen = time.monotonic()
        if not msg.reply:  # a status: idle heartbeat (100) or an error
            headers = msg.headers or {}
            last = headers.get("Nats-Last-Consumer")
            if headers.get("Status") != "100":
                self._resync.set()  # e.g. 409 Consumer Deleted
            elif last is not None and int(last) != self._next_dseq - 1:
                self._resync.set()  # a message was lost on the way: start over from it
            return
        try:
            meta = msg.metadata
        except Exception:  # not a JetStream delivery
            return
        dseq, sseq = int(meta.sequence.consumer), int(meta.sequence.stream)
        if dseq != self._next_dseq:
            self._resync.set()
            return
        self._next_dseq = dseq + 1
        if sseq <= self.last_sseq:
            return
        self.last_sseq = sseq
        await self._on_msg(msg)

    async def _watch(self) -> None:
        backoff = 0.5
        while True:
            silent = self._heartbeat * MISSED
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync.wait(), self._heartbeat)
            reconnects = self._nc.stats["reconnects"]
            if reconnects != self._reconnects:  # the consumer may be gone with its server
                self._reconnects = reconnects
                self._resync.set()
            quiet = time.monotonic() - self._seen > silent
            if not (self._resync.is_set() or quiet or self._sub is None):
                continue
            self._resync.clear()
            await self._drop()
            try:
                await self._create(self.last_sseq + 1)
                self.recreated += 1
                backoff = 0.5
                log.debug("%s: consumer re-created from %d", self.stream, self.last_sseq + 1)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                log.debug("%s: re-creating the consumer failed: %s", self.stream, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
