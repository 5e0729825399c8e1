"""Enqueue and settle: deliveries go to PROXBUS_DELIVERIES; an event is acked on
PROXBUS_EVENTS only when every delivery it leads to is acknowledged by JetStream.

Each event being processed is an ``Inflight`` with a reference count (the batch, each route
it is published or grouped on); the last release acks it, or naks it (redelivery after
``RETRY_ENQUEUE_DELAY``) when one of its deliveries could not be enqueued.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from proxbus_events import Event
from proxbus_runtime import EventPublisher, ReceivedEvent

from .config import Route
from .metrics import DispatcherMetrics

log = logging.getLogger(__name__)

PUBLISH_ACK_TIMEOUT = 5.0
RETRY_ENQUEUE_DELAY = 1.0

G = TypeVar("G")


@dataclass(slots=True, eq=False)
class Inflight:
    """An event being processed; acked when its last reference (batch, route, group) is gone."""

    received: ReceivedEvent
    refs: int = 1
    failed: bool = False


@dataclass(slots=True, eq=False)
class Held:
    """What intake keeps with an event while it is published or grouped on a route."""

    inflight: Inflight
    extra: dict[str, Any] | None  # enrichment
    incident: str  # the incident's id
    key: str = ""  # its state key (an attached event's fingerprint is another one)

    @property
    def raw(self) -> bytes:
        """The event's wire JSON as received."""
        return self.inflight.received.msg.data or b""


@dataclass(slots=True, eq=False)
class PendingDelivery(Generic[G]):
    """A published delivery waiting for its JetStream ack, with the events it carries."""

    future: asyncio.Future[Any]
    items: list[tuple[Event, Held]]
    route: Route
    group: G | None = None
    ok: bool = False


class Enqueuer:
    """Pipelined delivery publishes (the runtime publisher's ``send``) and the event settle path."""

    def __init__(self, publisher: EventPublisher, metrics: DispatcherMetrics) -> None:
        self._publisher = publisher  # the runtime's; started and closed by the runtime
        self._metrics = metrics
        self._enqueued: dict[str, Any] = {}  # receiver → its counter child

    async def publish(self, subject: str, body: bytes, msg_id: str) -> asyncio.Future[Any]:
        """A pipelined JetStream publish; one that cannot even be sent is a failed future, so
        ``settle`` treats it like one whose ack never came."""
        return await self._publisher.send(subject, body, {"Nats-Msg-Id": msg_id})

    async def settle(self, pending: list[PendingDelivery[G]]) -> None:
        """Wait (bounded) for the acks of ``pending``; sets each one's ``ok`` and counts it."""
        if not pending:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_ACK_TIMEOUT
        # The acks come back in publish order (one connection, one stream), so waiting for the
        # last one mostly waits for all: one done-callback, not one per delivery.
        last = pending[-1].future
        if not last.done():
            await asyncio.wait([last], timeout=PUBLISH_ACK_TIMEOUT)
        late = [p.future for p in pending if not p.future.done()]
        if late:
            _, left = await asyncio.wait(late, timeout=max(0.0, deadline - loop.time()))
            for future in left:
                future.cancel()
        for p in pending:
            f = p.future
            p.ok = not f.cancelled() and f.exception() is None
            if p.ok:
                counter = self._enqueued.get(p.route.receiver)
                if counter is None:
                    counter = self._enqueued[p.route.receiver] = self._metrics.enqueued.labels(
                        p.route.receiver
                    )
                counter.inc()
            else:
                self._metrics.enqueue_failures.inc()
                log.warning("enqueue to %s failed; will retry", p.route.receiver)

    async def release(self, inflight: Inflight) -> None:
        """Drop one reference; the last one acks the event (or naks it after a failure)."""
        inflight.refs -= 1
        if inflight.refs > 0:
            return
        try:
            if inflight.failed:
                await inflight.received.nak(delay=RETRY_ENQUEUE_DELAY)
            else:
                await inflight.received.ack()
        except Exception as exc:  # the broker redelivers after ack_wait; nothing is lost
            log.warning("settling event %s failed: %s", inflight.received.event.id, exc)

    @staticmethod
    async def ack_dropped(received: ReceivedEvent) -> None:
        """Ack a dropped event; if the ack is lost the event comes back and is dropped again."""
        try:
            await received.ack()
        except Exception as exc:
            log.debug("ack of dropped event %s failed: %s", received.event.id, exc)
