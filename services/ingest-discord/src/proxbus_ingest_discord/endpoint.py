"""``POST /discord/interactions``: size cap, signature, parse, answer; every refusal counted."""

from __future__ import annotations

import logging

from aiohttp import web
from proxbus_runtime import RateLimitedLog

from .errors import InteractionError, SignatureError
from .interaction import PING, parse_interaction
from .metrics import DiscordMetrics
from .responder import Responder
from .signature import SignatureVerifier

log = logging.getLogger(__name__)
PONG = 1  # Discord "Interaction Callback Type" 1

INTERACTIONS_PATH = "/discord/interactions"


class BodyTooLarge(Exception):
    """Raised when a request body exceeds the configured cap."""


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without buffering them."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class InteractionsEndpoint:
    """The aiohttp handler; the responder does the work once a request is Discord's."""

    def __init__(
        self,
        verifier: SignatureVerifier,
        responder: Responder | None,
        metrics: DiscordMetrics,
        *,
        max_body: int,
    ) -> None:
        self._verifier = verifier
        self.responder = responder  # None until NATS is up and after shutdown began
        self._metrics = metrics
        self._max_body = max_body
        self._refused = RateLimitedLog(log, "refused Discord interaction requests")

    def install(self, app: web.Application) -> None:
        """Add the route to ``app`` (before it starts)."""
        app.router.add_post(INTERACTIONS_PATH, self.handle)

    def _refuse(self, outcome: str, status: int, text: str) -> web.Response:
        self._metrics.requests.labels(outcome).inc()
        return web.json_response({"error": text, "outcome": outcome}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await read_limited(request, self._max_body)
        except BodyTooLarge:
            self._refused.record("too_large", request.remote or "")
            return self._refuse("too_large", 413, f"body exceeds {self._max_body} bytes")
        try:
            self._verifier.verify(
                request.headers.get("X-Signature-Ed25519"),
                request.headers.get("X-Signature-Timestamp"),
                body,
            )
        except SignatureError as exc:
            outcome = "stale" if exc.reason == "stale" else "unauthorized"
            self._refused.record(outcome, request.remote or "", exc.message)
            return self._refuse(outcome, 401, exc.message)
        try:
            interaction = parse_interaction(body)
        except InteractionError as exc:
            self._refused.record(exc.outcome, request.remote or "", exc.message[:120])
            return self._refuse(exc.outcome, exc.status, exc.message)
        if interaction.type == PING:
            # Needs no bus: the Developer Portal's check of the URL passes while NATS is away.
            self._metrics.interactions.labels("ping", "immediate").inc()
            self._metrics.requests.labels("ok").inc()
            return web.json_response({"type": PONG})
        responder = self.responder
        if responder is None:
            return self._refuse("unavailable", 503, "proxbus is starting or stopping")
        try:
            response = await responder.respond(interaction)
        except InteractionError as exc:
            self._refused.record(exc.outcome, request.remote or "", exc.message[:120])
            return self._refuse(exc.outcome, exc.status, exc.message)
        except Exception as exc:  # NATS down (the ledger), a bug: no trace to the caller
            self._refused.record("unavailable", request.remote or "", type(exc).__name__)
            return self._refuse("unavailable", 503, "proxbus cannot answer right now")
        self._metrics.requests.labels("ok").inc()
        return web.json_response(response)
