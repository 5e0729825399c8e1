"""The one consume path: durable pull consumers shared by service replicas."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from proxbus_events import EVENTS_STREAM, Event
from pydantic import ValidationError

from .errors import FetchError

log = logging.getLogger(__name__)

# Pull request ends (JetStream status codes on the reply inbox): no messages (no_wait), the
# request's ``expires`` passed. 100 is an idle heartbeat; anything else is an error.
_END_OF_REQUEST = frozenset({"404", "408"})
_HEARTBEAT = "100"


@dataclass(slots=True)
class ReceivedEvent:
    """An event taken from a stream, with the handles to settle it."""

    event: Event
    msg: Msg

    @property
    def num_delivered(self) -> int:
        return int(self.msg.metadata.num_delivered)

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self.msg.nak(delay=delay)

    async def term(self) -> None:
        await self.msg.term()

    async def in_progress(self) -> None:
        await self.msg.in_progress()


class PullConsumer:
    """A durable pull consumer: every replica binding the same ``durable`` shares the work.

    Fetching is done here rather than by nats-py's ``PullSubscription.fetch``, which waits for
    each message of a batch with ``next_msg`` (a task, a timer and a uuid per message: about
    half the CPU of a consume + parse + ack loop, bench/README.md). One pull request is
    published per fetch and its messages are collected by a subscription callback on the
    reply inbox; the fetch wakes once, when the batch is complete or the request ended.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str = EVENTS_STREAM,
        durable: str,
        filter_subject: str | None = None,
        ack_wait: float = 30.0,
        max_deliver: int = -1,
        max_ack_pending: int = 10_000,
        deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
    ) -> None:
        self._js = js
        self.stream = stream
        self.durable = durable
        self.config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            max_ack_pending=max_ack_pending,
            deliver_policy=deliver_policy,
            filter_subject=filter_subject,
        )
        self._sub: Subscription | None = None
        self._next_subject = ""
        self._inbox = ""  # request n's reply subject is <inbox>.<n>: its status says whose
        self._request = ""  # the reply subject of the current request
        self._requests = 0
        self._pending = 0
        # Messages delivered to the inbox and not yet handed out (a late answer to an earlier
        # pull request lands here too and is handed out by the next fetch).
        self._ready: deque[Msg] = deque()
        self._want = 0  # messages the current request asked for, still to come
        self._ended = asyncio.Event()
        self._error = ""

    async def start(self) -> None:
        """Create the consumer (or bind the existing durable) and subscribe its inbox."""
        if self._sub is not None:
            return
        name = self.durable
        exists = False
        if name is not None:
            try:
                await self._js.consumer_info(self.stream, name)
                exists = True
            except nats.js.errors.NotFoundError:
                pass
        if not exists:
            config = self.config
            if name is None:
                # Ephemeral: named by the client, removed by the server when unused.
                name = self._js._nc._nuid.next().decode()
                config = dataclasses.replace(config, name=name)
            else:
                config.name = name
            info = await self._js.add_consumer(self.stream, config=config)
            name = info.name
        nc = self._js._nc
        self._inbox = nc.new_inbox() + "."
        self._sub = await nc.subscribe(self._inbox + "*", cb=self._on_msg)
        # ``_prefix`` is the JetStream API prefix of this context ($JS.API, or its domain's).
        self._next_subject = f"{self._js._prefix}.CONSUMER.MSG.NEXT.{self.stream}.{name}"

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:  # a status from the server: no stream message has an empty reply
            if msg.subject != self._request:
                return  # the end of an earlier request (e.g. its 408 came after we gave up)
            status = (msg.headers or {}).get("Status", "")
            if status == _HEARTBEAT:
                return
            if status not in _END_OF_REQUEST:
                if status == "503":
                    description = "no responders: the consumer is gone or JetStream is down"
                else:
                    description = (msg.headers or {}).get("Description", "").split("\n")[0]
                self._error = f"{status} {description.strip()}".strip()
            self._ended.set()
            return
        # A stream message keeps its own subject, so a late answer to an earlier request
        # cannot be told apart: it is kept and counted, and at worst ends this fetch early.
        self._ready.append(msg)
        self._want -= 1
        if self._want <= 0:
            self._ended.set()

    async def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Msg]:
        """Up to ``batch`` messages; an empty list when none came within ``timeout``.

        A pull for ``n`` messages lingers until ``n`` arrived or the timeout passed, so at low
        rates every message would wait the whole timeout. Each message says how many more are
        pending: ask for at most that many, and for just one when nothing is known to wait
        (that pull returns as soon as it arrives).

        Raises:
            FetchError: the server answered the pull request with an error status (e.g. the
                consumer was deleted); the caller backs off and fetches again.
        """
        if batch < 1 or timeout <= 0:
            raise ValueError("batch must be >= 1 and timeout > 0")
        if self._sub is None:
            await self.start()
        if not self._ready:
            if self._pending <= 0:
                # Nothing known to wait: a lingering pull for one, ended by the server (408)
                # just before we stop waiting for it.
                self._want = 1
                expires = max(1_000_000, int(timeout * 1e9) - 100_000)
                request = b'{"batch":1,"expires":%d}' % expires
            else:
                # Known to wait: take what is there now, the rest of the batch ends with 404
                # instead of lingering (another replica may have taken some).
                self._want = min(batch, self._pending)
                request = b'{"batch":%d,"no_wait":true}' % self._want
            self._error = ""
            self._ended.clear()
            self._requests += 1
            self._request = f"{self._inbox}{self._requests}"
            await self._js._nc.publish(self._next_subject, request, reply=self._request)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), timeout)
            if self._error and not self._ready:
                error, self._error = self._error, ""
                self._pending = 0
                raise FetchError(f"pull request on {self.stream} refused: {error}")
        ready = self._ready
        msgs = [ready.popleft() for _ in range(min(batch, len(ready)))]
        try:
            self._pending = int(msgs[-1].metadata.num_pending) if msgs else 0
        except (AttributeError, ValueError, nats.errors.Error):
            self._pending = 0
        return msgs

    async def close(self) -> None:
        """Unsubscribe; messages delivered but never handed out are given back at once."""
        if self._sub is None:
            return
        sub, self._sub = self._sub, None
        try:
            await sub.unsubscribe()
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            log.debug("unsubscribe failed: %s", exc)
        while self._ready:
            with contextlib.suppress(Exception):
                await self._ready.popleft().nak()


class EventConsumer(PullConsumer):
    """A pull consumer of ``Event`` messages; bodies that are not v1 events are terminated.

    ``on_invalid`` (optional) is called once per terminated body, e.g. to count it in a
    service's own metric.
    """

    invalid: int = 0
    on_invalid: Callable[[], object] | None = None

    async def events(self, batch: int = 100, timeout: float = 1.0) -> list[ReceivedEvent]:
        """Parsed events from one fetch (invalid bodies are ``term``-ed and counted).

        Raises:
            FetchError: as ``fetch``.
        """
        out: list[ReceivedEvent] = []
        for msg in await self.fetch(batch, timeout):
            try:
                out.append(ReceivedEvent(Event.from_json(msg.data), msg))
            except ValidationError as exc:
                self.invalid += 1
                if self.on_invalid is not None:
                    self.on_invalid()
                log.warning(
                    "terminating invalid event on %s: %s", msg.subject, exc.errors()[0]["msg"]
                )
                await msg.term()
        return out
