"""The dispatcher service: intake pipeline, aggregation groups and delivery workers.

Intake: filter → silence → inhibit → route → dedup → enrich → group/enqueue. An event is acked
only after every delivery it leads to is acknowledged by JetStream in PROXBUS_DELIVERIES, so a
crash anywhere before that redelivers it; delivery ids are derived from the event id (or the
set of event ids of a group notification) + route + receiver, so re-processing it enqueues
nothing twice (JetStream's duplicate window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from proxbus_events import (
    DELIVERIES_STREAM,
    EVENTS_STREAM,
    AckSink,
    Event,
    HealthServer,
    PullConsumer,
    ReceivedEvent,
    connect_nats,
    delivery_subject,
    ensure_streams,
    sanitize_token,
)
from pydantic import ValidationError

from .config import DispatcherConfig, Route, load_config
from .delivery import DeliveryWorker
from .enrich import Enricher
from .fetching import AdaptiveFetcher
from .grouping import AggregationGroup, DedupCache, Grouper
from .inhibition import Inhibitor
from .metrics import DispatcherMetrics
from .notification import Notification, delivery_id, single_event_body
from .notifiers import build_notifier
from .routing import match_routes
from .seed import seed_config
from .settings import Settings
from .silences import SilenceWatcher

log = logging.getLogger(__name__)

SUPPRESSED_PREFIX = "proxbus.suppressed"
PUBLISH_ACK_TIMEOUT = 5.0
RETRY_ENQUEUE_DELAY = 1.0


# NATS' default max_payload is 1 MiB; a group notification stays well below it.
MAX_NOTIFICATION_BYTES = 512 * 1024


def _chunks(
    items: list[tuple[Event, Handle]], max_events: int, max_bytes: int
) -> list[list[tuple[Event, Handle]]]:
    """Split a group's events into notifications of at most ``max_events`` / ~``max_bytes``."""
    out: list[list[tuple[Event, Handle]]] = []
    current: list[tuple[Event, Handle]] = []
    size = 0
    for item in items:
        item_size = len(item[1][0].received.msg.data or b"")
        if current and (len(current) >= max_events or size + item_size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        out.append(current)
    return out


def suppressed_subject(site: str) -> str:
    return f"{SUPPRESSED_PREFIX}.{sanitize_token(site)}"


@dataclass(slots=True, eq=False)
class Inflight:
    """An event being processed; acked when its last reference (batch, route, group) is gone."""

    received: ReceivedEvent
    refs: int = 1
    failed: bool = False


Handle = tuple[Inflight, dict[str, Any] | None]
_Pub = tuple[
    "asyncio.Future[Any]", list[tuple[Event, Handle]], Route, AggregationGroup[Handle] | None
]


def load_dispatcher_config(settings: Settings) -> DispatcherConfig:
    """The routes file if ``ROUTES_FILE`` is set, else the seed toggles.

    Raises:
        ConfigError: invalid file or toggles.
    """
    if settings.routes_file is not None:
        return load_config(settings.routes_file)
    return seed_config(settings)


async def _ack_quietly(received: ReceivedEvent) -> None:
    """Ack a dropped event; if the ack is lost the event comes back and is dropped again."""
    try:
        await received.ack()
    except Exception as exc:
        log.debug("ack of dropped event %s failed: %s", received.event.id, exc)


class Dispatcher:
    """The intake pipeline and the group flusher over one NATS connection."""

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
        self.nc = nc
        self.js = js
        self.acks = AckSink(js)
        self.metrics = metrics
        self.consumer = PullConsumer(
            js,
            stream=EVENTS_STREAM,
            durable=settings.consumer_durable,
            filter_subject="proxbus.events.>",
            ack_wait=settings.consumer_ack_wait,
            max_ack_pending=max(10_000, settings.consumer_batch * 8),
        )
        self.fetcher = AdaptiveFetcher(self.consumer, settings.consumer_batch, idle_timeout=0.5)
        self.invalid = 0
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
        self._min_rank = settings.min_severity.rank
        self._subjects = {name: delivery_subject(name) for name in config.receivers}
        self._routed = metrics.events.labels("routed")
        self._dropped = metrics.events.labels("suppressed")
        self._wake = asyncio.Event()
        self.processed = 0

    async def start(self) -> None:
        await self.silences.start()
        await self.acks.start()
        await self.consumer.start()

    # --- intake -------------------------------------------------------------------------

    async def run_intake(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                batch = await self._events()
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

    async def _events(self) -> list[ReceivedEvent]:
        out: list[ReceivedEvent] = []
        for msg in await self.fetcher.fetch():
            try:
                out.append(ReceivedEvent(Event.from_json(msg.data), msg))
            except ValidationError as exc:
                self.invalid += 1
                self.metrics.events.labels("invalid").inc()
                log.warning(
                    "terminating invalid event on %s: %s", msg.subject, exc.errors()[0]["msg"]
                )
                await msg.term()
        return out

    async def _suppress(self, event: Event, reason: str, detail: str = "") -> None:
        self.metrics.suppressed.labels(reason).inc()
        if not self.settings.publish_suppressed:
            return
        record = {
            "schema": "proxbus.suppressed/v1",
            "event_id": event.id,
            "reason": reason,
            "detail": detail,
            "kind": event.kind,
            "severity": event.severity.value,
            "site": event.site,
            "node": event.node,
            "title": event.title,
            "fingerprint": event.fingerprint,
            "at": time.time(),
        }
        with contextlib.suppress(Exception):
            await self.nc.publish(suppressed_subject(event.site), json.dumps(record).encode())

    async def process_batch(self, batch: list[ReceivedEvent]) -> None:
        """Run one fetched batch through the pipeline and settle every event in it."""
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
                await self._suppress(event, reason, detail)
                await _ack_quietly(received)
                continue
            kept = []
            for route in routes:
                if self.dedup.check_and_remember(route, event):
                    await self._suppress(event, "deduped", route.id)
                else:
                    kept.append(route)
            if not kept:
                self._dropped.inc()
                await _ack_quietly(received)
                continue
            self._routed.inc()
            work.append((Inflight(received), kept))

        enrichment = await self.enricher.enrich([inf.received.event for inf, _ in work])
        pubs: list[_Pub] = []
        for inflight, routes in work:
            event = inflight.received.event
            extra = enrichment.get(event.id)
            for route in routes:
                inflight.refs += 1
                if route.groups_all and route.group_wait <= 0:
                    did = delivery_id(event.id, route.id, route.receiver)
                    body = single_event_body(
                        did,
                        route.receiver,
                        route.id,
                        inflight.received.msg.data,
                        {event.id: extra} if extra else None,
                    )
                    future = await self._publish(self._subjects[route.receiver], body, did)
                    pubs.append((future, [(event, (inflight, extra))], route, None))
                else:
                    group, created = self.grouper.add(route, event, (inflight, extra))
                    if not created:
                        await self._suppress(event, "grouped", group.key)
        await self._settle(pubs)
        for inflight, _ in work:
            await self._release(inflight)
        self._wake.set()

    def _drop_reason(self, event: Event) -> tuple[str | None, str]:
        if event.severity.rank < self._min_rank:
            return "below_min_severity", self.settings.min_severity.value
        silence = self.silences.muting(event)
        if silence is not None:
            return "silenced", silence.id
        rule = self.inhibitor.inhibiting_rule(event)
        if rule is not None:
            return "inhibited", f"inhibit_rules[{rule}]"
        return None, ""

    async def _enqueue(
        self,
        notification: Notification,
        items: list[tuple[Event, Handle]],
        route: Route,
        group: AggregationGroup[Handle] | None,
    ) -> _Pub:
        future = await self._publish(
            delivery_subject(notification.receiver), notification.to_json(), notification.id
        )
        return future, items, route, group

    async def _publish(self, subject: str, body: bytes, msg_id: str) -> asyncio.Future[Any]:
        """A pipelined JetStream publish; one that cannot even be sent is a failed future, so
        ``_settle`` retries it like one whose ack never came."""
        return await self.acks.publish(subject, body, {"Nats-Msg-Id": msg_id})

    async def _settle(self, pubs: list[_Pub]) -> None:
        """Wait for the JetStream acks of ``pubs``; failed ones are retried, successful released."""
        if not pubs:
            return
        futures = [p[0] for p in pubs]
        _, pending = await asyncio.wait(futures, timeout=PUBLISH_ACK_TIMEOUT)
        for future in pending:
            future.cancel()
        for future, items, route, group in pubs:
            ok = future.done() and not future.cancelled() and future.exception() is None
            if ok:
                self.metrics.enqueued.labels(route.receiver).inc()
            else:
                self.metrics.enqueue_failures.inc()
                log.warning("enqueue to %s failed; will retry", route.receiver)
            if group is not None:
                if ok:
                    for _, (inflight, _) in items:
                        await self._release(inflight)
                else:
                    self.grouper.retry_later(group, items, RETRY_ENQUEUE_DELAY)
            else:
                for event, (inflight, _) in items:
                    if not ok:
                        inflight.failed = True
                        self.dedup.forget(route, event)
                    await self._release(inflight)

    async def _release(self, inflight: Inflight) -> None:
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

    # --- groups -------------------------------------------------------------------------

    async def run_groups(self, stop: asyncio.Event) -> None:
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

    async def flush(
        self, due: list[tuple[AggregationGroup[Handle], list[tuple[Event, Handle]]]]
    ) -> None:
        """Enqueue one notification per due group (split at ``max_events_per_notification``)."""
        pubs: list[_Pub] = []
        size = self.config.max_events_per_notification
        for group, items in due:
            route = group.route
            for chunk in _chunks(items, size, MAX_NOTIFICATION_BYTES):
                events = [e for e, _ in chunk]
                ids = sorted(e.id for e in events)
                enrichment = {e.id: extra for e, (_, extra) in chunk if extra}
                notification = Notification(
                    id=delivery_id(group.key, route.receiver, *ids),
                    receiver=route.receiver,
                    route=route.id,
                    group_key=group.key,
                    group_labels=group.labels,
                    events=events,
                    enrichment=enrichment,
                )
                pubs.append(await self._enqueue(notification, chunk, route, group))
        await self._settle(pubs)

    async def drain(self) -> None:
        """At shutdown: notify what groups hold now rather than leave it for redelivery."""
        await self.flush(self.grouper.flush_all())

    async def close(self) -> None:
        await self.silences.stop()
        await self.consumer.close()
        await self.acks.close()


class DispatcherService:
    """Everything ``proxbus-dispatcher`` runs: NATS, intake, groups, workers, health."""

    def __init__(self, settings: Settings, config: DispatcherConfig | None = None) -> None:
        self.settings = settings
        self.config = config or load_dispatcher_config(settings)
        self.registry = CollectorRegistry()
        self.metrics = DispatcherMetrics(self.registry)
        self.health = HealthServer(settings.health_host, settings.health_port, self.registry)
        self.nc: NATS | None = None
        self.dispatcher: Dispatcher | None = None
        self.workers: list[DeliveryWorker] = []
        self._http: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        s = self.settings
        self.nc = await connect_nats(s, name="proxbus-dispatcher")
        js = self.nc.jetstream(timeout=5)
        await ensure_streams(js, s.stream_limits())
        self.dispatcher = Dispatcher(s, self.config, self.nc, js, self.metrics)
        if s.intake_enabled:
            await self.dispatcher.start()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=128),
            timeout=aiohttp.ClientTimeout(total=10.0, connect=5.0),
        )
        if s.delivery_enabled:
            for receiver in self.config.receivers.values():
                notifier = build_notifier(receiver, http=self._http, nc=self.nc)
                self.workers.append(
                    DeliveryWorker(
                        js, receiver, notifier, self.metrics, ack_wait=s.delivery_ack_wait
                    )
                )
        nc = self.nc
        self.health.add_check("nats", lambda: nc.is_connected)
        self.health.add_check("tasks", lambda: not any(t.done() for t in self._tasks))
        await self.health.start()
        d = self.dispatcher
        if s.intake_enabled:
            self._tasks.append(asyncio.create_task(d.run_intake(self._stop), name="intake"))
            self._tasks.append(asyncio.create_task(d.run_groups(self._stop), name="groups"))
        for worker in self.workers:
            self._tasks.append(
                asyncio.create_task(worker.run(self._stop), name=f"deliver-{worker.receiver.name}")
            )
        if not self.config.receivers:
            log.warning(
                "no receiver configured (no ROUTES_FILE, no *_OUT_ENABLED): events are only counted"
            )
        log.info(
            "dispatcher started: %d receivers (%s), %d routes, %d inhibit rules",
            len(self.config.receivers),
            ", ".join(self.config.receivers) or "none",
            len(self.config.iter_routes()),
            len(self.config.inhibit_rules),
        )

    async def stop(self) -> None:
        """Stop intake, notify what groups hold, let in-flight sends finish, close."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=7.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.dispatcher is not None and self.settings.intake_enabled:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.dispatcher.drain(), 2.0)
            await self.dispatcher.close()
        if self._http is not None:
            await self._http.close()
        await self.health.stop()
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.drain(), 1.0)
            except Exception:
                with contextlib.suppress(Exception):
                    await self.nc.close()


async def run(
    settings: Settings, stop: asyncio.Event, config: DispatcherConfig | None = None
) -> None:
    """Run until ``stop`` is set (the ``run_service`` main)."""
    service = DispatcherService(settings, config)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()


__all__ = ["DELIVERIES_STREAM", "Dispatcher", "DispatcherService", "run"]
