"""The one consume path: durable pull consumers shared by service replicas."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from proxbus_events import EVENTS_STREAM, Event
from pydantic import ValidationError

log = logging.getLogger(__name__)


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
    """A durable pull consumer: every replica binding the same ``durable`` shares the work."""

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
        self._sub: JetStreamContext.PullSubscription | None = None
        self._pending = 0

    async def start(self) -> None:
        """Create or bind the durable consumer."""
        self._sub = await self._js.pull_subscribe(
            self.config.filter_subject or "",
            durable=self.durable,
            stream=self.stream,
            config=self.config,
        )

    async def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Msg]:
        """Up to ``batch`` messages; an empty list when none came within ``timeout``.

        A pull for ``n`` messages lingers until ``n`` arrived or the timeout passed, so at low
        rates every message would wait the whole timeout. Each message says how many more are
        pending: ask for at most that many, and for just one when nothing is known to wait
        (that pull returns as soon as it arrives).
        """
        if self._sub is None:
            await self.start()
        assert self._sub is not None
        n = 1 if self._pending <= 0 else min(batch, self._pending)
        try:
            msgs = await self._sub.fetch(n, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            self._pending = 0
            return []
        try:
            self._pending = int(msgs[-1].metadata.num_pending) if msgs else 0
        except (AttributeError, ValueError, nats.errors.Error):
            self._pending = 0
        return msgs

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.debug("unsubscribe failed: %s", exc)
            self._sub = None


class EventConsumer(PullConsumer):
    """A pull consumer of ``Event`` messages; bodies that are not v1 events are terminated."""

    invalid: int = 0

    async def events(self, batch: int = 100, timeout: float = 1.0) -> list[ReceivedEvent]:
        """Parsed events from one fetch (invalid bodies are ``term``-ed and counted)."""
        out: list[ReceivedEvent] = []
        for msg in await self.fetch(batch, timeout):
            try:
                out.append(ReceivedEvent(Event.from_json(msg.data), msg))
            except ValidationError as exc:
                self.invalid += 1
                log.warning(
                    "terminating invalid event on %s: %s", msg.subject, exc.errors()[0]["msg"]
                )
                await msg.term()
        return out
