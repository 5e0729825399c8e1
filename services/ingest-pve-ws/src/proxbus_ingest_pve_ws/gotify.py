"""Gotify ``/stream`` WebSocket listener: messages → events, resumed without gaps or duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from proxbus_events import Event
from proxbus_runtime import PublishError, RateLimitedLog

from .notification import NotificationError, gotify_event

log = logging.getLogger(__name__)

# Stores the cursor document: ``{"last_id": int | None, "outliers": [int, ...]}``.
SaveCursor = Callable[[dict[str, Any]], Awaitable[None]]
# Stores one event before the listener moves on (raises PublishError if it could not).
StoreEvent = Callable[[Event], Awaitable[object]]
PAGE_LIMIT = 100
MAX_BACKFILL_PAGES = 50
# A message list is read into memory: a page larger than this is an invalid page, not an OOM.
MAX_PAGE_BYTES = 16 * 1024 * 1024
MAX_UINT64 = 2**64 - 1  # Gotify's ids and ``paging.since`` are Go ``uint``
# Gotify's ids are an auto-increment counter that its own web UI reads as JavaScript numbers:
# a genuine server stays below 2**53 (at a million messages a second it would take 285 years).
# An id outside 1..MAX_PLAUSIBLE_ID is published like any message but never moves the cursor.
MAX_PLAUSIBLE_ID = 2**53 - 1
DEFAULT_MAX_ID_JUMP = 1_000_000
DEFAULT_RECENT_IDS = 10_000
# Published ids the cursor did not move to and that lie above it (implausible, or a jump not
# confirmed yet): every catch-up lists them as new, so the stored cursor remembers the newest
# of them; a server that sends more than this many is told apart by JetStream's dedup window.
MAX_OUTLIERS = 100


@dataclass(slots=True)
class GotifyStats:
    """Counters of one listener."""

    connects: int = 0
    disconnects: int = 0
    received: int = 0
    backfilled: int = 0
    duplicates_skipped: int = 0
    invalid: int = 0
    invalid_pages: int = 0
    implausible_ids: int = 0
    cursor_rewinds: int = 0
    connected: bool = False
    last_error: str = ""


class RecentIds:
    """The last ``size`` message ids handled: exact-id duplicate checks in bounded memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def add(self, msg_id: int) -> None:
        """Remember ``msg_id`` as the newest; forget the oldest beyond ``size``."""
        self._ids[msg_id] = None
        self._ids.move_to_end(msg_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


def plausible_id(msg_id: int) -> bool:
    """Whether ``msg_id`` can be a genuine Gotify message id (see ``MAX_PLAUSIBLE_ID``)."""
    return 1 <= msg_id <= MAX_PLAUSIBLE_ID


def stream_url(base: str) -> str:
    """``http(s)://host/prefix`` → ``ws(s)://host/prefix/stream``."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/stream", "", ""))


def server_label(base: str) -> str:
    """A short stable label for a Gotify server (no token), used in ids and cursor keys."""
    parts = urlsplit(base)
    return hashlib.sha256(f"{parts.netloc}{parts.path.rstrip('/')}".encode()).hexdigest()[:12]


class GotifyListener:
    """Follows one Gotify server with a client token and publishes each message once.

    After every (re)connect the REST API (``GET /message``, newest first, paged with
    ``since``) fills in what arrived while disconnected: the messages above the cursor
    (``last_id``, kept in KV), so a resume neither duplicates nor drops messages.

    A duplicate is an id among the last ``recent_ids`` handled, not any id at or below the
    cursor: one absurd id from a broken or hostile server (2**62, negative, past int64) must
    not make every later message look old. The cursor moves only by plausible steps: ids
    outside 1..2**53-1 never move it; a jump of more than ``max_id_jump`` moves it only once a
    second message confirms the new range; a new stream message below it (the server's ids
    restarted, or an older version stored a poisoned cursor) moves it back down. A handled id
    the cursor did not move to but that lies above it is stored beside the cursor
    (``outliers``, the newest ``MAX_OUTLIERS``), so a restart's catch-up does not publish it
    again.
    """

    def __init__(
        self,
        *,
        url: str,
        token: str,
        store: StoreEvent,
        site: str,
        last_id: int | None = None,
        save_cursor: SaveCursor | None = None,
        timeout: float = 10.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        max_id_jump: int = DEFAULT_MAX_ID_JUMP,
        recent_ids: int = DEFAULT_RECENT_IDS,
        outliers: Iterable[object] = (),
    ) -> None:
        self.base = url.rstrip("/")
        self._token = token
        self._store = store
        self._site = site
        self._server = server_label(url)
        self._max_id_jump = max_id_jump
        self._recent = RecentIds(recent_ids)
        self._outliers = RecentIds(MAX_OUTLIERS)
        for known in outliers:  # read from KV: anything but an int is ignored
            if isinstance(known, int) and not isinstance(known, bool):
                self._outliers.add(known)
                self._recent.add(known)
        self._pending_jump: int | None = None  # an implausible jump waiting for a second message
        self.stats = GotifyStats()
        self._id_log = RateLimitedLog(log, "gotify: implausible message ids")
        if last_id is not None and not 0 <= last_id <= MAX_PLAUSIBLE_ID:
            self.stats.implausible_ids += 1
            self._id_log.record("stored cursor ignored", str(last_id))
            last_id = None
        self.last_id = last_id
        self._save_cursor = save_cursor
        self._timeout = timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connected = asyncio.Event()
        self._retry_log = RateLimitedLog(log, "gotify: message retries")
        self._cursor_log = RateLimitedLog(log, "gotify: cursor not saved")
        # Any Gotify application can post: what cannot become an event is counted (``invalid``)
        # and summarised, not a line per message (issue 19).
        self._invalid_log = RateLimitedLog(log, "gotify: ignored messages")
        # A broken or hostile server's message list (``GET /message``) ends the catch-up, counted.
        self._page_log = RateLimitedLog(log, "gotify: invalid message lists")

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read and reconnect with backoff until ``stop`` is set."""
        backoff = self._backoff_initial
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                try:
                    got_any = await self._session(session, stop)
                    if got_any:
                        backoff = self._backoff_initial
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure ends in a reconnect, never a crash
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning(
                        "gotify: connection to %s failed: %s", self.base, self.stats.last_error
                    )
                finally:
                    if self.stats.connected:
                        self.stats.disconnects += 1
                    self.stats.connected = False
                    self.connected.clear()
                if stop.is_set():
                    break
                delay = backoff * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not crypto)
                log.info("gotify: reconnecting in %.1fs", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                backoff = min(backoff * 2, self._backoff_max)

    async def _session(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> bool:
        headers = {"X-Gotify-Key": self._token}
        if self.last_id is None:
            # Baseline before connecting: messages between it and the socket get backfilled.
            self.last_id = await self._newest_id(session)
        ws_timeout = aiohttp.ClientWSTimeout(ws_close=self._timeout)
        async with session.ws_connect(
            stream_url(self.base), headers=headers, heartbeat=30.0, timeout=ws_timeout
        ) as ws:
            self.stats.connects += 1
            self.stats.connected = True
            log.info("gotify: connected to %s", self.base)
            # Connected first, then backfill: whatever the REST snapshot misses is on the socket.
            progressed = await self._backfill(session, stop)
            self.connected.set()
            stopper = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    receiver = asyncio.ensure_future(ws.receive())
                    done, _ = await asyncio.wait(
                        {receiver, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if stopper in done:
                        receiver.cancel()
                        await ws.close()
                        return progressed
                    msg = receiver.result()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        progressed = await self._handle_text(msg.data, stop) or progressed
                    elif msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        log.warning("gotify: stream closed (%s)", ws.close_code)
                        return True
            finally:
                stopper.cancel()

    async def _handle_text(self, data: str, stop: asyncio.Event) -> bool:
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, a 5000-digit number, deep nesting
            self.stats.invalid += 1
            self._invalid_log.record("frame is not JSON")
            return False
        if not isinstance(msg, dict):
            self.stats.invalid += 1
            return False
        self.stats.received += 1
        return await self._deliver(msg, stop, from_stream=True)

    async def _newest_id(self, session: aiohttp.ClientSession) -> int | None:
        """The newest message id on the server (0 when empty, None when not readable)."""
        async with session.get(
            f"{self.base}/message",
            params={"limit": "1"},
            headers={"X-Gotify-Key": self._token},
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        ) as resp:
            if resp.status != 200:
                log.warning("gotify: cannot list messages (HTTP %d); no backfill", resp.status)
                return None
            page = await self._read_page(resp, None)
        if page is None:
            return None
        return _newest_plausible(page.messages)

    async def _backfill(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> bool:
        """Publish messages newer than ``last_id`` from the REST API, oldest first."""
        if self.last_id is None:
            return False  # the token cannot list messages: follow the stream only
        missed: list[dict[str, Any]] = []
        since: int | None = None
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        for _ in range(MAX_BACKFILL_PAGES):
            params = {"limit": str(PAGE_LIMIT)}
            if since is not None:
                params["since"] = str(since)
            async with session.get(
                f"{self.base}/message",
                params=params,
                headers={"X-Gotify-Key": self._token},
                timeout=timeout,
            ) as resp:
                if resp.status != 200:
                    log.warning(
                        "gotify: cannot list missed messages (HTTP %d); resuming from the stream",
                        resp.status,
                    )
                    return False
                page = await self._read_page(resp, since)
            if page is None:
                break  # counted and logged; deliver what the valid pages before it gave
            messages = page.messages
            if since is None and await self._rewind_if_ahead(_newest_plausible(messages)):
                break  # the server is behind the cursor: nothing above it to catch up on
            newer = [m for m in messages if _msg_id(m) > self.last_id]
            missed.extend(newer)
            if len(newer) < len(messages) or not messages or page.next_since is None:
                break
            since = page.next_since
        missed.sort(key=_msg_id)
        delivered = False
        for m in missed:
            if await self._deliver(m, stop, from_stream=False):
                self.stats.backfilled += 1
                delivered = True
        if missed:
            log.info("gotify: caught up on %d missed messages", len(missed))
        return delivered

    async def _deliver(
        self, msg: dict[str, Any], stop: asyncio.Event, *, from_stream: bool
    ) -> bool:
        """Publish one message unless already published; waits out a broker outage."""
        msg_id = _msg_id(msg)
        if msg_id in self._recent:
            self.stats.duplicates_skipped += 1
            return False
        try:
            event = gotify_event(msg, site=self._site, server=self._server)
        except NotificationError as exc:
            self.stats.invalid += 1
            self._invalid_log.record("not a usable message", str(msg_id), str(exc))
            if isinstance(msg.get("id"), int):  # a message without an id has nothing to track
                # An unusable message is no evidence that the server's ids restarted: no rewind.
                await self._handled(msg_id, self._advance(msg_id, from_stream=False))
            return False
        delay = 0.2
        while True:
            try:
                # In JetStream, or on disk in the spool while NATS is unreachable.
                await self._store(event)
                break
            except PublishError as exc:
                if stop.is_set():
                    raise
                self._retry_log.record("not stored yet", str(msg_id), str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self._handled(msg_id, self._advance(msg_id, from_stream=from_stream))
        return True

    async def _handled(self, msg_id: int, advanced: bool) -> None:
        """Remember a handled id; store the cursor when it moved, or when the id stays above it
        (the next catch-up would list it as new again)."""
        self._recent.add(msg_id)
        if not advanced:
            if self.last_id is not None and msg_id <= self.last_id:
                return  # no catch-up lists it again
            self._outliers.add(msg_id)
        await self._save()

    def _advance(self, msg_id: int, *, from_stream: bool) -> bool:
        """Move the cursor to a handled message's id where that is plausible; True if moved."""
        cursor = self.last_id
        if not plausible_id(msg_id):
            self._implausible(msg_id, "outside Gotify's id range")
            return False
        if cursor is None or cursor < msg_id <= cursor + self._max_id_jump:
            self.last_id = msg_id
            self._pending_jump = None
            return True
        if msg_id > cursor:
            pending = self._pending_jump
            if pending is not None and pending < msg_id <= pending + self._max_id_jump:
                log.info("gotify: message ids moved from %d to %d (confirmed)", cursor, msg_id)
                self.last_id = msg_id
                self._pending_jump = None
                return True
            self._pending_jump = msg_id
            self._implausible(msg_id, f"a jump of more than {self._max_id_jump} ids")
            return False
        if from_stream and msg_id < cursor:
            # Gotify's stream only carries new messages: one below the cursor means the cursor
            # is ahead of the server (its ids restarted, or a bad id was stored before).
            self._rewind(msg_id)
            return True
        return False

    def _implausible(self, msg_id: int, why: str) -> None:
        self.stats.implausible_ids += 1
        self._id_log.record("published, cursor not moved", str(msg_id), why)

    def _rewind(self, msg_id: int) -> None:
        self.stats.cursor_rewinds += 1
        self._id_log.record("cursor ahead of the server, moved back", str(msg_id))
        self.last_id = msg_id
        self._pending_jump = None

    async def _rewind_if_ahead(self, newest: int) -> bool:
        """Move the cursor back to the server's newest plausible id when it is beyond it."""
        if self.last_id is None or newest >= self.last_id:
            return False
        self._rewind(newest)
        await self._save()
        return True

    def cursor_document(self) -> dict[str, Any]:
        """What is stored in KV: the cursor and the outliers above it."""
        last = self.last_id
        above = [i for i in self._outliers if last is None or i > last]
        return {"last_id": last, "outliers": above}

    async def _save(self) -> None:
        if self._save_cursor is not None:
            doc = self.cursor_document()
            try:
                await self._save_cursor(doc)
            except Exception as exc:  # the id is deterministic; a lost cursor only re-sends
                self._cursor_log.record("could not save the cursor", str(doc["last_id"]), str(exc))

    async def _read_page(self, resp: aiohttp.ClientResponse, since: int | None) -> Page | None:
        """A checked REST page, or None when it is invalid (counted in ``invalid_pages``, one
        rate-limited line): the listener then follows the stream instead of failing every
        reconnect on a page it cannot use."""
        try:
            # read to the end (one read() returns what has arrived so far), up to the limit
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_PAGE_BYTES:
                    raise InvalidPage(f"larger than {MAX_PAGE_BYTES} bytes")
                chunks.append(chunk)
            try:
                doc = json.loads(b"".join(chunks))
            except (ValueError, RecursionError) as exc:  # not JSON, too deep, bad UTF-8
                raise InvalidPage(f"not JSON ({type(exc).__name__})") from None
            return parse_page(doc, since)
        except InvalidPage as exc:
            self.stats.invalid_pages += 1
            self._page_log.record("page not usable, following the stream", self.base, str(exc))
            return None


class InvalidPage(ValueError):
    """A ``GET /message`` answer that does not have Gotify's shape."""


@dataclass(frozen=True, slots=True)
class Page:
    """One checked page of ``GET /message`` (newest first)."""

    messages: list[dict[str, Any]]
    next_since: int | None  # the ``since`` of the next page; None when this is the last


def _uint(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidPage(f"{what} is {type(value).__name__}, not an integer")
    if not 0 <= value <= MAX_UINT64:
        raise InvalidPage(f"{what} out of range")
    return value


def parse_page(doc: object, since: int | None = None) -> Page:
    """Check a decoded ``GET /message`` answer against Gotify's ``PagedMessages``.

    Gotify (``api/message.go`` ``buildWithPaging``) always sends ``messages`` (a list) and
    ``paging`` with ``size == len(messages)`` and ``since`` (uint; the id of the page's last
    message when ``next`` is set, else 0). ``since`` is the one the page was asked with: the
    next page must ask for older messages, or a server could keep the catch-up in a loop.
    Message entries that are not objects are skipped here (they cannot be events).
    Raises InvalidPage naming what is wrong.
    """
    if not isinstance(doc, dict):
        raise InvalidPage(f"answer is {type(doc).__name__}, not an object")
    messages = doc.get("messages")
    if not isinstance(messages, list):
        raise InvalidPage(f"messages is {type(messages).__name__}, not a list")
    paging = doc.get("paging")
    if not isinstance(paging, dict):
        raise InvalidPage(f"paging is {type(paging).__name__}, not an object")
    size = _uint(paging.get("size"), "paging.size")
    if size != len(messages):
        raise InvalidPage(f"paging.size {size} but {len(messages)} messages")
    page_since = _uint(paging.get("since"), "paging.since")
    nxt = paging.get("next", "")
    if not isinstance(nxt, str):
        raise InvalidPage(f"paging.next is {type(nxt).__name__}, not a string")
    next_since: int | None = None
    if nxt:
        if page_since == 0 or (since is not None and page_since >= since):
            raise InvalidPage(f"paging.since {page_since} does not move to older messages")
        next_since = page_since
    return Page([m for m in messages if isinstance(m, dict)], next_since)


def _newest_plausible(messages: list[dict[str, Any]]) -> int:
    """The highest plausible id among ``messages`` (0 when there is none)."""
    return max((i for i in map(_msg_id, messages) if plausible_id(i)), default=0)


def _msg_id(msg: dict[str, Any]) -> int:
    value = msg.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


class GotifyCollector(Collector):
    """Exposes a listener's counters as ``proxbus_gotify_*`` metrics."""

    def __init__(self, listener: GotifyListener) -> None:
        self._listener = listener

    def collect(self) -> Iterator[Metric]:
        stats = self._listener.stats
        for name, value, doc in (
            ("connects", stats.connects, "WebSocket connections opened"),
            ("disconnects", stats.disconnects, "WebSocket connections lost"),
            ("received", stats.received, "messages received on the stream"),
            ("backfilled", stats.backfilled, "missed messages published from the REST API"),
            ("duplicates_skipped", stats.duplicates_skipped, "messages already published"),
            ("invalid", stats.invalid, "frames or messages that could not be used"),
            ("invalid_pages", stats.invalid_pages, "message lists (REST) that could not be used"),
            (
                "implausible_ids",
                stats.implausible_ids,
                "message ids not taken as the cursor (out of range or too big a jump)",
            ),
            ("cursor_rewinds", stats.cursor_rewinds, "cursor moved back to the server's ids"),
        ):
            c = CounterMetricFamily(f"proxbus_gotify_{name}", doc)
            c.add_metric([], value)
            yield c
        g = GaugeMetricFamily("proxbus_gotify_connected", "1 while the stream is connected")
        g.add_metric([], 1 if stats.connected else 0)
        yield g
