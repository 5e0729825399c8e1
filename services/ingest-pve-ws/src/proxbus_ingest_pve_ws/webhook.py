"""``POST /hooks/pve``: PVE 8.3+ webhook notification target → event, answered after the ack."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from proxbus_events import EventPublisher, PublishError

from .notification import NotificationError, parse_webhook_body, webhook_event

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/hooks/pve"


@dataclass(slots=True)
class WebhookMetrics:
    """Counters of the webhook endpoint, labelled by outcome."""

    requests: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WebhookMetrics:
        return cls(
            Counter(
                "proxbus_pve_webhook_requests",
                "webhook requests by outcome",
                ["outcome"],
                registry=registry,
            )
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
        publisher: EventPublisher,
        *,
        secret: str,
        site: str,
        max_bytes: int,
        metrics: WebhookMetrics,
        ack_timeout: float = 5.0,
    ) -> None:
        if not secret:
            raise ValueError("the webhook needs a non-empty shared secret")
        self._publisher = publisher
        self._expected = f"Bearer {secret}".encode()
        self._site = site
        self._max_bytes = max_bytes
        self._metrics = metrics
        self._ack_timeout = ack_timeout

    def install(self, app: web.Application) -> None:
        """Add the route to ``app`` (before the app starts)."""
        app.router.add_post(WEBHOOK_PATH, self.handle)

    def _reply(self, outcome: str, status: int, message: str) -> web.Response:
        self._metrics.requests.labels(outcome).inc()
        return web.json_response({"status": outcome, "message": message}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        supplied = request.headers.get("Authorization", "").strip().encode()
        if not hmac.compare_digest(supplied, self._expected):
            log.warning("webhook: rejected request from %s (bad or missing secret)", request.remote)
            return self._reply("unauthorized", 401, "missing or wrong Authorization bearer secret")
        try:
            body = await _read_limited(request, self._max_bytes)
        except TooLarge:
            return self._reply("too_large", 413, f"body exceeds {self._max_bytes} bytes")
        try:
            data = parse_webhook_body(body, request.headers.get("Content-Type", ""))
            event = webhook_event(data, site=self._site)
        except NotificationError as exc:
            log.info("webhook: rejected body from %s: %s", request.remote, exc)
            return self._reply("invalid", 400, str(exc))
        try:
            ack = await self._publisher.publish(event, timeout=self._ack_timeout)
        except PublishError as exc:
            log.warning("webhook: event not stored (%s); answering 503 so PVE retries", exc)
            return self._reply("unavailable", 503, "event bus unavailable, retry later")
        log.info("webhook: %s %s from %s stored", event.kind, event.id, event.node or "?")
        outcome = "duplicate" if ack.duplicate else "accepted"
        self._metrics.requests.labels(outcome).inc()
        return web.json_response({"status": outcome, "id": event.id}, status=202)
