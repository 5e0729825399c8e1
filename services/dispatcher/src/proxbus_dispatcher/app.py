"""Service wiring: settings → the runtime (NATS, JetStream, health) → intake + delivery workers.

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
from proxbus_runtime import Service

from .config import DispatcherConfig, load_config
from .console import ConsoleServer
from .delivery import DeliveryWorker
from .intake import Intake
from .metrics import DispatcherMetrics
from .notifiers import NotifierDeps, build_notifier
from .seed import seed_config
from .settings import Settings

log = logging.getLogger(__name__)

# Of the runtime's shutdown budget: tasks finish, then groups flush (then the runtime closes).
DRAIN_GRACE = 2.0


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
        self._stop = asyncio.Event()
        # defer_http: the console's routes are added once NATS is up, before the server starts.
        self.runtime = Service(
            settings, "dispatcher", stop=self._stop, registry=self.registry, defer_http=True
        )
        self.health = self.runtime.health
        self.nc: NATS | None = None
        self.intake: Intake | None = None
        self.workers: list[DeliveryWorker] = []
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.console: ConsoleServer | None = None

    def mount(self, prefix: str, app: web.Application) -> None:
        """Serve ``app`` under ``prefix`` on the health/metrics server (before ``start``)."""
        self.health.app.add_subapp(prefix, app)

    def _spawn(self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._tasks.append(asyncio.create_task(run(self._stop), name=name))

    async def start(self) -> None:
        s = self.settings
        await self.runtime.__aenter__()
        self.runtime.on_stop(self._stop_tasks)
        assert self.runtime.nc is not None
        assert self.runtime.js is not None
        assert self.runtime.publisher is not None
        self.nc = nc = self.runtime.nc
        js = self.runtime.js
        self.intake = Intake(s, self.config, nc, js, self.metrics, self.runtime.publisher)
        if s.intake_enabled:
            await self.intake.start()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=128),
            timeout=aiohttp.ClientTimeout(total=10.0, connect=5.0),
        )
        if s.delivery_enabled:
            deps = NotifierDeps(http=self._http, nc=nc, discord_button_secret=s.button_secret)
            for receiver in self.config.receivers.values():
                if getattr(receiver, "buttons", False) and s.button_secret is None:
                    log.warning(
                        "discord receiver %s has buttons: true but DISCORD_BUTTON_SECRET is not"
                        " set: its notifications go without the Silence/Acknowledge buttons"
                        " (set the same secret on the dispatcher and ingest-discord)",
                        receiver.name,
                    )
                worker = DeliveryWorker(
                    js,
                    receiver,
                    build_notifier(receiver, deps),
                    self.metrics,
                    publisher=self.runtime.publisher,
                    ack_wait=s.delivery_ack_wait,
                )
                self.workers.append(worker)
        if s.console_enabled:
            self.console = ConsoleServer(
                s,
                self.config,
                nc,
                js,
                self.registry,
                peer_names=self.intake.peers if s.intake_enabled and self.intake else None,
            )
            self.console.add_routes(self.health.app)
            await self.console.start()
        self.health.add_check("tasks", lambda: not any(t.done() for t in self._tasks))
        await self.runtime.start_http()
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

    def request_stop(self) -> None:
        """Stop what is running or starting (``start`` then raises ``StopRequested``)."""
        self._stop.set()

    async def stop(self) -> None:
        """Stop intake, notify what groups hold, let in-flight sends finish, close."""
        await self.runtime.__aexit__(None, None, None)

    async def _stop_tasks(self, seconds: float) -> None:
        """The runtime's first shutdown phase: tasks, then groups flushed, within ``seconds``."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=max(0.5, seconds - DRAIN_GRACE))
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


async def run(
    settings: Settings, stop: asyncio.Event, config: DispatcherConfig | None = None
) -> None:
    """Run until ``stop`` is set (the ``proxbus_runtime.main`` serve function)."""
    service = DispatcherService(settings, config)

    # The runtime waits for NATS on the service's own stop event: a SIGTERM while NATS or
    # JetStream is missing must end that wait (StopRequested, a clean exit), not the grace.
    def relay_stop(_: asyncio.Task[Any]) -> None:
        if stop.is_set():
            service.request_stop()

    relay = asyncio.create_task(stop.wait(), name="dispatcher-stop")
    relay.add_done_callback(relay_stop)
    try:
        await service.start()
        await stop.wait()
    finally:
        relay.cancel()
        await service.stop()


__all__ = ["DispatcherService", "load_dispatcher_config", "run"]
