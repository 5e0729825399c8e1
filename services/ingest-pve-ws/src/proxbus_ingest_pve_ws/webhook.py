"""``POST /hooks/pve``: PVE 8.3+ webhook notification target → event, answered after the ack."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from proxbus_events import Event
from proxbus_runtime import PublishError, RateLimitedLog

from .notification import NotificationError, parse_webhook_body, webhook_event

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/hooks/pve"
# Stores one event before the webhook answers: "stored", "duplicate" or "spooled"
# (raises PublishError when neither JetStream nor the spool took it).
StoreEvent = Callable[[Event, float], Awaitable[str]]
# Default of PVE_WEBHOOK_MAX_DEPTH: PVE's documented body nests 2 deep; json.loads recurses
# per level.
MAX_JSON_DEPTH = 32

# One linear pass over the characters that matter: an escape pair (so \" does not end a
# string), a quote, a bracket. A regex for whole strings would rescan to the end of the body
# from every quote of an unterminated string (quadratic on hostile input).
_JSON_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)


def json_nesting_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep the arrays/objects of a JSON text nest (at most ``limit + 1``; ``limit`` when
    the body has too few brackets to go deeper).

    Brackets inside strings are skipped. Checked before ``json.loads``, which recurses once
    per level and raises RecursionError (not a clean error) around 1,000 levels.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return limit  # cannot nest deeper: skip the scan (the usual PVE body)
    depth = deepest = 0
    in_string = False
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


@dataclass(slots=True)
class WebhookMetrics:
    """Counters of the webhook endpoint, labelled by outcome."""

    requests: Counter
    budget: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WebhookMetrics:
        return cls(
            Counter(
                "proxbus_pve_webhook_requests",
                "webhook requests by outcome",
                ["outcome"],
                registry=registry,
            ),
            Gauge(
                "proxbus_pve_webhook_budget",
                "configured webhook budgets (max_bytes, max_depth)",
                ["budget"],
                registry=registry,
            ),
        )


class TooLarge(Exception):
    """Raised when a request body exceeds the configured limit."""


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)


class PveWebhook:
    """Checks the shared secret, parses the body and publishes it before answering 2xx."""

    def __init__(
        self,
        store: StoreEvent,
        *,
        secret: str,
        site: str,
        max_bytes: int,
        max_depth: int = MAX_JSON_DEPTH,
        metrics: WebhookMetrics,
        ack_timeout: float = 5.0,
    ) -> None:
        if not secret:
            raise ValueError("the webhook needs a non-empty shared secret")
        self._store = store
        self._expected = f"Bearer {secret}".encode()
        self._site = site
        self._max_bytes = max_bytes
        self._max_depth = max_depth
        metrics.budget.labels("max_bytes").set(max_bytes)
        metrics.budget.labels("max_depth").set(max_depth)
        self._metrics = metrics
        self._ack_timeout = ack_timeout
        # What any client can trigger is logged once, then summarised per interval.
        self._refused_log = RateLimitedLog(log, "webhook: refused requests")
        self._invalid_log = RateLimitedLog(log, "webhook: rejected bodies", level=logging.INFO)
        self._unavailable_log = RateLimitedLog(log, "webhook: events not stored (answered 503)")

    def install(self, app: web.Application) -> None:
        """Add the route to ``app`` (before the app starts)."""
        app.router.add_post(WEBHOOK_PATH, self.handle)

    def _reply(self, outcome: str, status: int, message: str) -> web.Response:
        self._metrics.requests.labels(outcome).inc()
        return web.json_response({"status": outcome, "message": message}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        supplied = request.headers.get("Authorization", "").strip().encode()
        if not hmac.compare_digest(supplied, self._expected):
            self._refused_log.record("bad or missing secret", str(request.remote))
            return self._reply("unauthorized", 401, "missing or wrong Authorization bearer secret")
        try:
            body = await _read_limited(request, self._max_bytes)
        except TooLarge:
            self._invalid_log.record("too_large", str(request.remote))
            return self._reply("too_large", 413, f"body exceeds {self._max_bytes} bytes")
        if json_nesting_depth(body, self._max_depth) > self._max_depth:
            self._invalid_log.record("too_deep", str(request.remote))
            return self._reply("too_deep", 400, f"JSON nested deeper than {self._max_depth} levels")
        try:
            data = parse_webhook_body(body, request.headers.get("Content-Type", ""))
            event = webhook_event(data, site=self._site)
        except (NotificationError, RecursionError) as exc:
            self._invalid_log.record("invalid", str(request.remote), str(exc)[:200])
            return self._reply("invalid", 400, str(exc) or "JSON nested too deep")
        try:
            # JetStream's ack, or (NATS unreachable) the event fsynced in the disk spool.
            outcome = await self._store(event, self._ack_timeout)
        except PublishError as exc:
            self._unavailable_log.record("bus unavailable", str(request.remote), str(exc))
            return self._reply("unavailable", 503, "event bus unavailable, retry later")
        log.info("webhook: %s %s from %s %s", event.kind, event.id, event.node or "?", outcome)
        status = {"stored": "accepted"}.get(outcome, outcome)  # accepted, duplicate, spooled
        self._metrics.requests.labels(status).inc()
        return web.json_response({"status": status, "id": event.id}, status=202)
