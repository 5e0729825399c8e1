"""The live event feed: the last events on the bus in memory, fanned out to SSE clients.

From the first page that needs events until 10 minutes after the last one, the feed follows
``PROXBUS_EVENTS`` in the dispatcher's JetStream domain (``NATS_JS_DOMAIN``) from "now"
(``proxbus_runtime.follow.StreamFollower``: an ephemeral push consumer, re-created from the next
sequence after a reconnect or a gap). At a multi-site hub that is where the sites' events are:
they reach the hub by stream sourcing, never as publishes (the leaf links deny
``proxbus.events.>``). Where the stream cannot be followed (no stream, no JetStream, no answer)
the feed subscribes ``proxbus.events.>`` instead, what every ingest publishes locally.
New events go into a ring of recent events (the live page's first screen and the silence
preview); on starting, the ring is back-filled from the stream up to the sequence the follower
started after, so no event is in it twice. Each browser tab gets a bounded queue: a tab
that does not keep up loses events (counted), it never grows the dispatcher's memory.

Bounded in bytes too, since anyone on the bus can publish events up to NATS's max_payload: the
ring keeps at most ``max_bytes`` (``CONSOLE_RECENT_BYTES``), each tab's queue ``CLIENT_BYTES``,
and an event over ``MAX_EVENT_BYTES`` is not kept by the console at all (counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from proxbus_events import EVENTS_STREAM, Event, Matcher, Severity
from proxbus_runtime.follow import StreamFollower
from pydantic import ValidationError

from ..stages.routing import SERVICE_NODE_KEY, route_matches, stand_in_node, stand_in_nodes

log = logging.getLogger(__name__)

CLIENT_QUEUE = 256
CLIENT_BYTES = 1024 * 1024  # what one live page has not taken yet, at most
MAX_EVENT_BYTES = 256 * 1024  # a normal event is far smaller (message ≤ 64 KiB)
RECENT_BYTES = 16 * 1024 * 1024
BACKFILL_TIMEOUT = 5.0
BACKFILL_BATCH = 64
BACKFILL_SCAN = 4096  # messages read past the rings' free places (detail lines skipped)
FIRST_PAGE_WAIT = 2.0
FOLLOW_TIMEOUT = 5.0  # for the consumer that follows the stream; then the plain subscription
EVENTS_SUBJECT = "proxbus.events.>"
# With no page asking for events this long, the feed unsubscribes: an unused console costs the
# dispatcher's intake nothing (each event would otherwise reach this process twice).
IDLE_AFTER = 600.0
# Detail lines (``metadata.detail_of``) have a ring of their own, a quarter of the size: an OOM
# report is up to 2,000 of them before its kill, and in one ring they pushed out every event
# before it. Recognised in the raw JSON (a title or message holding the text has its quotes
# escaped, so only a key reads ``"detail_of"``).
DETAIL_KEY = b'"detail_of"'
DETAIL_SHARE = 4


class _Ring:
    """Raw events with their arrival numbers (to merge two rings in order), bounded."""

    def __init__(self, size: int) -> None:
        self.raw: deque[bytes] = deque(maxlen=size)
        self.seq: deque[int] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self.raw)

    def room(self) -> int:
        return (self.raw.maxlen or 0) - len(self.raw)

    def append(self, n: int, raw: bytes) -> int:
        """Add one; the bytes of the one it pushed out (0 for none)."""
        evicted = len(self.raw[0]) if self.room() == 0 else 0
        self.raw.append(raw)
        self.seq.append(n)
        return evicted

    def popleft(self) -> int:
        self.seq.popleft()
        return len(self.raw.popleft())

    def extendleft(self, items: list[tuple[int, bytes]]) -> None:
        """Older events, newest first, put before the others."""
        for n, raw in items:
            self.seq.appendleft(n)
            self.raw.appendleft(raw)

    def clear(self) -> None:
        self.raw.clear()
        self.seq.clear()

    def newest(self) -> Iterator[tuple[int, bytes]]:
        return zip(reversed(self.seq), reversed(self.raw), strict=True)


def service_node(event: Event) -> str:
    """The node of the HA service an event about no node is about (``metadata.service_node``,
    as a route's ``node`` matcher reads it: ``stages.routing.route_matches``), else ``""``."""
    if event.node is not None:
        return ""
    node = event.metadata.get(SERVICE_NODE_KEY)
    return node if isinstance(node, str) else ""


def reported_by(event: Event) -> str:
    """The node that logged an event about no node that is not an HA service's (a lost knet
    peer's ``link.down``: ``metadata.reporter``), else ``""``."""
    return "" if service_node(event) else stand_in_node(event) or ""


@dataclass(slots=True, frozen=True)
class EventFilter:
    """The live page's filters; empty fields match everything.

    ``node`` also matches an event about no node by the node a route's ``node`` matcher reads
    for it (``stand_in_nodes``): an HA service's on that node (``service_node``), a lost knet
    peer's as that node reported it (``reporter``).

    ``severity`` is a floor (``warning`` shows warning and above), ``kind`` a glob (``vm.*``).
    Detail lines (``metadata.detail_of``: an OOM report's stack dump and task list, up to
    2,000 lines before the kill they explain) are left out unless ``details``.
    """

    site: str = ""
    node: str = ""
    severity: str = ""
    kind: str = ""
    source: str = ""
    details: bool = False

    @classmethod
    def from_query(cls, query: dict[str, str]) -> EventFilter:
        def get(name: str) -> str:
            return query.get(name, "").strip()[:128]

        severity = get("severity")
        if severity not in {s.value for s in Severity}:
            severity = ""
        details = get("details").lower() in {"1", "on", "true", "yes"}
        return cls(get("site"), get("node"), severity, get("kind"), get("source"), details)

    def matches(self, event: Event) -> bool:
        return self.matches_but_details(event) and (self.details or not is_detail(event))

    def matches_but_details(self, event: Event) -> bool:
        if self.site and event.site != self.site:
            return False
        if self.node and self.node not in ((event.node,) if event.node else stand_in_nodes(event)):
            return False
        if self.source and event.source.value != self.source:
            return False
        if self.severity and event.severity.rank < Severity(self.severity).rank:
            return False
        return not self.kind or fnmatch.fnmatchcase(event.kind, self.kind)

    def query(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("site", self.site),
                ("node", self.node),
                ("severity", self.severity),
                ("kind", self.kind),
                ("source", self.source),
                ("details", "1" if self.details else ""),
            )
            if v
        }


def is_detail(event: Event) -> bool:
    """Whether ``event`` is a detail line of another event (``metadata.detail_of``)."""
    return bool(event.metadata.get("detail_of"))


@dataclass(slots=True, eq=False)
class FeedClient:
    """One SSE connection: its filter and its queue, bounded in events and bytes."""

    filter: EventFilter
    queue: asyncio.Queue[tuple[Event, int]] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE)
    )
    queued_bytes: int = 0
    dropped: int = 0

    def offer(self, event: Event, size: int) -> bool:
        """Queue ``event`` (``size`` bytes of JSON) unless the queue is full; ``False`` then."""
        if self.queue.full() or self.queued_bytes + size > CLIENT_BYTES:
            self.dropped += 1
            return False
        self.queue.put_nowait((event, size))
        self.queued_bytes += size
        return True

    async def get(self) -> Event:
        event, size = await self.queue.get()
        self.queued_bytes -= size
        return event

    def get_nowait(self) -> Event:
        event, size = self.queue.get_nowait()
        self.queued_bytes -= size
        return event


class EventFeed:
    """Recent events (ring of ``size``) and the SSE clients listening for new ones.

    The ring keeps the raw JSON: an event is decoded only when a live page is open or a page
    asks for the recent ones, so the dispatcher's intake does not pay for an idle console.
    """

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        *,
        size: int = 500,
        max_bytes: int = RECENT_BYTES,
        idle: float = IDLE_AFTER,
        name_peer: Callable[[Event], object] | None = None,
    ) -> None:
        self._nc = nc
        # Names a lost knet peer from the intake's cache (``PeerNames.name_known``): the bus's
        # events carry only its node id; the dispatcher's routes and silences read the name.
        self._name_peer = name_peer
        self._js = js
        self._idle = idle
        self._main = _Ring(size)
        self._details = _Ring(max(1, size // DETAIL_SHARE))
        self._arrivals = 0  # live events get 1, 2, ...; back-filled ones -1, -2, ... (older)
        self.recent_bytes = 0
        self.max_bytes = max_bytes
        self.oversize = 0  # events over MAX_EVENT_BYTES, not kept
        self.clients: set[FeedClient] = set()
        self.invalid = 0
        self.dropped = 0  # events a client's full queue did not take, all clients together
        self.last_used = 0.0
        self._sub: Subscription | None = None  # the fallback: plain publishes
        self._follower: StreamFollower | None = None
        self.reading = ""  # what the feed reads, for the status page and the logs
        self._backfill: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def recent(self) -> deque[bytes]:
        """The recent events but detail lines (raw JSON, oldest first)."""
        return self._main.raw

    @property
    def details(self) -> deque[bytes]:
        """The recent detail lines (raw JSON, oldest first)."""
        return self._details.raw

    @property
    def count(self) -> int:
        return len(self._main) + len(self._details)

    @property
    def subscribed(self) -> bool:
        return self._sub is not None or self._follower is not None

    async def start(self) -> None:
        """Nothing is subscribed until a page needs events (``ensure_running``)."""
        self._reaper = asyncio.create_task(self._reap_when_idle(), name="console-feed-idle")

    async def ensure_running(self) -> None:
        """Subscribe (and back-fill from the stream) if needed; wait briefly for the back-fill
        so the first page after an idle spell is not empty."""
        self.last_used = time.monotonic()
        async with self._lock:
            if not self.subscribed:
                upto = await self._follow()
                self._backfill = asyncio.create_task(
                    self._fill_from_stream(upto), name="console-backfill"
                )
        if self._backfill is not None and not self._backfill.done():
            await asyncio.wait({self._backfill}, timeout=FIRST_PAGE_WAIT)

    async def _follow(self) -> int | None:
        """Follow the stream from now (or subscribe the publishes where it cannot be followed);
        the last stream sequence the back-fill may take (``None``: the stream's last)."""
        follower = StreamFollower(self._js, EVENTS_STREAM, EVENTS_SUBJECT, self._on_msg)
        why = await follower.try_start(FOLLOW_TIMEOUT)
        if why is not None:
            log.warning(
                "console: cannot follow %s (%s); the live page shows this server's publishes only",
                EVENTS_STREAM,
                why,
            )
            self.reading = f"{EVENTS_SUBJECT} publishes ({why})"
            self._sub = await self._nc.subscribe(EVENTS_SUBJECT, cb=self._on_msg)
            return None
        self._follower = follower
        self.reading = f"{EVENTS_STREAM} from sequence {follower.start_sseq + 1}"
        return follower.start_sseq

    async def _reap_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self._idle))
            idle = time.monotonic() - self.last_used > self._idle
            if self.subscribed and not self.clients and idle:
                await self._unsubscribe()
                self._main.clear()
                self._details.clear()
                self.recent_bytes = 0

    async def _unsubscribe(self) -> None:
        if self._backfill is not None:
            self._backfill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._backfill
            self._backfill = None
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        self.reading = ""

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        self.add(msg.data)

    def add(self, raw: bytes) -> None:
        if len(raw) > MAX_EVENT_BYTES:
            self.oversize += 1
            return
        ring = self._details if DETAIL_KEY in raw else self._main
        self._arrivals += 1
        self.recent_bytes += len(raw) - ring.append(self._arrivals, raw)
        while self.recent_bytes > self.max_bytes and self.count > 1:
            # The older of the two rings' oldest goes.
            rings = [r for r in (self._main, self._details) if len(r)]
            self.recent_bytes -= min(rings, key=lambda r: r.seq[0]).popleft()
        if not self.clients:
            return
        event = self._decode(raw)
        if event is None:
            return
        for client in self.clients:
            if client.filter.matches(event) and not client.offer(event, len(raw)):
                self.dropped += 1

    def _decode(self, raw: bytes, *, count: bool = True, name: bool = True) -> Event | None:
        """The event, its lost peer named as the dispatcher names it (unless not ``name``)."""
        try:
            event = Event.model_validate_json(raw)
        except (ValidationError, ValueError):
            self.invalid += count
            return None
        if name and self._name_peer is not None:
            self._name_peer(event)
        return event

    async def _fill_from_stream(self, upto: int | None = None) -> None:
        """Put the stream's last events (older than anything live) in front of the ring: those
        up to sequence ``upto`` (the follower hands out the later ones), else up to the last."""
        try:
            info = await self._js.stream_info(EVENTS_STREAM)
        except Exception as exc:
            log.warning("console: cannot read %s for the recent events: %s", EVENTS_STREAM, exc)
            return
        last, first = info.state.last_seq, info.state.first_seq
        if upto is not None:
            last = min(last, upto)
        # Fetched until both rings' free places are filled: past a report's detail lines when
        # the details' ring is full, up to BACKFILL_SCAN messages more than there are places.
        wanted = [self._main.room(), self._details.room()]
        limit = sum(wanted) + BACKFILL_SCAN
        older: list[bytes] = []
        seq = last
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BACKFILL_TIMEOUT
        # Requests in parallel batches: 500 one after the other took ~0.3 s on a busy machine,
        # most of it round trips, and the first page after an idle spell waits for this.
        while (
            seq >= max(first, 1)
            and any(w > 0 for w in wanted)
            and len(older) < limit
            and loop.time() < deadline
        ):
            seqs = list(range(seq, max(seq - BACKFILL_BATCH, first - 1, 0), -1))
            seq = seqs[-1] - 1
            results = await asyncio.gather(
                *(self._js.get_msg(EVENTS_STREAM, n) for n in seqs), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            for r in results:
                if not isinstance(r, BaseException) and r.data:
                    older.append(r.data)
                    wanted[1 if DETAIL_KEY in r.data else 0] -= 1
            trouble = [r for r in failed if not isinstance(r, NotFoundError)]
            if trouble:
                log.warning("console: back-fill stopped near seq %d: %s", seq, trouble[0])
                break
        # Live events that arrived meanwhile keep their places (extendleft past maxlen would
        # drop the newest from the right end); the byte budget holds too.
        rings = (self._main, self._details)
        kept: tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]] = ([], [])
        rooms = [max(0, r.room()) for r in rings]
        oldest = min((r.seq[0] for r in rings if len(r)), default=1)
        for n, raw in enumerate(older, start=1):
            which = 1 if DETAIL_KEY in raw else 0
            if not rooms[0] and not rooms[1]:
                break
            if self.recent_bytes + len(raw) > self.max_bytes:
                break
            if len(raw) > MAX_EVENT_BYTES or not rooms[which]:
                continue
            kept[which].append((min(oldest, 1) - n, raw))
            rooms[which] -= 1
            self.recent_bytes += len(raw)
        for ring, items in zip(rings, kept, strict=True):
            ring.extendleft(items)  # newest first into the left end: oldest ends leftmost

    def connect(self, event_filter: EventFilter) -> FeedClient:
        client = FeedClient(event_filter)
        self.clients.add(client)
        return client

    def disconnect(self, client: FeedClient) -> None:
        self.clients.discard(client)

    def _newest_events(self) -> Iterator[Event]:
        """Recent events, newest first, each once (the back-fill may overlap live ones)."""
        seen: set[str] = set()
        merged = heapq.merge(self._main.newest(), self._details.newest(), key=lambda e: -e[0])
        for _, raw in merged:
            event = self._decode(raw, count=False)
            if event is not None and event.id not in seen:
                seen.add(event.id)
                yield event

    def find(self, event_id: str) -> Event | None:
        """A recent event by id (the raw JSON is searched before anything is decoded)."""
        needle = event_id.encode()
        for _, raw in (*self._main.newest(), *self._details.newest()):
            if needle in raw:
                event = self._decode(raw, count=False, name=False)  # as the bus carried it
                if event is not None and event.id == event_id:
                    return event
        return None

    def newest(self, event_filter: EventFilter, limit: int = 100) -> list[Event]:
        """The newest matching events, newest first."""
        return self.newest_and_hidden(event_filter, limit)[0]

    def newest_and_hidden(
        self, event_filter: EventFilter, limit: int = 100
    ) -> tuple[list[Event], int]:
        """The newest matching events, newest first, and how many detail lines the filter
        left out among them (from the newest to the last one shown)."""
        out: list[Event] = []
        hidden = 0
        for event in self._newest_events():
            if event_filter.matches(event):
                out.append(event)
                if len(out) >= limit:
                    break
            elif event_filter.matches_but_details(event):
                hidden += 1
        return out, hidden

    def matching(self, matchers: list[Matcher]) -> Iterator[Event]:
        """Recent events a silence with ``matchers`` would mute, newest first (read as the
        dispatcher's silences read them: ``stages.routing.route_matches``)."""
        for event in self._newest_events():
            if route_matches(matchers, event):
                yield event
