"""The intake pipeline over fetched batches, and the group flusher.

peer names → floor → silence → inhibit → route → incident + dedup → enrich → group/enqueue
(``stages``; peer names: a lost knet peer's node name from its node id, ``stages/peers``);
acknowledgements (``stages/ack``) are stored on their incidents before the batch is decided.
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from proxbus_events import EVENTS_STREAM, Event, compute_fingerprint, delivery_subject
from proxbus_runtime import EventConsumer, EventPublisher, RateLimitedLog, ReceivedEvent

from .config import DispatcherConfig, Route
from .enqueue import RETRY_ENQUEUE_DELAY, Enqueuer, Held, Inflight, PendingDelivery
from .metrics import DispatcherMetrics
from .notification import delivery_body, delivery_id, now_iso
from .settings import Settings
from .stages.ack import ack_of
from .stages.dedup import within_repeat_interval
from .stages.enrich import Enricher
from .stages.floor import SeverityFloor
from .stages.grouping import AggregationGroup, Grouper, chunk
from .stages.incidents import (
    RESOLVED,
    AbsentFailures,
    Incident,
    failure_fingerprint,
    recovered_kind,
    reported_state,
    same_state,
)
from .stages.inhibition import Inhibitor
from .stages.peers import PeerNames
from .stages.routing import PEER_NODE_KEY, match_routes
from .stages.silence import SilenceWatcher
from .state import StateStore, incident_key
from .suppression import SuppressionLog

log = logging.getLogger(__name__)

# NATS' default max_payload is 1 MiB; a group notification stays well below it.
MAX_NOTIFICATION_BYTES = 512 * 1024
RETRY_GROUP_DELAY = 1.0
HA_STATE = "ha.state"
NODE_FENCED = "node.fenced"

Group = AggregationGroup[Held]
Pending = PendingDelivery[Group]


@dataclass(slots=True, eq=False)
class _Plan:
    """What one event does, decided before its incident is stored."""

    inflight: Inflight
    incident: Incident
    key: str
    changed: bool = False
    # other incidents the event changed (a failure it resolved): written with ``key``
    also: list[str] = field(default_factory=list)
    notify: list[Route] = field(default_factory=list)
    gather: list[Route] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)


class Intake:
    """Consumes PROXBUS_EVENTS through the stages and enqueues deliveries."""

    def __init__(
        self,
        settings: Settings,
        config: DispatcherConfig,
        nc: NATS,
        js: JetStreamContext,
        metrics: DispatcherMetrics,
        publisher: EventPublisher,
    ) -> None:
        """``publisher`` is the runtime's (``Service.publisher``): deliveries go out through
        its ``send()``; its lifecycle is the runtime's, not the intake's."""
        self.settings = settings
        self.config = config
        self.metrics = metrics
        self.consumer = EventConsumer(
            js,
            stream=EVENTS_STREAM,
            durable=settings.consumer_durable,
            filter_subject="proxbus.events.>",
            ack_wait=settings.consumer_ack_wait,
            max_ack_pending=max(10_000, settings.consumer_batch * 8),
        )
        self.enqueuer = Enqueuer(publisher, metrics)
        self.suppressions = SuppressionLog(nc, metrics, publish=settings.publish_suppressed)
        self.floor = SeverityFloor(settings.min_severity)
        self.silences = SilenceWatcher(js)
        self.state = StateStore(nc, js, ttl=settings.state_ttl)
        self.inhibitor = Inhibitor(config.inhibit_rules, sources=self.state.inhibitions)
        self.grouper: Grouper[Held] = Grouper()
        # (route id, incident id) of incidents whose notification is still being gathered
        self._gathering: set[tuple[str, str]] = set()
        self._window = settings.incident_window
        self._ack_resolve_after = settings.ack_resolve_after
        longest_repeat = max((r.repeat_interval for r in config.iter_routes()), default=0.0)
        self._keep = max(self._window, longest_repeat, self._ack_resolve_after) + 60.0
        self._acks_log = RateLimitedLog(log, "incidents acknowledged", level=logging.INFO)
        self.enricher = Enricher(
            nc,
            metrics,
            enabled=settings.enrich_enabled,
            timeout=settings.enrich_timeout,
            guest_tool=settings.enrich_guest_tool,
            task_log_tool=settings.enrich_task_log_tool,
        )
        self.peers = PeerNames(
            nc,
            metrics,
            enabled=settings.enrich_enabled,
            timeout=settings.enrich_timeout,
            ttl=settings.peer_names_ttl,
            tool=settings.peer_names_tool,
        )
        self._subjects = {name: delivery_subject(name) for name in config.receivers}
        self._absent_failures = AbsentFailures()
        # routes by id: a route that told a problem tells its end (``_told_before``)
        self._routes = {r.id: r for r in config.iter_routes() if r.receiver}
        self._routed = metrics.events.labels("routed")
        self._dropped = metrics.events.labels("suppressed")
        self.consumer.on_invalid = metrics.events.labels("invalid").inc
        self._wake = asyncio.Event()
        self.processed = 0

    async def start(self) -> None:
        await self.state.open()
        await self.silences.start()
        await self.consumer.start()

    async def close(self) -> None:
        await self.state.close()
        await self.silences.stop()
        await self.consumer.close()

    # --- intake -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and process batches until ``stop``.

        The next batch is fetched while the current one is processed (its state writes and
        delivery publishes wait on JetStream acks): one round trip per batch less. Batches
        are still processed one after the other, in order.
        """
        ahead: asyncio.Task[list[ReceivedEvent]] | None = None
        try:
            while not stop.is_set():
                try:
                    batch = await (ahead if ahead is not None else self._fetch())
                except Exception as exc:
                    log.warning("event fetch failed: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                finally:
                    ahead = None
                if not batch:
                    continue
                ahead = asyncio.create_task(self._fetch(), name="intake-prefetch")
                try:
                    await self.process_batch(batch)
                except Exception:
                    # Unsettled events are redelivered after ack_wait; keep consuming.
                    log.exception("processing a batch of %d events failed", len(batch))
        finally:
            if ahead is not None:
                await self._give_back(ahead)

    async def _give_back(self, ahead: asyncio.Task[list[ReceivedEvent]]) -> None:
        """At stop: a batch fetched but not processed goes back at once (nak), not after
        ``ack_wait``."""
        try:
            batch = await asyncio.shield(ahead)
        except asyncio.CancelledError:
            ahead.cancel()
            raise
        except Exception:
            return
        for received in batch:
            with contextlib.suppress(Exception):
                await received.nak()

    async def _fetch(self) -> list[ReceivedEvent]:
        """One batch, each body decoded and validated once; invalid bodies are terminated."""
        return await self.consumer.events(self.settings.consumer_batch, timeout=0.5)

    def _drop_reason(self, event: Event) -> tuple[str | None, str]:
        """The first filter stage that drops ``event``: floor, silence, inhibition."""
        below = self.floor.check(event)
        if below is not None:
            return self.floor.reason, below
        return self._muted(event)

    def _muted(self, event: Event) -> tuple[str | None, str]:
        """The silence or inhibition that drops ``event``, if one."""
        silence = self.silences.muting(event)
        if silence is not None:
            return "silenced", silence.id
        rule = self.inhibitor.inhibiting_rule(event)
        if rule is not None:
            return "inhibited", f"inhibit_rules[{rule}]"
        return None, ""

    async def _observe_inhibition(self, event: Event) -> None:
        for key, until in self.inhibitor.observe(event):
            if until is None:
                await self.state.delete_inhibition(key)
            else:
                await self.state.put_inhibition(key, until)

    def _plans(self, inflight: Inflight, routes: list[Route]) -> list[_Plan]:
        """The incidents the event is about and, for each, what it does there.

        An event attached to open incidents of its task (``Incident.attaches``: a backup
        job's own report, the task's end) goes to every such incident; any other event finds
        or opens the incident of its fingerprint.
        """
        event = inflight.received.event
        cid = event.correlation_id
        if cid and cid.startswith("UPID:") and self._window > 0:
            attached = [
                (key, incident)
                for key, incident in self.state.by_upid(cid)
                if incident.attaches(event, self._window)
            ]
            if attached:
                plans = []
                for _, incident in attached:
                    changed = not incident.has(event)
                    incident.add(event, text=False)
                    plans.append(self._decide(inflight, incident, changed, routes))
                return plans
        known = self.state.incident(event.fingerprint)
        told: set[str] = set()
        ends = self._ending(event)
        repeat = None if ends is not None else self._repeated_end(event, known)
        if repeat is not None and repeat is known:
            # another source's report of an end already told (the API's "back online" after
            # the HA line resolved the alert): a repeat, nothing to store or tell
            plan = _Plan(inflight, repeat, self.state.put_local(repeat))
            plan.suppressed.append(("incident", repeat.id))
            return [plan]
        if known is not None and ends is not None and not known.has(event):
            # the end of a notified problem is never a repeat: not of an earlier end of this
            # fingerprint (a plain "Quorum regained" of the last loss, of a boot), whose
            # notification log and incident would dedup it; a classified event (the HA
            # node's return) is still its own state change
            if reported_state(event) is None:
                incident = Incident.open(event)
            else:
                incident = Incident.open(
                    event, previous=known, window=self._window, state_change=True
                )
                told = set(known.routes) | {
                    rid
                    for rid, st in known.notified_state.items()
                    if not same_state(st, incident.state)
                }
            changed = True
        elif known is not None and (known.has(event) or known.admits(event, self._window)):
            incident, changed = known, not known.has(event)
            # redelivered: every route it claimed, matched or told-before, enqueues again
            told = {rid for rid, eid in incident.routes.items() if eid == event.id}
        elif known is not None and known.resolved:
            # the failure came back after a success resolved it: a new alert, not a repeat
            incident, changed = Incident.open(event), True
        else:
            carried = known is not None and known.ack_holds(event, self._ack_resolve_after)
            state_change = known is not None and known.changes_state(event)
            incident = Incident.open(
                event,
                known.notified if known else None,
                known.acked if known is not None and carried else None,
                previous=known,
                window=self._window,
                state_change=state_change,
            )
            changed = True
            if state_change and known is not None:
                # the routes that told the previous state are told this one
                told = set(known.routes) | {
                    rid
                    for rid, st in known.notified_state.items()
                    if not same_state(st, incident.state)
                }
        incident.add(event)
        if repeat is not None and incident is not known:
            # an end the operator was told by another report (the API's "back online" before
            # the HA line that recovers it): recorded, not notified
            incident.told_by = repeat.id
        fenced = self._fence_told(event)
        if fenced is not None and incident.id == event.id:
            # the fence's success, told by "Node pve2 fenced": recorded in the node's states
            # (its "unknown → online" is still a state change), not notified
            incident.told_by = fenced.id
        failure, ended = self._resolve(event, incident)
        if ended:
            changed = True
            told |= set(failure.notified) if failure else set()  # the routes that told it
        plan = self._decide(
            inflight,
            incident,
            changed,
            self._told_before(routes, told),
            # the receivers told the end: the others (a route of ha.state only, told
            # "fence → unknown") are told this report as any state change
            told_end=(
                self._end_receivers(repeat)
                if repeat is not None
                else self._receivers(fenced.notified)
                if fenced is not None
                else None
            ),
        )
        if failure is not None:
            plan.also.append(self.state.put_local(failure))
        return [plan]

    def _changes_told_state(self, event: Event) -> bool:
        """Whether ``event`` reports another state (``Incident.changes_state``) of a
        fingerprint whose current incident in memory was notified: it goes to the routes that
        told that state (``_plans``), not dropped as unrouted or below the floor."""
        if reported_state(event) is None:
            return False  # most events: one set operation
        known = self.state.incident(event.fingerprint)
        return (
            known is not None
            and bool(known.routes or known.notified_state)
            and known.changes_state(event)
        )

    def _told_before(self, routes: list[Route], told: set[str]) -> list[Route]:
        """``routes`` and the routes (by id) that told the earlier state or the failure this
        event ends, whatever their matchers (Alertmanager's ``send_resolved``): a phone route
        for warnings and worse was told "pve2 is offline" and is told "back online" (info).
        A receiver a matched route already tells is not told twice (the seed's digest route of
        successes and its alerting route share the receiver)."""
        receivers = {r.receiver for r in routes}
        extra = []
        for rid in sorted(told):
            route = self._routes.get(rid)
            if route is not None and route.receiver not in receivers:
                receivers.add(route.receiver)
                extra.append(route)
        return routes + extra

    def _repeated_end(self, event: Event, known: Incident | None) -> Incident | None:
        """The problem whose end ``event`` repeats (``Incident.end_told``): for an event
        whose ``metadata.recovers`` names a kind, that kind's incident; for an event reporting
        ``resolved``, its own fingerprint's incident; else ``None``."""
        if recovered_kind(event) is not None:
            fingerprint = failure_fingerprint(event)
            problem = self.state.incident(fingerprint) if fingerprint else None
        elif reported_state(event) == RESOLVED:
            problem = known
        else:
            return None
        if problem is None or not problem.end_told(event, self._window):
            return None
        return problem

    def _ending(self, event: Event) -> Incident | None:
        """The notified, unresolved problem ``event`` would end (a job's failure its success
        ends, the alert a plain line's ``metadata.recovers`` names), loaded before
        (``_load_failure``); whether it does is ``Incident.resolve_by``'s."""
        fingerprint = failure_fingerprint(event)
        if fingerprint is None:
            return None
        failure = self.state.incident(fingerprint)
        if failure is None or not failure.is_problem() or failure.resolved is not None:
            return None
        return failure if failure.notified else None

    def _resolve(self, event: Event, incident: Incident) -> tuple[Incident | None, bool]:
        """A job's success resolves its notified failure (``Incident.resolve_by``); returns
        the failure (to write) and whether ``event`` resolved it: a recovery line of one
        reporter while others still report the problem changes the failure's ``reporters``
        only (written, nothing told). The failure was loaded before the batch was decided
        (``_load_failure``)."""
        fingerprint = failure_fingerprint(event)
        if fingerprint is None:
            return None, False
        failure = self.state.incident(fingerprint)
        if failure is None or not failure.is_problem():
            return None, False
        down = failure.reporters_down() if failure.reporters else None
        if not failure.resolve_by(event):
            changed = down is not None and failure.reporters_down() != down
            return (failure if changed else None), False
        if incident.resolves is None:
            incident.resolves = failure.resolution()
        return failure, True

    async def _load_failure(self, event: Event) -> None:
        """Read the failure a success may resolve from the bucket when it is not in memory
        (last night's failure was pruned from memory hours ago)."""
        fingerprint = failure_fingerprint(event)
        if fingerprint is None or self.state.incident(fingerprint) is not None:
            return
        key = incident_key(fingerprint)
        if self._absent_failures.known_absent(key):
            return
        await self.state.reload(key)
        if self.state.incident(fingerprint) is None:
            self._absent_failures.remember(key)

    def _end_receivers(self, problem: Incident) -> set[str]:
        """The receivers told the end of ``problem`` (``Incident.end_told``): its resolved
        state's notification, or the resolving report's (told on the routes that told it)."""
        return self._receivers(problem.routes if problem.resolved is None else problem.notified)

    def _receivers(self, rids: Iterable[str]) -> set[str]:
        return {r.receiver for rid in rids if (r := self._routes.get(rid)) is not None}

    def _fence_told(self, event: Event) -> Incident | None:
        """The notified ``node.fenced`` incident whose happening ``event`` repeats, if it is
        the HA manager's ``node 'pve2': state changed from 'fence' => 'unknown'``.

        pve-ha-manager ``src/PVE/HA/NodeStatus.pm`` ``fence_node`` sets a node 'unknown' from
        'fence' only right after logging ``fencing: acknowledged - got agent lock for node``
        (``update`` leaves a fenced node alone): one happening, the fence's success, which
        ingest-syslog and the cluster log tell as ``node.fenced``. The transition is still
        the node's state (``ha.state``), recorded so its return is a state change; it is
        held back from the receivers told the fence (``Node pve2 fenced``) within the window.
        """
        if event.kind != HA_STATE or event.node is None or self._window <= 0:
            return None  # every other event: one comparison
        meta = event.metadata
        if meta.get("old_state") != "fence" or meta.get("new_state") != "unknown" or "sid" in meta:
            return None
        fenced = self.state.incident(
            compute_fingerprint(NODE_FENCED, event.site, event.node, None, "")
        )
        if fenced is None or not fenced.notified:
            return None
        if abs(event.received_at.timestamp() - fenced.last) > self._window:
            return None
        return fenced

    def _decide(
        self,
        inflight: Inflight,
        incident: Incident,
        changed: bool,
        routes: list[Route],
        *,
        told_end: set[str] | None = None,
    ) -> _Plan:
        """Per route: claim the incident's notification, join it while it gathers, or be
        suppressed. An incident ``told_by`` another's report of the same end is not notified
        on ``told_end`` (receivers; ``None``: on any route it has not claimed)."""
        event = inflight.received.event
        at = event.received_at.timestamp()
        plan = _Plan(inflight, incident, self.state.put_local(incident))
        for route in routes:
            claimed_by = incident.routes.get(route.id)
            if claimed_by is None:
                if incident.acked:
                    plan.suppressed.append(("acknowledged", incident.id))
                    continue
                if incident.told_by is not None and (
                    told_end is None or route.receiver in told_end
                ):
                    # told by another incident's report of the same end: what the route was
                    # told is this state, so the next state change goes to it too
                    plan.suppressed.append(("incident", incident.told_by))
                    incident.notified[route.id] = at
                    incident.notified_state[route.id] = incident.state
                    changed = True
                    continue
                if within_repeat_interval(
                    route, incident.notified.get(route.id), at
                ) and same_state(
                    incident.state, incident.notified_state.get(route.id, incident.state)
                ):
                    plan.suppressed.append(("deduped", route.id))
                    continue
                incident.routes[route.id] = event.id
                incident.notified[route.id] = at
                incident.notified_state[route.id] = incident.state
                changed = True
                plan.notify.append(route)
            elif claimed_by == event.id:
                plan.notify.append(route)  # redelivered: enqueue again (same delivery id)
            elif (route.id, incident.id) in self._gathering:
                plan.gather.append(route)
            else:
                plan.suppressed.append(("incident", incident.id))
        plan.changed = changed
        return plan

    async def process_batch(self, batch: list[ReceivedEvent]) -> None:
        """Run one fetched batch through the stages and settle every event in it.

        Decide every event (mutating the in-memory incidents), store the incidents that
        changed, then enqueue or group what the stored decisions say; an event whose incident
        lost a write race is redelivered and decided again.
        """
        # before any matcher reads the events: routes, silences and inhibit rules on a node
        # match a lost knet peer's lines by its name
        named = await self.peers.name(received.event for received in batch)
        batch = await self._apply_acks(batch)
        entries: list[tuple[Inflight, list[_Plan]]] = []
        for received in batch:
            event = received.event
            self.processed += 1
            await self._observe_inhibition(event)
            reason, detail = self._drop_reason(event)
            routes: list[Route] = []
            if reason is None:
                routes = [r for r in match_routes(self.config.root, event) if r.receiver]
                if not routes:
                    reason = "unrouted"
            if reason in (self.floor.reason, "unrouted"):
                # the end of a notified problem goes to the routes that told it whatever
                # their matchers and the floor (a knet link up is a plain info line), and so
                # does a state change of a told fingerprint (the API's "back online")
                await self._load_failure(event)
                if self._ending(event) is not None or self._changes_told_state(event):
                    reason, detail = self._muted(event)
            if reason is not None:
                self._dropped.inc()
                await self.suppressions.record(event, reason, detail)
                await Enqueuer.ack_dropped(received)
                continue
            inflight = Inflight(received)
            await self._load_failure(event)
            entries.append((inflight, self._plans(inflight, routes)))

        written = await self.state.write(
            {k for _, plans in entries for p in plans if p.changed for k in (p.key, *p.also)}
        )
        work: list[tuple[Inflight, list[_Plan]]] = []
        routed = 0
        for inflight, plans in entries:
            event = inflight.received.event
            if any(k in written.failed for p in plans for k in (p.key, *p.also)):
                inflight.failed = True
                await self.enqueuer.release(inflight)
                continue
            for plan in plans:
                for reason, detail in plan.suppressed:
                    await self.suppressions.record(event, reason, detail)
            if any(p.notify or p.gather for p in plans):
                routed += 1
                work.append((inflight, plans))
            else:
                self._dropped.inc()
                await self.enqueuer.release(inflight)

        if routed:
            self._routed.inc(routed)
        enrichment = await self.enricher.enrich([i.received.event for i, _ in work])
        for inflight, _ in work if named else ():
            # the events go out as received: the peer's name is told as a gateway fact
            peer = inflight.received.event.metadata.get(PEER_NODE_KEY)
            if isinstance(peer, str):
                enrichment.setdefault(inflight.received.event.id, {})[PEER_NODE_KEY] = peer
        pending: list[Pending] = []
        created_at = now_iso()
        for inflight, plans in work:
            event = inflight.received.event
            for plan in plans:
                incident = plan.incident
                held = Held(inflight, enrichment.get(event.id), incident.id, plan.key)
                for route in plan.notify:
                    inflight.refs += 1
                    # a success that resolves a notified failure is told at once, not held
                    # in a digest of routine successes
                    if (route.groups_all and route.group_wait <= 0) or incident.resolves:
                        did = delivery_id(incident.id, route.id, route.receiver)
                        body = delivery_body(
                            did,
                            route.receiver,
                            route.id,
                            [held.raw],
                            {event.id: held.extra} if held.extra else None,
                            incidents=[incident.summary()],
                            created_at=created_at,
                        )
                        subject = self._subjects[route.receiver]
                        future = await self.enqueuer.publish(subject, body, did)
                        pending.append(PendingDelivery(future, [(event, held)], route))
                        continue
                    group, created = self.grouper.add(
                        route, event, held, incident.labels, incident.id
                    )
                    self._gathering.add((route.id, incident.id))
                    if not created:
                        await self.suppressions.record(event, "grouped", group.key)
                for route in plan.gather:
                    inflight.refs += 1
                    group, _ = self.grouper.add(route, event, held, incident.labels, incident.id)
                    await self.suppressions.record(event, "grouped", group.key)
        await self._settle(pending)
        for inflight, _ in work:
            await self.enqueuer.release(inflight)
        self._wake.set()

    async def _apply_acks(self, batch: list[ReceivedEvent]) -> list[ReceivedEvent]:
        """Store the batch's acknowledgements (``stages/ack``) on their incidents first, so
        the batch's other events are decided with them; the first acknowledgement of an
        incident is kept. An ack whose incident write lost a race (or failed) goes back
        (nak) and is applied again to the incident as re-read; the rest of the batch, the
        acks included, goes on through the stages as usual."""
        waiting: dict[str, list[ReceivedEvent]] = {}
        for received in batch:
            ack = ack_of(received.event)
            if ack is None:
                continue
            key = incident_key(ack.fingerprint)
            if key not in self.state.incidents:
                await self.state.reload(key)  # forgotten in memory, or another replica's
            incident = self.state.incidents.get(key)
            if incident is None:
                self._acks_log.record("no incident of that fingerprint", ack.fingerprint)
                continue
            if incident.acked is None:
                incident.acked = ack.record()
                self._acks_log.record(f"incident {incident.id[:12]}", ack.by)
            if key in waiting or incident.acked.get("event") == ack.event_id:
                waiting.setdefault(key, []).append(received)
        if not waiting:
            return batch
        written = await self.state.write(waiting)
        retry = {id(r) for key in written.failed for r in waiting[key]}
        if not retry:
            return batch
        for received in batch:
            if id(received) in retry:
                with contextlib.suppress(Exception):
                    await received.nak(delay=RETRY_ENQUEUE_DELAY)
        return [r for r in batch if id(r) not in retry]

    async def _settle(self, pending: list[Pending]) -> None:
        """Wait for the acks; a failed group notification is retried, a failed single one
        naks its event (redelivered, it claims the same notification again); every reference
        is released."""
        await self.enqueuer.settle(pending)
        for p in pending:
            if p.group is not None:
                if p.ok:
                    for _, held in p.items:
                        await self.enqueuer.release(held.inflight)
                else:
                    self.grouper.retry_later(p.group, p.items, RETRY_GROUP_DELAY)
                continue
            for _, held in p.items:
                if not p.ok:
                    held.inflight.failed = True
                await self.enqueuer.release(held.inflight)

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
                for held in list(self.grouper.held()):
                    with contextlib.suppress(Exception):
                        await held.inflight.received.in_progress()
                self.state.prune(time.time(), self._keep)

    async def flush(self, due: list[tuple[Group, list[tuple[Event, Held]]]]) -> None:
        """Enqueue one notification per due group (split at ``max_events_per_notification``);
        the incidents in it stop gathering."""
        pending: list[Pending] = []
        size = self.config.max_events_per_notification
        for group, gathered in due:
            route = group.route
            items = await self._still_wanted(route, gathered)
            for part in chunk(items, size, MAX_NOTIFICATION_BYTES, lambda h: len(h.raw)):
                ids = sorted(e.id for e, _ in part)
                did = delivery_id(group.key, route.receiver, *ids)
                enrichment = {e.id: h.extra for e, h in part if h.extra}
                incidents: dict[str, dict[str, Any]] = {}
                for event, held in part:
                    self._gathering.discard((route.id, held.incident))
                    if held.incident not in incidents:
                        # Re-read: another replica may have added sources while it gathered.
                        key = held.key or incident_key(event.fingerprint)
                        await self.state.reload(key)
                        incident = self.state.incidents.get(key)
                        if incident is not None and incident.id == held.incident:
                            incidents[held.incident] = incident.summary()
                body = delivery_body(
                    did,
                    route.receiver,
                    route.id,
                    # an event attached to several incidents of the group (a job's
                    # "finished successfully" to each guest's backup.ok) is listed once
                    list({e.id: h.raw for e, h in part}.values()),
                    enrichment,
                    group_key=group.key,
                    group_labels=group.labels,
                    incidents=list(incidents.values()),
                )
                future = await self.enqueuer.publish(self._subjects[route.receiver], body, did)
                pending.append(PendingDelivery(future, part, route, group))
        await self._settle(pending)

    async def _still_wanted(
        self, route: Route, items: list[tuple[Event, Held]]
    ) -> list[tuple[Event, Held]]:
        """The gathered events a silence created while they waited does not mute now (as
        Alertmanager checks silences when it notifies, not only when an alert arrives). A
        muted one is suppressed (reason ``silenced``) and let go: acked, not redelivered."""
        kept = []
        for event, held in items:
            silence = self.silences.muting(event)
            if silence is None:
                kept.append((event, held))
                continue
            self._gathering.discard((route.id, held.incident))
            await self.suppressions.record(event, "silenced", silence.id)
            await self.enqueuer.release(held.inflight)
        return kept

    async def drain(self) -> None:
        """At shutdown: notify what groups hold now rather than leave it for redelivery."""
        await self.flush(self.grouper.flush_all())
