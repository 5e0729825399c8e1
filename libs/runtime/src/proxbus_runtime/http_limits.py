"""A deadline for a request's headers on proxbus's aiohttp listeners (slowloris).

aiohttp has no header-read timeout: its only timer is ``keepalive_timeout`` (3,630 s by
default for an ``AppRunner``), so a connection that sends nothing, or sends
``GET / HTTP/1.1\\r\\nHost: x\\r\\n`` and stops, held a socket and its buffers for an hour,
and a flood of them without bound. ``DeadlineRunner`` is the ``web.AppRunner`` every
``HealthServer`` uses: a connection must send a request's complete headers within
``timeout`` seconds (``HTTP_REQUEST_TIMEOUT``), counted from the connection and, on a
kept-alive connection, from the next request's first byte; otherwise it is closed, counted in
``proxbus_http_request_timeouts_total`` and logged rate-limited. Once a request's headers
are in, the deadline is off: a slow handler, a long body or a streaming response (the
console's live feed) is never cut by it.

Hook: ``DeadlineRunner._make_server`` wraps the server aiohttp's ``AppRunner`` builds in a
``web.Server`` subclass whose protocol factory builds ``_DeadlineHandler`` (a
``RequestHandler`` subclass). What it relies on beyond aiohttp's public API is pinned by
``libs/runtime/tests/test_http_limits.py`` (an upgrade that moves it fails there):
``AppRunner._make_server``, ``Server._kwargs`` (the handler options) and, on
``RequestHandler``, ``_request_count`` (incremented as each request's headers are parsed)
and ``_messages`` (parsed requests waiting for the handler, with their body streams).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry, Counter

from .ratelog import RateLimitedLog

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "IDLE_TIMEOUT", "DeadlineRunner", "RequestDeadline"]

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 20.0
# An idle kept-alive connection (no byte of a next request) is closed by aiohttp's own
# keep-alive timer after this long (its default for AppRunner is 3,630 s; 75 s is what
# aiohttp's own run_app uses). It also bounds the one case the deadline does not see: the
# first bytes of a next request arriving in the same segment as the end of the previous
# request (its headers, or its body), then nothing more.
IDLE_TIMEOUT = 75.0


class RequestDeadline:
    """The deadline of one server, its counter and its rate-limited log."""

    def __init__(
        self, timeout: float = DEFAULT_REQUEST_TIMEOUT, registry: CollectorRegistry | None = None
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"request timeout must be > 0, not {timeout!r}")
        self.timeout = timeout
        self.closed = RateLimitedLog(log, "closed HTTP connections")
        self.counter = Counter(
            "proxbus_http_request_timeouts",
            "connections closed for not sending a request's headers within HTTP_REQUEST_TIMEOUT",
            registry=registry,
        )

    def expired(self, source: str) -> None:
        self.counter.inc()
        self.closed.record(f"no whole request headers within {self.timeout:g}s", source)


class _DeadlineHandler(RequestHandler):
    """aiohttp's protocol, closing a connection whose request headers are late."""

    __slots__ = ("_deadline", "_last_payload", "_timer", "_upgraded_request")

    def __init__(self, manager: web.Server, *, deadline: RequestDeadline, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._deadline = deadline
        self._timer: asyncio.TimerHandle | None = None
        # Body stream of the last request whose headers were parsed: while it is not at its
        # end, bytes received are that body, not a next request.
        self._last_payload: StreamReader | None = None
        self._upgraded_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if (
            data
            and self._timer is None
            and not self._upgraded_request
            and (self._last_payload is None or self._last_payload.is_eof())
        ):
            self._arm()  # the first byte of a next request on a kept-alive connection
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a request's headers are complete
            self._disarm()
            if self._messages:
                message, payload = self._messages[-1]
                self._last_payload = payload
                self._upgraded_request = bool(getattr(message, "upgrade", False))

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._last_payload = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._deadline.timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        peer = self.peername
        source = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        self._deadline.expired(source)
        self.force_close()


class _DeadlineServer(web.Server):
    """aiohttp's low-level server whose connections get ``_DeadlineHandler``."""

    def __init__(self, built: web.Server, deadline: RequestDeadline) -> None:
        options: dict[str, Any] = dict(built._kwargs)
        super().__init__(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **options,
        )
        self._options = options
        self._deadline = deadline

    def __call__(self) -> RequestHandler:
        loop = asyncio.get_running_loop()
        return _DeadlineHandler(self, loop=loop, deadline=self._deadline, **self._options)


class DeadlineRunner(web.AppRunner):
    """``web.AppRunner`` whose connections must send a request's headers within a deadline."""

    def __init__(self, app: web.Application, deadline: RequestDeadline, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", IDLE_TIMEOUT)
        super().__init__(app, **kwargs)
        self._deadline = deadline

    async def _make_server(self) -> web.Server:
        return _DeadlineServer(await super()._make_server(), self._deadline)
