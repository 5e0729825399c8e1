"""A small HTTP server every service reuses for ``/health`` and Prometheus ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthCheck = Callable[[], bool]


class HealthServer:
    """aiohttp app with ``/health`` and ``/metrics``; services may add routes to ``app``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        *,
        client_max_size: int = 1024**2,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry or CollectorRegistry()
        self.app = web.Application(client_max_size=client_max_size)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self._checks: dict[str, HealthCheck] = {}
        self._runner: web.AppRunner | None = None

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
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
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
