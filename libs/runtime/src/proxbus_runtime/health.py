"""A small HTTP server every service reuses for ``/health`` and Prometheus ``/metrics``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from .http_limits import (
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_PEER,
    DEFAULT_REQUEST_TIMEOUT,
    ConnectionBudget,
    DeadlineRunner,
    RequestDeadline,
)
from .ratelog import RateLimitedLog

log = logging.getLogger(__name__)

HealthCheck = Callable[[], bool]


class _RequestErrorLog(logging.Logger):
    """aiohttp's request-handler logger for one server: what a client triggers is summarised.

    aiohttp logs ``Error handling request`` at ERROR with a traceback for every request it
    cannot parse, and for every exception a route raises (answered 500). The PVE webhook, the
    Discord interactions endpoint and the console share this server, so any client could
    write a traceback per request (issue 19). Requests aiohttp cannot parse (answered 400) go
    to ``bad_requests`` without a traceback (a client's garbage is not a bug); exceptions of a
    route go to ``errors``, the first of an interval with its traceback. Everything else
    (debug lines) goes to the ``aiohttp.server`` logger as before.
    """

    def __init__(self, bad_requests: RateLimitedLog, errors: RateLimitedLog) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")
        self._bad_requests = bad_requests
        self._errors = errors

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        given = kwargs.get("exc_info")
        exc = given if isinstance(given, BaseException) else sys.exc_info()[1]
        source = str(args[0]) if len(args) == 1 else ""
        if isinstance(exc, HttpProcessingError):
            detail = " ".join(str(exc).split())[:200]
            self._bad_requests.record(type(exc).__name__, source, detail)
        elif exc is not None:
            self._errors.record(type(exc).__name__, source, str(exc)[:200], exc_info=exc)
        else:
            self._errors.record(str(msg), source)


class HealthServer:
    """aiohttp app with ``/health`` and ``/metrics``; services may add routes to ``app``.

    ``request_timeout``: seconds a connection has to send a request's headers
    (``HTTP_REQUEST_TIMEOUT``); ``max_connections``, ``max_connections_per_peer``: open
    connections in all and per client address (``HTTP_MAX_CONNECTIONS[_PER_PEER]``);
    ``keepalive_timeout``: seconds an idle kept-alive connection stays open
    (``HTTP_KEEPALIVE_TIMEOUT``). See ``http_limits.py``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        *,
        client_max_size: int = 1024**2,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_peer: int = DEFAULT_MAX_CONNECTIONS_PER_PEER,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry or CollectorRegistry()
        self.app = web.Application(client_max_size=client_max_size)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self._checks: dict[str, HealthCheck] = {}
        self._runner: web.AppRunner | None = None
        self.request_deadline = RequestDeadline(request_timeout, self.registry)
        self.connection_budget = ConnectionBudget(
            max_connections, max_connections_per_peer, self.registry
        )
        if not keepalive_timeout > 0:
            raise ValueError(f"keep-alive timeout must be > 0, not {keepalive_timeout!r}")
        self.keepalive_timeout = keepalive_timeout
        budget = Gauge(
            "proxbus_http_budget",
            "the HTTP listener's configured budgets (alert on use / budget)",
            ["budget"],
            registry=self.registry,
        )
        for name, value in (
            ("max_connections", max_connections),
            ("max_connections_per_peer", max_connections_per_peer),
            ("keepalive_timeout_seconds", keepalive_timeout),
            ("request_timeout_seconds", request_timeout),
        ):
            budget.labels(name).set(value)
        self.bad_requests = RateLimitedLog(
            log, "malformed HTTP requests (answered 400)", level=logging.INFO
        )
        self.request_errors = RateLimitedLog(
            log, "HTTP requests failed (answered 500)", level=logging.ERROR
        )

    def add_check(self, name: str, check: HealthCheck) -> None:
        """``check()`` returning ``False`` makes ``/health`` answer 503."""
        self._checks[name] = check

    async def _health(self, _: web.Request) -> web.Response:
        results = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        ok = all(results.values())
        return web.json_response(
            {"status": "ok" if ok else "degraded", "checks": results}, status=200 if ok else 503
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        """Listen; with port 0 the bound port is in ``self.port`` afterwards."""
        self._runner = DeadlineRunner(
            self.app,
            self.request_deadline,
            self.connection_budget,
            keepalive_timeout=self.keepalive_timeout,
            access_log=None,
            handle_signals=False,
            logger=_RequestErrorLog(self.bad_requests, self.request_errors),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("health/metrics on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
