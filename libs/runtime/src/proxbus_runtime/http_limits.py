"""A deadline for a request's headers and connection budgets on proxbus's aiohttp listeners.

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

Connection budgets (``ConnectionBudget``): aiohttp accepts every connection, so one address
could hold thousands of sockets. A new connection beyond ``HTTP_MAX_CONNECTIONS`` open in all,
or beyond ``HTTP_MAX_CONNECTIONS_PER_PEER`` from its address, is closed at once (before aiohttp
sees it), counted in ``proxbus_http_connections_refused_total{reason=total|per_peer}`` and
logged rate-limited; connections already open (a live feed) are never touched. An idle
kept-alive connection is closed after ``HTTP_KEEPALIVE_TIMEOUT``.

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
from prometheus_client import CollectorRegistry, Counter, Gauge

from .ratelog import RateLimitedLog

__all__ = [
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_PEER",
    "DEFAULT_REQUEST_TIMEOUT",
    "ConnectionBudget",
    "DeadlineRunner",
    "RequestDeadline",
]

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 20.0
# An idle kept-alive connection (no byte of a next request) is closed by aiohttp's own
# keep-alive timer after this long (its default for AppRunner is 3,630 s; run_app's is 75 s).
# 30 s: longer than the pauses of a browser loading the console or of a Prometheus scraping
# every 15 s (it keeps reusing its connection), short enough that an idle connection gives its
# slot in the budgets back within half a minute. It also bounds the one case the deadline
# does not see: the first bytes of a next request arriving in the same segment as the end of
# the previous request (its headers, or its body), then nothing more.
DEFAULT_KEEPALIVE_TIMEOUT = 30.0
# Open connections in all and per client address. These listeners carry /health, /metrics,
# webhooks, Discord interactions and the console (a browser opens up to 6 connections plus its
# live feed): 64 per address is room for several users behind one reverse proxy or NAT, and
# 512 in all stays well inside a default open-file limit of 1,024 with aiohttp's buffers.
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_MAX_CONNECTIONS_PER_PEER = 64


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


class ConnectionBudget:
    """Open connections of one server: at most ``max_total``, ``max_per_peer`` per address.

    Memory: one counter per address with an open connection (at most ``max_total``).
    """

    def __init__(
        self,
        max_total: int = DEFAULT_MAX_CONNECTIONS,
        max_per_peer: int = DEFAULT_MAX_CONNECTIONS_PER_PEER,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not 1 <= max_per_peer <= max_total:
            raise ValueError(
                f"connection budgets must be 1 <= per peer ({max_per_peer}) <= total ({max_total})"
            )
        self.max_total = max_total
        self.max_per_peer = max_per_peer
        self.open = 0
        self._per_peer: dict[str, int] = {}
        self._log = RateLimitedLog(log, "refused HTTP connections")
        self.refused = Counter(
            "proxbus_http_connections_refused",
            "connections closed at once: over HTTP_MAX_CONNECTIONS (total) or the address's "
            "HTTP_MAX_CONNECTIONS_PER_PEER (per_peer)",
            ["reason"],
            registry=registry,
        )
        for reason in ("total", "per_peer"):
            self.refused.labels(reason)
        Gauge("proxbus_http_connections", "open HTTP connections", registry=registry).set_function(
            lambda: self.open
        )

    @property
    def peers(self) -> int:
        """Addresses with an open connection (what the budget keeps in memory)."""
        return len(self._per_peer)

    def admit(self, peer: str) -> bool:
        """Count a new connection from ``peer`` in, or refuse it (counted and logged)."""
        if self.open >= self.max_total:
            reason = "total"
        elif self._per_peer.get(peer, 0) >= self.max_per_peer:
            reason = "per_peer"
        else:
            self.open += 1
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            return True
        self.refused.labels(reason).inc()
        self._log.record(f"over the {reason.replace('_', '-')} budget", peer)
        return False

    def release(self, peer: str) -> None:
        """An admitted connection from ``peer`` has closed."""
        self.open -= 1
        left = self._per_peer.get(peer, 1) - 1
        if left > 0:
            self._per_peer[peer] = left
        else:
            self._per_peer.pop(peer, None)


class _DeadlineHandler(RequestHandler):
    """aiohttp's protocol, closing a connection whose request headers are late, and refusing
    one beyond the connection budgets."""

    __slots__ = (
        "_budget",
        "_budget_peer",
        "_deadline",
        "_last_payload",
        "_refused",
        "_timer",
        "_upgraded_request",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        deadline: RequestDeadline,
        budget: ConnectionBudget | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._deadline = deadline
        self._budget = budget
        self._budget_peer: str | None = None  # the address counted in the budget while open
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None
        # Body stream of the last request whose headers were parsed: while it is not at its
        # end, bytes received are that body, not a next request.
        self._last_payload: StreamReader | None = None
        self._upgraded_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._budget is not None:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) else ""
            if not self._budget.admit(address):
                # Before aiohttp sees it: no task, no timers, nothing for connection_lost.
                self._refused = True
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
                else:
                    transport.close()
                return
            self._budget_peer = address
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
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
        if self._refused:
            return
        if self._budget is not None and self._budget_peer is not None:
            self._budget.release(self._budget_peer)
            self._budget_peer = None
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

    def __init__(
        self, built: web.Server, deadline: RequestDeadline, budget: ConnectionBudget | None
    ) -> None:
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
        self._budget = budget

    def __call__(self) -> RequestHandler:
        loop = asyncio.get_running_loop()
        return _DeadlineHandler(
            self, loop=loop, deadline=self._deadline, budget=self._budget, **self._options
        )


class DeadlineRunner(web.AppRunner):
    """``web.AppRunner`` whose connections must send a request's headers within a deadline
    and, with a ``budget``, stay within its connection caps."""

    def __init__(
        self,
        app: web.Application,
        deadline: RequestDeadline,
        budget: ConnectionBudget | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT)
        super().__init__(app, **kwargs)
        self._deadline = deadline
        self._budget = budget

    async def _make_server(self) -> web.Server:
        return _DeadlineServer(await super()._make_server(), self._deadline, self._budget)
