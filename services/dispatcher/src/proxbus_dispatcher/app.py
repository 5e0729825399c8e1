"""Service wiring: settings → NATS/JetStream → intake + delivery workers + health server.

The pipeline lives in ``intake`` (stages in ``stages/``), enqueue/settle in ``enqueue``,
sending in ``delivery`` and ``notifiers/``. HTTP routes beyond ``/health`` and ``/metrics``
(e.g. a web console) are mounted through ``DispatcherService.mount``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry
from proxbus_runtime import HealthServer, connect_nats, ensure_streams

from .config import DispatcherConfig, load_config
from .console import ConsoleServer
from .delivery import DeliveryWorker
from .intake import Intake
from .metrics import DispatcherMetrics
from .notifiers import NotifierDeps, build_notifier
from .seed import seed_config
from .settings import Settings

log = logging.getLogger(__name__)

# Inside the runner's 10 s: tasks finish, then groups flush, then NATS drains.
TASKS_GRACE = 7.0
DRAIN_GRACE = 2.0
NATS_DRAIN_GRACE = 1.0


def load_dispatcher_config(settings: Settings) -> DispatcherConfig:
    """The routes file if ``ROUTES_FILE`` is set, else the seed toggles.

    Raises:
        ConfigError: invalid file or toggles.
    """
    if settings.routes_file is not None:
        return load_config(settings.routes_file)
    return seed_config(settings)


class DispatcherService:
    """Everything ``proxbus-dispatcher`` runs: NATS, intake, groups, workers, health."""

    def __init__(self, settings: Settings, config: DispatcherConfig | None = None) -> None:
        self.settings = settings
        self.config = config or load_dispatcher_config(settings)
        self.registry = CollectorRegistry()
        self.metrics = DispatcherMetrics(self.registry)
        self.health = HealthServer(settings.health_host, settings.health_port, self.registry)
        self.nc: NATS | None = None
        self.intake: Intake | None = None
        self.workers: list[DeliveryWorker] = []
        self._http: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.console: ConsoleServer | None = None

    def mount(self, prefix: str, app: web.Application) -> None:
        """Serve ``app`` under ``prefix`` on the health/metrics server (before ``start``)."""
        self.health.app.add_subapp(prefix, app)

    def _spawn(self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(run(self._stop), name=name))

    async def start(self) -> None:
        s = self.settings
        self.nc = nc = await connect_nats(s, name="proxbus-dispatcher")
        js = nc.jetstream(domain=s.nats_js_domain, timeout=5)
        await ensure_streams(js, s.stream_limits())
        self.intake = Intake(s, self.config, nc, js, self.metrics)
        if s.intake_enabled:
            await self.intake.start()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=128),
            timeout=aiohttp.ClientTimeout(total=10.0, connect=5.0),
        )
        if s.delivery_enabled:
            deps = NotifierDeps(http=self._http, nc=nc)
            for receiver in self.config.receivers.values():
                worker = DeliveryWorker(
                    js,
                    receiver,
                    build_notifier(receiver, deps),
                    self.metrics,
                    ack_wait=s.delivery_ack_wait,
                )
                self.workers.append(worker)
        if s.console_enabled:
            self.console = ConsoleServer(s, self.config, nc, js)
            self.console.add_routes(self.health.app)
            await self.console.start()
        self.health.add_check("nats", lambda: nc.is_connected)
        self.health.add_check("tasks", lambda: not any(t.done() for t in self._tasks))
        await self.health.start()
        if s.intake_enabled:
            self._spawn("intake", self.intake.run)
            self._spawn("groups", self.intake.run_groups)
        for worker in self.workers:
            self._spawn(f"deliver-{worker.receiver.name}", worker.run)
        if not self.config.receivers:
            log.warning(
                "no receiver configured (no ROUTES_FILE, no *_OUT_ENABLED): events are only counted"
            )
        log.info(
            "dispatcher started: %d receivers (%s), %d routes, %d inhibit rules",
            len(self.config.receivers),
            ", ".join(self.config.receivers) or "none",
            len(self.config.iter_routes()),
            len(self.config.inhibit_rules),
        )

    async def stop(self) -> None:
        """Stop intake, notify what groups hold, let in-flight sends finish, close."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=TASKS_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.intake is not None and self.settings.intake_enabled:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.intake.drain(), DRAIN_GRACE)
            await self.intake.close()
        if self._http is not None:
            await self._http.close()
        if self.console is not None:
            await self.console.stop()
        await self.health.stop()
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.drain(), NATS_DRAIN_GRACE)
            except Exception:
                with contextlib.suppress(Exception):
                    await self.nc.close()


async def run(
    settings: Settings, stop: asyncio.Event, config: DispatcherConfig | None = None
) -> None:
    """Run until ``stop`` is set (the ``proxbus_runtime.main`` serve function)."""
    service = DispatcherService(settings, config)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()


__all__ = ["DispatcherService", "load_dispatcher_config", "run"]
