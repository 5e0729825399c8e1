"""``Service``: what every proxbus service runs inside (NATS, JetStream, publisher, health, stop).

Read nats.py's ``micro.Service`` and FastStream's ``Application`` for the shape: one object owns
the connection and the lifecycle; the service adds its own pieces and hooks::

    async with Service(settings, "ingest-syslog", stop=stop) as svc:
        listeners = await start_listeners(settings, svc.publisher)
        svc.on_stop(listeners.drain)       # first at shutdown, with the seconds left
        await svc.serve()                  # until SIGTERM (or a background task fails)

Shutdown has one deadline, ``settings.shutdown_budget`` (9 s of the 10 s a supervisor allows):
stop intake (the ``on_stop`` hooks, last added first) → cancel background tasks → flush the
publisher → close the HTTP server and NATS, each phase given what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from proxbus_events import StreamLimits

from .errors import StopRequested
from .listen import listening
from .metrics import register_publisher
from .publisher import EventPublisher
from .ratelog import RateLimitedLog
from .settings import ServiceSettings, nats_options, public_url
from .streams import ensure_streams

if TYPE_CHECKING:
    from .health import HealthServer

log = logging.getLogger("proxbus.service")

StopHook = Callable[[float], Awaitable[None]]
ReadyHook = Callable[[], Coroutine[Any, Any, None]]

_CLOSE_RESERVE = 1.0  # seconds of the budget kept for closing HTTP and NATS
_BACKOFF_MAX = 30.0


class Service:
    """The runtime of one service process; an async context manager.

    Attributes ready after ``__aenter__`` (with ``require_nats=False``: after ``nats_ready``):
    ``nc``, ``js`` (JetStream in ``settings.nats_js_domain``), ``publisher``. Always ready:
    ``registry`` and ``health``, the HTTP server (``HEALTH_HOST:HEALTH_PORT`` or ``listen``),
    listening from ``__aenter__`` on (``/health`` answers 503 until NATS is ready), or with
    ``defer_http=True`` from ``start_http()``/``serve()`` on, for routes that need NATS first.

    ``health=False``: no HTTP server, and aiohttp is not even imported (a service with an
    HTTP server of its own serves ``registry`` there). ``nats=False``: no NATS at all (not a
    single connection attempt; ``nats_ready`` never fires); only with ``require_nats=False``.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        name: str,
        *,
        stop: asyncio.Event | None = None,
        require_nats: bool = True,
        nats: bool = True,
        ensure: bool = True,
        stream_limits: StreamLimits | None = None,
        publisher_options: Mapping[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
        health: bool = True,
        defer_http: bool = False,
        listen: tuple[str, int] | None = None,
        listen_setting: str = "HEALTH_PORT",
        max_body: int = 1024**2,
        js_timeout: float = 5.0,
    ) -> None:
        if require_nats and not nats:
            raise ValueError("require_nats=True needs nats=True")
        self.settings = settings
        self.name = name
        self.stop = stop or asyncio.Event()
        self.require_nats = require_nats
        self.registry = registry or CollectorRegistry()
        self._listen = listen or (settings.health_host, settings.health_port)
        self._listen_setting = listen_setting
        self._max_body = max_body
        self._health: HealthServer | None = None
        if health:
            self._health = self._make_health()
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.publisher: EventPublisher | None = None
        self.nats_ready = asyncio.Event()
        self._nats = nats
        self._ensure = ensure
        self._limits = stream_limits or settings.stream_limits()
        self._publisher_options = dict(publisher_options or {})
        self._serve_health = health
        self._defer_http = defer_http
        self._http_started = False
        self._js_timeout = js_timeout
        self._ready_hooks: list[ReadyHook] = []
        self._stop_hooks: list[StopHook] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connector: asyncio.Task[None] | None = None
        self._closing_nats = False  # our own close: its disconnect is no outage
        self._failure: BaseException | None = None
        self._deadline: float | None = None

    @property
    def health(self) -> HealthServer:
        """The HTTP server (built on first use with ``health=False``; it is then never started)."""
        if self._health is None:
            self._health = self._make_health()
        return self._health

    def _make_health(self) -> HealthServer:
        from .health import HealthServer  # aiohttp: only where a health server runs

        host, port = self._listen
        return HealthServer(
            host,
            port,
            self.registry,
            client_max_size=self._max_body,
            request_timeout=self.settings.http_request_timeout,
            max_connections=self.settings.http_max_connections,
            max_connections_per_peer=self.settings.http_max_connections_per_peer,
            keepalive_timeout=self.settings.http_keepalive_timeout,
        )

    # --- hooks ----------------------------------------------------------------------------

    def on_nats_ready(self, hook: ReadyHook) -> None:
        """Await ``hook()`` once NATS, JetStream and the publisher are ready (at once if they are)."""
        if self.nats_ready.is_set():
            self.start_task(hook(), name=f"{self.name}-nats-ready")
        else:
            self._ready_hooks.append(hook)

    def on_stop(self, hook: StopHook) -> None:
        """Await ``hook(seconds)`` first at shutdown (stop intake, drain); last added first.

        ``seconds`` is what the hook may use (the deadline minus what closing needs); it is
        cancelled after that.
        """
        self._stop_hooks.append(hook)

    def start_task(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background until shutdown; if it fails, the service stops."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("%s: background task %s failed; stopping", self.name, task.get_name(),
                  exc_info=exc)  # fmt: skip
        if self._failure is None:
            self._failure = exc
        self.stop.set()

    def time_left(self) -> float:
        """Seconds left of the shutdown deadline (the whole budget before shutdown began)."""
        if self._deadline is None:
            return self.settings.shutdown_budget
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Service:
        if self._serve_health and self.require_nats:
            self.health.add_check("nats", lambda: self.nats_ready.is_set() and self.connected)
        if not self._defer_http:
            await self.start_http()  # /health answers (503) while NATS is still missing
        if not self._nats:
            return self
        self._connector = asyncio.create_task(self._bring_up_nats(), name=f"{self.name}-nats")
        if self.require_nats:
            stopped = asyncio.create_task(self.stop.wait())
            try:
                await asyncio.wait({self._connector, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not self.nats_ready.is_set():
                if self._connector.done() and self._connector.exception() is not None:
                    await self._close(self.settings.shutdown_budget)
                    raise self._connector.exception()  # type: ignore[misc]
                await self._close(self.settings.shutdown_budget)
                raise StopRequested(f"{self.name}: stopped before NATS was ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close(self.settings.shutdown_budget)

    async def start_http(self) -> None:
        """Start the HTTP server (``/health``, ``/metrics`` and the routes added to ``health.app``).

        aiohttp freezes the routes once it serves: add the service's routes before
        ``__aenter__``, or pass ``defer_http=True`` and add them before this (or ``serve()``,
        which calls it). Idempotent.

        Raises:
            ListenError: the address is taken (``main``: one line naming it, exit 2).
        """
        if self._serve_health and not self._http_started:
            self._http_started = True
            with listening(*self._listen, self._listen_setting):
                await self.health.start()

    async def serve(self) -> None:
        """Start the HTTP server if needed, then wait until ``stop`` is set.

        Raises:
            Exception: the failure of a background task, if one failed.
        """
        await self.start_http()
        await self.stop.wait()
        if self._failure is not None:
            raise self._failure

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _bring_up_nats(self) -> None:
        """Connect (nats-py retries forever), then JetStream and streams with backoff, then ready."""
        s = self.settings
        options = nats_options(s, f"proxbus-{self.name}")
        warn_disconnected = options["disconnected_cb"]

        async def on_disconnected() -> None:
            if self._closing_nats:
                log.info("%s: NATS connection closed", self.name)
            else:
                await warn_disconnected()

        options["disconnected_cb"] = on_disconnected
        self.nc = await nats.connect(**options)
        url = public_url(s.nats_url)
        connected = self.nc.connected_url
        log.info("%s: NATS connected to %s", self.name,
                 public_url(connected.geturl()) if connected is not None else url)  # fmt: skip
        self.js = self.nc.jetstream(domain=s.nats_js_domain, timeout=self._js_timeout)
        what = f"{self.name}: {jetstream_missing(s)}"
        unavailable = RateLimitedLog(log, what, interval=60.0, level=logging.ERROR)
        backoff = 1.0
        while self._ensure:
            try:
                await ensure_streams(self.js, self._limits)
                break
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                unavailable.record(self._js_trouble(exc), detail="retrying with backoff up to 30s")
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311
                backoff = min(backoff * 2, _BACKOFF_MAX)
        self.publisher = EventPublisher(self.js, **self._publisher_options)
        await self.publisher.start()
        register_publisher(self.registry, self.publisher, self.name)
        self.nats_ready.set()
        for hook in self._ready_hooks:
            self.start_task(hook(), name=f"{self.name}-nats-ready")
        self._ready_hooks.clear()

    def _js_trouble(self, exc: BaseException) -> str:
        """Why the JetStream API did not answer, in words (nats-py's text is often empty)."""
        # No JetStream (or not in that domain): nobody listens on $JS.API, so the request
        # gets "no responders", which nats-py raises as a ServiceUnavailableError without text.
        if isinstance(exc, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
            return "no JetStream answers there"
        if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
            return f"no answer within {self._js_timeout:g}s"
        return _describe(exc)

    async def _close(self, budget: float) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + budget
        self.stop.set()
        for hook in reversed(self._stop_hooks):
            allowed = self._phase_time()
            try:
                await asyncio.wait_for(hook(allowed), allowed)
            except TimeoutError:
                log.warning("%s: %s did not finish within the shutdown budget", self.name,
                            getattr(hook, "__qualname__", hook))  # fmt: skip
            except Exception:
                log.exception("%s: stop hook failed", self.name)
        self._stop_hooks.clear()
        background = [t for t in (*self._tasks, self._connector) if t is not None and not t.done()]
        for task in background:
            task.cancel()
        if background:
            await asyncio.wait(background, timeout=min(1.0, self._phase_time()))
        if self.publisher is not None:
            await self.publisher.close(timeout=max(0.1, self._phase_time()))
            stats = self.publisher.stats
            log.info("%s: publisher closed: %d published, %d duplicates, %d dropped",
                     self.name, stats.published, stats.duplicates, stats.dropped)  # fmt: skip
            self.publisher = None
        if self._health is not None:
            await self._health.stop()
        if self.nc is not None:
            self._closing_nats = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), max(0.1, self.time_left()))
            self.nc = None

    def _phase_time(self) -> float:
        """What a phase before closing may use: the time left minus the closing reserve."""
        return max(0.1, self.time_left() - _CLOSE_RESERVE)


def jetstream_missing(settings: ServiceSettings) -> str:
    """What it means when nobody answers the JetStream API at ``settings.nats_url``, in words."""
    url = public_url(settings.nats_url)
    if settings.nats_js_domain:
        return f"JetStream is not available at {url} in domain {settings.nats_js_domain!r}"
    return f"JetStream is not enabled on {url} (start it with `nats-server -js`)"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
