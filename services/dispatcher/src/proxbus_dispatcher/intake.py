"""The intake pipeline over fetched batches, and the group flusher.

floor → silence → inhibit → route → dedup → enrich → group/enqueue (the ``stages`` package).
An event is acked only after every delivery it leads to is acknowledged by JetStream in
PROXBUS_DELIVERIES (``enqueue``), so a crash anywhere before that redelivers it; delivery ids
are derived from the event id (or the set of event ids of a group notification) + route +
receiver, so re-processing it enqueues nothing twice (JetStream's duplicate window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from proxbus_events import EVENTS_STREAM, Event, delivery_subject
from proxbus_runtime import EventPublisher, PullConsumer, ReceivedEvent
from pydantic import ValidationError

from .config import DispatcherConfig, Route
from .enqueue import Enqueuer, Handle, Inflight, PendingDelivery
from .metrics import DispatcherMetrics
from .notification import delivery_body, delivery_id
from .settings import Settings
from .stages.dedup import DedupCache
from .stages.enrich import Enricher
from .stages.floor import SeverityFloor
from .stages.grouping import AggregationGroup, Grouper, chunk
from .stages.inhibition import Inhibitor
from .stages.routing import match_routes
from .stages.silence import SilenceWatcher
from .suppression import SuppressionLog

log = logging.getLogger(__name__)

# NATS' default max_payload is 1 MiB; a group notification stays well below it.
MAX_NOTIFICATION_BYTES = 512 * 1024
RETRY_GROUP_DELAY = 1.0

Group = AggregationGroup[Handle]
Pending = PendingDelivery[Group]


def _raw(handle: Handle) -> bytes:
    return handle[0].received.msg.data or b""


class Intake:
    """Consumes PROXBUS_EVENTS through the stages and enqueues deliveries."""

    def __init__(
        self,
        settings: Settings,
        config: DispatcherConfig,
        nc: NATS,
        js: JetStreamContext,
        metrics: DispatcherMetrics,
    ) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics
        self.consumer = PullConsumer(
            js,
            stream=EVENTS_STREAM,
            durable=settings.consumer_durable,
            filter_subject="proxbus.events.>",
            ack_wait=settings.consumer_ack_wait,
            max_ack_pending=max(10_000, settings.consumer_batch * 8),
        )
        self.enqueuer = Enqueuer(EventPublisher(js), metrics)
        self.suppressions = SuppressionLog(nc, metrics, publish=settings.publish_suppressed)
        self.floor = SeverityFloor(settings.min_severity)
        self.silences = SilenceWatcher(js)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.dedup = DedupCache()
        self.grouper: Grouper[Handle] = Grouper()
        self.enricher = Enricher(
            nc,
            metrics,
            enabled=settings.enrich_enabled,
            timeout=settings.enrich_timeout,
            guest_tool=settings.enrich_guest_tool,
            task_log_tool=settings.enrich_task_log_tool,
        )
        self._subjects = {name: delivery_subject(name) for name in config.receivers}
        self._routed = metrics.events.labels("routed")
        self._dropped = metrics.events.labels("suppressed")
        self._invalid = metrics.events.labels("invalid")
        self._wake = asyncio.Event()
        self.processed = 0
        self.invalid = 0

    async def start(self) -> None:
        await self.silences.start()
        await self.enqueuer.start()
        await self.consumer.start()

    async def close(self) -> None:
        await self.silences.stop()
        await self.consumer.close()
        await self.enqueuer.close()

    # --- intake -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and process batches until ``stop``."""
        while not stop.is_set():
            try:
                batch = await self._fetch()
            except Exception as exc:
                log.warning("event fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if not batch:
                continue
            try:
                await self.process_batch(batch)
            except Exception:
                # Unsettled events are redelivered after ack_wait; keep consuming.
                log.exception("processing a batch of %d events failed", len(batch))

    async def _fetch(self) -> list[ReceivedEvent]:
        """One batch, each body decoded and validated once; invalid bodies are terminated."""
        out: list[ReceivedEvent] = []
        for msg in await self.consumer.fetch(self.settings.consumer_batch, timeout=0.5):
            try:
                out.append(ReceivedEvent(Event.from_json(msg.data), msg))
            except ValidationError as exc:
                self.invalid += 1
                self._invalid.inc()
                log.warning(
                    "terminating invalid event on %s: %s", msg.subject, exc.errors()[0]["msg"]
                )
                await msg.term()
        return out

    def _drop_reason(self, event: Event) -> tuple[str | None, str]:
        """The first filter stage that drops ``event``: floor, silence, inhibition."""
        below = self.floor.check(event)
        if below is not None:
            return self.floor.reason, below
        silence = self.silences.muting(event)
        if silence is not None:
            return "silenced", silence.id
        rule = self.inhibitor.inhibiting_rule(event)
        if rule is not None:
            return "inhibited", f"inhibit_rules[{rule}]"
        return None, ""

    async def process_batch(self, batch: list[ReceivedEvent]) -> None:
        """Run one fetched batch through the stages and settle every event in it."""
        work: list[tuple[Inflight, list[Route]]] = []
        for received in batch:
            event = received.event
            self.processed += 1
            self.inhibitor.observe(event)
            reason, detail = self._drop_reason(event)
            routes: list[Route] = []
            if reason is None:
                routes = [r for r in match_routes(self.config.root, event) if r.receiver]
                if not routes:
                    reason = "unrouted"
            if reason is not None:
                self._dropped.inc()
                await self.suppressions.record(event, reason, detail)
                await Enqueuer.ack_dropped(received)
                continue
            kept = []
            for route in routes:
                if self.dedup.check_and_remember(route, event):
                    await self.suppressions.record(event, "deduped", route.id)
                else:
                    kept.append(route)
            if not kept:
                self._dropped.inc()
                await Enqueuer.ack_dropped(received)
                continue
            self._routed.inc()
            work.append((Inflight(received), kept))

        enrichment = await self.enricher.enrich([inf.received.event for inf, _ in work])
        pending: list[Pending] = []
        for inflight, routes in work:
            event = inflight.received.event
            extra = enrichment.get(event.id)
            for route in routes:
                inflight.refs += 1
                if route.groups_all and route.group_wait <= 0:
                    did = delivery_id(event.id, route.id, route.receiver)
                    body = delivery_body(
                        did,
                        route.receiver,
                        route.id,
                        [inflight.received.msg.data],
                        {event.id: extra} if extra else None,
                    )
                    future = await self.enqueuer.publish(self._subjects[route.receiver], body, did)
                    pending.append(PendingDelivery(future, [(event, (inflight, extra))], route))
                else:
                    group, created = self.grouper.add(route, event, (inflight, extra))
                    if not created:
                        await self.suppressions.record(event, "grouped", group.key)
        await self._settle(pending)
        for inflight, _ in work:
            await self.enqueuer.release(inflight)
        self._wake.set()

    async def _settle(self, pending: list[Pending]) -> None:
        """Wait for the acks; a failed group notification is retried, a failed single one
        naks its event (and forgets its dedup entry); every reference is released."""
        await self.enqueuer.settle(pending)
        for p in pending:
            if p.group is not None:
                if p.ok:
                    for _, (inflight, _) in p.items:
                        await self.enqueuer.release(inflight)
                else:
                    self.grouper.retry_later(p.group, p.items, RETRY_GROUP_DELAY)
                continue
            for event, (inflight, _) in p.items:
                if not p.ok:
                    inflight.failed = True
                    self.dedup.forget(p.route, event)
                await self.enqueuer.release(inflight)

    # --- groups -------------------------------------------------------------------------

    async def run_groups(self, stop: asyncio.Event) -> None:
        """Flush due groups; keep held events alive (``in_progress``) while they wait."""
        keepalive_every = max(0.5, self.settings.consumer_ack_wait / 3)
        last_keepalive = time.monotonic()
        while not stop.is_set():
            deadline = self.grouper.next_deadline()
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            await self.flush(self.grouper.due())
            self.metrics.groups.set(len(self.grouper.groups))
            self.metrics.grouped_events.set(self.grouper.pending_count)
            self.metrics.silences.set(self.silences.active)
            if time.monotonic() - last_keepalive >= keepalive_every:
                last_keepalive = time.monotonic()
                for inflight, _ in list(self.grouper.held()):
                    with contextlib.suppress(Exception):
                        await inflight.received.in_progress()

    async def flush(self, due: list[tuple[Group, list[tuple[Event, Handle]]]]) -> None:
        """Enqueue one notification per due group (split at ``max_events_per_notification``)."""
        pending: list[Pending] = []
        size = self.config.max_events_per_notification
        for group, items in due:
            route = group.route
            for part in chunk(items, size, MAX_NOTIFICATION_BYTES, lambda h: len(_raw(h))):
                ids = sorted(e.id for e, _ in part)
                did = delivery_id(group.key, route.receiver, *ids)
                enrichment = {e.id: extra for e, (_, extra) in part if extra}
                body = delivery_body(
                    did,
                    route.receiver,
                    route.id,
                    [_raw(h) for _, h in part],
                    enrichment,
                    group_key=group.key,
                    group_labels=group.labels,
                )
                future = await self.enqueuer.publish(self._subjects[route.receiver], body, did)
                pending.append(PendingDelivery(future, part, route, group))
        await self._settle(pending)

    async def drain(self) -> None:
        """At shutdown: notify what groups hold now rather than leave it for redelivery."""
        await self.flush(self.grouper.flush_all())
